//! Low-Latency HLS over the router: blocking playlist reload (past, present, future, too far,
//! timeout), the preload-hinted part, delta updates, cache headers and the multivariant
//! playlist, on a stream fed with synthetic 30 fps H.264 (200 ms parts of six frames).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use super::tests::{frame, get, header_of, live_stream, state, state_with_window};
use super::{app, AppState};
use crate::hub::Stream;
use crate::mux::hls::strict::{parse_strict, StrictPlaylist};

async fn text(res: Response) -> String {
    let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

fn strict(text: &str) -> StrictPlaylist {
    let p = parse_strict(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(p.violations(), Vec::<String>::new(), "{text}");
    p
}

/// Starts a request on its own task and checks it is still waiting after the runtime had
/// every chance to answer it.
async fn spawn_waiting(state: &AppState, uri: &str) -> JoinHandle<Response> {
    let req = Request::get(uri).body(Body::empty()).unwrap();
    let router = app(state.clone());
    let handle = tokio::spawn(async move { router.oneshot(req).await.unwrap() });
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(
        !handle.is_finished(),
        "{uri} was answered before it could be"
    );
    handle
}

async fn answered(handle: JoinHandle<Response>) -> Response {
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("answered once the part exists")
        .unwrap()
}

/// Pushes frames `from..=to` (30 fps, a keyframe each second).
fn push(stream: &Arc<Stream>, from: i64, to: i64) {
    for i in from..=to {
        stream.push_video(frame(i, i % 30 == 0));
    }
}

// `live_stream` pushes frames 0..=90: segments 0-2 are complete, segment 3 has no part yet and
// the next part is number 15 (five per segment).

#[tokio::test]
async fn a_blocking_request_for_the_next_part_is_answered_when_it_completes() {
    let state = state();
    let stream = live_stream(&state);
    let waiting = spawn_waiting(&state, "/hls/cam/index.m3u8?_HLS_msn=3&_HLS_part=0").await;
    push(&stream, 91, 95);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !waiting.is_finished(),
        "five frames do not complete the part"
    );
    push(&stream, 96, 96);
    let res = answered(waiting).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header_of(&res, header::CACHE_CONTROL), "public, max-age=2");
    let p = strict(&text(res).await);
    let open = p.segments.last().unwrap();
    assert_eq!((open.msn, open.uri.as_deref()), (3, None));
    assert_eq!(open.parts.len(), 1);
    assert!(open.parts[0].uri.ends_with("-p15.m4s"));
    assert!(p.preload_hint.unwrap().ends_with("-p16.m4s"));
}

#[tokio::test]
async fn a_request_for_the_next_segment_waits_for_all_of_it() {
    let state = state();
    let stream = live_stream(&state);
    let waiting = spawn_waiting(&state, "/hls/cam/index.m3u8?_HLS_msn=3").await;
    push(&stream, 91, 119);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !waiting.is_finished(),
        "parts of segment 3 are not segment 3"
    );
    push(&stream, 120, 120);
    let p = strict(&text(answered(waiting).await).await);
    assert!(p.segments.iter().any(|s| s.msn == 3 && s.uri.is_some()));
}

#[tokio::test]
async fn the_past_and_present_are_answered_at_once() {
    let state = state();
    let _stream = live_stream(&state);
    for query in [
        "_HLS_msn=0",
        "_HLS_msn=2",
        "_HLS_msn=2&_HLS_part=4",
        "_HLS_msn=1&_HLS_part=9",
    ] {
        let res = get(&state, &format!("/hls/cam/index.m3u8?{query}"), &[]).await;
        assert_eq!(res.status(), StatusCode::OK, "{query}");
        assert_eq!(header_of(&res, header::CACHE_CONTROL), "public, max-age=2");
    }
    // Without directives: the live playlist, which changes with every part.
    let res = get(&state, "/hls/cam/index.m3u8", &[]).await;
    assert_eq!(header_of(&res, header::CACHE_CONTROL), "no-cache");
    let p = strict(&text(res).await);
    assert_eq!(p.server_control["CAN-BLOCK-RELOAD"], "YES");
}

