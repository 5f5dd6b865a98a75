//! Audio in [`HlsStream`]: Opus/AAC tracks next to video, audio-only streams, a track added
//! mid-stream, and an H.264 + AAC clip decoded by ffprobe.

use bytes::Bytes;

use super::stream_tests::{config, feed, params, parse, video, video_stream, FRAME, SYNC, T0_MS};
use super::{HlsError, HlsStream};
use crate::media::h264::ParameterSets;
use crate::media::{Codec, Frame};
use crate::mux::fmp4::test_support::{
    access_units, adts_frames, ffmpeg_available, ffprobe_streams, generate_aac_clip,
    generate_h264_clip, parse_media_segment, scratch_dir, SPS_320X240,
};
use crate::mux::fmp4::TrackCodec;

pub(super) fn opus_frame(i: i64) -> Frame {
    Frame {
        codec: Codec::Opus,
        pts: i * 1800,
        dts: i * 1800,
        keyframe: true,
        data: Bytes::from_static(&[0xfc, 0xff, 0xfe]),
    }
}

pub(super) fn opus() -> TrackCodec {
    TrackCodec::Opus {
        sample_rate: 48_000,
        channels: 2,
        pre_skip: 312,
    }
}

#[test]
fn video_with_opus_gets_two_tracks_per_segment() {
    let mut s = video_stream(1000, 6);
    s.set_audio(opus()).unwrap();
    assert_eq!(
        s.set_audio(TrackCodec::H264(params(SPS_320X240))),
        Err(HlsError::NotAudio)
    );
    // 20 ms audio interleaved with 40 ms video over 2 s (video first: audio waits for it).
    for i in 0..100 {
        if i % 2 == 0 {
            let v = i / 2;
            s.push(video(v, v % 25 == 0), T0_MS);
        }
        s.push(opus_frame(i), T0_MS);
    }
    assert_eq!(s.codecs().as_deref(), Some("avc1.42c00d,opus"));
    let p = parse(&s);
    assert_eq!(p.segments.len(), 1);
    let (_, trafs) = parse_media_segment(&s.get(&p.segments[0].uri).unwrap());
    let ids: Vec<u32> = trafs.iter().map(|t| t.track_id).collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(trafs[1].base_media_decode_time, 0);
    assert!(trafs[1].samples.iter().all(|x| x.0 == 960 && x.2 == SYNC));
    assert_eq!(trafs[0].samples.len(), 25);
}

#[test]
fn audio_only_stream_cuts_on_audio_frames_at_the_target() {
    let mut s = HlsStream::new_audio_only(config(1000, 6));
    assert!(!s.wants_keyframe());
    s.set_audio(opus()).unwrap();
    for i in 0..151 {
        s.push(opus_frame(i), T0_MS + i * 20);
    }
    // Video frames have nowhere to go.
    s.push(video(0, true), T0_MS);
    let p = parse(&s);
    let durations: Vec<f32> = p.segments.iter().map(|x| x.duration).collect();
    assert_eq!(durations, [1.0, 1.0, 1.0]);
    assert_eq!(s.codecs().as_deref(), Some("opus"));
    let (_, trafs) = parse_media_segment(&s.get(&p.segments[1].uri).unwrap());
    assert_eq!(trafs.len(), 1);
    assert_eq!(trafs[0].track_id, 2);
    assert_eq!(trafs[0].base_media_decode_time, 48_000);
}

