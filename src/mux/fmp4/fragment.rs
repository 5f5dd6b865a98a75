//! Media segments: `styp` + one `moof` (one `traf` per track) + one `mdat`
//! (ISO/IEC 14496-12 §8.8 movie fragments; CMAF ISO/IEC 23000-19 §7.3.2 segment layout).

use bytes::{BufMut, Bytes, BytesMut};

use super::boxes::{
    mdat_header_len, write_box, write_full_box, write_mdat_header, BOX_HEADER, FULL_BOX_HEADER,
};

/// One sample (video access unit or audio frame) of a fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Duration in the track's timescale.
    pub duration: u32,
    /// Composition time minus decode time, in the track's timescale.
    pub cts_offset: i32,
    /// A sync sample (IDR for H.264; every audio frame).
    pub keyframe: bool,
    /// Bytes that go into `mdat` just before `data`, as part of the same sample: the in-band
    /// parameter sets of an H.264 keyframe ([`super::InBandParameterSets`]), empty otherwise.
    /// Kept apart so a keyframe is not copied to put a few bytes in front of it.
    pub prefix: Bytes,
    /// The sample bytes as they go into `mdat` (AVCC for H.264), after `prefix`.
    pub data: Bytes,
}

impl Sample {
    /// Bytes of the sample in `mdat`: prefix and data.
    pub fn len(&self) -> usize {
        self.prefix.len() + self.data.len()
    }

    /// True when the sample has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The samples of one track in one media segment.
#[derive(Clone, Copy, Debug)]
pub struct TrackFragment<'a> {
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale (`tfdt`).
    pub base_media_decode_time: u64,
    pub samples: &'a [Sample],
}

/// `tfhd` flag: sample data offsets are relative to the start of the enclosing `moof` (§8.8.7.1).
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags (§8.8.8.1).
const TRUN_DATA_OFFSET: u32 = 0x000_001;
const TRUN_SAMPLE_DURATION: u32 = 0x000_100;
const TRUN_SAMPLE_SIZE: u32 = 0x000_200;
const TRUN_SAMPLE_FLAGS: u32 = 0x000_400;
const TRUN_SAMPLE_CTS: u32 = 0x000_800;

/// Sample flags (§8.8.3.1): sample_depends_on = 2 (does not depend on others), a sync sample.
pub(crate) const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// Sample flags: sample_depends_on = 1 (depends on others) and sample_is_non_sync_sample = 1.
pub(crate) const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// `styp` brands: `msdh` (media segment, ISO/IEC 14496-12 §8.16.1) and, when the segment holds
/// a single track as CMAF requires, `cmfs` (CMAF segment).
fn styp_brands(single_track: bool) -> &'static [&'static [u8; 4]] {
    if single_track {
        &[b"msdh", b"cmfs"]
    } else {
        &[b"msdh"]
    }
}

fn styp_len(single_track: bool) -> usize {
    BOX_HEADER + 8 + 4 * styp_brands(single_track).len()
}

fn has_cts(samples: &[Sample]) -> bool {
    samples.iter().any(|s| s.cts_offset != 0)
}

fn trun_len(samples: &[Sample]) -> usize {
    let per_sample = if has_cts(samples) { 16 } else { 12 };
    FULL_BOX_HEADER + 4 + 4 + per_sample * samples.len()
}

fn traf_len(samples: &[Sample]) -> usize {
    let tfhd = FULL_BOX_HEADER + 4;
    let tfdt = FULL_BOX_HEADER + 8;
    BOX_HEADER + tfhd + tfdt + trun_len(samples)
}

fn moof_len(fragments: &[TrackFragment]) -> usize {
    let mfhd = FULL_BOX_HEADER + 4;
    BOX_HEADER + mfhd + fragments.iter().map(|f| traf_len(f.samples)).sum::<usize>()
}

fn sample_size(sample: &Sample) -> u32 {
    // A sample past 4 GiB cannot come from a real encoder; saturate instead of wrapping.
    u32::try_from(sample.len()).unwrap_or(u32::MAX)
}

