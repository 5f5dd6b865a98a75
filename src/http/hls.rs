//! `GET /hls/{stream}/index.m3u8` (the fMP4 media playlist, Low-Latency HLS when configured),
//! `master.m3u8` (the multivariant playlist viewers are given), and the init segments, media
//! segments and parts next to them, from memory.
//!
//! Blocking playlist reload (`_HLS_msn`/`_HLS_part`) and requests for the hinted next part wait
//! on the stream's progress channel: a waiting request holds one watch receiver and a timer,
//! nothing else, and is answered as soon as the segment or part is published.
//!
//! Playlists are gzipped here when the client takes it (once per playlist version, see
//! [`gzip`]); segments are compressed video and go out as they are.

mod gzip;

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{stream_name, ApiError, AppState};
use crate::hub::{HlsRequest, Stream};
use crate::mux::hls::blocking::{self, Readiness};
use crate::mux::hls::{render_multivariant, HlsProgress};
use gzip::{accepts_gzip, GzipCache};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// Names are unique per publish and never rewritten.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

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
    // The request (its body is not `Sync`) is not held across the waits below.
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>();
    let client = client_key(peer.map(|c| c.0), request.headers());
    let gzip = accepts_gzip(request.headers());
    let query = request.uri().query().map(str::to_string);
    drop(request);
    let started = tokio::time::Instant::now();
    let response = match file.as_str() {
        "index.m3u8" => match blocking::parse_query(query.as_deref()) {
            Ok(directives) => {
                let gzip_cache = gzip.then_some(&*gzip_cache);
                media_playlist(name, &stream, directives, client, gzip_cache).await
            }
            Err(e) => Err(ApiError::bad_request(e.to_string())),
        },
        "master.m3u8" => multivariant(&stream, client),
        "ts.m3u8" => ts_playlist(&stream, client),
        _ => segment_file(&stream, &file).await,
    };
    // RUST_LOG=castgate::http::hls=debug: every request with how long it was held, to follow
    // a player's requests against the stream's progress.
    tracing::debug!(
        stream = name,
        file,
        query = query.as_deref().unwrap_or(""),
        status = response
            .as_ref()
            .map_or_else(|e| e.status.as_u16(), |r| r.status().as_u16()),
        held_ms = started.elapsed().as_millis() as u64,
        "hls request"
    );
    response
}

/// The media playlist, after waiting for the segment or part a blocking request names.
/// `gzip_cache`: the client takes gzip.
async fn media_playlist(
    name: &str,
    stream: &Arc<Stream>,
    query: blocking::PlaylistQuery,
    client: u64,
    gzip_cache: Option<&GzipCache>,
) -> Result<Response, ApiError> {
    let (ll, target_duration) = stream.hls_timing();
    let blocking_request = ll.is_some() && query.msn.is_some();
    if blocking_request {
        let ll = ll.as_ref();
        wait_for(stream, target_duration, |p| {
            blocking::playlist_readiness(&query, p, ll)
        })
        .await
        .map_err(|e| match e {
            Waited::TooFar => {
                ApiError::bad_request("_HLS_msn/_HLS_part is too far beyond the live edge")
            }
            Waited::TimedOut => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the requested segment or part did not come in time",
            ),
        })?;
    }
    let delta = query.skip && ll.is_some();
    let plain = stream
        .hls_playlist(client, delta)
        .ok_or_else(|| ApiError::not_found("the first segment is not ready yet"))?;
    stream.count_hls_request(if blocking_request {
        HlsRequest::BlockingPlaylist
    } else {
        HlsRequest::Playlist
    });
    // A blocking answer is the playlist as of that part: a cache may keep it for its exact
    // query a little while (every viewer asking for the same part then shares one answer).
    // The playlist without directives changes with every part.
    let cache_control = match ll {
        Some(ll) if blocking_request => {
            let secs = (ll.part_target * 6.0).ceil().max(1.0) as u32;
            HeaderValue::from_str(&format!("public, max-age={secs}"))
                .unwrap_or(HeaderValue::from_static("no-cache"))
        }
        _ => HeaderValue::from_static("no-cache"),
    };
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(PLAYLIST_TYPE),
        ),
        (header::CACHE_CONTROL, cache_control),
        // Caches must key the playlist on the encoding asked for.
        (header::VARY, HeaderValue::from_static("accept-encoding")),
    ];
    if let Some(gzip_cache) = gzip_cache {
        let key = if delta {
            format!("{name}?skip")
        } else {
            name.to_string()
        };
        let gz = gzip_cache.playlist(&key, &Arc::downgrade(stream), &plain);
        let encoding = [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))];
        return Ok((headers, encoding, gz).into_response());
    }
    Ok((headers, plain).into_response())
}

