//! Transport stream packets (ISO/IEC 13818-1 §2.4.3): the 4-byte header, the adaptation field
//! (PCR, random access, stuffing), continuity counters, and the packetizer that lays one PES
//! packet or PSI section across 188-byte packets as it is written.

use bytes::{BufMut, BytesMut};

/// Every transport packet is this long.
pub const PACKET_LEN: usize = 188;
/// sync_byte.
pub const SYNC_BYTE: u8 = 0x47;
const HEADER_LEN: usize = 4;
/// Payload bytes in a packet without an adaptation field.
pub(crate) const PAYLOAD_LEN: usize = PACKET_LEN - HEADER_LEN;
/// adaptation_field_length + flags + PCR (6 bytes): an adaptation field that carries a PCR.
pub(crate) const AF_PCR_LEN: usize = 2 + 6;
/// adaptation_field_length + flags: an adaptation field with flags only.
const AF_FLAGS_LEN: usize = 2;

/// adaptation_field_control (§2.4.3.3, Table 2-5).
const AFC_PAYLOAD: u8 = 0b01;
const AFC_ADAPTATION: u8 = 0b10;
const AFC_BOTH: u8 = 0b11;
/// Adaptation field flags (§2.4.3.4).
const AF_RANDOM_ACCESS: u8 = 0x40;
const AF_PCR: u8 = 0x10;
/// Stuffing byte (§2.4.3.5).
const STUFFING: u8 = 0xff;

/// The 33-bit wrap of PTS, DTS and PCR base.
pub(crate) const WRAP_33: i64 = 1 << 33;

/// `t` modulo 2^33, whatever the caller's origin (negative times included).
pub(crate) fn ts33(t: i64) -> u64 {
    t.rem_euclid(WRAP_33) as u64
}

/// One PID's 4-bit continuity_counter: the value the next packet with payload carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Continuity(u8);

impl Continuity {
    /// The counter for a packet with payload; counts it.
    fn next(&mut self) -> u8 {
        let cc = self.0;
        self.0 = (cc + 1) & 0x0f;
        cc
    }

    /// The counter for a packet without payload: not incremented (§2.4.3.3), so it repeats
    /// the last packet with payload.
    fn last(self) -> u8 {
        self.0.wrapping_sub(1) & 0x0f
    }
}

/// What the first packet of a PES packet signals in its adaptation field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StartFlags {
    pub random_access: bool,
    /// program_clock_reference_base in 90 kHz ticks (any i64, written modulo 2^33).
    pub pcr: Option<i64>,
}

impl StartFlags {
    /// Bytes of adaptation field these flags need (before any stuffing).
    pub(crate) fn af_len(self) -> usize {
        match (self.pcr, self.random_access) {
            (Some(_), _) => AF_PCR_LEN,
            (None, true) => AF_FLAGS_LEN,
            (None, false) => 0,
        }
    }

    fn flags(self) -> u8 {
        let mut flags = 0;
        if self.random_access {
            flags |= AF_RANDOM_ACCESS;
        }
        if self.pcr.is_some() {
            flags |= AF_PCR;
        }
        flags
    }
}

/// Packets needed for `len` payload bytes when the first packet's adaptation field takes
/// `first_af` bytes (stuffing only ever goes into the last packet's adaptation field).
pub(crate) fn packets_for(len: usize, first_af: usize) -> usize {
    (len + first_af).div_ceil(PAYLOAD_LEN).max(1)
}

fn put_header(buf: &mut BytesMut, pid: u16, unit_start: bool, afc: u8, cc: u8) {
    let pusi = if unit_start { 0x40 } else { 0 };
    buf.put_u8(SYNC_BYTE);
    buf.put_u8(pusi | (pid >> 8) as u8 & 0x1f);
    buf.put_u8(pid as u8);
    buf.put_u8(afc << 4 | cc);
}

