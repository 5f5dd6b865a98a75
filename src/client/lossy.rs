//! Simulated loss on the publisher's video, for tests of the receiver's repair
//! ([`super::PublishOptions::drop_video_packets`]): an interceptor that withholds the first
//! transmission of one video RTP packet in every N, and lets every retransmission through.
//!
//! It sits at [`LOSSY_SLOT`], wire-ward of the NACK responder (`Slot::NackResponder`, 4 000):
//! the write walk goes from high slots to low, so a packet reaches this interceptor only after
//! the responder has put it in its send buffer. A NACK for the withheld packet is then answered
//! from that buffer, and the resend (tagged `Attribute::Retransmission`) walks down through
//! here again and goes out. To the receiver it looks like loss on the path.
//!
//! On loopback a repair takes no time at all; on a real path it takes a round trip, and
//! whether the receiver still waits for it then is the question that matters. So resends can
//! be held for a set delay before they go out, standing in for that round trip.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use super::rtx_out::RepairedRid;

/// Below every built-in slot (the lowest, congestion control, is 1 000): as close to the wire
/// as the chain gets, so whatever the chain records or numbers on the way out (a send history,
/// transport-wide sequence numbers), it has already done for the withheld packet, as for a
/// packet lost after it left.
pub(super) const LOSSY_SLOT: usize = 500;

/// What happens to one outgoing RTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Send,
    Drop,
}

/// The drop decision for one video SSRC, on sequence numbers only.
///
/// Every `every`-th first transmission is withheld. A packet with the RTP marker bit (the last
/// of an access unit) is never the one: the last packet of a stream ends in one, and a lost
/// last packet cannot be repaired by NACK, since no later packet shows the receiver the gap.
/// The drop then falls on the next packet without it. A sequence number that is not newer than
/// the newest one seen is a resend (or a reordered copy) and always goes out, so one packet
/// is withheld once at most.
#[derive(Debug)]
pub(super) struct LossPlan {
    every: u32,
    /// First transmissions since the last drop (or the start).
    since_drop: u32,
    newest: Option<u16>,
}

impl LossPlan {
    /// `every` below 2 is taken as 2: with every packet dropped, no packet would ever reach
    /// the receiver to show it what is missing.
    pub(super) fn new(every: u32) -> Self {
        LossPlan {
            every: every.max(2),
            since_drop: 0,
            newest: None,
        }
    }

    pub(super) fn decide(&mut self, seq: u16, marker: bool, retransmission: bool) -> Verdict {
        if retransmission {
            return Verdict::Send;
        }
        if let Some(newest) = self.newest {
            // RFC 3550 serial arithmetic: half the sequence space ahead is newer.
            let ahead = seq.wrapping_sub(newest);
            if ahead == 0 || ahead >= 0x8000 {
                return Verdict::Send;
            }
        }
        self.newest = Some(seq);
        self.since_drop = self.since_drop.saturating_add(1);
        if self.since_drop >= self.every && !marker {
            self.since_drop = 0;
            return Verdict::Drop;
        }
        Verdict::Send
    }
}

/// What loss to simulate (from [`super::PublishOptions`]).
#[derive(Clone, Debug)]
pub(super) struct Loss {
    /// Withhold one video packet in this many.
    pub(super) every: u32,
    /// Hold each resend this long before it goes out (a stand-in for the round trip).
    pub(super) resend_delay: Duration,
    /// Counts the packets withheld.
    pub(super) dropped: Arc<AtomicU64>,
    /// Simulcast: RTX resends name their layer by repaired RID, as a browser's do
    /// (`rtx_out.rs`).
    pub(super) repaired_rid: bool,
}

/// The interceptor: applies a [`LossPlan`] to each video stream it is told about, counts the
/// packets it withheld and delays resends as [`Loss`] says. Audio and RTCP pass untouched.
pub(super) struct LossyVideo {
    loss: Loss,
    plans: HashMap<u32, LossPlan>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
    /// Resends and when they may go out; deadlines only grow, as the delay is fixed.
    held: VecDeque<(Instant, TaggedPacket)>,
    repaired_rid: Option<RepairedRid>,
}

