//! Test helpers for the audio module: ADTS framing, Opus sources (in-process and FFmpeg),
//! running a transcode, and measurements on PCM (pitch, level, alignment).

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;

use super::{samples_to_ticks, OpusToAac, TranscodeConfig};
use crate::audio::{packet_samples, sampling_frequency_index, OpusDecoder, OpusRsDecoder};
use crate::media::{Codec, Frame};
use crate::rtp::OpusEvent;

/// One AAC-LC frame at 48 kHz behind a 7-byte ADTS header (ISO/IEC 14496-3 §1.A.2.2, no CRC),
/// so FFmpeg or any player can read our raw frames.
pub(crate) fn adts(payload: &[u8], channels: u8) -> Vec<u8> {
    let len = payload.len() + 7;
    let sfi = sampling_frequency_index(48_000).unwrap();
    let profile = 1u8; // audio object type 2 (LC) minus one
    let mut out = vec![
        0xFF,
        0xF1, // syncword, MPEG-4, layer 0, no CRC
        profile << 6 | sfi << 2 | (channels >> 2) & 1,
        (channels & 3) << 6 | ((len >> 11) & 3) as u8,
        (len >> 3) as u8,
        ((len & 7) as u8) << 5 | 0x1F, // buffer fullness 0x7FF: variable rate
        0xFC,
    ];
    out.extend_from_slice(payload);
    out
}

/// Interleaved PCM to 20 ms Opus packets with opus-rs's encoder (a port of libopus).
pub(crate) fn opus_encode(pcm: &[f32], channels: u8) -> Vec<Bytes> {
    let ch = usize::from(channels);
    let mut enc = opus_rs::OpusEncoder::new(48_000, ch, opus_rs::Application::Audio).unwrap();
    let mut buf = vec![0u8; 1500];
    pcm.chunks_exact(960 * ch)
        .map(|frame| {
            let n = enc.encode(frame, 960, &mut buf).unwrap();
            Bytes::copy_from_slice(&buf[..n])
        })
        .collect()
}

/// The depacketizer's view of `packets` sent back to back from `start_pts`: frames timed by
/// their TOC durations, and a `Lost` event before each packet after the dropped ones.
pub(crate) fn events(
    packets: &[Bytes],
    start_pts: i64,
    dropped: impl Fn(usize) -> bool,
) -> Vec<OpusEvent> {
    let mut out = Vec::new();
    let mut at = 0i64;
    let mut last_sent: Option<i64> = None;
    let mut gap = false;
    for (i, p) in packets.iter().enumerate() {
        let pts = start_pts + samples_to_ticks(at);
        at += packet_samples(p).unwrap() as i64;
        if dropped(i) {
            gap = true;
            continue;
        }
        if let (true, Some(last_pts)) = (std::mem::take(&mut gap), last_sent) {
            out.push(OpusEvent::Lost {
                last_pts,
                next_pts: pts,
            });
        }
        last_sent = Some(pts);
        out.push(OpusEvent::Frame(Frame {
            codec: Codec::Opus,
            pts,
            dts: pts,
            keyframe: true,
            data: p.clone(),
        }));
    }
    out
}

/// Runs a whole stream through a real transcoder and flushes it.
pub(crate) fn transcode(events: Vec<OpusEvent>, channels: u8) -> (Vec<Frame>, OpusToAac) {
    let mut t = OpusToAac::new(TranscodeConfig {
        channels,
        bitrate: None,
    })
    .unwrap();
    let mut frames = Vec::new();
    for e in events {
        t.push(e);
        frames.extend(std::iter::from_fn(|| t.poll()));
    }
    t.finish();
    frames.extend(std::iter::from_fn(|| t.poll()));
    (frames, t)
}

/// What an Opus receiver plays for `packets`, interleaved: the reference for alignment.
pub(crate) fn opus_reference(packets: &[Bytes], channels: u8) -> Vec<f32> {
    let mut dec = OpusRsDecoder::new(channels).unwrap();
    let mut out = Vec::new();
    for p in packets {
        out.extend_from_slice(dec.decode(p).unwrap());
    }
    out
}

/// One channel of interleaved PCM.
pub(crate) fn channel(pcm: &[f32], channels: u8, which: usize) -> Vec<f32> {
    pcm.iter()
        .skip(which)
        .step_by(usize::from(channels))
        .copied()
        .collect()
}

/// Frequency of a steady tone from its zero crossings.
pub(crate) fn zero_crossing_hz(x: &[f32]) -> f64 {
    let crossings = x
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    crossings as f64 / 2.0 / (x.len() as f64 / 48_000.0)
}

pub(crate) fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// The shift (in samples) that best lines `test` up with `reference`: `test[i + lag]`
/// matches `reference[i]`. Normalised cross-correlation over `window` samples from `from`.
pub(crate) fn best_lag(
    reference: &[f32],
    test: &[f32],
    from: usize,
    window: usize,
    max_lag: i64,
) -> i64 {
    let mut best = (f64::MIN, 0);
    for lag in -max_lag..=max_lag {
        let (mut dot, mut energy) = (0.0f64, 0.0f64);
        for (i, &r) in reference.iter().enumerate().skip(from).take(window) {
            let j = i as i64 + lag;
            let t = usize::try_from(j)
                .ok()
                .and_then(|j| test.get(j))
                .copied()
                .unwrap_or(0.0);
            dot += f64::from(r) * f64::from(t);
            energy += f64::from(t) * f64::from(t);
        }
        let score = dot / energy.sqrt().max(1e-9);
        if score > best.0 {
            best = (score, lag);
        }
    }
    best.1
}

/// FFmpeg and ffprobe, or a printed notice and `None` (the test is then skipped).
pub(crate) fn ffmpeg(test: &str) -> Option<Ffmpeg> {
    let works = |tool: &str| {
        Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !works("ffmpeg") || !works("ffprobe") {
        eprintln!("NOTICE: {test} skipped: ffmpeg/ffprobe not installed");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("castgate-audio-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Some(Ffmpeg { dir })
}

/// A scratch directory for one FFmpeg-based test, removed afterwards.
pub(crate) struct Ffmpeg {
    pub dir: PathBuf,
}

impl Ffmpeg {
    /// Runs ffmpeg with `args` (quiet, overwriting), returning stdout; panics with stderr.
    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ffmpeg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `key=value` lines of ffprobe's first audio stream, with packets counted.
    pub fn probe(&self, file: &Path) -> Vec<(String, String)> {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_packets", "-select_streams", "a:0"])
            .args([
                "-show_entries",
                "stream=codec_name,profile,sample_rate,channels,nb_read_packets",
            ])
            .args(["-of", "default=noprint_wrappers=1"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Decodes any audio file to interleaved f32 PCM at its own rate and channels.
    pub fn decode(&self, file: &Path) -> Vec<f32> {
        let path = file.to_str().unwrap();
        self.run(&["-i", path, "-f", "f32le", "-"])
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
