//! In-band H.264 parameter sets: every keyframe sample carries the stream's SPS and PPS in
//! front of its picture, so a decoder can start (or restart) from any keyframe with nothing
//! but the sample itself.
//!
//! # Why, and why the sample entry stays `avc1`
//!
//! When a publisher changes resolution (Chromium steps 640x360 → 960x540 → 1280x720 while its
//! encoder ramps up, and back down under load), the HLS stream writes a new init segment and
//! marks the switch with `EXT-X-MAP` + `EXT-X-DISCONTINUITY`. hls.js and Apple's players follow
//! that, but libavformat's HLS demuxer (ffmpeg, ffplay, mpv and everything built on it) keeps
//! decoding with the `avcC` of the first init it read, and corrupts every picture of the new
//! size. With the SPS and PPS in each keyframe, such a decoder picks up the new ones at the
//! first IDR after the switch.
//!
//! ISO/IEC 14496-15 has two AVC sample entries for this. Under `avc1`/`avc2` the decoder
//! configuration in the sample entry is where parameter sets belong; under `avc3`/`avc4` they
//! may also (or only) travel in the samples, and a sync sample must be decodable from the
//! sample entry plus the sample. The HEVC twin of that rule is explicit that `hvc1` keeps them
//! in the sample entry only, and GPAC's muxer calls a single `avc1` entry whose samples carry
//! *other* parameter sets "non-standard" (its `xps_inband=mix`).
//!
//! castgate keeps `avc1` (and the `avc1.PPCCLL` CODECS value) and writes in each keyframe
//! exactly the SPS and PPS of the `avcC` in the init segment that governs that media segment:
//! every change still gets its own init segment. So the in-band copies never contradict the
//! sample entry. A player that uses the new init sees a repeat of parameter sets it already
//! has (H.264 lets a parameter set be sent again with the same content); a player that missed
//! the new init gets the new sets at the IDR that needs them. What the players do with this:
//!
//! - Chromium's MSE (used by hls.js, which hands fMP4 segments to it unchanged and reads the
//!   codec from `avc1`..`avc4` in the init) treats SPS/PPS ahead of a sample's first slice as
//!   conformant and inserts the `avcC` copies before each keyframe anyway
//!   (`media/formats/mp4/avc.cc`). The MSE ISO BMFF byte stream format requires support for
//!   configuration in the sample entry and recommends support for in-band configuration.
//! - ffmpeg applies in-band SPS/PPS as they arrive; its own mp4/HLS muxer writes `avc1`
//!   samples that start SPS, PPS, SEI, IDR when it remuxes an Annex B stream (checked with
//!   ffmpeg 5.1), a layout Apple's players and Chromium have long played.
//! - Apple: the HLS Authoring Specification asks for IDR-started fMP4 segments with
//!   `EXT-X-MAP` and `avc1` CODECS; it does not mention `avc3`. Apple's decoder takes its
//!   configuration from the sample entry and re-initialises on a new one (w3c/media-source
//!   issue 218), which the new init segment provides.
//!
//! `avc3` would change the CODECS value to `avc3.*`, which players have supported unevenly
//! (IE11 refused it, dash.js issue 734; WebCodecs maps it to `avc1`), and would buy nothing:
//! the new init segment is still needed for decoders that take their configuration from it.
//!
//! # Layout and cost
//!
//! The parameter sets go first in the sample, after a leading access unit delimiter if there
//! is one (an AUD must open its access unit). An access unit that already carries both an SPS
//! and a PPS before its first slice is written as it is. The length-prefixed SPS+PPS (a few
//! dozen bytes) are built once per parameter-set change and shared by every keyframe; the
//! keyframe itself is not copied to put them in front (see [`super::Sample::prefix`]).

use bytes::Bytes;

use crate::media::h264::avcc::LENGTH_SIZE;
use crate::media::h264::{avcc_nals, nal, nal_type, push_avcc_nal, ParameterSets};

/// The SPS and PPS of a stream as they go in front of each keyframe: each NAL unit with its
/// 4-byte length. Cloning shares the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InBandParameterSets {
    nals: Bytes,
}

impl InBandParameterSets {
    pub fn new(ps: &ParameterSets) -> Self {
        let mut out = Vec::with_capacity(2 * LENGTH_SIZE + ps.sps.len() + ps.pps.len());
        push_avcc_nal(&mut out, &ps.sps);
        push_avcc_nal(&mut out, &ps.pps);
        InBandParameterSets {
            nals: Bytes::from(out),
        }
    }

    /// The length-prefixed SPS then PPS.
    pub fn as_bytes(&self) -> &Bytes {
        &self.nals
    }

