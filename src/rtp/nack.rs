//! When to ask a publisher to resend lost video packets (Generic NACK, RFC 4585 §6.2.1), from
//! the gaps the reorder buffer is waiting on (sans-IO).
//!
//! A gap is asked for as soon as a later packet shows it, and again every `retry` while it is
//! still open, a few times at most; nothing is scheduled while no packet is missing. The
//! reorder buffer sees packets after webrtc-rs has unwrapped retransmissions (RFC 4588 RTX),
//! so a repaired packet closes its gap whichever way it came back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Default wait before asking again for a packet that is still missing: about one round trip
/// to a publisher on the same continent.
pub const DEFAULT_NACK_RETRY: Duration = Duration::from_millis(50);
/// Default number of times one packet is asked for.
pub const DEFAULT_NACK_MAX_ASKS: u8 = 3;

/// Which missing packets to ask for, and when.
#[derive(Debug)]
pub struct NackScheduler {
    retry: Duration,
    max_asks: u8,
    /// Extended sequence number → (last asked, times asked), for packets still missing.
    asked: HashMap<i64, (Instant, u8)>,
}

impl NackScheduler {
    /// `retry`: the wait before asking for the same packet again; `max_asks`: how many times
    /// one packet is asked for (at least 1).
    pub fn new(retry: Duration, max_asks: u8) -> Self {
        Self {
            retry,
            max_asks: max_asks.max(1),
            asked: HashMap::new(),
        }
    }

    /// Of `missing` (extended sequence numbers in ascending order, as the reorder buffer
    /// reports them), the ones to ask for at `now`, as 16-bit RTP sequence numbers in the same
    /// order: those never asked for, and those last asked `retry` ago or more and asked fewer
    /// than `max_asks` times. Packets not in `missing` any more (arrived, or given up) are
    /// forgotten.
    pub fn poll(&mut self, missing: &[i64], now: Instant) -> Vec<u16> {
        self.asked
            .retain(|seq, _| missing.binary_search(seq).is_ok());
        let mut ask = Vec::new();
        for &seq in missing {
            match self.asked.get_mut(&seq) {
                None => {
                    self.asked.insert(seq, (now, 1));
                    ask.push(seq as u16);
                }
                Some((last, times)) if *times < self.max_asks && now >= *last + self.retry => {
                    *last = now;
                    *times += 1;
                    ask.push(seq as u16);
                }
                Some(_) => {}
            }
        }
        ask
    }

    /// When [`poll`](Self::poll) will have a packet to ask for again, if nothing arrives before
    /// then; `None` when nothing is waiting for another ask.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.asked
            .values()
            .filter(|(_, times)| *times < self.max_asks)
            .map(|(last, _)| *last + self.retry)
            .min()
    }

    /// Forgets every gap (nothing is missing any more).
    pub fn clear(&mut self) {
        self.asked.clear();
    }
}

impl Default for NackScheduler {
    fn default() -> Self {
        Self::new(DEFAULT_NACK_RETRY, DEFAULT_NACK_MAX_ASKS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Duration = Duration::from_millis(50);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_new_gap_is_asked_for_at_once() {
        let t0 = Instant::now();
        let mut n = NackScheduler::new(RETRY, 3);
        assert_eq!(n.poll(&[5, 6, 9], t0), vec![5, 6, 9]);
        assert_eq!(n.poll_timeout(), Some(at(t0, 50)));
    }

    #[test]
    fn an_open_gap_is_asked_for_again_after_the_retry_wait_only() {
        let t0 = Instant::now();
        let mut n = NackScheduler::new(RETRY, 3);
        n.poll(&[5], t0);
        assert!(n.poll(&[5], at(t0, 49)).is_empty());
        assert_eq!(n.poll(&[5], at(t0, 50)), vec![5]);
        assert_eq!(n.poll_timeout(), Some(at(t0, 100)));
    }

    #[test]
    fn a_packet_is_asked_for_at_most_max_asks_times() {
        let t0 = Instant::now();
        let mut n = NackScheduler::new(RETRY, 2);
        assert_eq!(n.poll(&[5], t0), vec![5]);
        assert_eq!(n.poll(&[5], at(t0, 60)), vec![5]);
        assert!(n.poll(&[5], at(t0, 200)).is_empty());
        assert_eq!(n.poll_timeout(), None, "nothing left to ask for");
    }

    #[test]
    fn arrived_packets_are_forgotten_and_a_later_gap_is_asked_for_once() {
        let t0 = Instant::now();
        let mut n = NackScheduler::new(RETRY, 3);
        n.poll(&[5, 6], t0);
        // 5 arrived; 8 is newly missing: only 8 is asked for now.
        assert_eq!(n.poll(&[6, 8], at(t0, 10)), vec![8]);
        assert_eq!(n.poll_timeout(), Some(at(t0, 50)));
        // Everything arrived: no timer.
        assert!(n.poll(&[], at(t0, 20)).is_empty());
        assert_eq!(n.poll_timeout(), None);
    }

    #[test]
    fn sequence_numbers_are_given_on_the_wire_width() {
        let t0 = Instant::now();
        let mut n = NackScheduler::default();
        assert_eq!(n.poll(&[65_535, 65_536, 65_537], t0), vec![65_535, 0, 1]);
    }

    #[test]
    fn clear_forgets_every_gap() {
        let t0 = Instant::now();
        let mut n = NackScheduler::new(RETRY, 3);
        n.poll(&[5], t0);
        n.clear();
        assert_eq!(n.poll_timeout(), None);
        assert_eq!(n.poll(&[5], at(t0, 1)), vec![5], "a gap after clear is new");
    }
}
