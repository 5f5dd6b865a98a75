//! Behaviour of [`HlsStream`]: where segments are cut, the sliding window, parameter-set
//! changes, the end of a stream, and a real x264 clip decoded by ffprobe.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::stream_audio_tests::opus;
use super::{HlsConfig, HlsStream};
use crate::media::h264::ParameterSets;
use crate::media::{Codec, Frame};
use crate::mux::fmp4::test_support::{
    access_units, ffmpeg_available, ffprobe_streams, generate_h264_clip, parse_media_segment,
    scratch_dir, Clip, ProbedStream, PPS_X264, SPS_320X240, SPS_640X360,
};
use crate::mux::fmp4::TrackCodec;

pub(super) const SYNC: u32 = 0x0200_0000;
pub(super) const T0_MS: i64 = 1_700_000_000_000;
/// 25 fps in 90 kHz ticks.
pub(super) const FRAME: i64 = 3600;

pub(super) fn params(sps: &'static [u8]) -> ParameterSets {
    ParameterSets::new(Bytes::from_static(sps), Bytes::from_static(PPS_X264)).unwrap()
}

pub(super) fn config(target_ms: u64, window: usize) -> HlsConfig {
    HlsConfig {
        segment_target: Duration::from_millis(target_ms),
        window,
        name_prefix: "ab12".to_string(),
        ..HlsConfig::default()
    }
}

/// A fake AVCC access unit that records its index, so tests can find frames in segments.
pub(super) fn video(i: i64, keyframe: bool) -> Frame {
    let mut data = BytesMut::new();
    data.put_u32(5);
    data.put_u8(if keyframe { 0x65 } else { 0x41 });
    data.put_u32(i as u32);
    Frame {
        codec: Codec::H264,
        pts: i * FRAME,
        dts: i * FRAME,
        keyframe,
        data: data.freeze(),
    }
}

/// Pushes frames `range` at 25 fps with a keyframe every `gop` frames.
pub(super) fn feed(s: &mut HlsStream, range: std::ops::Range<i64>, gop: i64) -> usize {
    let mut published = 0;
    for i in range {
        if s.push(video(i, i % gop == 0), T0_MS + i * 40) {
            published += 1;
        }
    }
    published
}

/// Feeds `clip` (x264, cut into access units) as 25 fps frames numbered from `first`, with its
/// parameter sets before each keyframe as a WebRTC sender has them.
pub(super) fn push_clip(s: &mut HlsStream, clip: &Clip, first: i64) {
    for (i, (data, key)) in clip.frames.iter().enumerate() {
        if *key {
            s.set_video(ParameterSets::new(clip.sps.clone(), clip.pps.clone()).unwrap());
        }
        let n = first + i as i64;
        let frame = Frame {
            codec: Codec::H264,
            pts: n * FRAME,
            dts: n * FRAME,
            keyframe: *key,
            data: data.clone(),
        };
        s.push(frame, T0_MS + n * 40);
    }
}

/// Feeds `clip` (25 fps) with the mono 48 kHz AAC frames `aac` (AudioSpecificConfig `asc`)
/// interleaved by time, as the hub delivers them; every frame arrives 40 ms after the last.
/// Returns how many audio frames went in (those up to the last video frame's time).
pub(super) fn push_av_clip(s: &mut HlsStream, clip: &Clip, asc: Bytes, aac: &[Bytes]) -> usize {
    s.set_audio(TrackCodec::Aac {
        audio_specific_config: asc,
        sample_rate: 48_000,
        channels: 1,
    })
    .unwrap();
    let mut a = 0usize;
    for (i, (data, key)) in clip.frames.iter().enumerate() {
        let t = i as i64 * FRAME;
        while a < aac.len() && (a as i64) * 1920 <= t {
            let f = Frame {
                codec: Codec::Aac,
                pts: a as i64 * 1920,
                dts: a as i64 * 1920,
                keyframe: true,
                data: aac[a].clone(),
            };
            s.push(f, T0_MS + i as i64 * 40);
            a += 1;
        }
        if *key {
            s.set_video(ParameterSets::new(clip.sps.clone(), clip.pps.clone()).unwrap());
        }
        let frame = Frame {
            codec: Codec::H264,
            pts: t,
            dts: t,
            keyframe: *key,
            data: data.clone(),
        };
        s.push(frame, T0_MS + i as i64 * 40);
    }
    a
}