/// Writes a media segment: `styp`, a `moof` with one `traf` per fragment (in the given order)
/// and one `mdat` holding the fragments' samples back to back in the same order.
///
/// Each `trun` carries a data offset relative to the `moof` start (`default-base-is-moof`), so
/// the segment is self-contained. The output is allocated once, at its exact size.
pub fn media_segment(sequence_number: u32, fragments: &[TrackFragment]) -> Bytes {
    write_fragment(sequence_number, fragments, true)
}

/// Writes one CMAF chunk: a `moof` and its `mdat`, without `styp`. The chunks of a segment
/// (LL-HLS partial segments) are its first [`media_segment`] followed by chunks; put back to
/// back they are that whole segment.
pub fn media_chunk(sequence_number: u32, fragments: &[TrackFragment]) -> Bytes {
    write_fragment(sequence_number, fragments, false)
}

fn write_fragment(sequence_number: u32, fragments: &[TrackFragment], styp: bool) -> Bytes {
    let single_track = fragments.len() == 1;
    let payload_len: usize = fragments
        .iter()
        .flat_map(|f| f.samples.iter())
        .map(Sample::len)
        .sum();
    let moof_len = moof_len(fragments);
    let mdat_header = mdat_header_len(payload_len);
    let styp_len = if styp { styp_len(single_track) } else { 0 };
    let total = styp_len + moof_len + mdat_header + payload_len;
    let mut buf = BytesMut::with_capacity(total);

    if styp {
        write_box(&mut buf, b"styp", |b| {
            let brands = styp_brands(single_track);
            b.put_slice(brands[0]);
            b.put_u32(0);
            for brand in brands {
                b.put_slice(*brand);
            }
        });
    }

    let moof_start = buf.len();
    // Offset of the first sample of the next fragment from the start of `moof`.
    let mut data_offset = moof_len + mdat_header;
    write_box(&mut buf, b"moof", |b| {
        write_full_box(b, b"mfhd", 0, 0, |b| b.put_u32(sequence_number));
        for fragment in fragments {
            write_traf(b, fragment, data_offset);
            data_offset += fragment.samples.iter().map(Sample::len).sum::<usize>();
        }
    });
    debug_assert_eq!(buf.len() - moof_start, moof_len, "moof size precomputation");

    write_mdat_header(&mut buf, payload_len);
    for sample in fragments.iter().flat_map(|f| f.samples.iter()) {
        buf.put_slice(&sample.prefix);
        buf.put_slice(&sample.data);
    }
    debug_assert_eq!(buf.len(), total, "media segment size precomputation");
    buf.freeze()
}

fn write_traf(buf: &mut BytesMut, fragment: &TrackFragment, data_offset: usize) {
    write_box(buf, b"traf", |b| {
        write_full_box(b, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |b| {
            b.put_u32(fragment.track_id)
        });
        // Version 1: a 64-bit decode time, so long streams in a 90 kHz timescale never wrap.
        write_full_box(b, b"tfdt", 1, 0, |b| {
            b.put_u64(fragment.base_media_decode_time)
        });
        write_trun(b, fragment.samples, data_offset);
    });
}

