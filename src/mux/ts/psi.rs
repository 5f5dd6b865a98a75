//! Program specific information (ISO/IEC 13818-1 §2.4.4): the PAT naming the one program and
//! the PMT listing its elementary streams, each a single section in a single packet.

use bytes::BytesMut;

use super::crc::crc32_mpeg2;
use super::packet::{write_section_packet, Continuity};

/// PID of the program association table.
pub const PAT_PID: u16 = 0x0000;
/// PID of the program map table.
pub const PMT_PID: u16 = 0x1000;
/// PID of the H.264 stream.
pub const VIDEO_PID: u16 = 0x0100;
/// PID of the AAC stream.
pub const AUDIO_PID: u16 = 0x0101;
/// The null packet PID.
const NULL_PID: u16 = 0x1fff;
/// program_number of the only program.
pub const PROGRAM_NUMBER: u16 = 1;
const TRANSPORT_STREAM_ID: u16 = 1;

/// stream_type (Table 2-34): AVC video (ITU-T H.264 | ISO/IEC 14496-10).
pub const STREAM_TYPE_H264: u8 = 0x1b;
/// stream_type: ISO/IEC 13818-7 audio with ADTS transport syntax.
pub const STREAM_TYPE_ADTS_AAC: u8 = 0x0f;

const TABLE_ID_PAT: u8 = 0x00;
const TABLE_ID_PMT: u8 = 0x02;

/// Longest section written: the PMT of two streams (12 + 2 × 5 bytes + CRC).
const MAX_SECTION: usize = 26;

/// Which elementary streams the program has; the PMT and the PCR PID follow from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamSet {
    pub video: bool,
    pub audio: bool,
}

impl StreamSet {
    /// The PCR travels with the video when there is video, else with the audio; a program
    /// without streams names the null PID (no PCR, §2.4.4.9).
    pub(crate) fn pcr_pid(self) -> u16 {
        match (self.video, self.audio) {
            (true, _) => VIDEO_PID,
            (false, true) => AUDIO_PID,
            (false, false) => NULL_PID,
        }
    }
}

/// A section under construction: a small fixed buffer, as PSI sections here are tiny.
struct Section {
    bytes: [u8; MAX_SECTION],
    len: usize,
}

impl Section {
    /// table_id, then section_syntax_indicator 1, '0', reserved '11' and the 12-bit
    /// section_length (filled in by `finish`), the table id extension, reserved '11',
    /// version_number, current_next_indicator 1, section_number 0, last_section_number 0.
    fn new(table_id: u8, extension: u16, version: u8) -> Self {
        let mut s = Section {
            bytes: [0; MAX_SECTION],
            len: 0,
        };
        s.push(&[table_id, 0xb0, 0]);
        s.push(&extension.to_be_bytes());
        s.push(&[0xc1 | (version & 0x1f) << 1, 0, 0]);
        s
    }

    fn push(&mut self, data: &[u8]) {
        self.bytes[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
    }

    /// A 13-bit PID behind 3 reserved bits.
    fn push_pid(&mut self, pid: u16) {
        self.push(&(0xe000 | pid).to_be_bytes());
    }

    /// Sets section_length (bytes after it, CRC included), appends the CRC, returns the bytes.
    fn finish(&mut self) -> &[u8] {
        let section_length = (self.len + 4 - 3) as u16;
        self.bytes[1] |= (section_length >> 8) as u8 & 0x0f;
        self.bytes[2] = section_length as u8;
        let crc = crc32_mpeg2(&self.bytes[..self.len]);
        self.push(&crc.to_be_bytes());
        &self.bytes[..self.len]
    }
}

/// The PAT: program 1 on [`PMT_PID`] (version 0; it never changes).
pub(crate) fn write_pat(buf: &mut BytesMut, cc: &mut Continuity) {
    let mut s = Section::new(TABLE_ID_PAT, TRANSPORT_STREAM_ID, 0);
    s.push(&PROGRAM_NUMBER.to_be_bytes());
    s.push_pid(PMT_PID);
    write_section_packet(buf, PAT_PID, cc, s.finish());
}

/// The PMT of program 1: the PCR PID, no program descriptors, then one entry (stream_type,
/// PID, no descriptors) per stream, video first.
pub(crate) fn write_pmt(buf: &mut BytesMut, cc: &mut Continuity, streams: StreamSet, version: u8) {
    let mut s = Section::new(TABLE_ID_PMT, PROGRAM_NUMBER, version);
    s.push_pid(streams.pcr_pid());
    s.push(&[0xf0, 0]); // reserved '1111', program_info_length 0
    let entries = [
        (streams.video, STREAM_TYPE_H264, VIDEO_PID),
        (streams.audio, STREAM_TYPE_ADTS_AAC, AUDIO_PID),
    ];
    for (_, stream_type, pid) in entries.into_iter().filter(|e| e.0) {
        s.push(&[stream_type]);
        s.push_pid(pid);
        s.push(&[0xf0, 0]); // reserved '1111', ES_info_length 0
    }
    write_section_packet(buf, PMT_PID, cc, s.finish());
}
