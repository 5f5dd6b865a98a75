//! `ll-paced-get` (BENCHMARKS.md, "Issue 11: LL-HLS"): N plain HTTP clients that GET the
//! same URLs (a playlist and a part) once every interval, all at the same instant, the way
//! LL-HLS viewers hit a server when a part completes: for measuring another server (nginx)
//! serving castgate's files from disk at the request rate castgate saw. Reports requests,
//! non-200s, bytes/s, the spread of answer times behind the earliest per tick and URL (what
//! `castgate-load --ll-hls-viewers` measures for castgate's answers), time from the tick to
//! the answer, and the CPU of the `--pid` processes over the ticks.
//!
//! `cargo build --release --example ll-paced-get`, then
//! `target/release/examples/ll-paced-get --clients 1000 --interval-ms 200 --duration 60
//! --pid WORKER URL...`

use std::sync::{Arc, Mutex};
use std::time::Duration;

use castgate::load::{sample_process, AnswerSpread, LatencySpread, ProcSample};
use clap::Parser;
use futures_util::future::join_all;
use tokio::time::Instant;

#[derive(Parser)]
#[command(name = "ll-paced-get", about = "Paced GETs from many clients at once")]
struct Cli {
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Each client GETs every URL once per interval (all clients at the same instant).
    #[arg(long, default_value_t = 200)]
    interval_ms: u64,
    /// Seconds of ticks (after the clients have connected).
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Seconds over which the clients connect before the first tick.
    #[arg(long, default_value_t = 4.0)]
    ramp: f64,
    /// Processes whose CPU time and RSS to report over the ticks (e.g. nginx workers).
    #[arg(long)]
    pid: Vec<u32>,
    /// `{n}` in a URL becomes this number plus the tick's index (0, 1, ...): at one part
    /// per tick, a URL naming castgate's part file `PREFIX-p{n}.m4s` then always names a part
    /// of the same age, complete and still kept.
    #[arg(long, default_value_t = 0)]
    counter_start: u64,
    /// The URLs, fetched concurrently at each tick.
    #[arg(required = true)]
    urls: Vec<String>,
}

#[derive(Default)]
struct Tally {
    requests: u64,
    non_200: u64,
    errors: u64,
    bytes: u64,
    /// Tick to answer read, µs.
    after_tick_us: Vec<u64>,
    spread: AnswerSpread,
}

async fn get(http: &reqwest::Client, url: &str) -> Result<(u16, usize), String> {
    let r = http
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    Ok((status, body.len()))
}

/// When the clients fire.
#[derive(Clone, Copy)]
struct Schedule {
    first_tick: Instant,
    interval: Duration,
    ticks: u64,
    counter_start: u64,
}

async fn client(
    http: reqwest::Client,
    urls: Arc<Vec<String>>,
    start_at: Instant,
    Schedule {
        first_tick,
        interval,
        ticks,
        counter_start,
    }: Schedule,
    tally: Arc<Mutex<Tally>>,
) {
    let url = |u: &str, k: u64| u.replace("{n}", &(counter_start + k).to_string());
    tokio::time::sleep_until(start_at).await;
    // Open a connection per URL before the ticks, as a player has by then (with a URL
    // without `{n}`: the numbered file may not exist yet).
    let plain = urls.iter().find(|u| !u.contains("{n}")).cloned();
    join_all(urls.iter().map(|u| {
        let warm = match &plain {
            Some(p) if u.contains("{n}") => p.clone(),
            _ => url(u, 0),
        };
        let http = &http;
        async move { get(http, &warm).await }
    }))
    .await;
    for k in 0..ticks {
        let tick = first_tick + interval * k as u32;
        tokio::time::sleep_until(tick).await;
        let answers = join_all(urls.iter().enumerate().map(|(i, u)| {
            let (http, u) = (&http, url(u, k));
            async move {
                let got = get(http, &u).await;
                (i, got, Instant::now())
            }
        }))
        .await;
        let mut t = tally.lock().expect("tally");
        for (i, got, at) in answers {
            t.requests += 1;
            match got {
                Ok((200, n)) => {
                    t.bytes += n as u64;
                    let at_us = at.duration_since(first_tick).as_micros() as u64;
                    t.after_tick_us
                        .push(at.duration_since(tick).as_micros() as u64);
                    t.spread.record(&format!("{i}-{k}"), at_us, true);
                }
                Ok(_) => t.non_200 += 1,
                Err(_) => t.errors += 1,
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client");
    let urls = Arc::new(cli.urls.clone());
    let interval = Duration::from_millis(cli.interval_ms.max(1));
    let ticks = (cli.duration * 1000.0 / interval.as_millis() as f64).round() as u64;
    let now = Instant::now();
    let first_tick = now + Duration::from_secs_f64(cli.ramp + 1.0);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let tasks: Vec<_> = (0..cli.clients)
        .map(|i| {
            let start_at =
                now + Duration::from_secs_f64(cli.ramp * i as f64 / cli.clients.max(1) as f64);
            tokio::spawn(client(
                http.clone(),
                urls.clone(),
                start_at,
                Schedule {
                    first_tick,
                    interval,
                    ticks,
                    counter_start: cli.counter_start,
                },
                tally.clone(),
            ))
        })
        .collect();
    tokio::time::sleep_until(first_tick).await;
    let before: Vec<Option<ProcSample>> = cli.pid.iter().map(|&p| sample_process(p).ok()).collect();
    let own_before = sample_process(std::process::id()).ok();
    let started = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let after: Vec<_> = cli.pid.iter().map(|&p| sample_process(p).ok()).collect();
    let own_after = sample_process(std::process::id()).ok();
    let mut t = std::mem::take(&mut *tally.lock().expect("tally"));
    let lateness = t.spread.finish();
    let show = |what: &str, s: LatencySpread| {
        println!(
            "{what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={})",
            s.p50_ms, s.p99_ms, s.max_ms, s.count
        )
    };
    println!(
        "{} clients x {} URLs every {} ms for {secs:.1} s: {} requests ({:.0}/s), {} non-200, {} errors, {:.1} Mb/s",
        cli.clients,
        urls.len(),
        interval.as_millis(),
        t.requests,
        t.requests as f64 / secs,
        t.non_200,
        t.errors,
        t.bytes as f64 * 8.0 / 1e6 / secs
    );
    show(
        "answer behind the earliest of its tick and URL",
        LatencySpread::of_us(&lateness),
    );
    show("tick to answer", LatencySpread::of_us(&t.after_tick_us));
    let mut total_ms = 0u64;
    for ((pid, b), a) in cli.pid.iter().zip(&before).zip(&after) {
        if let (Some(b), Some(a)) = (b, a) {
            let ms = a.cpu_ms.saturating_sub(b.cpu_ms);
            total_ms += ms;
            println!(
                "pid {pid}: {:.1} CPU-ms/s, RSS {:.1} MiB",
                ms as f64 / secs,
                a.rss_kib as f64 / 1024.0
            );
        }
    }
    if let (Some(b), Some(a)) = (own_before, own_after) {
        println!(
            "this client: {:.1} CPU-ms/s, RSS {:.1} MiB",
            a.cpu_ms.saturating_sub(b.cpu_ms) as f64 / secs,
            a.rss_kib as f64 / 1024.0
        );
    }
    if !cli.pid.is_empty() {
        println!(
            "pids together: {:.1} CPU-ms/s, {:.1} µs per request",
            total_ms as f64 / secs,
            total_ms as f64 * 1000.0 / t.requests.max(1) as f64
        );
    }
}
