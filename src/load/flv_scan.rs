//! An incremental HTTP-FLV scanner for the load tool: it sees each tag's header and the first
//! two body bytes (enough to tell a keyframe from the rest, FLV v10.1 §E.4.3.1) and skips the
//! body without copying it, so a load client can follow gigabits of FLV cheaply. Sans-IO: bytes
//! in, events out, any chunking.

use crate::client::sei::find_latency_stamp;

/// FLV file header (9 bytes, §E.2) plus PreviousTagSize0 (4 bytes, §E.3).
const FILE_PREAMBLE: usize = 13;
/// Tag header (§E.4.1): type, 24-bit size, 24+8-bit timestamp, 24-bit stream id.
const TAG_HEADER: usize = 11;
/// Body bytes kept per audio or script tag: the header byte and the packet type.
const BODY_PEEK: usize = 2;
/// Body bytes kept per video tag: the 5-byte AVC header and the start of the first NAL units,
/// enough for a latency SEI (see `client/sei.rs`) at the front of the access unit.
const VIDEO_PEEK: usize = 64;
const PREVIOUS_TAG_SIZE: usize = 4;

/// What the scanner learned about one tag (reported once its first body bytes are in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagEvent {
    /// 8 audio, 9 video, 18 script data.
    pub tag_type: u8,
    pub timestamp_ms: u32,
    pub body_len: usize,
    /// A video tag with frame type 1 carrying coded pictures (AVCPacketType 1).
    pub keyframe: bool,
    /// Audio or video payload (not a sequence header, end of sequence or script tag).
    pub media: bool,
    /// The publisher's wall-clock stamp (µs since the Unix epoch) from a latency SEI at the
    /// front of a video access unit, if there is one.
    pub latency_stamp_us: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting the 13-byte preamble.
    Preamble,
    /// Collecting a tag header and the first body bytes.
    Header,
    /// Skipping `n` more bytes (rest of the body and the PreviousTagSize).
    Skip(usize),
}

/// Errors are sticky: after one, [`FlvScanner::feed`] ignores further input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlvScanError {
    #[error("response does not start with an FLV header")]
    BadSignature,
}

/// The scanner. Feed it the response body in whatever chunks arrive.
#[derive(Debug)]
pub struct FlvScanner {
    state: State,
    pending: [u8; TAG_HEADER + VIDEO_PEEK],
    filled: usize,
    error: Option<FlvScanError>,
}

impl Default for FlvScanner {
    fn default() -> Self {
        FlvScanner {
            state: State::Preamble,
            pending: [0; TAG_HEADER + VIDEO_PEEK],
            filled: 0,
            error: None,
        }
    }
}

