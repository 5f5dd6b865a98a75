//! Garbage on a publisher's media port — random bytes, RTP headers on nonsense, SRTP whose
//! authentication fails, STUN for an unknown user, DTLS-looking records, all from a stranger's
//! address — is dropped by the media loop: the publish goes on, both viewers get every frame,
//! and the gateway takes a new publish afterwards.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

use super::support::{
    candidates, expected_video, finish_publish, finish_viewers, fixture, init_tracing, output_dir,
    probe_video, publish_and_watch, require_media_tools, write, write_hls_file, TestServer,
    Watched,
};

const FIXTURE_SECONDS: u32 = 4;

/// One datagram of each kind of junk, `round` varying the bytes.
fn junk(round: u32, rng: &mut impl Rng) -> Vec<Vec<u8>> {
    let mut random = vec![0u8; rng.random_range(1..1400)];
    rng.fill(&mut random[..]);
    // RTP version 2, a payload type castgate answered, a sequence near the real one's range.
    let mut rtp = vec![
        0x80,
        102,
        (round >> 8) as u8,
        round as u8,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
    ];
    rtp.extend((0..200).map(|_| rng.random::<u8>()));
    // RTCP sender report header with a length that overruns the datagram.
    let rtcp = vec![0x80, 200, 0xff, 0xff, 0, 0, 0, 1];
    // STUN binding request (magic cookie) for a user the gateway never issued.
    let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
    stun.extend((0..12).map(|_| rng.random::<u8>()));
    stun.extend([0x00, 0x06, 0x00, 0x08]);
    stun.extend(b"nobody:x");
    // A DTLS 1.2 handshake record header with a random body.
    let mut dtls = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x40];
    dtls.extend((0..64).map(|_| rng.random::<u8>()));
    vec![random, rtp, rtcp, stun, dtls, Vec::new(), vec![0x80]]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_datagrams_at_the_media_port_do_not_disturb_the_publish() {
    init_tracing();
    require_media_tools();
    let fixture = fixture(FIXTURE_SECONDS).await;
    let srv = TestServer::start().await;
    let Watched { session, flv, hls } =
        publish_and_watch(&srv, "junk", fixture.media_source()).await;
    let targets: Vec<SocketAddr> = candidates(session.answer_sdp())
        .into_iter()
        .map(|(ip, port)| SocketAddr::new(ip.parse().expect("candidate address"), port))
        .collect();
    assert!(
        !targets.is_empty(),
        "no host candidate in the answer:\n{}",
        session.answer_sdp()
    );

    // ~700 junk datagrams a second at every candidate while the fixture plays.
    let spray = tokio::task::spawn_blocking(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
        let mut rng = rand::rng();
        let (start, mut round, mut sent) = (Instant::now(), 0u32, 0u64);
        while start.elapsed() < Duration::from_secs(u64::from(FIXTURE_SECONDS) - 1) {
            for datagram in junk(round, &mut rng) {
                for target in &targets {
                    if socket.send_to(&datagram, target).is_ok() {
                        sent += 1;
                    }
                }
            }
            round += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        sent
    });
    let sent = finish_publish(&srv, "junk", session, FIXTURE_SECONDS).await;
    let junk_sent = spray.await.expect("junk sender");
    assert!(junk_sent > 1000, "only {junk_sent} junk datagrams went out");
    let (hls, flv) = finish_viewers(hls, flv).await;

    // The gateway still takes a publish after all that.
    let Watched {
        session: again,
        flv: flv2,
        hls: hls2,
    } = publish_and_watch(&srv, "after-junk", fixture.media_source()).await;
    let _ = again.stop().await;
    let _ = finish_viewers(hls2, flv2).await;
    srv.shutdown().await;

    let out = output_dir("datagrams");
    let expected = expected_video(&fixture, sent.video_frames);
    let flv_file = out.join("viewer.flv");
    write(&flv_file, &[&flv.bytes]);
    assert_eq!(flv.status, 200, "FLV viewer (error: {:?})", flv.error);
    assert_eq!(
        probe_video(&flv_file),
        expected,
        "HTTP-FLV under junk ({})",
        flv_file.display()
    );
    let hls_file = write_hls_file(&hls, &out);
    assert_eq!(
        probe_video(&hls_file),
        expected,
        "HLS under junk ({})",
        hls_file.display()
    );
}