#[test]
fn x264_with_aac_through_hls_stream_decodes_both_tracks() {
    if !ffmpeg_available("x264_with_aac_through_hls_stream_decodes_both_tracks") {
        return;
    }
    let dir = scratch_dir("hls-ffprobe-av");
    let clip = access_units(&generate_h264_clip(&dir, 2, 25));
    let (asc, aac) = adts_frames(&generate_aac_clip(&dir, 2));
    assert!(aac.len() >= 90, "about 94 AAC frames in 2 s");
    let mut s = HlsStream::new(config(1000, 6));
    s.set_video(ParameterSets::new(clip.sps.clone(), clip.pps.clone()).unwrap());
    s.set_audio(TrackCodec::Aac {
        audio_specific_config: asc,
        sample_rate: 48_000,
        channels: 1,
    })
    .unwrap();
    // Interleave by decode time: video every 3600 ticks, AAC (1024 samples) every 1920.
    let mut video_frames = clip.frames.iter().enumerate().peekable();
    let mut audio_frames = aac.iter().enumerate().peekable();
    loop {
        let next_video = video_frames.peek().map(|(i, _)| *i as i64 * FRAME);
        let next_audio = audio_frames.peek().map(|(i, _)| *i as i64 * 1920);
        let frame = match (next_video, next_audio) {
            (None, None) => break,
            (Some(v), a) if a.is_none_or(|a| v <= a) => {
                let (_, (data, key)) = video_frames.next().unwrap();
                Frame {
                    codec: Codec::H264,
                    pts: v,
                    dts: v,
                    keyframe: *key,
                    data: data.clone(),
                }
            }
            (_, a) => {
                let a = a.unwrap_or_default();
                Frame {
                    codec: Codec::Aac,
                    pts: a,
                    dts: a,
                    keyframe: true,
                    data: audio_frames.next().unwrap().1.clone(),
                }
            }
        };
        s.push(frame, T0_MS);
    }
    s.end(T0_MS + 2000);
    assert_eq!(s.codecs().as_deref(), Some("avc1.42c00d,mp4a.40.2"));
    let p = parse(&s);
    let mut file = s
        .get(&p.segments[0].map.as_ref().unwrap().uri)
        .unwrap()
        .to_vec();
    let mut audio_samples = 0;
    for seg in &p.segments {
        let data = s.get(&seg.uri).unwrap();
        audio_samples += parse_media_segment(&data).1[1].samples.len();
        file.extend_from_slice(&data);
    }
    assert_eq!(audio_samples, aac.len(), "every AAC frame was written");
    let path = dir.join("av.mp4");
    std::fs::write(&path, &file).unwrap();
    let (streams, stderr) = ffprobe_streams(&path);
    assert_eq!(stderr, "", "ffprobe complained");
    assert_eq!(streams.len(), 2);
    assert_eq!((streams[0].codec.as_str(), streams[0].frames), ("h264", 50));
    assert_eq!(streams[1].codec, "aac");
    assert_eq!(streams[1].frames, aac.len() as u64);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn audio_added_mid_stream_joins_at_the_next_keyframe_with_a_new_init() {
    let mut s = video_stream(1000, 6);
    feed(&mut s, 0..30, 25); // segment 0 done; segment 1 open from frame 25
    s.set_audio(opus()).unwrap();
    // Audio before the switch has no track in the current init: dropped.
    for i in 60..75 {
        s.push(opus_frame(i), T0_MS);
    }
    feed(&mut s, 30..51, 25); // keyframe 50 cuts segment 1 and switches inits
    for i in 100..150 {
        s.push(opus_frame(i), T0_MS);
    }
    feed(&mut s, 51..76, 25);
    // The cut at frame 75 (3 s) waits for the audio to reach 3 s.
    s.push(opus_frame(150), T0_MS);
    let p = parse(&s);
    assert_eq!(p.segments.len(), 3);
    assert!(p.segments[2].discontinuity);
    assert_eq!(p.segments[2].map.as_ref().unwrap().uri, "ab12-init-1.mp4");
    let tracks = |uri: &str| -> Vec<u32> {
        let (_, trafs) = parse_media_segment(&s.get(uri).unwrap());
        trafs.iter().map(|t| t.track_id).collect()
    };
    assert_eq!(tracks(&p.segments[1].uri), [1]);
    assert_eq!(tracks(&p.segments[2].uri), [1, 2]);
    let init = s.get("ab12-init-1.mp4").unwrap();
    assert_eq!(init.windows(4).filter(|w| w == b"trak").count(), 2);
    assert_eq!(s.codecs().as_deref(), Some("avc1.42c00d,opus"));
}
