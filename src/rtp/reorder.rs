//! The jitter/reorder buffer: puts one SSRC's RTP packets back in sequence order, drops
//! duplicates and stale packets, and gives up on gaps after a time or space limit.
//!
//! webrtc-rs unwraps RTX retransmissions (RFC 4588) back into the primary stream, so the same
//! sequence number can arrive twice; and NACK-driven retransmissions arrive late, which is why
//! a gap is worth waiting for a little. Time is passed in; nothing here reads the clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::RtpPacket;

/// A forward jump larger than this is a restarted sender, not a loss burst: the buffer resets
/// instead of waiting. The same distance backwards, confirmed by a second packet that follows
/// on, resets it too (a single very late packet must not).
pub const RESET_JUMP: u16 = 3000;

/// How close (in sequence numbers) the packet after a far-backward one must be to confirm
/// that the sender restarted behind us.
const RESTART_CONFIRM_WINDOW: u16 = 16;

/// A packet leaving the buffer in sequence order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reordered {
    pub packet: RtpPacket,
    /// One or more packets before this one were given up on (or the stream restarted).
    pub lost_before: bool,
}

/// Counters for diagnostics; they only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReorderStats {
    /// Packets older than the last one released (late, or RTX duplicates of released ones).
    pub dropped_late: u64,
    /// Duplicates of a packet still held.
    pub dropped_duplicate: u64,
    /// Sequence numbers given up on.
    pub lost: u64,
    /// Restarts (far jump or SSRC change).
    pub resets: u64,
}

/// Reorders one RTP stream. See the module docs.
///
/// At most `capacity` packets are held behind a gap, and only packets less than
/// `capacity + 1` sequence numbers ahead of the gap are kept: beyond that the gap is skipped.
/// The first packet defines where the stream starts: an older one arriving after it is late.
#[derive(Debug)]
pub struct ReorderBuffer {
    max_delay: Duration,
    capacity: usize,
    /// Ring of `capacity + 1` slots; extended sequence `s` lives at `s mod len`. Allocated on
    /// first use so an in-order stream never touches it.
    slots: Vec<Option<RtpPacket>>,
    held: usize,
    /// (extended sequence, arrival) of held packets in arrival order; entries whose packet
    /// has since left are removed lazily, but the front is always a held packet.
    arrivals: VecDeque<(i64, Instant)>,
    /// Extended sequence number of the next packet to release; `None` before the first packet.
    next: Option<i64>,
    ssrc: Option<u32>,
    ready: VecDeque<Reordered>,
    loss_pending: bool,
    /// A far-backward packet kept in case the next one confirms a restart.
    restart_probe: Option<(RtpPacket, Instant)>,
    stats: ReorderStats,
}

impl ReorderBuffer {
    /// `max_delay`: how long a packet may wait behind a gap. `capacity`: how many packets may
    /// wait (at least 1).
    pub fn new(max_delay: Duration, capacity: usize) -> Self {
        Self {
            max_delay,
            capacity: capacity.max(1),
            slots: Vec::new(),
            held: 0,
            arrivals: VecDeque::new(),
            next: None,
            ssrc: None,
            ready: VecDeque::new(),
            loss_pending: false,
            restart_probe: None,
            stats: ReorderStats::default(),
        }
    }

    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    /// Number of packets waiting behind a gap.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Replaces `out` with the extended sequence numbers of the packets missing in front of
    /// held ones (every gap between the next packet to release and the newest held), oldest
    /// first: what a NACK should ask for. Empty when nothing is held.
    pub fn missing_into(&self, out: &mut Vec<i64>) {
        out.clear();
        let Some(mut seq) = self.next else { return };
        let mut unseen = self.held;
        while unseen > 0 {
            if self.slots[self.slot_index(seq)].is_some() {
                unseen -= 1;
            } else {
                out.push(seq);
            }
            seq += 1;
        }
    }

