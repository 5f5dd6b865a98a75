//! `GET /hls/{stream}/index.m3u8` and the init and media segments next to it, from memory.
//! Playlists are gzipped here when the client takes it (once per playlist version, see
//! [`gzip`]); segments are compressed video and go out as they are.

mod gzip;

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{stream_name, ApiError, AppState};
use gzip::{accepts_gzip, GzipCache};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

/// The HLS routes, with the gzipped-playlist cache they share.
pub fn routes() -> Router<AppState> {
    let cache = Arc::new(GzipCache::default());
    Router::new().route(
        "/hls/{stream}/{file}",
        get(
            move |state: State<AppState>, path: Path<(String, String)>, request: Request| {
                file(state, path, request, cache.clone())
            },
        ),
    )
}

async fn file(
    State(state): State<AppState>,
    Path((name, file)): Path<(String, String)>,
    request: Request,
    gzip_cache: Arc<GzipCache>,
) -> Result<Response, ApiError> {
    let name = stream_name(&name)?;
    if !valid_file_name(&file) {
        return Err(ApiError::bad_request("invalid HLS file name"));
    }
    let stream = state
        .hub
        .live_or_recent(name)
        .ok_or_else(|| ApiError::not_found(format!("no stream {name:?}")))?;
    if file == "index.m3u8" {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>();
        let client = client_key(peer.map(|c| c.0), request.headers());
        let plain = stream
            .hls_playlist(client)
            .ok_or_else(|| ApiError::not_found("the first segment is not ready yet"))?;
        let headers = [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(PLAYLIST_TYPE),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            // Caches must key the playlist on the encoding asked for.
            (header::VARY, HeaderValue::from_static("accept-encoding")),
        ];
        if accepts_gzip(request.headers()) {
            let gz = gzip_cache.playlist(name, &Arc::downgrade(&stream), &plain);
            let encoding = [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))];
            return Ok((headers, encoding, gz).into_response());
        }
        return Ok((headers, plain).into_response());
    }
    let content_type = if file.ends_with(".mp4") {
        "video/mp4"
    } else if file.ends_with(".m4s") {
        "video/iso.segment"
    } else {
        return Err(ApiError::not_found("no such HLS file"));
    };
    let body = stream
        .hls_file(&file)
        .ok_or_else(|| ApiError::not_found("no such segment (expired or not yet written)"))?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Names are unique per publish and never rewritten.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        body,
    )
        .into_response())
}

/// Segment and playlist names are ours: letters, digits, `-`, `_` and one `.` before the extension.
fn valid_file_name(f: &str) -> bool {
    (1..=128).contains(&f.len())
        && f.bytes().filter(|&b| b == b'.').count() == 1
        && !f.starts_with('.')
        && f.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Identifies an HLS client for the viewer count: its address and user agent.
fn client_key(addr: Option<SocketAddr>, headers: &HeaderMap) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    addr.map(|a| a.ip()).hash(&mut h);
    headers
        .get(header::USER_AGENT)
        .map(|v| v.as_bytes())
        .hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert!(valid_file_name("index.m3u8"));
        assert!(valid_file_name("3fa2b1c0-17.m4s"));
        assert!(!valid_file_name(".."));
        assert!(!valid_file_name("../x.m4s"));
        assert!(!valid_file_name("a.b.m4s"));
        assert!(!valid_file_name("x%2F.m4s"));
        assert!(!valid_file_name(".hidden"));
    }
}
