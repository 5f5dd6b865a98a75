//! HTTPS: the rustls server configuration (a PEM certificate and key from the config, or a
//! self-signed certificate made at start) and the accept loop that serves the router over TLS.
//! Browsers give a page the camera only on HTTPS (or localhost), so publishing from another
//! machine on a LAN needs this or a TLS reverse proxy in front of castgate.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::HttpConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[http] tls_cert and tls_key must be set together")]
    Incomplete,
    #[error("[http] tls_self_signed cannot be combined with tls_cert/tls_key")]
    Conflicting,
    #[error("cannot read {path}: {source}")]
    Pem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{0} holds no certificate")]
    NoCertificate(PathBuf),
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
    #[error("certificate and key rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The TLS settings for `http`, or `None` when it asks for plain HTTP.
pub fn server_config(http: &HttpConfig) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let (chain, key) = match (&http.tls_cert, &http.tls_key, http.tls_self_signed) {
        (None, None, false) => return Ok(None),
        (Some(_), Some(_), true) | (Some(_), None, true) | (None, Some(_), true) => {
            return Err(TlsError::Conflicting)
        }
        (Some(cert), Some(key), false) => (read_chain(cert)?, read_key(key)?),
        (None, None, true) => self_signed(http.listen)?,
        _ => return Err(TlsError::Incomplete),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // axum serves HTTP/1.1 (long HTTP-FLV responses, WHIP); say so in ALPN (RFC 7301).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem {
        path: path.to_path_buf(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem {
        path: path.to_path_buf(),
        source,
    })
}

/// A certificate for `localhost`, the loopback addresses and the listen address (when it is a
/// specific one). Browsers still warn, once, since nobody vouches for it.
fn self_signed(
    listen: SocketAddr,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        names.push(listen.ip().to_string());
    }
    let certified = rcgen::generate_simple_self_signed(names)?;
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    Ok((vec![certified.cert.der().clone()], key.into()))
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves; then stops accepting, asks
/// every open connection to finish its current response and close, and waits for them.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(config);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // What `into_make_service_with_connect_info` gives handlers over plain HTTP.
        let service = router.clone().layer(Extension(ConnectInfo(peer)));
        let acceptor = acceptor.clone();
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            // A client that never finishes its handshake must not hold a task forever.
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
            let tls = match handshake.await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            // HTTP/1.1 only, as ALPN says; upgrades kept for parity with plain HTTP.
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "HTTPS connection ended");
                    }
                }
                // (The guard wait_for returns must not live across the await below.)
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        // Reap finished connections so the set does not grow with every client.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(cert: Option<&str>, key: Option<&str>, self_signed: bool) -> HttpConfig {
        HttpConfig {
            tls_cert: cert.map(PathBuf::from),
            tls_key: key.map(PathBuf::from),
            tls_self_signed: self_signed,
            ..HttpConfig::default()
        }
    }

    #[test]
    fn plain_http_unless_tls_is_configured() {
        assert!(server_config(&HttpConfig::default()).unwrap().is_none());
    }

    #[test]
    fn self_signed_option_makes_a_usable_certificate() {
        let config = server_config(&http(None, None, true)).unwrap().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn cert_without_key_or_both_ways_at_once_are_refused() {
        assert!(matches!(
            server_config(&http(Some("c.pem"), None, false)),
            Err(TlsError::Incomplete)
        ));
        assert!(matches!(
            server_config(&http(Some("c.pem"), Some("k.pem"), true)),
            Err(TlsError::Conflicting)
        ));
    }

    #[test]
    fn pem_files_from_disk_are_loaded_and_a_missing_file_is_named() {
        let dir = std::env::temp_dir().join(format!("castgate-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["gw.example".into()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let config = http(cert.to_str(), key.to_str(), false);
        assert!(server_config(&config).unwrap().is_some());

        let missing = http(Some("/nonexistent/cert.pem"), key.to_str(), false);
        let error = server_config(&missing).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/cert.pem"), "{error}");
        // A key file is not a certificate chain.
        let swapped = http(key.to_str(), key.to_str(), false);
        assert!(matches!(
            server_config(&swapped),
            Err(TlsError::NoCertificate(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
