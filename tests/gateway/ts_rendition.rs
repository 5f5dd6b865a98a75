//! The MPEG-TS rendition (`ts.m3u8`) of a real publish (in-repo WHIP client, H.264 + Opus ->
//! AAC): ffmpeg reads it live to the end without a damaged picture, and the finished
//! rendition decodes frame-exact with AAC, segment for segment beside the fMP4 rendition.

use std::time::Duration;

use castgate::client::PublishOptions;

use super::live_read::ffmpeg_read_live;
use super::shared::{probe_audio, probe_video};
use super::support::{
    eventually, expected_video, finish_publish, fixture, init_tracing, output_dir, publish_live,
    require_media_tools, test_config, write, TestServer,
};

const FIXTURE_SECONDS: u32 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mpegts_rendition_reads_live_and_decodes_frame_exact_with_aac() {
    init_tracing();
    require_media_tools();
    let fixture = fixture(FIXTURE_SECONDS).await;
    let mut config = test_config();
    // Room for the whole publish in the window, so every frame is there to count.
    config.hls.window = 12;
    let srv = TestServer::start_with(config).await;
    let session = publish_live(
        &srv,
        "ts",
        fixture.media_source(),
        PublishOptions::default(),
    )
    .await;
    eventually("the first TS segment", Duration::from_secs(10), || async {
        (srv.get("/hls/ts/ts.m3u8").await.0 == 200).then_some(())
    })
    .await;
    let url = srv.url("/hls/ts/ts.m3u8");
    let limit = Duration::from_secs(u64::from(FIXTURE_SECONDS) + 40);
    let reader = tokio::spawn(async move { ffmpeg_read_live(&url, limit).await });
    let sent = finish_publish(&srv, "ts", session, FIXTURE_SECONDS).await;
    let read = reader.await.expect("ffmpeg task");

    // The stream ended; its renditions stay until the hub forgets it.
    let (status, ts_text) = srv.get("/hls/ts/ts.m3u8").await;
    assert_eq!(status, 200);
    let ts_text = String::from_utf8(ts_text.to_vec()).unwrap();
    let (_, fmp4_text) = srv.get("/hls/ts/index.m3u8").await;
    let ts = m3u8_rs::parse_media_playlist_res(ts_text.as_bytes()).expect("ts.m3u8 parses");
    let fmp4 = m3u8_rs::parse_media_playlist_res(&fmp4_text).expect("index.m3u8 parses");
    assert!(ts.end_list, "{ts_text}");
    assert_eq!(ts.version, Some(3));
    assert_eq!(ts.media_sequence, fmp4.media_sequence);
    let ts_durations: Vec<f32> = ts.segments.iter().map(|s| s.duration).collect();
    let fmp4_durations: Vec<f32> = fmp4.segments.iter().map(|s| s.duration).collect();
    assert_eq!(ts_durations, fmp4_durations, "the same cuts");

    let out = output_dir("ts_rendition");
    let mut parts = Vec::new();
    for seg in &ts.segments {
        let (status, body) = srv.get(&format!("/hls/ts/{}", seg.uri)).await;
        assert_eq!(status, 200, "{}", seg.uri);
        assert_eq!(body.len() % 188, 0, "{} is whole TS packets", seg.uri);
        parts.push(body);
    }
    srv.shutdown().await;
    let file = out.join("all.ts");
    let refs: Vec<&[u8]> = parts.iter().map(|b| &b[..]).collect();
    write(&file, &refs);

    std::fs::write(out.join("ffmpeg-live.log"), &read.stderr).unwrap();
    assert_eq!(
        read.status,
        Some(0),
        "ffmpeg reading ts.m3u8 live:\n{}",
        read.stderr
    );
    assert!(read.decode_errors.is_empty(), "{:?}", read.decode_errors);
    assert!(
        read.sizes.len() as u64 >= sent.video_frames / 2,
        "ffmpeg decoded {} frames live",
        read.sizes.len()
    );

    // The window of a 6 s publish holds all of it: every frame sent, and its audio.
    assert_eq!(
        ts.media_sequence, 0,
        "the window slid: the test would not see every frame"
    );
    let video = probe_video(&file);
    assert_eq!(video, expected_video(&fixture, sent.video_frames));
    let audio = probe_audio(&file);
    assert_eq!(audio.codec, "aac");
    assert!(
        (audio.seconds() - f64::from(FIXTURE_SECONDS)).abs() < 0.5,
        "{:.2} s of AAC for {FIXTURE_SECONDS} s sent",
        audio.seconds()
    );
}
