//! The Low-Latency HLS load viewer: loads the media playlist once, starts PART-HOLD-BACK
//! behind the newest part (`ll_edge::start_parts`), then follows the live edge as hls.js
//! does: a blocking reload for the part after the newest it has, a GET of every newly listed
//! part, and the EXT-X-PRELOAD-HINT part asked for as soon as it is seen (the gateway holds
//! that request until the part is complete). Two loops joined in one task — playlists and
//! parts — with a short queue between them; nothing of a playlist is kept but the newest
//! part's place. What it measures goes to the run's shared [`LlHlsStats`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{StatusCode, Url};
use tokio::sync::{mpsc, watch};

use super::ll_edge::{
    init_for, new_parts, newest_part, next_directive, start_parts, Directive, PartPos,
};
use super::ll_stats::{Counter, LlHlsStats};
use super::viewer::{self, stopped_during, FetchError, ViewerStats};
use super::RunClock;
use crate::client::sei::scan_latency_stamps;
use crate::client::unix_micros;
use crate::mux::hls::strict::{parse_strict, StrictPlaylist};

/// Limit for the stream to be live with a part listed.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than the gateway holds a blocking request (three target durations, then 503).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Consecutive failed playlist requests after which the viewer gives up.
const MAX_ERRORS: u32 = 10;
/// Parts fetched lately (or through the hint), so that none is fetched twice.
const RECENT_PARTS: usize = 16;
/// Part requests queued between the playlist loop and the part loop.
const QUEUE: usize = 64;
/// Pause after a failed request before the next (a 503 is asked again at once).
const RETRY_PAUSE: Duration = Duration::from_millis(200);

async fn fetch(http: &reqwest::Client, url: Url) -> Result<Bytes, FetchError> {
    viewer::fetch(http, url, REQUEST_TIMEOUT).await
}

fn read(body: &[u8]) -> Result<StrictPlaylist, String> {
    let text = std::str::from_utf8(body).map_err(|_| "playlist is not UTF-8".to_string())?;
    parse_strict(text)
}

/// What the part loop is asked to fetch.
enum PartJob {
    Init(String),
    /// A part the playlist lists; `live`: it appeared while the viewer followed the edge (the
    /// parts it starts with were complete before it came).
    Listed {
        uri: String,
        duration_ms: u64,
        live: bool,
    },
    /// EXT-X-PRELOAD-HINT: not complete yet, the answer comes when it is.
    Hint(String),
}

/// What one viewer shares between its two loops.
struct Viewer {
    http: reqwest::Client,
    base: Url,
    stats: Arc<ViewerStats>,
    ll: Arc<LlHlsStats>,
    clock: RunClock,
    started_ms: u64,
}

/// Follows the LL-HLS playlist at `url` (`.../index.m3u8`) until `stop` or the stream ends.
pub async fn run_ll_hls(
    http: reqwest::Client,
    url: String,
    stats: Arc<ViewerStats>,
    ll: Arc<LlHlsStats>,
    clock: RunClock,
    mut stop: watch::Receiver<bool>,
) {
    let base = match Url::parse(&url) {
        Ok(u) => u,
        Err(e) => return stats.fail(format!("playlist URL {url}: {e}")),
    };
    let v = Viewer {
        http,
        base,
        stats,
        ll,
        clock,
        started_ms: clock.ms(),
    };
    let Some((first, known)) = v.join(&mut stop).await else {
        return;
    };
    v.stats.set_connected();
    let start = start_parts(&first);
    let mut jobs: VecDeque<PartJob> = VecDeque::new();
    if let Some(init) = start.first().and_then(|(p, _)| init_for(&first, p.msn)) {
        jobs.push_back(PartJob::Init(init.to_string()));
    }
    jobs.extend(start.iter().map(|(_, part)| PartJob::Listed {
        uri: part.uri.clone(),
        duration_ms: (part.duration * 1000.0).round() as u64,
        live: false,
    }));
    jobs.extend(first.preload_hint.clone().map(PartJob::Hint));
    let directive = next_directive(&first);
    drop(start);
    drop(first);
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::join!(
        v.follow_playlist(known, directive, tx, stop.clone()),
        v.fetch_parts(jobs, rx, stop),
    );
}

