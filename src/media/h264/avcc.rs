//! AVCC access units (ISO/IEC 14496-15 sample format): NAL units one after the other, each
//! preceded by its length as a 4-byte big-endian number. This is the layout of H.264
//! [`crate::media::Frame`] data, of FLV video tags and of fMP4 samples.

/// Bytes of the length before every NAL unit (avcC `lengthSizeMinusOne` = 3).
pub const LENGTH_SIZE: usize = 4;

/// Iterator over the NAL units of an AVCC access unit; see [`avcc_nals`].
#[derive(Debug, Clone)]
pub struct AvccNals<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for AvccNals<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, body) = self.rest.split_first_chunk::<LENGTH_SIZE>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
        let Some(nal) = body.get(..len) else {
            // A length that runs past the end: the unit is truncated, and so is the walk.
            self.rest = &[];
            return None;
        };
        self.rest = &body[len..];
        Some(nal)
    }
}

/// The NAL units (header byte first, lengths removed) of an AVCC access unit, in order. The
/// walk ends quietly at a truncated unit, which is not returned; zero-length units are
/// returned as empty slices.
pub fn avcc_nals(data: &[u8]) -> AvccNals<'_> {
    AvccNals { rest: data }
}

/// Appends `nal` to `out` with its 4-byte length in front.
pub fn push_avcc_nal(out: &mut Vec<u8>, nal: &[u8]) {
    // A NAL unit past 4 GiB cannot come from an encoder; saturate rather than wrap.
    let len = u32::try_from(nal.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(nal);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_each_length_prefixed_unit() {
        let data = [0, 0, 0, 2, 0x67, 0x42, 0, 0, 0, 0, 0, 0, 0, 1, 0x65];
        let nals: Vec<&[u8]> = avcc_nals(&data).collect();
        assert_eq!(nals, [&[0x67, 0x42][..], &[][..], &[0x65][..]]);
    }

    #[test]
    fn stops_at_a_truncated_unit_or_length() {
        let data = [0, 0, 0, 1, 0x09, 0, 0, 0, 9, 0x65, 0x88];
        assert_eq!(avcc_nals(&data).collect::<Vec<_>>(), [&[0x09][..]]);
        assert_eq!(avcc_nals(&[0, 0, 0]).count(), 0);
        assert_eq!(avcc_nals(&[0xff, 0xff, 0xff, 0xff, 1]).count(), 0);
        assert_eq!(avcc_nals(&[]).count(), 0);
    }

    #[test]
    fn push_writes_the_length_then_the_unit() {
        let mut out = vec![0xaa];
        push_avcc_nal(&mut out, &[0x68, 0xce]);
        assert_eq!(out, [0xaa, 0, 0, 0, 2, 0x68, 0xce]);
        assert_eq!(avcc_nals(&out[1..]).next(), Some(&[0x68, 0xce][..]));
    }
}