    /// The `mdat` bytes of keyframe `au` (AVCC) as (prefix, data): together they are `au` with
    /// the SPS and PPS in front of its pictures, unless it already has both. Neither part
    /// copies `au`; only an access unit that opens with an AUD gets a fresh prefix (the AUD
    /// and the parameter sets). Malformed input is passed through, never rejected.
    pub fn keyframe_sample(&self, au: &Bytes) -> (Bytes, Bytes) {
        let mut has_sps = false;
        let mut has_pps = false;
        let mut leading_aud = None;
        for (i, unit) in avcc_nals(au).enumerate() {
            let Some(&header) = unit.first() else {
                continue;
            };
            match nal_type(header) {
                nal::SPS => has_sps = true,
                nal::PPS => has_pps = true,
                nal::AUD if i == 0 => leading_aud = Some(LENGTH_SIZE + unit.len()),
                // Parameter sets after the first slice do not help decode it.
                t if (1..=5).contains(&t) => break,
                _ => {}
            }
        }
        if has_sps && has_pps {
            return (Bytes::new(), au.clone());
        }
        match leading_aud {
            Some(aud_len) => {
                let mut prefix = Vec::with_capacity(aud_len + self.nals.len());
                prefix.extend_from_slice(&au[..aud_len]);
                prefix.extend_from_slice(&self.nals);
                (Bytes::from(prefix), au.slice(aud_len..))
            }
            None => (self.nals.clone(), au.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::fmp4::test_support::{PPS_X264, SPS_320X240};

    fn in_band() -> InBandParameterSets {
        let ps = ParameterSets::new(
            Bytes::from_static(SPS_320X240),
            Bytes::from_static(PPS_X264),
        )
        .unwrap();
        InBandParameterSets::new(&ps)
    }

    fn avcc(units: &[&[u8]]) -> Bytes {
        let mut out = Vec::new();
        for unit in units {
            push_avcc_nal(&mut out, unit);
        }
        Bytes::from(out)
    }

    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x21];
    const SEI: &[u8] = &[0x06, 0x05, 0x01, 0xaa, 0x80];
    const AUD: &[u8] = &[0x09, 0xf0];

    #[test]
    fn parameter_sets_are_the_length_prefixed_sps_then_pps() {
        let bytes = in_band().as_bytes().clone();
        assert_eq!(&bytes[..], &avcc(&[SPS_320X240, PPS_X264])[..]);
        assert_eq!(bytes.len(), 8 + 24 + 5);
    }

    #[test]
    fn a_bare_idr_gets_sps_and_pps_in_front_without_being_copied() {
        let ps = in_band();
        let au = avcc(&[IDR]);
        let (prefix, data) = ps.keyframe_sample(&au);
        assert_eq!(prefix, *ps.as_bytes());
        assert_eq!(
            prefix.as_ptr(),
            ps.as_bytes().as_ptr(),
            "shared, not rebuilt"
        );
        assert_eq!(data.as_ptr(), au.as_ptr(), "the keyframe is not copied");
        let whole = [&prefix[..], &data[..]].concat();
        let types: Vec<u8> = avcc_nals(&whole).map(|n| nal_type(n[0])).collect();
        assert_eq!(types, [nal::SPS, nal::PPS, nal::IDR]);
    }

    #[test]
    fn sei_before_the_idr_stays_between_the_parameter_sets_and_the_picture() {
        let (prefix, data) = in_band().keyframe_sample(&avcc(&[SEI, IDR]));
        let whole = [&prefix[..], &data[..]].concat();
        let types: Vec<u8> = avcc_nals(&whole).map(|n| nal_type(n[0])).collect();
        assert_eq!(types, [nal::SPS, nal::PPS, nal::SEI, nal::IDR]);
    }

    #[test]
    fn an_access_unit_delimiter_stays_first() {
        let au = avcc(&[AUD, SEI, IDR]);
        let (prefix, data) = in_band().keyframe_sample(&au);
        let whole = [&prefix[..], &data[..]].concat();
        assert_eq!(&whole[..6], &au[..6], "AUD unchanged and first");
        let units: Vec<&[u8]> = avcc_nals(&whole).collect();
        assert_eq!(units, [AUD, SPS_320X240, PPS_X264, SEI, IDR]);
        assert_eq!(
            data.as_ptr(),
            au[6..].as_ptr(),
            "the rest is a slice of the input"
        );
    }

    #[test]
    fn an_access_unit_with_its_own_sps_and_pps_is_not_doubled() {
        let own = avcc(&[SPS_320X240, PPS_X264, IDR]);
        let (prefix, data) = in_band().keyframe_sample(&own);
        assert!(prefix.is_empty());
        assert_eq!(data, own);
        // Other parameter sets of its own: still its own, left alone.
        let other = avcc(&[AUD, &[0x67, 0x64, 0x00, 0x1f], &[0x68, 0xee], IDR]);
        assert_eq!(in_band().keyframe_sample(&other), (Bytes::new(), other));
    }

    #[test]
    fn half_a_pair_or_sets_after_the_picture_still_get_the_streams_pair() {
        // An SPS alone: the stream's pair goes first, the unit's own SPS then overrides it.
        let (prefix, _) = in_band().keyframe_sample(&avcc(&[SPS_320X240, IDR]));
        assert_eq!(prefix, *in_band().as_bytes());
        // Parameter sets after the slice come too late for it.
        let (prefix, _) = in_band().keyframe_sample(&avcc(&[IDR, SPS_320X240, PPS_X264]));
        assert_eq!(prefix, *in_band().as_bytes());
    }

    #[test]
    fn malformed_access_units_pass_through_with_the_parameter_sets_in_front() {
        let ps = in_band();
        for au in [
            Bytes::new(),
            Bytes::from_static(&[0, 0, 0]),
            Bytes::from_static(&[0, 0, 0, 9, 0x65]),
            Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 1, 0x09]),
            Bytes::from_static(&[0xff; 11]),
        ] {
            let (prefix, data) = ps.keyframe_sample(&au);
            assert_eq!(prefix, *ps.as_bytes(), "{au:?}");
            assert_eq!(data, au);
        }
    }
}
