//! FLV writer: file header, onMetaData, AVC/AAC sequence headers and media tags.
//!
//! Follows Adobe's "Video File Format Specification v10.1" (Annex E). Every tag function returns
//! one complete tag *including* its trailing 4-byte PreviousTagSize, so HTTP-FLV can send the
//! file header and then tags back to back. Each tag is built in exactly one allocation of its
//! final size. Submodules: `amf0` (script data values), `reader` (a strict parser for tests).

pub mod amf0;
mod reader;

#[cfg(test)]
mod ffprobe_tests;
#[cfg(test)]
mod tests;

use bytes::Bytes;

use crate::media::h264::ParameterSets;
use crate::media::Frame;
use amf0::Amf0;

pub use reader::{first_step_back, parse_header, parse_tag_stream, parse_tags, FlvHeader, FlvTag};

/// Tag types (§E.4.1).
pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

/// FLV codec ids written in onMetaData and the media tag headers.
pub const VIDEO_CODEC_AVC: u8 = 7;
pub const AUDIO_CODEC_AAC: u8 = 10;

/// TagType(1) DataSize(3) Timestamp(3) TimestampExtended(1) StreamID(3).
pub const TAG_HEADER_LEN: usize = 11;
/// The 32-bit PreviousTagSize after every tag.
pub const PREVIOUS_TAG_SIZE_LEN: usize = 4;
/// DataSize is 24 bits: a body longer than this cannot be written.
pub const MAX_TAG_BODY_LEN: usize = 0x00ff_ffff;

/// AVCPacketType (§E.4.3.1).
const AVC_SEQUENCE_HEADER: u8 = 0;
const AVC_NALU: u8 = 1;
const AVC_END_OF_SEQUENCE: u8 = 2;
/// FrameType (upper nibble of the video tag's first byte).
const FRAME_KEY: u8 = 1;
const FRAME_INTER: u8 = 2;
/// AACPacketType (§E.4.2.1).
const AAC_SEQUENCE_HEADER: u8 = 0;
const AAC_RAW: u8 = 1;
/// SoundFormat 10 (AAC) << 4 | SoundRate 3 (44 kHz) << 2 | SoundSize 1 (16-bit) << 1 |
/// SoundType 1 (stereo). §E.4.2.1: for AAC the rate and type bits are always 3 and 1; the
/// real rate and channel count come from the AudioSpecificConfig.
const AAC_SOUND_FLAGS: u8 = (AUDIO_CODEC_AAC << 4) | (3 << 2) | (1 << 1) | 1;
/// Video header before the payload: frame type/codec, AVCPacketType, CompositionTime(3).
const AVC_HEADER_LEN: usize = 5;
/// Audio header before the payload: sound flags, AACPacketType.
const AAC_HEADER_LEN: usize = 2;

/// Errors from reading FLV (the writers cannot fail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    #[error("not an FLV file (signature is not \"FLV\")")]
    BadSignature,
    #[error("unsupported FLV version {0}")]
    UnsupportedVersion(u8),
    #[error("FLV header data offset {0} is below 9")]
    BadDataOffset(u32),
    #[error("FLV data ends inside the structure at byte {offset}")]
    Truncated { offset: usize },
    #[error("PreviousTagSize at byte {offset} is {found}, expected {expected}")]
    PreviousTagSize {
        offset: usize,
        expected: u32,
        found: u32,
    },
    #[error("bad AMF0 data: {0}")]
    Amf0(&'static str),
}

/// The 9-byte file header (signature, version 1, audio/video flags, data offset 9) followed by
/// PreviousTagSize0 = 0.
pub fn file_header(has_audio: bool, has_video: bool) -> Bytes {
    let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
    Bytes::from(vec![b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0])
}

/// What onMetaData describes (by default: nothing known, no video, no audio).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlvMetadata {
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
    pub video_data_rate_kbps: Option<f64>,
    pub has_video: bool,
    pub audio: Option<FlvAudioInfo>,
}

