//! Audio/video sync, measured on decoded media. The sync fixture shows a white frame and starts
//! a 1 kHz tone burst at every whole second; ffmpeg decodes a file and we look for when each
//! flash is shown and each tone starts, both on the container's timeline (the timestamps a
//! player schedules by, never "each stream from its own zero"). First on the fixture itself,
//! which proves the analysis, then on castgate's HLS and HTTP-FLV output after a WHIP publish.

use std::path::{Path, PathBuf};
use std::process::Command;

use castgate::client::{generate_sync_fixture, Fixture};

#[path = "sync/analysis.rs"]
mod analysis;

pub use analysis::{audio_codec, describe, durations, flash_times, pair_up, tone_onsets};

use super::support::{
    finish_publish, finish_viewers, fixture_dir, init_tracing, output_dir, publish_and_watch,
    require_media_tools, test_config, write, TestServer, Watched,
};

/// Fixture length: flashes and bursts at t = 1 ..= 19 s.
const SECONDS: u32 = 20;
const FLASHES: usize = SECONDS as usize - 1;

fn run(cmd: &mut Command) {
    let output = cmd.output().expect("run ffmpeg");
    assert!(
        output.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The sync fixture muxed (stream copy) into `out` with exact timestamps: raw H.264 has none,
/// so frame N is stamped N/30 s; the Ogg carries Opus's own (pre-skip trimmed to start at 0).
fn muxed_fixture(out: &Path) -> Fixture {
    let fixture = generate_sync_fixture(&fixture_dir(), SECONDS).expect("generate sync fixture");
    let ticks = format!("setts=ts=N*{}:time_base=1/90000", 90_000 / fixture.fps);
    run(Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-framerate", &fixture.fps.to_string(), "-i"])
        .arg(&fixture.h264_path)
        .arg("-i")
        .arg(&fixture.ogg_path)
        .args(["-map", "0:v", "-map", "1:a", "-c", "copy", "-bsf:v", &ticks])
        .args(["-video_track_timescale", "90000"])
        .arg(out));
    fixture
}

#[test]
fn fixture_signal_is_aligned() {
    require_media_tools();
    let file = output_dir("sync-fixture").join("fixture.mp4");
    let fixture = muxed_fixture(&file);
    assert_eq!(fixture.video_frames, (SECONDS * fixture.fps) as usize);

    let flashes = flash_times(&file);
    let expected: Vec<f64> = (1..=FLASHES).map(|s| s as f64).collect();
    assert_eq!(flashes.len(), FLASHES, "flashes at {flashes:?}");
    for (got, want) in flashes.iter().zip(&expected) {
        assert!(
            (got - want).abs() < 0.001,
            "flash at {got} s, want {want} s"
        );
    }

    let onsets = tone_onsets(&file);
    let (offsets, problems) = pair_up(&flashes, &onsets, 0.010, FLASHES);
    assert!(problems.is_empty(), "{problems:#?}\nonsets: {onsets:?}");
    assert_eq!(onsets.len(), FLASHES, "onsets at {onsets:?}");
    eprintln!("sync fixture {}: {}", file.display(), describe(&offsets));

    assert_eq!(audio_codec(&file).as_deref(), Some("opus"));
    let (video, audio) = durations(&file);
    assert!(
        (video - f64::from(SECONDS)).abs() < 0.001 && (audio - f64::from(SECONDS)).abs() < 0.025,
        "fixture lasts {video} s (video) and {audio} s (audio), want {SECONDS} s"
    );
}

#[test]
fn analysis_reads_files_whose_paths_need_filtergraph_escaping() {
    require_media_tools();
    let dir = output_dir("sync-escaping");
    let plain = dir.join("fixture.mp4");
    muxed_fixture(&plain);
    let awkward = dir.join("it's a [test]; a=b, c:d \\ e.mp4");
    std::fs::copy(&plain, &awkward).expect("copy fixture");
    let onsets = tone_onsets(&awkward);
    assert_eq!(onsets.len(), FLASHES, "onsets at {onsets:?}");
    assert_eq!(onsets, tone_onsets(&plain));
}

/// Publishes the sync fixture and returns the HLS (init + all segments) and FLV captures as
/// files under `out`.
async fn publish_and_capture(fixture: &Fixture, out: &Path) -> (PathBuf, PathBuf) {
    let mut config = test_config();
    config.hls.segment_duration_secs = 2.0;
    let srv = TestServer::start_with(config).await;
    // Viewers join inside the first GOP, before the first flash (t = 1 s).
    let Watched { session, flv, hls } =
        publish_and_watch(&srv, "sync", fixture.media_source()).await;

    let sent = finish_publish(&srv, "sync", session, SECONDS).await;
    assert_eq!(sent.audio_packets, fixture.audio_packets as u64);
    let (hls, flv) = finish_viewers(hls, flv).await;
    srv.shutdown().await;

    assert!(hls.problems.is_empty(), "HLS problems: {:?}", hls.problems);
    let init = hls
        .init
        .expect("playlist names an init segment (EXT-X-MAP)");
    let mut parts: Vec<&[u8]> = vec![&init[..]];
    parts.extend(hls.segments.iter().map(|(_, _, bytes)| &bytes[..]));
    let hls_file = out.join("hls-all.mp4");
    write(&hls_file, &parts);

    assert_eq!(flv.status, 200, "FLV viewer (error: {:?})", flv.error);
    let flv_file = out.join("viewer.flv");
    write(&flv_file, &[&flv.bytes]);
    assert!(
        flv.ended,
        "FLV response not ended by the server ({:?}); {} bytes in {}",
        flv.error,
        flv.bytes.len(),
        flv_file.display()
    );
    (hls_file, flv_file)
}

/// Everything the acceptance criterion asks of one output file, as a list of failures.
fn sync_problems(what: &str, file: &Path) -> Vec<String> {
    let fail = |p: String| format!("{what} ({}): {p}", file.display());
    match audio_codec(file) {
        Some(codec) if codec == "aac" => {}
        Some(codec) => return vec![fail(format!("audio is {codec}, not AAC"))],
        None => return vec![fail("no audio stream".into())],
    }
    let mut problems = Vec::new();
    let (video, audio) = durations(file);
    if (video - audio).abs() > 0.100 {
        problems.push(fail(format!(
            "video lasts {video:.3} s but audio {audio:.3} s (more than 100 ms apart)"
        )));
    }
    let flashes = flash_times(file);
    let onsets = tone_onsets(file);
    let (offsets, pairing) = pair_up(&flashes, &onsets, 0.045, FLASHES - 1);
    problems.extend(pairing.into_iter().map(fail));
    eprintln!(
        "{what}: video {video:.3} s, audio {audio:.3} s; {}",
        describe(&offsets)
    );
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hls_and_flv_keep_audio_in_sync() {
    init_tracing();
    require_media_tools();
    let fixture = tokio::task::spawn_blocking(|| generate_sync_fixture(&fixture_dir(), SECONDS))
        .await
        .expect("fixture task")
        .expect("generate sync fixture with ffmpeg");
    let out = output_dir("sync");
    let (hls_file, flv_file) = publish_and_capture(&fixture, &out).await;

    // Both outputs are decoded at once (a few seconds of ffmpeg each).
    let hls = tokio::task::spawn_blocking(move || sync_problems("HLS", &hls_file));
    let flv = tokio::task::spawn_blocking(move || sync_problems("HTTP-FLV", &flv_file));
    let mut problems = hls.await.expect("HLS analysis");
    problems.extend(flv.await.expect("FLV analysis"));
    assert!(
        problems.is_empty(),
        "audio/video sync problems:\n{}",
        problems.join("\n")
    );
}