impl FlvScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes `chunk`, calling `on_tag` for every tag whose header is complete.
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        mut on_tag: impl FnMut(TagEvent),
    ) -> Result<(), FlvScanError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        while !chunk.is_empty() {
            match self.state {
                State::Skip(n) => {
                    let take = n.min(chunk.len());
                    chunk = &chunk[take..];
                    self.state = if take == n {
                        State::Header
                    } else {
                        State::Skip(n - take)
                    };
                }
                State::Preamble => {
                    self.fill(&mut chunk, FILE_PREAMBLE);
                    if self.filled == FILE_PREAMBLE {
                        if &self.pending[..3] != b"FLV" {
                            self.error = Some(FlvScanError::BadSignature);
                            return Err(FlvScanError::BadSignature);
                        }
                        // A data offset past 9 means extra header bytes to skip (§E.2).
                        let offset = u32::from_be_bytes([
                            self.pending[5],
                            self.pending[6],
                            self.pending[7],
                            self.pending[8],
                        ]) as usize;
                        self.filled = 0;
                        self.state = match offset.saturating_sub(9) {
                            0 => State::Header,
                            extra => State::Skip(extra),
                        };
                    }
                }
                State::Header => {
                    if self.filled < TAG_HEADER {
                        self.fill(&mut chunk, TAG_HEADER);
                        continue;
                    }
                    let body_len =
                        u32::from_be_bytes([0, self.pending[1], self.pending[2], self.pending[3]])
                            as usize;
                    let wanted = if self.pending[0] & 0x1f == 9 {
                        VIDEO_PEEK
                    } else {
                        BODY_PEEK
                    };
                    let peek = body_len.min(wanted);
                    self.fill(&mut chunk, TAG_HEADER + peek);
                    if self.filled < TAG_HEADER + peek {
                        continue;
                    }
                    on_tag(self.event(body_len, peek));
                    self.filled = 0;
                    self.state = State::Skip(body_len - peek + PREVIOUS_TAG_SIZE);
                }
            }
        }
        Ok(())
    }

    /// Moves bytes from `chunk` into `pending` until it holds `upto`.
    fn fill(&mut self, chunk: &mut &[u8], upto: usize) {
        let take = upto.saturating_sub(self.filled).min(chunk.len());
        self.pending[self.filled..self.filled + take].copy_from_slice(&chunk[..take]);
        self.filled += take;
        *chunk = &chunk[take..];
    }

    fn event(&self, body_len: usize, peeked: usize) -> TagEvent {
        let h = &self.pending;
        let tag_type = h[0] & 0x1f;
        let timestamp_ms = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let first = (body_len > 0).then_some(h[TAG_HEADER]);
        let second = (body_len > 1).then_some(h[TAG_HEADER + 1]);
        let (keyframe, media) = match tag_type {
            // Video: frame type in the high nibble, codec 7 (AVC) then AVCPacketType 1 = NALUs.
            9 => {
                let nalus = second == Some(1);
                let key = first.is_some_and(|b| b >> 4 == 1);
                (key && nalus, nalus)
            }
            // Audio: AAC (sound format 10) has AACPacketType 1 for raw frames; others are media.
            8 => match first.map(|b| b >> 4) {
                Some(10) => (false, second == Some(1)),
                Some(_) => (false, true),
                None => (false, false),
            },
            _ => (false, false),
        };
        // AVC NALU tags: the AVCC data starts after the 5-byte video header (§E.4.3.1).
        let latency_stamp_us = if tag_type == 9 && media {
            h.get(TAG_HEADER + 5..TAG_HEADER + peeked)
                .and_then(find_latency_stamp)
        } else {
            None
        };
        TagEvent {
            tag_type,
            timestamp_ms,
            body_len,
            keyframe,
            media,
            latency_stamp_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Frame;
    use crate::mux::flv;
    use bytes::Bytes;

    /// Header, AAC sequence header, a keyframe, an AAC frame, an inter frame, end of sequence.
    fn sample_stream() -> Vec<u8> {
        let mut out = flv::file_header(true, true).to_vec();
        out.extend_from_slice(&flv::aac_sequence_header_tag(&[0x11, 0x90], 0));
        out.extend_from_slice(&flv::avc_frame_tag(
            &Frame::h264_at_zero(true, &[0, 0, 0, 2, 0x65, 0x88]),
            0,
            0,
        ));
        out.extend_from_slice(&flv::aac_frame_tag(&[0x21, 0x10, 0x04], 21));
        out.extend_from_slice(&flv::avc_frame_tag(
            &Frame::h264_at_zero(false, &[0, 0, 0, 2, 0x41, 0x9a]),
            33,
            0,
        ));
        out.extend_from_slice(&flv::avc_end_of_sequence_tag(66));
        out
    }

    fn scan_in_chunks(bytes: &[u8], chunk: usize) -> Vec<TagEvent> {
        let mut scanner = FlvScanner::new();
        let mut events = Vec::new();
        for part in bytes.chunks(chunk) {
            scanner.feed(part, |e| events.push(e)).unwrap();
        }
        events
    }

    #[test]
    fn castgate_tags_are_classified_as_keyframe_inter_audio_and_headers() {
        let events = scan_in_chunks(&sample_stream(), 4096);
        let summary: Vec<_> = events
            .iter()
            .map(|e| (e.tag_type, e.timestamp_ms, e.keyframe, e.media))
            .collect();
        assert_eq!(
            summary,
            vec![
                (8, 0, false, false),
                (9, 0, true, true),
                (8, 21, false, true),
                (9, 33, false, true),
                (9, 66, false, false),
            ]
        );
        // AVC header (5 bytes) + the 6-byte AVCC frame.
        assert_eq!(events[1].body_len, 11);
    }

    #[test]
    fn any_chunking_down_to_single_bytes_gives_the_same_events() {
        let bytes = sample_stream();
        let whole = scan_in_chunks(&bytes, bytes.len());
        for size in 1..=17 {
            assert_eq!(scan_in_chunks(&bytes, size), whole, "chunks of {size}");
        }
    }

    #[test]
    fn latency_stamp_is_read_from_the_sei_in_front_of_a_video_frame() {
        let mut data = Vec::new();
        let sei = crate::load::latency_sei_nal(1_795_000_000_000_001);
        data.extend_from_slice(&(sei.len() as u32).to_be_bytes());
        data.extend_from_slice(&sei);
        // A large slice after it: only the front of the body is looked at.
        data.extend_from_slice(&2000u32.to_be_bytes());
        data.push(0x41);
        data.extend_from_slice(&[0x9a; 1999]);
        let stamped = Frame {
            data: Bytes::from(data),
            ..Frame::h264_at_zero(false, &[])
        };
        let mut bytes = flv::file_header(false, true).to_vec();
        bytes.extend_from_slice(&flv::avc_frame_tag(&stamped, 100, 0));
        bytes.extend_from_slice(&flv::avc_frame_tag(
            &Frame::h264_at_zero(false, &[0, 0, 0, 1, 0x41]),
            133,
            0,
        ));
        for size in [1, 7, 4096] {
            let events = scan_in_chunks(&bytes, size);
            let stamps: Vec<_> = events.iter().map(|e| e.latency_stamp_us).collect();
            assert_eq!(
                stamps,
                vec![Some(1_795_000_000_000_001), None],
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn html_error_page_is_not_flv_and_the_error_sticks() {
        let mut scanner = FlvScanner::new();
        let err = scanner.feed(b"<html>404 not found</html>", |_| {});
        assert_eq!(err, Err(FlvScanError::BadSignature));
        assert_eq!(
            scanner.feed(&sample_stream(), |_| panic!("no events after an error")),
            Err(FlvScanError::BadSignature)
        );
    }

    #[test]
    fn header_with_a_larger_data_offset_skips_the_extra_bytes() {
        // Data offset 12: three extra bytes before PreviousTagSize0.
        let mut bytes = vec![b'F', b'L', b'V', 1, 5, 0, 0, 0, 12, 0xee, 0xee, 0xee];
        bytes.extend_from_slice(&sample_stream()[9..]);
        let events = scan_in_chunks(&bytes, 3);
        assert_eq!(events.len(), 5);
        assert!(events[1].keyframe);
    }

    #[test]
    fn truncated_stream_reports_only_complete_tag_headers() {
        let bytes = sample_stream();
        // Cut inside the keyframe tag's header: only the AAC sequence header is reported.
        let cut = 13 + 11 + 4 + 4 + 5;
        assert_eq!(scan_in_chunks(&bytes[..cut], 1).len(), 1);
    }
}
