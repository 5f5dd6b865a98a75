//! Test media made with ffmpeg: browser-like H.264 (constrained baseline, no B-frames, a
//! keyframe every second) in Annex B and 20 ms Opus frames in Ogg, cached by parameters.
//! Two pictures: a moving test pattern with a steady tone (mono or stereo, 640x360 or any
//! other size), and an A/V sync signal (a white flash frame and a tone burst together at every
//! whole second).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::ClientError;
use super::source::MediaSource;

pub const FIXTURE_WIDTH: u32 = 640;
pub const FIXTURE_HEIGHT: u32 = 360;
pub const FIXTURE_FPS: u32 = 30;

/// Bumped whenever the ffmpeg arguments change, so stale caches are not reused.
const RECIPE_VERSION: u32 = 2;
/// Same, for the sync signal of [`generate_sync_fixture`].
const SYNC_RECIPE_VERSION: u32 = 1;

/// Frequency and length of each tone burst of [`generate_sync_fixture`].
pub const SYNC_TONE_HZ: u32 = 1000;
pub const SYNC_BURST_MS: u32 = 100;

/// Video bitrate of the fixtures: the 1.5 Mb/s of a typical webcam publisher at 640x360.
pub const FIXTURE_VIDEO_KBPS: u32 = 1500;

/// The audio of a test-pattern fixture, coded as a browser would send it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixtureAudio {
    /// Mono Opus at 32 kb/s: what a browser sends from a webcam microphone by default.
    Mono,
    /// Stereo Opus at 64 kb/s: a browser asked for stereo (`sprop-stereo=1` in its offer).
    Stereo,
}

impl FixtureAudio {
    fn channels(self) -> u32 {
        match self {
            FixtureAudio::Mono => 1,
            FixtureAudio::Stereo => 2,
        }
    }

    fn kbps(self) -> u32 {
        32 * self.channels()
    }

    fn label(self) -> &'static str {
        match self {
            FixtureAudio::Mono => "mono",
            FixtureAudio::Stereo => "stereo",
        }
    }
}

/// What ffmpeg is asked to make: the file name prefix, the lavfi sources and the picture size.
struct Recipe {
    name: String,
    video: String,
    audio: String,
    audio_coding: FixtureAudio,
    width: u32,
    height: u32,
}

impl Recipe {
    /// ffmpeg's moving test pattern at `width` x `height` and a steady 440 Hz tone.
    fn test_pattern(seconds: u32, audio: FixtureAudio, (width, height): (u32, u32)) -> Recipe {
        Recipe {
            name: format!(
                "castgate-v{RECIPE_VERSION}-{seconds}s-{width}x{height}-{FIXTURE_FPS}fps-{}",
                audio.label()
            ),
            video: format!("testsrc2=size={width}x{height}:rate={FIXTURE_FPS}"),
            audio: "sine=frequency=440:sample_rate=48000".into(),
            audio_coding: audio,
            width,
            height,
        }
    }

    /// Black video with one white frame at every whole second after the first (frame numbers
    /// FPS, 2 FPS, ...), and silence with a tone burst starting on exactly the same instants.
    /// Both are defined on integer counters (frame number `n`, sample number `n`), so there is
    /// no floating-point doubt about which frame or sample is first; the burst starts at phase
    /// 0 of the sine. The keyframe interval equals the frame rate, so every flash is an IDR:
    /// wherever a viewer joins or a segment is cut, the next flash is decodable on its own.
    fn sync_signal(seconds: u32) -> Recipe {
        const RATE: u32 = 48_000;
        let burst_samples = RATE / 1000 * SYNC_BURST_MS;
        Recipe {
            name: format!(
                "castgate-sync-v{SYNC_RECIPE_VERSION}-{seconds}s-{FIXTURE_WIDTH}x{FIXTURE_HEIGHT}-{FIXTURE_FPS}fps"
            ),
            video: format!(
                "color=c=black:size={FIXTURE_WIDTH}x{FIXTURE_HEIGHT}:rate={FIXTURE_FPS},\
                 drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:\
                 enable='gt(n,0)*not(mod(n,{FIXTURE_FPS}))'"
            ),
            audio: format!(
                "aevalsrc='if(gte(n,{RATE})*lt(mod(n,{RATE}),{burst_samples}),\
                 0.5*sin(2*PI*{SYNC_TONE_HZ}*n/{RATE}),0)':s={RATE}:c=stereo"
            ),
            audio_coding: FixtureAudio::Stereo,
            width: FIXTURE_WIDTH,
            height: FIXTURE_HEIGHT,
        }
    }
}

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

