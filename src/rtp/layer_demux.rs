//! Simulcast demultiplexing (sans-IO): which of a video section's RTP streams is the layer
//! being received, which is its retransmission (RTX, RFC 4588) stream, and which belong to other
//! layers and must never reach the depacketizer. A layer's SSRC is not in the SDP; it is bound
//! from the RID header extension (RFC 8852) of its packets, and its RTX stream's from the
//! repaired-RID extension. Senders stop writing those extensions once the SSRC is known to the
//! receiver, so a bound SSRC is matched by itself afterwards.

/// What [`LayerDemux`] needs from the negotiated video section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerDemuxConfig {
    /// The rid of the layer received.
    pub wanted_rid: String,
    /// Header extension ids of `sdes:rtp-stream-id` and `sdes:repaired-rtp-stream-id`.
    pub rid_extension: Option<u8>,
    pub repaired_rid_extension: Option<u8>,
    /// Every payload type of the video section (media, RTX, FEC): packets with other payload
    /// types (audio) pass untouched.
    pub video_payload_types: Vec<u8>,
    /// RTX payload type → the payload type it repairs (`apt`, RFC 4588 §8.6).
    pub rtx_payload_types: Vec<(u8, u8)>,
}

/// The header fields the demultiplexer looks at, with the two extensions' values.
#[derive(Clone, Copy, Debug)]
pub struct LayerPacket<'a> {
    pub ssrc: u32,
    pub payload_type: u8,
    pub rid: Option<&'a [u8]>,
    pub repaired_rid: Option<&'a [u8]>,
    pub payload_len: usize,
}

/// What to do with one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerVerdict {
    /// Not video, or the wanted layer itself: deliver as it is.
    Pass,
    /// An RTX packet of the wanted layer: deliver it as the original packet (RFC 4588 §4):
    /// this SSRC and payload type, the sequence number from the first two payload bytes, and
    /// the payload after them.
    Unwrap { ssrc: u32, payload_type: u8 },
    /// Another layer's packet, or one no layer can be told for: never delivered.
    Drop,
    /// A padding-only packet (a sender's bandwidth probe) on a stream other than the received
    /// layer's: no media, so not delivered and not counted either.
    Ignore,
}

/// Counts of what the demultiplexer kept away from the depacketizer, and of the repairs it
/// let through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerDemuxStats {
    /// Packets of layers that are not received (and their RTX).
    pub other_layers: u64,
    /// Video packets of an SSRC no RID told us about.
    pub unidentified: u64,
    /// RTX of the received layer that could not be unwrapped (before the layer's own SSRC
    /// was seen, or with a payload type of no known `apt`).
    pub unrepairable: u64,
    /// RTX of the received layer, unwrapped into the packets it repeats.
    pub repaired: u64,
}

impl LayerDemuxStats {
    /// Every packet given [`LayerVerdict::Drop`].
    pub fn dropped(&self) -> u64 {
        self.other_layers + self.unidentified + self.unrepairable
    }
}

/// SSRCs of layers that are not received, remembered so their packets are dropped after the
/// sender stops writing RIDs. A handful at most (three layers and their RTX).
const MAX_OTHER_SSRCS: usize = 16;

#[derive(Debug)]
pub struct LayerDemux {
    config: LayerDemuxConfig,
    /// The wanted layer's SSRC and its RTX SSRC, once seen.
    primary: Option<u32>,
    repair: Option<u32>,
    others: Vec<u32>,
    stats: LayerDemuxStats,
}

impl LayerDemux {
    pub fn new(config: LayerDemuxConfig) -> LayerDemux {
        LayerDemux {
            config,
            primary: None,
            repair: None,
            others: Vec::new(),
            stats: LayerDemuxStats::default(),
        }
    }

    pub fn config(&self) -> &LayerDemuxConfig {
        &self.config
    }

    pub fn stats(&self) -> LayerDemuxStats {
        self.stats
    }

    /// The wanted layer's SSRC, once bound.
    pub fn primary_ssrc(&self) -> Option<u32> {
        self.primary
    }

