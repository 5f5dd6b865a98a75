//! ICE restart mid-stream (RFC 9725 §4.3.2) against the real gateway: the in-repo publisher
//! moves to new local ports (as a phone moving from Wi-Fi to 4G would), PATCHes its new
//! credentials and candidates, gets the gateway's new ones in a 200 with a new ETag, and carries
//! on over the new path. Both outputs then hold every frame sent, before and after, and ffmpeg
//! decodes them with no error.

use super::shared::eventually;
use super::support::{
    assert_both_outputs_whole, candidates, finish_publish, finish_viewers, fixture, init_tracing,
    publish_and_watch_with, require_media_tools, TestServer,
};
use castgate::client::PublishOptions;
use castgate::ingest::sdpfrag::SdpFrag;

const FIXTURE_SECONDS: u32 = 8;

/// Whether a UDP socket of this host is bound to local port `local` and connected to remote
/// port `remote` (from /proc/net/udp, whose addresses are hex `ip:port`).
fn connected_socket(local: u16, remote: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/udp").expect("read /proc/net/udp");
    let port = |field: &str| {
        field
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 2 && port(f[1]) == Some(local) && port(f[2]) == Some(remote)
    })
}

fn ice_ufrag(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .expect("an ice-ufrag")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ice_restart_mid_stream_loses_no_frame() {
    restart_mid_stream("restart-same", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ice_restart_to_new_ports_mid_stream_loses_no_frame() {
    restart_mid_stream("restart-moved", true).await;
}

/// Publishes `name`, restarts ICE 3 s in (on new local ports when `moves`), and checks the
/// restart's answer, the new path and both outputs.
async fn restart_mid_stream(name: &str, moves: bool) {
    init_tracing();
    require_media_tools();
    let fixture = fixture(FIXTURE_SECONDS).await;
    let srv = TestServer::start().await;
    let opts = PublishOptions {
        move_on_ice_restart: moves,
        ..Default::default()
    };
    let mut w = publish_and_watch_with(&srv, name, fixture.media_source(), opts).await;
    let (old_answer, old_offer) = (
        w.session.answer_sdp().to_string(),
        w.session.offer_sdp().to_string(),
    );
    let old_etag = w.session.etag().expect("the 201 has an ETag").to_string();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let sent_before = w.session.stats().video_frames;

    let fragment = w
        .session
        .restart_ice()
        .await
        .expect("the ICE restart is accepted");
    let frag = SdpFrag::parse(&fragment).expect("the 200 carries an sdpfrag");
    let new_ufrag = frag.ice_ufrag.clone().expect("new ufrag");
    assert_ne!(
        new_ufrag,
        ice_ufrag(&old_answer),
        "the gateway's ufrag changes"
    );
    assert!(frag.ice_pwd.is_some());
    let new_etag = w.session.etag().expect("a new ETag").to_string();
    assert_ne!(new_etag, old_etag, "the ETag changes with the restart");
    // The gateway is reached where it was; the publisher now sends from elsewhere.
    let gateway_ports: Vec<u16> = candidates(&fragment).iter().map(|(_, p)| *p).collect();
    assert!(
        fragment.contains(" tcptype passive"),
        "the ICE-TCP candidate is offered again: {fragment}"
    );
    let old_gateway_ports: Vec<u16> = candidates(&old_answer).iter().map(|(_, p)| *p).collect();
    assert_eq!(gateway_ports, old_gateway_ports);
    let (old_ports, new_ports): (Vec<u16>, Vec<u16>) = (
        candidates(&old_offer).iter().map(|(_, p)| *p).collect(),
        candidates(w.session.offer_sdp())
            .iter()
            .map(|(_, p)| *p)
            .collect(),
    );
    // The publisher's ICE connects again: its new checks passed with the gateway's new
    // credentials.
    eventually(
        "the publisher to connect again after the restart",
        std::time::Duration::from_secs(10),
        || async { (w.session.times_connected() == 2).then_some(()) },
    )
    .await;
    // (webrtc-rs keeps listing the candidates of the sockets it closed.)
    let moved_to: Vec<u16> = new_ports
        .iter()
        .copied()
        .filter(|p| !old_ports.contains(p))
        .collect();
    if moves {
        assert!(
            !moved_to.is_empty(),
            "the publisher moved: {old_ports:?} -> {new_ports:?}"
        );
        // The gateway verified the new address and opened a socket for it on the shared port.
        eventually(
            "a gateway socket connected to the publisher's new port",
            std::time::Duration::from_secs(5),
            || async {
                moved_to
                    .iter()
                    .any(|p| connected_socket(gateway_ports[0], *p))
                    .then_some(())
            },
        )
        .await;
    } else {
        assert!(moved_to.is_empty(), "{old_ports:?} -> {new_ports:?}");
    }
    assert!(
        sent_before > 0 && sent_before < fixture.video_frames as u64,
        "the restart came mid-stream ({sent_before} frames sent before it)"
    );

    let sent = finish_publish(&srv, name, w.session, FIXTURE_SECONDS).await;
    let (hls, flv) = finish_viewers(w.hls, w.flv).await;
    srv.shutdown().await;

    assert_both_outputs_whole(&fixture, &sent, (&hls, &flv), name, FIXTURE_SECONDS);
}
