//! A strict foreign client: `ffmpeg -i` on a live playlist (libavformat's HLS demuxer and
//! libavcodec's H.264 decoder, what ffplay, VLC and many set-top players are built on), run
//! until the stream ends, with every decoded picture's size and every decoder complaint kept.

use std::process::Stdio;
use std::time::Duration;

/// What ffmpeg made of a live stream.
#[derive(Debug, Default)]
pub struct LiveRead {
    /// Picture sizes in decode order, one entry per run of equal sizes: (width, height, frames).
    pub sizes: Vec<(u32, u32, u64)>,
    /// Decoder and demuxer errors (any `[h264 @ ...]` or `[hls @ ...]` line at error level).
    pub errors: Vec<String>,
    /// ffmpeg's exit status (0 once it read to `#EXT-X-ENDLIST`).
    pub status: Option<i32>,
}

impl LiveRead {
    pub fn frames(&self) -> u64 {
        self.sizes.iter().map(|(_, _, n)| n).sum()
    }
}

/// Reads `url` with `ffmpeg -i` to the end of the stream (or `limit`), decoding every frame.
/// `-live_start_index 0` starts at the oldest segment of the window, so a read begun early in
/// a publish covers it all.
pub async fn ffmpeg_read_live(url: &str, limit: Duration) -> LiveRead {
    let child = tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-loglevel",
            "level+info",
        ])
        .args(["-live_start_index", "0", "-i", url])
        .args(["-map", "0:v:0", "-vf", "showinfo", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run ffmpeg (Debian: apt-get install ffmpeg)");
    let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(output) => output.expect("ffmpeg output"),
        Err(_) => panic!("ffmpeg did not finish reading {url} within {limit:?}"),
    };
    let mut read = parse(&String::from_utf8_lossy(&output.stderr));
    read.status = output.status.code();
    read
}

fn parse(stderr: &str) -> LiveRead {
    let mut read = LiveRead::default();
    for line in stderr.lines() {
        // `[Parsed_showinfo_0 @ 0x...] [info] n:  12 pts: ... s:1280x720 ...`
        if line.contains("showinfo") {
            if let Some(size) = line.split_whitespace().find_map(|w| w.strip_prefix("s:")) {
                if let Some((w, h)) = size.split_once('x') {
                    if let (Ok(w), Ok(h)) = (w.parse(), h.parse()) {
                        match read.sizes.last_mut() {
                            Some((lw, lh, n)) if (*lw, *lh) == (w, h) => *n += 1,
                            _ => read.sizes.push((w, h, 1)),
                        }
                    }
                }
            }
        } else if (line.contains("[h264 @") || line.contains("[hls @"))
            && (line.contains("[error]") || line.contains("[fatal]"))
        {
            read.errors.push(line.to_string());
        }
    }
    read
}
