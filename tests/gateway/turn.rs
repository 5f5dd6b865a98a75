//! Publishing through a TURN relay: a real coturn (Debian's `turnserver`, started here on
//! 127.0.0.1 with its own configuration) relays a publisher whose direct path is not allowed
//! (ICE transport policy "relay"). The publisher learns the server from the gateway's `Link`
//! headers on `OPTIONS` (RFC 9725 §4.6). The media must really take the relay, and both outputs
//! must carry every frame.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use castgate::client::PublishOptions;

use super::support::{
    candidates, eventually, expected_video, finish_publish, finish_viewers, fixture, init_tracing,
    output_dir, probe_audio, probe_video, publish_and_watch_with, require_media_tools, test_config,
    write, write_hls_file, TestServer,
};

const FIXTURE_SECONDS: u32 = 4;
/// How many relay ports coturn may hand out (`min-port`..=`max-port`).
const RELAY_PORTS: u16 = 16;
const TURN_USER: &str = "castgate-test";
const TURN_PASSWORD: &str = "relay-me";

/// The installed coturn server, if any.
fn find_turnserver() -> Option<PathBuf> {
    ["/usr/bin/turnserver", "/usr/sbin/turnserver"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// coturn, stopped when dropped.
struct Coturn {
    child: Child,
    /// Where clients reach it (UDP).
    addr: SocketAddr,
    /// The relay ports it may allocate.
    relay_ports: std::ops::RangeInclusive<u16>,
    log: PathBuf,
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP port nothing on loopback uses right now.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free loopback UDP port")
}

/// `RELAY_PORTS` consecutive UDP ports that are free on loopback now.
fn free_udp_range() -> u16 {
    for _ in 0..50 {
        let first = free_udp_port();
        if first > u16::MAX - RELAY_PORTS {
            continue;
        }
        let all_free =
            (first..first + RELAY_PORTS).all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return first;
        }
    }
    panic!("no run of {RELAY_PORTS} free loopback UDP ports found");
}

/// Starts coturn on 127.0.0.1 only: listening and relay address loopback, long-term
/// credentials, no TLS/DTLS listeners, no CLI, loopback peers allowed (the gateway is one).
fn start_coturn(dir: &Path) -> Coturn {
    let binary = find_turnserver().unwrap_or_else(|| {
        panic!(
            "coturn's `turnserver` is not installed (scripts/test.sh installs Debian's coturn \
             package: apt-get install coturn)"
        )
    });
    let port = free_udp_port();
    let first = free_udp_range();
    let last = first + RELAY_PORTS - 1;
    let log = dir.join("turnserver.log");
    let conf = format!(
        "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nlistening-port={port}\n\
         min-port={first}\nmax-port={last}\nrealm=castgate.test\nlt-cred-mech\n\
         user={TURN_USER}:{TURN_PASSWORD}\nfingerprint\nallow-loopback-peers\nno-tls\nno-dtls\n\
         no-tcp-relay\nno-cli\nno-multicast-peers\nno-software-attribute\n\
         userdb={db}\npidfile={pid}\nlog-file={log}\nsimple-log\nverbose\n",
        db = dir.join("turndb").display(),
        pid = dir.join("turnserver.pid").display(),
        log = log.display(),
    );
    let conf_path = dir.join("turnserver.conf");
    std::fs::write(&conf_path, conf).expect("write turnserver.conf");
    let child = Command::new(&binary)
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
    let coturn = Coturn {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        relay_ports: first..=last,
        log,
    };
    wait_until_listening(&coturn);
    coturn
}

/// Waits (bounded) until coturn answers a STUN Binding request on its port.
fn wait_until_listening(coturn: &Coturn) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a probe socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("set a read timeout");
    // RFC 8489 §5: Binding request, no attributes, magic cookie, a fixed transaction id.
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(b"castgatewait");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        let _ = socket.send_to(&request, coturn.addr);
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            if n >= 20 && buf[0..2] == [0x01, 0x01] && buf[8..20] == request[8..20] {
                return;
            }
        }
    }
    let log = std::fs::read_to_string(&coturn.log).unwrap_or_default();
    panic!(
        "coturn did not answer STUN on {} within 10 s; its log:\n{log}",
        coturn.addr
    );
}