pub(super) fn parse(s: &HlsStream) -> m3u8_rs::MediaPlaylist {
    let text = s.playlist(false).expect("playlist");
    match m3u8_rs::parse_media_playlist(&text) {
        Ok((_, p)) => p,
        Err(e) => panic!("m3u8-rs: {e:?}\n{}", String::from_utf8_lossy(&text)),
    }
}

pub(super) fn text(s: &HlsStream) -> String {
    String::from_utf8(s.playlist(false).unwrap().to_vec()).unwrap()
}

pub(super) fn video_stream(target_ms: u64, window: usize) -> HlsStream {
    let mut s = HlsStream::new(config(target_ms, window));
    s.set_video(params(SPS_320X240));
    s
}

#[test]
fn no_playlist_until_the_first_segment_is_complete() {
    let mut s = video_stream(2000, 6);
    assert!(s.playlist(false).is_none());
    assert_eq!(feed(&mut s, 0..50, 25), 0, "2 s of content is not yet cut");
    assert!(s.playlist(false).is_none());
    assert_eq!(feed(&mut s, 50..51, 25), 1);
    assert!(s.playlist(false).is_some());
}

#[test]
fn cuts_only_on_keyframes_and_never_before_the_target() {
    // Keyframes every 0.6 s (15 frames), target 2 s: cuts at 2.4 s multiples of 0.6 ≥ 2.
    let mut s = video_stream(2000, 6);
    feed(&mut s, 0..151, 15);
    let p = parse(&s);
    let durations: Vec<f32> = p.segments.iter().map(|x| x.duration).collect();
    assert_eq!(durations, [2.4, 2.4]);
    for seg in &p.segments {
        let (_, trafs) = parse_media_segment(&s.get(&seg.uri).unwrap());
        assert_eq!(trafs.len(), 1);
        assert_eq!(trafs[0].samples.len(), 60);
        assert_eq!(trafs[0].samples[0].2, SYNC, "first sample is a sync sample");
        assert!(trafs[0].samples.iter().all(|x| x.0 == 3600));
    }
}

#[test]
fn long_gop_yields_one_long_segment_instead_of_a_cut_mid_gop() {
    let mut s = video_stream(2000, 6);
    feed(&mut s, 0..251, 125); // keyframes every 5 s
    let p = parse(&s);
    assert_eq!(p.segments.len(), 2);
    assert_eq!(p.segments[0].duration, 5.0);
    let (_, trafs) = parse_media_segment(&s.get(&p.segments[0].uri).unwrap());
    let flags: Vec<u32> = trafs[0].samples.iter().map(|x| x.2).collect();
    assert_eq!(flags[0], SYNC);
    assert!(
        flags[1..].iter().all(|f| *f != SYNC),
        "one GOP, one sync sample"
    );
}

#[test]
fn segments_are_contiguous_on_the_fmp4_timeline() {
    let mut s = video_stream(1000, 6);
    feed(&mut s, 1000..1101, 25); // first dts is 3.6e6 ticks: the timeline starts at 0
    let p = parse(&s);
    let mut expected_tfdt = 0;
    for (k, seg) in p.segments.iter().enumerate() {
        let (seq, trafs) = parse_media_segment(&s.get(&seg.uri).unwrap());
        assert_eq!(seq, k as u32 + 1, "mfhd sequence starts at 1");
        assert_eq!(trafs[0].base_media_decode_time, expected_tfdt);
        expected_tfdt += trafs[0].samples.iter().map(|x| u64::from(x.0)).sum::<u64>();
    }
    assert_eq!(expected_tfdt, 4 * 90_000);
}

