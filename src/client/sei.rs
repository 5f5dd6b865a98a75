//! End-to-end latency stamps: an H.264 SEI NAL unit (type 6) holding one
//! `user_data_unregistered` message (payload type 5, H.264 §D.1.7 / §D.2.7) made of a fixed
//! UUID and the publisher's wall-clock time in microseconds since the Unix epoch. The publisher
//! ([`super::PublishOptions::latency_stamps`]) puts one in each access unit just before sending
//! it, in front of its pictures; a viewer (the load tool) finds it in FLV tags or fMP4 samples
//! (AVCC: 4-byte length before each NAL) and subtracts it from its own clock. Decoders ignore
//! user data they do not know. Sans-IO: the time is a parameter.

use bytes::Bytes;

use crate::media::h264::nal::{AUD, PPS, SEI as NAL_SEI, SPS};
use crate::media::h264::{avcc_nals, split_annexb};

/// Identifies castgate's latency stamps among other user data (a random v4 UUID).
pub const LATENCY_UUID: [u8; 16] = [
    0x6c, 0x1a, 0x3f, 0x52, 0x9e, 0x07, 0x4d, 0x2b, 0xa4, 0x61, 0xc3, 0x18, 0x5e, 0xd0, 0x77, 0x9a,
];
const USER_DATA_UNREGISTERED: u8 = 5;
const STAMP_LEN: usize = 16 + 8;

/// The SEI NAL unit (header byte included, emulation prevention applied, §7.4.1).
pub fn latency_sei_nal(unix_micros: u64) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(3 + STAMP_LEN);
    rbsp.push(USER_DATA_UNREGISTERED);
    rbsp.push(STAMP_LEN as u8);
    rbsp.extend_from_slice(&LATENCY_UUID);
    rbsp.extend_from_slice(&unix_micros.to_be_bytes());
    rbsp.push(0x80); // rbsp_trailing_bits
                     // forbidden_zero 0, nal_ref_idc 0, type 6
    crate::media::h264::bits::nal_from_rbsp(NAL_SEI, &rbsp)
}

/// The stamp as Annex B (4-byte start code first), to put before an access unit's NAL units.
pub fn annexb_latency_sei(unix_micros: u64) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 1];
    out.extend_from_slice(&latency_sei_nal(unix_micros));
    out
}

/// `au` (Annex B, as [`super::AccessUnit`] holds it) with a stamp NAL unit put in, re-framed
/// with 4-byte start codes. It goes after a leading access unit delimiter and parameter sets
/// (where H.264 §7.4.1.2.3 wants them) and before the other SEI and the slices, so it is the
/// first NAL unit a gateway that strips parameter sets passes on. One exception: an SEI
/// holding a buffering period must stay the first SEI (§D.2.2), so the stamp goes after it.
pub fn stamp_access_unit(au: &[u8], unix_micros: u64) -> Bytes {
    let stamp = latency_sei_nal(unix_micros);
    let mut out = Vec::with_capacity(au.len() + stamp.len() + 8);
    let mut inserted = false;
    for nal in split_annexb(au) {
        let kind = nal.first().map_or(0, |h| h & 0x1f);
        let leading = matches!(kind, AUD | SPS | PPS);
        let buffering_period = kind == NAL_SEI && nal.get(1) == Some(&0);
        if !inserted && !leading && !buffering_period {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(&stamp);
            inserted = true;
        }
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    if !inserted {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(&stamp);
    }
    Bytes::from(out)
}

/// The stamp in an AVCC access unit (4-byte big-endian NAL lengths), if there is one. Stops
/// quietly at a truncated or malformed unit: `avcc` may be only the start of a frame.
pub fn find_latency_stamp(avcc: &[u8]) -> Option<u64> {
    avcc_nals(avcc)
        .filter(|nal| nal.first().is_some_and(|h| h & 0x1f == NAL_SEI))
        .find_map(|nal| stamp_in_sei(&unescape(&nal[1..])))
}

/// Every stamp in `bytes` wherever it sits, e.g. an fMP4 `mdat` holding several samples of
/// both tracks: the message header (type 5, size 24) and the UUID are searched for directly,
/// which is safe because that byte string has no emulation-prevention byte inside.
pub fn scan_latency_stamps(bytes: &[u8]) -> Vec<u64> {
    let mut marker = [0u8; 2 + 16];
    marker[0] = USER_DATA_UNREGISTERED;
    marker[1] = STAMP_LEN as u8;
    marker[2..].copy_from_slice(&LATENCY_UUID);
    let mut stamps = Vec::new();
    for found in memchr::memmem::find_iter(bytes, &marker) {
        let start = found + marker.len();
        // The 8 time bytes may carry emulation-prevention bytes: unescape a little more.
        let tail = bytes.get(start..bytes.len().min(start + 16)).unwrap_or(&[]);
        let time = unescape(tail);
        if let Some(t) = time.get(..8) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(t);
            stamps.push(u64::from_be_bytes(ts));
        }
    }
    stamps
}