/// The remote addresses of the UDP sockets bound to local `port` and connected somewhere, from
/// /proc/net/udp: the gateway opens one such socket per publisher address it has verified.
fn connected_peers_of(port: u16) -> Vec<SocketAddr> {
    let table = std::fs::read_to_string("/proc/net/udp").expect("read /proc/net/udp");
    let parse = |field: &str| -> Option<SocketAddr> {
        let (ip, port) = field.split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        let port = u16::from_str_radix(port, 16).ok()?;
        // /proc shows the address as the host-order u32 of the network-order bytes.
        Some(SocketAddr::from((ip.to_le_bytes(), port)))
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let local = parse(fields.next()?)?;
            let remote = parse(fields.next()?)?;
            (local.port() == port && remote.port() != 0).then_some(remote)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publisher_without_a_direct_path_is_relayed_by_coturn_frame_exact() {
    init_tracing();
    require_media_tools();
    // Before the fixture is made: fail at once without coturn.
    let dir = output_dir("turn");
    let coturn = start_coturn(&dir);
    eprintln!(
        "coturn on {} (relay ports {:?}), log {}",
        coturn.addr,
        coturn.relay_ports,
        coturn.log.display()
    );
    let fixture = fixture(FIXTURE_SECONDS).await;

    // The gateway advertises the TURN server; the publisher is told nothing else.
    let mut config = test_config();
    config.webrtc.ice_servers = vec![castgate::config::IceServer {
        urls: vec![format!("turn:{}?transport=udp", coturn.addr)],
        username: Some(TURN_USER.into()),
        credential: Some(TURN_PASSWORD.into()),
    }];
    let srv = TestServer::start_with(config).await;
    let opts = PublishOptions {
        discover_ice_servers: true,
        relay_only: true,
        ..PublishOptions::default()
    };
    let watched = publish_and_watch_with(&srv, "relayed", fixture.media_source(), opts).await;
    let session = &watched.session;

    // The offer holds relay candidates only, each on coturn's relay address.
    let offered: Vec<&str> = session
        .offer_sdp()
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(!offered.is_empty(), "no candidate in the offer");
    for c in &offered {
        let fields: Vec<&str> = c.split_whitespace().collect();
        let port: u16 = fields[5].parse().expect("candidate port");
        assert!(
            fields[4] == "127.0.0.1" && fields[7] == "relay" && coturn.relay_ports.contains(&port),
            "the offer has a candidate that is not one of coturn's relay addresses: {c}"
        );
    }
    // The publisher sends on a relay candidate...
    let pair = session
        .selected_candidate_pair()
        .await
        .expect("the publisher has a selected candidate pair");
    assert_eq!(pair.local.kind, "relay", "selected pair {pair:?}");
    assert!(
        coturn.relay_ports.contains(&pair.local.port),
        "selected local candidate {pair:?} is not on coturn's relay ports {:?}",
        coturn.relay_ports
    );
    // ...and the gateway sees the publisher at coturn's relay address and nowhere else.
    let media_port = candidates(session.answer_sdp())[0].1;
    let peers = eventually(
        "the gateway to verify the publisher's address",
        Duration::from_secs(5),
        || async {
            let peers = connected_peers_of(media_port);
            (!peers.is_empty()).then_some(peers)
        },
    )
    .await;
    for peer in &peers {
        assert!(
            peer.ip().is_loopback() && coturn.relay_ports.contains(&peer.port()),
            "the gateway talks to {peer}, not to coturn's relay ports {:?} (all: {peers:?})",
            coturn.relay_ports
        );
    }

    let sent = finish_publish(&srv, "relayed", watched.session, FIXTURE_SECONDS).await;
    assert_eq!(sent.video_frames, fixture.video_frames as u64);
    let (hls, flv) = finish_viewers(watched.hls, watched.flv).await;
    srv.shutdown().await;
    // coturn's side of it: our user's allocation and the gateway's permission were granted.
    let log = std::fs::read_to_string(&coturn.log).expect("read coturn's log");
    for what in [
        "ALLOCATE processed, success",
        "CREATE_PERMISSION processed, success",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("user <{TURN_USER}>")) && l.contains(what)),
            "coturn's log has no `{what}` for {TURN_USER}: {}",
            coturn.log.display()
        );
    }
    drop(coturn);

    let expected = expected_video(&fixture, sent.video_frames);
    let hls_file = write_hls_file(&hls, &dir);
    assert_eq!(
        probe_video(&hls_file),
        expected,
        "HLS {}",
        hls_file.display()
    );
    assert_eq!(flv.status, 200, "FLV status (error: {:?})", flv.error);
    let flv_file = dir.join("viewer.flv");
    write(&flv_file, &[&flv.bytes]);
    assert!(flv.ended, "FLV response not ended ({:?})", flv.error);
    assert_eq!(
        probe_video(&flv_file),
        expected,
        "FLV {}",
        flv_file.display()
    );
    let audio = probe_audio(&flv_file);
    assert_eq!(audio.codec, "aac", "FLV audio {}", flv_file.display());
    assert!(
        (audio.seconds() - f64::from(FIXTURE_SECONDS)).abs() < 0.5,
        "FLV audio lasts {:.2} s of {FIXTURE_SECONDS} s",
        audio.seconds()
    );
}
