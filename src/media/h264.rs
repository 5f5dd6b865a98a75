//! H.264 parameter sets: SPS parsing, the avcC record, NAL unit helpers.
//!
//! Submodules (in `h264/`): `bits` (emulation-prevention removal, exp-Golomb reader), `sps`
//! (SPS fields we need), `params` (SPS+PPS pair, avcC record, RFC 6381 codec string),
//! `annexb` (start-code splitting, AVCC conversion, access-unit grouping) and `avcc` (walking
//! and writing length-prefixed NAL units).

pub mod annexb;
pub mod avcc;
pub mod bits;
mod params;
mod sps;
#[cfg(test)]
pub(crate) mod test_vectors;

pub use annexb::{annexb_to_avcc, split_access_units, split_annexb};
pub use avcc::{avcc_nals, push_avcc_nal};
pub use params::ParameterSets;
pub use sps::{parse_sps, SpsInfo};

/// NAL unit types (ITU-T H.264 Table 7-1; 24 and 28 are RFC 6184 RTP payload structures).
pub mod nal {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
    /// End of sequence.
    pub const END_OF_SEQUENCE: u8 = 10;
    /// End of stream.
    pub const END_OF_STREAM: u8 = 11;
    /// Filler data.
    pub const FILLER: u8 = 12;
    /// RFC 6184 §5.7.1 single-time aggregation packet.
    pub const STAP_A: u8 = 24;
    /// RFC 6184 §5.8 fragmentation unit.
    pub const FU_A: u8 = 28;

    /// True for the coded-slice types castgate sees from WebRTC encoders (1 and 5).
    pub fn is_slice(nal_type: u8) -> bool {
        nal_type == SLICE || nal_type == IDR
    }
}

/// The `nal_unit_type` from a NAL unit's first (header) byte.
pub fn nal_type(first_byte: u8) -> u8 {
    first_byte & 0x1f
}

/// `first_mb_in_slice` of a coded slice NAL unit (header byte included), or `None` when `nal` is
/// not a slice (type 1 or 5) or is too short. Zero means the slice starts a new picture, which
/// is how access units are told apart without an AUD or RTP marker bit (H.264 §7.4.1.2.4).
pub fn first_mb_in_slice(nal: &[u8]) -> Option<u32> {
    let (&header, rest) = nal.split_first()?;
    if !nal::is_slice(nal_type(header)) {
        return None;
    }
    // first_mb_in_slice is the first syntax element; an ue(v) needs at most 64 bits, so a short
    // prefix is all that has to be unescaped.
    let prefix = &rest[..rest.len().min(16)];
    let rbsp = bits::remove_emulation_prevention(prefix);
    bits::BitReader::new(&rbsp).read_ue().ok()
}

/// Errors from parsing H.264 parameter sets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum H264Error {
    /// The NAL unit has no bytes at all.
    #[error("empty NAL unit")]
    Empty,
    /// The NAL unit is not of the type this function needs.
    #[error("expected NAL unit type {expected}, found {found}")]
    WrongNalType { expected: u8, found: u8 },
    /// The bitstream ended before a required syntax element.
    #[error("NAL unit ends before a required field")]
    Truncated,
    /// An exp-Golomb code had more than 31 leading zero bits (not a valid ue(v) here).
    #[error("exp-Golomb code too long")]
    ExpGolombOverflow,
    /// A field holds a value the standard does not allow.
    #[error("invalid SPS: {0}")]
    InvalidSps(&'static str),
    /// A parameter set is longer than the avcC record's 16-bit length field can carry.
    #[error("parameter set of {len} bytes does not fit a 16-bit length")]
    ParameterSetTooLong { len: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nal_type_masks_forbidden_bit_and_nri() {
        assert_eq!(nal_type(0x67), nal::SPS);
        assert_eq!(nal_type(0x68), nal::PPS);
        assert_eq!(nal_type(0x65), nal::IDR);
        assert_eq!(nal_type(0x41), nal::SLICE);
        assert_eq!(nal_type(0x7c), nal::FU_A);
        assert_eq!(nal_type(0x78), nal::STAP_A);
        assert_eq!(nal_type(0x09), nal::AUD);
        assert_eq!(nal_type(0x06), nal::SEI);
    }

    #[test]
    fn first_mb_in_slice_reads_leading_ue() {
        // ue '1' = 0, then slice_type etc.
        assert_eq!(first_mb_in_slice(&[0x65, 0x88, 0x84]), Some(0));
        // ue '010' = 1 → second slice of a picture.
        assert_eq!(first_mb_in_slice(&[0x41, 0x40]), Some(1));
        // ue '00110' = 5.
        assert_eq!(first_mb_in_slice(&[0x01, 0x30]), Some(5));
    }

    #[test]
    fn first_mb_in_slice_ignores_non_slices_and_short_input() {
        assert_eq!(first_mb_in_slice(&[0x67, 0x80]), None);
        assert_eq!(first_mb_in_slice(&[0x65]), None);
        assert_eq!(first_mb_in_slice(&[]), None);
        assert_eq!(first_mb_in_slice(&[0x65, 0x00, 0x00]), None);
    }
}
