//! Totals and cost ratios of a finished run, from what every publisher and viewer counted and
//! the gateway's process samples.

use std::sync::Arc;

use super::config::LoadConfig;
use super::proc_stat::ProcSample;
use super::publisher::PublisherStats;
use super::report::{GatewayCost, LatencySpread, LoadReport, Sample, Spread};
use super::viewer::{ViewerKind, ViewerStats};

pub(super) fn summarize(
    cfg: &LoadConfig,
    publishers: &[Arc<PublisherStats>],
    viewers: &[Arc<ViewerStats>],
    samples: Vec<Sample>,
) -> LoadReport {
    let reasons: Vec<String> = publishers
        .iter()
        .filter_map(|p| p.failure())
        .chain(viewers.iter().filter_map(|v| v.failure()))
        .collect();
    let first = |kind| {
        let v: Vec<u64> = viewers
            .iter()
            .filter(|v| v.kind == kind)
            .filter_map(|v| v.first_keyframe_ms())
            .collect();
        Spread::of(&v)
    };
    let latency = |kind| {
        let v: Vec<u64> = viewers
            .iter()
            .filter(|v| v.kind == kind)
            .flat_map(|v| v.latencies_us())
            .collect();
        LatencySpread::of_us(&v)
    };
    LoadReport {
        publishers: cfg.publishers,
        flv_viewers: cfg.flv_viewers,
        hls_viewers: cfg.hls_viewers,
        ll_hls_viewers: cfg.ll_hls_viewers,
        failures: reasons.len(),
        failure_reasons: reasons.into_iter().take(10).collect(),
        stalls: viewers.iter().map(|v| v.stalls()).sum(),
        stalled_ms: viewers.iter().map(|v| v.stalled_ms()).sum(),
        lost_media: viewers.iter().map(|v| v.lost()).sum(),
        viewers_without_media: viewers
            .iter()
            .filter(|v| v.failure().is_none() && !v.had_media())
            .count(),
        bytes_total: viewers.iter().map(|v| v.bytes()).sum(),
        flv_first_keyframe: first(ViewerKind::Flv),
        hls_first_segment: first(ViewerKind::Hls),
        flv_end_to_end_latency: latency(ViewerKind::Flv),
        hls_end_to_end_latency: latency(ViewerKind::Hls),
        min_viewer_bytes: viewers.iter().map(|v| v.bytes()).min().unwrap_or(0),
        samples,
        ..LoadReport::default()
    }
}

/// Cost ratios from four process samples: start, publishers live, steady start, steady end.
pub(super) fn gateway_cost(
    pid: u32,
    [start, publishers_live, steady, end]: [ProcSample; 4],
    steady_ms: u64,
    steady_bytes: u64,
    publishers: usize,
    viewers: usize,
) -> GatewayCost {
    let steady_secs = steady_ms as f64 / 1000.0;
    let cpu_ms_per_s = end.cpu_ms.saturating_sub(steady.cpu_ms) as f64 / steady_secs;
    let gbps = steady_bytes as f64 * 8.0 / 1e9 / steady_secs;
    let per = |delta: u64, n: usize| (n > 0).then(|| delta as f64 / n as f64);
    GatewayCost {
        pid,
        steady_secs,
        cpu_ms_per_s,
        cpu_ms_per_stream_second: (publishers > 0).then(|| cpu_ms_per_s / publishers as f64),
        cores_per_gbps: (gbps > 0.0).then(|| cpu_ms_per_s / 1000.0 / gbps),
        rss_start_kib: start.rss_kib,
        rss_publishers_kib: publishers_live.rss_kib,
        rss_viewers_kib: steady.rss_kib,
        rss_end_kib: end.rss_kib,
        rss_per_stream_kib: per(
            publishers_live.rss_kib.saturating_sub(start.rss_kib),
            publishers,
        ),
        rss_per_viewer_kib: per(
            steady.rss_kib.saturating_sub(publishers_live.rss_kib),
            viewers,
        ),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_ratios_per_stream_per_gbps_and_per_viewer() {
        let s = |cpu_ms, rss_kib| ProcSample { cpu_ms, rss_kib };
        // 10 s steady, 2000 ms CPU used -> 200 ms/s; 10 Gbit in 10 s -> 1 Gb/s.
        let cost = gateway_cost(
            7,
            [
                s(0, 10_000),
                s(100, 12_000),
                s(500, 14_000),
                s(2500, 14_100),
            ],
            10_000,
            1_250_000_000,
            4,
            1000,
        );
        assert_eq!(cost.cpu_ms_per_s, 200.0);
        assert_eq!(cost.cpu_ms_per_stream_second, Some(50.0));
        assert_eq!(cost.cores_per_gbps, Some(0.2));
        assert_eq!(cost.rss_per_stream_kib, Some(500.0));
        assert_eq!(cost.rss_per_viewer_kib, Some(2.0));
    }
}
