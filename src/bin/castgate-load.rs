//! `castgate-load`: load-tests a running castgate gateway (issue 5). Publishes N looped WHIP
//! streams, attaches M HTTP-FLV, K HLS and L Low-Latency HLS viewers, prints a per-second table and a summary,
//! writes a JSON report, and exits non-zero when stalls or losses exceed the given limits.
//! The engine is `castgate::load`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use castgate::client::{generate_fixture_with_audio, FixtureAudio, MediaSource};
use castgate::load::{run, Limits, LoadConfig};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "castgate-load",
    version,
    about = "Load-test a running castgate: WHIP publishers, HTTP-FLV, HLS and LL-HLS viewers"
)]
struct Cli {
    /// Base URL of the gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Number of WHIP publishers (one stream each).
    #[arg(short = 'n', long, default_value_t = 1)]
    publishers: usize,
    /// Do not publish: the -n streams are published by someone else (e.g. a second
    /// castgate-load with -m 0 -k 0), so viewer load cannot starve the publishers.
    #[arg(long)]
    external_publishers: bool,
    /// Number of HTTP-FLV viewers, spread round-robin over the streams.
    #[arg(short = 'm', long, default_value_t = 1)]
    flv_viewers: usize,
    /// Number of HLS viewers, spread round-robin over the streams.
    #[arg(short = 'k', long, default_value_t = 1)]
    hls_viewers: usize,
    /// Number of Low-Latency HLS viewers, spread round-robin over the streams: each follows
    /// the live edge as hls.js does (blocking playlist reloads for the next part, every new
    /// part, the preload-hinted part asked for ahead) and the run reports the spread of
    /// answer times across viewers, blocking-reload durations and glass-to-part latency.
    #[arg(short = 'l', long, default_value_t = 0)]
    ll_hls_viewers: usize,
    /// Publishers started per second.
    #[arg(long, default_value_t = 10.0)]
    publisher_ramp: f64,
    /// Viewers started per second.
    #[arg(long, default_value_t = 100.0)]
    viewer_ramp: f64,
    /// Seconds to hold once everyone has started (the measured steady window).
    #[arg(short = 'd', long, default_value_t = 10.0)]
    duration: f64,
    /// Stream names are PREFIX0, PREFIX1, ...
    #[arg(long, default_value = "load")]
    prefix: String,
    /// Gateway process id: sample its CPU time and RSS from /proc.
    #[arg(long)]
    pid: Option<u32>,
    /// Another process to sample over the steady window (CPU, RSS), e.g. each worker of an
    /// nginx in front of the gateway; may be given several times.
    #[arg(long)]
    also_pid: Vec<u32>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "castgate-load.json")]
    json: PathBuf,
    /// Fail when more viewer stalls (over 1 s without media) than this happen.
    #[arg(long, default_value_t = 0)]
    max_stalls: u64,
    /// Fail when more things are lost than this (failed publishers or viewers, HLS segments
    /// never fetched, FLV jumps over 1 s, viewers that got no media, LL-HLS problems:
    /// non-200 answers, playlists the strict reader refuses, parts missed).
    #[arg(long, default_value_t = 0)]
    max_lost: u64,
    /// Directory for the ffmpeg-generated fixture (made once, then reused).
    #[arg(long, default_value = "target/load-fixtures")]
    fixture_dir: PathBuf,
    /// Length of the generated fixture, looped by every publisher.
    #[arg(long, default_value_t = 10)]
    fixture_seconds: u32,
    /// Audio of the generated fixture: mono Opus at 32 kb/s, as a browser sends from a
    /// webcam microphone by default, or stereo at 64 kb/s, offered with `sprop-stereo=1`
    /// (the gateway then encodes stereo AAC, at twice the transcoding cost).
    #[arg(long, value_enum, default_value_t = AudioArg::Mono)]
    audio: AudioArg,
    /// Publish this H.264 Annex B file instead of the generated fixture.
    #[arg(long, requires = "fps")]
    h264: Option<PathBuf>,
    /// Frame rate of --h264.
    #[arg(long)]
    fps: Option<u32>,
    /// Ogg Opus audio to go with --h264.
    #[arg(long, requires = "h264")]
    opus: Option<PathBuf>,
    /// Bearer token for WHIP.
    #[arg(long)]
    bearer: Option<String>,
    /// Local UDP address for the publishers' ICE candidates.
    #[arg(long, default_value = "127.0.0.1:0")]
    udp_addr: Vec<String>,
    /// Print each second's sample as it is taken.
    #[arg(long)]
    live: bool,
    /// Slow FLV viewers: each reads at most this many kbit/s (0 = as fast as data comes).
    /// Below the stream's bitrate they fall behind, and the gateway must skip them ahead
    /// rather than buffer: expect stalls and losses, and watch RSS.
    #[arg(long, default_value_t = 0)]
    flv_read_kbps: u64,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum AudioArg {
    Mono,
    Stereo,
}

impl From<AudioArg> for FixtureAudio {
    fn from(a: AudioArg) -> Self {
        match a {
            AudioArg::Mono => FixtureAudio::Mono,
            AudioArg::Stereo => FixtureAudio::Stereo,
        }
    }
}

fn source(cli: &Cli) -> Result<MediaSource, String> {
    match (&cli.h264, cli.fps) {
        (Some(h264), Some(fps)) => {
            MediaSource::from_files(h264, fps, cli.opus.as_deref()).map_err(|e| e.to_string())
        }
        _ => generate_fixture_with_audio(&cli.fixture_dir, cli.fixture_seconds, cli.audio.into())
            .map(|f| f.media_source())
            .map_err(|e| e.to_string()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,webrtc=error,rtc=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let source = match source(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("castgate-load: media: {e}");
            return ExitCode::from(2);
        }
    };
    let mut cfg = LoadConfig::new(cli.url.clone(), source);
    cfg.publishers = cli.publishers;
    cfg.start_publishers = !cli.external_publishers;
    cfg.flv_viewers = cli.flv_viewers;
    cfg.hls_viewers = cli.hls_viewers;
    cfg.ll_hls_viewers = cli.ll_hls_viewers;
    cfg.publisher_ramp_per_sec = cli.publisher_ramp;
    cfg.viewer_ramp_per_sec = cli.viewer_ramp;
    cfg.hold = Duration::from_secs_f64(cli.duration.max(1.0));
    cfg.stream_prefix = cli.prefix.clone();
    cfg.bearer = cli.bearer.clone();
    cfg.udp_addrs = cli.udp_addr.clone();
    cfg.gateway_pid = cli.pid;
    cfg.other_pids = cli.also_pid.clone();
    cfg.live_output = cli.live;
    cfg.flv_read_limit_bps = (cli.flv_read_kbps > 0).then(|| cli.flv_read_kbps * 1000);
    let report = match run(cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("castgate-load: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", report.table());
    match serde_json::to_vec_pretty(&report) {
        Ok(json) => {
            if let Err(e) = std::fs::write(&cli.json, json) {
                eprintln!("castgate-load: write {}: {e}", cli.json.display());
                return ExitCode::from(2);
            }
            println!("report: {}", cli.json.display());
        }
        Err(e) => eprintln!("castgate-load: JSON: {e}"),
    }
    let violations = report.violations(Limits {
        max_stalls: cli.max_stalls,
        max_lost: cli.max_lost,
    });
    if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        for v in violations {
            eprintln!("castgate-load: FAIL: {v}");
        }
        ExitCode::FAILURE
    }
}