impl LossyVideo {
    pub(super) fn new(loss: Loss) -> Self {
        LossyVideo {
            repaired_rid: loss.repaired_rid.then(RepairedRid::default),
            loss,
            plans: HashMap::new(),
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
            held: VecDeque::new(),
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for LossyVideo {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, mut msg: TaggedPacket) -> Result<(), Error> {
        let resend = msg.message.has(&Attribute::Retransmission);
        if let Packet::Rtp(rtp) = &mut msg.message.packet {
            if let Some(tagger) = self.repaired_rid.as_mut() {
                tagger.tag(rtp);
            }
            if let Some(plan) = self.plans.get_mut(&rtp.header.ssrc) {
                let verdict = plan.decide(rtp.header.sequence_number, rtp.header.marker, resend);
                if verdict == Verdict::Drop {
                    self.loss.dropped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                if resend && !self.loss.resend_delay.is_zero() {
                    self.held.push_back((msg.now + self.loss.resend_delay, msg));
                    return Ok(());
                }
            }
        }
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write_queue.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        while let Some((_, msg)) = self.held.pop_front_if(|(due, _)| *due <= now) {
            self.write_queue.push_back(msg);
        }
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.held.front().map(|(due, _)| *due)
    }
}

impl Interceptor for LossyVideo {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.mime_type.to_ascii_lowercase().starts_with("video/") {
            self.plans.insert(info.ssrc, LossPlan::new(self.loss.every));
            if let Some(tagger) = self.repaired_rid.as_mut() {
                tagger.bind(info);
            }
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.plans.remove(&info.ssrc);
    }

    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::{AttributedPacket, NackResponderBuilder, RTCPFeedback, Registry, Slot};
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
    use rtc::shared::TransportContext;

    const VIDEO_SSRC: u32 = 0x1111;
    const AUDIO_SSRC: u32 = 0x2222;

    /// Verdicts for first transmissions of `seqs` (none with a marker).
    fn verdicts(plan: &mut LossPlan, seqs: impl IntoIterator<Item = u16>) -> Vec<u16> {
        seqs.into_iter()
            .filter(|&s| plan.decide(s, false, false) == Verdict::Drop)
            .collect()
    }

    #[test]
    fn every_nth_first_transmission_is_dropped() {
        let mut plan = LossPlan::new(3);
        assert_eq!(verdicts(&mut plan, 100..110), vec![102, 105, 108]);
    }

    #[test]
    fn a_resend_of_a_dropped_sequence_number_goes_out_and_does_not_count() {
        let mut plan = LossPlan::new(3);
        assert_eq!(verdicts(&mut plan, 0..3), vec![2]);
        // The responder's resend, tagged or not, and a stale copy are all sent.
        assert_eq!(plan.decide(2, false, true), Verdict::Send);
        assert_eq!(plan.decide(2, false, false), Verdict::Send);
        assert_eq!(plan.decide(1, false, false), Verdict::Send);
        // Resends do not advance the count: the next drop is still three packets on.
        assert_eq!(verdicts(&mut plan, 3..9), vec![5, 8]);
    }

    #[test]
    fn a_packet_ending_an_access_unit_is_spared_and_the_next_one_dropped() {
        let mut plan = LossPlan::new(3);
        assert_eq!(plan.decide(0, false, false), Verdict::Send);
        assert_eq!(plan.decide(1, false, false), Verdict::Send);
        assert_eq!(plan.decide(2, true, false), Verdict::Send);
        assert_eq!(plan.decide(3, false, false), Verdict::Drop);
        // Counting restarts at the drop.
        assert_eq!(verdicts(&mut plan, 4..7), vec![6]);
    }

    #[test]
    fn sequence_numbers_wrapping_past_65535_are_newer() {
        let mut plan = LossPlan::new(2);
        assert_eq!(verdicts(&mut plan, [65_534, 65_535, 0, 1]), vec![65_535, 1]);
        assert_eq!(plan.decide(65_535, false, false), Verdict::Send);
    }

    #[test]
    fn every_below_two_drops_every_second_packet() {
        let mut plan = LossPlan::new(0);
        assert_eq!(verdicts(&mut plan, 0..4), vec![1, 3]);
    }

    fn rtp(ssrc: u32, seq: u16) -> TaggedPacket {
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                ssrc,
                sequence_number: seq,
                ..Default::default()
            },
            payload: bytes::Bytes::from(vec![seq as u8; 4]),
        };
        tagged(Packet::Rtp(packet))
    }

    fn tagged(packet: Packet) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(packet),
        }
    }

    fn stream(ssrc: u32, mime: &str) -> StreamInfo {
        StreamInfo {
            ssrc,
            mime_type: mime.to_string(),
            rtcp_feedback: vec![RTCPFeedback {
                typ: "nack".into(),
                parameter: String::new(),
            }],
            ..Default::default()
        }
    }

    /// (SSRC, sequence number) of every RTP packet the chain lets out.
    fn sent(chain: &mut impl Interceptor) -> Vec<(u32, u16)> {
        std::iter::from_fn(|| chain.poll_write())
            .filter_map(|p| match p.message.packet {
                Packet::Rtp(rtp) => Some((rtp.header.ssrc, rtp.header.sequence_number)),
                _ => None,
            })
            .collect()
    }

    fn loss(every: u32, resend_delay: Duration) -> (Loss, Arc<AtomicU64>) {
        let dropped = Arc::new(AtomicU64::new(0));
        let loss = Loss {
            every,
            resend_delay,
            dropped: Arc::clone(&dropped),
            repaired_rid: false,
        };
        (loss, dropped)
    }

    fn nack(seq: u16, lost_after: u16) -> TaggedPacket {
        let nack = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: VIDEO_SSRC,
            nacks: vec![NackPair {
                packet_id: seq,
                lost_packets: lost_after,
            }],
        };
        tagged(Packet::Rtcp(vec![Box::new(nack)]))
    }

    #[test]
    fn withheld_video_packet_is_resent_by_the_nack_responder_and_audio_is_untouched() {
        let (loss, dropped) = loss(3, Duration::ZERO);
        let mut chain = Registry::new()
            .with(Slot::NackResponder, NackResponderBuilder::new().build())
            .with(Slot::from(LOSSY_SLOT), LossyVideo::new(loss))
            .build();
        chain.bind_local_stream(&stream(VIDEO_SSRC, "video/H264"));
        chain.bind_local_stream(&stream(AUDIO_SSRC, "audio/opus"));

        for seq in 10..16 {
            chain.handle_write(rtp(VIDEO_SSRC, seq)).expect("write");
            chain.handle_write(rtp(AUDIO_SSRC, seq)).expect("write");
        }
        let out = sent(&mut chain);
        let video: Vec<u16> = out
            .iter()
            .filter(|(s, _)| *s == VIDEO_SSRC)
            .map(|&(_, q)| q)
            .collect();
        let audio = out.iter().filter(|(s, _)| *s == AUDIO_SSRC).count();
        assert_eq!(video, vec![10, 11, 13, 14]);
        assert_eq!(audio, 6);
        assert_eq!(dropped.load(Ordering::Relaxed), 2);

        // The receiver asks for both (bit 2: 12 + 3); the responder had buffered them, and
        // the resends pass.
        chain.handle_read(nack(12, 0b100)).expect("read");
        while chain.poll_read().is_some() {}
        assert_eq!(sent(&mut chain), vec![(VIDEO_SSRC, 12), (VIDEO_SSRC, 15)]);
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_resend_is_held_for_the_resend_delay() {
        let (loss, _) = loss(2, Duration::from_millis(80));
        let mut chain = Registry::new()
            .with(Slot::NackResponder, NackResponderBuilder::new().build())
            .with(Slot::from(LOSSY_SLOT), LossyVideo::new(loss))
            .build();
        chain.bind_local_stream(&stream(VIDEO_SSRC, "video/H264"));
        for seq in 0..3 {
            chain.handle_write(rtp(VIDEO_SSRC, seq)).expect("write");
        }
        assert_eq!(sent(&mut chain), vec![(VIDEO_SSRC, 0), (VIDEO_SSRC, 2)]);

        let asked = nack(1, 0);
        let due = asked.now + Duration::from_millis(80);
        chain.handle_read(asked).expect("read");
        while chain.poll_read().is_some() {}
        assert_eq!(sent(&mut chain), vec![]);
        assert_eq!(chain.poll_timeout(), Some(due));
        chain
            .handle_timeout(due - Duration::from_millis(1))
            .expect("timeout");
        assert_eq!(sent(&mut chain), vec![]);
        chain.handle_timeout(due).expect("timeout");
        assert_eq!(sent(&mut chain), vec![(VIDEO_SSRC, 1)]);
        assert_eq!(chain.poll_timeout(), None);
    }
}