    pub fn classify(&mut self, p: &LayerPacket<'_>) -> LayerVerdict {
        if !self.config.video_payload_types.contains(&p.payload_type) {
            return LayerVerdict::Pass;
        }
        let wanted = self.config.wanted_rid.as_bytes();
        // A RID on the packet is the sender's word for its layer now: a layer whose encoder
        // restarted with a new SSRC is rebound at its first packet.
        if let Some(rid) = p.rid {
            if rid == wanted {
                self.bind_primary(p.ssrc);
                return LayerVerdict::Pass;
            }
            return self.other_layer(p.ssrc);
        }
        if let Some(rid) = p.repaired_rid {
            if rid == wanted {
                self.bind_repair(p.ssrc);
                return self.unwrap(p);
            }
            return self.other_layer(p.ssrc);
        }
        if self.primary == Some(p.ssrc) {
            return LayerVerdict::Pass;
        }
        if self.repair == Some(p.ssrc) {
            return self.unwrap(p);
        }
        if p.payload_len == 0 {
            return LayerVerdict::Ignore;
        }
        if self.others.contains(&p.ssrc) {
            self.stats.other_layers += 1;
        } else {
            self.stats.unidentified += 1;
        }
        LayerVerdict::Drop
    }

    fn bind_primary(&mut self, ssrc: u32) {
        if self.primary != Some(ssrc) {
            self.others.retain(|&s| s != ssrc);
            if self.repair == Some(ssrc) {
                self.repair = None;
            }
            self.primary = Some(ssrc);
        }
    }

    fn bind_repair(&mut self, ssrc: u32) {
        if self.repair != Some(ssrc) {
            self.others.retain(|&s| s != ssrc);
            self.repair = Some(ssrc);
        }
    }

    fn other_layer(&mut self, ssrc: u32) -> LayerVerdict {
        self.stats.other_layers += 1;
        if self.primary == Some(ssrc) {
            self.primary = None;
        }
        if self.repair == Some(ssrc) {
            self.repair = None;
        }
        if !self.others.contains(&ssrc) {
            if self.others.len() == MAX_OTHER_SSRCS {
                self.others.remove(0);
            }
            self.others.push(ssrc);
        }
        LayerVerdict::Drop
    }

