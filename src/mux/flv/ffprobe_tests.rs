//! End-to-end check of the FLV writer against ffprobe: a real x264 clip, cut into access units
//! and AVCC frames the way the ingest path delivers them, must read back as 25 H.264 frames.
//! Skipped (with a notice) where ffmpeg/ffprobe are not installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;

use super::*;
use crate::media::h264::{nal, nal_type, split_access_units};
use crate::media::{Codec, Frame, CLOCK_RATE};

fn on_path(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("castgate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("spawn tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn encode_clip(path: &Path) {
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .args([
            "testsrc2=size=320x240:rate=25",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-bf",
            "0",
            "-g",
            "25",
            "-f",
            "h264",
        ])
        .arg(path));
}

/// The access unit without parameter sets or delimiters, AVCC framed (the `Frame` layout).
fn avcc_frame(au: &[&[u8]], index: i64) -> Frame {
    let kept: Vec<&[u8]> = au
        .iter()
        .copied()
        .filter(|n| !matches!(nal_type(n[0]), nal::SPS | nal::PPS | nal::AUD))
        .collect();
    let mut data = Vec::with_capacity(kept.iter().map(|n| 4 + n.len()).sum());
    for n in &kept {
        data.extend_from_slice(&(n.len() as u32).to_be_bytes());
        data.extend_from_slice(n);
    }
    let ticks = index * i64::from(CLOCK_RATE) / 25;
    Frame {
        codec: Codec::H264,
        pts: ticks,
        dts: ticks,
        keyframe: kept.iter().any(|n| nal_type(n[0]) == nal::IDR),
        data: Bytes::from(data),
    }
}

fn first_nal_of_type(aus: &[Vec<&[u8]>], t: u8) -> Bytes {
    let found = aus.iter().flatten().find(|n| nal_type(n[0]) == t);
    Bytes::copy_from_slice(found.expect("parameter set in clip"))
}

#[test]
fn ffprobe_reads_flv_built_from_x264_baseline_clip() {
    if !on_path("ffmpeg") || !on_path("ffprobe") {
        eprintln!(
            "skipping ffprobe_reads_flv_built_from_x264_baseline_clip: ffmpeg/ffprobe not on PATH"
        );
        return;
    }
    let dir = TempDir::new("flv-ffprobe");
    let clip = dir.path("clip.h264");
    encode_clip(&clip);
    let annexb = std::fs::read(&clip).expect("read clip");

    let aus = split_access_units(&annexb);
    assert_eq!(aus.len(), 25, "one access unit per frame");
    let ps = ParameterSets::new(
        first_nal_of_type(&aus, nal::SPS),
        first_nal_of_type(&aus, nal::PPS),
    )
    .unwrap();
    assert_eq!((ps.info.width, ps.info.height), (320, 240));

    let mut flv = file_header(false, true).to_vec();
    flv.extend_from_slice(&metadata_tag(&FlvMetadata {
        width: ps.info.width,
        height: ps.info.height,
        frame_rate: ps.info.frame_rate,
        video_data_rate_kbps: None,
        has_video: true,
        audio: None,
    }));
    flv.extend_from_slice(&avc_sequence_header_tag(&ps, 0));
    let mut last_ms = 0;
    for (i, au) in aus.iter().enumerate() {
        let frame = avcc_frame(au, i as i64);
        assert_eq!(
            frame.keyframe,
            i == 0,
            "GOP of 25 → only the first frame is IDR"
        );
        let to_ms = |ticks: i64| ticks * 1000 / i64::from(CLOCK_RATE);
        last_ms = to_ms(frame.dts) as u32;
        let cts = to_ms(frame.pts - frame.dts) as i32;
        flv.extend_from_slice(&avc_frame_tag(&frame, last_ms, cts));
    }
    flv.extend_from_slice(&avc_end_of_sequence_tag(last_ms));
    assert_eq!(last_ms, 960);
    assert_eq!(parse_tags(&flv).unwrap().len(), 1 + 1 + 25 + 1);

    let out = dir.path("clip.flv");
    std::fs::write(&out, &flv).expect("write flv");
    let json = run(Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "json"])
        .arg(&out));
    let probe: serde_json::Value = serde_json::from_slice(&json).expect("ffprobe JSON");
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "h264", "{probe}");
    assert_eq!(stream["width"], 320, "{probe}");
    assert_eq!(stream["height"], 240, "{probe}");
    assert_eq!(stream["nb_read_frames"], "25", "{probe}");
}
