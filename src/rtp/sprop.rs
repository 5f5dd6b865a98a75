//! The H.264 `sprop-parameter-sets` SDP fmtp parameter (RFC 6184 §8.1): base64 SPS and PPS.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use bytes::Bytes;

use super::RtpError;

/// SDP producers disagree about base64 padding; accept both.
const SPROP_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes a `sprop-parameter-sets` value: comma-separated base64 NAL units, normally
/// "SPS,PPS". Returns the last SPS and PPS found (other NAL types are ignored); an error when
/// a part is not base64 or decodes to nothing, or when neither an SPS nor a PPS is present.
pub fn parse_sprop_parameter_sets(value: &str) -> Result<(Option<Bytes>, Option<Bytes>), RtpError> {
    let (mut sps, mut pps) = (None, None);
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let nal = SPROP_BASE64
            .decode(part)
            .map_err(|e| RtpError::BadSpropParameterSets(format!("{part:?}: {e}")))?;
        match nal.first().map(|h| h & 0x1f) {
            Some(7) => sps = Some(Bytes::from(nal)),
            Some(8) => pps = Some(Bytes::from(nal)),
            Some(_) => {}
            None => {
                return Err(RtpError::BadSpropParameterSets(format!(
                    "{part:?} decodes to nothing"
                )))
            }
        }
    }
    if sps.is_none() && pps.is_none() {
        return Err(RtpError::BadSpropParameterSets(format!(
            "no SPS or PPS in {value:?}"
        )));
    }
    Ok((sps, pps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chromium_style_value_decodes_to_sps_and_pps() {
        // profile-level-id 42e01f baseline SPS and a 4-byte PPS.
        let (sps, pps) = parse_sprop_parameter_sets("Z0LgH9oBQBbo,aM4NiA==").unwrap();
        assert_eq!(
            sps.as_deref(),
            Some(&[0x67, 0x42, 0xe0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8][..])
        );
        assert_eq!(pps.as_deref(), Some(&[0x68, 0xce, 0x0d, 0x88][..]));
    }

    #[test]
    fn pps_alone_is_accepted_and_unknown_nal_types_are_skipped() {
        let (sps, pps) = parse_sprop_parameter_sets("BgUB,aM4NiA").unwrap();
        assert_eq!(sps, None);
        assert_eq!(pps.as_deref(), Some(&[0x68, 0xce, 0x0d, 0x88][..]));
    }

    #[test]
    fn invalid_base64_is_an_error() {
        assert!(matches!(
            parse_sprop_parameter_sets("Z0L*H9oB,aM4NiA=="),
            Err(RtpError::BadSpropParameterSets(_))
        ));
    }
}
