//! When to cut Low-Latency HLS partial segments inside a segment. Only the leading track's
//! decode times count (video, or audio in an audio-only stream); a segment cut always ends a
//! part as well, so a segment is exactly its parts back to back.
//!
//! Parts are kept at or under the part target (RFC 8216bis §4.4.4.9: a part's duration must not
//! exceed PART-TARGET) and as close to it as whole frames allow: the part ends before the frame
//! whose own duration would carry it past the target. With 30 fps video and a 200 ms target
//! that is six frames (200 ms), within Apple's "at least 85 % of the target". The frame length
//! is estimated from the previous gap, and up to a millisecond of capture jitter is tolerated
//! so that a six-frame part is not cut at five because a frame came a tick or two late. A
//! frame later than that can carry a part past the target by its lateness; the part's
//! duration in the playlist is always the exact one.

/// Jitter tolerated on the expected end of a part: 1 ms in 90 kHz ticks.
const JITTER: i64 = 90;

/// Part cut policy over the 90 kHz clock of the leading track.
#[derive(Clone, Debug)]
pub struct PartCutter {
    /// Part target in 90 kHz ticks.
    target: i64,
    /// Decode time of the open part's first frame.
    start: Option<i64>,
    /// Decode time of the latest leading frame.
    last: i64,
    /// Latest positive gap between two leading frames: the length expected of the next one.
    step: i64,
}

impl PartCutter {
    /// `target` is the part target in 90 kHz ticks.
    pub fn new(target: i64) -> Self {
        Self {
            target: target.max(1),
            start: None,
            last: 0,
            // Until two frames were seen: one frame at 30 fps.
            step: 3000,
        }
    }

    /// A part starts with this leading frame (a segment opened or was cut here).
    pub fn start(&mut self, dts: i64) {
        self.observe(dts);
        self.start = Some(dts);
    }

    /// Forget the open part (the stream ended).
    pub fn reset(&mut self) {
        self.start = None;
    }

    /// For a leading frame that goes into the open segment: true when the open part must end
    /// before it (this frame then starts the next part).
    pub fn cut_before(&mut self, dts: i64) -> bool {
        self.observe(dts);
        let Some(start) = self.start else {
            return false;
        };
        let elapsed = dts.saturating_sub(start);
        // The clock went backwards: whatever follows belongs in a new part.
        let cut = if elapsed < 0 {
            true
        } else {
            elapsed > 0
                && elapsed.saturating_add(self.step)
                    > self.target.saturating_add(JITTER.min(self.step / 4))
        };
        if cut {
            self.start = Some(dts);
        }
        cut
    }

    fn observe(&mut self, dts: i64) {
        let gap = dts.saturating_sub(self.last);
        if gap > 0 && gap <= self.target {
            self.step = gap;
        }
        self.last = dts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 90;

    /// Feeds frames at the given decode times (the first starts a part) and returns the part
    /// durations, in ticks, of the parts closed.
    fn parts(cutter: &mut PartCutter, times: &[i64]) -> Vec<i64> {
        let mut out = Vec::new();
        let mut start = times[0];
        cutter.start(start);
        for &t in &times[1..] {
            if cutter.cut_before(t) {
                out.push(t - start);
                start = t;
            }
        }
        out
    }

    #[test]
    fn thirty_fps_gives_six_frame_parts_of_exactly_the_target() {
        let mut c = PartCutter::new(200 * MS);
        let times: Vec<i64> = (0..61).map(|i| i * 3000).collect();
        let p = parts(&mut c, &times);
        assert_eq!(p, vec![18_000; 10]);
    }

    #[test]
    fn parts_never_exceed_the_target_when_frames_come_regularly() {
        for fps in [15, 24, 25, 30, 50, 60] {
            let step = 90_000 / fps;
            let mut c = PartCutter::new(200 * MS);
            let times: Vec<i64> = (0..300).map(|i| i * step).collect();
            for d in parts(&mut c, &times) {
                assert!(d <= 200 * MS, "{fps} fps: part of {d} ticks");
                assert!(
                    d * 100 >= 200 * MS * 75,
                    "{fps} fps: part of {d} ticks too short"
                );
            }
        }
    }

    #[test]
    fn a_tick_of_jitter_does_not_shorten_a_part_by_a_frame() {
        let mut c = PartCutter::new(200 * MS);
        // Frame 5 comes 10 ticks late, so frame 6 is expected 10 ticks past the target.
        let times = [0, 3000, 6000, 9000, 12_000, 15_010, 18_000, 21_000];
        assert_eq!(parts(&mut c, &times), vec![18_000]);
        // Later than a millisecond: the part ends a frame earlier instead.
        let mut c = PartCutter::new(200 * MS);
        let times = [0, 3000, 6000, 9000, 12_000, 15_100, 18_000, 21_000];
        assert_eq!(parts(&mut c, &times), vec![15_100]);
    }

    #[test]
    fn a_frame_gap_longer_than_the_target_cuts_at_the_next_frame() {
        let mut c = PartCutter::new(200 * MS);
        let times = [0, 3000, 90_000, 93_000];
        assert_eq!(parts(&mut c, &times), vec![90_000]);
    }

    #[test]
    fn the_clock_going_back_starts_a_new_part() {
        let mut c = PartCutter::new(200 * MS);
        c.start(1_000_000);
        assert!(!c.cut_before(1_003_000));
        assert!(c.cut_before(500));
        assert!(!c.cut_before(3500));
    }

    #[test]
    fn nothing_is_cut_without_an_open_part_or_at_its_own_start() {
        let mut c = PartCutter::new(1);
        assert!(!c.cut_before(0));
        c.start(0);
        assert!(
            !c.cut_before(0),
            "a second frame at the same time stays in the part"
        );
        assert!(c.cut_before(1));
        c.reset();
        assert!(!c.cut_before(100));
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut c = PartCutter::new(i64::MAX);
        c.start(i64::MIN);
        assert!(!c.cut_before(i64::MAX));
        let mut c = PartCutter::new(200 * MS);
        c.start(i64::MAX - 10);
        assert!(c.cut_before(i64::MIN));
    }
}
