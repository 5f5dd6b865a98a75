//! Low-Latency HLS in [`HlsStream`]: the parts of each segment, their names, the playlist's
//! LL tags (read back by the strict reader), delta updates, progress for blocking requests,
//! and a real x264 + AAC stream whose parts ffprobe decodes.

use std::time::Duration;

use bytes::Bytes;

use super::stream_tests::{feed, params, push_av_clip, SYNC, T0_MS};
use super::strict::{parse_strict, StrictPlaylist};
use super::{HlsConfig, HlsStream};
use crate::media::{Codec, Frame};
use crate::mux::fmp4::test_support::{
    access_units, adts_frames, ffmpeg_available, ffprobe_frame_sizes, ffprobe_streams,
    generate_aac_clip, generate_h264_clip, parse_boxes, parse_media_segment, scratch_dir,
    SPS_320X240,
};
use crate::mux::fmp4::TrackCodec;

fn ll_config(target_ms: u64, window: usize, part_ms: u64) -> HlsConfig {
    HlsConfig {
        segment_target: Duration::from_millis(target_ms),
        window,
        name_prefix: "ab12".to_string(),
        part_target: Some(Duration::from_millis(part_ms)),
        ..HlsConfig::default()
    }
}

fn ll_stream(target_ms: u64, window: usize, part_ms: u64) -> HlsStream {
    let mut s = HlsStream::new(ll_config(target_ms, window, part_ms));
    s.set_video(params(SPS_320X240));
    s
}

fn strict(s: &HlsStream, delta: bool) -> StrictPlaylist {
    let text = String::from_utf8(s.playlist(delta).expect("playlist").to_vec()).unwrap();
    let p = parse_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(p.violations(), Vec::<String>::new(), "{text}");
    p
}

/// The first sample's flags of each track in a chunk (`moof` + `mdat`, `styp` or not).
fn first_sample_sync(chunk: &[u8]) -> bool {
    let (_, trafs) = parse_media_segment(chunk);
    trafs[0].samples[0].2 == SYNC
}

#[test]
fn parts_are_published_as_they_complete_and_hint_the_next() {
    // 25 fps (40 ms), 200 ms parts: five frames each; keyframes every second.
    let mut s = ll_stream(1000, 6, 200);
    assert_eq!(
        feed(&mut s, 0..5, 25),
        0,
        "the first part is not complete yet"
    );
    assert_eq!(feed(&mut s, 5..6, 25), 1, "frame 5 completes part 0");
    let progress = s.progress();
    assert_eq!(
        (
            progress.next_msn,
            progress.parts_in_open,
            progress.next_part
        ),
        (0, 1, 1)
    );
    let (_, trafs) = parse_media_segment(&s.get("ab12-p0.m4s").unwrap());
    assert_eq!(trafs[0].samples.len(), 5);
    // No playlist before a whole segment: players that ignore parts would find it empty.
    assert!(s.playlist(false).is_none());
    feed(&mut s, 6..31, 25);
    let p = strict(&s, false);
    assert_eq!(p.segments.len(), 2);
    assert_eq!(p.segments[0].parts[0].uri, "ab12-p0.m4s");
    assert_eq!(p.segments[0].parts[0].duration, 0.2);
    assert!(p.segments[0].parts[0].independent);
    assert_eq!(p.segments[0].map.as_deref(), Some("ab12-init-0.mp4"));
    let open = &p.segments[1];
    assert_eq!(
        (open.msn, open.uri.as_deref(), open.parts.len()),
        (1, None, 1)
    );
    assert_eq!(p.preload_hint.as_deref(), Some("ab12-p6.m4s"));
}

