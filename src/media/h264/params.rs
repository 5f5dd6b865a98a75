//! One SPS + PPS pair as a stream's decoder configuration: the AVCDecoderConfigurationRecord
//! (ISO/IEC 14496-15 §5.3.3.1, used by FLV and fMP4 `avcC`) and the RFC 6381 codec string.

use bytes::Bytes;

use super::sps::{parse_sps_details, SpsInfo};
use super::{nal, nal_type, H264Error};

/// The parameter sets of one H.264 stream, as NAL units (header byte included).
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterSets {
    pub sps: Bytes,
    pub pps: Bytes,
    pub info: SpsInfo,
}

/// AVCProfileIndication values for which the record carries the chroma/bit-depth extension.
fn record_has_extension(profile_idc: u8) -> bool {
    matches!(profile_idc, 100 | 110 | 122 | 244)
}

/// Bytes of the record before the SPS: version, profile, compat, level, length size, SPS count,
/// SPS length; then PPS count and PPS length between the two sets; then the 4 extension bytes.
const RECORD_FIXED_LEN: usize = 6 + 2 + 1 + 2;
const RECORD_EXTENSION_LEN: usize = 4;

impl ParameterSets {
    /// Checks the NAL types and lengths and parses the SPS.
    pub fn new(sps: Bytes, pps: Bytes) -> Result<Self, H264Error> {
        check_nal(&sps, nal::SPS)?;
        check_nal(&pps, nal::PPS)?;
        let info = parse_sps_details(&sps)?.info;
        Ok(ParameterSets { sps, pps, info })
    }

    /// Length in bytes of [`Self::avc_decoder_configuration_record`].
    pub fn avc_decoder_configuration_record_len(&self) -> usize {
        let ext = if self.extension().is_some() {
            RECORD_EXTENSION_LEN
        } else {
            0
        };
        RECORD_FIXED_LEN + self.sps.len() + self.pps.len() + ext
    }

    /// The AVCDecoderConfigurationRecord with one SPS, one PPS and 4-byte NAL lengths.
    pub fn avc_decoder_configuration_record(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.avc_decoder_configuration_record_len());
        self.write_avc_decoder_configuration_record(&mut out);
        Bytes::from(out)
    }

    /// Appends the record to `out` (lets muxers build a whole tag or box in one allocation).
    pub fn write_avc_decoder_configuration_record(&self, out: &mut Vec<u8>) {
        // Fields 2..4 copy the SPS bytes after the NAL header: profile_idc, the constraint
        // byte and level_idc (§5.3.3.1.2). `new` guaranteed the SPS is at least 4 bytes.
        out.push(1); // configurationVersion
        out.push(self.info.profile_idc);
        out.push(self.info.constraint_flags);
        out.push(self.info.level_idc);
        out.push(0xfc | 3); // reserved '111111' + lengthSizeMinusOne = 3
        out.push(0xe0 | 1); // reserved '111' + numOfSequenceParameterSets = 1
        push_u16_len(out, &self.sps);
        out.push(1); // numOfPictureParameterSets
        push_u16_len(out, &self.pps);
        if let Some(ext) = self.extension() {
            out.extend_from_slice(&ext);
        }
    }

    /// RFC 6381 §3.3 `avc1.PPCCLL` (hex profile, constraint byte, level), e.g. `avc1.42e01f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.info.profile_idc, self.info.constraint_flags, self.info.level_idc
        )
    }

    /// The high-profile tail of the record: chroma_format, bit depths, and zero SPS extensions.
    /// The SPS is parsed again for these (a record is built once per stream), which keeps
    /// [`SpsInfo`] to the fields muxers use. A `ParameterSets` assembled by hand with an SPS
    /// that does not parse falls back to 4:2:0 8-bit.
    fn extension(&self) -> Option<[u8; RECORD_EXTENSION_LEN]> {
        if !record_has_extension(self.info.profile_idc) {
            return None;
        }
        let (chroma, luma, chroma_depth) = parse_sps_details(&self.sps).map_or((1, 0, 0), |d| {
            (
                d.chroma_format_idc,
                d.bit_depth_luma_minus8,
                d.bit_depth_chroma_minus8,
            )
        });
        Some([
            0xfc | (chroma & 0x03),
            0xf8 | (luma & 0x07),
            0xf8 | (chroma_depth & 0x07),
            0, // numOfSequenceParameterSetExt
        ])
    }
}

fn check_nal(unit: &[u8], expected: u8) -> Result<(), H264Error> {
    let &header = unit.first().ok_or(H264Error::Empty)?;
    let found = nal_type(header);
    if found != expected {
        return Err(H264Error::WrongNalType { expected, found });
    }
    if unit.len() > usize::from(u16::MAX) {
        return Err(H264Error::ParameterSetTooLong { len: unit.len() });
    }
    Ok(())
}

