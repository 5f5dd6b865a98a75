//! The MPEG-TS rendition of [`HlsStream`]: the fMP4 rendition's cuts, segment for segment,
//! decoded by ffprobe/ffmpeg (H.264 + AAC, frame-exact, a keyframe first in every segment,
//! timestamps matching the fMP4 ones), a resolution change behind EXT-X-DISCONTINUITY, and
//! a video-only rendition when the audio is Opus.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;

use super::stream_audio_tests::{opus, opus_frame};
use super::stream_tests::{feed, params, push_av_clip, push_clip, T0_MS};
use super::{HlsConfig, HlsStream};
use crate::mux::fmp4::test_support::{
    access_units, adts_frames, clips_of_two_sizes, ffmpeg_available, ffprobe_frame_sizes,
    ffprobe_streams, generate_aac_clip, generate_h264_clip, scratch_dir, SPS_320X240,
};

fn ts_config(window: usize) -> HlsConfig {
    HlsConfig {
        segment_target: Duration::from_millis(1000),
        window,
        name_prefix: "ab12".to_string(),
        part_target: Some(Duration::from_millis(200)),
        mpegts: true,
        ..HlsConfig::default()
    }
}

fn playlist(bytes: Option<Bytes>) -> m3u8_rs::MediaPlaylist {
    let text = bytes.expect("playlist");
    match m3u8_rs::parse_media_playlist(&text) {
        Ok((_, p)) => p,
        Err(e) => panic!("m3u8-rs: {e:?}\n{}", String::from_utf8_lossy(&text)),
    }
}

/// The fMP4 and TS renditions of every listed segment, concatenated into one file each.
fn write_both(s: &HlsStream, dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let fmp4 = playlist(s.playlist(false));
    let ts = playlist(s.ts_playlist());
    let mut mp4 = s.get("ab12-init-0.mp4").unwrap().to_vec();
    for seg in &fmp4.segments {
        mp4.extend_from_slice(&s.get(&seg.uri).unwrap());
    }
    let mut all_ts = Vec::new();
    for seg in &ts.segments {
        all_ts.extend_from_slice(&s.get(&seg.uri).unwrap());
    }
    let (a, b) = (dir.join("all.mp4"), dir.join("all.ts"));
    std::fs::write(&a, mp4).unwrap();
    std::fs::write(&b, all_ts).unwrap();
    (a, b)
}

