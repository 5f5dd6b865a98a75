//! What all Low-Latency HLS viewers of a run count together ([`LlHlsStats`], shared): the
//! answer-time spreads (one [`AnswerSpread`] for playlist answers, one for part bytes),
//! blocking-reload durations, glass-to-part latencies and the problem counters. Timing
//! samples are taken only while the run is in its measured (steady) window.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::ll_report::LlHlsReport;
use super::ll_spread::{AnswerSpread, MAX_SAMPLES};
use super::report::{LatencySpread, Spread};

/// The counters, by what they count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    BlockingRequest,
    PartFetched,
    HintedPart,
    PlaylistNon200,
    Timeout503,
    RequestError,
    ParseFailure,
    StrictViolation,
    StaleAnswer,
    PartError,
    PartsMissed,
}

const COUNTERS: usize = 11;

/// Shared by every LL-HLS viewer of a run.
#[derive(Debug, Default)]
pub struct LlHlsStats {
    measuring: AtomicBool,
    answers: Mutex<AnswerSpread>,
    arrivals: Mutex<AnswerSpread>,
    blocking_us: Mutex<Vec<u64>>,
    glass_us: Mutex<Vec<u64>>,
    counters: [AtomicU64; COUNTERS],
    first_problem: Mutex<Option<String>>,
}

impl LlHlsStats {
    /// Starts (true) or ends (false) the measured window.
    pub fn set_measuring(&self, on: bool) {
        self.measuring.store(on, Ordering::Relaxed);
    }
    pub fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }

    pub fn count(&self, c: Counter) {
        self.counters[c as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self, c: Counter) -> u64 {
        self.counters[c as usize].load(Ordering::Relaxed)
    }

    /// Counts a problem and keeps the first one's description.
    pub fn problem(&self, c: Counter, why: impl FnOnce() -> String) {
        self.count(c);
        if let Ok(mut first) = self.first_problem.lock() {
            if first.is_none() {
                *first = Some(why());
            }
        }
    }

    /// A viewer got, at run time `at_us`, a playlist that first listed part `uri`.
    pub fn listed(&self, uri: &str, at_us: u64) {
        let counted = self.measuring();
        if let Ok(mut a) = self.answers.lock() {
            a.record(uri, at_us, counted);
        }
    }

    /// A viewer had the bytes of part `uri` at run time `at_us`.
    pub fn arrived(&self, uri: &str, at_us: u64) {
        let counted = self.measuring();
        if let Ok(mut a) = self.arrivals.lock() {
            a.record(uri, at_us, counted);
        }
    }

    /// A blocking reload took `us` from request to answer read.
    pub fn blocking_took(&self, us: u64) {
        self.sample(&self.blocking_us, us);
    }

    /// A part's newest frame was sent by the publisher `us` before the viewer had the part.
    pub fn glass_to_part(&self, us: u64) {
        self.sample(&self.glass_us, us);
    }

    fn sample(&self, into: &Mutex<Vec<u64>>, us: u64) {
        if !self.measuring() {
            return;
        }
        if let Ok(mut v) = into.lock() {
            if v.len() < MAX_SAMPLES {
                v.push(us);
            }
        }
    }

    /// The results, with the viewers' own figures (how many, playing, time to first part).
    /// Settles the spreads: call once, at the end.
    pub fn report(&self, viewers: usize, playing: usize, first_part: Spread) -> LlHlsReport {
        let finish = |m: &Mutex<AnswerSpread>| {
            m.lock()
                .map(|mut a| (a.finish(), a.parts()))
                .unwrap_or_default()
        };
        let spread = |m: &Mutex<Vec<u64>>| {
            m.lock()
                .map(|v| LatencySpread::of_us(&v))
                .unwrap_or_default()
        };
        let (answers, parts_measured) = finish(&self.answers);
        let (arrivals, _) = finish(&self.arrivals);
        LlHlsReport {
            viewers,
            playing,
            first_part,
            blocking_requests: self.get(Counter::BlockingRequest),
            parts_fetched: self.get(Counter::PartFetched),
            hinted_parts: self.get(Counter::HintedPart),
            parts_measured,
            answer_spread: LatencySpread::of_us(&answers),
            part_spread: LatencySpread::of_us(&arrivals),
            blocking_duration: spread(&self.blocking_us),
            glass_to_part: spread(&self.glass_us),
            playlist_non_200: self.get(Counter::PlaylistNon200),
            timeouts_503: self.get(Counter::Timeout503),
            request_errors: self.get(Counter::RequestError),
            parse_failures: self.get(Counter::ParseFailure),
            strict_violations: self.get(Counter::StrictViolation),
            stale_answers: self.get(Counter::StaleAnswer),
            part_errors: self.get(Counter::PartError),
            parts_missed: self.get(Counter::PartsMissed),
            first_problem: self.first_problem.lock().ok().and_then(|p| p.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_count_only_in_the_window_and_problems_keep_the_first_reason() {
        let s = LlHlsStats::default();
        s.blocking_took(5);
        s.listed("a", 10);
        s.set_measuring(true);
        s.listed("a", 30);
        s.listed("b", 100);
        s.listed("b", 400);
        s.arrived("b", 500);
        s.blocking_took(200_000);
        s.glass_to_part(80_000);
        s.set_measuring(false);
        s.blocking_took(7);
        s.count(Counter::BlockingRequest);
        s.problem(Counter::Timeout503, || "first".into());
        s.problem(Counter::PlaylistNon200, || "second".into());
        let r = s.report(3, 2, Spread::default());
        assert_eq!((r.viewers, r.playing, r.blocking_requests), (3, 2, 1));
        assert_eq!(r.parts_measured, 1, "part a began before the window");
        assert_eq!(r.answer_spread.count, 2);
        assert_eq!(r.answer_spread.max_ms, 0.3);
        assert_eq!(r.part_spread.count, 1);
        assert_eq!(r.blocking_duration.count, 1);
        assert_eq!(r.blocking_duration.p50_ms, 200.0);
        assert_eq!(r.glass_to_part.p50_ms, 80.0);
        assert_eq!((r.timeouts_503, r.playlist_non_200), (1, 1));
        assert_eq!(r.first_problem.as_deref(), Some("first"));
    }
}