/// `master.m3u8`: the renditions of the stream (one today) for players to choose from.
fn multivariant(stream: &Stream, client: u64) -> Result<Response, ApiError> {
    let variant = stream
        .hls_variant("index.m3u8", client)
        .ok_or_else(|| ApiError::not_found("the first segment is not ready yet"))?;
    stream.count_hls_request(HlsRequest::Multivariant);
    Ok(no_cache_playlist(render_multivariant(&[variant])))
}

/// A playlist that changes as the stream goes on: not to be cached.
fn no_cache_playlist(body: impl IntoResponse) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(PLAYLIST_TYPE),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// `ts.m3u8`: the MPEG-TS rendition, plain HLS (no blocking, no parts).
fn ts_playlist(stream: &Stream, client: u64) -> Result<Response, ApiError> {
    let body = stream
        .hls_ts_playlist(client)
        .ok_or_else(|| ApiError::not_found("no MPEG-TS segment yet (or the rendition is off)"))?;
    stream.count_hls_request(HlsRequest::Playlist);
    Ok(no_cache_playlist(body))
}

async fn segment_file(stream: &Arc<Stream>, file: &str) -> Result<Response, ApiError> {
    let content_type = if file.ends_with(".mp4") {
        "video/mp4"
    } else if file.ends_with(".ts") {
        "video/mp2t"
    } else if file.ends_with(".m4s") {
        "video/iso.segment"
    } else {
        return Err(ApiError::not_found("no such HLS file"));
    };
    // The part named by EXT-X-PRELOAD-HINT (or the few after it): held until it is complete,
    // then served whole.
    let part_number = stream.hls_part_number(file);
    if let Some(part) = part_number {
        let (ll, target_duration) = stream.hls_timing();
        if let Some(ll) = ll {
            wait_for(stream, target_duration, |p| {
                blocking::part_readiness(part, p, &ll)
            })
            .await
            .map_err(|_| ApiError::not_found("no such part (too far ahead or late)"))?;
        }
    }
    let body = stream
        .hls_file(file)
        .ok_or_else(|| ApiError::not_found("no such segment (expired or not yet written)"))?;
    stream.count_hls_request(if part_number.is_some() {
        HlsRequest::Part
    } else if content_type == "video/mp4" {
        HlsRequest::Init
    } else {
        HlsRequest::Segment
    });
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
        ],
        body,
    )
        .into_response())
}

/// Why a wait ended without the answer being ready.
enum Waited {
    TooFar,
    TimedOut,
}

/// Waits until `ready` says the stream has got far enough, at most three target durations
/// (RFC 8216bis §6.2.5.2: then 503).
async fn wait_for(
    stream: &Stream,
    target_duration: u32,
    ready: impl Fn(HlsProgress) -> Readiness,
) -> Result<(), Waited> {
    let mut progress = stream.hls_progress();
    let limit = Duration::from_secs(3 * u64::from(target_duration.max(1)));
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let now = *progress.borrow_and_update();
        match ready(now) {
            Readiness::Ready => return Ok(()),
            Readiness::TooFar => return Err(Waited::TooFar),
            Readiness::Wait => {}
        }
        match tokio::time::timeout_at(deadline, progress.changed()).await {
            Ok(Ok(())) => {}
            // The stream is gone: answer with what it left.
            Ok(Err(_)) => return Ok(()),
            Err(_) => return Err(Waited::TimedOut),
        }
    }
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