/// Runs `ffmpeg` to make `seconds` of test video and stereo audio under `dir` (created if
/// needed), unless a fixture with the same parameters is already there. Files are written
/// under temporary names and renamed into place, so concurrent callers never see half a file.
pub fn generate_fixture(dir: &Path, seconds: u32) -> Result<Fixture, ClientError> {
    generate_fixture_with_audio(dir, seconds, FixtureAudio::Stereo)
}

/// [`generate_fixture`] with the audio coded as `audio` says.
pub fn generate_fixture_with_audio(
    dir: &Path,
    seconds: u32,
    audio: FixtureAudio,
) -> Result<Fixture, ClientError> {
    generate(
        dir,
        seconds,
        Recipe::test_pattern(seconds, audio, (FIXTURE_WIDTH, FIXTURE_HEIGHT)),
    )
}

/// [`generate_fixture`] at another picture size (stereo audio), e.g. to publish a camera that
/// changes resolution ([`MediaSource::followed_by`]). Both dimensions must be even (4:2:0).
pub fn generate_fixture_sized(
    dir: &Path,
    seconds: u32,
    (width, height): (u32, u32),
) -> Result<Fixture, ClientError> {
    if width == 0 || height == 0 || width % 2 == 1 || height % 2 == 1 {
        return Err(ClientError::Ffmpeg(format!(
            "fixture size {width}x{height}: both dimensions must be even and non-zero"
        )));
    }
    let recipe = Recipe::test_pattern(seconds, FixtureAudio::Stereo, (width, height));
    generate(dir, seconds, recipe)
}

/// Like [`generate_fixture`], but the media is an A/V sync signal: 640x360 at 30 fps, black
/// except for one full-white frame at t = 1, 2, 3 ... s (frame 30k), and 48 kHz stereo silence
/// except for a [`SYNC_TONE_HZ`] burst of [`SYNC_BURST_MS`] starting exactly at each of those
/// instants. Comparing flash times with tone onsets in a receiver's output measures how far
/// it moved audio against video.
pub fn generate_sync_fixture(dir: &Path, seconds: u32) -> Result<Fixture, ClientError> {
    generate(dir, seconds, Recipe::sync_signal(seconds))
}

