//! When to cut HLS segments: a segment starts only at a random access point (a video keyframe,
//! or any audio frame in an audio-only stream) and is cut at the first one at or after the
//! cut point (Apple HLS authoring: every segment starts with an IDR).
//!
//! For video the cut point sits a little before the target ([`KEYFRAME_LEAD`]), and that is
//! also when the ingest is asked to request a keyframe: the encoder's answer lands just after
//! it, so every requested keyframe cuts a segment and segments end close to the target.

/// How far before the target a video segment may be cut, and its keyframe requested: about an
/// encoder's answer time to a PLI (browsers: 50-300 ms). 150 ms in 90 kHz ticks.
pub const KEYFRAME_LEAD: i64 = 13_500;

/// What to do with a frame, decided before it is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No segment is open and this frame cannot start one (video before the first keyframe).
    Drop,
    /// This frame opens the first segment (or the first after `reset`).
    Start,
    /// Add the frame to the open segment.
    Append,
    /// Close the open segment; this frame starts the next one.
    Cut,
}

/// Cut policy over the 90 kHz media clock. It only sees timestamps and flags, never payloads.
#[derive(Clone, Debug)]
pub struct Segmenter {
    /// Target segment duration in 90 kHz ticks.
    target: i64,
    /// Video keyframes are the cut points; otherwise audio frames are.
    video_led: bool,
    /// Decode time of the open segment's first frame.
    start: Option<i64>,
    /// Decode time of the latest frame of the leading track.
    last: i64,
    /// Cut at the next cut point regardless of the target (codec parameters changed).
    cut_requested: bool,
}

impl Segmenter {
    /// `target` is in 90 kHz ticks; `video_led` says whether video keyframes drive the cuts.
    pub fn new(target: i64, video_led: bool) -> Self {
        Self {
            target: target.max(1),
            video_led,
            start: None,
            last: 0,
            cut_requested: false,
        }
    }

    /// True when video keyframes drive the cuts.
    pub fn video_led(&self) -> bool {
        self.video_led
    }

    /// True while a segment is open.
    pub fn is_open(&self) -> bool {
        self.start.is_some()
    }

    /// Decides where a frame goes and advances the state accordingly.
    pub fn decide(&mut self, is_video: bool, keyframe: bool, dts: i64) -> Decision {
        let leading = is_video == self.video_led;
        if !leading && !self.video_led {
            // Video frames in an audio-only stream have no track to go to.
            return Decision::Drop;
        }
        let cut_point = leading && (keyframe || !self.video_led);
        let Some(start) = self.start else {
            if !cut_point {
                return Decision::Drop;
            }
            self.start = Some(dts);
            self.last = dts;
            self.cut_requested = false;
            return Decision::Start;
        };
        if !leading {
            return Decision::Append;
        }
        // A decode time before the segment start means the timeline restarted: cut there.
        let elapsed = dts.saturating_sub(start);
        if cut_point && (self.cut_requested || elapsed >= self.cut_after() || elapsed < 0) {
            self.start = Some(dts);
            self.last = dts;
            self.cut_requested = false;
            return Decision::Cut;
        }
        self.last = dts;
        Decision::Append
    }

    /// Content after which the next cut point cuts: the target for audio-only streams; for
    /// video, [`KEYFRAME_LEAD`] earlier (but never below three quarters of the target).
    fn cut_after(&self) -> i64 {
        if self.video_led {
            (self.target - KEYFRAME_LEAD).max(self.target - self.target / 4)
        } else {
            self.target
        }
    }

    /// Cut at the next cut point even if the target is not reached (e.g. new SPS/PPS).
    pub fn request_cut(&mut self) {
        self.cut_requested = true;
    }

    /// Forget the open segment (after the stream ended).
    pub fn reset(&mut self) {
        self.start = None;
        self.cut_requested = false;
    }

