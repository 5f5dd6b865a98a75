//! The load tool's engine (`castgate-load`, issue 5): against a running gateway, ramps up N
//! WHIP publishers sending a looped fixture, then M HTTP-FLV and K HLS viewers spread over the
//! streams, holds for a while, and measures every second what was delivered, who stalled, how
//! fast new viewers got a keyframe, and what the gateway process cost (CPU, RSS via /proc).
//!
//! Bounded by construction: every phase has a deadline and the run stops by itself.

mod flv_scan;
mod hls_playlist;
mod playback;
mod proc_stat;
mod publisher;
mod report;
mod sei;
mod viewer;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::client::MediaSource;

pub use flv_scan::{FlvScanError, FlvScanner, TagEvent};
pub use hls_playlist::{parse_media_playlist, MediaPlaylist, PlaylistError, Segment};
pub use playback::{PlayBuffer, REBUFFER_MS, STALL_MS};
pub use proc_stat::{sample as sample_process, ProcError, ProcSample};
pub use publisher::PublisherStats;
pub use report::{GatewayCost, Limits, LoadReport, Sample, Spread};
pub use sei::{
    annexb_latency_sei, find_latency_stamp, latency_sei_nal, scan_latency_stamps, LATENCY_UUID,
};
pub use viewer::{ViewerKind, ViewerStats, MAX_LATENCY_SAMPLES};

use publisher::{run_publisher, PublisherSetup};

/// Time since the start of the run, shared by every task.
#[derive(Debug, Clone, Copy)]
pub struct RunClock(tokio::time::Instant);

impl RunClock {
    pub fn start() -> Self {
        RunClock(tokio::time::Instant::now())
    }
    /// Milliseconds since the run started.
    pub fn ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The gateway, e.g. `http://127.0.0.1:8080` (no trailing path).
    pub base_url: String,
    pub publishers: usize,
    /// False: the `publishers` streams are published by someone else (for example a second
    /// `castgate-load` process, so that viewer load cannot starve the publishers); the run
    /// only waits for them to be live.
    pub start_publishers: bool,
    pub flv_viewers: usize,
    pub hls_viewers: usize,
    /// Publishers started per second.
    pub publisher_ramp_per_sec: f64,
    /// Viewers started per second (FLV and HLS together, interleaved).
    pub viewer_ramp_per_sec: f64,
    /// How long to hold once everyone has started.
    pub hold: Duration,
    /// Stream names are `{prefix}{index}`.
    pub stream_prefix: String,
    pub source: MediaSource,
    pub bearer: Option<String>,
    /// Local UDP addresses for the publishers' ICE candidates.
    pub udp_addrs: Vec<String>,
    /// The gateway's process id, to sample its CPU and RSS.
    pub gateway_pid: Option<u32>,
    /// Print each second's sample to stderr as it is taken.
    pub live_output: bool,
    /// Make FLV viewers read no faster than this many bits per second (slow clients, to see
    /// the gateway's memory stay bounded); `None` reads as fast as data comes.
    pub flv_read_limit_bps: Option<u64>,
}

impl LoadConfig {
    /// Defaults for a small run against `base_url` with `source`.
    pub fn new(base_url: impl Into<String>, source: MediaSource) -> Self {
        LoadConfig {
            base_url: base_url.into(),
            publishers: 1,
            start_publishers: true,
            flv_viewers: 1,
            hls_viewers: 1,
            publisher_ramp_per_sec: 10.0,
            viewer_ramp_per_sec: 100.0,
            hold: Duration::from_secs(10),
            stream_prefix: "load".into(),
            source,
            bearer: None,
            udp_addrs: vec!["127.0.0.1:0".into()],
            gateway_pid: None,
            live_output: false,
            flv_read_limit_bps: None,
        }
    }

    fn stream_name(&self, i: usize) -> String {
        format!("{}{i}", self.stream_prefix)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("nothing to do: at least one publisher is needed")]
    NoPublishers,
    #[error("ramp rates must be positive")]
    BadRamp,
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("cannot sample the gateway process: {0}")]
    Proc(#[from] ProcError),
}

/// Limit for publishers to connect and their streams to go live once the ramp is over.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// The shared state the sampler reads.
struct Crowd {
    publishers: Vec<Arc<PublisherStats>>,
    viewers: Vec<Arc<ViewerStats>>,
}

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
    let clock = RunClock::start();
    // Viewers stop first, so that no viewer sees its stream end because a publisher left.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (viewers_stop_tx, viewers_stop_rx) = watch::channel(false);
    let proc_start = cfg.gateway_pid.map(sample_process).transpose()?;

    // Every viewer's stream is fixed up front: viewer i watches stream i mod N.
    let publishers: Vec<_> = (0..cfg.publishers)
        .map(|i| Arc::new(PublisherStats::new(cfg.stream_name(i))))
        .collect();
    let viewer_kinds = interleave(cfg.flv_viewers, cfg.hls_viewers);
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
        };
        viewer_tasks.push(task);
    }
    let viewer_ramp = Duration::from_secs_f64(viewers.len() as f64 / cfg.viewer_ramp_per_sec);
    // Give the last viewers a moment to get their first media before the steady window.
    tokio::time::sleep(viewer_ramp + Duration::from_secs(2)).await;

    // Phase 3: hold, with everything on.
    let _ = phase_tx.send("steady");
    let steady_start_ms = clock.ms();
    let bytes_at_start: u64 = viewers.iter().map(|v| v.bytes()).sum();
    let proc_steady = cfg.gateway_pid.map(sample_process).transpose()?;
    tokio::time::sleep(cfg.hold).await;
    let steady_ms = clock.ms().saturating_sub(steady_start_ms).max(1);
    let bytes_steady = viewers.iter().map(|v| v.bytes()).sum::<u64>() - bytes_at_start;
    let proc_end = cfg.gateway_pid.map(sample_process).transpose()?;
    let publishers_live = publishers.iter().filter(|p| p.connected()).count();
    let flv_playing = playing(&viewers, ViewerKind::Flv);
    let hls_playing = playing(&viewers, ViewerKind::Hls);

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