fn first_pts(path: &Path, stream: &str) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-show_entries"])
        .args([
            "packet=pts_time",
            "-read_intervals",
            "%+#1",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.trim().split(',').next().unwrap_or("");
    first
        .parse()
        .unwrap_or_else(|_| panic!("{stream} pts: {text:?}"))
}

fn ffmpeg_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_ts_rendition_has_the_fmp4_cuts_and_decodes_frame_exact_with_aac() {
    if !ffmpeg_available("the_ts_rendition_has_the_fmp4_cuts_and_decodes_frame_exact_with_aac") {
        return;
    }
    let dir = scratch_dir("ts_rendition");
    let clip = access_units(&generate_h264_clip(&dir, 4, 25));
    let (asc, aac) = adts_frames(&generate_aac_clip(&dir, 4));
    let mut s = HlsStream::new(ts_config(10));
    let _ = push_av_clip(&mut s, &clip, asc, &aac);
    s.end(T0_MS);

    let fmp4 = playlist(s.playlist(false));
    let ts = playlist(s.ts_playlist());
    assert_eq!(ts.version, Some(3));
    assert_eq!(ts.media_sequence, fmp4.media_sequence);
    assert_eq!(ts.target_duration, fmp4.target_duration);
    assert!(ts.end_list);
    assert_eq!(ts.segments.len(), fmp4.segments.len());
    for (t, f) in ts.segments.iter().zip(&fmp4.segments) {
        assert_eq!(t.duration, f.duration);
        assert_eq!(t.uri.replace(".ts", ".m4s"), f.uri);
        assert_eq!(t.program_date_time, f.program_date_time);
        assert!(t.map.is_none(), "no EXT-X-MAP for TS");
    }

    let (mp4, all_ts) = write_both(&s, &dir);
    let (ts_streams, stderr) = ffprobe_streams(&all_ts);
    let (mp4_streams, _) = ffprobe_streams(&mp4);
    assert!(stderr.is_empty(), "{stderr}");
    let frames = |streams: &[crate::mux::fmp4::test_support::ProbedStream], codec: &str| {
        streams.iter().find(|x| x.codec == codec).map(|x| x.frames)
    };
    assert_eq!(frames(&ts_streams, "h264"), Some(clip.frames.len() as u64));
    assert_eq!(frames(&ts_streams, "aac"), frames(&mp4_streams, "aac"));
    assert_eq!(ffmpeg_errors(&all_ts), "");
    // One timeline for both renditions, the TS one a second in.
    let (v_ts, v_mp4) = (first_pts(&all_ts, "v:0"), first_pts(&mp4, "v:0"));
    assert!(
        (v_ts - v_mp4 - 1.0).abs() < 0.001,
        "video {v_ts} vs {v_mp4}"
    );
    let (a_ts, a_mp4) = (first_pts(&all_ts, "a:0"), first_pts(&mp4, "a:0"));
    assert!(
        (a_ts - a_mp4 - 1.0).abs() < 0.001,
        "audio {a_ts} vs {a_mp4}"
    );
    // Every TS segment on its own starts with a keyframe and decodes.
    for seg in &ts.segments {
        let path = dir.join(&seg.uri);
        std::fs::write(&path, s.get(&seg.uri).unwrap()).unwrap();
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .args(["packet=flags", "-read_intervals", "%+#1", "-of", "csv=p=0"])
            .arg(&path)
            .output()
            .unwrap();
        let flags = String::from_utf8_lossy(&out.stdout);
        assert!(flags.trim_start().starts_with('K'), "{}: {flags}", seg.uri);
        assert_eq!(ffmpeg_errors(&path), "", "{}", seg.uri);
    }
}

#[test]
fn a_resolution_change_is_a_discontinuity_with_the_new_size_in_band() {
    if !ffmpeg_available("a_resolution_change_is_a_discontinuity_with_the_new_size_in_band") {
        return;
    }
    let dir = scratch_dir("ts_resize");
    let (small, large) = clips_of_two_sizes(&dir, 2);
    let mut s = HlsStream::new(ts_config(10));
    push_clip(&mut s, &small, 0);
    push_clip(&mut s, &large, small.frames.len() as i64);
    s.end(T0_MS);
    let ts = playlist(s.ts_playlist());
    let fmp4 = playlist(s.playlist(false));
    let flags: Vec<bool> = ts.segments.iter().map(|x| x.discontinuity).collect();
    let expected: Vec<bool> = fmp4.segments.iter().map(|x| x.discontinuity).collect();
    assert_eq!(flags, expected);
    assert_eq!(flags.iter().filter(|d| **d).count(), 1);
    let (_, all_ts) = write_both(&s, &dir);
    let (sizes, stderr) = ffprobe_frame_sizes(&all_ts);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(sizes.len(), small.frames.len() + large.frames.len());
    assert_eq!(sizes.first(), Some(&(320, 240)));
    assert_eq!(sizes.last(), Some(&(640, 360)));
}

#[test]
fn opus_audio_leaves_a_video_only_ts_rendition() {
    let mut s = HlsStream::new(ts_config(6));
    s.set_video(params(SPS_320X240));
    s.set_audio(opus()).unwrap();
    for i in 0..60 {
        s.push(opus_frame(i), T0_MS);
    }
    feed(&mut s, 0..60, 25);
    let ts = playlist(s.ts_playlist());
    let seg = s.get(&ts.segments[0].uri).unwrap();
    // PIDs in use: PAT, PMT, video; no audio PID.
    let pids: std::collections::BTreeSet<u16> = seg
        .chunks(188)
        .map(|p| u16::from_be_bytes([p[1] & 0x1f, p[2]]))
        .collect();
    assert_eq!(pids.into_iter().collect::<Vec<_>>(), [0, 0x100, 0x1000]);
}

#[test]
fn without_the_option_there_is_no_ts_rendition() {
    let mut s = HlsStream::new(HlsConfig {
        mpegts: false,
        ..ts_config(6)
    });
    s.set_video(params(SPS_320X240));
    feed(&mut s, 0..60, 25);
    assert!(s.playlist(false).is_some());
    assert!(s.ts_playlist().is_none());
    assert!(s.get("ab12-0.ts").is_none());
}
