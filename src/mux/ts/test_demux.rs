//! A small, strict TS demuxer for the tests: packets, PAT/PMT sections (CRC checked), PES
//! packets reassembled per PID with their timestamps, PCRs, and a continuity check.

use std::collections::HashMap;

use super::crc::crc32_mpeg2;
use super::packet::{PACKET_LEN, SYNC_BYTE};

/// One transport packet.
#[derive(Debug, Clone)]
pub(crate) struct Packet<'a> {
    pub pid: u16,
    pub unit_start: bool,
    pub cc: u8,
    pub has_payload: bool,
    /// The adaptation field (length byte excluded), when there is one.
    pub adaptation: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

impl Packet<'_> {
    pub fn random_access(&self) -> bool {
        self.adaptation
            .and_then(|af| af.first())
            .is_some_and(|f| f & 0x40 != 0)
    }

    /// The PCR base, when the adaptation field has one.
    pub fn pcr(&self) -> Option<u64> {
        let af = self.adaptation?;
        if af.first()? & 0x10 == 0 {
            return None;
        }
        let b = &af[1..7];
        Some(u64::from(u32::from_be_bytes(b[..4].try_into().unwrap())) << 1 | u64::from(b[4] >> 7))
    }
}

/// Splits a segment into packets; panics unless every packet is 188 bytes with the sync byte
/// and a well-formed adaptation field.
pub(crate) fn packets(data: &[u8]) -> Vec<Packet<'_>> {
    assert_eq!(data.len() % PACKET_LEN, 0, "whole packets");
    data.chunks(PACKET_LEN)
        .enumerate()
        .map(|(i, p)| {
            assert_eq!(p[0], SYNC_BYTE, "sync byte of packet {i}");
            let afc = p[3] >> 4 & 3;
            assert_ne!(afc, 0, "reserved adaptation_field_control in packet {i}");
            let (adaptation, body) = if afc & 2 != 0 {
                let len = usize::from(p[4]);
                assert!(len <= 183, "adaptation field length in packet {i}");
                (Some(&p[5..5 + len]), &p[5 + len..])
            } else {
                (None, &p[4..])
            };
            if afc == 2 {
                assert!(
                    body.is_empty(),
                    "adaptation-only packet {i} fills the packet"
                );
            }
            Packet {
                pid: u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]),
                unit_start: p[1] & 0x40 != 0,
                cc: p[3] & 0x0f,
                has_payload: afc & 1 != 0,
                adaptation,
                payload: if afc & 1 != 0 { body } else { &[] },
            }
        })
        .collect()
}

/// The section a PSI packet starts (pointer_field 0 expected), CRC checked; the bytes after
/// it must all be 0xFF.
pub(crate) fn section<'a>(packet: &Packet<'a>) -> &'a [u8] {
    assert!(packet.unit_start, "a section starts in this packet");
    let payload = packet.payload;
    assert_eq!(payload[0], 0, "pointer_field");
    let len = 3 + (usize::from(payload[2] & 0x0f) << 8 | usize::from(payload[3]));
    let section = &payload[1..1 + len];
    assert_eq!(crc32_mpeg2(section), 0, "section CRC");
    assert!(
        payload[1 + len..].iter().all(|&b| b == 0xff),
        "PSI stuffing"
    );
    section
}

/// PAT entries: (program_number, PMT PID).
pub(crate) fn pat_programs(section: &[u8]) -> Vec<(u16, u16)> {
    assert_eq!(section[0], 0x00, "table_id PAT");
    section[8..section.len() - 4]
        .chunks(4)
        .map(|e| {
            (
                u16::from_be_bytes([e[0], e[1]]),
                u16::from_be_bytes([e[2], e[3]]) & 0x1fff,
            )
        })
        .collect()
}

/// A PMT's version, PCR PID and (stream_type, PID) entries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Pmt {
    pub version: u8,
    pub pcr_pid: u16,
    pub streams: Vec<(u8, u16)>,
}

pub(crate) fn pmt(section: &[u8]) -> Pmt {
    assert_eq!(section[0], 0x02, "table_id PMT");
    let program_info = usize::from(section[10] & 0x0f) << 8 | usize::from(section[11]);
    let mut streams = Vec::new();
    let mut at = 12 + program_info;
    while at < section.len() - 4 {
        let pid = u16::from_be_bytes([section[at + 1], section[at + 2]]) & 0x1fff;
        let es_info = usize::from(section[at + 3] & 0x0f) << 8 | usize::from(section[at + 4]);
        streams.push((section[at], pid));
        at += 5 + es_info;
    }
    Pmt {
        version: section[5] >> 1 & 0x1f,
        pcr_pid: u16::from_be_bytes([section[8], section[9]]) & 0x1fff,
        streams,
    }
}

