//! A strict FLV reader for tests and tools: checks the file header, walks the tags and
//! verifies every PreviousTagSize (FLV v10.1 §E.2, §E.3). Not used on the serving path.

use bytes::Bytes;

use super::amf0::{self, Amf0Value};
use super::{FlvError, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN};

/// The 9-byte FLV file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    pub version: u8,
    pub has_audio: bool,
    pub has_video: bool,
    /// Where the body (PreviousTagSize0) starts; 9 for version 1.
    pub data_offset: u32,
}

/// One tag as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    /// 8 audio, 9 video, 18 script data.
    pub tag_type: u8,
    /// The 24-bit timestamp with its extension byte as the top 8 bits.
    pub timestamp_ms: u32,
    pub stream_id: u32,
    pub body: Bytes,
}

impl FlvTag {
    /// Decodes a script-data tag body into its handler name and argument.
    pub fn script(&self) -> Result<(String, Amf0Value), FlvError> {
        amf0::decode_script(&self.body)
    }
}

/// Reads the file header and checks PreviousTagSize0 is zero; returns the header and the offset
/// of the first tag.
pub fn parse_header(buf: &[u8]) -> Result<(FlvHeader, usize), FlvError> {
    let head = buf.get(..9).ok_or(FlvError::Truncated { offset: 0 })?;
    if &head[..3] != b"FLV" {
        return Err(FlvError::BadSignature);
    }
    if head[3] != 1 {
        return Err(FlvError::UnsupportedVersion(head[3]));
    }
    let data_offset = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
    if data_offset < 9 {
        return Err(FlvError::BadDataOffset(data_offset));
    }
    let header = FlvHeader {
        version: head[3],
        has_audio: head[4] & 0x04 != 0,
        has_video: head[4] & 0x01 != 0,
        data_offset,
    };
    let at = data_offset as usize;
    let size0 = read_u32(buf, at)?;
    if size0 != 0 {
        return Err(FlvError::PreviousTagSize {
            offset: at,
            expected: 0,
            found: size0,
        });
    }
    Ok((header, at + PREVIOUS_TAG_SIZE_LEN))
}

/// A whole FLV file or HTTP-FLV response: header, then tags, each followed by a correct
/// PreviousTagSize. Trailing bytes that do not form a full tag are an error.
pub fn parse_tags(buf: &[u8]) -> Result<Vec<FlvTag>, FlvError> {
    let (_, first) = parse_header(buf)?;
    parse_tag_stream(buf.get(first..).unwrap_or_default()).map_err(|e| e.shifted(first))
}

/// Tags without a file header, as the tag writers return them (each with its PreviousTagSize).
pub fn parse_tag_stream(buf: &[u8]) -> Result<Vec<FlvTag>, FlvError> {
    let mut tags = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        let h = buf
            .get(at..at + TAG_HEADER_LEN)
            .ok_or(FlvError::Truncated { offset: at })?;
        let body_len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp_ms = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let stream_id = u32::from_be_bytes([0, h[8], h[9], h[10]]);
        let body_start = at + TAG_HEADER_LEN;
        let body = buf
            .get(body_start..body_start + body_len)
            .ok_or(FlvError::Truncated { offset: at })?;
        let size_at = body_start + body_len;
        let found = read_u32(buf, size_at)?;
        let expected = (TAG_HEADER_LEN + body_len) as u32;
        if found != expected {
            return Err(FlvError::PreviousTagSize {
                offset: size_at,
                expected,
                found,
            });
        }
        tags.push(FlvTag {
            tag_type: h[0] & 0x1f,
            timestamp_ms,
            stream_id,
            body: Bytes::copy_from_slice(body),
        });
        at = size_at + PREVIOUS_TAG_SIZE_LEN;
    }
    Ok(tags)
}

/// The index of the first tag stamped earlier than the tag before it of the same type (audio,
/// video or script data), if any: players expect no track's time to go back. For tests and
/// tools; the 32-bit wrap after 49 days counts as a step back.
pub fn first_step_back(tags: &[FlvTag]) -> Option<usize> {
    let mut last: [Option<u32>; 32] = [None; 32];
    tags.iter().position(|t| {
        let slot = &mut last[usize::from(t.tag_type & 0x1f)];
        let back = slot.is_some_and(|before| t.timestamp_ms < before);
        *slot = Some(t.timestamp_ms);
        back
    })
}

fn read_u32(buf: &[u8], at: usize) -> Result<u32, FlvError> {
    let b = buf
        .get(at..at.saturating_add(4))
        .ok_or(FlvError::Truncated { offset: at })?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

impl FlvError {
    /// Rebases an offset from a sub-slice onto the whole buffer.
    fn shifted(self, by: usize) -> FlvError {
        match self {
            FlvError::Truncated { offset } => FlvError::Truncated {
                offset: offset + by,
            },
            FlvError::PreviousTagSize {
                offset,
                expected,
                found,
            } => FlvError::PreviousTagSize {
                offset: offset + by,
                expected,
                found,
            },
            other => other,
        }
    }
}
