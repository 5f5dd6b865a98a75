//! What a load run is told to do ([`LoadConfig`]) and why it may refuse to start.

use std::time::Duration;

use super::proc_stat::ProcError;
use crate::client::MediaSource;

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
    /// Low-Latency HLS viewers: blocking playlist reloads and parts, as hls.js
    /// (`ll_viewer`).
    pub ll_hls_viewers: usize,
    /// Publishers started per second.
    pub publisher_ramp_per_sec: f64,
    /// Viewers started per second (all kinds together, interleaved).
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
    /// Other processes whose CPU and RSS to report over the steady window (e.g. the workers
    /// of a cache in front of the gateway).
    pub other_pids: Vec<u32>,
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
            ll_hls_viewers: 0,
            publisher_ramp_per_sec: 10.0,
            viewer_ramp_per_sec: 100.0,
            hold: Duration::from_secs(10),
            stream_prefix: "load".into(),
            source,
            bearer: None,
            udp_addrs: vec!["127.0.0.1:0".into()],
            gateway_pid: None,
            other_pids: Vec::new(),
            live_output: false,
            flv_read_limit_bps: None,
        }
    }

    pub(super) fn stream_name(&self, i: usize) -> String {
        format!("{}{i}", self.stream_prefix)
    }

    pub(super) fn url(&self, path: &str) -> String {
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
