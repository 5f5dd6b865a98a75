//! H.264 packetizer (RFC 6184 non-interleaved mode): the sender side of [`super::h264`], for
//! tests, benchmarks and the load tool. Not used on the ingest path.

use bytes::{BufMut, Bytes, BytesMut};

use super::packet::RTP_HEADER_LEN;
use super::RtpPacket;

const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// Splits access units into RTP packets: NAL units that fit go alone (or aggregated into one
/// STAP-A with their neighbours), larger ones are cut into FU-A fragments. The last packet of
/// each access unit carries the marker bit.
#[derive(Clone, Debug)]
pub struct H264Packetizer {
    mtu: usize,
    payload_type: u8,
    ssrc: u32,
    sequence: u16,
    aggregate: bool,
}

impl H264Packetizer {
    /// A common WebRTC packet-size budget (what Chromium aims for, leaving room for SRTP).
    pub const DEFAULT_MTU: usize = 1200;
    /// The smallest `mtu` that leaves room for a FU-A carrying one byte.
    pub const MIN_MTU: usize = RTP_HEADER_LEN + 3;

    /// `mtu` is the largest RTP packet to produce, 12-byte header included (raised to
    /// [`Self::MIN_MTU`] if smaller). Sequence numbers start at `first_sequence` and wrap.
    /// STAP-A aggregation is on; see [`with_aggregation`](Self::with_aggregation).
    pub fn new(mtu: usize, payload_type: u8, ssrc: u32, first_sequence: u16) -> Self {
        Self {
            mtu: mtu.max(Self::MIN_MTU),
            payload_type: payload_type & 0x7f,
            ssrc,
            sequence: first_sequence,
            aggregate: true,
        }
    }

    /// With `false`, every NAL unit that fits goes in its own packet (as OBS sends SPS and
    /// PPS); with `true` (the default), runs of small NAL units share a STAP-A, as Chromium
    /// sends SPS+PPS before an IDR.
    pub fn with_aggregation(mut self, aggregate: bool) -> Self {
        self.aggregate = aggregate;
        self
    }

    /// The sequence number the next packet will get.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// Largest RTP payload per packet.
    pub fn max_payload(&self) -> usize {
        self.mtu - RTP_HEADER_LEN
    }

    /// Packetizes one access unit given as bare NAL units (no start codes or length prefixes;
    /// empty ones are skipped), all with RTP timestamp `timestamp`.
    pub fn packetize<T: AsRef<[u8]>>(&mut self, nals: &[T], timestamp: u32) -> Vec<RtpPacket> {
        let mut out = Vec::new();
        self.packetize_into(nals, timestamp, &mut out);
        out
    }

    /// Like [`packetize`](Self::packetize), appending to `out`.
    pub fn packetize_into<T: AsRef<[u8]>>(
        &mut self,
        nals: &[T],
        timestamp: u32,
        out: &mut Vec<RtpPacket>,
    ) {
        let first_new = out.len();
        let nals: Vec<&[u8]> = nals
            .iter()
            .map(AsRef::as_ref)
            .filter(|n| !n.is_empty())
            .collect();
        let max = self.max_payload();
        let mut i = 0;
        while i < nals.len() {
            let nal = nals[i];
            if nal.len() > max {
                self.fragment(nal, timestamp, out);
                i += 1;
                continue;
            }
            let run = if self.aggregate {
                self.stap_a_run(&nals[i..])
            } else {
                1
            };
            if run >= 2 {
                let payload = stap_a_payload(&nals[i..i + run]);
                out.push(self.packet(payload, timestamp));
                i += run;
            } else {
                out.push(self.packet(Bytes::copy_from_slice(nal), timestamp));
                i += 1;
            }
        }
        if out.len() > first_new {
            if let Some(last) = out.last_mut() {
                last.marker = true;
            }
        }
    }

    /// How many NAL units from the front of `nals` fit together in one STAP-A.
    fn stap_a_run(&self, nals: &[&[u8]]) -> usize {
        let mut size = 1; // STAP-A header
        let mut count = 0;
        for nal in nals {
            size += 2 + nal.len();
            if size > self.max_payload() || nal.len() > usize::from(u16::MAX) {
                break;
            }
            count += 1;
        }
        count
    }

