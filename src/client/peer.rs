//! The publisher's peer connection: send-only H.264 + Opus tracks on webrtc-rs, host
//! candidates on the given local addresses (no mDNS), and STUN/TURN only when asked.

use std::sync::Arc;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Slot;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::configure_simulcast_extension_headers;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{PayloadType, RTCRtpTransceiverDirection, RTCRtpTransceiverInit, SSRC};
use tokio::sync::watch;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::Track;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCBundlePolicy, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionState, Registry, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::RtpSender;

use super::error::ClientError;
use super::ice_servers::IceServer;
use super::lossy::{Loss, LossyVideo, LOSSY_SLOT};
use super::simulcast::SimulcastOut;
use super::source::{AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE};

/// Payload types we offer; the answer echoes them (RFC 8829 §5.3.1), so they are what we send.
const H264_PAYLOAD_TYPE: u8 = 102;
/// Retransmissions of the H.264 (RFC 4588), offered with simulcast as browsers do.
const RTX_PAYLOAD_TYPE: u8 = 103;
const OPUS_PAYLOAD_TYPE: u8 = 111;

/// Peer connection events, turned into watchable state.
pub(super) struct Events {
    /// How many times candidate gathering has completed (once, then once per ICE restart).
    pub(super) gathered: watch::Sender<u32>,
    pub(super) state: watch::Sender<RTCPeerConnectionState>,
    /// How many times the connection has become connected (again after an ICE restart).
    pub(super) connects: Arc<std::sync::atomic::AtomicU32>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_modify(|n| *n += 1);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(%state, "whip client: peer connection state");
        if state == RTCPeerConnectionState::Connected {
            self.connects
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.state.send_replace(state);
    }
}

/// One local track and the sender carrying it.
pub(super) struct Outgoing {
    pub(super) track: Arc<TrackLocalStaticSample>,
    pub(super) sender: Arc<dyn RtpSender>,
    /// Video sent as simulcast layers (set once the answer says which).
    pub(super) simulcast: Option<SimulcastOut>,
}

/// The ICE servers and policy of a peer connection.
pub(super) struct Ice<'a> {
    pub(super) servers: &'a [IceServer],
    /// Relay candidates only (`RTCIceTransportPolicy::Relay`).
    pub(super) relay_only: bool,
}

/// What a publisher's peer connection is built with.
pub(super) struct PeerOptions<'a> {
    /// Local addresses to gather UDP candidates on, and TCP ones (ICE-TCP, active).
    pub(super) udp_addrs: &'a [String],
    pub(super) tcp_addrs: &'a [String],
    pub(super) ice: Ice<'a>,
    /// Opus is offered as stereo (`sprop-stereo=1`).
    pub(super) stereo: bool,
    /// The video goes out as rid-identified layers, which needs the MID and RID header
    /// extensions.
    pub(super) simulcast: bool,
    /// Simulated loss on the video (`lossy.rs`), for tests.
    pub(super) loss: Option<Loss>,
    /// An ICE restart binds new sockets (new ports), as a publisher whose network changed
    /// would have new addresses.
    pub(super) move_on_ice_restart: bool,
}

pub(super) async fn build_peer_connection(
    opts: PeerOptions<'_>,
    events: Events,
) -> Result<Arc<dyn PeerConnection>, ClientError> {
    let PeerOptions {
        udp_addrs,
        tcp_addrs,
        ice,
        stereo,
        simulcast,
        loss,
        move_on_ice_restart,
    } = opts;
    let mut media_engine = MediaEngine::default();
    if simulcast {
        configure_simulcast_extension_headers(&mut media_engine)?;
        media_engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: "video/rtx".to_string(),
                    clock_rate: VIDEO_CLOCK_RATE,
                    channels: 0,
                    sdp_fmtp_line: format!("apt={H264_PAYLOAD_TYPE}"),
                    rtcp_feedback: vec![],
                },
                payload_type: RTX_PAYLOAD_TYPE,
            },
            RtpCodecKind::Video,
        )?;
    }
    // Only what a WHIP ingest of castgate takes: H.264 packetization-mode 1 (non-interleaved,
    // FU-A/STAP-A, RFC 6184 §6.3) at constrained baseline, and Opus.
    let video_feedback = ["nack", "nack pli", "ccm fir"]
        .iter()
        .map(|fb| {
            let (typ, parameter) = fb.split_once(' ').unwrap_or((fb, ""));
            RTCPFeedback {
                typ: typ.to_string(),
                parameter: parameter.to_string(),
            }
        })
        .collect::<Vec<_>>();
    media_engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                rtcp_feedback: video_feedback,
                ..h264_codec()
            },
            payload_type: H264_PAYLOAD_TYPE,
        },
        RtpCodecKind::Video,
    )?;
    media_engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus_codec(stereo),
            payload_type: OPUS_PAYLOAD_TYPE,
        },
        RtpCodecKind::Audio,
    )?;
    let mut registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
    if let Some(loss) = loss {
        registry = registry.with(Slot::from(LOSSY_SLOT), LossyVideo::new(loss));
    }

    // Only the servers the caller named: none by default, never a public STUN server.
    let servers = ice
        .servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone(),
            credential: s.credential.clone(),
        })
        .collect();
    let policy = if ice.relay_only {
        RTCIceTransportPolicy::Relay
    } else {
        RTCIceTransportPolicy::All
    };
    let config = RTCConfigurationBuilder::new()
        .with_bundle_policy(RTCBundlePolicy::MaxBundle)
        .with_ice_servers(servers)
        .with_ice_transport_policy(policy)
        .build();
    // mDNS off: candidates carry plain IPs, and no multicast socket is needed.
    // With `move_on_ice_restart`, an ICE restart binds new sockets (new ports), as a publisher
    // whose network changed would have new addresses.
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_discard_local_candidates_during_ice_restart(move_on_ice_restart)
        .build();

    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_media_engine(media_engine)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(events))
        .with_udp_addrs(udp_addrs.to_vec())
        .with_tcp_addrs(tcp_addrs.to_vec())
        .build()
        .await?;
    Ok(Arc::new(pc))
}