#[test]
fn a_segment_is_its_parts_back_to_back_and_only_keyframe_parts_are_independent() {
    let mut s = ll_stream(1000, 6, 200);
    // 3 s and one frame: segments 0..=2 complete; keyframes at 0, 1, 2, 3 s.
    feed(&mut s, 0..76, 25);
    let p = strict(&s, false);
    let complete: Vec<_> = p.segments.iter().filter(|x| x.uri.is_some()).collect();
    assert_eq!(complete.len(), 3);
    for seg in &complete {
        assert_eq!(seg.parts.len(), 5, "{seg:?}");
        let mut joined = Vec::new();
        for (i, part) in seg.parts.iter().enumerate() {
            assert_eq!(part.duration, 0.2);
            let data = s.get(&part.uri).expect("part stored");
            assert_eq!(part.independent, i == 0, "{}", part.uri);
            assert_eq!(first_sample_sync(&data), i == 0, "{}", part.uri);
            let kinds: Vec<&str> = parse_boxes(&data).unwrap().iter().map(|b| b.kind).collect();
            let expect: &[&str] = if i == 0 {
                &["styp", "moof", "mdat"]
            } else {
                &["moof", "mdat"]
            };
            assert_eq!(kinds, expect);
            joined.extend_from_slice(&data);
        }
        let whole = s.get(seg.uri.as_deref().unwrap()).unwrap();
        assert_eq!(&whole[..], &joined[..], "segment {} = its parts", seg.msn);
    }
    // Part names are numbered across segments, so the hint is right whatever comes next.
    let names: Vec<&str> = complete
        .iter()
        .flat_map(|x| x.parts.iter().map(|p| p.uri.as_str()))
        .collect();
    let expected: Vec<String> = (0..15).map(|i| format!("ab12-p{i}.m4s")).collect();
    assert_eq!(names, expected);
    // The fragments' sequence numbers only increase.
    let seqs: Vec<u32> = names
        .iter()
        .map(|n| parse_media_segment(&s.get(n).unwrap()).0)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[test]
fn the_header_carries_server_control_and_part_info() {
    let mut s = ll_stream(2000, 6, 200);
    feed(&mut s, 0..60, 50);
    let p = strict(&s, false);
    assert_eq!(p.target_duration, Some(3));
    assert_eq!(p.part_target, Some(0.2));
    assert_eq!(p.version, Some(9));
    assert_eq!(p.server_control["CAN-BLOCK-RELOAD"], "YES");
    assert_eq!(p.server_control["PART-HOLD-BACK"], "0.600");
    assert_eq!(p.server_control["HOLD-BACK"], "9.000");
    assert_eq!(p.server_control["CAN-SKIP-UNTIL"], "18.000");
    // m3u8-rs, which knows no LL tag, still reads the segments.
    let text = s.playlist(false).unwrap();
    let (_, parsed) = m3u8_rs::parse_media_playlist(&text).expect("m3u8-rs");
    assert_eq!(
        parsed.segments.iter().filter(|x| !x.uri.is_empty()).count(),
        1
    );
}

#[test]
fn only_recent_segments_list_their_parts_and_old_part_files_go() {
    // 1 s segments, target duration 2: parts stay listed for 6 s of segments.
    let mut s = ll_stream(1000, 12, 200);
    feed(&mut s, 0..(25 * 12 + 1), 25);
    let p = strict(&s, false);
    let with_parts: Vec<u64> = p
        .segments
        .iter()
        .filter(|x| x.uri.is_some() && !x.parts.is_empty())
        .map(|x| x.msn)
        .collect();
    assert_eq!(with_parts, (6..12).collect::<Vec<_>>());
    assert!(s.get("ab12-p0.m4s").is_none(), "old part files are dropped");
    assert!(
        s.get("ab12-p25.m4s").is_some(),
        "kept a segment longer than listed"
    );
    assert!(
        s.get("ab12-0.m4s").is_some(),
        "whole segments stay for the window"
    );
}

#[test]
fn delta_updates_skip_what_lies_beyond_can_skip_until() {
    // Target duration 2 s: CAN-SKIP-UNTIL 12 s; 20 one-second segments listed.
    let mut s = ll_stream(1000, 20, 200);
    feed(&mut s, 0..(25 * 24 + 1), 25);
    let full = strict(&s, false);
    let delta = strict(&s, true);
    let full_segments: Vec<_> = full.segments.iter().filter(|x| x.uri.is_some()).collect();
    assert_eq!(full_segments.len(), 20);
    assert_eq!(full.skipped_segments, 0);
    // Kept: the 12 segments that start within 12 s of the end (no part is open yet).
    assert_eq!(delta.skipped_segments, 8);
    assert_eq!(delta.media_sequence, full.media_sequence);
    // The first kept segment names its init segment again; the rest is the full list's tail.
    let mut kept = delta.segments.clone();
    assert_eq!(kept[0].map.take().as_deref(), Some("ab12-init-0.mp4"));
    assert_eq!(&kept[..], &full.segments[8..]);
    // Plain HLS and short windows have nothing to skip: the full playlist.
    let mut short = ll_stream(1000, 6, 200);
    feed(&mut short, 0..200, 25);
    assert_eq!(short.playlist(true), short.playlist(false));
}

#[test]
fn the_end_closes_the_last_segment_with_its_parts_and_drops_the_hint() {
    let mut s = ll_stream(1000, 6, 200);
    feed(&mut s, 0..37, 25);
    s.end(T0_MS + 2000);
    let p = strict(&s, false);
    assert!(p.ended);
    assert_eq!(p.preload_hint, None);
    let last = p.segments.last().unwrap();
    assert!(last.uri.is_some());
    assert_eq!(last.parts.len(), 3, "0.4 s + the rest of the frames");
    assert!(s.progress().ended);
}

#[test]
fn a_keyframe_on_a_part_boundary_makes_that_part_independent() {
    // Keyframes every 10 frames (0.4 s), segments of 1 s: parts at 0.4 s start with one.
    let mut s = ll_stream(1000, 6, 200);
    feed(&mut s, 0..31, 10);
    let p = strict(&s, false);
    let flags: Vec<bool> = p.segments[0].parts.iter().map(|x| x.independent).collect();
    assert_eq!(flags, [true, false, true, false, true, false]);
}

#[test]
fn audio_only_parts_are_all_independent() {
    let mut s = HlsStream::new_audio_only(ll_config(1000, 6, 200));
    s.set_audio(TrackCodec::Aac {
        audio_specific_config: Bytes::from_static(&[0x11, 0x90]),
        sample_rate: 48_000,
        channels: 2,
    })
    .unwrap();
    for i in 0..120i64 {
        let frame = Frame {
            codec: Codec::Aac,
            pts: i * 1920,
            dts: i * 1920,
            keyframe: true,
            data: Bytes::from_static(&[0x21, 0x10]),
        };
        s.push(frame, T0_MS + i * 21);
    }
    let p = strict(&s, false);
    let parts: Vec<_> = p.segments.iter().flat_map(|x| x.parts.iter()).collect();
    assert!(parts.len() >= 10);
    assert!(parts.iter().all(|x| x.independent));
    // 1024-sample frames at 48 kHz: nine make 192 ms, the most under 200.
    assert!(parts.iter().all(|x| x.duration <= 0.2), "{parts:?}");
}

#[test]
fn plain_hls_has_no_parts_or_ll_tags() {
    let mut s = HlsStream::new(HlsConfig {
        part_target: None,
        ..ll_config(1000, 6, 200)
    });
    s.set_video(params(SPS_320X240));
    feed(&mut s, 0..60, 25);
    let text = String::from_utf8(s.playlist(false).unwrap().to_vec()).unwrap();
    for tag in [
        "EXT-X-PART",
        "SERVER-CONTROL",
        "PRELOAD-HINT",
        "EXT-X-VERSION:9",
    ] {
        assert!(!text.contains(tag), "{tag} in\n{text}");
    }
    assert_eq!(s.progress().parts_in_open, 0);
    assert!(s.low_latency().is_none());
}

#[test]
fn part_numbers_are_read_only_from_this_publishs_names() {
    let s = ll_stream(1000, 6, 200);
    assert_eq!(s.part_number("ab12-p17.m4s"), Some(17));
    assert_eq!(s.part_number("ab12-17.m4s"), None);
    assert_eq!(s.part_number("cd34-p17.m4s"), None);
    assert_eq!(s.part_number("ab12-p.m4s"), None);
    assert_eq!(s.part_number("ab12-p+1.m4s"), None);
    assert_eq!(s.part_number("ab12-p99999999999999999999999.m4s"), None);
}

#[test]
fn ffprobe_decodes_parts_one_by_one_and_as_segments_with_aac() {
    if !ffmpeg_available("ffprobe_decodes_parts_one_by_one_and_as_segments_with_aac") {
        return;
    }
    let dir = scratch_dir("ll_parts");
    let clip = access_units(&generate_h264_clip(&dir, 3, 25));
    let (asc, aac) = adts_frames(&generate_aac_clip(&dir, 3));
    let mut s = HlsStream::new(ll_config(1000, 6, 200));
    let a = push_av_clip(&mut s, &clip, asc, &aac);
    s.end(T0_MS);
    let p = strict(&s, false);
    let init = s.get("ab12-init-0.mp4").unwrap();
    // Init + every part in order is one valid fMP4 stream; so is init + every segment.
    let mut by_parts = init.to_vec();
    let mut by_segments = init.to_vec();
    for seg in &p.segments {
        for part in &seg.parts {
            by_parts.extend_from_slice(&s.get(&part.uri).unwrap());
        }
        by_segments.extend_from_slice(&s.get(seg.uri.as_deref().unwrap()).unwrap());
    }
    assert_eq!(by_parts, by_segments);
    let path = dir.join("parts.mp4");
    std::fs::write(&path, &by_parts).unwrap();
    let (frames, stderr) = ffprobe_frame_sizes(&path);
    assert_eq!(frames.len(), clip.frames.len(), "{stderr}");
    let (streams, stderr) = ffprobe_streams(&path);
    let audio = streams
        .iter()
        .find(|x| x.codec == "aac")
        .expect("an AAC stream");
    // Every AAC frame but the last (held for its duration until the end) and those after the
    // last video frame's time.
    assert!(
        audio.frames as usize + 2 >= a && audio.frames > 0,
        "{} of {a}: {stderr}",
        audio.frames
    );
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An LL stream with mono 48 kHz AAC, fed 25 fps video and audio that lags it by `lag` ticks
/// (an encoder's delay), for `frames` video frames; `audio_until` stops the audio early.
fn lagging_av(frames: i64, lag: i64, audio_until: i64) -> HlsStream {
    let mut s = ll_stream(1000, 6, 200);
    s.set_audio(TrackCodec::Aac {
        audio_specific_config: Bytes::from_static(&[0x11, 0x88]),
        sample_rate: 48_000,
        channels: 1,
    })
    .unwrap();
    let mut a = 0i64;
    for i in 0..frames {
        let t = i * 3600;
        while a * 1920 <= (t - lag).min(audio_until) {
            let f = Frame {
                codec: Codec::Aac,
                pts: a * 1920,
                dts: a * 1920,
                keyframe: true,
                data: Bytes::from_static(&[0x21, 0x10, 0x04]),
            };
            s.push(f, T0_MS);
            a += 1;
        }
        s.push(super::stream_tests::video(i, i % 25 == 0), T0_MS + i * 40);
    }
    s
}

/// (video end, audio end) of a chunk, in 90 kHz ticks.
fn track_ends(chunk: &[u8]) -> (i64, Option<i64>) {
    let (_, trafs) = parse_media_segment(chunk);
    let end = |id: u32, scale: i64| {
        trafs.iter().find(|t| t.track_id == id).map(|t| {
            let sum: i64 = t.samples.iter().map(|s| i64::from(s.0)).sum();
            (t.base_media_decode_time as i64 + sum) * 90_000 / scale
        })
    };
    (end(1, 90_000).unwrap(), end(2, 48_000))
}

#[test]
fn every_part_and_segment_has_audio_up_to_its_video_end_despite_the_audio_lag() {
    // Audio 85 ms behind the video, as the Opus -> AAC path delivers it.
    let s = lagging_av(76, 7650, i64::MAX);
    let p = strict(&s, false);
    let mut checked = 0;
    for seg in p.segments.iter().filter(|x| x.uri.is_some()) {
        for uri in seg
            .parts
            .iter()
            .map(|x| x.uri.as_str())
            .chain(seg.uri.as_deref())
        {
            let (video_end, audio_end) = track_ends(&s.get(uri).unwrap());
            let audio_end = audio_end.expect("audio in every chunk");
            // The audio reaches the video's end, overshooting by less than one AAC frame.
            assert!(
                audio_end >= video_end && audio_end < video_end + 1920,
                "{uri}: video ends {video_end}, audio {audio_end}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked}");
}

#[test]
fn a_chunk_waits_for_audio_no_longer_than_200_ms_of_video() {
    // The audio stops at 1.5 s; parts must keep coming (each released after 200 ms of video).
    let s = lagging_av(100, 0, 135_000);
    let p = strict(&s, false);
    let parts: usize = p.segments.iter().map(|x| x.parts.len()).sum();
    // 4 s of video: about 20 parts, a few still held or waiting at the end.
    assert!(parts >= 15, "only {parts} parts published");
    assert!(p.segments.iter().filter(|x| x.uri.is_some()).count() >= 3);
}
