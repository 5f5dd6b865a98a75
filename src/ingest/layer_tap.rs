//! The simulcast layer filter in webrtc-rs's interceptor chain, for publishes whose offer sends
//! rid-identified layers. It runs after the receiver-report and transport-cc interceptors (they
//! must see every packet that arrived) and before webrtc-rs hands RTP to the connection:
//! packets of layers castgate does not receive stop here, counted, and the received layer's
//! retransmissions, which webrtc-rs cannot tell apart when they are identified by the
//! repaired-RID extension rather than an SDP `ssrc-group`, are turned back into the packets they
//! repeat. The decisions are `rtp::LayerDemux`'s; this is its adapter.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rtc::interceptor::{Packet, TaggedPacket};

use super::read_tap::ReadStep;
use crate::hub::SimulcastLayers;
use crate::rtp::{LayerDemux, LayerDemuxConfig, LayerPacket, LayerVerdict};

/// Between the built-in interceptors (the last is 13 000) and the Sender Report tap (14 000).
pub const LAYER_TAP_SLOT: usize = 13_500;

pub struct LayerTap {
    demux: LayerDemux,
    layers: Arc<SimulcastLayers>,
}

impl LayerTap {
    pub fn new(config: LayerDemuxConfig, layers: Arc<SimulcastLayers>) -> LayerTap {
        LayerTap {
            demux: LayerDemux::new(config),
            layers,
        }
    }

    /// Applies the demultiplexer's verdict; `false` when the packet goes no further.
    fn filter(&mut self, packet: &mut rtc::rtp::Packet) -> bool {
        let header = &packet.header;
        let extension = |id: Option<u8>| id.and_then(|id| header.get_extension(id));
        let config = self.demux.config();
        let (rid, repaired) = (
            extension(config.rid_extension),
            extension(config.repaired_rid_extension),
        );
        let verdict = self.demux.classify(&LayerPacket {
            ssrc: header.ssrc,
            payload_type: header.payload_type,
            rid: rid.as_deref(),
            repaired_rid: repaired.as_deref(),
            payload_len: packet.payload.len(),
        });
        match verdict {
            LayerVerdict::Pass => true,
            LayerVerdict::Unwrap { ssrc, payload_type } => {
                // RFC 4588 §4: the original sequence number, then the original payload.
                let osn = u16::from_be_bytes([packet.payload[0], packet.payload[1]]);
                packet.header.ssrc = ssrc;
                packet.header.payload_type = payload_type;
                packet.header.sequence_number = osn;
                packet.header.padding = false;
                packet.payload = packet.payload.slice(2..);
                self.publish_stats();
                true
            }
            LayerVerdict::Drop => {
                self.publish_stats();
                false
            }
            LayerVerdict::Ignore => false,
        }
    }

    /// The demultiplexer's counts, for `/api/streams` (only verdicts that change them call this).
    fn publish_stats(&self) {
        let stats = self.demux.stats();
        self.layers
            .dropped_packets
            .store(stats.dropped(), Ordering::Relaxed);
        self.layers
            .repaired_packets
            .store(stats.repaired, Ordering::Relaxed);
    }
}

impl ReadStep for LayerTap {
    fn read(&mut self, mut msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        if let Packet::Rtp(packet) = &mut msg.message.packet {
            if !self.filter(packet) {
                return;
            }
        }
        out.push_back(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtc::interceptor::AttributedPacket;
    use rtc::shared::{TransportContext, TransportProtocol};
    use std::time::Instant;

    fn tap() -> (LayerTap, Arc<SimulcastLayers>) {
        let dropped = Arc::new(SimulcastLayers::default());
        let config = LayerDemuxConfig {
            wanted_rid: "f".into(),
            rid_extension: Some(10),
            repaired_rid_extension: Some(11),
            video_payload_types: vec![102, 103],
            rtx_payload_types: vec![(103, 102)],
        };
        (LayerTap::new(config, dropped.clone()), dropped)
    }

    fn rtp(
        ssrc: u32,
        pt: u8,
        seq: u16,
        ext: Option<(u8, &'static str)>,
        payload: &'static [u8],
    ) -> TaggedPacket {
        let mut header = rtc::rtp::Header {
            version: 2,
            ssrc,
            payload_type: pt,
            sequence_number: seq,
            ..Default::default()
        };
        if let Some((id, value)) = ext {
            header
                .set_extension(id, Bytes::from_static(value.as_bytes()))
                .unwrap();
        }
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: "127.0.0.1:1".parse().unwrap(),
                peer_addr: "127.0.0.1:2".parse().unwrap(),
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: AttributedPacket::new(Packet::Rtp(rtc::rtp::Packet {
                header,
                payload: Bytes::from_static(payload),
            })),
        }
    }

    fn read(tap: &mut LayerTap, packet: TaggedPacket) -> Option<rtc::rtp::Packet> {
        let mut out = VecDeque::new();
        tap.read(packet, &mut out);
        match out.pop_front()?.message.packet {
            Packet::Rtp(p) => Some(p),
            _ => None,
        }
    }

    #[test]
    fn other_layers_stop_here_and_are_counted() {
        let (mut tap, dropped) = tap();
        assert!(read(&mut tap, rtp(1, 102, 7, Some((10, "f")), b"\x65")).is_some());
        assert!(read(&mut tap, rtp(2, 102, 7, Some((10, "q")), b"\x65")).is_none());
        assert!(read(&mut tap, rtp(2, 102, 8, None, b"\x41")).is_none());
        assert_eq!(dropped.dropped_packets.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_repaired_rid_retransmission_becomes_the_original_packet() {
        let (mut tap, _) = tap();
        read(&mut tap, rtp(1, 102, 500, Some((10, "f")), b"\x65"));
        // RTX payload: original sequence number 0x01f3 (499), then the original payload.
        let p = read(
            &mut tap,
            rtp(9, 103, 31, Some((11, "f")), b"\x01\xf3\x41\xaa"),
        )
        .unwrap();
        assert_eq!(
            (
                p.header.ssrc,
                p.header.payload_type,
                p.header.sequence_number
            ),
            (1, 102, 499)
        );
        assert_eq!(&p.payload[..], b"\x41\xaa");
    }
}
