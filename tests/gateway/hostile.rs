//! Requests a careless or hostile client might send, none needing media: every one must get
//! the right 4xx, and the gateway must still be healthy afterwards.

use super::support::{init_tracing, raw_request, TestServer};

/// One `m=` section of a hand-written offer.
pub(super) struct Section {
    kind: &'static str,
    payload_type: u8,
    rtpmap: &'static str,
    fmtp: Option<&'static str>,
}

pub(super) const OPUS: Section = Section {
    kind: "audio",
    payload_type: 111,
    rtpmap: "opus/48000/2",
    fmtp: Some("minptime=10;useinbandfec=1"),
};
/// Opus from a browser asked for stereo (`sprop-stereo=1`: it will send stereo).
pub(super) const OPUS_STEREO: Section = Section {
    kind: "audio",
    payload_type: 111,
    rtpmap: "opus/48000/2",
    fmtp: Some("minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1"),
};
pub(super) const H264: Section = Section {
    kind: "video",
    payload_type: 102,
    rtpmap: "H264/90000",
    fmtp: Some("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
};
const PCMU: Section = Section {
    kind: "audio",
    payload_type: 0,
    rtpmap: "PCMU/8000",
    fmtp: None,
};
const VP8: Section = Section {
    kind: "video",
    payload_type: 96,
    rtpmap: "VP8/90000",
    fmtp: None,
};

/// A syntactically valid browser-style WHIP offer (BUNDLE, rtcp-mux, sendonly, DTLS
/// fingerprint) with the given sections and no candidates.
pub(super) fn offer(sections: &[Section]) -> String {
    let fingerprint = (0..32)
        .map(|i| format!("{:02X}", (i * 7 + 3) % 256))
        .collect::<Vec<_>>()
        .join(":");
    let mids: Vec<String> = (0..sections.len()).map(|i| i.to_string()).collect();
    let mut sdp = format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE {}\r\na=msid-semantic: WMS castgate\r\n",
        mids.join(" ")
    );
    for (mid, s) in sections.iter().enumerate() {
        let pt = s.payload_type;
        sdp.push_str(&format!(
            "m={} 9 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:Xq3f\r\na=ice-pwd:Wz8kPq2nLs9dVb4mTr7yHc1e\r\na=ice-options:trickle\r\n\
             a=fingerprint:sha-256 {fingerprint}\r\na=setup:actpass\r\na=mid:{mid}\r\n\
             a=sendonly\r\na=msid:castgate t{mid}\r\na=rtcp-mux\r\na=rtpmap:{pt} {}\r\n",
            s.kind, s.rtpmap
        ));
        if let Some(fmtp) = s.fmtp {
            sdp.push_str(&format!("a=fmtp:{pt} {fmtp}\r\n"));
        }
        sdp.push_str(&format!("a=ssrc:{} cname:castgate\r\n", 1000 + mid));
    }
    sdp
}