/// A 16-bit big-endian length then the bytes; `check_nal` bounded the length.
fn push_u16_len(out: &mut Vec<u8>, unit: &[u8]) {
    let len = u16::try_from(unit.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&unit[..usize::from(len)]);
}

#[cfg(test)]
mod tests {
    use super::super::test_vectors as tv;
    use super::*;

    fn sets(v: &tv::Vector) -> ParameterSets {
        ParameterSets::new(Bytes::from_static(v.sps), Bytes::from_static(v.pps)).unwrap()
    }

    #[test]
    fn baseline_record_has_no_extension() {
        let ps = sets(&tv::CHROMIUM_BASELINE_720P30);
        let rec = ps.avc_decoder_configuration_record();
        let sps = tv::CHROMIUM_BASELINE_720P30.sps;
        let pps = tv::CHROMIUM_BASELINE_720P30.pps;
        let mut expected = vec![0x01, 0x42, 0xe0, 0x1f, 0xff, 0xe1, 0x00, sps.len() as u8];
        expected.extend_from_slice(sps);
        expected.extend_from_slice(&[0x01, 0x00, pps.len() as u8]);
        expected.extend_from_slice(pps);
        assert_eq!(&rec[..], &expected[..]);
        assert_eq!(ps.avc_decoder_configuration_record_len(), rec.len());
    }

    #[test]
    fn high_record_appends_chroma_and_bit_depth() {
        let ps = sets(&tv::HIGH_720P30);
        let rec = ps.avc_decoder_configuration_record();
        assert_eq!(&rec[..5], &[0x01, 0x64, 0x00, 0x1f, 0xff]);
        // 4:2:0 (0xfc|1), 8-bit luma and chroma (0xf8|0), no SPS extensions.
        assert_eq!(&rec[rec.len() - 4..], &[0xfd, 0xf8, 0xf8, 0x00]);
        assert_eq!(rec.len(), 11 + 26 + 6 + 4);
    }

    #[test]
    fn high10_and_444_records_carry_their_formats() {
        let rec = sets(&tv::HIGH10_1080P25).avc_decoder_configuration_record();
        assert_eq!(&rec[rec.len() - 4..], &[0xfd, 0xfa, 0xfa, 0x00]);
        let rec = sets(&tv::HIGH444_720P30).avc_decoder_configuration_record();
        assert_eq!(&rec[rec.len() - 4..], &[0xff, 0xf8, 0xf8, 0x00]);
        let rec = sets(&tv::HIGH422_720P50).avc_decoder_configuration_record();
        assert_eq!(&rec[rec.len() - 4..], &[0xfe, 0xf8, 0xf8, 0x00]);
    }

    #[test]
    fn main_profile_record_has_no_extension() {
        let ps = sets(&tv::MAIN_854X480);
        let rec = ps.avc_decoder_configuration_record();
        assert_eq!(rec.len(), 11 + ps.sps.len() + ps.pps.len());
        assert_eq!(&rec[rec.len() - ps.pps.len()..], &ps.pps[..]);
    }

    #[test]
    fn codec_strings_follow_rfc_6381() {
        assert_eq!(
            sets(&tv::CHROMIUM_BASELINE_720P30).codec_string(),
            "avc1.42e01f"
        );
        assert_eq!(sets(&tv::HIGH_720P30).codec_string(), "avc1.64001f");
        assert_eq!(sets(&tv::MAIN_854X480).codec_string(), "avc1.4d401f");
        assert_eq!(sets(&tv::HIGH10_1080P25).codec_string(), "avc1.6e0028");
    }

    #[test]
    fn new_checks_types_and_lengths() {
        let sps = Bytes::from_static(tv::HIGH_720P30.sps);
        let pps = Bytes::from_static(tv::HIGH_720P30.pps);
        assert_eq!(
            ParameterSets::new(pps.clone(), sps.clone()),
            Err(H264Error::WrongNalType {
                expected: 7,
                found: 8
            })
        );
        assert_eq!(
            ParameterSets::new(sps.clone(), Bytes::new()),
            Err(H264Error::Empty)
        );
        let mut long_pps = vec![0x68; 70_000];
        long_pps[1] = 0xce;
        assert_eq!(
            ParameterSets::new(sps.clone(), Bytes::from(long_pps)),
            Err(H264Error::ParameterSetTooLong { len: 70_000 })
        );
        assert_eq!(
            ParameterSets::new(Bytes::from_static(&[0x67, 0x42]), pps.clone()),
            Err(H264Error::Truncated)
        );
        let ps = ParameterSets::new(sps, pps).unwrap();
        assert_eq!((ps.info.width, ps.info.height), (1280, 720));
    }
}
