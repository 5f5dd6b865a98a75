//! A strict foreign client: `ffmpeg -i` on a live playlist (libavformat's HLS demuxer and
//! libavcodec's H.264 decoder, what ffplay, mpv, VLC and many set-top players are built on),
//! run until the stream ends, with every decoded picture's size and every complaint kept.

use std::process::Stdio;
use std::time::Duration;

/// What ffmpeg (`-loglevel level+info -vf showinfo`) reported while reading a live playlist.
#[derive(Debug, Default)]
pub struct LiveRead {
    /// Picture size of every decoded frame, in order.
    pub sizes: Vec<(u32, u32)>,
    /// Lines that report damaged pictures: the H.264 decoder's errors, and damage reports at
    /// any log level.
    pub decode_errors: Vec<String>,
    /// Every line logged at error level or worse.
    pub errors: Vec<String>,
    pub stderr: String,
    /// ffmpeg's exit status (0 once it read to `#EXT-X-ENDLIST`).
    pub status: Option<i32>,
}

impl LiveRead {
    /// The sizes as runs of equal sizes: (width, height, frames).
    pub fn size_runs(&self) -> Vec<(u32, u32, usize)> {
        let mut runs: Vec<(u32, u32, usize)> = Vec::new();
        for &(w, h) in &self.sizes {
            match runs.last_mut() {
                Some((lw, lh, n)) if (*lw, *lh) == (w, h) => *n += 1,
                _ => runs.push((w, h, 1)),
            }
        }
        runs
    }
}

/// Parses ffmpeg's stderr as written with `-loglevel level+info` (each line tagged with its
/// level) and `-vf showinfo` (one line per frame with `s:WIDTHxHEIGHT`).
pub fn parse_ffmpeg_log(stderr: String) -> LiveRead {
    const DAMAGE: [&str; 6] = [
        "error while decoding",
        "corrupt",
        "non-existing pps",
        "decode_slice_header error",
        "concealing",
        "no frame!",
    ];
    let mut read = LiveRead::default();
    for line in stderr.lines() {
        if line.contains("Parsed_showinfo") && line.contains(" n:") {
            let size = line
                .split_whitespace()
                .find_map(|t| t.strip_prefix("s:"))
                .and_then(|s| s.split_once('x'))
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
            if let Some(size) = size {
                read.sizes.push(size);
            }
            continue;
        }
        let lower = line.to_ascii_lowercase();
        let error = ["[error]", "[fatal]", "[panic]"]
            .iter()
            .any(|l| line.contains(l));
        if DAMAGE.iter().any(|d| lower.contains(d)) || (error && line.starts_with("[h264 @")) {
            read.decode_errors.push(line.to_string());
        }
        if error {
            read.errors.push(line.to_string());
        }
    }
    read.stderr = stderr;
    read
}

/// Runs ffmpeg on the live playlist at `url` until it ends (EXT-X-ENDLIST) or `limit` passes.
///
/// `-live_start_index 0`: start at the first segment listed when ffmpeg opens the playlist,
/// not three from the end (the default), so wherever a slow machine lets it start it reads
/// every segment from there on.
pub async fn ffmpeg_read_live(url: &str, limit: Duration) -> LiveRead {
    let child = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-nostats"])
        .args(["-loglevel", "level+info"])
        .args(["-live_start_index", "0", "-i", url])
        .args(["-map", "0:v:0", "-vf", "showinfo=checksum=0"])
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run ffmpeg (Debian: apt-get install ffmpeg)");
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("ffmpeg did not reach the end of {url} within {limit:?}"))
        .expect("ffmpeg output");
    let mut read = parse_ffmpeg_log(String::from_utf8_lossy(&output.stderr).into_owned());
    read.status = output.status.code();
    read
}