fn write_trun(buf: &mut BytesMut, samples: &[Sample], data_offset: usize) {
    let cts = has_cts(samples);
    let mut flags = TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE | TRUN_SAMPLE_FLAGS;
    if cts {
        flags |= TRUN_SAMPLE_CTS;
    }
    // Version 1 makes composition offsets signed (§8.8.8.2), which B-frame reordering may need.
    let version = u8::from(cts);
    write_full_box(buf, b"trun", version, flags, |b| {
        b.put_u32(u32::try_from(samples.len()).unwrap_or(u32::MAX));
        b.put_i32(i32::try_from(data_offset).unwrap_or(i32::MAX));
        for s in samples {
            b.put_u32(s.duration);
            b.put_u32(sample_size(s));
            b.put_u32(if s.keyframe {
                SAMPLE_FLAGS_SYNC
            } else {
                SAMPLE_FLAGS_NON_SYNC
            });
            if cts {
                b.put_i32(s.cts_offset);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::fmp4::test_support::{child, children, parse_boxes, u32_at};

    /// A media segment of one track (id 1, decode time 0) holding `samples`.
    fn one_track_segment(samples: &[Sample]) -> Bytes {
        media_segment(
            1,
            &[TrackFragment {
                track_id: 1,
                base_media_decode_time: 0,
                samples,
            }],
        )
    }

    fn sample(duration: u32, keyframe: bool, data: &'static [u8]) -> Sample {
        Sample {
            duration,
            cts_offset: 0,
            keyframe,
            prefix: Bytes::new(),
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn segment_is_styp_moof_mdat_with_one_traf_per_track() {
        let video = [sample(3000, true, b"IDR!"), sample(3000, false, b"P")];
        let audio = [sample(960, true, b"aa")];
        let seg = media_segment(
            7,
            &[
                TrackFragment {
                    track_id: 1,
                    base_media_decode_time: 90_000,
                    samples: &video,
                },
                TrackFragment {
                    track_id: 2,
                    base_media_decode_time: 48_000,
                    samples: &audio,
                },
            ],
        );
        let top = parse_boxes(&seg).unwrap();
        let kinds: Vec<&str> = top.iter().map(|b| b.kind).collect();
        assert_eq!(kinds, ["styp", "moof", "mdat"]);
        let moof = top[1].body;
        let mfhd = child(moof, "mfhd").unwrap();
        assert_eq!(u32_at(mfhd, 4), 7);
        let trafs: Vec<_> = children(moof)
            .into_iter()
            .filter(|b| b.kind == "traf")
            .collect();
        assert_eq!(trafs.len(), 2);
        let tfhd = child(trafs[1].body, "tfhd").unwrap();
        assert_eq!(u32_at(tfhd, 0), TFHD_DEFAULT_BASE_IS_MOOF);
        assert_eq!(u32_at(tfhd, 4), 2);
        let tfdt = child(trafs[0].body, "tfdt").unwrap();
        assert_eq!(tfdt[0], 1, "tfdt version 1");
        assert_eq!(&tfdt[4..12], &90_000u64.to_be_bytes());
        assert_eq!(top[2].body, b"IDR!Paa");
        // Exact allocation: nothing reserved beyond the segment.
        assert_eq!(seg.len(), top.iter().map(|b| b.size).sum::<usize>());
    }

    #[test]
    fn trun_data_offset_points_at_each_tracks_first_sample_byte() {
        let video = [
            sample(3000, true, b"VIDEO0"),
            sample(3000, false, b"VIDEO1"),
        ];
        let audio = [sample(960, true, b"AUDIO0")];
        let seg = media_segment(
            1,
            &[
                TrackFragment {
                    track_id: 1,
                    base_media_decode_time: 0,
                    samples: &video,
                },
                TrackFragment {
                    track_id: 2,
                    base_media_decode_time: 0,
                    samples: &audio,
                },
            ],
        );
        let top = parse_boxes(&seg).unwrap();
        let moof_start = top[1].offset;
        let trafs: Vec<_> = children(top[1].body)
            .into_iter()
            .filter(|b| b.kind == "traf")
            .collect();
        for (traf, expected) in trafs.iter().zip([&b"VIDEO0"[..], &b"AUDIO0"[..]]) {
            let trun = child(traf.body, "trun").unwrap();
            let data_offset = u32_at(trun, 8) as usize;
            let first_size = u32_at(trun, 16) as usize;
            let at = moof_start + data_offset;
            assert_eq!(&seg[at..at + first_size], expected);
        }
    }

    #[test]
    fn sample_flags_mark_only_keyframes_as_sync() {
        let samples = [sample(3000, true, b"k"), sample(3000, false, b"p")];
        let seg = one_track_segment(&samples);
        let top = parse_boxes(&seg).unwrap();
        let trun = child(child(top[1].body, "traf").unwrap(), "trun").unwrap();
        assert_eq!(trun[0], 0, "no composition offsets: version 0");
        assert_eq!(
            u32_at(trun, 0) & 0xffffff,
            TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE | TRUN_SAMPLE_FLAGS
        );
        assert_eq!(u32_at(trun, 4), 2, "sample count");
        // Entries start after flags, count and data offset: duration, size, flags.
        assert_eq!(u32_at(trun, 12), 3000);
        assert_eq!(u32_at(trun, 16), 1);
        assert_eq!(u32_at(trun, 20), SAMPLE_FLAGS_SYNC);
        assert_eq!(u32_at(trun, 32), SAMPLE_FLAGS_NON_SYNC);
        // Sync: depends_on = 2, non-sync bit clear. Non-sync: depends_on = 1, non-sync bit set.
        assert_eq!((SAMPLE_FLAGS_SYNC >> 24) & 3, 2);
        assert_eq!(SAMPLE_FLAGS_SYNC & 0x1_0000, 0);
        assert_eq!((SAMPLE_FLAGS_NON_SYNC >> 24) & 3, 1);
        assert_eq!(SAMPLE_FLAGS_NON_SYNC & 0x1_0000, 0x1_0000);
    }

    #[test]
    fn negative_composition_offsets_use_trun_version_1() {
        let mut b_frame = sample(3000, false, b"b");
        b_frame.cts_offset = -3000;
        let samples = [sample(3000, true, b"i"), b_frame];
        let seg = one_track_segment(&samples);
        let top = parse_boxes(&seg).unwrap();
        let trun = child(child(top[1].body, "traf").unwrap(), "trun").unwrap();
        assert_eq!(trun[0], 1);
        assert_ne!(u32_at(trun, 0) & TRUN_SAMPLE_CTS, 0);
        // Second entry: 12 header bytes + 16 per entry; its cts is the last field.
        assert_eq!(u32_at(trun, 12 + 16 + 12) as i32, -3000);
    }

    #[test]
    fn empty_fragment_list_still_gives_a_well_formed_segment() {
        let seg = media_segment(1, &[]);
        let top = parse_boxes(&seg).unwrap();
        let kinds: Vec<&str> = top.iter().map(|b| b.kind).collect();
        assert_eq!(kinds, ["styp", "moof", "mdat"]);
        assert!(top[2].body.is_empty());
    }

    #[test]
    fn a_samples_prefix_goes_in_front_of_its_data_and_counts_in_its_size() {
        let mut key = sample(3000, true, b"IDR");
        key.prefix = Bytes::from_static(b"ps");
        let samples = [key, sample(3000, false, b"P")];
        let seg = one_track_segment(&samples);
        let top = parse_boxes(&seg).unwrap();
        assert_eq!(top[2].body, b"psIDRP");
        let trun = child(child(top[1].body, "traf").unwrap(), "trun").unwrap();
        assert_eq!(u32_at(trun, 16), 5, "first sample: prefix + data");
        assert_eq!(u32_at(trun, 28), 1);
        assert_eq!(seg.len(), top.iter().map(|b| b.size).sum::<usize>());
    }

    #[test]
    fn a_chunk_is_the_segment_without_styp_and_chunks_concatenate_to_a_segment() {
        let samples = [sample(3000, true, b"IDR"), sample(3000, false, b"P")];
        let fragment = [TrackFragment {
            track_id: 1,
            base_media_decode_time: 0,
            samples: &samples,
        }];
        let segment = media_segment(7, &fragment);
        let chunk = media_chunk(7, &fragment);
        let kinds: Vec<&str> = parse_boxes(&chunk)
            .unwrap()
            .iter()
            .map(|b| b.kind)
            .collect();
        assert_eq!(kinds, ["moof", "mdat"]);
        assert_eq!(&segment[segment.len() - chunk.len()..], &chunk[..]);
        let mut joined = segment.to_vec();
        joined.extend_from_slice(&media_chunk(8, &fragment));
        let kinds: Vec<&str> = parse_boxes(&joined)
            .unwrap()
            .iter()
            .map(|b| b.kind)
            .collect();
        assert_eq!(kinds, ["styp", "moof", "mdat", "moof", "mdat"]);
    }
}