/// The 6 bytes of a PCR: 33-bit base, 6 reserved bits, 9-bit extension (always 0 here).
fn put_pcr(buf: &mut BytesMut, pcr: i64) {
    let base = ts33(pcr);
    buf.put_u32((base >> 1) as u32);
    buf.put_u8(((base & 1) as u8) << 7 | 0x7e);
    buf.put_u8(0);
}

/// An adaptation field of exactly `len` bytes (length byte included) with `flags`.
fn put_adaptation_field(buf: &mut BytesMut, len: usize, flags: StartFlags) {
    debug_assert!(len >= flags.af_len() && (1..=PAYLOAD_LEN).contains(&len));
    buf.put_u8((len - 1) as u8);
    if len == 1 {
        return; // adaptation_field_length 0: a single stuffing byte, no flags
    }
    buf.put_u8(flags.flags());
    if let Some(pcr) = flags.pcr {
        put_pcr(buf, pcr);
    }
    buf.put_bytes(STUFFING, len - flags.af_len().max(AF_FLAGS_LEN));
}

/// A packet with an adaptation field carrying only a PCR, no payload (the counter does not
/// move): how the PCR keeps its pace through a gap in the PCR PID's own media.
pub(crate) fn write_pcr_only(buf: &mut BytesMut, pid: u16, cc: Continuity, pcr: i64) {
    put_header(buf, pid, false, AFC_ADAPTATION, cc.last());
    let flags = StartFlags {
        random_access: false,
        pcr: Some(pcr),
    };
    put_adaptation_field(buf, PAYLOAD_LEN, flags);
}

/// One packet holding a whole PSI section: pointer_field 0, the section, then stuffing bytes
/// 0xFF to the end of the packet (§2.4.4.1; PSI is padded this way, PES never is).
pub(crate) fn write_section_packet(
    buf: &mut BytesMut,
    pid: u16,
    cc: &mut Continuity,
    section: &[u8],
) {
    debug_assert!(section.len() < PAYLOAD_LEN, "one section per packet");
    put_header(buf, pid, true, AFC_PAYLOAD, cc.next());
    buf.put_u8(0);
    buf.put_slice(section);
    buf.put_bytes(STUFFING, PAYLOAD_LEN - 1 - section.len());
}

/// Lays one PES packet across transport packets as its bytes are written: the first packet
/// has payload_unit_start_indicator set and `flags` in its adaptation field; the last is
/// padded with adaptation-field stuffing, never with bytes in the payload. The PES packet's
/// length must be known up front.
pub(crate) struct Packetizer<'a> {
    buf: &'a mut BytesMut,
    pid: u16,
    cc: &'a mut Continuity,
    /// PES bytes not yet written.
    remaining: usize,
    /// Payload bytes left in the current packet.
    room: usize,
}

impl<'a> Packetizer<'a> {
    /// Starts a PES packet of `len` bytes (at least 1) with its first packet header.
    pub(crate) fn new(
        buf: &'a mut BytesMut,
        pid: u16,
        cc: &'a mut Continuity,
        len: usize,
        flags: StartFlags,
    ) -> Self {
        let mut p = Packetizer {
            buf,
            pid,
            cc,
            remaining: len,
            room: 0,
        };
        p.start_packet(true, flags);
        p
    }

    fn start_packet(&mut self, unit_start: bool, flags: StartFlags) {
        let mut af = flags.af_len();
        let payload = self.remaining.min(PAYLOAD_LEN - af);
        af = PAYLOAD_LEN - payload;
        let afc = if af == 0 { AFC_PAYLOAD } else { AFC_BOTH };
        let cc = self.cc.next();
        put_header(self.buf, self.pid, unit_start, afc, cc);
        if af > 0 {
            put_adaptation_field(self.buf, af, flags);
        }
        self.room = payload;
    }