#[tokio::test]
async fn requests_too_far_ahead_or_malformed_are_400() {
    let state = state();
    let _stream = live_stream(&state);
    for query in [
        "_HLS_msn=5",
        "_HLS_msn=3&_HLS_part=15",
        "_HLS_msn=4&_HLS_part=15",
        "_HLS_part=1",
        "_HLS_msn=x",
        "_HLS_msn=3&_HLS_msn=3",
        "_HLS_skip=maybe",
    ] {
        let res = get(&state, &format!("/hls/cam/index.m3u8?{query}"), &[]).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(!text(res).await.is_empty(), "a reason for {query}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_part_that_does_not_come_within_three_target_durations_is_503() {
    let state = state();
    let _stream = live_stream(&state);
    let started = tokio::time::Instant::now();
    let res = get(&state, "/hls/cam/index.m3u8?_HLS_msn=3&_HLS_part=0", &[]).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    // 1 s segments: EXT-X-TARGETDURATION 2, so 6 s.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(6) && waited < Duration::from_secs(7),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_stream_ending_answers_its_waiting_requests() {
    let state = state();
    let stream = live_stream(&state);
    let waiting = spawn_waiting(&state, "/hls/cam/index.m3u8?_HLS_msn=3&_HLS_part=2").await;
    stream.end();
    let p = strict(&text(answered(waiting).await).await);
    assert!(p.ended);
}

#[tokio::test]
async fn the_hinted_part_is_held_until_complete_then_served_whole_and_immutable() {
    let state = state();
    let stream = live_stream(&state);
    let playlist = strict(&text(get(&state, "/hls/cam/index.m3u8", &[]).await).await);
    let hint = playlist.preload_hint.expect("a preload hint");
    let waiting = spawn_waiting(&state, &format!("/hls/cam/{hint}")).await;
    push(&stream, 91, 96);
    let res = answered(waiting).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        header_of(&res, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header_of(&res, header::CONTENT_TYPE), "video/iso.segment");
    let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    assert_eq!(Some(body), stream.hls_file(&hint));
    // Far beyond the hint, and parts of another publish: 404 at once.
    let prefix = hint.split("-p").next().unwrap();
    for name in [format!("{prefix}-p99.m4s"), "zz-p16.m4s".to_string()] {
        let res = get(&state, &format!("/hls/cam/{name}"), &[]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{name}");
    }
}

#[tokio::test]
async fn skip_requests_get_the_delta_update() {
    // 20 segments of 1 s listed; CAN-SKIP-UNTIL is 12 s.
    let state = state_with_window(false, 20);
    let stream = state.hub.claim("cam").unwrap();
    stream.set_video_params(
        crate::media::h264::ParameterSets::new(
            bytes::Bytes::from_static(super::tests::SPS),
            bytes::Bytes::from_static(super::tests::PPS),
        )
        .unwrap(),
    );
    push(&stream, 0, 30 * 22);
    let full = strict(&text(get(&state, "/hls/cam/index.m3u8", &[]).await).await);
    let res = get(
        &state,
        "/hls/cam/index.m3u8?_HLS_skip=YES",
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(header_of(&res, header::CONTENT_ENCODING), "gzip");
    let gz = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    let mut delta = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut delta).unwrap();
    let delta = strict(&delta);
    assert!(delta.skipped_segments > 0);
    assert_eq!(
        delta.skipped_segments as usize + delta.segments.len(),
        full.segments.len()
    );
    // The full playlist, gzipped from the same cache, is still the full one.
    let res = get(
        &state,
        "/hls/cam/index.m3u8",
        &[("accept-encoding", "gzip")],
    )
    .await;
    let gz = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    let mut again = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut again).unwrap();
    assert_eq!(strict(&again).skipped_segments, 0);
}

#[tokio::test]
async fn the_multivariant_playlist_describes_the_rendition() {
    let state = state();
    let _stream = live_stream(&state);
    let res = get(&state, "/hls/cam/master.m3u8", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        header_of(&res, header::CONTENT_TYPE),
        "application/vnd.apple.mpegurl"
    );
    let body = text(res).await;
    let master = match m3u8_rs::parse_playlist_res(body.as_bytes()) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => m,
        other => panic!("{other:?}\n{body}"),
    };
    let v = &master.variants[0];
    assert_eq!(v.uri, "index.m3u8");
    assert_eq!(v.codecs.as_deref(), Some("avc1.42c01e"));
    let r = v.resolution.unwrap();
    assert_eq!((r.width, r.height), (640, 360));
    assert!(v.bandwidth > 0 && v.average_bandwidth.unwrap() <= v.bandwidth);
    // No stream yet: 404, not an empty list.
    let res = get(&state, "/hls/nope/master.m3u8", &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
