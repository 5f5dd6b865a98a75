//! Starting and stopping the whole gateway: the hub, WHIP ingest and the HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http::{app, AppState};
use crate::hub::{Hub, StreamSettings};
use crate::ingest::Ingest;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTPS: {0}")]
    Tls(#[from] crate::http::tls::TlsError),
    #[error("media port: {0}")]
    MediaPort(crate::ingest::IngestError),
}

/// A running gateway.
pub struct Server {
    http_addr: SocketAddr,
    ingest: Ingest,
    stop_tx: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Binds the HTTP listener and starts serving; returns once the socket is bound.
pub async fn start(config: Config) -> Result<Server, ServerError> {
    let config = Arc::new(config);
    let hub = Arc::new(Hub::new(StreamSettings {
        segment_target: config.segment_duration(),
        hls_window: config.hls.window,
        hls_part_target: config.part_target(),
        hls_mpegts: config.hls.mpegts,
        flv_queue: config.flv.viewer_queue,
        flv_merge_ms: config.flv.merge_write_ms,
        flv_merge_from_viewers: config.flv.merge_from_viewers,
        hls_opus_passthrough: config.audio.hls_opus_passthrough,
    }));
    let ingest = Ingest::new(config.clone(), hub.clone());
    if let Some(port) = ingest.bind_media_port().map_err(ServerError::MediaPort)? {
        tracing::info!(udp_port = port, "WebRTC media on one shared UDP port");
    }
    let state = AppState {
        config: config.clone(),
        hub: hub.clone(),
        ingest: ingest.clone(),
    };
    let tls = crate::http::tls::server_config(&config.http)?;
    let listener = TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.http.listen,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.http.listen,
        source,
    })?;
    let tls_on = tls.is_some();
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let router = app(state);
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            hub.sweep();
        }
    });
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        };
        if let Some(tls) = tls {
            crate::http::tls::serve(listener, tls, router, shutdown).await;
        } else if let Err(e) = axum::serve(
            // `tap_io` also makes axum hand handlers the peer address (ConnectInfo).
            crate::sendfile::SendfileListener::new(listener).tap_io(|stream| stream.set_nodelay()),
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        {
            tracing::error!(error = %e, "HTTP server stopped");
        }
        sweeper.abort();
    });
    tracing::info!(%http_addr, https = tls_on, "castgate listening");
    Ok(Server {
        http_addr,
        ingest,
        stop_tx,
        task,
    })
}

impl Server {
    /// The address the HTTP server is bound to (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Ends every publish (so FLV responses finish), then stops the HTTP server.
    pub async fn shutdown(self) {
        self.ingest.close_all();
        let _ = self.stop_tx.send(true);
        let _ = self.task.await;
        let ingest = self.ingest;
        // Joins the media loop threads: off the async workers.
        let _ = tokio::task::spawn_blocking(move || ingest.stop()).await;
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}
