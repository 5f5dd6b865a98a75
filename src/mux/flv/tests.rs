//! FLV writer tests: exact header bytes, tag layout, timestamps, and round trips through the
//! reader in `reader.rs`.

use bytes::Bytes;
use rand::{rngs::StdRng, Rng, SeedableRng};

use super::amf0::Amf0Value;
use super::*;
use crate::media::h264::test_vectors as tv;
use crate::media::Frame;

fn parameter_sets() -> ParameterSets {
    ParameterSets::new(
        Bytes::from_static(tv::HIGH_720P30.sps),
        Bytes::from_static(tv::HIGH_720P30.pps),
    )
    .unwrap()
}

fn meta_720p_with_audio() -> FlvMetadata {
    FlvMetadata {
        width: 1280,
        height: 720,
        frame_rate: Some(30.0),
        video_data_rate_kbps: Some(2500.0),
        has_video: true,
        audio: Some(FlvAudioInfo {
            sample_rate: 48_000,
            channels: 2,
        }),
    }
}

/// Parses a tag the writers returned on its own (no file header).
fn single(tag: &Bytes) -> FlvTag {
    let mut tags = parse_tag_stream(tag).expect("writer output parses");
    assert_eq!(tags.len(), 1);
    tags.pop().unwrap()
}

fn previous_tag_size(tag: &[u8]) -> u32 {
    let n = tag.len();
    u32::from_be_bytes([tag[n - 4], tag[n - 3], tag[n - 2], tag[n - 1]])
}

#[test]
fn file_header_bytes_for_each_flag_combination() {
    let expected = |flags| [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0];
    assert_eq!(&file_header(true, true)[..], &expected(0x05));
    assert_eq!(&file_header(false, true)[..], &expected(0x01));
    assert_eq!(&file_header(true, false)[..], &expected(0x04));
    let (h, first_tag) = parse_header(&file_header(true, true)).unwrap();
    assert_eq!((h.has_audio, h.has_video, h.data_offset), (true, true, 9));
    assert_eq!(first_tag, 13);
}

#[test]
fn metadata_is_on_meta_data_with_an_ecma_array() {
    let tag = metadata_tag(&meta_720p_with_audio());
    // Script tag, timestamp 0, stream id 0.
    assert_eq!(tag[0], TAG_SCRIPT);
    assert_eq!(&tag[4..11], &[0; 7]);
    // Body: AMF0 string "onMetaData", then the ECMA array marker.
    assert_eq!(&tag[11..24], b"\x02\x00\x0aonMetaData");
    assert_eq!(tag[24], 0x08);
    // "width" is followed by AMF0 number 1280.0 = 0x4094_0000_0000_0000.
    let width_entry = b"\x00\x05width\x00\x40\x94\x00\x00\x00\x00\x00\x00";
    assert!(tag.windows(width_entry.len()).any(|w| w == width_entry));
    // The array ends with the empty key + object-end marker.
    assert_eq!(&tag[tag.len() - 7..tag.len() - 4], &[0, 0, 9]);
    assert_eq!(previous_tag_size(&tag) as usize, tag.len() - 4);
}

#[test]
fn metadata_round_trips_through_the_reader() {
    let mut file = file_header(true, true).to_vec();
    file.extend_from_slice(&metadata_tag(&meta_720p_with_audio()));
    let tags = parse_tags(&file).unwrap();
    assert_eq!(tags.len(), 1);
    let (name, value) = tags[0].script().unwrap();
    assert_eq!(name, "onMetaData");
    let num = |k| value.get(k).and_then(Amf0Value::as_f64);
    assert_eq!(num("width"), Some(1280.0));
    assert_eq!(num("height"), Some(720.0));
    assert_eq!(num("framerate"), Some(30.0));
    assert_eq!(num("videodatarate"), Some(2500.0));
    assert_eq!(num("videocodecid"), Some(7.0));
    assert_eq!(num("audiocodecid"), Some(10.0));
    assert_eq!(num("audiosamplerate"), Some(48_000.0));
    assert_eq!(value.get("stereo"), Some(&Amf0Value::Boolean(true)));
    assert_eq!(
        value.get("encoder"),
        Some(&Amf0Value::String("castgate".into()))
    );
}

