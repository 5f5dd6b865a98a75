//! What a load run measured: one [`Sample`] per second, totals, and the gateway's cost
//! ratios; printed as a table and written as JSON. Pure arithmetic, no IO.

use serde::Serialize;

/// One second of the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_s: u64,
    pub phase: &'static str,
    pub publishers_connected: usize,
    pub flv_viewers_connected: usize,
    pub hls_viewers_connected: usize,
    /// Bytes all viewers received during this second.
    pub bytes: u64,
    /// Viewers without media for over 1 s at the sampling instant.
    pub viewers_stalled: usize,
    /// Viewers that got their first keyframe during this second.
    pub new_viewers_playing: usize,
    /// Gateway CPU time used during this second (ms; 1000 = one core busy).
    pub gateway_cpu_ms: Option<u64>,
    pub gateway_rss_kib: Option<u64>,
}

/// Distribution of a set of millisecond values.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct Spread {
    pub count: usize,
    pub p50_ms: u64,
    pub p95_ms: u64,
    pub max_ms: u64,
}

impl Spread {
    /// Nearest-rank percentiles (p50, p95) and the maximum.
    pub fn of(values: &[u64]) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        let mut v = values.to_vec();
        v.sort_unstable();
        let rank = |p: usize| v[((p * v.len()).div_ceil(100)).clamp(1, v.len()) - 1];
        Spread {
            count: v.len(),
            p50_ms: rank(50),
            p95_ms: rank(95),
            max_ms: v[v.len() - 1],
        }
    }
}

/// Gateway cost over the steady part of the run (all publishers and viewers on).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct GatewayCost {
    pub pid: u32,
    pub steady_secs: f64,
    /// CPU ms per wall second (1000 = one core).
    pub cpu_ms_per_s: f64,
    /// CPU ms per second of media per connected publisher (issue 5 goal: <= 5).
    pub cpu_ms_per_stream_second: Option<f64>,
    /// CPU seconds per Gbit delivered to viewers = cores busy per Gb/s.
    pub cores_per_gbps: Option<f64>,
    pub rss_start_kib: u64,
    pub rss_publishers_kib: u64,
    pub rss_viewers_kib: u64,
    pub rss_end_kib: u64,
    pub rss_per_stream_kib: Option<f64>,
    pub rss_per_viewer_kib: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct LoadReport {
    pub publishers: usize,
    pub flv_viewers: usize,
    pub hls_viewers: usize,
    pub publishers_connected: usize,
    pub flv_viewers_playing: usize,
    pub hls_viewers_playing: usize,
    /// Publishers and viewers that failed (could not start, or dropped during the run).
    pub failures: usize,
    /// The first few failure reasons.
    pub failure_reasons: Vec<String>,
    pub stalls: u64,
    pub stalled_ms: u64,
    /// HLS segments never fetched plus FLV video timestamp jumps over 1 s.
    pub lost_media: u64,
    /// Viewers that ended the run with no byte of media.
    pub viewers_without_media: usize,
    pub bytes_total: u64,
    /// Delivery rate to all viewers over the steady part, Mb/s.
    pub steady_mbps: f64,
    pub flv_first_keyframe: Spread,
    pub hls_first_segment: Spread,
    /// Publisher wall clock (latency SEI) to FLV viewer; empty unless the publisher stamps.
    pub flv_end_to_end_latency: Spread,
    /// Same for HLS: each stamped frame of a segment, at the time the segment was fetched.
    pub hls_end_to_end_latency: Spread,
    /// Per-viewer byte counts, lowest first (to show that every viewer got data).
    pub min_viewer_bytes: u64,
    pub gateway: Option<GatewayCost>,
    pub samples: Vec<Sample>,
}

/// When a run counts as failed (the default tolerates nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub max_stalls: u64,
    /// Lost media plus failed publishers/viewers plus viewers without media.
    pub max_lost: u64,
}

impl LoadReport {
    /// Everything lost: failures, missing media, viewers that never played.
    pub fn lost_total(&self) -> u64 {
        self.failures as u64 + self.lost_media + self.viewers_without_media as u64
    }

    /// Why the run breaks `limits` (empty when it does not).
    pub fn violations(&self, limits: Limits) -> Vec<String> {
        let mut out = Vec::new();
        if self.stalls > limits.max_stalls {
            out.push(format!(
                "{} stalls (limit {})",
                self.stalls, limits.max_stalls
            ));
        }
        if self.lost_total() > limits.max_lost {
            out.push(format!(
                "{} lost: {} failures, {} media gaps, {} viewers without media (limit {})",
                self.lost_total(),
                self.failures,
                self.lost_media,
                self.viewers_without_media,
                limits.max_lost
            ));
        }
        out
    }