    /// Appends `data` to the PES packet, opening transport packets as they fill.
    pub(crate) fn put(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.room == 0 {
                debug_assert!(self.remaining > 0, "more bytes than the PES length");
                self.start_packet(false, StartFlags::default());
            }
            let n = data.len().min(self.room);
            self.buf.put_slice(&data[..n]);
            data = &data[n..];
            self.room -= n;
            self.remaining -= n;
        }
    }

    /// Ends the PES packet; its length must have been written exactly.
    pub(crate) fn finish(self) {
        debug_assert_eq!((self.remaining, self.room), (0, 0), "PES length");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(len: usize, flags: StartFlags) -> (BytesMut, Continuity) {
        let mut buf = BytesMut::new();
        let mut cc = Continuity::default();
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut p = Packetizer::new(&mut buf, 0x100, &mut cc, len, flags);
        p.put(&data[..len / 3]);
        p.put(&data[len / 3..]);
        p.finish();
        (buf, cc)
    }

    #[test]
    fn a_unit_fills_whole_packets_and_stuffs_the_last_through_its_adaptation_field() {
        for len in [1, 2, 182, 183, 184, 185, 366, 367, 368, 1000] {
            let (buf, cc) = unit(len, StartFlags::default());
            let n = packets_for(len, 0);
            assert_eq!(buf.len(), n * PACKET_LEN, "len {len}");
            assert_eq!(cc, Continuity(n as u8 & 0x0f));
            let last = &buf[(n - 1) * PACKET_LEN..];
            let tail = len - (n - 1) * PAYLOAD_LEN;
            if tail < PAYLOAD_LEN {
                assert_eq!(last[3] >> 4, AFC_BOTH, "len {len}");
                assert_eq!(usize::from(last[4]), PAYLOAD_LEN - tail - 1);
            }
            // The payload ends the packet: the unit's last byte is the packet's last byte.
            assert_eq!(last[PACKET_LEN - 1], (len - 1) as u8);
        }
    }

    #[test]
    fn one_byte_of_stuffing_is_an_empty_adaptation_field() {
        let (buf, _) = unit(183, StartFlags::default());
        assert_eq!(&buf[..6], &[0x47, 0x41, 0x00, 0x30, 0x00, 0x00]);
        let (buf, _) = unit(182, StartFlags::default());
        assert_eq!(&buf[3..7], &[0x30, 0x01, 0x00, 0x00]);
    }

    #[test]
    fn pcr_and_random_access_go_in_the_first_packet() {
        let flags = StartFlags {
            random_access: true,
            pcr: Some(WRAP_33 + 0x1_2345_6789),
        };
        let (buf, _) = unit(400, flags);
        assert_eq!(buf[3] >> 4, AFC_BOTH);
        assert_eq!(buf[4], 7);
        assert_eq!(buf[5], AF_RANDOM_ACCESS | AF_PCR);
        let base = 0x1_2345_6789u64;
        let got = u64::from(u32::from_be_bytes(buf[6..10].try_into().unwrap())) << 1
            | u64::from(buf[10] >> 7);
        assert_eq!(got, base);
        assert_eq!(buf[10] & 0x7e, 0x7e, "reserved bits");
        // Second packet: no adaptation field, counter 1.
        assert_eq!(buf[PACKET_LEN + 3], 0x11);
    }

    #[test]
    fn pcr_only_packets_repeat_the_last_counter() {
        let mut buf = BytesMut::new();
        let mut cc = Continuity::default();
        write_pcr_only(&mut buf, 0x100, cc, 0);
        assert_eq!(buf[3], 0x2f, "no payload yet: the counter before 0");
        cc.next();
        cc.next();
        write_pcr_only(&mut buf, 0x100, cc, 0);
        assert_eq!(buf.len(), 2 * PACKET_LEN);
        assert_eq!(buf[PACKET_LEN + 3], 0x21);
        assert_eq!(buf[PACKET_LEN + 4], 183);
        assert_eq!(buf[PACKET_LEN + 5], AF_PCR);
    }

    #[test]
    fn times_wrap_modulo_2_pow_33() {
        assert_eq!(ts33(0), 0);
        assert_eq!(ts33(-1), (1 << 33) - 1);
        assert_eq!(ts33(WRAP_33 + 5), 5);
        assert_eq!(ts33(i64::MIN), 0);
    }
}
