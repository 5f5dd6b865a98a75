//! The whole path: ffmpeg fixture -> WHIP publisher (webrtc-rs) -> castgate -> HLS (fMP4) and
//! HTTP-FLV viewers -> ffprobe. Every frame sent must come out of both, decodable.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use castgate::client::{generate_fixture, publish, ClientError, PublishOptions};
use reqwest::Url;

use super::support::{
    assert_loopback_candidates, eventually, fixture_dir, http_client, init_tracing, output_dir,
    probe_video, require_media_tools, video_key_frames, TestServer, VideoProbe,
};

const FIXTURE_SECONDS: u32 = 6;
/// Upper bound for anything the viewers wait on; the test must never hang.
const VIEWER_DEADLINE: Duration = Duration::from_secs(60);

/// What an HLS client polling the live playlist collected.
#[derive(Debug, Default)]
struct HlsCapture {
    /// The last playlist text seen.
    playlist: String,
    init: Option<Bytes>,
    /// Media sequence number and bytes of every segment fetched, in order.
    segments: Vec<(u64, String, Bytes)>,
    /// Things that went wrong while polling (non-200s, gaps, deadline).
    problems: Vec<String>,
}

/// Polls the playlist every 200 ms, fetching the init segment once and every new media
/// segment, until `#EXT-X-ENDLIST` appears or the deadline passes.
async fn capture_hls(http: reqwest::Client, playlist_url: String) -> HlsCapture {
    let mut cap = HlsCapture::default();
    let base = Url::parse(&playlist_url).expect("playlist URL");
    let deadline = tokio::time::Instant::now() + VIEWER_DEADLINE;
    let mut next_seq: Option<u64> = None;
    loop {
        if tokio::time::Instant::now() > deadline {
            cap.problems
                .push("no #EXT-X-ENDLIST before the deadline".into());
            return cap;
        }
        let (status, body) = fetch(&http, base.as_str()).await;
        if status != 200 {
            // Before the first segment is cut the playlist may not exist yet.
            if next_seq.is_some() {
                cap.problems.push(format!("playlist answered {status}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        cap.playlist = String::from_utf8_lossy(&body).into_owned();
        let playlist = match m3u8_rs::parse_media_playlist_res(&body) {
            Ok(p) => p,
            Err(e) => {
                cap.problems
                    .push(format!("unparsable playlist ({e:?}): {}", cap.playlist));
                return cap;
            }
        };
        for (i, segment) in playlist.segments.iter().enumerate() {
            let seq = playlist.media_sequence + i as u64;
            if cap.init.is_none() {
                if let Some(map) = &segment.map {
                    let url = base.join(&map.uri).expect("init URI");
                    let (status, bytes) = fetch(&http, url.as_str()).await;
                    if status == 200 {
                        cap.init = Some(bytes);
                    } else {
                        cap.problems
                            .push(format!("init {} answered {status}", map.uri));
                    }
                }
            }
            if next_seq.is_some_and(|n| seq < n) {
                continue;
            }
            if let Some(n) = next_seq.filter(|&n| seq > n) {
                cap.problems
                    .push(format!("segments {n}..{seq} were never seen"));
            }
            let url = base.join(&segment.uri).expect("segment URI");
            let (status, bytes) = fetch(&http, url.as_str()).await;
            if status == 200 {
                cap.segments.push((seq, segment.uri.clone(), bytes));
            } else {
                cap.problems
                    .push(format!("segment {} answered {status}", segment.uri));
            }
            next_seq = Some(seq + 1);
        }
        if playlist.end_list {
            return cap;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> (u16, Bytes) {
    match http.get(url).timeout(Duration::from_secs(10)).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.bytes().await.unwrap_or_default())
        }
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// What an HTTP-FLV viewer received.
#[derive(Debug, Default)]
struct FlvCapture {
    status: u16,
    content_type: String,
    bytes: Vec<u8>,
    /// The server ended the response (as it should when the stream ends).
    ended: bool,
    error: Option<String>,
}

async fn capture_flv(http: reqwest::Client, url: String) -> FlvCapture {
    let mut cap = FlvCapture::default();
    let read = async {
        let mut response = match http.get(&url).send().await {
            Ok(r) => r,
            Err(e) => {
                cap.error = Some(e.to_string());
                return;
            }
        };
        cap.status = response.status().as_u16();
        cap.content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => cap.bytes.extend_from_slice(&chunk),
                Ok(None) => {
                    cap.ended = true;
                    return;
                }
                Err(e) => {
                    cap.error = Some(e.to_string());
                    return;
                }
            }
        }
    };
    if tokio::time::timeout(VIEWER_DEADLINE, read).await.is_err() {
        cap.error = Some("response still open at the deadline".into());
    }
    cap
}

fn write(path: &Path, parts: &[&[u8]]) {
    let data: Vec<u8> = parts.concat();
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whip_publish_is_seen_frame_exact_by_hls_and_flv_viewers() {
    init_tracing();
    require_media_tools();
    let fixture = tokio::task::spawn_blocking(|| generate_fixture(&fixture_dir(), FIXTURE_SECONDS))
        .await
        .expect("fixture task")
        .expect("generate fixture with ffmpeg");
    assert!(
        fixture.video_keyframes >= FIXTURE_SECONDS as usize,
        "{fixture:?}"
    );

    let srv = TestServer::start().await;
    let opts = PublishOptions {
        http: Some(http_client()),
        ..PublishOptions::default()
    };
    let mut session = publish(
        &srv.url("/whip/e2e"),
        None,
        fixture.media_source(),
        opts.clone(),
    )
    .await
    .expect("WHIP publish is accepted");
    assert!(
        session.location().starts_with(&srv.url("/whip/e2e/")),
        "Location {} is not under /whip/e2e/",
        session.location()
    );
    assert_loopback_candidates("publisher offer", session.offer_sdp());
    assert_loopback_candidates("castgate answer", session.answer_sdp());
    session
        .wait_connected(Duration::from_secs(10))
        .await
        .expect("ICE + DTLS connect over loopback");

    eventually(
        "stream e2e to be live in /api/streams",
        Duration::from_secs(10),
        || async { srv.stream_state("e2e").await.filter(|s| s == "live") },
    )
    .await;
    // Viewers join straight away, inside the first GOP (1 s), so the FLV GOP cache starts
    // them at frame 0 and the HLS window still holds the first segment.
    let flv = tokio::spawn(capture_flv(srv.http.clone(), srv.url("/flv/e2e.flv")));
    let hls = tokio::spawn(capture_hls(
        srv.http.clone(),
        srv.url("/hls/e2e/index.m3u8"),
    ));

    // RFC 9725: one publisher per stream; a second one while the first is live is a conflict.
    match publish(&srv.url("/whip/e2e"), None, fixture.media_source(), opts).await {
        Err(ClientError::Status { status: 409, .. }) => {}
        Err(e) => panic!("second publisher to a live stream: expected 409, got {e}"),
        Ok(s) => {
            let location = s.location().to_string();
            let _ = s.stop().await;
            panic!("second publisher to a live stream was accepted at {location}; expected 409");
        }
    }

    let limit = Duration::from_secs(u64::from(FIXTURE_SECONDS) + 20);
    let sent = tokio::time::timeout(limit, session.finished())
        .await
        .expect("publisher finishes the fixture in real time")
        .expect("publisher sends without error");
    assert_eq!(sent.video_frames, fixture.video_frames as u64);
    assert_eq!(sent.audio_packets, fixture.audio_packets as u64);
    // Let the last packets clear the gateway's reorder buffer before ending the session.
    tokio::time::sleep(Duration::from_millis(500)).await;
    session
        .stop()
        .await
        .expect("DELETE of the WHIP session succeeds");

    eventually(
        "stream e2e to leave /api/streams",
        Duration::from_secs(10),
        || async { srv.stream_state("e2e").await.is_none().then_some(()) },
    )
    .await;
    let hls = tokio::time::timeout(VIEWER_DEADLINE, hls)
        .await
        .expect("HLS poller finishes")
        .expect("HLS poller task");
    let flv = tokio::time::timeout(VIEWER_DEADLINE, flv)
        .await
        .expect("FLV viewer finishes")
        .expect("FLV viewer task");
    srv.shutdown().await;

    let out = output_dir("e2e");
    let expected = VideoProbe {
        codec: "h264".into(),
        width: u64::from(fixture.width),
        height: u64::from(fixture.height),
        frames: sent.video_frames,
    };

    // HLS: a finished, well-formed playlist and a complete, decodable set of segments.
    assert!(hls.problems.is_empty(), "HLS problems: {:?}", hls.problems);
    assert!(
        hls.playlist.trim_end().ends_with("#EXT-X-ENDLIST"),
        "final playlist does not end with #EXT-X-ENDLIST:\n{}",
        hls.playlist
    );
    let playlist = m3u8_rs::parse_media_playlist_res(hls.playlist.as_bytes())
        .unwrap_or_else(|e| panic!("final playlist does not parse ({e:?}):\n{}", hls.playlist));
    assert!(playlist.end_list);
    for segment in &playlist.segments {
        // RFC 8216 §4.3.3.1: every EXTINF, rounded, is at most the target duration.
        assert!(
            (segment.duration.round() as u64) <= playlist.target_duration,
            "EXTINF {} exceeds EXT-X-TARGETDURATION {}",
            segment.duration,
            playlist.target_duration
        );
    }
    let init = hls
        .init
        .clone()
        .expect("playlist names an init segment (EXT-X-MAP)");
    assert!(
        hls.segments.len() >= (FIXTURE_SECONDS as usize) / 2,
        "only {} HLS segments for {FIXTURE_SECONDS} s of 1 s segments",
        hls.segments.len()
    );
    let mut whole: Vec<&[u8]> = vec![&init[..]];
    for (seq, uri, bytes) in &hls.segments {
        whole.push(&bytes[..]);
        let file = out.join(format!("segment-{seq}.mp4"));
        write(&file, &[&init[..], &bytes[..]]);
        let keys = video_key_frames(&file);
        assert_eq!(
            keys.first(),
            Some(&true),
            "HLS segment {seq} ({uri}) does not start with a keyframe: {}",
            file.display()
        );
    }
    let hls_file = out.join("hls-all.mp4");
    write(&hls_file, &whole);
    assert_eq!(
        probe_video(&hls_file),
        expected,
        "HLS init + segments ({})",
        hls_file.display()
    );

    // HTTP-FLV: one long response from the first keyframe to the end of the stream.
    assert_eq!(
        flv.status, 200,
        "FLV viewer status (error: {:?})",
        flv.error
    );
    assert!(
        flv.bytes.starts_with(b"FLV\x01"),
        "FLV response does not start with an FLV header"
    );
    let flv_file = out.join("viewer.flv");
    write(&flv_file, &[&flv.bytes]);
    assert!(
        flv.ended,
        "FLV response was not ended by the server after the stream ended ({:?}); {} bytes in {}",
        flv.error,
        flv.bytes.len(),
        flv_file.display()
    );
    assert_eq!(
        probe_video(&flv_file),
        expected,
        "HTTP-FLV capture ({})",
        flv_file.display()
    );
}