/// One reassembled PES packet.
#[derive(Debug, Clone)]
pub(crate) struct Pes {
    pub pid: u16,
    pub stream_id: u8,
    /// Index of its first packet in the segment.
    pub first_packet: usize,
    pub random_access: bool,
    pub pcr: Option<u64>,
    pub pts: u64,
    pub dts: Option<u64>,
    pub data_aligned: bool,
    /// PES_packet_length as written.
    pub length_field: u16,
    /// Bytes after the PES_packet_length field, as carried.
    pub after_length: usize,
    pub payload: Vec<u8>,
}

impl Pes {
    /// The DTS, or the PTS when no DTS was written.
    pub fn decode_time(&self) -> u64 {
        self.dts.unwrap_or(self.pts)
    }
}

fn timestamp(b: &[u8]) -> u64 {
    assert_eq!(
        (b[0] & 1, b[2] & 1, b[4] & 1),
        (1, 1, 1),
        "timestamp marker bits"
    );
    (u64::from(b[0] >> 1) & 7) << 30
        | u64::from(u16::from_be_bytes([b[1], b[2]]) >> 1) << 15
        | u64::from(u16::from_be_bytes([b[3], b[4]]) >> 1)
}

fn parse_pes(pid: u16, first_packet: usize, start: &Packet, bytes: Vec<u8>) -> Pes {
    assert_eq!(&bytes[..3], &[0, 0, 1], "packet_start_code_prefix");
    let flags = bytes[7] >> 6;
    assert!(flags == 2 || flags == 3, "PTS present");
    let header_len = 9 + usize::from(bytes[8]);
    let pts = timestamp(&bytes[9..14]);
    assert_eq!(bytes[9] >> 4, if flags == 3 { 3 } else { 2 }, "PTS prefix");
    let dts = (flags == 3).then(|| {
        assert_eq!(bytes[14] >> 4, 1, "DTS prefix");
        timestamp(&bytes[14..19])
    });
    Pes {
        pid,
        stream_id: bytes[3],
        first_packet,
        random_access: start.random_access(),
        pcr: start.pcr(),
        pts,
        dts,
        data_aligned: bytes[6] & 0x04 != 0,
        length_field: u16::from_be_bytes([bytes[4], bytes[5]]),
        after_length: bytes.len() - 6,
        payload: bytes[header_len..].to_vec(),
    }
}

/// Every PES packet of the media PIDs (not PAT/PMT), in the order they start.
pub(crate) fn pes_packets(packets: &[Packet]) -> Vec<Pes> {
    let mut open: HashMap<u16, (usize, Vec<u8>)> = HashMap::new();
    let mut done: Vec<Pes> = Vec::new();
    let media = |pid: u16| pid == super::VIDEO_PID || pid == super::AUDIO_PID;
    for (i, p) in packets.iter().enumerate() {
        if !media(p.pid) || !p.has_payload {
            continue;
        }
        if p.unit_start {
            if let Some((first, bytes)) = open.remove(&p.pid) {
                done.push(parse_pes(p.pid, first, &packets[first], bytes));
            }
            open.insert(p.pid, (i, p.payload.to_vec()));
        } else {
            open.get_mut(&p.pid)
                .expect("a PES continues only after it started")
                .1
                .extend_from_slice(p.payload);
        }
    }
    for (pid, (first, bytes)) in open {
        done.push(parse_pes(pid, first, &packets[first], bytes));
    }
    done.sort_by_key(|p| p.first_packet);
    done
}

/// (packet index, PCR) of every PCR on `pid`.
pub(crate) fn pcrs(packets: &[Packet], pid: u16) -> Vec<(usize, u64)> {
    packets
        .iter()
        .enumerate()
        .filter(|(_, p)| p.pid == pid)
        .filter_map(|(i, p)| p.pcr().map(|pcr| (i, pcr)))
        .collect()
}

/// Checks the continuity counters of a stream read in order: +1 on every packet with payload,
/// unchanged on packets without.
pub(crate) fn check_continuity(packets: &[Packet]) -> Result<(), String> {
    let mut last: HashMap<u16, u8> = HashMap::new();
    for (i, p) in packets.iter().enumerate() {
        let expected = match (last.get(&p.pid), p.has_payload) {
            (None, _) => None,
            (Some(&cc), true) => Some((cc + 1) & 0x0f),
            (Some(&cc), false) => Some(cc),
        };
        if let Some(expected) = expected {
            if p.cc != expected {
                return Err(format!(
                    "packet {i} PID {:#x}: counter {} after {:?}",
                    p.pid,
                    p.cc,
                    last.get(&p.pid)
                ));
            }
        }
        last.insert(p.pid, p.cc);
    }
    Ok(())
}

/// `b − a` on the 33-bit clock, as a signed distance.
pub(crate) fn wrap_diff(a: u64, b: u64) -> i64 {
    let d = (b.wrapping_sub(a)) & ((1 << 33) - 1);
    if d >= 1 << 32 {
        d as i64 - (1 << 33)
    } else {
        d as i64
    }
}