    /// Takes in a packet received at `now`. Call [`poll`](Self::poll) afterwards.
    pub fn push(&mut self, pkt: RtpPacket, now: Instant) {
        if self.ssrc.is_some_and(|s| s != pkt.ssrc) {
            self.restart();
        }
        self.ssrc = Some(pkt.ssrc);
        let Some(next) = self.next else {
            self.start(pkt);
            return;
        };

        // Place the packet at the nearest cycle around the next expected sequence number.
        let delta = i64::from(pkt.sequence.wrapping_sub(next as u16) as i16);
        if delta < 0 {
            if delta < -i64::from(RESET_JUMP) {
                self.far_backward(pkt, now);
            } else {
                self.stats.dropped_late += 1;
            }
            return;
        }
        if delta > i64::from(RESET_JUMP) {
            self.restart();
            self.start(pkt);
            return;
        }
        if delta == 0 && self.held == 0 {
            // In-order fast path: nothing is waiting, release at once.
            self.release(pkt);
            return;
        }
        self.hold(next + delta, pkt, now);
    }

    /// Returns the next packet in order, first giving up on a gap whose wait is over at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<Reordered> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            match self.poll_timeout() {
                Some(deadline) if now >= deadline => self.skip_to_first_held(),
                _ => return None,
            }
        }
    }

    /// When the oldest held packet stops waiting for the gap before it; `None` when nothing is
    /// held (or `max_delay` is too large to represent).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.held == 0 {
            return None;
        }
        let (_, arrived) = self.arrivals.front()?;
        arrived.checked_add(self.max_delay)
    }

    fn start(&mut self, pkt: RtpPacket) {
        self.next = Some(i64::from(pkt.sequence));
        self.release(pkt);
    }

    /// Releases `pkt`, which must be the packet at `next`.
    fn release(&mut self, packet: RtpPacket) {
        let lost_before = std::mem::take(&mut self.loss_pending);
        self.ready.push_back(Reordered {
            packet,
            lost_before,
        });
        if let Some(n) = self.next.as_mut() {
            *n = n.saturating_add(1);
        }
    }

    fn ring_len(&self) -> i64 {
        self.capacity as i64 + 1
    }

    fn slot_index(&self, ext: i64) -> usize {
        ext.rem_euclid(self.ring_len()) as usize
    }

    fn hold(&mut self, ext: i64, pkt: RtpPacket, now: Instant) {
        if self.slots.is_empty() {
            self.slots.resize(self.capacity + 1, None);
        }
        // Too far ahead for the ring: give up on the oldest gaps until it fits.
        while ext - self.next_or(ext) >= self.ring_len() {
            if self.held == 0 {
                let new_next = ext - self.ring_len() + 1;
                self.stats.lost += (new_next - self.next_or(new_next)).max(0) as u64;
                self.next = Some(new_next);
                self.loss_pending = true;
                break;
            }
            self.skip_to_first_held();
        }
        let index = self.slot_index(ext);
        if self.slots[index].is_some() {
            self.stats.dropped_duplicate += 1;
            return;
        }
        self.slots[index] = Some(pkt);
        self.held += 1;
        self.arrivals.push_back((ext, now));
        self.drain();
        if self.held >= self.capacity {
            self.skip_to_first_held();
        }
    }

    fn next_or(&self, default: i64) -> i64 {
        self.next.unwrap_or(default)
    }

    /// Moves the run of held packets starting at `next` to the ready queue.
    fn drain(&mut self) {
        while self.held > 0 {
            let Some(next) = self.next else { break };
            let index = self.slot_index(next);
            let Some(pkt) = self.slots[index].take() else {
                break;
            };
            self.held -= 1;
            self.release(pkt);
        }
        // Keep the front of `arrivals` a held packet (its sequence not yet passed).
        let next = self.next_or(i64::MIN);
        while self.arrivals.front().is_some_and(|&(ext, _)| ext < next) {
            self.arrivals.pop_front();
        }
    }

    /// Gives up on the gap at `next`: jumps to the first held packet and releases the run.
    fn skip_to_first_held(&mut self) {
        let Some(next) = self.next else { return };
        if self.held == 0 {
            return;
        }
        // The ring holds everything in [next, next + ring_len), so this finds a packet.
        let target =
            (next..next + self.ring_len()).find(|&s| self.slots[self.slot_index(s)].is_some());
        if let Some(target) = target {
            if target > next {
                self.stats.lost += (target - next) as u64;
                self.loss_pending = true;
                self.next = Some(target);
            }
        }
        self.drain();
    }

    /// Flushes what is held (in order, gaps skipped) and forgets the sequence position; the
    /// next packet starts the stream again, flagged `lost_before`.
    fn restart(&mut self) {
        while self.held > 0 {
            self.skip_to_first_held();
        }
        if self.next.is_some() {
            self.loss_pending = true;
            self.stats.resets += 1;
        }
        self.next = None;
        self.arrivals.clear();
        self.restart_probe = None;
    }

    fn far_backward(&mut self, pkt: RtpPacket, now: Instant) {
        let confirmed = self.restart_probe.as_ref().is_some_and(|(probe, _)| {
            let step = pkt.sequence.wrapping_sub(probe.sequence);
            (1..=RESTART_CONFIRM_WINDOW).contains(&step)
        });
        if !confirmed {
            self.stats.dropped_late += 1;
            self.restart_probe = Some((pkt, now));
            return;
        }
        if let Some((probe, _)) = self.restart_probe.take() {
            self.restart();
            self.start(probe);
            // `pkt` follows the probe closely, so this takes the normal path.
            self.push(pkt, now);
        }
    }
}

