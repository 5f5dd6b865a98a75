//! The `castgate` binary: reads the config, starts the gateway, stops on Ctrl-C / SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use castgate::config::Config;
use clap::Parser;

const DEFAULT_CONFIG: &str = "config/castgate.toml";

#[derive(Parser)]
#[command(
    name = "castgate",
    version,
    about = "Live-streaming gateway: WHIP in, HLS and HTTP-FLV out"
)]
struct Cli {
    /// Config file (default: config/castgate.toml when present, built-in defaults otherwise).
    #[arg(long)]
    config: Option<PathBuf>,
    /// HTTP listen address, overriding the config (default 0.0.0.0:8080).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // rtc_dtls warns on every connection that it has no server name to check;
                // a WHIP server's DTLS peer is checked by the certificate fingerprint instead.
                .unwrap_or_else(|_| "info,webrtc=warn,rtc=warn,rtc_dtls::config=error".into()),
        )
        .init();
    let cli = Cli::parse();
    raise_open_file_limit();
    let config = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("castgate: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match castgate::server::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("castgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.http_addr();
    eprintln!("castgate: serving on http://{addr}  (WHIP: /whip/NAME, HLS: /hls/NAME/master.m3u8, FLV: /flv/NAME.flv)");
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// Every viewer is a socket and every HLS segment in the window a memory file: a server with
/// thousands of viewers needs more descriptors than the usual soft limit of 1024. Raise the soft
/// limit to the hard one, as servers commonly do; failing that, carry on with what there is.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit with a valid pointer to an rlimit of our own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let soft = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                tracing::debug!(
                    from = soft,
                    to = limit.rlim_max,
                    "raised the open file limit"
                );
            }
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, castgate::config::ConfigError> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None if std::path::Path::new(DEFAULT_CONFIG).exists() => {
            Config::load(std::path::Path::new(DEFAULT_CONFIG))?
        }
        None => Config::default(),
    };
    if let Some(listen) = cli.listen {
        config.http.listen = listen;
    }
    Ok(config)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
