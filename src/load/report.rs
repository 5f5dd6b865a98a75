//! What a load run measured: one [`Sample`] per second, totals, and the gateway's cost
//! ratios; printed as a table and written as JSON. Pure arithmetic, no IO.

use serde::Serialize;

use super::ll_report::LlHlsReport;
use super::serving_report::{HlsRequests, ProcessCost};

/// One second of the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_s: u64,
    pub phase: &'static str,
    pub publishers_connected: usize,
    pub flv_viewers_connected: usize,
    pub hls_viewers_connected: usize,
    pub ll_hls_viewers_connected: usize,
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
    pub p99_ms: u64,
    pub max_ms: u64,
}

impl Spread {
    /// Nearest-rank percentiles (p50, p95, p99) and the maximum.
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
            p99_ms: rank(99),
            max_ms: v[v.len() - 1],
        }
    }
}

/// Distribution of end-to-end latencies measured in µs, shown in ms with µs resolution
/// (on loopback most are well under a millisecond).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct LatencySpread {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySpread {
    /// Nearest-rank percentiles of `values_us` (as [`Spread::of`]), in milliseconds.
    pub fn of_us(values_us: &[u64]) -> LatencySpread {
        let s = Spread::of(values_us);
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySpread {
            count: s.count,
            p50_ms: ms(s.p50_ms),
            p95_ms: ms(s.p95_ms),
            p99_ms: ms(s.p99_ms),
            max_ms: ms(s.max_ms),
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

/// Latency the gateway reports it added (`/api/streams` at the end of the steady window,
/// counted since each publish began) over the run's streams.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct GatewayLatency {
    /// Video: last RTP packet of a frame in -> its FLV tag queued for viewers.
    pub video_flv: AddedLatency,
    /// Video keyframe that closed an HLS segment: last RTP packet in -> segment published.
    pub video_hls: AddedLatency,
    /// Opus packet in -> the AAC it completed queued for FLV viewers.
    pub audio_flv: AddedLatency,
}

/// One of [`GatewayLatency`]'s measurements, combined over streams: the worst stream's
/// percentiles (each the gateway's bucket edge, at most 12.5 % above the true value).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct AddedLatency {
    pub streams: usize,
    /// Frames (or segments) measured, all streams together.
    pub count: u64,
    pub worst_p50_us: u64,
    pub worst_p99_us: u64,
    pub max_us: u64,
}

