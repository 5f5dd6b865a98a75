//! RTP packets: parsing the RFC 3550 header into [`RtpPacket`] and writing a plain header back.

use bytes::{BufMut, Bytes, BytesMut};

use super::RtpError;

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;

/// One RTP packet with the header fields the depacketizers need; CSRCs, header extensions and
/// padding are stripped by [`RtpPacket::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpPacket {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    /// The payload, without padding; shares the buffer given to `parse`.
    pub payload: Bytes,
}

impl RtpPacket {
    /// Parses an RTP packet (RFC 3550 §5.1 and §5.3.1).
    ///
    /// Skips the CSRC list and any header extension, removes padding, and rejects truncated or
    /// self-contradicting input. The payload is a slice of `buf`: no copy.
    pub fn parse(buf: Bytes) -> Result<RtpPacket, RtpError> {
        let len = buf.len();
        if len < RTP_HEADER_LEN {
            return Err(RtpError::TooShort { len });
        }
        let b0 = buf[0];
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = b0 & 0x0f;
        let b1 = buf[1];

        let mut offset = RTP_HEADER_LEN + 4 * usize::from(csrc_count);
        if offset > len {
            return Err(RtpError::TruncatedCsrc {
                csrc_count,
                needed: offset,
                len,
            });
        }
        if has_extension {
            // 16-bit profile-defined id, 16-bit length in 32-bit words, then the words.
            let words_at = offset + 2;
            if offset + 4 > len {
                return Err(RtpError::TruncatedExtension {
                    needed: offset + 4,
                    len,
                });
            }
            let words = usize::from(u16::from_be_bytes([buf[words_at], buf[words_at + 1]]));
            let needed = offset + 4 + 4 * words;
            if needed > len {
                return Err(RtpError::TruncatedExtension { needed, len });
            }
            offset = needed;
        }

        let mut end = len;
        if has_padding {
            // The last octet counts the padding octets, itself included, so zero is invalid.
            let padding = buf[len - 1];
            let available = len - offset;
            if padding == 0 || usize::from(padding) > available {
                return Err(RtpError::BadPadding { padding, available });
            }
            end -= usize::from(padding);
        }

        Ok(RtpPacket {
            payload_type: b1 & 0x7f,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            marker: b1 & 0x80 != 0,
            payload: buf.slice(offset..end),
        })
    }

    /// Serializes with a plain 12-byte header: version 2, no padding, extension or CSRCs.
    /// The payload type is masked to its 7 bits.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(RTP_HEADER_LEN + self.payload.len());
        out.put_u8(0x80);
        out.put_u8((u8::from(self.marker) << 7) | (self.payload_type & 0x7f));
        out.put_u16(self.sequence);
        out.put_u32(self.timestamp);
        out.put_u32(self.ssrc);
        out.put_slice(&self.payload);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(payload: &'static [u8]) -> RtpPacket {
        RtpPacket {
            payload_type: 102,
            sequence: 0xBEEF,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x1234_5678,
            marker: true,
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn to_bytes_writes_plain_header_and_parse_reads_it_back() {
        let pkt = packet(&[0x65, 0x88]);
        let bytes = pkt.to_bytes();
        assert_eq!(
            &bytes[..],
            &[
                0x80,
                0x80 | 102,
                0xBE,
                0xEF,
                0xDE,
                0xAD,
                0xBE,
                0xEF,
                0x12,
                0x34,
                0x56,
                0x78,
                0x65,
                0x88
            ]
        );
        assert_eq!(RtpPacket::parse(bytes), Ok(pkt));
    }

    #[test]
    fn csrc_list_extension_and_padding_are_stripped() {
        let buf: &[u8] = &[
            0xB2, 0x60, 0x00, 0x07, // V=2 P=1 X=1 CC=2, M=0 PT=96, seq 7
            0x00, 0x00, 0x03, 0xE8, // timestamp 1000
            0x00, 0x00, 0x00, 0x2A, // ssrc 42
            0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, // two CSRCs
            0xBE, 0xDE, 0x00, 0x01, 0x10, 0xAA, 0x00, 0x00, // one-byte extension, 1 word
            0x01, 0x02, 0x03, // payload
            0x00, 0x00, 0x03, // 3 bytes of padding
        ];
        let pkt = RtpPacket::parse(Bytes::from_static(buf)).unwrap();
        assert_eq!(pkt.payload_type, 96);
        assert_eq!(pkt.sequence, 7);
        assert_eq!(pkt.timestamp, 1000);
        assert_eq!(pkt.ssrc, 42);
        assert!(!pkt.marker);
        assert_eq!(&pkt.payload[..], &[0x01, 0x02, 0x03]);
    }

    #[test]
    fn padding_only_packet_has_empty_payload() {
        let buf: &[u8] = &[0xA0, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4];
        let pkt = RtpPacket::parse(Bytes::from_static(buf)).unwrap();
        assert!(pkt.payload.is_empty());
    }

    #[test]
    fn truncated_and_inconsistent_headers_are_rejected() {
        let short: &[u8] = &[0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0];
        assert_eq!(
            RtpPacket::parse(Bytes::from_static(short)),
            Err(RtpError::TooShort { len: 11 })
        );
        let v1: &[u8] = &[0x40, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
        assert_eq!(
            RtpPacket::parse(Bytes::from_static(v1)),
            Err(RtpError::BadVersion(1))
        );
        let csrc: &[u8] = &[0x81, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 9, 9];
        assert_eq!(
            RtpPacket::parse(Bytes::from_static(csrc)),
            Err(RtpError::TruncatedCsrc {
                csrc_count: 1,
                needed: 16,
                len: 14
            })
        );
        let ext_header: &[u8] = &[0x90, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xBE, 0xDE];
        assert_eq!(
            RtpPacket::parse(Bytes::from_static(ext_header)),
            Err(RtpError::TruncatedExtension {
                needed: 16,
                len: 14
            })
        );
        let ext_body: &[u8] = &[
            0x90, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xBE, 0xDE, 0, 2, 1, 2,
        ];
        assert_eq!(
            RtpPacket::parse(Bytes::from_static(ext_body)),
            Err(RtpError::TruncatedExtension {
                needed: 24,
                len: 18
            })
        );
        let zero_pad: &[u8] = &[0xA0, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7, 0];
        assert_eq!(
            RtpPacket::parse(Bytes::from_static(zero_pad)),
            Err(RtpError::BadPadding {
                padding: 0,
                available: 2
            })
        );
        let big_pad: &[u8] = &[0xA0, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7, 3];
        assert_eq!(
            RtpPacket::parse(Bytes::from_static(big_pad)),
            Err(RtpError::BadPadding {
                padding: 3,
                available: 2
            })
        );
    }
}