pub(super) fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_string(),
        clock_rate: VIDEO_CLOCK_RATE,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .to_string(),
        rtcp_feedback: vec![],
    }
}

/// Opus as a browser offers it; `stereo` adds `sprop-stereo=1` (RFC 7587 §7.1: this sender
/// sends stereo), without which the receiver is free to decode to mono.
pub(super) fn opus_codec(stereo: bool) -> RTCRtpCodec {
    let fmtp = if stereo {
        "minptime=10;useinbandfec=1;sprop-stereo=1"
    } else {
        "minptime=10;useinbandfec=1"
    };
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_string(),
        clock_rate: AUDIO_CLOCK_RATE,
        channels: 2,
        sdp_fmtp_line: fmtp.to_string(),
        rtcp_feedback: vec![],
    }
}

/// A send-only track: one encoding, or one per simulcast layer in `rids` (each with its own
/// SSRC; webrtc-rs then offers `a=rid` and `a=simulcast`, RFC 8853).
pub(super) async fn add_sendonly_track(
    pc: &Arc<dyn PeerConnection>,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    rids: &[&str],
) -> Result<Outgoing, ClientError> {
    let stream_id = "castgate-publisher".to_string();
    let encoding = |rid: &str| RTCRtpEncodingParameters {
        rtp_coding_parameters: RTCRtpCodingParameters {
            ssrc: Some(rand::random::<u32>()),
            rid: rid.into(),
            ..Default::default()
        },
        codec: codec.clone(),
        ..Default::default()
    };
    let encodings = match rids {
        [] => vec![encoding("")],
        rids => rids.iter().map(|rid| encoding(rid)).collect(),
    };
    let track = MediaStreamTrack::new(
        stream_id.clone(),
        format!("castgate-{kind}"),
        format!("castgate-{kind}"),
        kind,
        encodings,
    );
    let track = Arc::new(TrackLocalStaticSample::new(
        std::time::Instant::now(),
        track,
    )?);
    let transceiver = pc
        .add_transceiver_from_track(
            Arc::clone(&track) as Arc<dyn TrackLocal>,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![stream_id],
                send_encodings: vec![],
            }),
        )
        .await?;
    let sender = transceiver
        .sender()
        .await?
        .ok_or_else(|| ClientError::ConnectionLost("transceiver has no sender".into()))?;
    Ok(Outgoing {
        track,
        sender,
        simulcast: None,
    })
}

pub(super) async fn payload_type_and_ssrc(
    out: &Outgoing,
) -> Result<(PayloadType, SSRC), ClientError> {
    let params = out.sender.get_parameters().await?;
    let pt = params
        .rtp_parameters
        .codecs
        .first()
        .map(|c| c.payload_type)
        .ok_or_else(|| ClientError::ConnectionLost("sender has no negotiated codec".into()))?;
    let ssrc = *out
        .track
        .ssrcs()
        .await
        .first()
        .ok_or_else(|| ClientError::ConnectionLost("track has no SSRC".into()))?;
    Ok((pt, ssrc))
}

pub(super) fn failed(state: RTCPeerConnectionState) -> bool {
    matches!(
        state,
        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
    )
}
