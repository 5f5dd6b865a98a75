//! Opus packets out of an Ogg file (RFC 3533 pages, RFC 7845 Opus mapping) and the duration of
//! each packet from its TOC byte (RFC 6716 §3.1), so audio can be paced and timestamped.

use bytes::Bytes;

/// One Opus packet as sent in one RTP packet (RFC 7587 §4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpusPacket {
    pub data: Bytes,
    /// Duration in 48 kHz samples, the RTP clock of Opus whatever the coded rate.
    pub samples: u32,
}

/// Why an Ogg Opus file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OggError {
    #[error("no Ogg page at byte {0}")]
    BadCapture(usize),
    #[error("Ogg page at byte {0} is truncated")]
    Truncated(usize),
    #[error("Ogg page at byte {0} has unsupported version {1}")]
    Version(usize, u8),
    #[error("first packet is not an OpusHead header")]
    NotOpus,
    #[error("Opus packet {0} has an invalid TOC")]
    BadToc(usize),
}

const PAGE_HEADER_LEN: usize = 27;
const CONTINUED_PACKET: u8 = 0x01;

/// Splits the first logical stream of an Ogg file into packets, joining packets that span
/// pages (RFC 3533 §5: a lacing value below 255 ends a packet). A packet still open at the end
/// of the file is dropped. CRCs are not checked: the input is a file we trust to be intact.
pub fn ogg_packets(file: &[u8]) -> Result<Vec<Bytes>, OggError> {
    let mut packets = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut serial: Option<u32> = None;
    let mut pos = 0;
    while pos < file.len() {
        let header = file
            .get(pos..pos + PAGE_HEADER_LEN)
            .ok_or(OggError::Truncated(pos))?;
        if &header[..4] != b"OggS" {
            return Err(OggError::BadCapture(pos));
        }
        if header[4] != 0 {
            return Err(OggError::Version(pos, header[4]));
        }
        let flags = header[5];
        let page_serial = u32::from_le_bytes([header[14], header[15], header[16], header[17]]);
        let segments = usize::from(header[26]);
        let table_end = pos + PAGE_HEADER_LEN + segments;
        let table = file
            .get(pos + PAGE_HEADER_LEN..table_end)
            .ok_or(OggError::Truncated(pos))?;
        let body_len: usize = table.iter().map(|&l| usize::from(l)).sum();
        let body = file
            .get(table_end..table_end + body_len)
            .ok_or(OggError::Truncated(pos))?;
        let ours = *serial.get_or_insert(page_serial) == page_serial;
        if ours {
            if flags & CONTINUED_PACKET == 0 {
                // A fresh page that does not continue the open packet: that packet is lost.
                partial.clear();
            }
            let mut offset = 0;
            for &lace in table {
                let lace = usize::from(lace);
                partial.extend_from_slice(&body[offset..offset + lace]);
                offset += lace;
                if lace < 255 {
                    packets.push(Bytes::from(std::mem::take(&mut partial)));
                }
            }
        }
        pos = table_end + body_len;
    }
    Ok(packets)
}

/// Samples at 48 kHz in one Opus packet, from its TOC byte and, for code 3, the frame count
/// byte (RFC 6716 §3.1-3.2). `None` for an empty or truncated packet.
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame = match config {
        // SILK-only: 10, 20, 40, 60 ms
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    Some(frame * frames)
}

/// Reads the audio packets of an Ogg Opus file: checks the `OpusHead` header, skips it and the
/// `OpusTags` packet (RFC 7845 §5), and times every remaining packet.
pub fn opus_packets(file: &[u8]) -> Result<Vec<OpusPacket>, OggError> {
    let packets = ogg_packets(file)?;
    let mut iter = packets.into_iter();
    match iter.next() {
        Some(head) if head.starts_with(b"OpusHead") => {}
        _ => return Err(OggError::NotOpus),
    }
    iter.next(); // OpusTags
    iter.enumerate()
        .map(|(i, data)| {
            let samples = opus_packet_samples(&data).ok_or(OggError::BadToc(i))?;
            if samples == 0 {
                return Err(OggError::BadToc(i));
            }
            Ok(OpusPacket { data, samples })
        })
        .collect()
}

