//! The load tool's engine (`castgate-load`, issue 5): against a running gateway, ramps up N
//! WHIP publishers sending a looped fixture, then M HTTP-FLV, K HLS and L Low-Latency HLS
//! viewers spread over the streams, holds for a while, and measures every second what was delivered, who stalled, how
//! fast new viewers got a keyframe, and what the gateway process cost (CPU, RSS via /proc).
//!
//! Bounded by construction: every phase has a deadline and the run stops by itself.
//!
//! Files: `config` (what to run), `run` (the phases), `publisher` and `viewer` (the clients,
//! with `flv_scan`, `hls_playlist` and `playback` for what viewers read; the latency stamps
//! they read are `client::sei`), `ll_viewer` (Low-Latency HLS viewers, with `ll_edge` for
//! what they ask next, `ll_spread` and `ll_stats` for what they measure together), `sampler`
//! (once a second), `streams_api` (the gateway's `/api/streams`), `proc_stat` (the gateway's
//! CPU and RSS), `summary`, `report`, `ll_report` and `serving_report` (the results).

mod config;
mod flv_scan;
mod hls_playlist;
mod ll_edge;
mod ll_report;
mod ll_spread;
mod ll_stats;
mod ll_viewer;
mod playback;
mod proc_stat;
mod publisher;
mod report;
mod run;
mod sampler;
mod serving_report;
mod streams_api;
mod summary;
mod viewer;

pub use crate::client::sei::{
    annexb_latency_sei, find_latency_stamp, latency_sei_nal, scan_latency_stamps, LATENCY_UUID,
};
pub use config::{LoadConfig, LoadError};
pub use flv_scan::{FlvScanError, FlvScanner, TagEvent};
pub use hls_playlist::{parse_media_playlist, MediaPlaylist, PlaylistError, Segment};
pub use ll_edge::{
    init_for, new_parts, newest_part, next_directive, start_parts, Directive, PartPos, Update,
};
pub use ll_report::LlHlsReport;
pub use ll_spread::AnswerSpread;
pub use playback::{PlayBuffer, REBUFFER_MS, STALL_MS};
pub use proc_stat::{sample as sample_process, ProcError, ProcSample};
pub use publisher::PublisherStats;
pub use report::{
    AddedLatency, GatewayCost, GatewayLatency, LatencySpread, Limits, LoadReport, Sample, Spread,
};
pub use run::run;
pub use serving_report::{HlsRequests, ProcessCost};
pub use viewer::{ViewerKind, ViewerStats, MAX_LATENCY_SAMPLES};

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
    /// Microseconds since the run started.
    pub fn us(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}