#[test]
fn video_only_metadata_leaves_out_audio_and_unknown_rates() {
    let meta = FlvMetadata {
        width: 640,
        height: 360,
        frame_rate: None,
        video_data_rate_kbps: None,
        has_video: true,
        audio: None,
    };
    let (_, value) = single(&metadata_tag(&meta)).script().unwrap();
    let Amf0Value::EcmaArray(entries) = &value else {
        panic!("onMetaData argument is not an ECMA array: {value:?}");
    };
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "hasVideo",
            "hasAudio",
            "width",
            "height",
            "videocodecid",
            "encoder"
        ]
    );
    assert_eq!(value.get("hasAudio"), Some(&Amf0Value::Boolean(false)));
}

#[test]
fn mono_audio_metadata_is_not_stereo() {
    let meta = FlvMetadata {
        has_video: false,
        audio: Some(FlvAudioInfo {
            sample_rate: 44_100,
            channels: 1,
        }),
        ..meta_720p_with_audio()
    };
    let (_, value) = single(&metadata_tag(&meta)).script().unwrap();
    assert_eq!(value.get("stereo"), Some(&Amf0Value::Boolean(false)));
    assert_eq!(value.get("width"), None);
}

#[test]
fn avc_sequence_header_body_is_key_type0_then_avcc() {
    let ps = parameter_sets();
    let tag = avc_sequence_header_tag(&ps, 0);
    let record = ps.avc_decoder_configuration_record();
    let body_len = 5 + record.len();
    assert_eq!(&tag[..11], &[9, 0, 0, body_len as u8, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&tag[11..16], &[0x17, 0x00, 0x00, 0x00, 0x00]);
    assert_eq!(&tag[16..16 + record.len()], &record[..]);
    assert_eq!(previous_tag_size(&tag) as usize, 11 + body_len);
    assert_eq!(tag.len(), 11 + body_len + 4);
}

#[test]
fn key_frame_tag_header_bytes() {
    let frame = Frame::h264_at_zero(true, &[0, 0, 0, 2, 0x65, 0x88]);
    let tag = avc_frame_tag(&frame, 1000, 40);
    assert_eq!(
        &tag[..],
        &[
            0x09, 0x00, 0x00, 0x0b, // video, 11-byte body
            0x00, 0x03, 0xe8, 0x00, // 1000 ms, extension 0
            0x00, 0x00, 0x00, // stream id
            0x17, 0x01, 0x00, 0x00, 0x28, // key + AVC, NALU, cts 40
            0x00, 0x00, 0x00, 0x02, 0x65, 0x88, // frame.data untouched
            0x00, 0x00, 0x00, 0x16, // PreviousTagSize = 11 + 11
        ]
    );
}

#[test]
fn inter_frame_tag_with_negative_composition_time() {
    let frame = Frame::h264_at_zero(false, &[0, 0, 0, 1, 0x41]);
    let tag = avc_frame_tag(&frame, 33, -33);
    assert_eq!(&tag[..11], &[0x09, 0, 0, 10, 0, 0, 33, 0, 0, 0, 0]);
    assert_eq!(&tag[11..16], &[0x27, 0x01, 0xff, 0xff, 0xdf]);
    assert_eq!(previous_tag_size(&tag), 21);
}

#[test]
fn composition_time_saturates_at_24_bits() {
    let frame = Frame::h264_at_zero(false, &[0, 0, 0, 1, 0x41]);
    assert_eq!(
        &avc_frame_tag(&frame, 0, i32::MAX)[13..16],
        &[0x7f, 0xff, 0xff]
    );
    assert_eq!(
        &avc_frame_tag(&frame, 0, i32::MIN)[13..16],
        &[0x80, 0x00, 0x00]
    );
}

#[test]
fn timestamp_above_24_bits_uses_the_extension_byte() {
    // 0x0123_4567 ms ≈ 5.3 hours: lower 24 bits in the Timestamp field, 0x01 in the extension.
    let ts = 0x0123_4567;
    let tag = aac_frame_tag(&[0x21, 0x10], ts);
    assert_eq!(&tag[4..8], &[0x23, 0x45, 0x67, 0x01]);
    assert_eq!(single(&tag).timestamp_ms, ts);
    let tag = avc_end_of_sequence_tag(u32::MAX);
    assert_eq!(&tag[4..8], &[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(single(&tag).timestamp_ms, u32::MAX);
}

#[test]
fn set_timestamp_restamps_a_tag_in_place_and_leaves_short_input_alone() {
    let mut tag = aac_sequence_header_tag(&[0x11, 0x90], 0).to_vec();
    set_timestamp(&mut tag, 0x0123_4567);
    assert_eq!(single(&Bytes::from(tag.clone())).timestamp_ms, 0x0123_4567);
    assert_eq!(&tag[11..], &aac_sequence_header_tag(&[0x11, 0x90], 9)[11..]);
    let mut short = vec![9, 0, 0, 5, 0, 0];
    set_timestamp(&mut short, 1000);
    assert_eq!(short, vec![9, 0, 0, 5, 0, 0]);
}

#[test]
fn aac_tags_use_sound_format_10_with_fixed_rate_and_type_bits() {
    let asc = [0x11, 0x90]; // AAC-LC, 48 kHz, stereo
    let tag = aac_sequence_header_tag(&asc, 0);
    assert_eq!(
        &tag[..],
        &[8, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0xaf, 0x00, 0x11, 0x90, 0, 0, 0, 15]
    );
    let tag = aac_frame_tag(&[0xde, 0xad, 0xbe], 21);
    assert_eq!(&tag[11..16], &[0xaf, 0x01, 0xde, 0xad, 0xbe]);
    assert_eq!(tag[0], TAG_AUDIO);
    assert_eq!(previous_tag_size(&tag), 11 + 5);
}

#[test]
fn end_of_sequence_tag_is_avc_packet_type_2() {
    let tag = avc_end_of_sequence_tag(4000);
    assert_eq!(
        &tag[..],
        &[9, 0, 0, 5, 0, 0x0f, 0xa0, 0, 0, 0, 0, 0x17, 0x02, 0, 0, 0, 0, 0, 0, 16]
    );
}

#[test]
fn previous_tag_size_is_header_plus_body_for_every_tag() {
    let ps = parameter_sets();
    let big: &'static [u8] = Box::leak(vec![0x41; 100_000].into_boxed_slice());
    let tags = [
        metadata_tag(&meta_720p_with_audio()),
        avc_sequence_header_tag(&ps, 0),
        avc_frame_tag(&Frame::h264_at_zero(true, big), 0, 0),
        avc_end_of_sequence_tag(0),
        aac_sequence_header_tag(&[0x12, 0x10], 0),
        aac_frame_tag(&[1; 300], 0),
    ];
    for tag in &tags {
        let body_len = u32::from_be_bytes([0, tag[1], tag[2], tag[3]]);
        assert_eq!(previous_tag_size(tag), 11 + body_len);
        assert_eq!(tag.len() as u32, 11 + body_len + 4);
    }
}

#[test]
fn a_whole_file_parses_back_in_order() {
    let ps = parameter_sets();
    let parts = [
        file_header(true, true),
        metadata_tag(&meta_720p_with_audio()),
        avc_sequence_header_tag(&ps, 0),
        aac_sequence_header_tag(&[0x11, 0x90], 0),
        avc_frame_tag(&Frame::h264_at_zero(true, &[0, 0, 0, 2, 0x65, 0x88]), 0, 0),
        aac_frame_tag(&[0x21, 0x00], 21),
        avc_frame_tag(
            &Frame::h264_at_zero(false, &[0, 0, 0, 2, 0x41, 0x9a]),
            33,
            0,
        ),
        avc_end_of_sequence_tag(66),
    ];
    let file: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let tags = parse_tags(&file).unwrap();
    let summary: Vec<(u8, u32, u8)> = tags
        .iter()
        .map(|t| (t.tag_type, t.timestamp_ms, t.body[0]))
        .collect();
    assert_eq!(
        summary,
        [
            (18, 0, 0x02),
            (9, 0, 0x17),
            (8, 0, 0xaf),
            (9, 0, 0x17),
            (8, 21, 0xaf),
            (9, 33, 0x27),
            (9, 66, 0x17),
        ]
    );
    assert!(tags.iter().all(|t| t.stream_id == 0));
    assert_eq!(&tags[6].body[..], &[0x17, 0x02, 0, 0, 0]);
}

#[test]
fn oversized_frame_gives_no_tag_instead_of_a_wrapped_size() {
    let data: &'static [u8] = Box::leak(vec![0u8; MAX_TAG_BODY_LEN].into_boxed_slice());
    assert!(avc_frame_tag(&Frame::h264_at_zero(true, data), 0, 0).is_empty());
    // The largest body that fits is still written.
    let tag = aac_frame_tag(&data[..MAX_TAG_BODY_LEN - 2], 0);
    assert_eq!(&tag[1..4], &[0xff, 0xff, 0xff]);
}

#[test]
fn a_step_back_is_found_per_track_not_across_tracks() {
    let tag = |tag_type: u8, timestamp_ms: u32| FlvTag {
        tag_type,
        timestamp_ms,
        stream_id: 0,
        body: Bytes::new(),
    };
    // Audio a little before video is interleaving, not a step back.
    let fine = [tag(9, 1000), tag(8, 980), tag(9, 1033), tag(8, 1001)];
    assert_eq!(first_step_back(&fine), None);
    let back = [tag(9, 1000), tag(8, 980), tag(8, 1001), tag(9, 990)];
    assert_eq!(first_step_back(&back), Some(3));
    assert_eq!(first_step_back(&[]), None);
}

#[test]
fn reader_rejects_broken_files() {
    let mut file = file_header(false, true).to_vec();
    file.extend_from_slice(&avc_end_of_sequence_tag(0));
    assert!(parse_tags(&file).is_ok());

    let mut bad_sig = file.clone();
    bad_sig[0] = b'G';
    assert_eq!(parse_tags(&bad_sig), Err(FlvError::BadSignature));

    let mut bad_version = file.clone();
    bad_version[3] = 2;
    assert_eq!(
        parse_tags(&bad_version),
        Err(FlvError::UnsupportedVersion(2))
    );

    let mut bad_size0 = file.clone();
    bad_size0[12] = 1;
    assert!(matches!(
        parse_tags(&bad_size0),
        Err(FlvError::PreviousTagSize { offset: 9, .. })
    ));

    let mut bad_size = file.clone();
    let last = bad_size.len() - 1;
    bad_size[last] = 17;
    assert_eq!(
        parse_tags(&bad_size),
        Err(FlvError::PreviousTagSize {
            offset: 13 + 16,
            expected: 16,
            found: 17
        })
    );

    assert_eq!(
        parse_tags(&file[..file.len() - 1]),
        Err(FlvError::Truncated { offset: 29 })
    );
    assert_eq!(
        parse_tags(&file[..20]),
        Err(FlvError::Truncated { offset: 13 })
    );
}

#[test]
fn reader_survives_random_bytes_after_a_valid_header() {
    let mut rng = StdRng::seed_from_u64(0xf1f);
    for _ in 0..5_000 {
        let mut buf = file_header(true, true).to_vec();
        let len = rng.random_range(0..64);
        buf.extend((0..len).map(|_| rng.random::<u8>()));
        if let Ok(tags) = parse_tags(&buf) {
            // Whatever was accepted must account for every byte after the 13-byte header.
            let walked: usize = tags.iter().map(|t| 11 + t.body.len() + 4).sum();
            assert_eq!(walked, buf.len() - 13);
            for t in tags {
                let _ = t.script();
            }
        }
    }
}
