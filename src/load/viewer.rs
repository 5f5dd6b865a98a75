//! Load-test viewers: an HTTP-FLV client that follows the tag stream and an HLS client that
//! polls the live playlist and fetches each new segment as a player does. Each one keeps its
//! counters in a shared [`ViewerStats`] that the per-second sampler reads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{StatusCode, Url};
use tokio::sync::watch;

use super::flv_scan::FlvScanner;
use super::hls_playlist::parse_media_playlist;
use super::playback::PlayBuffer;
use super::RunClock;
use crate::client::sei::scan_latency_stamps;
use crate::client::unix_micros;

/// A forward jump of the FLV video timestamp larger than this means frames were skipped.
const FLV_SKIP_MS: u32 = 1000;
/// Limit for a viewer's stream to start answering (it may not be live yet).
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Limit for one HLS request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Consecutive failed HLS requests after which the viewer gives up.
const HLS_MAX_ERRORS: u32 = 10;
const NONE: u64 = u64::MAX;
/// Latency samples kept per viewer (30 fps for about 10 minutes).
pub const MAX_LATENCY_SAMPLES: usize = 18_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ViewerKind {
    Flv,
    Hls,
    /// Low-Latency HLS: blocking playlist reloads and parts (`ll_viewer`).
    #[serde(rename = "ll-hls")]
    LlHls,
}

/// Counters of one viewer, shared with the sampler.
#[derive(Debug)]
pub struct ViewerStats {
    pub kind: ViewerKind,
    pub stream: String,
    connected: AtomicBool,
    bytes: AtomicU64,
    /// What the viewer has had to play, and its stalls.
    play: Mutex<PlayBuffer>,
    /// Media that never reached the viewer: HLS segments that left the window unseen, FLV
    /// timestamp jumps (the gateway skipping a slow viewer ahead).
    lost: AtomicU64,
    /// Request start to first keyframe (FLV) or first media segment (HLS), ms.
    first_keyframe_ms: AtomicU64,
    /// Publisher-to-viewer delay of each latency-stamped frame (see `client/sei.rs`), µs.
    latencies_us: Mutex<Vec<u64>>,
    failure: Mutex<Option<String>>,
}

