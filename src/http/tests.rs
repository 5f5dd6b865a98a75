//! The router driven without a socket (`app().oneshot`): content types, caching, gzip, CORS and
//! the JSON API, on a stream fed with synthetic H.264 frames.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use bytes::Bytes;
use tower::ServiceExt;

use super::{app, AppState};
use crate::config::Config;
use crate::hub::{Hub, Stream, StreamSettings};
use crate::ingest::Ingest;
use crate::media::h264::ParameterSets;
use crate::media::{Codec, Frame};

/// x264 constrained-baseline 640x360.
pub(super) const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01,
    0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2e, 0x48,
];
pub(super) const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

pub(super) fn state() -> AppState {
    state_with(false)
}

fn state_with(hls_opus_passthrough: bool) -> AppState {
    state_with_window(hls_opus_passthrough, 6)
}

/// A state whose streams cut 1 s segments, 200 ms parts, and list `window` segments.
pub(super) fn state_with_window(hls_opus_passthrough: bool, window: usize) -> AppState {
    let config = Arc::new(Config::default());
    let hub = Arc::new(Hub::new(StreamSettings {
        segment_target: Duration::from_secs(1),
        hls_window: window,
        hls_part_target: Some(Duration::from_millis(200)),
        hls_mpegts: true,
        flv_queue: 64,
        flv_merge_ms: 0,
        flv_merge_from_viewers: 0,
        hls_opus_passthrough,
    }));
    AppState {
        ingest: Ingest::new(config.clone(), hub.clone()),
        config,
        hub,
    }
}

/// An AVCC access unit of one NAL unit.
pub(super) fn frame(i: i64, keyframe: bool) -> Frame {
    let nal: &[u8] = if keyframe {
        &[0x65, 0x88, 0x84, 0x00, 0x33]
    } else {
        &[0x41, 0x9a, 0x02, 0x04]
    };
    let mut data = (nal.len() as u32).to_be_bytes().to_vec();
    data.extend_from_slice(nal);
    Frame {
        codec: Codec::H264,
        pts: i * 3000,
        dts: i * 3000,
        keyframe,
        data: Bytes::from(data),
    }
}