    /// The per-second table and the summary, for a terminal.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str("   t phase     pubs   flv   hls    Mb/s stalled  new  cpu ms   RSS MiB\n");
        for x in &self.samples {
            s.push_str(&format!(
                "{:>4} {:<8} {:>5} {:>5} {:>5} {:>7.1} {:>7} {:>4} {:>7} {:>9}\n",
                x.t_s,
                x.phase,
                x.publishers_connected,
                x.flv_viewers_connected,
                x.hls_viewers_connected,
                x.bytes as f64 * 8.0 / 1e6,
                x.viewers_stalled,
                x.new_viewers_playing,
                x.gateway_cpu_ms.map_or("-".into(), |v| v.to_string()),
                x.gateway_rss_kib
                    .map_or("-".into(), |v| format!("{:.1}", v as f64 / 1024.0)),
            ));
        }
        s.push_str(&format!(
            "\npublishers {}/{} connected; FLV viewers {}/{} and HLS viewers {}/{} playing\n",
            self.publishers_connected,
            self.publishers,
            self.flv_viewers_playing,
            self.flv_viewers,
            self.hls_viewers_playing,
            self.hls_viewers
        ));
        s.push_str(&format!(
            "delivered {:.1} MB, {:.1} Mb/s steady; least-fed viewer {} B\n",
            self.bytes_total as f64 / 1e6,
            self.steady_mbps,
            self.min_viewer_bytes
        ));
        s.push_str(&format!(
            "stalls {} ({} ms); lost {} (failures {}, media gaps {}, viewers without media {})\n",
            self.stalls,
            self.stalled_ms,
            self.lost_total(),
            self.failures,
            self.lost_media,
            self.viewers_without_media
        ));
        for (what, sp) in [
            ("FLV first keyframe", self.flv_first_keyframe),
            ("HLS first segment", self.hls_first_segment),
            ("FLV end-to-end latency", self.flv_end_to_end_latency),
            ("HLS end-to-end latency", self.hls_end_to_end_latency),
        ] {
            if sp.count > 0 {
                s.push_str(&format!(
                    "{what}: p50 {} ms, p95 {} ms, max {} ms (n={})\n",
                    sp.p50_ms, sp.p95_ms, sp.max_ms, sp.count
                ));
            }
        }
        if let Some(g) = &self.gateway {
            s.push_str(&format!(
                "gateway pid {}: {:.1} CPU-ms/s over {:.1} s steady",
                g.pid, g.cpu_ms_per_s, g.steady_secs
            ));
            if let Some(v) = g.cpu_ms_per_stream_second {
                s.push_str(&format!(", {v:.2} CPU-ms per stream-second"));
            }
            if let Some(v) = g.cores_per_gbps {
                s.push_str(&format!(", {v:.3} cores per Gb/s"));
            }
            s.push_str(&format!(
                "\n  RSS MiB: start {:.1}, with publishers {:.1}, with viewers {:.1}, end {:.1}",
                g.rss_start_kib as f64 / 1024.0,
                g.rss_publishers_kib as f64 / 1024.0,
                g.rss_viewers_kib as f64 / 1024.0,
                g.rss_end_kib as f64 / 1024.0
            ));
            if let Some(v) = g.rss_per_stream_kib {
                s.push_str(&format!("; {v:.0} KiB per stream"));
            }
            if let Some(v) = g.rss_per_viewer_kib {
                s.push_str(&format!("; {v:.1} KiB per viewer"));
            }
            s.push('\n');
        }
        for r in &self.failure_reasons {
            s.push_str(&format!("failure: {r}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=20).collect();
        assert_eq!(
            Spread::of(&v),
            Spread {
                count: 20,
                p50_ms: 10,
                p95_ms: 19,
                max_ms: 20
            }
        );
        assert_eq!(Spread::of(&[7]).p95_ms, 7);
        assert_eq!(Spread::of(&[]), Spread::default());
    }

    #[test]
    fn limits_count_failures_gaps_and_silent_viewers_as_lost() {
        let report = LoadReport {
            failures: 1,
            lost_media: 2,
            viewers_without_media: 1,
            stalls: 3,
            ..LoadReport::default()
        };
        assert_eq!(report.lost_total(), 4);
        assert_eq!(report.violations(Limits::default()).len(), 2);
        let lenient = Limits {
            max_stalls: 3,
            max_lost: 4,
        };
        assert!(report.violations(lenient).is_empty());
    }

    #[test]
    fn table_shows_each_second_and_the_cost_ratios() {
        let report = LoadReport {
            publishers: 2,
            publishers_connected: 2,
            samples: vec![Sample {
                t_s: 3,
                phase: "steady",
                publishers_connected: 2,
                flv_viewers_connected: 4,
                hls_viewers_connected: 1,
                bytes: 1_000_000,
                viewers_stalled: 0,
                new_viewers_playing: 0,
                gateway_cpu_ms: Some(37),
                gateway_rss_kib: Some(20480),
            }],
            gateway: Some(GatewayCost {
                pid: 9,
                steady_secs: 5.0,
                cpu_ms_per_s: 40.0,
                cpu_ms_per_stream_second: Some(20.0),
                ..GatewayCost::default()
            }),
            ..LoadReport::default()
        };
        let table = report.table();
        assert!(
            table
                .contains("   3 steady       2     4     1     8.0       0    0      37      20.0"),
            "{table}"
        );
        assert!(table.contains("20.00 CPU-ms per stream-second"), "{table}");
    }
}