    /// FU-A (RFC 6184 §5.8): the NAL header is split between the FU indicator (F, NRI) and the
    /// FU header (type); the rest of the NAL unit is cut into pieces.
    fn fragment(&mut self, nal: &[u8], timestamp: u32, out: &mut Vec<RtpPacket>) {
        let indicator = (nal[0] & 0xe0) | FU_A;
        let nal_type = nal[0] & 0x1f;
        let chunk = self.max_payload() - 2;
        let body = &nal[1..];
        let pieces = body.len().div_ceil(chunk);
        for (n, piece) in body.chunks(chunk).enumerate() {
            let mut header = nal_type;
            if n == 0 {
                header |= 0x80;
            }
            if n + 1 == pieces {
                header |= 0x40;
            }
            let mut payload = BytesMut::with_capacity(2 + piece.len());
            payload.put_u8(indicator);
            payload.put_u8(header);
            payload.put_slice(piece);
            out.push(self.packet(payload.freeze(), timestamp));
        }
    }

    fn packet(&mut self, payload: Bytes, timestamp: u32) -> RtpPacket {
        let sequence = self.sequence;
        self.sequence = self.sequence.wrapping_add(1);
        RtpPacket {
            payload_type: self.payload_type,
            sequence,
            timestamp,
            ssrc: self.ssrc,
            marker: false,
            payload,
        }
    }
}

/// STAP-A (RFC 6184 §5.7.1): F is the OR of the F bits, NRI the largest NRI (§5.7).
fn stap_a_payload(nals: &[&[u8]]) -> Bytes {
    let f = nals.iter().fold(0, |acc, n| acc | (n[0] & 0x80));
    let nri = nals.iter().map(|n| n[0] & 0x60).max().unwrap_or(0);
    let size = 1 + nals.iter().map(|n| 2 + n.len()).sum::<usize>();
    let mut payload = BytesMut::with_capacity(size);
    payload.put_u8(f | nri | STAP_A);
    for nal in nals {
        payload.put_u16(nal.len() as u16);
        payload.put_slice(nal);
    }
    payload.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_nals_share_a_stap_a_and_the_last_packet_has_the_marker() {
        let mut p = H264Packetizer::new(100, 96, 1, 65535);
        let packets = p.packetize(&[&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 9, 9, 9]], 900);
        assert_eq!(packets.len(), 1);
        assert_eq!(
            &packets[0].payload[..],
            &[0x78, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 3, 0, 4, 0x65, 9, 9, 9]
        );
        assert!(packets[0].marker);
        assert_eq!((packets[0].sequence, packets[0].timestamp), (65535, 900));
        assert_eq!(p.next_sequence(), 0);
    }

    #[test]
    fn large_nal_is_cut_into_fu_a_with_start_and_end_bits() {
        // mtu 17 leaves 5 payload bytes: FU indicator, FU header and 3 bytes of NAL body.
        let mut p = H264Packetizer::new(17, 96, 1, 10);
        let packets = p.packetize(&[[0x65, 1, 2, 3, 4, 5, 6, 7]], 0);
        let payloads: Vec<&[u8]> = packets.iter().map(|p| &p.payload[..]).collect();
        assert_eq!(
            payloads,
            vec![
                &[0x7c, 0x85, 1, 2, 3][..],
                &[0x7c, 0x05, 4, 5, 6],
                &[0x7c, 0x45, 7]
            ]
        );
        let markers: Vec<bool> = packets.iter().map(|p| p.marker).collect();
        assert_eq!(markers, vec![false, false, true]);
        let seqs: Vec<u16> = packets.iter().map(|p| p.sequence).collect();
        assert_eq!(seqs, vec![10, 11, 12]);
    }

    #[test]
    fn without_aggregation_each_nal_gets_its_own_packet() {
        let mut p = H264Packetizer::new(100, 96, 1, 0).with_aggregation(false);
        let packets = p.packetize(&[&[0x67, 1][..], &[], &[0x68, 2]], 0);
        let payloads: Vec<&[u8]> = packets.iter().map(|p| &p.payload[..]).collect();
        assert_eq!(payloads, vec![&[0x67, 1][..], &[0x68, 2]]);
        assert_eq!((packets[0].marker, packets[1].marker), (false, true));
    }
}
