//! Every publisher on one UDP port (`[webrtc] udp_port`): ten publish at once, all answers name
//! the same port, each gets a socket of its own on it once its address is verified, and every
//! stream's FLV viewer decodes every frame its publisher sent, with its audio as AAC. A second
//! gateway on the same port is refused at start with a clear message.

use std::net::UdpSocket;

use futures_util::future::join_all;

use super::support::{
    candidates, expected_video, finish_publish, finish_viewers, fixture, init_tracing, output_dir,
    probe_audio, probe_video, publish_and_watch, require_media_tools, test_config, write,
    TestServer,
};

const PUBLISHERS: usize = 10;
const FIXTURE_SECONDS: u32 = 4;

/// UDP sockets of this host (in this network namespace) bound to local `port`, from
/// /proc/net/udp: the shared socket plus one per verified publisher address.
fn udp_sockets_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/udp").expect("read /proc/net/udp");
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|local| local.rsplit_once(':'))
        .filter(|(_, p)| u16::from_str_radix(p, 16).ok() == Some(port))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_publishers_share_one_udp_port_and_each_decodes_frame_exact() {
    init_tracing();
    require_media_tools();
    let fixture = fixture(FIXTURE_SECONDS).await;
    let srv = TestServer::start().await;
    let names: Vec<String> = (0..PUBLISHERS).map(|i| format!("shared-{i}")).collect();
    let watched = join_all(
        names
            .iter()
            .map(|name| publish_and_watch(&srv, name, fixture.media_source())),
    )
    .await;

    let mut ports = Vec::new();
    for (name, w) in names.iter().zip(&watched) {
        let cands = candidates(w.session.answer_sdp());
        assert!(!cands.is_empty(), "{name}: no candidates");
        ports.extend(cands.iter().map(|(_, p)| *p));
    }
    let port = ports[0];
    assert!(
        ports.iter().all(|p| *p == port),
        "the answers name more than one media port: {ports:?}"
    );
    // One shared socket and one connected socket per publisher (each publisher's client
    // sends from one address on loopback).
    assert_eq!(
        udp_sockets_on(port),
        1 + PUBLISHERS,
        "sockets on the shared port {port}"
    );

    let mut sent = Vec::new();
    let mut viewers = Vec::new();
    for (name, w) in names.iter().zip(watched) {
        sent.push(finish_publish(&srv, name, w.session, FIXTURE_SECONDS).await);
        viewers.push(finish_viewers(w.hls, w.flv).await.1);
    }
    srv.shutdown().await;
    assert_eq!(
        udp_sockets_on(port),
        0,
        "the publishers' sockets and the shared one are closed with the gateway"
    );

    let out = output_dir("shared-port");
    for ((name, sent), flv) in names.iter().zip(&sent).zip(&viewers) {
        assert_eq!(sent.video_frames, fixture.video_frames as u64, "{name}");
        assert_eq!(flv.status, 200, "{name}: FLV error {:?}", flv.error);
        let file = out.join(format!("{name}.flv"));
        write(&file, &[&flv.bytes]);
        assert_eq!(
            probe_video(&file),
            expected_video(&fixture, sent.video_frames),
            "{name} ({})",
            file.display()
        );
        let audio = probe_audio(&file);
        assert_eq!(audio.codec, "aac", "{name}: {audio:?}");
        assert!(
            audio.seconds() > f64::from(FIXTURE_SECONDS) - 1.0,
            "{name}: {audio:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_gateway_on_the_same_udp_port_is_refused_at_start() {
    init_tracing();
    let port = UdpSocket::bind(("127.0.0.1", 0))
        .and_then(|s| s.local_addr())
        .expect("probe a free UDP port")
        .port();
    let mut config = test_config();
    config.webrtc.udp_port = port;
    let first = TestServer::start_with(config.clone()).await;
    assert_eq!(
        udp_sockets_on(port),
        1,
        "the first gateway binds its port at start"
    );
    let Err(e) = castgate::server::start(config.clone()).await else {
        panic!("a second gateway started on UDP port {port}");
    };
    let message = e.to_string();
    assert!(
        message.contains(&format!("UDP port {port}")) && message.contains("another castgate"),
        "{message}"
    );
    first.shutdown().await;
    // Once the first has stopped, the port is free again.
    let again = TestServer::start_with(config).await;
    again.shutdown().await;
}