/// What a request should get: an exact list of acceptable statuses, or any 4xx.
enum Expect {
    OneOf(&'static [u16]),
    Any4xx,
}

struct Case {
    what: &'static str,
    method: &'static str,
    target: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    expect: Expect,
}

fn case(what: &'static str, method: &'static str, target: &str, expect: Expect) -> Case {
    Case {
        what,
        method,
        target: target.to_string(),
        content_type: None,
        body: Vec::new(),
        expect,
    }
}

fn post_sdp(what: &'static str, target: &str, body: String, expect: Expect) -> Case {
    Case {
        content_type: Some("application/sdp"),
        body: body.into_bytes(),
        ..case(what, "POST", target, expect)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_4xx_and_the_gateway_stays_healthy() {
    init_tracing();
    let srv = TestServer::start().await;
    let good = offer(&[OPUS, H264]);
    let long_name = "a".repeat(65);

    let cases = vec![
        Case {
            content_type: Some("text/plain"),
            body: good.clone().into_bytes(),
            ..case(
                "offer sent as text/plain",
                "POST",
                "/whip/h1",
                Expect::OneOf(&[415]),
            )
        },
        case(
            "offer without a content type",
            "POST",
            "/whip/h1",
            Expect::OneOf(&[415, 400]),
        ),
        post_sdp(
            "malformed SDP",
            "/whip/h1",
            "this is not a session description\r\n".into(),
            Expect::OneOf(&[400]),
        ),
        post_sdp(
            "audio-only offer without Opus (PCMU)",
            "/whip/h1",
            offer(&[PCMU]),
            Expect::OneOf(&[406, 422]),
        ),
        post_sdp(
            "VP8 instead of H.264",
            "/whip/h1",
            offer(&[OPUS, VP8]),
            Expect::OneOf(&[406, 422]),
        ),
        post_sdp(
            "offer over 64 KiB",
            "/whip/h1",
            format!("{good}{}", "a=x-padding:".repeat(64 * 1024 / 12 + 1)),
            Expect::OneOf(&[413]),
        ),
        post_sdp(
            "stream name with a space",
            "/whip/bad%20name",
            good.clone(),
            Expect::OneOf(&[400, 404]),
        ),
        post_sdp(
            "stream name of 65 characters",
            &format!("/whip/{long_name}"),
            good.clone(),
            Expect::OneOf(&[400, 404]),
        ),
        post_sdp(
            "stream name `..`",
            "/whip/..",
            good.clone(),
            Expect::OneOf(&[400, 404]),
        ),
        post_sdp(
            "stream name `..` percent-encoded",
            "/whip/%2E%2E",
            good.clone(),
            Expect::OneOf(&[400, 404]),
        ),
        case(
            "DELETE of an unknown session",
            "DELETE",
            "/whip/h1/0123456789abcdef0123456789abcdef",
            Expect::OneOf(&[404]),
        ),
        case(
            "playlist of an unknown stream",
            "GET",
            "/hls/nosuch/index.m3u8",
            Expect::OneOf(&[404]),
        ),
        case(
            "FLV of an unknown stream",
            "GET",
            "/flv/nosuch.flv",
            Expect::OneOf(&[404]),
        ),
        case(
            "HLS path escape with encoded slashes",
            "GET",
            "/hls/x/..%2F..%2Fetc%2Fpasswd",
            Expect::Any4xx,
        ),
        case(
            "HLS path escape with raw dot segments",
            "GET",
            "/hls/../../etc/passwd",
            Expect::Any4xx,
        ),
        case(
            "HLS path escape with encoded dots",
            "GET",
            "/hls/x/%2e%2e/%2e%2e/etc/passwd",
            Expect::Any4xx,
        ),
        case(
            "HLS file name with a NUL",
            "GET",
            "/hls/x/index.m3u8%00.txt",
            Expect::Any4xx,
        ),
        case(
            "FLV path escape",
            "GET",
            "/flv/..%2F..%2Fetc%2Fpasswd.flv",
            Expect::Any4xx,
        ),
    ];

    let mut failures = Vec::new();
    for c in &cases {
        let mut headers = Vec::new();
        if let Some(ct) = c.content_type {
            headers.push(("Content-Type", ct));
        }
        let response = raw_request(srv.addr, c.method, &c.target, &headers, &c.body).await;
        let ok = match c.expect {
            Expect::OneOf(list) => list.contains(&response.status),
            Expect::Any4xx => (400..500).contains(&response.status),
        };
        if !ok {
            let wanted = match c.expect {
                Expect::OneOf(list) => format!("{list:?}"),
                Expect::Any4xx => "4xx".to_string(),
            };
            failures.push(format!(
                "{}: {} {} -> {} (wanted {wanted}); response head: {}",
                c.what,
                c.method,
                c.target,
                response.status,
                response.head.replace("\r\n", " | ")
            ));
        }
    }

    let health = raw_request(srv.addr, "GET", "/healthz", &[], &[]).await;
    if health.status != 200 {
        failures.push(format!(
            "after the hostile requests, /healthz -> {}",
            health.status
        ));
    }
    srv.shutdown().await;
    assert!(
        failures.is_empty(),
        "unexpected answers:\n{}",
        failures.join("\n")
    );
}