/// A live stream "cam" with 3 s of 30 fps video, a keyframe every second.
pub(super) fn live_stream(state: &AppState) -> Arc<Stream> {
    let stream = state.hub.claim("cam").unwrap();
    stream.set_video_params(
        ParameterSets::new(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap(),
    );
    for i in 0..=90 {
        stream.push_video(frame(i, i % 30 == 0));
    }
    stream
}

pub(super) async fn get(
    state: &AppState,
    uri: &str,
    headers: &[(&str, &str)],
) -> axum::response::Response {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    app(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

pub(super) fn header_of(res: &axum::response::Response, name: header::HeaderName) -> &str {
    res.headers()
        .get(&name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

#[tokio::test]
async fn playlist_is_no_cache_gzipped_on_request_and_open_to_other_origins() {
    let state = state();
    let _stream = live_stream(&state);
    let res = get(
        &state,
        "/hls/cam/index.m3u8",
        &[
            ("accept-encoding", "gzip"),
            ("origin", "https://player.example"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        header_of(&res, header::CONTENT_TYPE),
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(header_of(&res, header::CACHE_CONTROL), "no-cache");
    assert_eq!(header_of(&res, header::CONTENT_ENCODING), "gzip");
    assert_eq!(header_of(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), "*");
    let gz = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .unwrap();
    let (_, playlist) = m3u8_rs::parse_media_playlist(text.as_bytes()).unwrap();
    // Keyframes at 0, 1, 2 and 3 s close three 1 s segments.
    assert_eq!(playlist.segments.len(), 3, "{text}");

    // Without Accept-Encoding the same playlist comes plain.
    let res = get(&state, "/hls/cam/index.m3u8", &[]).await;
    assert_eq!(header_of(&res, header::CONTENT_ENCODING), "");
    let plain = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    assert_eq!(plain, text.as_bytes());
}

#[tokio::test]
async fn gzipped_playlist_is_sized_and_follows_each_new_segment() {
    let state = state();
    let stream = live_stream(&state);
    // One router for both requests, so they share its cache of gzipped playlists.
    let router = app(state.clone());
    let fetch = |router: axum::Router| async move {
        let req = Request::get("/hls/cam/index.m3u8")
            .header("accept-encoding", "br, gzip;q=0.8")
            .body(Body::empty())
            .unwrap();
        let res = router.oneshot(req).await.unwrap();
        assert_eq!(header_of(&res, header::CONTENT_ENCODING), "gzip");
        assert_eq!(header_of(&res, header::VARY), "accept-encoding");
        let length: usize = header_of(&res, header::CONTENT_LENGTH).parse().unwrap();
        let gz = to_bytes(res.into_body(), 1 << 20).await.unwrap();
        assert_eq!(gz.len(), length);
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .unwrap();
        m3u8_rs::parse_media_playlist(text.as_bytes())
            .unwrap()
            .1
            .segments
            .len()
    };
    assert_eq!(fetch(router.clone()).await, 3);
    // The keyframe at 4 s closes a fourth segment: the cached gzip of three must not be served.
    for i in 91..=120 {
        stream.push_video(frame(i, i % 30 == 0));
    }
    assert_eq!(fetch(router.clone()).await, 4);
    assert_eq!(stream.info().viewers.hls, 1, "gzip clients are counted too");
}

#[tokio::test]
async fn segments_are_immutable_and_never_gzipped() {
    let state = state();
    let _stream = live_stream(&state);
    let text = body(&state, "/hls/cam/index.m3u8").await;
    let (_, playlist) = m3u8_rs::parse_media_playlist(&text).unwrap();
    let init = playlist.segments[0].map.as_ref().unwrap().uri.clone();
    for (uri, content_type) in [
        (init.as_str(), "video/mp4"),
        (playlist.segments[0].uri.as_str(), "video/iso.segment"),
    ] {
        let res = get(
            &state,
            &format!("/hls/cam/{uri}"),
            &[("accept-encoding", "gzip")],
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{uri}");
        assert_eq!(header_of(&res, header::CONTENT_TYPE), content_type);
        assert!(header_of(&res, header::CACHE_CONTROL).contains("immutable"));
        assert_eq!(header_of(&res, header::CONTENT_ENCODING), "", "{uri}");
    }
    let res = get(&state, "/hls/cam/deadbeef-999.m4s", &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_lists_the_live_stream_with_its_video() {
    let state = state();
    let stream = live_stream(&state);
    let res = get(&state, "/api/streams", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let s = &json["streams"][0];
    assert_eq!(s["name"], "cam");
    assert_eq!(s["state"], "live");
    assert_eq!(s["video_codec"], "avc1.42c01e");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(s["frame_rate"].as_f64(), Some(30.0));
    assert!(s["video_bitrate"].as_u64().is_some_and(|b| b > 0));
    assert_eq!(s["viewers"]["flv"], 0);

    state.hub.release(&stream);
    let body = to_bytes(get(&state, "/api/streams", &[]).await.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(&body[..], br#"{"streams":[]}"#);
}

#[tokio::test]
async fn flv_starts_with_header_metadata_and_sequence_header() {
    let state = state();
    let stream = live_stream(&state);
    let res = get(&state, "/flv/cam.flv", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header_of(&res, header::CONTENT_TYPE), "video/x-flv");
    assert_eq!(stream.info().viewers.flv, 1);
    // End the stream so the long response finishes, then read all of it.
    state.hub.release(&stream);
    let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    let tags = crate::mux::flv::parse_tags(&body).unwrap();
    assert_eq!(tags[0].tag_type, crate::mux::flv::TAG_SCRIPT);
    assert_eq!(tags[1].tag_type, crate::mux::flv::TAG_VIDEO);
    assert_eq!(tags[1].body[..2], [0x17, 0x00], "AVC sequence header");
    // The GOP cache holds the last keyframe (frame 90) only.
    assert_eq!(tags.len(), 3);
    assert_eq!(tags[2].body[0], 0x17, "starts on a keyframe");
    assert_eq!(tags[2].timestamp_ms, 3000);
    assert_eq!(stream.info().viewers.flv, 0);
}

#[tokio::test]
async fn ended_stream_keeps_its_final_playlist_but_not_its_flv() {
    let state = state();
    let stream = live_stream(&state);
    state.hub.release(&stream);
    let res = get(&state, "/hls/cam/index.m3u8", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    assert!(text.ends_with(b"#EXT-X-ENDLIST\n"));
    let res = get(&state, "/flv/cam.flv", &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// A stream "cam" with video parameter sets and AAC declared (48 kHz stereo AAC-LC, as the
/// transcoder announces it before its first frame), no media yet.
fn av_stream(state: &AppState) -> Arc<Stream> {
    let stream = state.hub.claim("cam").unwrap();
    stream.set_video_params(
        ParameterSets::new(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap(),
    );
    stream.set_aac_config(Bytes::from_static(&[0x11, 0x90]), 48_000, 2);
    stream
}

#[tokio::test]
async fn flv_and_hls_carry_aac_once_the_stream_has_it() {
    let state = state();
    let stream = av_stream(&state);
    let aac = |k: i64| Frame {
        codec: Codec::Aac,
        pts: k * 1920,
        dts: k * 1920,
        keyframe: true,
        data: Bytes::from(vec![0x21, k as u8, 0x00]),
    };
    // 3 s: video at 30 fps (3000 ticks), AAC every 1024 samples (1920 ticks), interleaved
    // by time as the two track tasks deliver them.
    let (mut v, mut a) = (0i64, 0i64);
    while v <= 91 {
        if a * 1920 < v * 3000 {
            stream.push_aac(aac(a));
            a += 1;
        } else {
            stream.push_video(frame(v, v % 30 == 0));
            v += 1;
        }
    }
    let res = get(&state, "/flv/cam.flv", &[]).await;
    state.hub.release(&stream);
    let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    assert_eq!(body[4], 0x05, "FLV header flags: audio and video");
    let tags = crate::mux::flv::parse_tags(&body).unwrap();
    let kinds: Vec<(u8, u8)> = tags.iter().map(|t| (t.tag_type, t.body[0])).collect();
    // Metadata, AVC sequence header, then the cached GOP from the keyframe at 3 s, with the
    // AAC sequence header just before its first audio frame, stamped with that frame's time.
    assert_eq!(
        kinds[..5],
        [(18, 2), (9, 0x17), (9, 0x17), (8, 0xaf), (8, 0xaf)]
    );
    assert_eq!(tags[3].body[1], 0, "AACPacketType 0: AudioSpecificConfig");
    assert_eq!(tags[3].body[2..], [0x11, 0x90]);
    assert_eq!(tags[3].timestamp_ms, tags[4].timestamp_ms);
    assert_eq!(tags[4].body[1], 1, "AACPacketType 1: raw");

    let (init, _) = first_init(&state).await;
    assert!(
        contains(&init, b"avc1") && contains(&init, b"mp4a") && contains(&init, b"esds"),
        "init has both tracks"
    );
}

#[tokio::test]
async fn flv_viewer_is_written_each_video_frame_with_the_audio_before_it() {
    use futures_util::{FutureExt, StreamExt};
    let state = state();
    let stream = av_stream(&state);
    stream.push_video(frame(0, true));
    let res = get(&state, "/flv/cam.flv", &[]).await;
    let mut chunks = res.into_body().into_data_stream();
    // The prelude ends with the cached keyframe.
    let mut prelude = Vec::new();
    let has_keyframe = |bytes: &[u8]| {
        crate::mux::flv::parse_tags(bytes)
            .is_ok_and(|tags| tags.iter().any(|t| t.body[..2] == [0x17, 1]))
    };
    while !has_keyframe(&prelude) {
        prelude.extend_from_slice(&chunks.next().await.unwrap().unwrap());
    }
    // Two AAC frames, then a video frame: the viewer is woken once, for all three, and first
    // handed the AAC sequence header it was owed, stamped with the first frame's time.
    stream.push_aac(audio_frame(Codec::Aac, 0, 1920));
    stream.push_aac(audio_frame(Codec::Aac, 1, 1920));
    stream.push_video(frame(1, false));
    let header = chunks.next().await.unwrap().unwrap();
    let header = crate::mux::flv::parse_tag_stream(&header).unwrap();
    assert_eq!(
        header
            .iter()
            .map(|t| (t.tag_type, t.body[1], t.timestamp_ms))
            .collect::<Vec<_>>(),
        vec![(8, 0, 0)]
    );
    let chunk = chunks
        .next()
        .now_or_never()
        .expect("ready at the same wake-up")
        .unwrap()
        .unwrap();
    let tags = crate::mux::flv::parse_tag_stream(&chunk).unwrap();
    let kinds: Vec<(u8, u32)> = tags.iter().map(|t| (t.tag_type, t.timestamp_ms)).collect();
    // AAC frames of 1920 ticks (21.3 ms), video at 30 fps.
    assert_eq!(kinds, vec![(8, 0), (8, 21), (9, 33)]);
    state.hub.release(&stream);
}

/// A frame of `codec` at `k` steps of `step` ticks.
fn audio_frame(codec: Codec, k: i64, step: i64) -> Frame {
    Frame {
        codec,
        pts: k * step,
        dts: k * step,
        keyframe: true,
        data: Bytes::from(vec![0x21, k as u8, 0x00]),
    }
}

async fn body(state: &AppState, uri: &str) -> Bytes {
    let res = get(state, uri, &[]).await;
    assert_eq!(res.status(), StatusCode::OK, "{uri}");
    to_bytes(res.into_body(), 1 << 22).await.unwrap()
}

/// The first init segment the playlist names, and the playlist.
async fn first_init(state: &AppState) -> (Bytes, m3u8_rs::MediaPlaylist) {
    let text = body(state, "/hls/cam/index.m3u8").await;
    let (_, playlist) = m3u8_rs::parse_media_playlist(&text).unwrap();
    let uri = playlist.segments[0].map.as_ref().unwrap().uri.clone();
    (body(state, &format!("/hls/cam/{uri}")).await, playlist)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn audio_only_stream_goes_live_on_audio_in_both_outputs() {
    let state = state();
    let stream = state.hub.claim("cam").unwrap();
    stream.set_audio_only();
    stream.set_aac_config(Bytes::from_static(&[0x11, 0x88]), 48_000, 1);
    assert_eq!(stream.state(), crate::hub::StreamState::Starting);
    // 3 s of AAC frames (1024 samples = 1920 ticks).
    for k in 0..=141 {
        stream.push_aac(audio_frame(Codec::Aac, k, 1920));
    }
    assert_eq!(stream.state(), crate::hub::StreamState::Live);
    let (init, playlist) = first_init(&state).await;
    assert!(playlist.segments.len() >= 2, "segments cut on audio alone");
    assert!(contains(&init, b"mp4a") && !contains(&init, b"avc1"));

    let res = get(&state, "/flv/cam.flv", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    stream.push_aac(audio_frame(Codec::Aac, 142, 1920));
    state.hub.release(&stream);
    let flv = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    assert_eq!(flv[4], 0x04, "FLV header flags: audio only");
    let tags = crate::mux::flv::parse_tags(&flv).unwrap();
    let kinds: Vec<(u8, u8)> = tags.iter().map(|t| (t.tag_type, t.body[1])).collect();
    // Metadata, AAC sequence header, then the live AAC frame.
    assert_eq!(kinds[1..], [(8, 0), (8, 1)]);
}

#[tokio::test]
async fn opus_passes_through_to_hls_while_flv_gets_aac() {
    let state = state_with(true);
    let stream = av_stream(&state);
    let (mut v, mut a) = (0i64, 0i64);
    while v <= 91 {
        // Opus every 20 ms (1800 ticks), and its AAC transcode alongside.
        if a * 1800 < v * 3000 {
            stream.push_opus(audio_frame(Codec::Opus, a, 1800));
            stream.push_aac(audio_frame(Codec::Aac, a * 1800 / 1920, 1920));
            a += 1;
        } else {
            stream.push_video(frame(v, v % 30 == 0));
            v += 1;
        }
    }
    let (init, _) = first_init(&state).await;
    assert!(
        contains(&init, b"Opus") && contains(&init, b"dOps"),
        "Opus in HLS"
    );
    assert!(!contains(&init, b"mp4a"), "no AAC in HLS");
    let res = get(&state, "/flv/cam.flv", &[]).await;
    state.hub.release(&stream);
    let flv = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    let tags = crate::mux::flv::parse_tags(&flv).unwrap();
    assert!(
        tags.iter().any(|t| t.tag_type == 8 && t.body[0] == 0xaf),
        "FLV carries AAC"
    );
}

#[tokio::test]
async fn publish_token_guards_whip_but_not_viewing() {
    let mut state = state();
    let mut config = Config::default();
    config.http.publish_token = Some("s3cret".into());
    state.config = Arc::new(config);
    let send = |method: &str, uri: &str, auth: Option<&str>| {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            // Not SDP: a request that gets past the token check is then refused with 415.
            .header("content-type", "text/plain");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        app(state.clone()).oneshot(req.body(Body::from("x")).unwrap())
    };
    let res = send("POST", "/whip/cam", None).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header_of(&res, header::WWW_AUTHENTICATE),
        "Bearer realm=\"castgate\""
    );
    for wrong in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret"] {
        let res = send("POST", "/whip/cam", Some(wrong)).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{wrong}");
    }
    let res = send("POST", "/whip/cam", Some("Bearer s3cret"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let res = send("DELETE", "/whip/cam/abc", None).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = send("DELETE", "/whip/cam/abc", Some("bearer s3cret"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Viewing needs no token.
    let res = get(&state, "/api/streams", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// RFC 9725 §4.6: OPTIONS on the endpoint advertises the configured ICE servers, before the
/// client makes its offer; with a publish token, only to a request that carries it.
#[tokio::test]
async fn whip_options_advertises_ice_servers_to_publishers_only() {
    let mut state = state();
    let mut config = Config::default();
    config.webrtc.ice_servers = vec![crate::config::IceServer {
        urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
        username: Some("pub".into()),
        credential: Some("pw".into()),
    }];
    state.config = Arc::new(config.clone());
    let options = |state: &AppState, auth: Option<&str>| {
        let mut req = Request::builder().method("OPTIONS").uri("/whip/cam");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        app(state.clone()).oneshot(req.body(Body::empty()).unwrap())
    };
    let links = |res: &axum::response::Response| -> Vec<String> {
        res.headers()
            .get_all(header::LINK)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    };
    let expected = crate::http::ice_server_links(&config.webrtc.ice_servers);
    let res = options(&state, None).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        header_of(&res, header::HeaderName::from_static("accept-post")),
        "application/sdp"
    );
    assert_eq!(links(&res), expected);

    config.http.publish_token = Some("s3cret".into());
    state.config = Arc::new(config);
    let res = options(&state, None).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        links(&res),
        Vec::<String>::new(),
        "no token, no credentials"
    );
    let res = options(&state, Some("Bearer s3cret")).await.unwrap();
    assert_eq!(links(&res), expected);
    // Other paths never get them.
    let req = Request::builder()
        .method("OPTIONS")
        .uri("/api/streams")
        .body(Body::empty())
        .unwrap();
    let res = app(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(links(&res), Vec::<String>::new());
}