#[test]
fn window_slides_one_media_sequence_per_removed_segment() {
    let mut s = video_stream(1000, 3);
    feed(&mut s, 0..101, 25); // four 1 s segments
    let p = parse(&s);
    assert_eq!(p.media_sequence, 1);
    let uris: Vec<&str> = p.segments.iter().map(|x| x.uri.as_str()).collect();
    assert_eq!(uris, ["ab12-1.m4s", "ab12-2.m4s", "ab12-3.m4s"]);
    feed(&mut s, 101..176, 25); // three more
    let p = parse(&s);
    assert_eq!(p.media_sequence, 4);
    assert_eq!(s.media_sequence(), 4);
    assert_eq!(s.next_media_sequence(), 7);
    assert_eq!(p.segments[0].uri, "ab12-4.m4s");
    // The map is written again for the first listed segment after sliding.
    assert_eq!(p.segments[0].map.as_ref().unwrap().uri, "ab12-init-0.mp4");
    // Two segments stay fetchable after leaving the playlist; older ones are gone.
    assert!(s.get("ab12-3.m4s").is_some());
    assert!(s.get("ab12-2.m4s").is_some());
    assert!(s.get("ab12-1.m4s").is_none());
    assert!(s.get("ab12-init-0.mp4").is_some());
    assert!(s.get("nope.m4s").is_none());
}

#[test]
fn window_below_three_segments_is_raised_to_three() {
    let mut s = video_stream(1000, 1);
    feed(&mut s, 0..151, 25);
    assert_eq!(parse(&s).segments.len(), 3);
}

#[test]
fn target_duration_is_ceil_of_one_and_a_half_targets() {
    for (target_ms, expected) in [(2000, 3), (1000, 2), (6000, 9), (500, 1), (4000, 6)] {
        let s = HlsStream::new(config(target_ms, 6));
        assert_eq!(s.target_duration(), expected, "target {target_ms} ms");
    }
    let mut s = video_stream(2000, 6);
    feed(&mut s, 0..51, 25);
    assert_eq!(parse(&s).target_duration, 3);
}

#[test]
fn playlist_header_tags_and_program_date_time_of_each_first_frame() {
    let mut s = video_stream(1000, 6);
    feed(&mut s, 0..51, 25);
    let p = parse(&s);
    assert_eq!(p.version, Some(7));
    assert!(p.independent_segments);
    assert!(!p.end_list);
    assert_eq!(p.discontinuity_sequence, 0);
    let pdt: Vec<i64> = p
        .segments
        .iter()
        .map(|x| x.program_date_time.unwrap().timestamp_millis())
        .collect();
    assert_eq!(pdt, [T0_MS, T0_MS + 1000]);
    let t = text(&s);
    assert!(
        t.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n"),
        "{t}"
    );
    assert!(t.contains("#EXTINF:1.000,\nab12-0.m4s\n"), "{t}");
}

/// Frames arrive with network and encoder jitter, but a segment's date is the first one's plus
/// the media time before it: hls.js aligns each playlist reload by these dates, and a date
/// off its EXTINF sum shifts every part it knows against the media it has buffered.
#[test]
fn program_date_time_follows_the_media_timeline_not_each_arrival() {
    let mut s = video_stream(1000, 6);
    // 29.97 fps (3003 ticks a frame, so segments are not whole ms), a keyframe every 10.
    for i in 0..130i64 {
        let mut f = video(i, i % 10 == 0);
        f.dts = i * 3003;
        f.pts = f.dts;
        let jitter = [0, 37, 5, 61, 12][i as usize % 5];
        s.push(f, T0_MS + 7 + i * 33 + jitter);
    }
    let p = parse(&s);
    assert!(p.segments.len() >= 4, "{}", text(&s));
    let first = p.segments[0].program_date_time.unwrap().timestamp_millis();
    assert_eq!(
        first,
        T0_MS + 7,
        "the first segment is dated by its first frame's arrival"
    );
    let mut media_ms = 0.0;
    for seg in &p.segments {
        let pdt = seg.program_date_time.unwrap().timestamp_millis();
        assert!(
            ((pdt - first) as f64 - media_ms).abs() <= 0.5,
            "segment {} dated {} ms after the first, its media starts {media_ms} ms after",
            seg.uri,
            pdt - first
        );
        media_ms += f64::from(seg.duration) * 1000.0;
    }
}

#[test]
fn timeline_break_dates_the_next_segment_by_its_arrival() {
    let mut s = video_stream(1000, 6);
    feed(&mut s, 1000..1030, 25);
    // Frames 1000.. arrived from T0 + 40 s; the sender restarts its clock 10 s later.
    for i in 0..26 {
        s.push(video(i, i % 25 == 0), T0_MS + 50_000 + i * 40);
    }
    let p = parse(&s);
    let pdt: Vec<i64> = p
        .segments
        .iter()
        .map(|x| x.program_date_time.unwrap().timestamp_millis() - T0_MS)
        .collect();
    assert_eq!(pdt, [40_000, 41_000, 50_000]);
}

