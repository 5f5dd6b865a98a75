//! Media frames as they travel from the depacketizers to the muxers, and the one media clock.

pub mod clock;
pub mod h264;

use bytes::Bytes;

/// The media clock: every `Frame` timestamp in the hub and the muxers is in 90 kHz ticks.
/// 48 kHz audio maps onto it exactly for any multiple of 8 samples (960 and 1024 included).
pub const CLOCK_RATE: u32 = 90_000;

/// Which codec a frame's bytes are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// H.264 access unit in AVCC form: each NAL unit prefixed by its 4-byte big-endian length.
    /// Parameter sets (SPS/PPS) and access unit delimiters are *not* in the frame: they travel
    /// separately as [`h264::ParameterSets`].
    H264,
    /// One Opus packet (RFC 7587: one packet per RTP payload).
    Opus,
    /// One raw AAC-LC frame (1024 samples), no ADTS header.
    Aac,
}

impl Codec {
    /// True for video codecs.
    pub fn is_video(self) -> bool {
        matches!(self, Codec::H264)
    }
}

/// One access unit (video) or one codec frame (audio).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub codec: Codec,
    /// Presentation time in 90 kHz ticks.
    pub pts: i64,
    /// Decode time in 90 kHz ticks (equal to `pts` for streams without B-frames, as WebRTC has).
    pub dts: i64,
    /// An IDR access unit (video); always true for audio.
    pub keyframe: bool,
    /// The payload; see [`Codec`] for its layout.
    pub data: Bytes,
}

#[cfg(test)]
impl Frame {
    /// Test input: an H.264 access unit (length-prefixed NAL units) at time 0.
    pub(crate) fn h264_at_zero(keyframe: bool, data: &'static [u8]) -> Frame {
        Frame {
            codec: Codec::H264,
            pts: 0,
            dts: 0,
            keyframe,
            data: Bytes::from_static(data),
        }
    }
}
