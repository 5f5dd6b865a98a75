//! Lets RTCP Sender Reports reach the track pipelines. webrtc-rs drops inbound RTCP at the end
//! of its interceptor chain unless a packet is marked for the application, so this interceptor,
//! placed after the default ones, re-emits each Sender Report on its own, marked.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{
    Attribute, AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket,
};
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// After every built-in interceptor slot (the last is 13 000). It must differ from all of them:
/// a registry entry at a taken slot would replace that interceptor.
pub const SENDER_REPORT_TAP_SLOT: usize = 14_000;

#[derive(Default)]
pub struct SenderReportTap {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for SenderReportTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Error> {
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
        self.read_queue.push_back(msg);
        for sr in reports {
            self.read_queue.push_back(TaggedPacket {
                now,
                transport,
                message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(sr)]))
                    .with(Attribute::DeliverToApplication),
            });
        }
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for SenderReportTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
