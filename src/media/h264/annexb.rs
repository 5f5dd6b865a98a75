//! Annex B byte streams (H.264 Annex B): start-code splitting, conversion to AVCC (4-byte
//! length prefixes, ISO/IEC 14496-15) and grouping NAL units into access units.

use bytes::Bytes;

use super::avcc::{push_avcc_nal, LENGTH_SIZE};
use super::{first_mb_in_slice, nal, nal_type};

/// Index of the `01` of the next `00 00 01` whose first zero is at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from.checked_add(2)?;
    while let Some(&b) = data.get(i) {
        match b {
            // Neither this byte nor the next two can end a start code: each would need a zero here.
            2.. => i += 3,
            1 if data[i - 2] == 0 && data[i - 1] == 0 => return Some(i),
            1 => i += 3,
            0 => i += 1,
        }
    }
    None
}

/// Iterator over the NAL units of an Annex B byte stream; see [`split_annexb`].
#[derive(Debug, Clone)]
pub struct AnnexBNals<'a> {
    data: &'a [u8],
    /// Where the next NAL unit's payload starts, or `None` when done.
    next: Option<usize>,
}

impl<'a> Iterator for AnnexBNals<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let start = self.next?;
            let nal = match find_start_code(self.data, start) {
                Some(one) => {
                    self.next = Some(one + 1);
                    &self.data[start..one - 2]
                }
                None => {
                    self.next = None;
                    &self.data[start..]
                }
            };
            // Trailing zeros are the leading zero of a 4-byte start code or trailing_zero_8bits
            // (§B.1.2); a NAL unit itself never ends in 0x00 (rbsp_stop_one_bit).
            let end = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            if end > 0 {
                return Some(&nal[..end]);
            }
        }
    }
}

/// The NAL units (header byte first, start codes removed) of an Annex B stream that uses 3- or
/// 4-byte start codes. Bytes before the first start code are ignored; empty units are skipped.
pub fn split_annexb(data: &[u8]) -> AnnexBNals<'_> {
    AnnexBNals {
        data,
        next: find_start_code(data, 0).map(|one| one + 1),
    }
}

/// Re-frames every NAL unit of an Annex B stream with a 4-byte big-endian length prefix (the
/// AVCC layout of [`crate::media::Frame`] data). Parameter sets are kept; filter them first if
/// they must not be in the output.
pub fn annexb_to_avcc(data: &[u8]) -> Bytes {
    let total: usize = split_annexb(data).map(|n| LENGTH_SIZE + n.len()).sum();
    let mut out = Vec::with_capacity(total);
    for nal in split_annexb(data) {
        push_avcc_nal(&mut out, nal);
    }
    Bytes::from(out)
}

/// Groups NAL units into access units (H.264 §7.4.1.2.3): once the current unit holds a coded
/// slice, an AUD, SPS, PPS, SEI or type 14–18 NAL unit, or a slice with `first_mb_in_slice == 0`,
/// begins the next one. End-of-sequence/stream and filler units stay with the current unit.
pub fn group_access_units<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> Vec<Vec<&'a [u8]>> {
    let mut units: Vec<Vec<&'a [u8]>> = Vec::new();
    let mut current: Vec<&'a [u8]> = Vec::new();
    let mut current_has_slice = false;
    for unit in nals {
        let Some(&header) = unit.first() else {
            continue;
        };
        let t = nal_type(header);
        let is_slice = nal::is_slice(t);
        let opens_next = match t {
            nal::SEI | nal::SPS | nal::PPS | nal::AUD | 14..=18 => true,
            _ if is_slice => first_mb_in_slice(unit) == Some(0),
            _ => false,
        };
        if opens_next && current_has_slice {
            units.push(std::mem::take(&mut current));
            current_has_slice = false;
        }
        current.push(unit);
        current_has_slice |= is_slice;
    }
    if !current.is_empty() {
        units.push(current);
    }
    units
}

/// [`group_access_units`] over the NAL units of an Annex B stream.
pub fn split_access_units(data: &[u8]) -> Vec<Vec<&[u8]>> {
    group_access_units(split_annexb(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nals(data: &[u8]) -> Vec<&[u8]> {
        split_annexb(data).collect()
    }

    #[test]
    fn three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88, 0x84,
        ];
        assert_eq!(
            nals(&data),
            [
                &[0x67, 0x42][..],
                &[0x68, 0xce][..],
                &[0x65, 0x88, 0x84][..]
            ]
        );
    }

    #[test]
    fn leading_garbage_trailing_zeros_and_empty_units_are_dropped() {
        let data = [
            0xff, 0xee, 0, 0, 1, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 0, 0, 1, 0x41, 0x9a, 0, 0,
        ];
        assert_eq!(nals(&data), [&[0x09, 0xf0][..], &[0x41, 0x9a][..]]);
    }

    #[test]
    fn emulation_prevented_zeros_do_not_split() {
        // 00 00 03 01 inside a NAL is escaped payload, not a start code.
        let data = [
            0, 0, 1, 0x65, 0x00, 0x00, 0x03, 0x01, 0x22, 0, 0, 1, 0x41, 0x01,
        ];
        assert_eq!(
            nals(&data),
            [&[0x65, 0, 0, 3, 1, 0x22][..], &[0x41, 0x01][..]]
        );
    }

    #[test]
    fn no_start_code_means_no_units() {
        assert_eq!(nals(&[]).len(), 0);
        assert_eq!(nals(&[0x65, 0x88]).len(), 0);
        assert_eq!(nals(&[0, 0]).len(), 0);
        assert_eq!(nals(&[0, 0, 1]).len(), 0);
        assert_eq!(nals(&[0, 0, 0, 1, 0, 0]).len(), 0);
    }

    #[test]
    fn avcc_prefixes_each_unit_with_its_length() {
        let data = [0, 0, 0, 1, 0x67, 0x42, 0xc0, 0, 0, 1, 0x65, 0x88];
        assert_eq!(
            &annexb_to_avcc(&data)[..],
            &[0, 0, 0, 3, 0x67, 0x42, 0xc0, 0, 0, 0, 2, 0x65, 0x88]
        );
        assert!(annexb_to_avcc(&[]).is_empty());
    }

    #[test]
    fn parameter_sets_and_idr_form_one_access_unit() {
        // SPS, PPS, SEI, IDR (first_mb 0), P (first_mb 0), P second slice (first_mb 1),
        // AUD, P (first_mb 0).
        let data = [
            0, 0, 0, 1, 0x67, 0x42, //
            0, 0, 0, 1, 0x68, 0xce, //
            0, 0, 1, 0x06, 0x05, //
            0, 0, 1, 0x65, 0x88, //
            0, 0, 1, 0x41, 0x9a, //
            0, 0, 1, 0x41, 0x40, //
            0, 0, 0, 1, 0x09, 0xf0, //
            0, 0, 1, 0x41, 0x9b, //
        ];
        let aus = split_access_units(&data);
        let types: Vec<Vec<u8>> = aus
            .iter()
            .map(|au| au.iter().map(|n| nal_type(n[0])).collect())
            .collect();
        assert_eq!(types, [vec![7, 8, 6, 5], vec![1, 1], vec![9, 1]]);
    }

    #[test]
    fn end_of_sequence_stays_with_its_picture() {
        let data = [0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x0a, 0, 0, 1, 0x65, 0x88];
        let aus = split_access_units(&data);
        assert_eq!(aus.len(), 2);
        assert_eq!(aus[0], [&[0x65, 0x88][..], &[0x0a][..]]);
    }
}
