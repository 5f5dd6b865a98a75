//! Errors of the audio transcoder (Opus decode, AAC-LC encode, their configuration).

/// Why an audio codec could not be set up or could not process its input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// Only mono and stereo are carried (WebRTC Opus is one or two channels, RFC 7587 §7).
    #[error("unsupported channel count {0} (1 or 2)")]
    Channels(u8),
    /// The rate has no index in the AAC sampling frequency table (ISO/IEC 14496-3 §1.6.3.4).
    #[error("sample rate {0} Hz is not in the AAC sampling frequency table")]
    SampleRate(u32),
    /// Zero, or above AAC's 6144 bits per channel per frame.
    #[error("AAC bitrate {0} b/s is out of range")]
    Bitrate(u32),
    /// The Opus packet's TOC is unusable (RFC 6716 §3.1): empty, code 3 without its frame
    /// count, or longer than 120 ms.
    #[error("malformed Opus packet: {0}")]
    BadPacket(&'static str),
    /// PCM handed to an encoder is not a whole number of interleaved sample frames.
    #[error("PCM length {len} is not a multiple of {channels} channels")]
    PcmShape { len: usize, channels: u8 },
    /// The Opus decoder rejected a packet (its message).
    #[error("Opus decoder: {0}")]
    Decode(&'static str),
    /// The AAC encoder failed (its message).
    #[error("AAC encoder: {0}")]
    Encode(String),
}
