//! Load-test publishers: each one is a WHIP session (the in-repo client) sending the looped
//! fixture until the run stops, with its state in a shared [`PublisherStats`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use webrtc::peer_connection::RTCPeerConnectionState;

use crate::client::{publish, MediaSource, PublishOptions};

use super::RunClock;

/// How often a publisher checks its connection state and send counters.
const CHECK_EVERY: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct PublisherStats {
    pub stream: String,
    connected: AtomicBool,
    video_frames: AtomicU64,
    /// Run time (ms) at which ICE + DTLS came up.
    connected_at_ms: AtomicU64,
    failure: Mutex<Option<String>>,
}

impl PublisherStats {
    pub fn new(stream: String) -> Self {
        PublisherStats {
            stream,
            connected: AtomicBool::new(false),
            video_frames: AtomicU64::new(0),
            connected_at_ms: AtomicU64::new(u64::MAX),
            failure: Mutex::new(None),
        }
    }
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
    pub fn video_frames(&self) -> u64 {
        self.video_frames.load(Ordering::Relaxed)
    }
    pub fn connected_at_ms(&self) -> Option<u64> {
        Some(self.connected_at_ms.load(Ordering::Relaxed)).filter(|&v| v != u64::MAX)
    }
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }
    /// Settled: connected, or failed for good.
    pub fn settled(&self) -> bool {
        self.connected() || self.failure().is_some()
    }
    /// Marks a stream published by someone else as live (see `LoadConfig::start_publishers`).
    pub(super) fn mark_connected(&self, at_ms: u64) {
        let _ = self.connected_at_ms.compare_exchange(
            u64::MAX,
            at_ms,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        self.connected.store(true, Ordering::Relaxed);
    }

    pub(super) fn fail(&self, why: String) {
        self.connected.store(false, Ordering::Relaxed);
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(why);
        }
    }
}

/// Where and how a publisher publishes.
#[derive(Clone)]
pub struct PublisherSetup {
    pub whip_url: String,
    pub bearer: Option<String>,
    pub source: MediaSource,
    pub udp_addrs: Vec<String>,
    pub http: reqwest::Client,
}

/// Waits `delay` (the ramp), publishes, and keeps the session up until `stop`; then DELETEs it.
pub async fn run_publisher(
    setup: PublisherSetup,
    delay: Duration,
    stats: Arc<PublisherStats>,
    clock: RunClock,
    mut stop: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    let opts = PublishOptions {
        looping: true,
        udp_addrs: setup.udp_addrs.clone(),
        http: Some(setup.http.clone()),
        connect_timeout: CONNECT_TIMEOUT,
        // Every access unit carries the time it was sent: viewers measure end-to-end latency.
        latency_stamps: true,
        ..PublishOptions::default()
    };
    let mut session = match publish(
        &setup.whip_url,
        setup.bearer.as_deref(),
        setup.source.clone(),
        opts,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return stats.fail(format!("publish {}: {e}", setup.whip_url)),
    };
    if let Err(e) = session.wait_connected(CONNECT_TIMEOUT).await {
        stats.fail(format!("connect {}: {e}", setup.whip_url));
        let _ = session.stop().await;
        return;
    }
    stats.mark_connected(clock.ms());
    loop {
        let stopped = tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => false,
            _ = stop.wait_for(|s| *s) => true,
        } || *stop.borrow();
        stats
            .video_frames
            .store(session.stats().video_frames, Ordering::Relaxed);
        if stopped {
            break;
        }
        let state = session.connection_state();
        if matches!(
            state,
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
        ) {
            stats.fail(format!(
                "{}: connection {state} during the run",
                stats.stream
            ));
            break;
        }
    }
    stats.connected.store(false, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(5), session.stop()).await;
}