fn generate(dir: &Path, seconds: u32, recipe: Recipe) -> Result<Fixture, ClientError> {
    if seconds == 0 {
        return Err(ClientError::Ffmpeg(
            "fixture length must be at least 1 second".into(),
        ));
    }
    let name = &recipe.name;
    let h264_path = dir.join(format!("{name}.h264"));
    let ogg_path = dir.join(format!("{name}.ogg"));

    let size = (recipe.width, recipe.height);
    if let Ok(fixture) = load(&h264_path, &ogg_path, size) {
        return Ok(fixture);
    }
    std::fs::create_dir_all(dir).map_err(|source| ClientError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let tag = format!("tmp-{}-{:08x}", std::process::id(), rand::random::<u32>());
    let h264_tmp = dir.join(format!("{name}.{tag}.h264"));
    let ogg_tmp = dir.join(format!("{name}.{tag}.ogg"));
    let result = run_ffmpeg(&recipe, seconds, &h264_tmp, &ogg_tmp).and_then(|()| {
        rename(&h264_tmp, &h264_path)?;
        rename(&ogg_tmp, &ogg_path)
    });
    let _ = std::fs::remove_file(&h264_tmp);
    let _ = std::fs::remove_file(&ogg_tmp);
    result?;
    load(&h264_path, &ogg_path, size)
}

fn rename(from: &Path, to: &Path) -> Result<(), ClientError> {
    std::fs::rename(from, to).map_err(|source| ClientError::Io {
        path: to.to_path_buf(),
        source,
    })
}

fn load(
    h264_path: &Path,
    ogg_path: &Path,
    (width, height): (u32, u32),
) -> Result<Fixture, ClientError> {
    let source = MediaSource::from_files(h264_path, FIXTURE_FPS, Some(ogg_path))?;
    Ok(Fixture {
        h264_path: h264_path.to_path_buf(),
        ogg_path: ogg_path.to_path_buf(),
        width,
        height,
        fps: FIXTURE_FPS,
        video_frames: source.video_frames(),
        video_keyframes: source.video_keyframes(),
        audio_packets: source.audio_packets(),
        source,
    })
}

fn run_ffmpeg(recipe: &Recipe, seconds: u32, h264: &Path, ogg: &Path) -> Result<(), ClientError> {
    let secs = seconds.to_string();
    let gop = FIXTURE_FPS.to_string();
    let video_rate = format!("{FIXTURE_VIDEO_KBPS}k");
    // Half a second of rate-control buffer, like a browser's real-time encoder.
    let video_buffer = format!("{}k", FIXTURE_VIDEO_KBPS / 2);
    let channels = recipe.audio_coding.channels().to_string();
    let audio_rate = format!("{}k", recipe.audio_coding.kbps());
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", &recipe.video])
        .args(["-f", "lavfi", "-i", &recipe.audio])
        // Video like a browser's: constrained baseline, no B-frames, fixed 1 s GOP (no scene-cut
        // keyframes), SPS/PPS repeated before every IDR (raw output has no global header).
        .args([
            "-map", "0:v", "-t", &secs, "-c:v", "libx264", "-pix_fmt", "yuv420p",
        ])
        .args(["-profile:v", "baseline", "-bf", "0", "-tune", "zerolatency"])
        .args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"])
        .args(["-b:v", &video_rate, "-maxrate", &video_rate])
        .args(["-bufsize", &video_buffer])
        .args(["-f", "h264"])
        .arg(h264)
        // Audio: Opus, 20 ms per packet.
        .args([
            "-map",
            "1:a",
            "-t",
            &secs,
            "-ac",
            &channels,
            "-c:a",
            "libopus",
            "-b:a",
            &audio_rate,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_length_sync_fixture_is_refused_before_running_ffmpeg() {
        let dir = Path::new("/nonexistent/castgate-fixture-test");
        let err = generate_sync_fixture(dir, 0).unwrap_err();
        assert!(matches!(err, ClientError::Ffmpeg(_)), "{err}");
        assert!(!dir.exists());
    }

    #[test]
    fn sync_and_test_pattern_fixtures_never_share_cache_files() {
        let default_size = (FIXTURE_WIDTH, FIXTURE_HEIGHT);
        let pattern = Recipe::test_pattern(20, FixtureAudio::Stereo, default_size);
        let mono = Recipe::test_pattern(20, FixtureAudio::Mono, default_size);
        let sync = Recipe::sync_signal(20);
        assert_eq!(pattern.name, "castgate-v2-20s-640x360-30fps-stereo");
        assert_eq!(mono.name, "castgate-v2-20s-640x360-30fps-mono");
        assert_eq!(sync.name, "castgate-sync-v1-20s-640x360-30fps");
    }

    #[test]
    fn a_sized_fixture_has_its_own_cache_files_and_picture_size() {
        let qhd = Recipe::test_pattern(4, FixtureAudio::Stereo, (960, 540));
        assert_eq!(qhd.name, "castgate-v2-4s-960x540-30fps-stereo");
        assert_eq!(qhd.video, "testsrc2=size=960x540:rate=30");
        assert_eq!((qhd.width, qhd.height), (960, 540));
    }

    #[test]
    fn odd_or_zero_fixture_sizes_are_refused_before_running_ffmpeg() {
        let dir = Path::new("/nonexistent/castgate-fixture-test");
        for size in [(641, 360), (640, 0), (0, 0)] {
            let err = generate_fixture_sized(dir, 2, size).unwrap_err();
            assert!(matches!(err, ClientError::Ffmpeg(_)), "{err}");
        }
        assert!(!dir.exists());
    }

    #[test]
    fn sync_signal_flashes_and_bursts_on_the_same_whole_seconds() {
        let sync = Recipe::sync_signal(20);
        // Frame n is at n/30 s: white on multiples of 30 except 0.
        assert!(
            sync.video.contains("enable='gt(n,0)*not(mod(n,30))'"),
            "{}",
            sync.video
        );
        // Sample n is at n/48000 s: tone on the first 4800 samples (100 ms) of every second
        // except the first.
        assert!(
            sync.audio
                .contains("if(gte(n,48000)*lt(mod(n,48000),4800),"),
            "{}",
            sync.audio
        );
        assert!(
            sync.audio.contains("sin(2*PI*1000*n/48000)"),
            "{}",
            sync.audio
        );
    }
}
