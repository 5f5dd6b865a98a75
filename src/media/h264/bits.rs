//! RBSP extraction (emulation-prevention removal) and an MSB-first bit reader with the
//! exp-Golomb codes of H.264 §9.1.

use std::borrow::Cow;

use super::H264Error;

/// Turns NAL unit payload bytes into RBSP bytes by dropping each emulation-prevention byte:
/// the 0x03 in any 0x00 0x00 0x03 sequence (H.264 §7.3.1, §7.4.1). Borrows when there is none.
pub fn remove_emulation_prevention(data: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = find_emulation_byte(data, 0) else {
        return Cow::Borrowed(data);
    };
    let mut out = Vec::with_capacity(data.len() - 1);
    let mut copied_to = 0;
    let mut next = Some(first);
    while let Some(at) = next {
        out.extend_from_slice(&data[copied_to..at]);
        copied_to = at + 1;
        // The zeros counted before a removed 0x03 do not count again: 00 00 03 00 00 03 keeps
        // both 0x03 positions as separate emulation bytes.
        next = find_emulation_byte(data, copied_to);
    }
    out.extend_from_slice(&data[copied_to..]);
    Cow::Owned(out)
}

/// The inverse of [`remove_emulation_prevention`]: a NAL unit from its header byte and RBSP,
/// with a 0x03 put after any two zero bytes that a byte of 0..=3 follows (H.264 §7.4.1).
pub fn nal_from_rbsp(header: u8, rbsp: &[u8]) -> Vec<u8> {
    let mut nal = Vec::with_capacity(rbsp.len() + rbsp.len() / 64 + 2);
    nal.push(header);
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            nal.push(3);
            zeros = 0;
        }
        nal.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    nal
}

