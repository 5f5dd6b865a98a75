//! Resends as a browser sends them for a simulcast layer: RTX (RFC 4588) on a stream of its
//! own, identified by the repaired-RID header extension (RFC 8852 §3.2), since simulcast layers
//! have no SSRCs (and so no `ssrc-group:FID`) in the SDP. webrtc-rs's NACK responder already
//! resends on the layer's RTX stream; this names the layer on those packets. Used by the loss
//! simulation (`lossy.rs`), so that tests exercise the receiver's repair of a simulcast layer.

use std::collections::HashMap;

use bytes::Bytes;
use rtc::interceptor::StreamInfo;
use rtc::sdp::extmap::{SDES_REPAIR_RTP_STREAM_ID_URI, SDES_RTP_STREAM_ID_URI};

#[derive(Debug, Default)]
pub(super) struct RepairedRid {
    rid_extension: Option<u8>,
    repaired_rid_extension: Option<u8>,
    /// RTX SSRC → the media SSRC it repairs (from the streams bound for sending).
    repairs: HashMap<u32, u32>,
    /// Media SSRC → its rid, once seen on a first transmission.
    rids: HashMap<u32, Bytes>,
}

impl RepairedRid {
    /// Learns the negotiated extension ids, and the stream's RTX SSRC.
    pub(super) fn bind(&mut self, info: &StreamInfo) {
        for ext in &info.rtp_header_extensions {
            let id = u8::try_from(ext.id).ok();
            match ext.uri.as_str() {
                SDES_RTP_STREAM_ID_URI => self.rid_extension = id,
                SDES_REPAIR_RTP_STREAM_ID_URI => self.repaired_rid_extension = id,
                _ => {}
            }
        }
        if let Some(rtx) = info.ssrc_rtx {
            self.repairs.insert(rtx, info.ssrc);
        }
    }

    /// Notes a layer's rid from a media packet, or writes it as repaired RID on an RTX packet
    /// (instead of any RID it carries: RFC 8852 §3.2 puts RID on media, repaired RID on repair).
    pub(super) fn tag(&mut self, packet: &mut rtc::rtp::Packet) {
        let (Some(rid_id), Some(rrid_id)) = (self.rid_extension, self.repaired_rid_extension)
        else {
            return;
        };
        let ssrc = packet.header.ssrc;
        match self.repairs.get(&ssrc) {
            None => {
                if let std::collections::hash_map::Entry::Vacant(slot) = self.rids.entry(ssrc) {
                    if let Some(rid) = packet.header.get_extension(rid_id) {
                        slot.insert(rid);
                    }
                }
            }
            Some(media) => {
                let Some(rid) = self.rids.get(media) else {
                    return;
                };
                let _ = packet.header.del_extension(rid_id);
                if packet.header.set_extension(rrid_id, rid.clone()).is_err() {
                    tracing::debug!("no room for the repaired-RID extension");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::RTPHeaderExtension;

    const MEDIA: u32 = 7;
    const RTX: u32 = 8;

    fn info() -> StreamInfo {
        StreamInfo {
            ssrc: MEDIA,
            ssrc_rtx: Some(RTX),
            rtp_header_extensions: vec![
                RTPHeaderExtension {
                    uri: SDES_RTP_STREAM_ID_URI.into(),
                    id: 10,
                },
                RTPHeaderExtension {
                    uri: SDES_REPAIR_RTP_STREAM_ID_URI.into(),
                    id: 11,
                },
            ],
            ..Default::default()
        }
    }

    fn packet(ssrc: u32, rid: Option<&'static str>) -> rtc::rtp::Packet {
        let mut header = rtc::rtp::Header {
            version: 2,
            ssrc,
            ..Default::default()
        };
        if let Some(rid) = rid {
            header
                .set_extension(10, Bytes::from_static(rid.as_bytes()))
                .unwrap();
        }
        rtc::rtp::Packet {
            header,
            payload: Bytes::from_static(b"\x01\xf4\x41\x9a"),
        }
    }

    #[test]
    fn rtx_of_a_layer_carries_its_repaired_rid() {
        let mut tagger = RepairedRid::default();
        tagger.bind(&info());
        let mut media = packet(MEDIA, Some("f"));
        tagger.tag(&mut media);
        assert_eq!(
            media.header.get_extension(11),
            None,
            "media keeps its RID only"
        );
        let mut rtx = packet(RTX, Some("f"));
        tagger.tag(&mut rtx);
        assert_eq!(rtx.header.get_extension(10), None);
        assert_eq!(rtx.header.get_extension(11).as_deref(), Some(&b"f"[..]));
    }

    #[test]
    fn rtx_before_its_layers_rid_is_left_alone() {
        let mut tagger = RepairedRid::default();
        tagger.bind(&info());
        let mut rtx = packet(RTX, None);
        tagger.tag(&mut rtx);
        assert_eq!(rtx.header.get_extension(11), None);
    }
}
