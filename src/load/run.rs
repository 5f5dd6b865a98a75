//! The run itself: publishers ramped up, then viewers, a steady hold, and an orderly stop
//! (viewers first), with the sampler running throughout.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::config::{LoadConfig, LoadError};
use super::ll_stats::LlHlsStats;
use super::ll_viewer::run_ll_hls;
use super::proc_stat::{sample as sample_process, ProcSample};
use super::publisher::{run_publisher, PublisherSetup, PublisherStats};
use super::report::LoadReport;
use super::report::Spread;
use super::sampler::{sample_every_second, Crowd};
use super::serving_report::ProcessCost;
use super::streams_api::{gateway_latency, hls_requests, wait_live};
use super::summary::{gateway_cost, summarize};
use super::viewer::{self, ViewerKind, ViewerStats};
use super::RunClock;

/// Limit for publishers to connect and their streams to go live once the ramp is over.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs the whole load test and returns what it measured.
pub async fn run(cfg: LoadConfig) -> Result<LoadReport, LoadError> {
    if cfg.publishers == 0 {
        return Err(LoadError::NoPublishers);
    }
    if !(cfg.publisher_ramp_per_sec > 0.0 && cfg.viewer_ramp_per_sec > 0.0) {
        return Err(LoadError::BadRamp);
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| LoadError::Http(e.to_string()))?;
    // LL-HLS viewers keep a connection or two each, as a player does: a pool that closed
    // idle connections beyond a few dozen would reconnect hundreds at every part.
    let ll_http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| LoadError::Http(e.to_string()))?;
    let ll_stats = Arc::new(LlHlsStats::default());
    let clock = RunClock::start();
    // Viewers stop first, so that no viewer sees its stream end because a publisher left.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (viewers_stop_tx, viewers_stop_rx) = watch::channel(false);
    let proc_start = cfg.gateway_pid.map(sample_process).transpose()?;

    // Every viewer's stream is fixed up front: viewer i watches stream i mod N.
    let publishers: Vec<_> = (0..cfg.publishers)
        .map(|i| Arc::new(PublisherStats::new(cfg.stream_name(i))))
        .collect();
    let viewer_kinds = interleave(&[
        (ViewerKind::Flv, cfg.flv_viewers),
        (ViewerKind::Hls, cfg.hls_viewers),
        (ViewerKind::LlHls, cfg.ll_hls_viewers),
    ]);
    let viewers: Vec<_> = viewer_kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| Arc::new(ViewerStats::new(*kind, cfg.stream_name(i % cfg.publishers))))
        .collect();
    let crowd = Arc::new(Crowd {
        publishers: publishers.clone(),
        viewers: viewers.clone(),
    });
    let (phase_tx, phase_rx) = watch::channel("ramp");
    let sampler = tokio::spawn(sample_every_second(
        crowd.clone(),
        cfg.gateway_pid,
        clock,
        phase_rx,
        stop_rx.clone(),
        cfg.live_output,
    ));

    // Phase 1: publishers, ramped.
    let mut tasks = Vec::new();
    let mut viewer_tasks = Vec::new();
    let own_publishers = if cfg.start_publishers {
        publishers.as_slice()
    } else {
        &[]
    };
    for (i, stats) in own_publishers.iter().enumerate() {
        let setup = PublisherSetup {
            whip_url: cfg.url(&format!("/whip/{}", stats.stream)),
            bearer: cfg.bearer.clone(),
            source: cfg.source.clone(),
            udp_addrs: cfg.udp_addrs.clone(),
            http: http.clone(),
        };
        let delay = Duration::from_secs_f64(i as f64 / cfg.publisher_ramp_per_sec);
        tasks.push(tokio::spawn(run_publisher(
            setup,
            delay,
            stats.clone(),
            clock,
            stop_rx.clone(),
        )));
    }
    let ramp_end = Duration::from_secs_f64(cfg.publishers as f64 / cfg.publisher_ramp_per_sec);
    let settle_deadline = tokio::time::Instant::now() + ramp_end + SETTLE_TIMEOUT;
    while !own_publishers.iter().all(|p| p.settled())
        && tokio::time::Instant::now() < settle_deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_live(&http, &cfg, &publishers, clock, settle_deadline).await;
    let proc_publishers = cfg.gateway_pid.map(sample_process).transpose()?;

    // Phase 2: viewers, ramped over the streams.
    let _ = phase_tx.send("viewers");
    for (i, stats) in viewers.iter().enumerate() {
        let delay = Duration::from_secs_f64(i as f64 / cfg.viewer_ramp_per_sec);
        let (http, stats, stop) = (http.clone(), stats.clone(), viewers_stop_rx.clone());
        let task = match stats.kind {
            ViewerKind::Flv => {
                let limit = cfg.flv_read_limit_bps;
                let url = cfg.url(&format!("/flv/{}.flv", stats.stream));
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    viewer::run_flv(http, url, stats, clock, stop, limit).await
                })
            }
            ViewerKind::Hls => {
                let url = cfg.url(&format!("/hls/{}/index.m3u8", stats.stream));
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    viewer::run_hls(http, url, stats, clock, stop).await
                })
            }
            ViewerKind::LlHls => {
                let url = cfg.url(&format!("/hls/{}/index.m3u8", stats.stream));
                let (http, ll) = (ll_http.clone(), ll_stats.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    run_ll_hls(http, url, stats, ll, clock, stop).await
                })
            }
        };
        viewer_tasks.push(task);
    }
    let viewer_ramp = Duration::from_secs_f64(viewers.len() as f64 / cfg.viewer_ramp_per_sec);
    // Give the last viewers a moment to get their first media before the steady window.
    tokio::time::sleep(viewer_ramp + Duration::from_secs(2)).await;

    // Phase 3: hold, with everything on.
    let _ = phase_tx.send("steady");
    let stream_names: Vec<String> = publishers.iter().map(|p| p.stream.clone()).collect();
    let requests_start = hls_requests(&http, &cfg, &stream_names).await;
    let steady_start_ms = clock.ms();
    ll_stats.set_measuring(true);
    let bytes_at_start: u64 = viewers.iter().map(|v| v.bytes()).sum();
    let proc_steady = cfg.gateway_pid.map(sample_process).transpose()?;
    let others_start = sample_others(&cfg.other_pids);
    let own_start = sample_process(std::process::id()).ok();
    tokio::time::sleep(cfg.hold).await;
    let steady_ms = clock.ms().saturating_sub(steady_start_ms).max(1);
    ll_stats.set_measuring(false);
    let bytes_steady = viewers.iter().map(|v| v.bytes()).sum::<u64>() - bytes_at_start;
    let proc_end = cfg.gateway_pid.map(sample_process).transpose()?;
    let others_end = sample_others(&cfg.other_pids);
    let own_end = sample_process(std::process::id()).ok();
    let requests_end = hls_requests(&http, &cfg, &stream_names).await;
    let added_latency = gateway_latency(&http, &cfg, &stream_names).await;
    let publishers_live = publishers.iter().filter(|p| p.connected()).count();
    let flv_playing = playing(&viewers, ViewerKind::Flv);
    let hls_playing = playing(&viewers, ViewerKind::Hls);
    let ll_playing = playing(&viewers, ViewerKind::LlHls);

    // Stop: viewers' stalls are closed at this instant, then everyone is told to stop.
    let _ = phase_tx.send("stop");
    let end_ms = clock.ms();
    for v in &viewers {
        v.finish(end_ms);
    }
    let _ = viewers_stop_tx.send(true);
    for t in viewer_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let samples = sampler.await.unwrap_or_default();

    let mut report = summarize(&cfg, &publishers, &viewers, samples);
    report.publishers_connected = publishers_live;
    report.flv_viewers_playing = flv_playing;
    report.hls_viewers_playing = hls_playing;
    report.gateway_latency = added_latency;
    if cfg.ll_hls_viewers > 0 {
        let first_part = Spread::of(
            &viewers
                .iter()
                .filter(|v| v.kind == ViewerKind::LlHls)
                .filter_map(|v| v.first_keyframe_ms())
                .collect::<Vec<_>>(),
        );
        report.ll_hls = Some(ll_stats.report(cfg.ll_hls_viewers, ll_playing, first_part));
    }
    report.gateway_hls_requests = requests_start
        .zip(requests_end)
        .map(|(start, end)| end.minus(&start));
    let cost = |pid: u32, a: &ProcSample, b: &ProcSample| ProcessCost {
        pid,
        cpu_ms_per_s: b.cpu_ms.saturating_sub(a.cpu_ms) as f64 * 1000.0 / steady_ms as f64,
        rss_end_kib: b.rss_kib,
    };
    report.other_processes = others_start
        .iter()
        .zip(&others_end)
        .filter_map(|(a, b)| {
            let ((pid, a), b) = (a.as_ref()?, &b.as_ref()?.1);
            Some(cost(*pid, a, b))
        })
        .collect();
    report.load_tool = own_start
        .zip(own_end)
        .map(|(a, b)| cost(std::process::id(), &a, &b));
    report.steady_secs = steady_ms as f64 / 1000.0;
    report.steady_mbps = bytes_steady as f64 * 8.0 / 1e6 / (steady_ms as f64 / 1000.0);
    if let (Some(pid), Some(s0), Some(p1), Some(s1), Some(s2)) = (
        cfg.gateway_pid,
        proc_start,
        proc_publishers,
        proc_steady,
        proc_end,
    ) {
        report.gateway = Some(gateway_cost(
            pid,
            [s0, p1, s1, s2],
            steady_ms,
            bytes_steady,
            publishers_live,
            viewers.len(),
        ));
    }
    Ok(report)
}