impl ViewerStats {
    pub fn new(kind: ViewerKind, stream: String) -> Self {
        ViewerStats {
            kind,
            stream,
            connected: AtomicBool::new(false),
            bytes: AtomicU64::new(0),
            play: Mutex::new(PlayBuffer::default()),
            lost: AtomicU64::new(0),
            first_keyframe_ms: AtomicU64::new(NONE),
            latencies_us: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
        }
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    fn with_play<T: Default>(&self, f: impl FnOnce(&mut PlayBuffer) -> T) -> T {
        self.play.lock().map(|mut p| f(&mut p)).unwrap_or_default()
    }
    pub fn stalls(&self) -> u64 {
        self.with_play(|p| p.stalls())
    }
    pub fn stalled_ms(&self) -> u64 {
        self.with_play(|p| p.stalled_ms())
    }
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
    pub fn first_keyframe_ms(&self) -> Option<u64> {
        Some(self.first_keyframe_ms.load(Ordering::Relaxed)).filter(|&v| v != NONE)
    }
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }
    /// End-to-end latencies seen so far (µs), one per stamped frame.
    pub fn latencies_us(&self) -> Vec<u64> {
        self.latencies_us
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// A frame stamped at `stamp_us` (publisher wall clock) arrived at `now_us`. Kept up to
    /// [`MAX_LATENCY_SAMPLES`] per viewer, so a long run cannot grow without bound.
    pub fn note_latency(&self, stamp_us: u64, now_us: u64) {
        if let Ok(mut l) = self.latencies_us.lock() {
            if l.len() < MAX_LATENCY_SAMPLES {
                l.push(now_us.saturating_sub(stamp_us));
            }
        }
    }
    /// True if the viewer has received media at all.
    pub fn had_media(&self) -> bool {
        self.with_play(|p| p.started())
    }

    /// Has the viewer been without media to play for over `STALL_MS` at run time `now_ms`?
    pub fn stalled_at(&self, now_ms: u64) -> bool {
        self.with_play(|p| p.stalled_at(now_ms))
    }

    /// `duration_ms` of media arrived at `now_ms` (see [`PlayBuffer::add`]).
    pub fn note_media(&self, now_ms: u64, duration_ms: u64) {
        self.with_play(|p| p.add(now_ms, duration_ms));
    }

    /// Called when the run ends: a stall still going on counts too.
    pub fn finish(&self, now_ms: u64) {
        self.with_play(|p| p.finish(now_ms));
        self.connected.store(false, Ordering::Relaxed);
    }

    pub(super) fn set_connected(&self) {
        self.connected.store(true, Ordering::Relaxed);
    }

    pub(super) fn add_bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(super) fn first_keyframe(&self, since_start_ms: u64) {
        let _ = self.first_keyframe_ms.compare_exchange(
            NONE,
            since_start_ms,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    pub(super) fn fail(&self, why: String) {
        self.connected.store(false, Ordering::Relaxed);
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(why);
        }
    }
}

/// Sleeps `d` unless `stop` is raised first; returns true if stopped.
pub(super) async fn stopped_during(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    let woke = tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    woke || *stop.borrow()
}

/// Follows `url` as an HTTP-FLV player until `stop`. Retries while the stream is not live
/// (404) for up to [`JOIN_TIMEOUT`]. With `read_limit_bps`, pauses after each chunk so the
/// average read rate stays under it (a slow client: TCP pushes back on the gateway).
pub async fn run_flv(
    http: reqwest::Client,
    url: String,
    stats: Arc<ViewerStats>,
    clock: RunClock,
    mut stop: watch::Receiver<bool>,
    read_limit_bps: Option<u64>,
) {
    let join_deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let (mut response, started_ms) = loop {
        let started_ms = clock.ms();
        let sent = tokio::time::timeout(REQUEST_TIMEOUT, http.get(&url).send()).await;
        match sent {
            Ok(Ok(r)) if r.status() == StatusCode::OK => break (r, started_ms),
            Ok(Ok(r)) if tokio::time::Instant::now() >= join_deadline => {
                return stats.fail(format!("GET {url} answered {}", r.status()));
            }
            Ok(Err(e)) => return stats.fail(format!("GET {url}: {e}")),
            Err(_) => return stats.fail(format!("GET {url}: no answer in {REQUEST_TIMEOUT:?}")),
            Ok(Ok(_)) => {}
        }
        if stopped_during(&mut stop, Duration::from_millis(250)).await {
            return;
        }
    };
    stats.connected.store(true, Ordering::Relaxed);
    let mut scanner = FlvScanner::new();
    let mut last_video_ts: Option<u32> = None;
    // The response starts with the gateway's cached GOP, frames up to a GOP old: latency is
    // measured from the next keyframe on, where the feed is live.
    let mut keyframes = 0u32;
    loop {
        let chunk = tokio::select! {
            c = response.chunk() => c,
            _ = stop.wait_for(|s| *s) => return,
        };
        let chunk = match chunk {
            Ok(Some(c)) => c,
            // The run stopping at the same moment is not a failure.
            _ if *stop.borrow() => return,
            Ok(None) => return stats.fail("FLV response ended while the run went on".into()),
            Err(e) => return stats.fail(format!("FLV body: {e}")),
        };
        stats.add_bytes(chunk.len());
        let now = clock.ms();
        let now_us = unix_micros();
        let mut media = false;
        let mut played_ms = 0u64;
        let scanned = scanner.feed(&chunk, |tag| {
            if !tag.media {
                return;
            }
            media = true;
            if tag.tag_type == 9 && tag.keyframe {
                keyframes = keyframes.saturating_add(1);
            }
            if let Some(stamp) = tag.latency_stamp_us.filter(|_| keyframes >= 2) {
                stats.note_latency(stamp, now_us);
            }
            if tag.tag_type == 9 {
                if tag.keyframe {
                    stats.first_keyframe(now.saturating_sub(started_ms));
                }
                if let Some(prev) = last_video_ts {
                    // Play time is the advance of video timestamps; a jump over 1 s is the
                    // gateway skipping this viewer ahead (lost media, not play time).
                    let step = tag.timestamp_ms.saturating_sub(prev);
                    if step > FLV_SKIP_MS {
                        stats.lost.fetch_add(1, Ordering::Relaxed);
                    } else {
                        played_ms += u64::from(step);
                    }
                }
                last_video_ts = Some(tag.timestamp_ms);
            }
        });
        if let Err(e) = scanned {
            return stats.fail(format!("FLV stream: {e}"));
        }
        if media {
            stats.note_media(now, played_ms);
        }
        if let Some(bps) = read_limit_bps.filter(|&b| b > 0) {
            let pause = Duration::from_secs_f64(chunk.len() as f64 * 8.0 / bps as f64);
            if stopped_during(&mut stop, pause).await {
                return;
            }
        }
    }
}

/// Plays the HLS playlist at `url` until `stop` (or `#EXT-X-ENDLIST`): polls it about twice
/// per target duration, fetches the init segment once and every new media segment, starting
/// two segments back from the live edge as players do.
pub async fn run_hls(
    http: reqwest::Client,
    url: String,
    stats: Arc<ViewerStats>,
    clock: RunClock,
    mut stop: watch::Receiver<bool>,
) {
    let base = match Url::parse(&url) {
        Ok(u) => u,
        Err(e) => return stats.fail(format!("playlist URL {url}: {e}")),
    };
    let started_ms = clock.ms();
    let join_deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let mut init_fetched = false;
    let mut next_seq: Option<u64> = None;
    let mut errors = 0u32;
    let mut poll = Duration::from_millis(500);
    loop {
        let round = hls_round(
            &http,
            &base,
            &stats,
            clock,
            started_ms,
            &mut init_fetched,
            &mut next_seq,
        )
        .await;
        match round {
            Ok(Round::Playing { target_secs }) => {
                errors = 0;
                stats.connected.store(true, Ordering::Relaxed);
                poll = Duration::from_secs_f64((target_secs / 2.0).clamp(0.2, 1.0));
            }
            Ok(Round::Ended) => return,
            // Not live yet (no playlist, or no segment in it): keep trying until the deadline.
            Err(_) if next_seq.is_none() && tokio::time::Instant::now() < join_deadline => {}
            Err(_) if *stop.borrow() => return,
            Err(e) => {
                errors += 1;
                if errors >= HLS_MAX_ERRORS || next_seq.is_none() {
                    return stats.fail(e);
                }
            }
        }
        if stopped_during(&mut stop, poll).await {
            return;
        }
    }
}

enum Round {
    Playing { target_secs: f64 },
    Ended,
}

/// Why a viewer's GET failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("{0}")]
    Transport(String),
}

/// GET `url`: the body of a 200 answer, the answer and the body each within `timeout`.
pub(super) async fn fetch(
    http: &reqwest::Client,
    url: Url,
    timeout: Duration,
) -> Result<bytes::Bytes, FetchError> {
    let response = tokio::time::timeout(timeout, http.get(url).send())
        .await
        .map_err(|_| FetchError::Transport(format!("no answer in {timeout:?}")))?
        .map_err(|e| FetchError::Transport(e.to_string()))?;
    if response.status() != StatusCode::OK {
        return Err(FetchError::Status(response.status()));
    }
    tokio::time::timeout(timeout, response.bytes())
        .await
        .map_err(|_| FetchError::Transport(format!("body not done in {timeout:?}")))?
        .map_err(|e| FetchError::Transport(format!("body: {e}")))
}

async fn get(http: &reqwest::Client, url: &Url) -> Result<bytes::Bytes, String> {
    fetch(http, url.clone(), REQUEST_TIMEOUT)
        .await
        .map_err(|e| match e {
            FetchError::Status(status) => format!("GET {url} answered {status}"),
            FetchError::Transport(why) => format!("GET {url}: {why}"),
        })
}

/// One playlist poll and the segment fetches it leads to.
async fn hls_round(
    http: &reqwest::Client,
    base: &Url,
    stats: &ViewerStats,
    clock: RunClock,
    started_ms: u64,
    init_fetched: &mut bool,
    next_seq: &mut Option<u64>,
) -> Result<Round, String> {
    let body = get(http, base).await?;
    stats.add_bytes(body.len());
    let playlist = parse_media_playlist(&body).map_err(|e| format!("{base}: {e}"))?;
    let (Some(first), Some(last)) = (playlist.segments.first(), playlist.segments.last()) else {
        return Err(format!("{base}: no segment yet"));
    };
    if !*init_fetched {
        if let Some(uri) = &playlist.init_uri {
            let url = base.join(uri).map_err(|e| format!("init URI {uri}: {e}"))?;
            stats.add_bytes(get(http, &url).await?.len());
            *init_fetched = true;
        }
    }
    // Segments a player starts with were published before it came: only those that appear
    // while it polls tell how late the live edge is.
    let live = next_seq.is_some();
    let want = next_seq.unwrap_or_else(|| last.sequence.saturating_sub(1).max(first.sequence));
    if first.sequence > want {
        // Segments left the window before this player fetched them.
        stats
            .lost
            .fetch_add(first.sequence - want, Ordering::Relaxed);
    }
    let from = want.max(first.sequence);
    let mut next = from;
    for segment in playlist.segments.iter().filter(|s| s.sequence >= from) {
        let url = base
            .join(&segment.uri)
            .map_err(|e| format!("segment URI {}: {e}", segment.uri))?;
        let bytes = get(http, &url).await?;
        stats.add_bytes(bytes.len());
        let now_us = unix_micros();
        if live {
            for stamp in scan_latency_stamps(&bytes) {
                stats.note_latency(stamp, now_us);
            }
        }
        let now = clock.ms();
        stats.first_keyframe(now.saturating_sub(started_ms));
        stats.note_media(now, (segment.duration_secs * 1000.0).round() as u64);
        next = segment.sequence + 1;
        *next_seq = Some(next);
    }
    if next_seq.is_none() {
        *next_seq = Some(next);
    }
    if playlist.ended {
        return Ok(Round::Ended);
    }
    Ok(Round::Playing {
        target_secs: playlist.target_duration_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewer_stats_follow_the_play_buffer() {
        let v = ViewerStats::new(ViewerKind::Flv, "a".into());
        assert!(!v.had_media());
        v.note_media(100, 0);
        assert!(v.had_media());
        assert!(v.stalled_at(1101));
        v.finish(2600);
        assert_eq!((v.stalls(), v.stalled_ms()), (1, 2500));
        assert!(!v.connected());
    }

    #[test]
    fn latency_is_viewer_clock_minus_stamp_and_a_stamp_from_the_future_counts_zero() {
        let v = ViewerStats::new(ViewerKind::Flv, "a".into());
        v.note_latency(1_000_000, 1_042_999);
        v.note_latency(2_000_000, 1_999_000);
        assert_eq!(v.latencies_us(), vec![42_999, 0]);
    }

    #[test]
    fn first_keyframe_time_is_kept_from_the_first_report() {
        let v = ViewerStats::new(ViewerKind::Flv, "a".into());
        assert_eq!(v.first_keyframe_ms(), None);
        v.first_keyframe(42);
        v.first_keyframe(900);
        assert_eq!(v.first_keyframe_ms(), Some(42));
    }
}