impl Viewer {
    /// The first playlist (no directives), once it lists a part; retried while the stream is
    /// not live yet.
    async fn join(&self, stop: &mut watch::Receiver<bool>) -> Option<(StrictPlaylist, PartPos)> {
        let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
        loop {
            let why = match fetch(&self.http, self.base.clone()).await {
                Ok(body) => {
                    self.stats.add_bytes(body.len());
                    match read(&body) {
                        Ok(p) => match newest_part(&p) {
                            Some(newest) => {
                                self.check_rules(&self.base, &p);
                                return Some((p, newest));
                            }
                            None => "no part listed yet".to_string(),
                        },
                        Err(e) => e,
                    }
                }
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                self.stats.fail(format!("{}: {why}", self.base));
                return None;
            }
            if stopped_during(stop, Duration::from_millis(250)).await {
                return None;
            }
        }
    }

    fn check_rules(&self, url: &Url, p: &StrictPlaylist) {
        let broken = p.violations();
        if !broken.is_empty() {
            self.ll.problem(Counter::StrictViolation, || {
                format!("{url}: {}", broken.join("; "))
            });
        }
    }

    /// Blocking reloads, one after the other, each for the part after the newest known; the
    /// parts each answer brings (and its preload hint) go to the part loop.
    async fn follow_playlist(
        &self,
        mut known: PartPos,
        mut directive: Option<Directive>,
        tx: mpsc::Sender<PartJob>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut errors = 0u32;
        loop {
            let Some(d) = directive else {
                return self
                    .stats
                    .fail(format!("{}: no CAN-BLOCK-RELOAD=YES", self.base));
            };
            if errors >= MAX_ERRORS {
                return self.stats.fail(format!(
                    "{}: {errors} failed blocking reloads in a row",
                    self.base
                ));
            }
            let mut url = self.base.clone();
            url.set_query(Some(&d.query()));
            let sent_us = self.clock.us();
            let answer = tokio::select! {
                a = fetch(&self.http, url.clone()) => a,
                _ = stop.wait_for(|s| *s) => return,
            };
            let at_us = self.clock.us();
            self.ll.count(Counter::BlockingRequest);
            let body = match answer {
                Ok(body) => body,
                Err(_) if *stop.borrow() => return,
                Err(e) => {
                    errors += 1;
                    let unavailable =
                        matches!(e, FetchError::Status(StatusCode::SERVICE_UNAVAILABLE));
                    if unavailable {
                        self.ll.count(Counter::Timeout503);
                    }
                    let counter = match e {
                        FetchError::Status(_) => Counter::PlaylistNon200,
                        FetchError::Transport(_) => Counter::RequestError,
                    };
                    self.ll.problem(counter, || format!("{url}: {e}"));
                    if !unavailable && stopped_during(&mut stop, RETRY_PAUSE).await {
                        return;
                    }
                    continue;
                }
            };
            self.stats.add_bytes(body.len());
            self.ll.blocking_took(at_us.saturating_sub(sent_us));
            let p = match read(&body) {
                Ok(p) => p,
                Err(e) => {
                    errors += 1;
                    self.ll
                        .problem(Counter::ParseFailure, || format!("{url}: {e}"));
                    continue;
                }
            };
            self.check_rules(&url, &p);
            let update = new_parts(known, &p);
            if update.new.is_empty() {
                errors += 1;
                self.ll.problem(Counter::StaleAnswer, || {
                    format!("{url} listed no part after {known:?}")
                });
            } else {
                errors = 0;
            }
            if update.missed {
                self.ll.problem(Counter::PartsMissed, || {
                    format!("{url} no longer listed {known:?}: parts missed")
                });
            }
            let mut jobs = Vec::with_capacity(update.new.len() + 1);
            for (_, part) in &update.new {
                self.ll.listed(&part.uri, at_us);
                jobs.push(PartJob::Listed {
                    uri: part.uri.clone(),
                    duration_ms: (part.duration * 1000.0).round() as u64,
                    live: true,
                });
            }
            jobs.extend(p.preload_hint.clone().map(PartJob::Hint));
            known = update.newest;
            directive = next_directive(&p);
            let ended = p.ended;
            drop(p);
            for job in jobs {
                if tx.send(job).await.is_err() {
                    return;
                }
            }
            if ended {
                return;
            }
        }
    }

