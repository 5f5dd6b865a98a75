//! A publisher that changes resolution mid-stream (as Chromium does while its encoder ramps up
//! or backs off), watched live by `ffmpeg -i .../index.m3u8` from before the change to the
//! end. libavformat's HLS demuxer keeps the first init segment's avcC, so the new size only
//! decodes because every fMP4 keyframe carries its SPS and PPS in-band (issue 18, part 3).

use std::time::Duration;

use super::live_read::ffmpeg_read_live;
use super::support::{
    eventually, finish_publish, finish_viewers, fixture, fixture_sized, init_tracing, output_dir,
    publish_and_watch, require_media_tools, TestServer, Watched,
};

/// The first size plays long enough for ffmpeg to be reading before the change even on a
/// loaded machine (1 s segments: the playlist appears after about a second).
const FIRST_SECONDS: u32 = 6;
const SECOND_SECONDS: u32 = 4;
const SECOND_SIZE: (u32, u32) = (960, 540);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ffmpeg_reading_live_hls_decodes_a_resolution_change_without_errors() {
    init_tracing();
    require_media_tools();
    let first = fixture(FIRST_SECONDS).await;
    let second = fixture_sized(SECOND_SECONDS, SECOND_SIZE).await;
    assert_eq!((second.width, second.height), SECOND_SIZE);
    let source = first
        .media_source()
        .followed_by(&second.media_source())
        .expect("both fixtures are 30 fps with audio");

    let srv = TestServer::start().await;
    let name = "resize";
    let Watched { session, flv, hls } = publish_and_watch(&srv, name, source).await;
    let playlist_path = format!("/hls/{name}/index.m3u8");
    let playlist = eventually("the first HLS segment", Duration::from_secs(10), || async {
        let (status, body) = srv.get(&playlist_path).await;
        (status == 200).then(|| String::from_utf8_lossy(&body).into_owned())
    })
    .await;
    assert!(
        !playlist.contains("DISCONTINUITY"),
        "the resolution changed before ffmpeg could start (machine too slow?):\n{playlist}"
    );
    let total = FIRST_SECONDS + SECOND_SECONDS;
    let url = srv.url(&playlist_path);
    let limit = Duration::from_secs(u64::from(total) + 40);
    let reader = tokio::spawn(async move { ffmpeg_read_live(&url, limit).await });

    let sent = finish_publish(&srv, name, session, total).await;
    assert_eq!(
        sent.video_frames,
        (first.video_frames + second.video_frames) as u64
    );
    let read = reader.await.expect("ffmpeg task");
    assert_eq!(read.status, Some(0), "ffmpeg failed:\n{}", read.stderr);
    let (hls, _flv) = finish_viewers(hls, flv).await;
    srv.shutdown().await;
    let log = output_dir("resolution-change").join("ffmpeg.log");
    std::fs::write(&log, &read.stderr).expect("write ffmpeg log");

    // The gateway saw the change: a new init segment behind a discontinuity.
    assert!(
        hls.playlist.contains("DISCONTINUITY") && hls.playlist.matches("EXT-X-MAP").count() >= 2,
        "no switch to a new init in the final playlist:\n{}",
        hls.playlist
    );
    assert!(
        read.decode_errors.is_empty(),
        "ffmpeg reported {} damaged-picture lines reading across the change ({}):\n{}",
        read.decode_errors.len(),
        log.display(),
        read.decode_errors.join("\n")
    );
    if !read.errors.is_empty() {
        println!(
            "NOTICE: ffmpeg logged other errors:\n{}",
            read.errors.join("\n")
        );
    }
    let small = (first.width, first.height);
    let of_size = |size| read.sizes.iter().filter(|s| **s == size).count();
    let fps = first.fps as usize;
    // ffmpeg joins about a second in and reads to the end: most of each part.
    assert!(
        of_size(small) >= fps * (FIRST_SECONDS as usize - 3),
        "{} frames of {small:?} decoded ({})",
        of_size(small),
        log.display()
    );
    assert!(
        of_size(SECOND_SIZE) >= fps * (SECOND_SECONDS as usize - 1),
        "{} frames of {SECOND_SIZE:?} decoded ({})",
        of_size(SECOND_SIZE),
        log.display()
    );
    assert_eq!(
        of_size(small) + of_size(SECOND_SIZE),
        read.sizes.len(),
        "frames of other sizes ({})",
        log.display()
    );
    let runs = read.size_runs();
    assert!(
        runs.len() == 2 && (runs[1].0, runs[1].1) == SECOND_SIZE,
        "the sizes do not switch once, from {small:?} to {SECOND_SIZE:?}: {runs:?} ({})",
        log.display()
    );
}