#[cfg(test)]
// Tests make their Instants from one base `Instant::now()`; the code under test never does.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const MS: Duration = Duration::from_millis(1);

    fn pkt(seq: u16) -> RtpPacket {
        RtpPacket {
            payload_type: 96,
            sequence: seq,
            timestamp: u32::from(seq) * 3000,
            ssrc: 7,
            marker: false,
            payload: Bytes::copy_from_slice(&seq.to_be_bytes()),
        }
    }

    fn drain(buf: &mut ReorderBuffer, now: Instant) -> Vec<(u16, bool)> {
        std::iter::from_fn(|| buf.poll(now))
            .map(|r| (r.packet.sequence, r.lost_before))
            .collect()
    }

    #[test]
    fn in_order_packets_pass_straight_through() {
        let t0 = Instant::now();
        let mut buf = ReorderBuffer::new(100 * MS, 64);
        for s in 10..13 {
            buf.push(pkt(s), t0);
        }
        assert_eq!(
            drain(&mut buf, t0),
            vec![(10, false), (11, false), (12, false)]
        );
        assert_eq!(buf.poll_timeout(), None);
    }

    #[test]
    fn swapped_packets_come_out_in_order_without_loss() {
        let t0 = Instant::now();
        let mut buf = ReorderBuffer::new(100 * MS, 64);
        buf.push(pkt(1), t0);
        buf.push(pkt(3), t0);
        assert_eq!(drain(&mut buf, t0), vec![(1, false)]);
        assert_eq!(buf.poll_timeout(), Some(t0 + 100 * MS));
        buf.push(pkt(2), t0 + 5 * MS);
        assert_eq!(drain(&mut buf, t0 + 5 * MS), vec![(2, false), (3, false)]);
        assert_eq!(buf.poll_timeout(), None);
    }

    #[test]
    fn rtx_duplicates_of_released_and_held_packets_are_dropped() {
        let t0 = Instant::now();
        let mut buf = ReorderBuffer::new(100 * MS, 64);
        buf.push(pkt(1), t0);
        buf.push(pkt(3), t0);
        buf.push(pkt(3), t0);
        buf.push(pkt(1), t0);
        buf.push(pkt(2), t0);
        buf.push(pkt(2), t0);
        assert_eq!(
            drain(&mut buf, t0),
            vec![(1, false), (2, false), (3, false)]
        );
        let stats = buf.stats();
        assert_eq!((stats.dropped_duplicate, stats.dropped_late), (1, 2));
    }

    #[test]
    fn gap_is_skipped_after_max_delay_with_lost_before() {
        let t0 = Instant::now();
        let mut buf = ReorderBuffer::new(100 * MS, 64);
        buf.push(pkt(1), t0);
        buf.push(pkt(4), t0 + 10 * MS);
        buf.push(pkt(5), t0 + 20 * MS);
        assert_eq!(drain(&mut buf, t0 + 109 * MS), vec![(1, false)]);
        assert_eq!(buf.poll_timeout(), Some(t0 + 110 * MS));
        assert_eq!(drain(&mut buf, t0 + 110 * MS), vec![(4, true), (5, false)]);
        // The skipped packets are now stale.
        buf.push(pkt(2), t0 + 120 * MS);
        buf.push(pkt(6), t0 + 120 * MS);
        assert_eq!(drain(&mut buf, t0 + 120 * MS), vec![(6, false)]);
        assert_eq!(buf.stats().lost, 2);
    }

    #[test]
    fn gap_is_skipped_when_capacity_packets_are_held() {
        let t0 = Instant::now();
        let mut buf = ReorderBuffer::new(Duration::from_secs(10), 3);
        buf.push(pkt(1), t0);
        buf.push(pkt(3), t0);
        buf.push(pkt(4), t0);
        assert_eq!(drain(&mut buf, t0), vec![(1, false)]);
        buf.push(pkt(6), t0);
        assert_eq!(drain(&mut buf, t0), vec![(3, true), (4, false)]);
        assert_eq!(buf.held(), 1);
    }

    #[test]
    fn packet_beyond_the_window_pushes_the_gap_out() {
        let t0 = Instant::now();
        let mut buf = ReorderBuffer::new(Duration::from_secs(10), 4);
        buf.push(pkt(100), t0);
        buf.push(pkt(102), t0);
        buf.push(pkt(110), t0);
        // 102 is released (101 given up), then 103..105 are skipped so 110 fits the ring.
        assert_eq!(drain(&mut buf, t0), vec![(100, false), (102, true)]);
        for s in 106..110 {
            buf.push(pkt(s), t0);
        }
        let out = drain(&mut buf, t0);
        assert_eq!(out.first(), Some(&(106, true)));
        assert_eq!(out.last(), Some(&(110, false)));
    }

    #[test]
    fn sequence_wrap_is_in_order() {
        let t0 = Instant::now();
        let mut buf = ReorderBuffer::new(100 * MS, 64);
        for s in [65534, 0, 65535, 1] {
            buf.push(pkt(s), t0);
        }
        assert_eq!(
            drain(&mut buf, t0),
            vec![(65534, false), (65535, false), (0, false), (1, false)]
        );
    }

    #[test]
    fn restarted_sender_far_ahead_resets_instead_of_waiting() {
        let t0 = Instant::now();
        let mut buf = ReorderBuffer::new(100 * MS, 64);
        buf.push(pkt(10), t0);
        buf.push(pkt(12), t0);
        buf.push(pkt(20_000), t0);
        buf.push(pkt(20_001), t0);
        assert_eq!(
            drain(&mut buf, t0),
            vec![(10, false), (12, true), (20_000, true), (20_001, false)]
        );
        assert_eq!(buf.stats().resets, 1);
    }

    #[test]
    fn one_very_late_packet_does_not_reset_but_a_restart_behind_does() {
        let t0 = Instant::now();
        let mut buf = ReorderBuffer::new(100 * MS, 64);
        buf.push(pkt(20_000), t0);
        buf.push(pkt(10_000), t0);
        buf.push(pkt(20_001), t0);
        assert_eq!(drain(&mut buf, t0), vec![(20_000, false), (20_001, false)]);
        buf.push(pkt(5), t0);
        buf.push(pkt(6), t0);
        buf.push(pkt(7), t0);
        assert_eq!(drain(&mut buf, t0), vec![(5, true), (6, false), (7, false)]);
    }

    #[test]
    fn new_ssrc_restarts_the_sequence() {
        let t0 = Instant::now();
        let mut buf = ReorderBuffer::new(100 * MS, 64);
        buf.push(pkt(500), t0);
        let mut other = pkt(3);
        other.ssrc = 8;
        buf.push(other, t0);
        assert_eq!(drain(&mut buf, t0), vec![(500, false), (3, true)]);
    }

    #[test]
    fn wait_is_measured_from_the_oldest_held_arrival() {
        let t0 = Instant::now();
        let mut buf = ReorderBuffer::new(100 * MS, 64);
        buf.push(pkt(1), t0);
        buf.push(pkt(5), t0 + 10 * MS);
        buf.push(pkt(3), t0 + 50 * MS);
        assert_eq!(drain(&mut buf, t0 + 50 * MS), vec![(1, false)]);
        // Packet 5 has waited longest: at its deadline both gaps are given up.
        assert_eq!(buf.poll_timeout(), Some(t0 + 110 * MS));
        assert_eq!(drain(&mut buf, t0 + 110 * MS), vec![(3, true), (5, true)]);
    }
}