#[test]
fn repeated_identical_parameter_sets_keep_one_init_segment() {
    let mut s = video_stream(1000, 6);
    for i in 0..101 {
        if i % 25 == 0 {
            // WebRTC senders put SPS/PPS before every IDR.
            s.set_video(params(SPS_320X240));
        }
        s.push(video(i, i % 25 == 0), T0_MS);
    }
    let t = text(&s);
    assert_eq!(t.matches("#EXT-X-MAP").count(), 1);
    assert!(!t.contains("DISCONTINUITY"));
    assert!(s.get("ab12-init-1.mp4").is_none());
}

#[test]
fn sps_change_starts_a_new_init_with_discontinuity_at_the_next_keyframe() {
    let mut s = video_stream(2000, 6);
    feed(&mut s, 0..60, 25); // segment 0 done at frame 50; segment 1 open
    s.set_video(params(SPS_640X360));
    assert!(s.wants_keyframe(), "a keyframe is needed to switch");
    feed(&mut s, 60..75, 25); // frame 75 is the next keyframe: cut there, early
    assert_eq!(feed(&mut s, 75..76, 25), 1);
    assert_eq!(s.resolution(), Some((640, 360)));
    feed(&mut s, 76..126, 25);
    let p = parse(&s);
    let uris: Vec<&str> = p.segments.iter().map(|x| x.uri.as_str()).collect();
    assert_eq!(uris, ["ab12-0.m4s", "ab12-1.m4s", "ab12-2.m4s"]);
    assert_eq!(p.segments[1].duration, 1.0, "cut early for the switch");
    assert!(!p.segments[1].discontinuity);
    assert!(p.segments[2].discontinuity);
    assert_eq!(p.segments[2].map.as_ref().unwrap().uri, "ab12-init-1.mp4");
    assert!(p.segments[1].map.is_none());
    // The new init describes the new size; the old one stays while segments use it.
    let new_init = s.get("ab12-init-1.mp4").unwrap();
    let avc1_size = [0x02, 0x80, 0x01, 0x68]; // avc1 width 640, height 360 (16-bit each)
    assert!(new_init.windows(4).any(|w| w == avc1_size));
    assert!(s.get("ab12-init-0.mp4").is_some());
    assert_eq!(s.codecs().as_deref(), Some("avc1.42c01e"));
}

#[test]
fn discontinuity_sequence_counts_discontinuities_that_slid_out() {
    let mut s = video_stream(1000, 3);
    feed(&mut s, 0..30, 25);
    s.set_video(params(SPS_640X360));
    feed(&mut s, 30..201, 25);
    let p = parse(&s);
    assert_eq!(p.discontinuity_sequence, 1);
    assert!(p.segments.iter().all(|x| !x.discontinuity));
    // The first listed segment still names its (new) init.
    assert_eq!(p.segments[0].map.as_ref().unwrap().uri, "ab12-init-1.mp4");
    // Init 0 is no longer referenced by any stored segment.
    assert!(s.get("ab12-init-0.mp4").is_none());
}

#[test]
fn end_flushes_the_open_segment_and_adds_endlist() {
    let mut s = video_stream(2000, 6);
    feed(&mut s, 0..80, 25);
    s.end(T0_MS + 4000);
    let p = parse(&s);
    assert!(p.end_list);
    assert_eq!(p.segments.len(), 2);
    // 30 frames; the last keeps the previous frame's duration.
    assert_eq!(p.segments[1].duration, 1.2);
    assert!(s.is_ended());
    assert!(!s.wants_keyframe());
    // Frames after the end are ignored.
    assert!(!s.push(video(80, false), T0_MS));
    assert!(!s.push(video(100, true), T0_MS));
    assert_eq!(parse(&s).segments.len(), 2);
}

#[test]
fn end_before_any_segment_leaves_no_playlist() {
    let mut s = video_stream(2000, 6);
    s.end(T0_MS);
    assert!(s.playlist(false).is_none());
}