/// Removes emulation_prevention_three_bytes (§7.4.1).
fn unescape(ebsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ebsp.len());
    let mut zeros = 0;
    for &b in ebsp {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// Walks the sei_message()s of an SEI RBSP (§7.3.2.3.1: type and size each coded as a run
/// of 0xFF bytes plus a last byte).
fn stamp_in_sei(rbsp: &[u8]) -> Option<u64> {
    let mut at = 0usize;
    // Stop at rbsp_trailing_bits (0x80 as the last byte).
    while at < rbsp.len() && !(rbsp[at] == 0x80 && at + 1 == rbsp.len()) {
        let mut read_varint = || {
            let mut v = 0usize;
            loop {
                let b = *rbsp.get(at)?;
                at += 1;
                v = v.saturating_add(usize::from(b));
                if b != 0xff {
                    return Some(v);
                }
            }
        };
        let kind = read_varint()?;
        let size = read_varint()?;
        let payload = rbsp.get(at..at.checked_add(size)?)?;
        if kind == usize::from(USER_DATA_UNREGISTERED)
            && size == STAMP_LEN
            && payload[..16] == LATENCY_UUID
        {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&payload[16..]);
            return Some(u64::from_be_bytes(ts));
        }
        at += size;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avcc(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in nals {
            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
            out.extend_from_slice(n);
        }
        out
    }

    /// Annex B with 4-byte start codes.
    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in nals {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(n);
        }
        out
    }

    const AUD_NAL: &[u8] = &[0x09, 0xf0];
    const SPS_NAL: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xd9];
    const PPS_NAL: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
    /// An encoder's own user data SEI (another UUID), as x264 writes in its first picture.
    const X264_SEI: &[u8] = &[
        0x06, 0x05, 0x11, 0xdc, 0x45, 0xe9, 0xbd, 0xe6, 0xd9, 0x48, 0x80,
    ];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33];
    const SLICE: &[u8] = &[0x41, 0x9a, 0x02, 0x04];

    #[test]
    fn stamp_goes_after_the_delimiter_and_parameter_sets_before_other_sei_and_slices() {
        let t = 1_795_000_000_123_456u64;
        let au = annexb(&[AUD_NAL, SPS_NAL, PPS_NAL, X264_SEI, IDR]);
        let stamped = stamp_access_unit(&au, t);
        let stamp = latency_sei_nal(t);
        assert_eq!(
            stamped,
            annexb(&[AUD_NAL, SPS_NAL, PPS_NAL, &stamp, X264_SEI, IDR])
        );
        // Read back as a gateway passes it on: AVCC, parameter sets and delimiter gone.
        let passed_on = crate::media::h264::annexb_to_avcc(&annexb(&[&stamp, X264_SEI, IDR]));
        assert_eq!(find_latency_stamp(&passed_on), Some(t));
        assert_eq!(
            find_latency_stamp(&crate::media::h264::annexb_to_avcc(&stamped)),
            Some(t)
        );
    }

    #[test]
    fn a_plain_picture_gets_the_stamp_in_front_and_three_byte_start_codes_become_four() {
        let mut au = vec![0, 0, 1];
        au.extend_from_slice(SLICE);
        let stamped = stamp_access_unit(&au, 7);
        assert_eq!(stamped, annexb(&[&latency_sei_nal(7), SLICE]));
        assert_eq!(
            split_annexb(&stamped).collect::<Vec<_>>(),
            vec![&latency_sei_nal(7)[..], SLICE]
        );
    }

    #[test]
    fn a_buffering_period_sei_stays_first_and_an_empty_unit_gets_just_the_stamp() {
        let buffering: &[u8] = &[0x06, 0x00, 0x01, 0x80, 0x80];
        let stamped = stamp_access_unit(&annexb(&[SPS_NAL, buffering, IDR]), 9);
        assert_eq!(
            stamped,
            annexb(&[SPS_NAL, buffering, &latency_sei_nal(9), IDR])
        );
        assert_eq!(stamp_access_unit(&[], 9), annexb(&[&latency_sei_nal(9)]));
    }

    #[test]
    fn stamp_round_trips_through_an_avcc_frame_after_the_sei() {
        let t = 1_795_000_000_123_456u64;
        let frame = avcc(&[&latency_sei_nal(t), &[0x65, 0x88, 0x84, 0x00]]);
        assert_eq!(find_latency_stamp(&frame), Some(t));
    }

    #[test]
    fn zero_bytes_in_the_timestamp_get_emulation_prevention() {
        // 0x00000000_00000100: six zero bytes then 0x01 must be escaped.
        let nal = latency_sei_nal(0x100);
        assert!(
            !nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2),
            "no start-code emulation: {nal:02x?}"
        );
        assert_eq!(find_latency_stamp(&avcc(&[&nal])), Some(0x100));
        assert_eq!(find_latency_stamp(&avcc(&[&latency_sei_nal(0)])), Some(0));
    }

    #[test]
    fn layout_is_header_type_size_uuid_time_trailing_bits() {
        let nal = latency_sei_nal(0x0102_0304_0506_0708);
        assert_eq!(&nal[..3], &[0x06, 0x05, 24]);
        assert_eq!(&nal[3..19], &LATENCY_UUID);
        assert_eq!(&nal[19..], &[1, 2, 3, 4, 5, 6, 7, 8, 0x80]);
        assert_eq!(&annexb_latency_sei(1)[..5], &[0, 0, 0, 1, 0x06]);
    }

    #[test]
    fn other_user_data_and_a_recovery_point_sei_first_are_skipped() {
        let t = 42u64;
        // x264 writes its own user_data_unregistered (another UUID); a recovery point SEI
        // (type 6, size 1) may precede our message in the same NAL.
        let mut foreign = vec![0x06, 0x05, 17];
        foreign.extend_from_slice(&[0xdc; 16]);
        foreign.extend_from_slice(&[b'x', 0x80]);
        let mut combined = vec![0x06, 0x06, 0x01, 0x84];
        combined.extend_from_slice(&latency_sei_nal(t)[1..]);
        assert_eq!(find_latency_stamp(&avcc(&[&foreign, &combined])), Some(t));
        assert_eq!(find_latency_stamp(&avcc(&[&foreign])), None);
    }

    #[test]
    fn stamps_are_found_anywhere_in_an_mdat_payload() {
        // Audio bytes, a stamped video sample (time with zero bytes, so escaped), audio, another.
        let mut mdat = vec![0xfc, 0x01, 0x02];
        mdat.extend_from_slice(&avcc(&[&latency_sei_nal(0x100), &[0x41, 0x9a]]));
        mdat.extend_from_slice(&[0xfc; 7]);
        mdat.extend_from_slice(&avcc(&[&latency_sei_nal(1_795_000_000_000_000)]));
        assert_eq!(
            scan_latency_stamps(&mdat),
            vec![0x100, 1_795_000_000_000_000]
        );
        assert!(scan_latency_stamps(&mdat[..20]).is_empty());
        assert!(scan_latency_stamps(&[]).is_empty());
    }

    #[test]
    fn truncated_or_garbage_input_gives_none_without_panicking() {
        let frame = avcc(&[&latency_sei_nal(7)]);
        for cut in 0..frame.len() {
            assert_eq!(find_latency_stamp(&frame[..cut]), None, "cut at {cut}");
        }
        assert_eq!(find_latency_stamp(&[0xff; 40]), None);
        assert_eq!(find_latency_stamp(&[0, 0, 0, 3, 0x06, 0xff, 0xff]), None);
    }
}
