//! Lets RTCP Sender Reports reach the track pipelines. webrtc-rs drops inbound RTCP at the end
//! of its interceptor chain unless a packet is marked for the application, so this tap, placed
//! after the default interceptors, re-emits each Sender Report on its own, marked.

use std::collections::VecDeque;

use rtc::interceptor::{Attribute, AttributedPacket, Packet, TaggedPacket};
use rtc::rtcp::sender_report::SenderReport;

use super::read_tap::ReadStep;

/// After every built-in interceptor slot (the last is 13 000). It must differ from all of them:
/// a registry entry at a taken slot would replace that interceptor.
pub const SENDER_REPORT_TAP_SLOT: usize = 14_000;

#[derive(Default)]
pub struct SenderReportTap;

impl ReadStep for SenderReportTap {
    fn read(&mut self, msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        // webrtc-rs routes an RTCP packet to a track by its first destination SSRC. A report
        // with reception blocks (about what we send) would go elsewhere: emit each Sender Report
        // alone and without them, so it reaches the track it describes.
        let reports: Vec<SenderReport> = match &msg.message.packet {
            Packet::Rtcp(packets) => packets
                .iter()
                .filter_map(|p| p.as_any().downcast_ref::<SenderReport>())
                .map(|sr| SenderReport {
                    reports: Vec::new(),
                    ..sr.clone()
                })
                .collect(),
            _ => Vec::new(),
        };
        let (now, transport) = (msg.now, msg.transport);
        // The original goes on unmarked, for the other interceptors; the end of the chain drops it.
        out.push_back(msg);
        for sr in reports {
            out.push_back(TaggedPacket {
                now,
                transport,
                message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(sr)]))
                    .with(Attribute::DeliverToApplication),
            });
        }
    }
}
