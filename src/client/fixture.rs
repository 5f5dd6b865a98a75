//! Test media made with ffmpeg: browser-like H.264 (constrained baseline, no B-frames, a
//! keyframe every second) in Annex B and 20 ms Opus frames in Ogg, cached by parameters.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::ClientError;
use super::source::MediaSource;

pub const FIXTURE_WIDTH: u32 = 640;
pub const FIXTURE_HEIGHT: u32 = 360;
pub const FIXTURE_FPS: u32 = 30;

/// Bumped whenever the ffmpeg arguments change, so stale caches are not reused.
const RECIPE_VERSION: u32 = 1;

/// A generated pair of media files and what they hold.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub h264_path: PathBuf,
    pub ogg_path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Access units (pictures) in the H.264 file.
    pub video_frames: usize,
    pub video_keyframes: usize,
    /// Opus packets in the Ogg file (headers excluded).
    pub audio_packets: usize,
    source: MediaSource,
}

impl Fixture {
    /// The fixture loaded for publishing (shared, cheap to clone).
    pub fn media_source(&self) -> MediaSource {
        self.source.clone()
    }
}

/// Runs `ffmpeg` to make `seconds` of test video and audio under `dir` (created if needed),
/// unless a fixture with the same parameters is already there. Files are written under
/// temporary names and renamed into place, so concurrent callers never see half a file.
pub fn generate_fixture(dir: &Path, seconds: u32) -> Result<Fixture, ClientError> {
    if seconds == 0 {
        return Err(ClientError::Ffmpeg(
            "fixture length must be at least 1 second".into(),
        ));
    }
    let name = format!(
        "castgate-v{RECIPE_VERSION}-{seconds}s-{FIXTURE_WIDTH}x{FIXTURE_HEIGHT}-{FIXTURE_FPS}fps"
    );
    let h264_path = dir.join(format!("{name}.h264"));
    let ogg_path = dir.join(format!("{name}.ogg"));

    if let Ok(fixture) = load(&h264_path, &ogg_path) {
        return Ok(fixture);
    }
    std::fs::create_dir_all(dir).map_err(|source| ClientError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let tag = format!("tmp-{}-{:08x}", std::process::id(), rand::random::<u32>());
    let h264_tmp = dir.join(format!("{name}.{tag}.h264"));
    let ogg_tmp = dir.join(format!("{name}.{tag}.ogg"));
    let result = run_ffmpeg(seconds, &h264_tmp, &ogg_tmp).and_then(|()| {
        rename(&h264_tmp, &h264_path)?;
        rename(&ogg_tmp, &ogg_path)
    });
    let _ = std::fs::remove_file(&h264_tmp);
    let _ = std::fs::remove_file(&ogg_tmp);
    result?;
    load(&h264_path, &ogg_path)
}

fn rename(from: &Path, to: &Path) -> Result<(), ClientError> {
    std::fs::rename(from, to).map_err(|source| ClientError::Io {
        path: to.to_path_buf(),
        source,
    })
}

fn load(h264_path: &Path, ogg_path: &Path) -> Result<Fixture, ClientError> {
    let source = MediaSource::from_files(h264_path, FIXTURE_FPS, Some(ogg_path))?;
    Ok(Fixture {
        h264_path: h264_path.to_path_buf(),
        ogg_path: ogg_path.to_path_buf(),
        width: FIXTURE_WIDTH,
        height: FIXTURE_HEIGHT,
        fps: FIXTURE_FPS,
        video_frames: source.video_frames(),
        video_keyframes: source.video_keyframes(),
        audio_packets: source.audio_packets(),
        source,
    })
}

fn run_ffmpeg(seconds: u32, h264: &Path, ogg: &Path) -> Result<(), ClientError> {
    let secs = seconds.to_string();
    let gop = FIXTURE_FPS.to_string();
    let video_in = format!("testsrc2=size={FIXTURE_WIDTH}x{FIXTURE_HEIGHT}:rate={FIXTURE_FPS}");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", &video_in])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        // Video like a browser's: constrained baseline, no B-frames, fixed 1 s GOP (no scene-cut
        // keyframes), SPS/PPS repeated before every IDR (raw output has no global header).
        .args([
            "-map", "0:v", "-t", &secs, "-c:v", "libx264", "-pix_fmt", "yuv420p",
        ])
        .args(["-profile:v", "baseline", "-bf", "0", "-tune", "zerolatency"])
        .args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"])
        .args(["-f", "h264"])
        .arg(h264)
        // Audio: stereo Opus, 20 ms per packet.
        .args([
            "-map", "1:a", "-t", &secs, "-ac", "2", "-c:a", "libopus", "-b:a", "64k",
        ])
        .args([
            "-frame_duration",
            "20",
            "-application",
            "audio",
            "-f",
            "ogg",
        ])
        .arg(ogg)
        .stdin(Stdio::null());
    let output = cmd.output().map_err(|e| {
        ClientError::Ffmpeg(format!(
            "cannot run ffmpeg ({e}); install it (Debian: apt-get install ffmpeg)"
        ))
    })?;
    if !output.status.success() {
        return Err(ClientError::Ffmpeg(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}
