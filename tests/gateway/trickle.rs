//! WHIP PATCH (RFC 9725 §4.3) against the real gateway: every refusal (404, 415, 400, 428,
//! 412) changes nothing, and a trickled candidate is really used: the gateway's ICE agent
//! sends its connectivity checks to the address the PATCH named (a socket of this test, on
//! loopback), with the ufrags of the session. An ICE restart gets 200 with the gateway's new
//! credentials and a new ETag, and the candidates trickled after it are checked with the new
//! ufrags.

use std::time::Duration;

use tokio::net::UdpSocket;

use super::hostile::{offer, H264, OPUS};
use super::support::{http_client, init_tracing, TestServer};

const FRAG: &str = "application/trickle-ice-sdpfrag";
/// The ufrag of `hostile::offer`.
const OFFER_UFRAG: &str = "Xq3f";

/// The USERNAME of a STUN binding request, if `datagram` is one.
fn binding_request_username(datagram: &[u8]) -> Option<String> {
    if datagram.len() < 20
        || datagram[0..2] != [0x00, 0x01]
        || datagram[4..8] != [0x21, 0x12, 0xA4, 0x42]
    {
        return None;
    }
    let mut attrs = &datagram[20..];
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let value = attrs.get(4..4 + len)?;
        if kind == 0x0006 {
            return String::from_utf8(value.to_vec()).ok();
        }
        attrs = attrs.get(4 + len.div_ceil(4) * 4..)?;
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn trickled_candidates_are_checked_and_bad_patches_change_nothing() {
    init_tracing();
    let srv = TestServer::start().await;
    let http = http_client();
    let res = http
        .post(srv.url("/whip/trickle"))
        .header("content-type", "application/sdp")
        .body(offer(&[OPUS, H264]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = srv.url(res.headers()["location"].to_str().unwrap());
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let answer = res.text().await.unwrap();
    let our_ufrag = answer
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .expect("the answer has an ice-ufrag")
        .to_string();

    // The publisher's "candidate": a socket of this test.
    let publisher = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = publisher.local_addr().unwrap().port();
    let fragment = |ufrag: &str, pwd: &str, candidate: &str| {
        format!(
            "a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n{candidate}"
        )
    };
    let good = fragment(
        OFFER_UFRAG,
        "Wz8kPq2nLs9dVb4mTr7yHc1e",
        &format!("a=candidate:1 1 udp 2122260223 127.0.0.1 {port} typ host\r\n"),
    );
    let patch = |url: &str, content_type: &str, if_match: Option<&str>, body: String| {
        let mut req = http
            .patch(url)
            .header("content-type", content_type)
            .body(body);
        if let Some(tag) = if_match {
            req = req.header("if-match", tag);
        }
        req.send()
    };

    let unknown = location.rsplit_once('/').unwrap().0.to_string() + "/0000";
    for (what, url, content_type, if_match, body, want) in [
        (
            "unknown session",
            unknown.as_str(),
            FRAG,
            Some(etag.as_str()),
            good.clone(),
            404,
        ),
        (
            "wrong content type",
            location.as_str(),
            "application/sdp",
            Some(etag.as_str()),
            good.clone(),
            415,
        ),
        (
            "not a fragment",
            location.as_str(),
            FRAG,
            Some(etag.as_str()),
            "hello".to_string(),
            400,
        ),
        (
            "a bad candidate",
            location.as_str(),
            FRAG,
            Some(etag.as_str()),
            good.replace(&format!(" {port} typ"), " 70000 typ"),
            400,
        ),
        (
            "no If-Match",
            location.as_str(),
            FRAG,
            None,
            good.clone(),
            428,
        ),
        (
            "a stale ETag",
            location.as_str(),
            FRAG,
            Some("\"0000\""),
            good.clone(),
            412,
        ),
        (
            "a restart with half its credentials",
            location.as_str(),
            FRAG,
            Some("*"),
            "a=ice-ufrag:Nw1u\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n".to_string(),
            400,
        ),
    ] {
        let res = patch(url, content_type, if_match, body).await.unwrap();
        assert_eq!(
            res.status().as_u16(),
            want,
            "{what}: {:?}",
            res.text().await
        );
    }
    // None of those refused PATCHes gave the gateway an address: nothing reaches our socket.
    let mut buf = [0u8; 1500];
    let early =
        tokio::time::timeout(Duration::from_millis(700), publisher.recv_from(&mut buf)).await;
    assert!(early.is_err(), "a refused PATCH was applied: {early:?}");

    let res = patch(&location, FRAG, Some(&etag), good.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(
        res.headers().get("etag").is_none(),
        "a trickle PATCH changes no ETag"
    );
    assert!(res.bytes().await.unwrap().is_empty(), "204 has no body");

    // The gateway now checks that candidate: a binding request to us, from its media port,
    // naming the publisher's ufrag then its own (RFC 8445 §7.2.2).
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (n, from) = publisher.recv_from(&mut buf).await.unwrap();
            if binding_request_username(&buf[..n]).is_some() {
                return (n, from);
            }
        }
    })
    .await
    .expect("the gateway sends an ICE check to the trickled candidate");
    assert_eq!(
        binding_request_username(&buf[..n]).as_deref(),
        Some(format!("{OFFER_UFRAG}:{our_ufrag}").as_str())
    );
    let media_ports: Vec<u16> = super::support::candidates(&answer)
        .iter()
        .map(|(_, p)| *p)
        .collect();
    assert!(
        media_ports.contains(&from.port()),
        "check from {from}, candidates {media_ports:?}"
    );

    // An ICE restart (new credentials, RFC 9725 §4.3.2): 200 with the gateway's new
    // credentials and its candidates, and a new ETag; the old one is stale from then on.
    let res = patch(
        &location,
        FRAG,
        Some(&etag),
        fragment("Nw1u", "NewPasswordNewPassword12", ""),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], FRAG);
    let new_etag = res.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    let restart_body = res.text().await.unwrap();
    let restarted = castgate::ingest::sdpfrag::SdpFrag::parse(&restart_body)
        .expect("the 200 carries an sdpfrag");
    let new_ufrag = restarted.ice_ufrag.clone().expect("our new ufrag");
    assert_ne!(new_ufrag, our_ufrag);
    assert!(restarted.ice_pwd.is_some());
    let restart_ports: Vec<u16> = super::support::candidates(&restart_body)
        .iter()
        .map(|(_, p)| *p)
        .collect();
    assert_eq!(
        restart_ports, media_ports,
        "the gateway is reached where it was"
    );
    let res = patch(&location, FRAG, Some(&etag), good.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 412, "the ETag before the restart is stale");

    // The restart reached the gateway's ICE agent: a candidate trickled for the new ICE
    // session is checked with the new ufrags.
    let moved = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let moved_port = moved.local_addr().unwrap().port();
    let res = patch(
        &location,
        FRAG,
        Some(&new_etag),
        fragment(
            "Nw1u",
            "NewPasswordNewPassword12",
            &format!("a=candidate:2 1 udp 2122260223 127.0.0.1 {moved_port} typ host\r\n"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 204);
    let username = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (n, _) = moved.recv_from(&mut buf).await.unwrap();
            if let Some(u) = binding_request_username(&buf[..n]) {
                return u;
            }
        }
    })
    .await
    .expect("the gateway checks the candidate of the new ICE session");
    assert_eq!(username, format!("Nw1u:{new_ufrag}"));

    let res = http.delete(&location).send().await.unwrap();
    assert_eq!(res.status(), 200);
    srv.shutdown().await;
}
