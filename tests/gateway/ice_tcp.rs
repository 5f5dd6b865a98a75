//! ICE over TCP (RFC 6544, RFC 4571 framing) against the real gateway: a publisher that has no
//! UDP at all (its peer connection binds TCP sockets only, as behind a firewall that drops UDP)
//! connects to the passive TCP candidate of the answer, and both outputs hold every frame it
//! sent. Streams that name no connection are closed without harm to the publish.

use std::io::{Read, Write};
use std::time::Duration;

use super::support::{
    assert_both_outputs_whole, finish_publish, finish_viewers, fixture, init_tracing,
    publish_and_watch_with, require_media_tools, TestServer,
};
use castgate::client::PublishOptions;

const FIXTURE_SECONDS: u32 = 4;

/// The passive TCP candidates of an SDP: (address, port), each once (an offer without
/// rtcp-mux gets them for both components).
fn tcp_passive_candidates(sdp: &str) -> Vec<(String, u16)> {
    let mut found: Vec<(String, u16)> = sdp
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=candidate:"))
        .filter(|c| c.contains(" tcptype passive"))
        .filter_map(|c| {
            let f: Vec<&str> = c.split_whitespace().collect();
            (f.get(2)?.eq_ignore_ascii_case("tcp")).then_some(())?;
            Some((f.get(4)?.to_string(), f.get(5)?.parse().ok()?))
        })
        .collect();
    found.dedup();
    found
}

/// Established TCP connections of this host whose local port is `port` (/proc/net/tcp, state
/// 01 = ESTABLISHED).
fn established_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 3 && f[3] == "01")
        .filter(|f| {
            f[1].rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_without_udp_connects_over_ice_tcp_and_decodes_frame_exact() {
    init_tracing();
    require_media_tools();
    let fixture = fixture(FIXTURE_SECONDS).await;
    let srv = TestServer::start().await;

    // Strangers on the TCP port first: one sends garbage, one a frame that is no ICE check,
    // one says nothing. None of them may reach a connection or stop the port.
    let answer_probe = srv
        .http
        .post(srv.url("/whip/probe"))
        .header("content-type", "application/sdp")
        .body(super::hostile::offer(&[
            super::hostile::OPUS,
            super::hostile::H264,
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer_probe.status(), 201);
    let probe_location = srv.url(answer_probe.headers()["location"].to_str().unwrap());
    let probe_answer = answer_probe.text().await.unwrap();
    let tcp = tcp_passive_candidates(&probe_answer);
    assert_eq!(tcp.len(), 1, "one passive TCP candidate: {probe_answer}");
    let (ip, port) = tcp[0].clone();
    let target = format!("{ip}:{port}");
    let mut garbage = std::net::TcpStream::connect(&target).unwrap();
    garbage.write_all(&[0xff; 70_000]).unwrap();
    let mut not_a_check = std::net::TcpStream::connect(&target).unwrap();
    not_a_check.write_all(&[0, 4, 0x80, 0x60, 0, 1]).unwrap();
    let _silent = std::net::TcpStream::connect(&target).unwrap();
    for (what, mut s) in [("garbage", garbage), ("not an ICE check", not_a_check)] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 16];
        let got = s.read(&mut b);
        assert!(
            matches!(got, Ok(0)) || got.is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock),
            "{what}: the gateway closes the stream"
        );
    }
    srv.http.delete(&probe_location).send().await.unwrap();

    let opts = PublishOptions {
        udp_addrs: Vec::new(),
        tcp_addrs: vec!["127.0.0.1:0".to_string()],
        ..Default::default()
    };
    let w = publish_and_watch_with(&srv, "over-tcp", fixture.media_source(), opts).await;
    let answer = w.session.answer_sdp().to_string();
    assert_eq!(tcp_passive_candidates(&answer), vec![(ip.clone(), port)]);
    assert!(
        !w.session.offer_sdp().contains(" udp "),
        "the publisher offers no UDP candidate: {}",
        w.session.offer_sdp()
    );
    // Its media comes over one TCP connection to the gateway's ICE-TCP port (the silent
    // stranger's connection is the other one until it times out).
    assert!(established_on(port) >= 1);

    let sent = finish_publish(&srv, "over-tcp", w.session, FIXTURE_SECONDS).await;
    let (hls, flv) = finish_viewers(w.hls, w.flv).await;
    srv.shutdown().await;

    assert_both_outputs_whole(&fixture, &sent, (&hls, &flv), "over-tcp", FIXTURE_SECONDS);
}