    /// An RTX packet of the wanted layer, as the original: needs the layer's own SSRC (seen
    /// first, always, since RTX only repeats what was sent), a known `apt`, and the two bytes
    /// of original sequence number (a padding-only probe has none, and carries no media).
    fn unwrap(&mut self, p: &LayerPacket<'_>) -> LayerVerdict {
        if p.payload_len < 2 {
            return LayerVerdict::Ignore;
        }
        let apt = self
            .config
            .rtx_payload_types
            .iter()
            .find(|(rtx, _)| *rtx == p.payload_type)
            .map(|&(_, apt)| apt);
        match (self.primary, apt) {
            (Some(ssrc), Some(payload_type)) => {
                self.stats.repaired += 1;
                LayerVerdict::Unwrap { ssrc, payload_type }
            }
            _ => {
                self.stats.unrepairable += 1;
                LayerVerdict::Drop
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: u32 = 0xf0f0;
    const F_RTX: u32 = 0xf1f1;
    const Q: u32 = 0x1010;
    const Q_RTX: u32 = 0x1111;

    fn demux() -> LayerDemux {
        LayerDemux::new(LayerDemuxConfig {
            wanted_rid: "f".into(),
            rid_extension: Some(10),
            repaired_rid_extension: Some(11),
            video_payload_types: vec![102, 103],
            rtx_payload_types: vec![(103, 102)],
        })
    }

    fn packet<'a>(
        ssrc: u32,
        pt: u8,
        rid: Option<&'a str>,
        rrid: Option<&'a str>,
    ) -> LayerPacket<'a> {
        LayerPacket {
            ssrc,
            payload_type: pt,
            rid: rid.map(str::as_bytes),
            repaired_rid: rrid.map(str::as_bytes),
            payload_len: 100,
        }
    }

    #[test]
    fn the_wanted_layer_is_bound_from_its_rid_and_kept_without_it() {
        let mut d = demux();
        assert_eq!(
            d.classify(&packet(F, 102, Some("f"), None)),
            LayerVerdict::Pass
        );
        assert_eq!(d.primary_ssrc(), Some(F));
        // The sender stops writing the RID once it sees our receiver reports.
        assert_eq!(d.classify(&packet(F, 102, None, None)), LayerVerdict::Pass);
        assert_eq!(d.stats(), LayerDemuxStats::default());
    }

    #[test]
    fn other_layers_are_dropped_and_counted_with_or_without_their_rid() {
        let mut d = demux();
        d.classify(&packet(F, 102, Some("f"), None));
        assert_eq!(
            d.classify(&packet(Q, 102, Some("q"), None)),
            LayerVerdict::Drop
        );
        assert_eq!(d.classify(&packet(Q, 102, None, None)), LayerVerdict::Drop);
        assert_eq!(
            d.classify(&packet(Q_RTX, 103, None, Some("q"))),
            LayerVerdict::Drop
        );
        assert_eq!(
            d.classify(&packet(Q_RTX, 103, None, None)),
            LayerVerdict::Drop
        );
        assert_eq!(d.stats().other_layers, 4);
        assert_eq!(d.classify(&packet(F, 102, None, None)), LayerVerdict::Pass);
    }

    #[test]
    fn rtx_of_the_wanted_layer_is_unwrapped_into_it() {
        let mut d = demux();
        d.classify(&packet(F, 102, Some("f"), None));
        let unwrapped = LayerVerdict::Unwrap {
            ssrc: F,
            payload_type: 102,
        };
        assert_eq!(d.classify(&packet(F_RTX, 103, None, Some("f"))), unwrapped);
        assert_eq!(d.classify(&packet(F_RTX, 103, None, None)), unwrapped);
        // A padding-only probe on the RTX stream has no sequence number to restore.
        let probe = LayerPacket {
            payload_len: 0,
            ..packet(F_RTX, 103, None, None)
        };
        assert_eq!(d.classify(&probe), LayerVerdict::Ignore);
    }

    #[test]
    fn rtx_before_its_layer_is_dropped() {
        let mut d = demux();
        assert_eq!(
            d.classify(&packet(F_RTX, 103, None, Some("f"))),
            LayerVerdict::Drop
        );
        d.classify(&packet(F, 102, Some("f"), None));
        assert!(matches!(
            d.classify(&packet(F_RTX, 103, None, None)),
            LayerVerdict::Unwrap { .. }
        ));
    }

    #[test]
    fn audio_passes_untouched() {
        let mut d = demux();
        assert_eq!(
            d.classify(&packet(0xa0d1, 111, None, None)),
            LayerVerdict::Pass
        );
        assert_eq!(d.stats(), LayerDemuxStats::default());
    }

    #[test]
    fn an_unidentified_video_ssrc_never_passes() {
        let mut d = demux();
        assert_eq!(
            d.classify(&packet(0x5555, 102, None, None)),
            LayerVerdict::Drop
        );
        assert_eq!(d.stats().unidentified, 1);
    }

    #[test]
    fn a_restarted_layer_is_rebound_to_its_new_ssrc() {
        let mut d = demux();
        d.classify(&packet(F, 102, Some("f"), None));
        d.classify(&packet(Q, 102, Some("q"), None));
        // The sender swaps SSRCs between layers (an encoder reconfiguration).
        assert_eq!(
            d.classify(&packet(Q, 102, Some("f"), None)),
            LayerVerdict::Pass
        );
        assert_eq!(d.primary_ssrc(), Some(Q));
        assert_eq!(
            d.classify(&packet(F, 102, Some("q"), None)),
            LayerVerdict::Drop
        );
        assert_eq!(d.classify(&packet(F, 102, None, None)), LayerVerdict::Drop);
        assert_eq!(d.classify(&packet(Q, 102, None, None)), LayerVerdict::Pass);
    }
}
