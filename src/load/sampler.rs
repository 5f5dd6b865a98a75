//! The per-second sampler: what every publisher and viewer counted so far, and the gateway's
//! CPU time and RSS, once a second, as [`Sample`]s.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::proc_stat::sample as sample_process;
use super::publisher::PublisherStats;
use super::report::Sample;
use super::viewer::{ViewerKind, ViewerStats};
use super::RunClock;

/// The shared state the sampler reads.
pub(super) struct Crowd {
    pub(super) publishers: Vec<Arc<PublisherStats>>,
    pub(super) viewers: Vec<Arc<ViewerStats>>,
}

/// The per-second sampler; returns the samples when `stop` is raised.
pub(super) async fn sample_every_second(
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
            ll_hls_viewers_connected: count(ViewerKind::LlHls),
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
                "t={:>3}s {:<7} pubs {:>4} flv {:>5} hls {:>5} ll {:>5} {:>8.1} Mb/s stalled {:>4} cpu {:>5} ms rss {:>7} KiB",
                sample.t_s,
                sample.phase,
                sample.publishers_connected,
                sample.flv_viewers_connected,
                sample.hls_viewers_connected,
                sample.ll_hls_viewers_connected,
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
