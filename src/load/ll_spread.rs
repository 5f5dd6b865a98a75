//! The spread of answer times across viewers, per part (sans-IO; times are µs passed in).
//! Parts carry no completion stamp, so the earliest time any viewer learned of a part (got the
//! playlist that lists it, or got its bytes) stands for the moment it was complete at the
//! gateway; every viewer's answer for that part is then a sample of lateness behind it.
//! A part is settled (its samples taken, its entry dropped) once its first answer is
//! [`SETTLE_US`] old, so memory holds the few parts in flight plus one number per answer.

use std::collections::HashMap;

/// A part's answers are all in this long after the first one (viewers at the live edge get
/// it within a part duration or two; a stalled one would count as missed, not late).
pub const SETTLE_US: u64 = 10_000_000;
/// Lateness samples kept at most (1000 viewers × 5 parts/s for over 10 minutes).
pub const MAX_SAMPLES: usize = 4_000_000;
/// Answers between two sweeps for settled parts.
const SWEEP_EVERY: u32 = 512;

#[derive(Debug, Default)]
struct OpenPart {
    /// The viewer answers' times, in the order they were recorded.
    answers: Vec<u64>,
    /// Its first answer fell inside the measured window.
    counted: bool,
}

/// Answer times per part, folded into lateness samples.
#[derive(Debug, Default)]
pub struct AnswerSpread {
    open: HashMap<String, OpenPart>,
    lateness_us: Vec<u64>,
    parts: u64,
    dropped: u64,
    since_sweep: u32,
}

impl AnswerSpread {
    /// A viewer learned of part `key` at `at_us`. `counted`: the run is in its measured
    /// window (decided by the part's first answer, for all of its answers).
    pub fn record(&mut self, key: &str, at_us: u64, counted: bool) {
        match self.open.get_mut(key) {
            Some(part) => part.answers.push(at_us),
            None => {
                self.open.insert(
                    key.to_string(),
                    OpenPart {
                        answers: vec![at_us],
                        counted,
                    },
                );
            }
        }
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            self.settle(at_us);
        }
    }

    /// Settles the parts whose first answer is over [`SETTLE_US`] before `now_us`.
    pub fn settle(&mut self, now_us: u64) {
        let done: Vec<String> = self
            .open
            .iter()
            .filter(|(_, p)| {
                let first = p.answers.iter().copied().min().unwrap_or(now_us);
                now_us.saturating_sub(first) > SETTLE_US
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in done {
            if let Some(part) = self.open.remove(&key) {
                self.take(part);
            }
        }
    }

    /// Settles every part and returns the lateness samples (µs behind each part's earliest
    /// answer, the earliest included as 0).
    pub fn finish(&mut self) -> Vec<u64> {
        for (_, part) in std::mem::take(&mut self.open) {
            self.take(part);
        }
        std::mem::take(&mut self.lateness_us)
    }

    /// Parts measured so far (settled and counted).
    pub fn parts(&self) -> u64 {
        self.parts
    }

    /// Samples left out because [`MAX_SAMPLES`] were kept.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn take(&mut self, part: OpenPart) {
        if !part.counted {
            return;
        }
        self.parts += 1;
        let first = part.answers.iter().copied().min().unwrap_or(0);
        for at in part.answers {
            if self.lateness_us.len() < MAX_SAMPLES {
                self.lateness_us.push(at - first);
            } else {
                self.dropped += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_is_behind_the_earliest_answer_even_if_it_was_recorded_later() {
        let mut s = AnswerSpread::default();
        s.record("a", 1_000, true);
        s.record("a", 900, true);
        s.record("a", 4_000, true);
        s.record("b", 5_000, true);
        s.record("b", 5_250, true);
        let mut v = s.finish();
        v.sort_unstable();
        assert_eq!(v, vec![0, 0, 100, 250, 3_100]);
        assert_eq!(s.parts(), 2);
    }

    #[test]
    fn parts_first_answered_outside_the_window_are_left_out_whole() {
        let mut s = AnswerSpread::default();
        s.record("ramp", 0, false);
        s.record("ramp", 50, true);
        s.record("steady", 100, true);
        s.record("steady", 180, false);
        assert_eq!(s.finish(), vec![0, 80]);
        assert_eq!(s.parts(), 1);
    }

    #[test]
    fn old_parts_are_settled_and_forgotten() {
        let mut s = AnswerSpread::default();
        s.record("a", 0, true);
        s.record("a", 30, true);
        s.settle(SETTLE_US);
        assert_eq!(s.open.len(), 1, "not yet over the settle time");
        s.settle(SETTLE_US + 1);
        assert!(s.open.is_empty());
        assert_eq!(s.parts(), 1);
        // Sweeps also happen by themselves as answers come in.
        let mut s = AnswerSpread::default();
        s.record("old", 0, true);
        for i in 1..u64::from(SWEEP_EVERY) {
            s.record(&format!("p{i}"), SETTLE_US * 2 + i, true);
        }
        assert_eq!(s.open.len(), SWEEP_EVERY as usize - 1, "\"old\" settled");
        assert_eq!(s.finish().len(), SWEEP_EVERY as usize);
        assert_eq!(s.dropped(), 0);
    }
}
