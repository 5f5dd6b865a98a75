//! The in-repo WHIP publisher against a minimal WHIP endpoint built from a plain webrtc-rs
//! answerer, so client faults show up without castgate's ingest in the way: every frame and
//! Opus packet must arrive with the RTP framing a browser would use.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use castgate::client::{publish, PublishOptions};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::watch;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCIceGatheringState, RTCSessionDescription, Registry,
    SettingEngineBuilder,
};

use super::support::{
    assert_loopback_candidates, fixture, http_client, init_tracing, require_media_tools,
};

/// RTP packets received, keyed by sequence number (so NACK retransmissions count once):
/// (timestamp, marker, first payload byte).
#[derive(Default)]
struct Received {
    video: BTreeMap<u16, (u32, bool, u8)>,
    audio: BTreeMap<u16, u32>,
}

struct AnswererEvents {
    gathered: watch::Sender<bool>,
    received: Arc<Mutex<Received>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for AnswererEvents {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let received = Arc::clone(&self.received);
        let kind = track.kind().await;
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    let mut r = received.lock().expect("lock");
                    let h = &p.header;
                    match kind {
                        RtpCodecKind::Video => {
                            let first = p.payload.first().copied().unwrap_or(0);
                            r.video
                                .insert(h.sequence_number, (h.timestamp, h.marker, first));
                        }
                        _ => {
                            r.audio.insert(h.sequence_number, h.timestamp);
                        }
                    }
                }
            }
        });
    }
}

#[derive(Clone, Default)]
struct Endpoint {
    pc: Arc<tokio::sync::Mutex<Option<Arc<dyn PeerConnection>>>>,
    received: Arc<Mutex<Received>>,
    deleted: Arc<Mutex<bool>>,
}

async fn answer(State(ep): State<Endpoint>, offer: String) -> Response {
    let mut media = MediaEngine::default();
    media.register_default_codecs().expect("codecs");
    let registry = register_default_interceptors(Registry::new(), &mut media).expect("registry");
    let (gathered_tx, mut gathered_rx) = watch::channel(false);
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(
            SettingEngineBuilder::new()
                .with_multicast_dns_mode(MulticastDnsMode::Disabled)
                .build(),
        )
        .with_handler(Arc::new(AnswererEvents {
            gathered: gathered_tx,
            received: Arc::clone(&ep.received),
        }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await
        .expect("answerer peer connection");
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    let offer = match RTCSessionDescription::offer(offer) {
        Ok(o) => o,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    pc.set_remote_description(offer).await.expect("apply offer");
    let answer = pc.create_answer(None).await.expect("create answer");
    pc.set_local_description(answer)
        .await
        .expect("apply answer");
    tokio::time::timeout(Duration::from_secs(10), gathered_rx.wait_for(|g| *g))
        .await
        .expect("answerer gathers")
        .expect("gather watch");
    let sdp = pc.local_description().await.expect("local description").sdp;
    *ep.pc.lock().await = Some(pc);
    (
        StatusCode::CREATED,
        [
            // Relative, as RFC 9725 allows: the client must resolve it against the endpoint.
            (header::LOCATION, "session-1"),
            (header::CONTENT_TYPE, "application/sdp"),
        ],
        sdp,
    )
        .into_response()
}

async fn delete(State(ep): State<Endpoint>) -> StatusCode {
    *ep.deleted.lock().expect("lock") = true;
    if let Some(pc) = ep.pc.lock().await.take() {
        let _ = pc.close().await;
    }
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publisher_sends_every_frame_and_packet_with_browser_rtp_framing() {
    init_tracing();
    require_media_tools();
    let fixture = fixture(2).await;

    let ep = Endpoint::default();
    let app = Router::new()
        .route("/whip/test", post(answer))
        .route("/whip/session-1", axum::routing::delete(delete))
        .with_state(ep.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let opts = PublishOptions {
        http: Some(http_client()),
        ..PublishOptions::default()
    };
    let mut session = publish(
        &format!("http://{addr}/whip/test"),
        None,
        fixture.media_source(),
        opts,
    )
    .await
    .expect("publish");
    assert_eq!(session.location(), format!("http://{addr}/whip/session-1"));
    assert_loopback_candidates("publisher offer", session.offer_sdp());
    assert!(
        session.offer_sdp().contains("a=sendonly"),
        "WHIP offers are send-only"
    );
    assert!(
        session.offer_sdp().contains("packetization-mode=1"),
        "H.264 is offered in non-interleaved mode"
    );
    let sent = tokio::time::timeout(Duration::from_secs(20), session.finished())
        .await
        .expect("publisher finishes in real time")
        .expect("publisher sends without error");
    assert_eq!(sent.video_frames, fixture.video_frames as u64);
    assert_eq!(sent.video_keyframes, fixture.video_keyframes as u64);
    assert_eq!(sent.audio_packets, fixture.audio_packets as u64);
    tokio::time::sleep(Duration::from_millis(300)).await;
    session.stop().await.expect("DELETE succeeds");
    assert!(
        *ep.deleted.lock().expect("lock"),
        "DELETE reached the endpoint"
    );
    server.abort();

    let r = ep.received.lock().expect("lock");
    // Sequence numbers and timestamps start at random values and may wrap: order packets by
    // their distance from the earliest ones.
    let ts0 = earliest(r.video.values().map(|v| v.0));
    let seq0 = earliest(r.video.keys().map(|&s| u32::from(s) << 16)) >> 16;
    let mut video: Vec<_> = r
        .video
        .iter()
        .map(|(&seq, &(ts, marker, first))| {
            let order = (ts.wrapping_sub(ts0), seq.wrapping_sub(seq0 as u16));
            (order, ts, marker, first)
        })
        .collect();
    video.sort_by_key(|v| v.0);
    let video: Vec<(u32, bool, u8)> = video.into_iter().map(|(_, t, m, f)| (t, m, f)).collect();
    let frames = video.iter().filter(|(_, marker, _)| *marker).count();
    assert_eq!(
        frames as u64, sent.video_frames,
        "marker bits = access units"
    );
    let mut stamps: Vec<u32> = video.iter().map(|(ts, _, _)| *ts).collect();
    stamps.dedup();
    assert_eq!(
        stamps.len() as u64,
        sent.video_frames,
        "one RTP timestamp per frame"
    );
    assert!(
        stamps.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 3000),
        "30 fps at 90 kHz is 3000 ticks per frame"
    );
    // The first packet is the STAP-A (type 24) carrying SPS and PPS ahead of the IDR.
    assert_eq!(video.first().map(|v| v.2 & 0x1f), Some(24));

    let base = earliest(r.audio.values().copied());
    let mut audio: Vec<u32> = r.audio.values().copied().collect();
    audio.sort_by_key(|ts| ts.wrapping_sub(base));
    assert_eq!(audio.len() as u64, sent.audio_packets);
    assert!(
        audio.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 960),
        "20 ms Opus packets are 960 ticks apart"
    );
}

/// The earliest of some RTP timestamps (or sequence numbers shifted into the top 16 bits),
/// allowing for wrap-around: compared as signed distances from an arbitrary one of them.
fn earliest(values: impl Iterator<Item = u32> + Clone) -> u32 {
    let any = values.clone().next().unwrap_or(0);
    values
        .min_by_key(|v| v.wrapping_sub(any).wrapping_add(1 << 31))
        .unwrap_or(0)
}