#[test]
fn video_before_parameter_sets_or_first_keyframe_is_dropped() {
    let mut s = HlsStream::new(config(1000, 6));
    assert!(s.wants_keyframe());
    feed(&mut s, 0..30, 25); // no SPS/PPS yet: nothing can be written
    s.set_video(params(SPS_320X240));
    feed(&mut s, 30..50, 25); // P-frames: still waiting for an IDR
    feed(&mut s, 50..76, 25);
    let p = parse(&s);
    assert_eq!(p.segments.len(), 1);
    let (_, trafs) = parse_media_segment(&s.get(&p.segments[0].uri).unwrap());
    assert_eq!(
        trafs[0].base_media_decode_time, 0,
        "timeline starts at the first IDR"
    );
    assert_eq!(trafs[0].samples.len(), 25);
}

#[test]
fn playlist_is_cached_until_it_changes() {
    let mut s = video_stream(1000, 6);
    feed(&mut s, 0..26, 25);
    let a = s.playlist(false).unwrap();
    feed(&mut s, 26..40, 25);
    let b = s.playlist(false).unwrap();
    assert_eq!(a.as_ptr(), b.as_ptr(), "same buffer, no re-render");
    feed(&mut s, 40..51, 25);
    assert_ne!(s.playlist(false).unwrap(), a);
}

#[test]
fn wants_keyframe_once_the_segment_is_nearly_due() {
    let mut s = video_stream(2000, 6);
    feed(&mut s, 0..1, 250);
    assert!(!s.wants_keyframe());
    feed(&mut s, 1..47, 250); // up to 1.84 s
    assert!(!s.wants_keyframe());
    feed(&mut s, 47..48, 250); // 1.88 s: past the cut point, 150 ms before the target
    assert!(s.wants_keyframe());
}

#[test]
fn timestamps_jumping_back_give_a_discontinuity_and_a_monotonic_timeline() {
    let mut s = video_stream(1000, 6);
    feed(&mut s, 1000..1030, 25); // segment 0: frames 1000..1024; 1025..1029 open
                                  // The sender restarts its clock at 0 with a keyframe: cut there, before the target.
    feed(&mut s, 0..26, 25);
    let p = parse(&s);
    let disc: Vec<bool> = p.segments.iter().map(|x| x.discontinuity).collect();
    assert_eq!(disc, [false, false, true]);
    let tfdt: Vec<u64> = p
        .segments
        .iter()
        .map(|x| parse_media_segment(&s.get(&x.uri).unwrap()).1[0].base_media_decode_time)
        .collect();
    // The new clock is re-anchored where the previous segment (5 frames) ended.
    assert_eq!(tfdt, [0, 25 * 3600, 30 * 3600]);
}

#[test]
fn name_prefix_keeps_only_url_safe_characters() {
    let mut s = HlsStream::new(HlsConfig {
        name_prefix: "a/b\"c\n".to_string(),
        ..config(1000, 6)
    });
    s.set_video(params(SPS_320X240));
    feed(&mut s, 0..26, 25);
    assert!(s.get("a_b_c_-0.m4s").is_some());
    assert!(s.get("a_b_c_-init-0.mp4").is_some());
}

#[test]
fn bandwidth_reports_peak_and_average_of_listed_segments() {
    let mut s = video_stream(1000, 6);
    assert!(s.bandwidth().is_none());
    feed(&mut s, 0..51, 25);
    let b = s.bandwidth().unwrap();
    let sizes: Vec<u64> = parse(&s)
        .segments
        .iter()
        .map(|x| s.get(&x.uri).unwrap().len() as u64 * 8)
        .collect();
    assert_eq!(b.peak, *sizes.iter().max().unwrap());
    assert_eq!(b.average, sizes.iter().sum::<u64>().div_ceil(2));
}