    /// Fetches what the playlist loop asks for, in order, each part once.
    async fn fetch_parts(
        &self,
        mut jobs: VecDeque<PartJob>,
        mut rx: mpsc::Receiver<PartJob>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut recent: VecDeque<String> = VecDeque::with_capacity(RECENT_PARTS);
        loop {
            let job = match jobs.pop_front() {
                Some(j) => j,
                None => tokio::select! {
                    j = rx.recv() => match j {
                        Some(j) => j,
                        None => return,
                    },
                    _ = stop.wait_for(|s| *s) => return,
                },
            };
            let (uri, listed, live) = match job {
                PartJob::Init(uri) => {
                    match self.get_part(&uri, &mut stop).await {
                        Got::Bytes(b) => self.stats.add_bytes(b.len()),
                        Got::Failed => {}
                        Got::Stopped => return,
                    }
                    continue;
                }
                PartJob::Listed {
                    uri,
                    duration_ms,
                    live,
                } => (uri, Some(duration_ms), live),
                PartJob::Hint(uri) => (uri, None, true),
            };
            if !recent.contains(&uri) {
                match self.get_part(&uri, &mut stop).await {
                    Got::Bytes(bytes) => self.part_arrived(&uri, &bytes, live, listed.is_none()),
                    // A hinted part that failed is fetched again once listed.
                    Got::Failed => continue,
                    Got::Stopped => return,
                }
                if recent.len() == RECENT_PARTS {
                    recent.pop_front();
                }
                recent.push_back(uri);
            }
            // A part plays once the viewer has it and knows its length (from the listing).
            if let Some(duration_ms) = listed {
                let now = self.clock.ms();
                self.stats
                    .first_keyframe(now.saturating_sub(self.started_ms));
                self.stats.note_media(now, duration_ms);
            }
        }
    }

    async fn get_part(&self, uri: &str, stop: &mut watch::Receiver<bool>) -> Got {
        let url = match self.base.join(uri) {
            Ok(u) => u,
            Err(e) => {
                self.ll
                    .problem(Counter::PartError, || format!("part URI {uri}: {e}"));
                return Got::Failed;
            }
        };
        let got = tokio::select! {
            g = fetch(&self.http, url.clone()) => g,
            _ = stop.wait_for(|s| *s) => return Got::Stopped,
        };
        match got {
            Ok(bytes) => Got::Bytes(bytes),
            Err(_) if *stop.borrow() => Got::Stopped,
            Err(e) => {
                self.ll
                    .problem(Counter::PartError, || format!("{url}: {e}"));
                Got::Failed
            }
        }
    }

    fn part_arrived(&self, uri: &str, bytes: &Bytes, live: bool, hinted: bool) {
        self.stats.add_bytes(bytes.len());
        self.ll.count(Counter::PartFetched);
        if hinted {
            self.ll.count(Counter::HintedPart);
        }
        if live {
            self.ll.arrived(uri, self.clock.us());
            if let Some(newest) = scan_latency_stamps(bytes).into_iter().max() {
                self.ll.glass_to_part(unix_micros().saturating_sub(newest));
            }
        }
    }
}

enum Got {
    Bytes(Bytes),
    Failed,
    Stopped,
}
