//! RFC 4571 framing for ICE over TCP (RFC 6544 §3): every STUN, DTLS, SRTP or SRTCP message on
//! the stream is preceded by its length as two big-endian bytes. Sans-IO: bytes read from a
//! stream go in, whole messages come out; a message to send goes in, its framed bytes come out.

use bytes::{Buf, BytesMut};

/// The most bytes one connection may hold unread before a whole frame is there: a frame is at
/// most 65535 bytes, so anything above two of them is a peer sending faster than we parse.
pub const MAX_BUFFERED: usize = 2 * (u16::MAX as usize + 2);

/// Collects a stream's bytes and cuts them into frames.
#[derive(Default)]
pub struct FrameReader {
    buf: BytesMut,
}

impl FrameReader {
    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame's payload, if it has all arrived. An empty frame (length 0) is
    /// skipped: it carries nothing (RFC 4571 allows it).
    pub fn next_frame(&mut self) -> Option<BytesMut> {
        loop {
            if self.buf.len() < 2 {
                return None;
            }
            let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
            if self.buf.len() < 2 + len {
                return None;
            }
            self.buf.advance(2);
            if len == 0 {
                continue;
            }
            return Some(self.buf.split_to(len));
        }
    }

    /// The next whole, non-empty frame's payload, left in place.
    pub fn peek_frame(&mut self) -> Option<&[u8]> {
        while self.buf.len() >= 2 && self.buf[0] == 0 && self.buf[1] == 0 {
            self.buf.advance(2);
        }
        if self.buf.len() < 2 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
        self.buf.get(2..2 + len)
    }

    /// Bytes held that are not yet a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Why a message cannot be framed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a {0}-byte message does not fit an RFC 4571 frame (at most 65535)")]
pub struct TooLong(pub usize);

/// Appends `message` as one frame to `out`.
pub fn write_frame(message: &[u8], out: &mut Vec<u8>) -> Result<(), TooLong> {
    let len = u16::try_from(message.len()).map_err(|_| TooLong(message.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_whole_however_the_stream_cuts_them() {
        let mut stream = Vec::new();
        for m in [&b"stun-binding"[..], b"", b"d", &[7u8; 1500][..]] {
            write_frame(m, &mut stream).unwrap();
        }
        // Every split of the stream into two reads gives the same frames.
        for cut in 0..stream.len() {
            let mut r = FrameReader::default();
            let mut got = Vec::new();
            for part in [&stream[..cut], &stream[cut..]] {
                r.push(part);
                while let Some(f) = r.next_frame() {
                    got.push(f.to_vec());
                }
            }
            assert_eq!(
                got,
                vec![b"stun-binding".to_vec(), b"d".to_vec(), vec![7u8; 1500]],
                "cut at {cut}"
            );
            assert_eq!(r.buffered(), 0);
        }
    }

    #[test]
    fn a_partial_frame_waits_and_is_counted() {
        let mut r = FrameReader::default();
        r.push(&[0x01, 0x00, 1, 2, 3]);
        assert_eq!(r.peek_frame(), None);
        assert_eq!(r.next_frame(), None);
        assert_eq!(r.buffered(), 5);
    }

    #[test]
    fn peeking_leaves_the_frame_for_the_reader() {
        let mut r = FrameReader::default();
        r.push(&[0, 0, 0, 2, 9, 8, 0, 1]);
        assert_eq!(r.peek_frame(), Some(&[9u8, 8][..]));
        assert_eq!(r.peek_frame(), Some(&[9u8, 8][..]));
        assert_eq!(r.next_frame().as_deref(), Some(&[9u8, 8][..]));
        assert_eq!(r.peek_frame(), None);
        assert_eq!(r.buffered(), 2);
    }

    #[test]
    fn a_message_too_long_for_a_frame_is_refused() {
        let mut out = Vec::new();
        assert_eq!(write_frame(&vec![0; 65536], &mut out), Err(TooLong(65536)));
        assert!(out.is_empty());
        write_frame(&vec![0; 65535], &mut out).unwrap();
        assert_eq!(&out[..2], &[0xff, 0xff]);
    }
}
