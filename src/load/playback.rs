//! A viewer's playback buffer, as a player sees it: media arrives with a play duration, plays
//! out in real time, and when it runs dry the player waits until it has [`REBUFFER_MS`] again
//! before resuming. A wait over [`STALL_MS`] is a stall (issue 5: "a viewer that received no
//! media for over 1 s"). Measured in media time, so a viewer that receives data steadily but
//! slower than real time stalls too. Sans-IO: times are run milliseconds passed in.

/// A dry spell longer than this is a stall.
pub const STALL_MS: u64 = 1000;
/// Media a player gathers after running dry before it plays again.
pub const REBUFFER_MS: u64 = 500;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlayBuffer {
    started: bool,
    /// Run time up to which the buffered media plays.
    until_ms: u64,
    /// When the buffer ran dry, while it is dry.
    dry_since: Option<u64>,
    /// Media gathered since running dry.
    refill_ms: u64,
    stalls: u64,
    stalled_ms: u64,
}

impl PlayBuffer {
    pub fn started(&self) -> bool {
        self.started
    }
    pub fn stalls(&self) -> u64 {
        self.stalls
    }
    pub fn stalled_ms(&self) -> u64 {
        self.stalled_ms
    }

    /// `duration_ms` of media arrived at `now_ms`. Playback starts with the first media.
    pub fn add(&mut self, now_ms: u64, duration_ms: u64) {
        if !self.started {
            self.started = true;
            self.until_ms = now_ms.saturating_add(duration_ms);
            return;
        }
        if self.dry_since.is_none() && self.until_ms < now_ms {
            self.dry_since = Some(self.until_ms);
            self.refill_ms = 0;
        }
        match self.dry_since {
            None => self.until_ms = self.until_ms.saturating_add(duration_ms),
            Some(since) => {
                self.refill_ms = self.refill_ms.saturating_add(duration_ms);
                if self.refill_ms >= REBUFFER_MS {
                    let refill = self.refill_ms;
                    self.end_dry_spell(since, now_ms);
                    self.until_ms = now_ms.saturating_add(refill);
                }
            }
        }
    }

    /// Is the player without media to play for over [`STALL_MS`] at `now_ms`?
    pub fn stalled_at(&self, now_ms: u64) -> bool {
        self.started
            && now_ms
                > self
                    .dry_since
                    .unwrap_or(self.until_ms)
                    .saturating_add(STALL_MS)
    }

    /// The run ends at `now_ms`: a dry spell still going on counts if it is long enough.
    /// Calling it again adds nothing.
    pub fn finish(&mut self, now_ms: u64) {
        if !self.started {
            return;
        }
        let since = self.dry_since.unwrap_or(self.until_ms);
        if now_ms > since {
            self.end_dry_spell(since, now_ms);
            self.until_ms = now_ms;
        }
    }

    fn end_dry_spell(&mut self, since: u64, now_ms: u64) {
        let gap = now_ms.saturating_sub(since);
        if gap > STALL_MS {
            self.stalls += 1;
            self.stalled_ms += gap;
        }
        self.dry_since = None;
        self.refill_ms = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_time_30fps_delivery_with_a_gop_burst_never_stalls() {
        let mut p = PlayBuffer::default();
        // Join: one second of cached GOP at once, then a frame every 33 ms.
        p.add(0, 0);
        p.add(1, 1000);
        for i in 1..300u64 {
            p.add(1 + i * 33, 33);
            assert!(!p.stalled_at(1 + i * 33), "frame {i}");
        }
        p.finish(10_000);
        assert_eq!((p.stalls(), p.stalled_ms()), (0, 0));
    }

    #[test]
    fn steady_but_slower_than_real_time_reader_stalls_repeatedly() {
        // Data keeps coming every 100 ms, but only 20 ms of media each time (0.2x real time).
        let mut p = PlayBuffer::default();
        let mut stalled_seen = false;
        for i in 0..100u64 {
            p.add(i * 100, 20);
            stalled_seen |= p.stalled_at(i * 100);
        }
        // Dry at 20 ms; each refill of 500 ms of media takes 25 arrivals (2.5 s).
        assert!(stalled_seen);
        assert!(p.stalls() >= 3, "{p:?}");
    }

    #[test]
    fn two_second_hls_segments_cover_the_gap_until_the_next_one() {
        let mut p = PlayBuffer::default();
        p.add(0, 2000);
        p.add(10, 2000); // buffered until 4.0 s
        p.add(4500, 2000); // dry 0.5 s: not a stall
        assert_eq!(p.stalls(), 0);
        // Buffered until 6.5 s; next segment at 8 s: a 1.5 s stall.
        p.add(8000, 2000);
        assert_eq!((p.stalls(), p.stalled_ms()), (1, 1500));
    }

    #[test]
    fn ongoing_dry_spell_counts_once_at_finish() {
        let mut p = PlayBuffer::default();
        p.finish(5000);
        assert_eq!(p.stalls(), 0, "never started: no stall");
        p.add(5000, 0);
        assert!(!p.stalled_at(6000));
        assert!(p.stalled_at(6001));
        p.finish(7000);
        p.finish(7000);
        assert_eq!((p.stalls(), p.stalled_ms()), (1, 2000));
    }
}
