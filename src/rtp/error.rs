//! The one error type of the `rtp` layer: malformed RTP packets and bad SDP parameter values.

use thiserror::Error;

/// Why an RTP packet or an RTP-related SDP value was rejected.
///
/// Depacketizers never return these for payload problems: a damaged payload is treated as
/// loss (the access unit is dropped and a keyframe requested), because the stream must go on.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RtpError {
    /// Fewer bytes than the fixed 12-byte header (RFC 3550 §5.1).
    #[error("RTP packet too short: {len} bytes, the fixed header needs 12")]
    TooShort { len: usize },
    /// The version field is not 2.
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    /// The CSRC count promises more identifiers than the packet holds.
    #[error("RTP CSRC list truncated: {csrc_count} entries need {needed} bytes, {len} available")]
    TruncatedCsrc {
        csrc_count: u8,
        needed: usize,
        len: usize,
    },
    /// The header extension (RFC 3550 §5.3.1) runs past the end of the packet.
    #[error("RTP header extension truncated: needs {needed} bytes, {len} available")]
    TruncatedExtension { needed: usize, len: usize },
    /// The padding count is zero or larger than what follows the header (RFC 3550 §5.1, P bit).
    #[error("invalid RTP padding: {padding} bytes claimed, {available} after the header")]
    BadPadding { padding: u8, available: usize },
    /// The `sprop-parameter-sets` fmtp value (RFC 6184 §8.1) could not be used.
    #[error("invalid sprop-parameter-sets: {0}")]
    BadSpropParameterSets(String),
}