/// Index of the next 0x03 that follows two zero bytes, starting the zero count at `from`.
fn find_emulation_byte(data: &[u8], from: usize) -> Option<usize> {
    let mut zeros = 0usize;
    for (i, &b) in data.iter().enumerate().skip(from) {
        if b == 0x03 && zeros >= 2 {
            return Some(i);
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    None
}

/// Reads bits most-significant first from RBSP bytes.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    /// Bits not yet read.
    pub fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// u(1).
    pub fn read_bit(&mut self) -> Result<bool, H264Error> {
        let byte = *self.data.get(self.pos / 8).ok_or(H264Error::Truncated)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// u(n) for n ≤ 32.
    pub fn read_bits(&mut self, n: u32) -> Result<u32, H264Error> {
        if n > 32 {
            return Err(H264Error::ExpGolombOverflow);
        }
        if self.bits_left() < n as usize {
            return Err(H264Error::Truncated);
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.read_bit()?);
        }
        // n ≤ 32, so v fits.
        Ok(v as u32)
    }

    /// u(8).
    pub fn read_u8(&mut self) -> Result<u8, H264Error> {
        Ok(self.read_bits(8)? as u8)
    }

    /// Skips `n` bits.
    pub fn skip_bits(&mut self, n: usize) -> Result<(), H264Error> {
        if self.bits_left() < n {
            return Err(H264Error::Truncated);
        }
        self.pos += n;
        Ok(())
    }

    /// ue(v), H.264 §9.1: `2^lz - 1 + read_bits(lz)`. At most 31 leading zeros are accepted, so
    /// every value fits a u32 (the largest is 2^32 - 2).
    pub fn read_ue(&mut self) -> Result<u32, H264Error> {
        let mut leading_zeros = 0u32;
        while !self.read_bit()? {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return Err(H264Error::ExpGolombOverflow);
            }
        }
        let suffix = u64::from(self.read_bits(leading_zeros)?);
        let value = (1u64 << leading_zeros) - 1 + suffix;
        u32::try_from(value).map_err(|_| H264Error::ExpGolombOverflow)
    }

    /// se(v), H.264 §9.1.1: ue values 1, 2, 3, 4… map to 1, −1, 2, −2…
    pub fn read_se(&mut self) -> Result<i32, H264Error> {
        let k = i64::from(self.read_ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        // |v| ≤ 2^31 - 1 because k ≤ 2^32 - 2.
        i32::try_from(v).map_err(|_| H264Error::ExpGolombOverflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulation_prevention_byte_is_dropped() {
        assert_eq!(
            &*remove_emulation_prevention(&[0x00, 0x00, 0x03, 0x01]),
            &[0, 0, 1]
        );
        assert_eq!(
            &*remove_emulation_prevention(&[0x11, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x02]),
            &[0x11, 0, 0, 0, 0, 2]
        );
        // A trailing 00 00 03 (cabac_zero_word padding) loses its 0x03 as well.
        assert_eq!(
            &*remove_emulation_prevention(&[0x05, 0x00, 0x00, 0x03]),
            &[5, 0, 0]
        );
    }

    #[test]
    fn bytes_without_emulation_prevention_are_borrowed() {
        let data = [0x00, 0x03, 0x00, 0x00, 0x01, 0x03];
        assert!(matches!(
            remove_emulation_prevention(&data),
            Cow::Borrowed(_)
        ));
        // 00 03 is not an escape (needs two zeros); 01 03 neither.
        assert_eq!(&*remove_emulation_prevention(&data), &data);
    }

    #[test]
    fn three_zeros_then_three_drops_one_byte() {
        // 00 00 00 03 cannot occur in a valid NAL, but must not confuse the scanner.
        assert_eq!(
            &*remove_emulation_prevention(&[0, 0, 0, 3, 7]),
            &[0, 0, 0, 7]
        );
    }

    #[test]
    fn exp_golomb_codes_from_the_standard_table() {
        // H.264 Table 9-2: 1 → 0, 010 → 1, 011 → 2, 00100 → 3, 00111 → 6, 0001000 → 7.
        // Packed: 1 010 011 00100 00111 0001000 (+ padding)
        // = 1010 0110 0100 0011 1000 1000 = 0xA6 0x43 0x88
        let data = [0xA6, 0x43, 0x88];
        let mut r = BitReader::new(&data);
        let got: Vec<u32> = (0..6).map(|_| r.read_ue().unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 3, 6, 7]);
        assert_eq!(r.bits_left(), 0);
    }

    #[test]
    fn signed_exp_golomb_alternates_sign() {
        // ue 0,1,2,3,4 → se 0,1,-1,2,-2: 1 010 011 00100 00101 = 1010 0110 0100 0010 1
        let data = [0xA6, 0x42, 0x80];
        let mut r = BitReader::new(&data);
        let got: Vec<i32> = (0..5).map(|_| r.read_se().unwrap()).collect();
        assert_eq!(got, [0, 1, -1, 2, -2]);
    }

    #[test]
    fn largest_ue_is_accepted_and_longer_codes_rejected() {
        // 31 zeros, a one, 31 ones → 2^32 - 2.
        let mut max = [0u8; 8];
        // bits 0..31 zero, bit 31 one, bits 32..63 ones (31 needed, one spare).
        max[3] = 0x01;
        max[4..].fill(0xff);
        assert_eq!(BitReader::new(&max).read_ue(), Ok(u32::MAX - 1));
        let mut r = BitReader::new(&max);
        r.skip_bits(31).unwrap();
        assert_eq!(r.read_bit(), Ok(true));

        let zeros = [0u8; 8];
        assert_eq!(
            BitReader::new(&zeros).read_ue(),
            Err(H264Error::ExpGolombOverflow)
        );
        // The largest negative se(v) stays in range.
        assert_eq!(BitReader::new(&max).read_se(), Ok(-(i32::MAX)));
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read_bits(8), Ok(0xff));
        assert_eq!(r.read_bit(), Err(H264Error::Truncated));
        assert_eq!(BitReader::new(&[0x00]).read_ue(), Err(H264Error::Truncated));
        assert_eq!(BitReader::new(&[0x01]).read_ue(), Err(H264Error::Truncated));
        assert_eq!(BitReader::new(&[]).read_bits(1), Err(H264Error::Truncated));
        assert_eq!(
            BitReader::new(&[0xff]).skip_bits(9),
            Err(H264Error::Truncated)
        );
        assert_eq!(
            BitReader::new(&[0; 8]).read_bits(33),
            Err(H264Error::ExpGolombOverflow)
        );
    }

    #[test]
    fn nal_from_rbsp_round_trips_through_removal() {
        let rbsp = [0u8, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 7];
        let nal = nal_from_rbsp(0x06, &rbsp);
        assert_eq!(
            nal,
            [6, 0, 0, 3, 0, 0, 3, 0, 1, 0, 0, 3, 2, 0, 0, 3, 3, 0, 0, 4, 7]
        );
        assert_eq!(&remove_emulation_prevention(&nal[1..])[..], &rbsp[..]);
    }
}
