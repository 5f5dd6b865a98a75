//! H.264 Annex B byte streams (ITU-T H.264 Annex B): splitting into NAL units and grouping
//! them into access units, so a publisher can send one picture per RTP timestamp.

use bytes::Bytes;

/// One coded picture as it is handed to the RTP packetizer: its NAL units in Annex B form
/// (each preceded by a 4-byte start code), parameter sets and SEI included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// `00 00 00 01 nal 00 00 00 01 nal ...`
    pub data: Bytes,
    /// True when the access unit holds an IDR slice (NAL type 5).
    pub keyframe: bool,
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// NAL unit types named in H.264 Table 7-1 that this module cares about.
const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SEI: u8 = 6;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;

/// Splits an Annex B byte stream into NAL units (without start codes). Bytes before the first
/// start code are ignored; trailing zero bytes (`trailing_zero_8bits`, B.1.1) are dropped from
/// each unit. Empty units are skipped.
pub fn split_nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut units = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i + 2 < stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            if let Some(s) = start {
                push_unit(&mut units, &stream[s..i]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        push_unit(&mut units, &stream[s..]);
    }
    units
}

fn push_unit<'a>(units: &mut Vec<&'a [u8]>, unit: &'a [u8]) {
    let end = unit.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    if end > 0 {
        units.push(&unit[..end]);
    }
}

fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

fn is_vcl(nal_type: u8) -> bool {
    (NAL_SLICE..=NAL_IDR).contains(&nal_type)
}

/// A slice whose `first_mb_in_slice` is 0 starts a new picture. `first_mb_in_slice` is the first
/// ue(v) of the slice header, and ue(v) of 0 is the single bit `1`.
fn starts_picture(nal: &[u8]) -> bool {
    nal.get(1).is_some_and(|b| b & 0x80 != 0)
}

/// Groups NAL units into access units following H.264 7.4.1.2.3 (simplified for encoders
/// without redundant pictures): once the current unit holds a slice, an AUD, SPS, PPS, SEI or
/// types 14-18, or a slice with `first_mb_in_slice == 0`, begins the next one. So several
/// slices of one picture (x264 `sliced-threads`) stay together. Units without any slice
/// (e.g. a stray SPS at the end of the stream) are dropped: they are not pictures.
pub fn access_units(stream: &[u8]) -> Vec<AccessUnit> {
    let mut out = Vec::new();
    let mut current: Vec<&[u8]> = Vec::new();
    let mut has_slice = false;
    for nal in split_nal_units(stream) {
        let t = nal_type(nal);
        let begins_next = has_slice
            && (matches!(t, NAL_AUD | NAL_SPS | NAL_PPS | NAL_SEI | 14..=18)
                || (is_vcl(t) && starts_picture(nal)));
        if begins_next {
            out.push(finish(&current));
            current.clear();
            has_slice = false;
        }
        has_slice |= is_vcl(t);
        current.push(nal);
    }
    if has_slice {
        out.push(finish(&current));
    }
    out
}

fn finish(nals: &[&[u8]]) -> AccessUnit {
    let len = nals.iter().map(|n| n.len() + START_CODE.len()).sum();
    let mut data = Vec::with_capacity(len);
    let mut keyframe = false;
    for nal in nals {
        data.extend_from_slice(&START_CODE);
        data.extend_from_slice(nal);
        keyframe |= nal_type(nal) == NAL_IDR;
    }
    AccessUnit {
        data: Bytes::from(data),
        keyframe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_and_four_byte_start_codes_both_split() {
        let stream = [
            0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88,
        ];
        let units = split_nal_units(&stream);
        assert_eq!(
            units,
            vec![&[0x67, 0x42][..], &[0x68, 0xce][..], &[0x65, 0x88][..]]
        );
    }

    #[test]
    fn trailing_zero_bytes_and_leading_garbage_are_dropped() {
        let stream = [
            0xff, 0xee, 0, 0, 1, 0x41, 0x9a, 0, 0, 0, 0, 0, 1, 0x41, 0x9b, 0, 0,
        ];
        assert_eq!(
            split_nal_units(&stream),
            vec![&[0x41, 0x9a][..], &[0x41, 0x9b][..]]
        );
    }

    #[test]
    fn stream_without_start_code_has_no_units() {
        assert!(split_nal_units(&[0x65, 0x88, 0x84]).is_empty());
        assert!(split_nal_units(&[]).is_empty());
        assert!(access_units(&[0, 0, 1]).is_empty());
    }

    #[test]
    fn parameter_sets_and_sei_join_the_following_idr() {
        // SPS, PPS, SEI, IDR | P | P
        let stream = [
            0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x06, 0x05, 0, 0, 0, 1,
            0x65, 0x88, 0, 0, 0, 1, 0x41, 0x9a, 0, 0, 0, 1, 0x41, 0x9b,
        ];
        let aus = access_units(&stream);
        assert_eq!(aus.len(), 3);
        assert!(aus[0].keyframe);
        assert_eq!(
            &aus[0].data[..],
            &[
                0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x06, 0x05, 0, 0, 0, 1,
                0x65, 0x88
            ]
        );
        assert!(!aus[1].keyframe);
        assert_eq!(&aus[1].data[..], &[0, 0, 0, 1, 0x41, 0x9a]);
        assert_eq!(&aus[2].data[..], &[0, 0, 0, 1, 0x41, 0x9b]);
    }

    #[test]
    fn x264_sliced_threads_second_slice_stays_in_the_same_picture() {
        // IDR slice with first_mb 0 (top bit set), IDR slice with first_mb > 0 (0x1c: bits
        // 0001 1100 -> ue(v) = 6), then a P slice starting the next picture.
        let stream = [
            0, 0, 0, 1, 0x65, 0x88, 0, 0, 0, 1, 0x65, 0x1c, 0, 0, 0, 1, 0x41, 0x9a, 0, 0, 0, 1,
            0x41, 0x1c,
        ];
        let aus = access_units(&stream);
        assert_eq!(aus.len(), 2);
        assert_eq!(
            &aus[0].data[..],
            &[0, 0, 0, 1, 0x65, 0x88, 0, 0, 0, 1, 0x65, 0x1c]
        );
        assert!(aus[0].keyframe);
        assert_eq!(
            &aus[1].data[..],
            &[0, 0, 0, 1, 0x41, 0x9a, 0, 0, 0, 1, 0x41, 0x1c]
        );
        assert!(!aus[1].keyframe);
    }

    #[test]
    fn aud_starts_a_new_access_unit() {
        let stream = [
            0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x41, 0x9a, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x41, 0x9a,
        ];
        let aus = access_units(&stream);
        assert_eq!(aus.len(), 2);
        assert_eq!(
            &aus[1].data[..],
            &[0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x41, 0x9a]
        );
    }

    #[test]
    fn parameter_sets_after_the_last_picture_are_not_a_frame() {
        let stream = [0, 0, 1, 0x41, 0x9a, 0, 0, 1, 0x67, 0x42];
        assert_eq!(access_units(&stream).len(), 1);
    }

    #[test]
    fn one_byte_slice_is_not_a_panic() {
        // A slice NAL with no header byte after the NAL header: treated as continuing.
        let stream = [0, 0, 1, 0x41, 0x9a, 0, 0, 1, 0x41];
        assert_eq!(access_units(&stream).len(), 1);
    }
}
