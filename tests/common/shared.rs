//! Helpers both integration-test crates (`gateway`, `browser`) include with `#[path]`: bounded
//! polling, a short-timeout GET, and ffprobe.

use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;

/// Polls `check` every 100 ms until it yields `Some`, failing the test after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET with a short timeout: status and body.
pub async fn http_get(http: &reqwest::Client, url: &str) -> (u16, Bytes) {
    let response = http
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("GET {url} body: {e}"));
    (status, body)
}

/// Runs ffprobe with `args` on `file` and parses its JSON output.
pub fn ffprobe_json(args: &[&str], file: &Path) -> serde_json::Value {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(
        output.status.success(),
        "ffprobe {args:?} {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("ffprobe JSON")
}

/// ffprobe's first stream of `select` ("v:0", "a:0") with `entries`, frames counted.
pub fn probe_stream(file: &Path, select: &str, entries: &str) -> serde_json::Value {
    let mut json = ffprobe_json(
        &[
            "-count_frames",
            "-select_streams",
            select,
            "-show_entries",
            entries,
        ],
        file,
    );
    json["streams"][0].take()
}

/// Codec, size and decoded frame count of the first video stream of `file`.
#[derive(Debug, PartialEq, Eq)]
pub struct VideoProbe {
    pub codec: String,
    pub width: u64,
    pub height: u64,
    pub frames: u64,
}

pub fn probe_video(file: &Path) -> VideoProbe {
    let stream = &probe_stream(file, "v:0", "stream=codec_name,width,height,nb_read_frames");
    VideoProbe {
        codec: stream["codec_name"].as_str().unwrap_or("").to_string(),
        width: stream["width"].as_u64().unwrap_or(0),
        height: stream["height"].as_u64().unwrap_or(0),
        frames: stream["nb_read_frames"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    }
}

/// Codec, rate and decoded frame count of the first audio stream of a file.
#[derive(Debug)]
pub struct AudioProbe {
    pub codec: String,
    pub sample_rate: u64,
    /// Decoded AAC frames (1024 samples each).
    pub frames: u64,
}

impl AudioProbe {
    pub fn seconds(&self) -> f64 {
        (self.frames * 1024) as f64 / self.sample_rate.max(1) as f64
    }
}

/// [`AudioProbe`] of `file` (codec "none" if it has no audio).
pub fn probe_audio(file: &Path) -> AudioProbe {
    let stream = &probe_stream(file, "a:0", "stream=codec_name,sample_rate,nb_read_frames");
    let number = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
    AudioProbe {
        codec: stream["codec_name"].as_str().unwrap_or("none").to_string(),
        sample_rate: number(&stream["sample_rate"]),
        frames: number(&stream["nb_read_frames"]),
    }
}