/// FLV and HLS viewers interleaved in proportion, so both kinds ramp together.
fn interleave(flv: usize, hls: usize) -> Vec<ViewerKind> {
    let total = flv + hls;
    let mut out = Vec::with_capacity(total);
    let (mut f, mut h) = (0usize, 0usize);
    while f + h < total {
        // Take FLV while it is behind its share.
        if h >= hls || (f < flv && f * total <= (f + h) * flv) {
            out.push(ViewerKind::Flv);
            f += 1;
        } else {
            out.push(ViewerKind::Hls);
            h += 1;
        }
    }
    out
}

fn playing(viewers: &[Arc<ViewerStats>], kind: ViewerKind) -> usize {
    viewers
        .iter()
        .filter(|v| v.kind == kind && v.connected() && v.had_media())
        .count()
}

/// Polls `GET /api/streams` until every connected publisher's stream is listed as live (every
/// stream, when someone else publishes them: those are marked connected once live, and failed
/// if they are not live by `deadline`).
async fn wait_live(
    http: &reqwest::Client,
    cfg: &LoadConfig,
    publishers: &[Arc<PublisherStats>],
    clock: RunClock,
    deadline: tokio::time::Instant,
) {
    let url = cfg.url("/api/streams");
    loop {
        if tokio::time::Instant::now() >= deadline {
            if !cfg.start_publishers {
                for p in publishers.iter().filter(|p| !p.connected()) {
                    p.fail(format!("stream {} was not live in time", p.stream));
                }
            }
            return;
        }
        let live: Vec<String> = match http.get(&url).timeout(Duration::from_secs(5)).send().await {
            Ok(r) => match r
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            {
                Some(json) => json["streams"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|s| s["state"] == "live")
                            .filter_map(|s| s["name"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                None => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        if !cfg.start_publishers {
            for p in publishers.iter().filter(|p| live.contains(&p.stream)) {
                p.mark_connected(clock.ms());
            }
        }
        if publishers
            .iter()
            .filter(|p| p.connected() || !cfg.start_publishers)
            .all(|p| live.contains(&p.stream))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The per-second sampler; returns the samples when `stop` is raised.
async fn sample_every_second(
    crowd: Arc<Crowd>,
    pid: Option<u32>,
    clock: RunClock,
    phase: watch::Receiver<&'static str>,
    mut stop: watch::Receiver<bool>,
    live_output: bool,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last_bytes = 0u64;
    let mut last_cpu = pid.and_then(|p| sample_process(p).ok()).map(|s| s.cpu_ms);
    let mut playing_before = 0usize;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return samples,
        }
        let now = clock.ms();
        let bytes: u64 = crowd.viewers.iter().map(|v| v.bytes()).sum();
        let playing_now = crowd
            .viewers
            .iter()
            .filter(|v| v.first_keyframe_ms().is_some())
            .count();
        let proc = pid.and_then(|p| sample_process(p).ok());
        let count = |kind| {
            crowd
                .viewers
                .iter()
                .filter(|v| v.kind == kind && v.connected())
                .count()
        };
        let sample = Sample {
            t_s: now / 1000,
            phase: *phase.borrow(),
            publishers_connected: crowd.publishers.iter().filter(|p| p.connected()).count(),
            flv_viewers_connected: count(ViewerKind::Flv),
            hls_viewers_connected: count(ViewerKind::Hls),
            bytes: bytes - last_bytes,
            viewers_stalled: crowd.viewers.iter().filter(|v| v.stalled_at(now)).count(),
            new_viewers_playing: playing_now - playing_before,
            gateway_cpu_ms: proc
                .zip(last_cpu)
                .map(|(p, last)| p.cpu_ms.saturating_sub(last)),
            gateway_rss_kib: proc.map(|p| p.rss_kib),
        };
        if live_output {
            eprintln!(
                "t={:>3}s {:<7} pubs {:>4} flv {:>5} hls {:>5} {:>8.1} Mb/s stalled {:>4} cpu {:>5} ms rss {:>7} KiB",
                sample.t_s,
                sample.phase,
                sample.publishers_connected,
                sample.flv_viewers_connected,
                sample.hls_viewers_connected,
                sample.bytes as f64 * 8.0 / 1e6,
                sample.viewers_stalled,
                sample.gateway_cpu_ms.map_or("-".into(), |v| v.to_string()),
                sample.gateway_rss_kib.map_or("-".into(), |v| v.to_string()),
            );
        }
        last_bytes = bytes;
        playing_before = playing_now;
        if let Some(p) = proc {
            last_cpu = Some(p.cpu_ms);
        }
        samples.push(sample);
    }
}

fn summarize(
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
            .flat_map(|v| v.latencies_ms())
            .collect();
        Spread::of(&v)
    };
    LoadReport {
        publishers: cfg.publishers,
        flv_viewers: cfg.flv_viewers,
        hls_viewers: cfg.hls_viewers,
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
fn gateway_cost(
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
    fn viewers_of_both_kinds_are_interleaved_in_proportion() {
        use ViewerKind::{Flv as F, Hls as H};
        assert_eq!(interleave(4, 2), vec![F, H, F, F, H, F]);
        assert_eq!(interleave(0, 2), vec![H, H]);
        assert_eq!(interleave(3, 0), vec![F, F, F]);
        assert_eq!(interleave(1, 1), vec![F, H]);
    }

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