/// Audio parameters for onMetaData (the decoder itself reads the AudioSpecificConfig).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvAudioInfo {
    pub sample_rate: u32,
    pub channels: u8,
}

/// Upper bound on onMetaData entries (the array below lives on the stack).
const MAX_METADATA_ENTRIES: usize = 16;

/// The `onMetaData` script tag at timestamp 0: an AMF0 string and an ECMA array with the
/// video size, frame rate, data rate and codec, the audio codec, rate and channel layout, and
/// `encoder: "castgate"`. Absent values are left out rather than written as zero.
pub fn metadata_tag(meta: &FlvMetadata) -> Bytes {
    let mut entries = [("", Amf0::Boolean(false)); MAX_METADATA_ENTRIES];
    let mut n = 0;
    let mut push = |key: &'static str, value: Amf0<'static>| {
        if let Some(slot) = entries.get_mut(n) {
            *slot = (key, value);
            n += 1;
        }
    };
    push("hasVideo", Amf0::Boolean(meta.has_video));
    push("hasAudio", Amf0::Boolean(meta.audio.is_some()));
    if meta.has_video {
        push("width", Amf0::Number(f64::from(meta.width)));
        push("height", Amf0::Number(f64::from(meta.height)));
        if let Some(fps) = meta.frame_rate {
            push("framerate", Amf0::Number(fps));
        }
        if let Some(kbps) = meta.video_data_rate_kbps {
            push("videodatarate", Amf0::Number(kbps));
        }
        push("videocodecid", Amf0::Number(VIDEO_CODEC_AVC.into()));
    }
    if let Some(audio) = meta.audio {
        push("audiocodecid", Amf0::Number(AUDIO_CODEC_AAC.into()));
        push("audiosamplerate", Amf0::Number(audio.sample_rate.into()));
        push("audiosamplesize", Amf0::Number(16.0));
        push("stereo", Amf0::Boolean(audio.channels >= 2));
    }
    push("encoder", Amf0::String("castgate"));

    let name = Amf0::String("onMetaData");
    let array = Amf0::EcmaArray(&entries[..n]);
    tag(
        TAG_SCRIPT,
        0,
        name.encoded_len() + array.encoded_len(),
        |out| {
            name.write(out);
            array.write(out);
        },
    )
}

/// The AVC sequence header: key frame, AVCPacketType 0, composition time 0, then the
/// AVCDecoderConfigurationRecord.
pub fn avc_sequence_header_tag(ps: &ParameterSets, timestamp_ms: u32) -> Bytes {
    let record_len = ps.avc_decoder_configuration_record_len();
    tag(
        TAG_VIDEO,
        timestamp_ms,
        AVC_HEADER_LEN + record_len,
        |out| {
            out.extend_from_slice(&avc_header(FRAME_KEY, AVC_SEQUENCE_HEADER, 0));
            ps.write_avc_decoder_configuration_record(out);
        },
    )
}

/// One H.264 access unit: frame type 1 (key) or 2 (inter), AVCPacketType 1, the signed 24-bit
/// composition time offset (pts − dts in ms, clamped to the field's range), then `frame.data`
/// as is (already AVCC). A frame too large for a tag (over 16 MiB) yields empty `Bytes`.
pub fn avc_frame_tag(frame: &Frame, timestamp_ms: u32, composition_time_ms: i32) -> Bytes {
    let frame_type = if frame.keyframe {
        FRAME_KEY
    } else {
        FRAME_INTER
    };
    let body_len = AVC_HEADER_LEN.saturating_add(frame.data.len());
    tag(TAG_VIDEO, timestamp_ms, body_len, |out| {
        out.extend_from_slice(&avc_header(frame_type, AVC_NALU, composition_time_ms));
        out.extend_from_slice(&frame.data);
    })
}

/// The AVC end-of-sequence tag (AVCPacketType 2) players expect before a stream ends.
pub fn avc_end_of_sequence_tag(timestamp_ms: u32) -> Bytes {
    tag(TAG_VIDEO, timestamp_ms, AVC_HEADER_LEN, |out| {
        out.extend_from_slice(&avc_header(FRAME_KEY, AVC_END_OF_SEQUENCE, 0));
    })
}

