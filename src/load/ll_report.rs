//! What the Low-Latency HLS viewers of a run measured ([`LlHlsReport`]), and its lines in the
//! summary table. Pure data, no IO.

use serde::Serialize;

use super::report::{LatencySpread, Spread};

/// The LL-HLS viewers' results. Timings are over the steady window; counts over the run.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct LlHlsReport {
    pub viewers: usize,
    pub playing: usize,
    /// Request start to the first part fetched.
    pub first_part: Spread,
    pub blocking_requests: u64,
    pub parts_fetched: u64,
    /// Of `parts_fetched`, those asked for through EXT-X-PRELOAD-HINT before they existed.
    pub hinted_parts: u64,
    /// Parts behind `answer_spread` (each answered to several viewers).
    pub parts_measured: u64,
    /// For each part and viewer: when the viewer got the playlist that first listed the part,
    /// behind the earliest viewer to get one (the part's completion, as near as can be told).
    pub answer_spread: LatencySpread,
    /// The same for the part's bytes (the hinted request's answer, or the fetch after the
    /// listing).
    pub part_spread: LatencySpread,
    /// Blocking reload sent to its answer read, every one.
    pub blocking_duration: LatencySpread,
    /// Publisher's send time of a part's newest frame (its latency stamp) to the viewer
    /// having the part's bytes.
    pub glass_to_part: LatencySpread,
    /// Playlist answers other than 200 (503s included).
    pub playlist_non_200: u64,
    /// Of those, 503: the part did not come within three target durations.
    pub timeouts_503: u64,
    /// Requests that got no answer (connection errors, the client's timeout).
    pub request_errors: u64,
    /// Playlists the strict reader refused.
    pub parse_failures: u64,
    /// Playlists that read but break a rule across lines (`StrictPlaylist::violations`).
    pub strict_violations: u64,
    /// Blocking answers that listed no part newer than the one asked after.
    pub stale_answers: u64,
    /// Part or init requests answered other than 200.
    pub part_errors: u64,
    /// Answers in which the newest part a viewer knew had left the list: parts missed.
    pub parts_missed: u64,
    /// The first problem seen, in words.
    pub first_problem: Option<String>,
}

impl LlHlsReport {
    /// Everything that went wrong, counted as lost by the run's limits.
    pub fn problems(&self) -> u64 {
        self.playlist_non_200
            + self.request_errors
            + self.parse_failures
            + self.strict_violations
            + self.stale_answers
            + self.part_errors
            + self.parts_missed
    }

    /// The summary lines of the LL-HLS viewers.
    pub fn table_lines(&self) -> String {
        let mut s = format!(
            "LL-HLS viewers {}/{} playing: {} blocking reloads, {} parts ({} through the preload hint)\n",
            self.playing, self.viewers, self.blocking_requests, self.parts_fetched, self.hinted_parts
        );
        let spread = |what: &str, sp: &LatencySpread| {
            format!(
                "LL-HLS {what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={})\n",
                sp.p50_ms, sp.p99_ms, sp.max_ms, sp.count
            )
        };
        if self.answer_spread.count > 0 {
            s.push_str(&spread(
                &format!(
                    "playlist answer behind the earliest, {} parts",
                    self.parts_measured
                ),
                &self.answer_spread,
            ));
        }
        for (what, sp) in [
            ("part bytes behind the earliest", &self.part_spread),
            ("blocking reload duration", &self.blocking_duration),
            ("glass to part", &self.glass_to_part),
        ] {
            if sp.count > 0 {
                s.push_str(&spread(what, sp));
            }
        }
        s.push_str(&format!(
            "LL-HLS problems {}: playlist non-200 {} (503 {}), no answer {}, strict parse failures {}, \
             rule violations {}, stale answers {}, part errors {}, parts missed {}\n",
            self.problems(),
            self.playlist_non_200,
            self.timeouts_503,
            self.request_errors,
            self.parse_failures,
            self.strict_violations,
            self.stale_answers,
            self.part_errors,
            self.parts_missed
        ));
        if let Some(p) = &self.first_problem {
            s.push_str(&format!("LL-HLS first problem: {p}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_add_up_and_the_table_shows_the_spreads() {
        let r = LlHlsReport {
            viewers: 2,
            playing: 2,
            parts_measured: 40,
            answer_spread: LatencySpread::of_us(&[0, 0, 1_500, 3_000]),
            playlist_non_200: 1,
            timeouts_503: 1,
            parts_missed: 2,
            ..LlHlsReport::default()
        };
        assert_eq!(r.problems(), 3);
        let t = r.table_lines();
        assert!(
            t.contains(
                "LL-HLS playlist answer behind the earliest, 40 parts: p50 0.00 ms, p99 3.00 ms, \
                 max 3.00 ms (n=4)"
            ),
            "{t}"
        );
        assert!(t.contains("playlist non-200 1 (503 1)"), "{t}");
        assert!(!t.contains("glass to part"), "{t}");
    }
}
