//! Round trips through ffprobe/ffmpeg: a real x264 clip and a real AAC-LC clip, muxed into TS
//! segments, must probe as H.264 + AAC with every frame decoded and no decoder complaint, one
//! segment alone and two concatenated (continuous counters and timestamps). Skipped (with a
//! notice) where the tools are not installed.

use std::path::Path;
use std::process::Command;

use bytes::Bytes;

use super::{TsAudio, TsMuxer, TsSample, TsTracks};
use crate::media::h264::ParameterSets;
use crate::mux::fmp4::test_support::{
    access_units, adts_frames, ffmpeg_available, ffprobe_streams, generate_aac_clip,
    generate_h264_clip, scratch_dir, ProbedStream,
};

/// 25 fps video, 48 kHz AAC frames, in 90 kHz ticks.
const FRAME: i64 = 3600;
const AAC: i64 = 1920;

/// A 2 s clip (50 frames, GOP 25; ~94 AAC frames) in two 1 s segments cut at the second
/// keyframe, the audio split by decode time as the HLS segmenter does; timestamps from `t0`.
/// Returns the segments and the AAC frame count of each.
fn two_segments(dir: &Path, t0: i64) -> ([Bytes; 2], [usize; 2]) {
    let clip = access_units(&generate_h264_clip(dir, 2, 25));
    assert_eq!(clip.frames.len(), 50);
    let (asc, aac) = adts_frames(&generate_aac_clip(dir, 2));
    let video: Vec<TsSample> = clip
        .frames
        .iter()
        .enumerate()
        .map(|(i, (data, key))| TsSample {
            pts: t0 + i as i64 * FRAME,
            dts: t0 + i as i64 * FRAME,
            keyframe: *key,
            data: data.clone(),
        })
        .collect();
    let audio: Vec<TsSample> = aac
        .iter()
        .enumerate()
        .map(|(i, data)| TsSample {
            pts: t0 + i as i64 * AAC,
            dts: t0 + i as i64 * AAC,
            keyframe: true,
            data: data.clone(),
        })
        .collect();
    let mut mux = TsMuxer::new(TsTracks {
        video: Some(ParameterSets::new(clip.sps, clip.pps).unwrap()),
        audio: Some(TsAudio::new(asc, 48_000, 1).unwrap()),
    });
    let cut = audio.partition_point(|a| a.dts < video[25].dts);
    let first = mux.segment(&video[..25], &audio[..cut]);
    let second = mux.segment(&video[25..], &audio[cut..]);
    ([first, second], [cut, audio.len() - cut])
}

fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("run tool");
    assert!(out.status.success(), "{cmd:?} failed");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (text(out.stdout), text(out.stderr))
}

/// What `ffmpeg -v error` prints decoding every stream of `path` (empty when clean).
fn decode_errors(path: &Path) -> String {
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"]))
    .1
}

/// ffprobe's JSON for `path` with `args` before it, and its stderr.
fn ffprobe_json(path: &Path, args: &[&str]) -> (serde_json::Value, String) {
    let (stdout, stderr) = run(Command::new("ffprobe")
        .args(args)
        .args(["-of", "json"])
        .arg(path));
    (serde_json::from_str(&stdout).expect("ffprobe json"), stderr)
}

/// The audio stream's sample rate and channel count, as ffprobe reads them.
fn audio_format(path: &Path) -> (String, u64) {
    let (json, _) = ffprobe_json(
        path,
        &[
            "-v",
            "error",
            "-select_streams",
            "a",
            "-show_entries",
            "stream=sample_rate,channels",
        ],
    );
    let stream = &json["streams"][0];
    let rate = stream["sample_rate"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (rate, stream["channels"].as_u64().unwrap_or_default())
}

/// Decode times (90 kHz) of every packet of stream `index`, and the continuity complaints
/// libavformat logs (at debug level only).
fn packet_dts_and_continuity(path: &Path, index: u64) -> (Vec<i64>, Vec<String>) {
    let (json, stderr) = ffprobe_json(
        path,
        &["-v", "debug", "-show_entries", "packet=stream_index,dts"],
    );
    let dts = json["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .filter(|p| p["stream_index"].as_u64() == Some(index))
        .map(|p| p["dts"].as_i64().expect("dts"))
        .collect();
    let complaints = stderr
        .lines()
        .filter(|l| l.contains("Continuity check failed"))
        .map(str::to_string)
        .collect();
    (dts, complaints)
}

fn h264(frames: u64) -> ProbedStream {
    ProbedStream {
        codec: "h264".into(),
        width: 320,
        height: 240,
        frames,
    }
}

#[test]
fn one_segment_probes_as_h264_and_aac_with_every_frame() {
    if !ffmpeg_available("one_segment_probes_as_h264_and_aac_with_every_frame") {
        return;
    }
    let dir = scratch_dir("ts-ffprobe-one");
    // A timeline from 0, as the fMP4 rendition's: the first PCRs wrap below 2^33.
    let ([first, _], [aac, _]) = two_segments(&dir, 0);
    let path = dir.join("seg0.ts");
    std::fs::write(&path, &first).unwrap();
    let (streams, stderr) = ffprobe_streams(&path);
    assert_eq!(stderr, "", "ffprobe complained");
    let audio = ProbedStream {
        codec: "aac".into(),
        width: 0,
        height: 0,
        frames: aac as u64,
    };
    assert_eq!(streams, [h264(25), audio]);
    assert_eq!(audio_format(&path), ("48000".to_string(), 1));
    assert_eq!(decode_errors(&path), "", "ffmpeg decode errors");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_segments_concatenated_decode_as_one_continuous_stream() {
    if !ffmpeg_available("two_segments_concatenated_decode_as_one_continuous_stream") {
        return;
    }
    let dir = scratch_dir("ts-ffprobe-two");
    let t0 = 10 * 90_000;
    let (segments, [aac0, aac1]) = two_segments(&dir, t0);
    let path = dir.join("both.ts");
    std::fs::write(&path, [&segments[0][..], &segments[1][..]].concat()).unwrap();
    let (streams, stderr) = ffprobe_streams(&path);
    assert_eq!(stderr, "", "ffprobe complained");
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0], h264(50));
    assert_eq!(
        (streams[1].codec.as_str(), streams[1].frames),
        ("aac", (aac0 + aac1) as u64)
    );
    assert_eq!(decode_errors(&path), "", "ffmpeg decode errors");
    let (video_dts, complaints) = packet_dts_and_continuity(&path, 0);
    assert_eq!(complaints, Vec::<String>::new());
    let expected: Vec<i64> = (0..50).map(|i| t0 + i * FRAME).collect();
    assert_eq!(video_dts, expected, "one 40 ms step across the boundary");
    let (audio_dts, _) = packet_dts_and_continuity(&path, 1);
    assert_eq!(audio_dts.len(), aac0 + aac1);
    assert!(audio_dts.windows(2).all(|w| w[1] - w[0] == AAC));
    let _ = std::fs::remove_dir_all(&dir);
}
