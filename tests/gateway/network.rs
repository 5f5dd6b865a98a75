//! Settings for real networks, checked on the SDP answer and headers: the media UDP port range
//! (and its ports coming back when publishes end), public IPs advertised for 1:1 NAT, and
//! STUN/TURN servers advertised in `Link` headers.
//!
//! The offers here carry no candidates, so the gateway never sends a packet anywhere: the
//! documentation address it advertises (203.0.113.7, TEST-NET-3) is only written, never used.

use std::net::UdpSocket;

use castgate::config::IceServer;

use super::hostile::{offer, Section, H264, OPUS, OPUS_STEREO};
use super::support::{candidates, http_client, init_tracing, test_config, TestServer};

/// A free block of `n` consecutive UDP ports on 127.0.0.1 (probed by binding each).
fn free_port_block(n: u16) -> u16 {
    'search: for first in (42_000u16..60_000).step_by(97) {
        for p in first..first + n {
            if UdpSocket::bind(("127.0.0.1", p)).is_err() {
                continue 'search;
            }
        }
        return first;
    }
    panic!("no free block of {n} UDP ports on 127.0.0.1");
}

/// POSTs a WHIP offer with these sections for stream `name`; it must be accepted (201).
async fn post_offer(srv: &TestServer, name: &str, sections: &[Section]) -> reqwest::Response {
    let res = http_client()
        .post(srv.url(&format!("/whip/{name}")))
        .header("content-type", "application/sdp")
        .body(offer(sections))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{name}");
    res
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_use_the_port_range_public_ip_and_advertise_ice_servers() {
    init_tracing();
    let first = free_port_block(3);
    let mut config = test_config();
    config.webrtc.udp_port_range = Some([first, first + 2]);
    config.webrtc.public_ips = vec!["203.0.113.7".parse().unwrap()];
    config.webrtc.ice_servers = vec![IceServer {
        urls: vec!["turn:turn.example.net:3478?transport=udp".into()],
        username: Some("u1".into()),
        credential: Some("s3cret".into()),
    }];
    let srv = TestServer::start_with(config).await;

    let mut ports = Vec::new();
    for name in ["net-a", "net-b"] {
        let res = post_offer(&srv, name, &[OPUS, H264]).await;
        let link = res
            .headers()
            .get("link")
            .expect("Link header")
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(
            link,
            "<turn:turn.example.net:3478?transport=udp>; rel=\"ice-server\"; username=\"u1\"; credential=\"s3cret\"; credential-type=\"password\""
        );
        let location = res.headers()["location"].to_str().unwrap().to_string();
        let answer = res.text().await.unwrap();
        assert!(
            answer.contains("a=recvonly"),
            "answer is not recvonly:\n{answer}"
        );
        let cands = candidates(&answer);
        assert!(!cands.is_empty(), "no candidates:\n{answer}");
        for (addr, port) in &cands {
            assert_eq!(addr, "203.0.113.7", "the public IP replaces the local one");
            assert!(
                (first..=first + 2).contains(port),
                "port {port} outside {first}..={}",
                first + 2
            );
        }
        ports.push(cands[0].1);
        // The stream stays claimed until DELETE: keep both open so their ports must differ.
        assert!(location.starts_with(&format!("/whip/{name}/")));
    }
    assert_ne!(ports[0], ports[1], "two live publishers share a port");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn audio_only_offer_is_answered_and_the_stream_is_declared() {
    init_tracing();
    let srv = TestServer::start().await;
    let res = post_offer(&srv, "radio", &[OPUS]).await;
    let answer = res.text().await.unwrap();
    assert!(
        answer.contains("m=audio") && !answer.contains("m=video"),
        "{answer}"
    );
    assert!(answer.contains("opus/48000/2"), "{answer}");
    // Claimed, waiting for its first audio frame; no video is expected of it.
    assert_eq!(srv.stream_state("radio").await.as_deref(), Some("starting"));
    srv.shutdown().await;
}

/// The `a=fmtp` line of payload type 111 (Opus) in an SDP.
fn opus_fmtp(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=fmtp:111 "))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn stereo_is_asked_back_only_from_a_stereo_publisher() {
    init_tracing();
    let srv = TestServer::start().await;
    for (name, section, stereo) in [("mic", OPUS, false), ("music", OPUS_STEREO, true)] {
        let res = post_offer(&srv, name, &[section, H264]).await;
        let fmtp = opus_fmtp(&res.text().await.unwrap());
        // A browser sends stereo only when the answer has `stereo=1` (RFC 7587 section 7.1).
        assert_eq!(
            fmtp.split(';').any(|p| p == "stereo=1"),
            stereo,
            "{name}: {fmtp}"
        );
        assert!(fmtp.contains("useinbandfec=1"), "{name}: {fmtp}");
    }
    srv.shutdown().await;
}

/// A publisher that never connects holds its media port only until the idle timeout: with a
/// one-port range, a second publish meanwhile gets 503, and one after the timeout gets the port.
#[tokio::test(flavor = "multi_thread")]
async fn a_publish_that_never_connects_frees_its_port_at_the_idle_timeout() {
    init_tracing();
    let port = free_port_block(1);
    let mut config = test_config();
    config.webrtc.udp_port_range = Some([port, port]);
    config.stream.idle_timeout_secs = 1.0;
    let srv = TestServer::start_with(config).await;

    let first = post_offer(&srv, "ghost", &[H264, OPUS]).await;
    let sdp = first.text().await.unwrap();
    assert!(candidates(&sdp).iter().all(|(_, p)| *p == port), "{sdp}");

    let res = http_client()
        .post(srv.url("/whip/second"))
        .header("content-type", "application/sdp")
        .body(offer(&[H264, OPUS]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503, "the only port is taken");
    assert!(
        srv.stream_state("second").await.is_none(),
        "a refused publish leaves no stream behind"
    );

    super::support::eventually(
        "the silent publish to be ended",
        std::time::Duration::from_secs(5),
        || async { srv.stream_state("ghost").await.is_none().then_some(()) },
    )
    .await;
    // Its connection closes on its loop thread right after; the port is then free again.
    super::support::eventually(
        "the port to be free",
        std::time::Duration::from_secs(5),
        || async { UdpSocket::bind(("127.0.0.1", port)).ok().map(drop) },
    )
    .await;
    let again = post_offer(&srv, "third", &[H264, OPUS]).await;
    let sdp = again.text().await.unwrap();
    assert!(candidates(&sdp).iter().all(|(_, p)| *p == port), "{sdp}");
    srv.shutdown().await;
}
