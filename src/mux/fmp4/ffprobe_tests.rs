//! Round trip through ffprobe: a real x264 clip, muxed by this module, must decode completely.

use bytes::Bytes;

use super::test_support::{
    access_units, ffmpeg_available, ffprobe_streams, generate_h264_clip, scratch_dir, ProbedStream,
};
use super::{init_segment, media_segment, Sample, TrackCodec, TrackFragment, TrackSpec};
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