/// The AAC sequence header: AACPacketType 0 with the AudioSpecificConfig (ISO/IEC 14496-3).
pub fn aac_sequence_header_tag(audio_specific_config: &[u8], timestamp_ms: u32) -> Bytes {
    aac_tag(AAC_SEQUENCE_HEADER, audio_specific_config, timestamp_ms)
}

/// One raw AAC frame (no ADTS header): AACPacketType 1. Too large a frame yields empty `Bytes`.
pub fn aac_frame_tag(data: &[u8], timestamp_ms: u32) -> Bytes {
    aac_tag(AAC_RAW, data, timestamp_ms)
}

fn aac_tag(packet_type: u8, payload: &[u8], timestamp_ms: u32) -> Bytes {
    let body_len = AAC_HEADER_LEN.saturating_add(payload.len());
    tag(TAG_AUDIO, timestamp_ms, body_len, |out| {
        out.extend_from_slice(&[AAC_SOUND_FLAGS, packet_type]);
        out.extend_from_slice(payload);
    })
}

/// FrameType/CodecID, AVCPacketType and the 24-bit two's-complement composition time.
fn avc_header(frame_type: u8, packet_type: u8, composition_time_ms: i32) -> [u8; AVC_HEADER_LEN] {
    const MIN: i32 = -(1 << 23);
    const MAX: i32 = (1 << 23) - 1;
    let cts = composition_time_ms.clamp(MIN, MAX).to_be_bytes();
    [
        (frame_type << 4) | VIDEO_CODEC_AVC,
        packet_type,
        cts[1],
        cts[2],
        cts[3],
    ]
}

/// Builds one tag in a single allocation of exactly header + body + PreviousTagSize bytes.
/// `write_body` must append exactly `body_len` bytes. Bodies over 24 bits give empty `Bytes`:
/// sending nothing is better than a tag whose size field has wrapped.
fn tag(
    tag_type: u8,
    timestamp_ms: u32,
    body_len: usize,
    write_body: impl FnOnce(&mut Vec<u8>),
) -> Bytes {
    if body_len > MAX_TAG_BODY_LEN {
        return Bytes::new();
    }
    let tag_len = TAG_HEADER_LEN + body_len;
    let mut out = Vec::with_capacity(tag_len + PREVIOUS_TAG_SIZE_LEN);
    let capacity = out.capacity();
    let size = (body_len as u32).to_be_bytes();
    let ts = timestamp_field(timestamp_ms);
    out.extend_from_slice(&[
        tag_type, size[1], size[2], size[3], // DataSize
        ts[0], ts[1], ts[2], ts[3], // Timestamp, TimestampExtended
        0, 0, 0, // StreamID
    ]);
    write_body(&mut out);
    debug_assert_eq!(out.len(), tag_len, "tag body length");
    out.extend_from_slice(&(tag_len as u32).to_be_bytes());
    debug_assert_eq!(out.capacity(), capacity, "tag buffer grew");
    Bytes::from(out)
}

/// Where a tag's timestamp sits: bytes 4..8 of its header.
const TIMESTAMP_FIELD: std::ops::Range<usize> = 4..8;

/// The Timestamp field (lower 24 bits) followed by TimestampExtended (upper 8 bits).
fn timestamp_field(timestamp_ms: u32) -> [u8; 4] {
    let ts = timestamp_ms.to_be_bytes();
    [ts[1], ts[2], ts[3], ts[0]]
}

/// Sets the timestamp of the tag that `tag` starts with (as the functions above return it), in
/// place: for a copy of a sequence header or onMetaData put on one viewer's timeline. Bytes too
/// short to hold a tag header are left as they are.
pub fn set_timestamp(tag: &mut [u8], timestamp_ms: u32) {
    if tag.len() >= TAG_HEADER_LEN {
        tag[TIMESTAMP_FIELD].copy_from_slice(&timestamp_field(timestamp_ms));
    }
}