    /// True when the ingest should ask the sender for a keyframe (RTCP PLI) now: video-led and
    /// either no segment started yet, a cut is pending, or the open segment has reached its cut
    /// point without a keyframe having cut it. The keyframe that answers then cuts at once, so
    /// segments end close to the target instead of a whole encoder GOP later.
    pub fn wants_keyframe(&self) -> bool {
        if !self.video_led {
            return false;
        }
        match self.start {
            None => true,
            Some(start) => {
                self.cut_requested || self.last.saturating_sub(start) >= self.cut_after()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 90_000;

    /// Feeds video frames every `step` ticks; `keyframe(i)` says which are keyframes.
    fn run_video(
        seg: &mut Segmenter,
        n: i64,
        step: i64,
        keyframe: impl Fn(i64) -> bool,
    ) -> Vec<Decision> {
        (0..n)
            .map(|i| seg.decide(true, keyframe(i), i * step))
            .collect()
    }

    #[test]
    fn video_before_the_first_keyframe_is_dropped() {
        let mut seg = Segmenter::new(2 * SECOND, true);
        assert_eq!(seg.decide(true, false, 0), Decision::Drop);
        assert_eq!(
            seg.decide(false, true, 100),
            Decision::Drop,
            "audio waits for video"
        );
        assert_eq!(seg.decide(true, true, 3000), Decision::Start);
        assert_eq!(seg.decide(false, true, 3100), Decision::Append);
    }

    #[test]
    fn cuts_only_at_keyframes_at_or_after_the_target() {
        // 25 fps, keyframe every 25 frames (1 s), target 2 s: cuts at frames 50 and 100.
        let mut seg = Segmenter::new(2 * SECOND, true);
        let decisions = run_video(&mut seg, 120, 3600, |i| i % 25 == 0);
        let cuts: Vec<usize> = decisions
            .iter()
            .enumerate()
            .filter(|(_, d)| **d == Decision::Cut)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(decisions[0], Decision::Start);
        assert_eq!(cuts, [50, 100]);
    }

    #[test]
    fn keyframe_before_the_cut_point_does_not_cut() {
        let mut seg = Segmenter::new(2 * SECOND, true);
        let cut_point = 2 * SECOND - KEYFRAME_LEAD;
        assert_eq!(seg.decide(true, true, 0), Decision::Start);
        assert_eq!(seg.decide(true, true, cut_point - 1), Decision::Append);
        assert_eq!(seg.decide(true, true, cut_point), Decision::Cut);
    }

    #[test]
    fn keyframe_answering_a_request_always_cuts() {
        // Whenever the segmenter asks for a keyframe, the next one cuts: none is wasted.
        for target in [SECOND / 2, SECOND, 2 * SECOND, 6 * SECOND] {
            let mut seg = Segmenter::new(target, true);
            seg.decide(true, true, 0);
            let mut t = 0;
            while !seg.wants_keyframe() {
                t += 3000;
                assert_eq!(seg.decide(true, false, t), Decision::Append);
            }
            assert!(t <= target, "asked after the target ({t} > {target})");
            assert_eq!(
                seg.decide(true, true, t + 3000),
                Decision::Cut,
                "target {target}"
            );
        }
    }

    #[test]
    fn audio_only_cuts_at_the_target_itself() {
        let mut seg = Segmenter::new(2 * SECOND, false);
        assert_eq!(seg.decide(false, true, 0), Decision::Start);
        assert_eq!(seg.decide(false, true, 2 * SECOND - 1920), Decision::Append);
        assert_eq!(seg.decide(false, true, 2 * SECOND), Decision::Cut);
    }

    #[test]
    fn long_gop_gives_one_long_segment_not_a_cut_mid_gop() {
        // Keyframes every 5 s with a 2 s target: no cut until the next keyframe.
        let mut seg = Segmenter::new(2 * SECOND, true);
        let decisions = run_video(&mut seg, 151, 3000, |i| i % 150 == 0);
        assert_eq!(decisions[0], Decision::Start);
        assert!(decisions[1..150].iter().all(|d| *d == Decision::Append));
        assert_eq!(decisions[150], Decision::Cut);
    }

    #[test]
    fn requested_cut_happens_at_the_next_keyframe_even_before_the_target() {
        let mut seg = Segmenter::new(2 * SECOND, true);
        seg.decide(true, true, 0);
        seg.decide(true, false, 3000);
        seg.request_cut();
        assert_eq!(seg.decide(true, false, 6000), Decision::Append);
        assert_eq!(seg.decide(true, true, 9000), Decision::Cut);
        assert_eq!(
            seg.decide(true, true, 12_000),
            Decision::Append,
            "request consumed"
        );
    }

    #[test]
    fn timestamps_going_backwards_cut_at_the_next_keyframe() {
        let mut seg = Segmenter::new(2 * SECOND, true);
        seg.decide(true, true, 10 * SECOND);
        assert_eq!(seg.decide(true, false, 5 * SECOND), Decision::Append);
        assert_eq!(seg.decide(true, true, 5 * SECOND + 3000), Decision::Cut);
    }

    #[test]
    fn audio_only_cuts_on_the_first_audio_frame_at_the_target() {
        // 20 ms Opus frames = 1800 ticks; 2 s target = 100 frames.
        let mut seg = Segmenter::new(2 * SECOND, false);
        let d: Vec<Decision> = (0..201)
            .map(|i| seg.decide(false, true, i * 1800))
            .collect();
        assert_eq!(d[0], Decision::Start);
        assert_eq!(d[100], Decision::Cut);
        assert_eq!(d[200], Decision::Cut);
        assert_eq!(d.iter().filter(|x| **x == Decision::Cut).count(), 2);
        assert_eq!(seg.decide(true, true, 0), Decision::Drop, "no video track");
        assert!(!seg.wants_keyframe());
    }

    #[test]
    fn wants_keyframe_from_the_cut_point_until_the_cut() {
        let mut seg = Segmenter::new(2 * SECOND, true);
        assert!(seg.wants_keyframe(), "waiting for the first keyframe");
        seg.decide(true, true, 0);
        assert!(!seg.wants_keyframe());
        seg.decide(true, false, 166_500 - 1);
        assert!(!seg.wants_keyframe());
        seg.decide(true, false, 166_500); // 1.85 s
        assert!(seg.wants_keyframe());
        seg.decide(true, false, 3 * SECOND); // keyframe late: still wanted
        assert!(seg.wants_keyframe());
        seg.decide(true, true, 3 * SECOND + 3000);
        assert!(!seg.wants_keyframe(), "the cut satisfied it");
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let mut seg = Segmenter::new(i64::MAX, true);
        assert_eq!(seg.decide(true, true, i64::MIN), Decision::Start);
        // The elapsed time saturates at i64::MAX, which reaches the target.
        assert_eq!(seg.decide(true, true, i64::MAX), Decision::Cut);
        let _ = seg.wants_keyframe();
        let mut seg = Segmenter::new(1, true);
        seg.decide(true, true, i64::MAX);
        assert_eq!(seg.decide(true, true, i64::MIN), Decision::Cut);
    }
}