impl AddedLatency {
    /// Folds in one stream's `{count, p50_us, p99_us, max_us}`.
    pub fn add_stream(&mut self, count: u64, p50_us: u64, p99_us: u64, max_us: u64) {
        if count == 0 {
            return;
        }
        self.streams += 1;
        self.count += count;
        self.worst_p50_us = self.worst_p50_us.max(p50_us);
        self.worst_p99_us = self.worst_p99_us.max(p99_us);
        self.max_us = self.max_us.max(max_us);
    }
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct LoadReport {
    pub publishers: usize,
    pub flv_viewers: usize,
    pub hls_viewers: usize,
    pub ll_hls_viewers: usize,
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
    /// Length of the steady window (everyone on), seconds.
    pub steady_secs: f64,
    /// Delivery rate to all viewers over the steady part, Mb/s.
    pub steady_mbps: f64,
    pub flv_first_keyframe: Spread,
    pub hls_first_segment: Spread,
    /// Publisher wall clock (latency SEI, stamped as each access unit is sent) to FLV viewer,
    /// live frames only (not the cached GOP a viewer gets on joining); empty unless the
    /// publisher stamps.
    pub flv_end_to_end_latency: LatencySpread,
    /// Same for HLS: every stamped frame of a segment, at the time the segment was fetched,
    /// for segments published while the viewer was polling (not the ones it started with).
    pub hls_end_to_end_latency: LatencySpread,
    /// What the gateway says it added, from `/api/streams`; `None` if it did not say.
    pub gateway_latency: Option<GatewayLatency>,
    /// Per-viewer byte counts, lowest first (to show that every viewer got data).
    pub min_viewer_bytes: u64,
    pub gateway: Option<GatewayCost>,
    /// What the LL-HLS viewers measured; `None` without any.
    pub ll_hls: Option<LlHlsReport>,
    /// HLS requests the gateway answered in the steady window (`/api/streams`).
    pub gateway_hls_requests: Option<HlsRequests>,
    /// Other processes sampled over the steady window (`--also-pid`).
    pub other_processes: Vec<ProcessCost>,
    /// The load tool itself over the steady window (it shares the machine with the gateway).
    pub load_tool: Option<ProcessCost>,
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
    /// Everything lost: failures, missing media, viewers that never played, LL-HLS problems.
    pub fn lost_total(&self) -> u64 {
        self.failures as u64
            + self.lost_media
            + self.viewers_without_media as u64
            + self.ll_hls_problems()
    }

    fn ll_hls_problems(&self) -> u64 {
        self.ll_hls.as_ref().map_or(0, LlHlsReport::problems)
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
                "{} lost: {} failures, {} media gaps, {} viewers without media, {} LL-HLS problems (limit {})",
                self.lost_total(),
                self.failures,
                self.lost_media,
                self.viewers_without_media,
                self.ll_hls_problems(),
                limits.max_lost
            ));
        }
        out
    }

    /// The per-second table and the summary, for a terminal.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str(
            "   t phase     pubs   flv   hls    ll    Mb/s stalled  new  cpu ms   RSS MiB\n",
        );
        for x in &self.samples {
            s.push_str(&format!(
                "{:>4} {:<8} {:>5} {:>5} {:>5} {:>5} {:>7.1} {:>7} {:>4} {:>7} {:>9}\n",
                x.t_s,
                x.phase,
                x.publishers_connected,
                x.flv_viewers_connected,
                x.hls_viewers_connected,
                x.ll_hls_viewers_connected,
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
        if let Some(ll) = &self.ll_hls {
            s.push_str(&ll.table_lines());
        }
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
        ] {
            if sp.count > 0 {
                s.push_str(&format!(
                    "{what}: p50 {} ms, p95 {} ms, p99 {} ms, max {} ms (n={})\n",
                    sp.p50_ms, sp.p95_ms, sp.p99_ms, sp.max_ms, sp.count
                ));
            }
        }
        for (what, sp) in [
            ("FLV end-to-end latency", self.flv_end_to_end_latency),
            ("HLS end-to-end latency", self.hls_end_to_end_latency),
        ] {
            if sp.count > 0 {
                s.push_str(&format!(
                    "{what}: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={})\n",
                    sp.p50_ms, sp.p95_ms, sp.p99_ms, sp.max_ms, sp.count
                ));
            }
        }
        if let Some(g) = &self.gateway_latency {
            for (what, l) in [
                ("video RTP in -> FLV tag", g.video_flv),
                ("keyframe RTP in -> HLS segment", g.video_hls),
                ("Opus RTP in -> AAC FLV tag", g.audio_flv),
            ] {
                if l.count > 0 {
                    s.push_str(&format!(
                        "gateway-added, {what}: worst stream p50 {:.2} ms, p99 {:.2} ms; max {:.2} ms (n={}, {} streams)\n",
                        l.worst_p50_us as f64 / 1000.0,
                        l.worst_p99_us as f64 / 1000.0,
                        l.max_us as f64 / 1000.0,
                        l.count,
                        l.streams
                    ));
                }
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
        if let Some(r) = &self.gateway_hls_requests {
            s.push_str(&r.line(self.steady_secs));
        }
        if let Some(p) = &self.load_tool {
            s.push_str(&p.line("load tool"));
        }
        for p in &self.other_processes {
            s.push_str(&p.line("process"));
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
                p99_ms: 20,
                max_ms: 20
            }
        );
        assert_eq!(Spread::of(&[7]).p95_ms, 7);
        assert_eq!(Spread::of(&[]), Spread::default());
    }

    #[test]
    fn end_to_end_latency_is_kept_in_microseconds_and_shown_in_milliseconds() {
        let v: Vec<u64> = (1..=100).map(|i| i * 10).collect();
        let sp = LatencySpread::of_us(&v);
        assert_eq!(
            sp,
            LatencySpread {
                count: 100,
                p50_ms: 0.5,
                p95_ms: 0.95,
                p99_ms: 0.99,
                max_ms: 1.0
            }
        );
        let report = LoadReport {
            flv_end_to_end_latency: sp,
            ..LoadReport::default()
        };
        assert!(
            report.table().contains(
                "FLV end-to-end latency: p50 0.50 ms, p95 0.95 ms, p99 0.99 ms, max 1.00 ms (n=100)"
            ),
            "{}",
            report.table()
        );
    }

    #[test]
    fn p99_is_the_nearest_rank_of_a_larger_set() {
        let v: Vec<u64> = (1..=200).rev().collect();
        let s = Spread::of(&v);
        assert_eq!(
            (s.count, s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms),
            (200, 100, 190, 198, 200)
        );
    }

    #[test]
    fn gateway_latency_keeps_the_worst_stream_and_skips_streams_without_frames() {
        let mut l = AddedLatency::default();
        l.add_stream(900, 120, 800, 4000);
        l.add_stream(0, 0, 0, 0);
        l.add_stream(100, 300, 500, 9000);
        assert_eq!(
            l,
            AddedLatency {
                streams: 2,
                count: 1000,
                worst_p50_us: 300,
                worst_p99_us: 800,
                max_us: 9000
            }
        );
        let report = LoadReport {
            gateway_latency: Some(GatewayLatency {
                video_flv: l,
                ..GatewayLatency::default()
            }),
            ..LoadReport::default()
        };
        let table = report.table();
        assert!(
            table.contains(
                "gateway-added, video RTP in -> FLV tag: worst stream p50 0.30 ms, p99 0.80 ms; \
                 max 9.00 ms (n=1000, 2 streams)"
            ),
            "{table}"
        );
        assert!(!table.contains("HLS segment"), "{table}");
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
                ll_hls_viewers_connected: 6,
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
            table.contains(
                "   3 steady       2     4     1     6     8.0       0    0      37      20.0"
            ),
            "{table}"
        );
        assert!(table.contains("20.00 CPU-ms per stream-second"), "{table}");
    }
}