#[test]
fn x264_clip_through_hls_stream_decodes_every_frame() {
    if !ffmpeg_available("x264_clip_through_hls_stream_decodes_every_frame") {
        return;
    }
    let dir = scratch_dir("hls-ffprobe");
    let clip = access_units(&generate_h264_clip(&dir, 2, 25));
    assert_eq!(clip.frames.len(), 50);
    let mut s = HlsStream::new(config(1000, 6));
    push_clip(&mut s, &clip, 250);
    s.end(T0_MS + 2000);
    let p = parse(&s);
    assert_eq!(p.segments.len(), 2);
    assert!(p.end_list);
    let mut file = s
        .get(&p.segments[0].map.as_ref().unwrap().uri)
        .unwrap()
        .to_vec();
    for seg in &p.segments {
        let data = s.get(&seg.uri).unwrap();
        assert_eq!(parse_media_segment(&data).1[0].samples[0].2, SYNC);
        file.extend_from_slice(&data);
    }
    let path = dir.join("hls.mp4");
    std::fs::write(&path, &file).unwrap();
    let (streams, stderr) = ffprobe_streams(&path);
    assert_eq!(stderr, "", "ffprobe complained");
    let expected = ProbedStream {
        codec: "h264".into(),
        width: 320,
        height: 240,
        frames: 50,
    };
    assert_eq!(streams, [expected]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn arbitrary_timestamps_flags_and_reconfigurations_never_panic() {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(0x4c5);
    let mut with_playlist = 0;
    for round in 0..200 {
        let target = Duration::from_millis(rng.random_range(0..5000));
        let cfg = HlsConfig {
            segment_target: target,
            window: rng.random_range(0..8),
            name_prefix: format!("r{round}"),
            ..HlsConfig::default()
        };
        let mut s = if rng.random_bool(0.2) {
            HlsStream::new_audio_only(cfg)
        } else {
            HlsStream::new(cfg)
        };
        let mut dts: i64 = rng.random();
        for _ in 0..300 {
            match rng.random_range(0..100) {
                0..=2 => s.set_video(params(if rng.random() {
                    SPS_320X240
                } else {
                    SPS_640X360
                })),
                3..=4 => {
                    let _ = s.set_audio(TrackCodec::Aac {
                        audio_specific_config: Bytes::from_static(&[0x11, 0x90]),
                        sample_rate: rng.random(),
                        channels: rng.random(),
                    });
                }
                5..=6 => {
                    let _ = s.set_audio(opus());
                }
                7 => dts = rng.random(), // clock jump anywhere
                8 if rng.random_bool(0.1) => s.end(rng.random()),
                _ => {}
            }
            dts = dts.saturating_add(rng.random_range(-4000..40_000));
            let codec = [Codec::H264, Codec::Opus, Codec::Aac][rng.random_range(0..3)];
            let frame = Frame {
                codec,
                pts: dts.saturating_add(rng.random_range(-9000..9000)),
                dts,
                keyframe: rng.random_bool(0.1),
                data: Bytes::from_static(b"\0\0\0\x01\x65"),
            };
            s.push(frame, rng.random());
            let _ = s.wants_keyframe();
        }
        s.end(0);
        if let Some(text) = s.playlist(false) {
            let p = match m3u8_rs::parse_media_playlist(&text) {
                Ok((_, p)) => p,
                Err(e) => panic!("round {round}: {e:?}"),
            };
            // The media sequence is the first listed segment's number; it names its init.
            let first = &p.segments[0];
            assert_eq!(first.uri, format!("r{round}-{}.m4s", p.media_sequence));
            assert!(first.map.is_some(), "round {round}");
            with_playlist += 1;
            for seg in &p.segments {
                // Every listed segment is stored and starts with a sync sample.
                let data = s.get(&seg.uri).expect("listed segment stored");
                let (_, trafs) = parse_media_segment(&data);
                assert_eq!(trafs[0].samples[0].2, SYNC, "round {round}");
            }
            assert!(p.end_list);
        }
        let _ = (s.bandwidth(), s.codecs(), s.resolution(), s.frame_rate());
    }
    assert!(
        with_playlist > 100,
        "the inputs produced segments: {with_playlist}"
    );
}

#[test]
fn switching_parameter_sets_back_before_the_keyframe_changes_nothing() {
    let mut s = video_stream(1000, 6);
    feed(&mut s, 0..30, 25);
    s.set_video(params(SPS_640X360));
    s.set_video(params(SPS_320X240));
    feed(&mut s, 30..76, 25);
    let t = text(&s);
    assert!(!t.contains("DISCONTINUITY"), "{t}");
    assert!(s.get("ab12-init-1.mp4").is_none());
    assert_eq!(s.resolution(), Some((320, 240)));
}