/// The viewer kinds interleaved in proportion to their counts, so all kinds ramp together:
/// each step takes the kind furthest behind its share (the first listed on a tie).
fn interleave(counts: &[(ViewerKind, usize)]) -> Vec<ViewerKind> {
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let mut taken = vec![0usize; counts.len()];
    let mut out = Vec::with_capacity(total);
    for step in 1..=total {
        let behind = |i: usize| (step * counts[i].1) as i128 - (taken[i] * total) as i128;
        let pick = (0..counts.len()).filter(|&i| taken[i] < counts[i].1).fold(
            None,
            |best: Option<usize>, i| match best {
                Some(b) if behind(b) >= behind(i) => Some(b),
                _ => Some(i),
            },
        );
        let Some(i) = pick else { break };
        taken[i] += 1;
        out.push(counts[i].0);
    }
    out
}

/// CPU and RSS of each of `pids` now (`None` for one that cannot be read).
fn sample_others(pids: &[u32]) -> Vec<Option<(u32, ProcSample)>> {
    pids.iter()
        .map(|&pid| sample_process(pid).ok().map(|s| (pid, s)))
        .collect()
}

fn playing(viewers: &[Arc<ViewerStats>], kind: ViewerKind) -> usize {
    viewers
        .iter()
        .filter(|v| v.kind == kind && v.connected() && v.had_media())
        .count()
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_of_both_kinds_are_interleaved_in_proportion() {
        use ViewerKind::{Flv as F, Hls as H, LlHls as L};
        let two = |f, h| interleave(&[(F, f), (H, h)]);
        assert_eq!(two(4, 2), vec![F, H, F, F, H, F]);
        assert_eq!(two(0, 2), vec![H, H]);
        assert_eq!(two(3, 0), vec![F, F, F]);
        assert_eq!(two(1, 1), vec![F, H]);
        assert_eq!(
            interleave(&[(F, 2), (H, 1), (L, 3)]),
            vec![L, F, H, L, F, L]
        );
        assert_eq!(interleave(&[(F, 0), (H, 0), (L, 2)]), vec![L, L]);
    }
}