/// Test input: one Ogg page (CRC left zero: the reader does not check it).
#[cfg(test)]
pub(crate) fn test_page(flags: u8, serial: u32, laces: &[u8], body: &[u8]) -> Vec<u8> {
    let mut p = b"OggS".to_vec();
    p.push(0);
    p.push(flags);
    p.extend_from_slice(&0u64.to_le_bytes());
    p.extend_from_slice(&serial.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    p.push(laces.len() as u8);
    p.extend_from_slice(laces);
    p.extend_from_slice(body);
    p
}

#[cfg(test)]
mod tests {
    use super::test_page as page;
    use super::*;

    #[test]
    fn several_packets_in_one_page_are_split_by_lacing() {
        let file = page(0, 7, &[3, 2], b"abcde");
        assert_eq!(
            ogg_packets(&file).unwrap(),
            vec![Bytes::from_static(b"abc"), Bytes::from_static(b"de")]
        );
    }

    #[test]
    fn packet_spanning_two_pages_is_joined() {
        let first = vec![b'x'; 255];
        let mut file = page(0, 7, &[255], &first);
        file.extend(page(CONTINUED_PACKET, 7, &[2], b"yz"));
        let packets = ogg_packets(&file).unwrap();
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].len(), 257);
        assert_eq!(&packets[0][255..], b"yz");
    }

    #[test]
    fn packet_of_exactly_255_bytes_ends_with_a_zero_lace() {
        let body = vec![b'q'; 255];
        let file = page(0, 1, &[255, 0], &body);
        let packets = ogg_packets(&file).unwrap();
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].len(), 255);
    }

    #[test]
    fn pages_of_another_logical_stream_are_ignored() {
        let mut file = page(0, 1, &[1], b"a");
        file.extend(page(0, 2, &[1], b"b"));
        file.extend(page(0, 1, &[1], b"c"));
        assert_eq!(
            ogg_packets(&file).unwrap(),
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"c")]
        );
    }

    #[test]
    fn truncated_and_foreign_input_are_errors_not_panics() {
        let file = page(0, 1, &[5], b"abcde");
        assert_eq!(ogg_packets(&file[..30]), Err(OggError::Truncated(0)));
        assert_eq!(ogg_packets(&file[..10]), Err(OggError::Truncated(0)));
        assert_eq!(
            ogg_packets(b"RIFF0000000000000000000000000"),
            Err(OggError::BadCapture(0))
        );
        let mut v1 = file.clone();
        v1[4] = 1;
        assert_eq!(ogg_packets(&v1), Err(OggError::Version(0, 1)));
    }

    #[test]
    fn toc_durations_follow_rfc6716_table() {
        // config 31 (CELT 20 ms), code 0 -> 960
        assert_eq!(opus_packet_samples(&[31 << 3]), Some(960));
        // config 1 (SILK NB 20 ms), code 1 (two frames) -> 1920
        assert_eq!(opus_packet_samples(&[(1 << 3) | 1]), Some(1920));
        // config 13 (Hybrid 20 ms), code 2 -> 1920
        assert_eq!(opus_packet_samples(&[(13 << 3) | 2]), Some(1920));
        // config 16 (CELT 2.5 ms), code 3 with 4 frames -> 480
        assert_eq!(opus_packet_samples(&[(16 << 3) | 3, 0x04]), Some(480));
        // code 3 without the frame-count byte
        assert_eq!(opus_packet_samples(&[(16 << 3) | 3]), None);
        assert_eq!(opus_packet_samples(&[]), None);
    }

    #[test]
    fn opus_file_skips_head_and_tags_and_times_packets() {
        let mut file = page(
            0x02,
            9,
            &[19],
            b"OpusHead\x01\x02\x38\x01\x80\xbb\0\0\0\0\0",
        );
        file.extend(page(0, 9, &[12], b"OpusTags\0\0\0\0"));
        file.extend(page(0, 9, &[3, 2], &[0xfc, 0xff, 0xfe, 0xfc, 0x01]));
        let packets = opus_packets(&file).unwrap();
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0].samples, 960);
        assert_eq!(&packets[0].data[..], &[0xfc, 0xff, 0xfe]);
        assert_eq!(packets[1].samples, 960);
    }

    #[test]
    fn vorbis_file_is_not_opus() {
        let file = page(0x02, 9, &[7], b"\x01vorbis");
        assert_eq!(opus_packets(&file), Err(OggError::NotOpus));
    }
}
