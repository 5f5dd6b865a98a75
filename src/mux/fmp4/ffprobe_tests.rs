//! Round trips through ffprobe: a real x264 clip, muxed by this module, must decode completely;
//! a size change must decode under the first init when keyframes carry their SPS and PPS.

use bytes::Bytes;

use super::test_support::{
    access_units, clips_of_two_sizes, ffmpeg_available, ffprobe_frame_sizes, ffprobe_streams,
    generate_h264_clip, scratch_dir, Clip, ProbedStream,
};
use super::{
    init_segment, media_segment, InBandParameterSets, Sample, TrackCodec, TrackFragment, TrackSpec,
};
use crate::media::h264::ParameterSets;

#[test]
fn x264_clip_in_init_plus_two_segments_decodes_all_50_frames() {
    if !ffmpeg_available("x264_clip_in_init_plus_two_segments_decodes_all_50_frames") {
        return;
    }
    let dir = scratch_dir("fmp4-ffprobe");
    let clip = access_units(&generate_h264_clip(&dir, 2, 25));
    assert_eq!(clip.frames.len(), 50);
    let ps = ParameterSets::new(clip.sps.clone(), clip.pps.clone()).unwrap();
    let mut file = init_segment(&[TrackSpec {
        track_id: 1,
        timescale: 90_000,
        codec: TrackCodec::H264(ps),
    }])
    .to_vec();
    // 25 fps = 3600 ticks per frame; one segment per 25-frame GOP, each starting on its IDR.
    for (i, gop) in clip.frames.chunks(25).enumerate() {
        assert!(gop[0].1, "GOP starts with an IDR");
        let samples: Vec<Sample> = gop
            .iter()
            .map(|(data, key)| Sample {
                duration: 3600,
                cts_offset: 0,
                keyframe: *key,
                prefix: Bytes::new(),
                data: data.clone(),
            })
            .collect();
        let seg: Bytes = media_segment(
            i as u32 + 1,
            &[TrackFragment {
                track_id: 1,
                base_media_decode_time: i as u64 * 25 * 3600,
                samples: &samples,
            }],
        );
        file.extend_from_slice(&seg);
    }
    let path = dir.join("out.mp4");
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

/// One init segment for clip `a`, then one media segment per clip, `b` at another size: what
/// a player reads that keeps the first init (libavformat's HLS demuxer) when the stream
/// changes resolution. With `in_band`, keyframes carry their own clip's SPS and PPS.
fn first_init_then_both_clips(a: &Clip, b: &Clip, in_band: bool) -> Vec<u8> {
    let ps = |clip: &Clip| ParameterSets::new(clip.sps.clone(), clip.pps.clone()).unwrap();
    let mut file = init_segment(&[TrackSpec {
        track_id: 1,
        timescale: 90_000,
        codec: TrackCodec::H264(ps(a)),
    }])
    .to_vec();
    let mut decode_time = 0;
    for (i, clip) in [a, b].into_iter().enumerate() {
        let parameter_sets = InBandParameterSets::new(&ps(clip));
        let samples: Vec<Sample> = clip
            .frames
            .iter()
            .map(|(data, key)| {
                let (prefix, data) = if *key && in_band {
                    parameter_sets.keyframe_sample(data)
                } else {
                    (Bytes::new(), data.clone())
                };
                Sample {
                    duration: 3600,
                    cts_offset: 0,
                    keyframe: *key,
                    prefix,
                    data,
                }
            })
            .collect();
        let fragment = TrackFragment {
            track_id: 1,
            base_media_decode_time: decode_time,
            samples: &samples,
        };
        file.extend_from_slice(&media_segment(i as u32 + 1, &[fragment]));
        decode_time += 3600 * samples.len() as u64;
    }
    file
}

#[test]
fn a_size_change_decodes_under_the_first_init_when_keyframes_carry_sps_and_pps() {
    let test = "a_size_change_decodes_under_the_first_init_when_keyframes_carry_sps_and_pps";
    if !ffmpeg_available(test) {
        return;
    }
    let dir = scratch_dir("fmp4-in-band");
    let (small, large) = clips_of_two_sizes(&dir, 1);

    let path = dir.join("in-band.mp4");
    std::fs::write(&path, first_init_then_both_clips(&small, &large, true)).unwrap();
    let (sizes, stderr) = ffprobe_frame_sizes(&path);
    assert_eq!(stderr, "", "decode errors with in-band parameter sets");
    let mut expected = vec![(320, 240); 25];
    expected.extend([(640, 360); 25]);
    assert_eq!(sizes, expected);

    // The same segments without the in-band copies are the reported defect: the second clip
    // is decoded with the first one's SPS ("error while decoding MB" on every picture).
    let path = dir.join("out-of-band.mp4");
    std::fs::write(&path, first_init_then_both_clips(&small, &large, false)).unwrap();
    let (_, stderr) = ffprobe_frame_sizes(&path);
    assert!(
        stderr.contains("error while decoding MB"),
        "the control (no in-band parameter sets) decoded cleanly: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
