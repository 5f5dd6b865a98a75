//! In-band parameter sets in [`HlsStream`] segments: each video keyframe sample opens with the
//! SPS and PPS of its init segment, other samples are untouched, and a resolution change
//! decodes even for a player that keeps the first init (as libavformat's HLS demuxer does).

use bytes::{BufMut, Bytes, BytesMut};

use super::stream_audio_tests::{opus, opus_frame};
use super::stream_tests::{config, feed, params, parse, push_clip, video, video_stream, T0_MS};
use super::HlsStream;
use crate::media::h264::{avcc_nals, nal, nal_type};
use crate::mux::fmp4::test_support::{
    clips_of_two_sizes, ffmpeg_available, ffprobe_frame_sizes, parse_boxes, parse_media_segment,
    scratch_dir, PPS_X264, SPS_320X240, SPS_640X360,
};

/// The bytes of each sample of the segment's first track (video), in order, from `mdat`.
fn video_samples(segment: &[u8]) -> Vec<Vec<u8>> {
    let (_, trafs) = parse_media_segment(segment);
    let boxes = parse_boxes(segment).unwrap();
    let mdat = boxes.iter().find(|b| b.kind == "mdat").unwrap().body;
    let mut at = 0;
    trafs[0]
        .samples
        .iter()
        .map(|&(_, size, _)| {
            let sample = mdat[at..at + size as usize].to_vec();
            at += size as usize;
            sample
        })
        .collect()
}

/// `sps`, `pps` and then `rest`, each NAL unit with its 4-byte length.
fn with_parameter_sets(sps: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for unit in [sps, PPS_X264] {
        out.put_u32(unit.len() as u32);
        out.put_slice(unit);
    }
    out.put_slice(rest);
    out.to_vec()
}

#[test]
fn keyframe_samples_open_with_sps_and_pps_and_other_samples_are_untouched() {
    let mut s = video_stream(1000, 6);
    feed(&mut s, 0..51, 25);
    let p = parse(&s);
    assert_eq!(p.segments.len(), 2);
    for (k, seg) in p.segments.iter().enumerate() {
        let samples = video_samples(&s.get(&seg.uri).unwrap());
        assert_eq!(samples.len(), 25);
        let first = k as i64 * 25;
        assert_eq!(
            samples[0],
            with_parameter_sets(SPS_320X240, &video(first, true).data),
            "segment {k}: SPS, PPS, then the IDR"
        );
        for (i, sample) in samples.iter().enumerate().skip(1) {
            assert_eq!(sample[..], video(first + i as i64, false).data[..]);
        }
    }
}

#[test]
fn after_a_resolution_change_keyframes_carry_the_new_inits_parameter_sets() {
    let mut s = video_stream(1000, 6);
    feed(&mut s, 0..30, 25);
    s.set_video(params(SPS_640X360));
    feed(&mut s, 30..101, 25);
    let p = parse(&s);
    let first_sps: Vec<Vec<u8>> = p
        .segments
        .iter()
        .map(|seg| {
            let samples = video_samples(&s.get(&seg.uri).unwrap());
            avcc_nals(&samples[0]).next().unwrap().to_vec()
        })
        .collect();
    // Segments 0 and 1 (cut early at frame 50) are the old size, 2 and 3 the new.
    assert_eq!(p.segments.len(), 4);
    assert!(p.segments[2].discontinuity);
    assert_eq!(first_sps[..2], [SPS_320X240.to_vec(), SPS_320X240.to_vec()]);
    assert_eq!(first_sps[2..], [SPS_640X360.to_vec(), SPS_640X360.to_vec()]);
    // The in-band copies are the ones in that segment's init.
    let init = s.get(&p.segments[2].map.as_ref().unwrap().uri).unwrap();
    assert!(init.windows(SPS_640X360.len()).any(|w| w == SPS_640X360));
}

#[test]
fn an_access_unit_that_brings_its_own_sps_and_pps_is_not_doubled() {
    let mut s = video_stream(1000, 6);
    for i in 0..51 {
        let mut frame = video(i, i % 25 == 0);
        if i == 0 {
            frame.data = Bytes::from(with_parameter_sets(SPS_320X240, &frame.data));
        }
        s.push(frame, T0_MS);
    }
    // The first keyframe brought its own; the second did not and gets the stream's.
    for seg in &parse(&s).segments {
        let samples = video_samples(&s.get(&seg.uri).unwrap());
        let types: Vec<u8> = avcc_nals(&samples[0]).map(|n| nal_type(n[0])).collect();
        assert_eq!(types, [nal::SPS, nal::PPS, nal::IDR], "{}", seg.uri);
    }
}

#[test]
fn audio_samples_never_get_parameter_sets() {
    let mut s = video_stream(1000, 6);
    s.set_audio(opus()).unwrap();
    for i in 0..52 {
        if i % 2 == 0 {
            s.push(video(i / 2, (i / 2) % 25 == 0), T0_MS);
        }
        s.push(opus_frame(i), T0_MS);
    }
    let p = parse(&s);
    let seg = s.get(&p.segments[0].uri).unwrap();
    let (_, trafs) = parse_media_segment(&seg);
    assert_eq!(trafs[1].track_id, 2);
    assert!(
        trafs[1].samples.iter().all(|x| x.1 == 3),
        "Opus frames as sent"
    );
}

#[test]
fn a_player_that_keeps_the_first_init_decodes_both_sizes_without_errors() {
    let test = "a_player_that_keeps_the_first_init_decodes_both_sizes_without_errors";
    if !ffmpeg_available(test) {
        return;
    }
    let dir = scratch_dir("hls-in-band");
    let (small, large) = clips_of_two_sizes(&dir, 2);
    let mut s = HlsStream::new(config(1000, 10));
    push_clip(&mut s, &small, 0);
    push_clip(&mut s, &large, 50);
    s.end(T0_MS + 4000);
    let p = parse(&s);
    assert_eq!(p.segments.len(), 4);
    assert!(p.segments[2].discontinuity, "a new init for the new size");
    // libavformat's view: the first init, then every segment, whatever EXT-X-MAP says.
    let mut file = s
        .get(&p.segments[0].map.as_ref().unwrap().uri)
        .unwrap()
        .to_vec();
    for seg in &p.segments {
        file.extend_from_slice(&s.get(&seg.uri).unwrap());
    }
    let path = dir.join("first-init.mp4");
    std::fs::write(&path, &file).unwrap();
    let (sizes, stderr) = ffprobe_frame_sizes(&path);
    assert_eq!(stderr, "", "decode errors ({})", path.display());
    let mut expected = vec![(320, 240); 50];
    expected.extend([(640, 360); 50]);
    assert_eq!(sizes, expected);
    let _ = std::fs::remove_dir_all(&dir);
}
