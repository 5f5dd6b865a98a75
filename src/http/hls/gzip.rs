//! Gzipped HLS playlists, compressed once per playlist version rather than once per request,
//! and the `Accept-Encoding` check that decides who gets them.
//!
//! A live playlist changes once per segment (every couple of seconds) but is polled by every
//! viewer about as often, so compressing per request (a fresh deflate state each time) cost
//! more than everything else on the playlist path together.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, Weak};

use axum::http::{header, HeaderMap};
use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::hub::Stream;

/// Entries are pruned of ended streams when the map reaches this size (or twice the size it
/// had after the last prune), so the cache stays proportional to the streams being watched.
const PRUNE_AT_LEAST: usize = 64;

/// The gzipped form of the latest playlist of each stream, by stream name.
#[derive(Default)]
pub struct GzipCache {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_name: HashMap<String, Entry>,
    prune_at: usize,
}

struct Entry {
    /// The publish the entry belongs to; gone once the hub has dropped it.
    stream: Weak<Stream>,
    /// The text `gzip` is the compression of: a new playlist (or a new publish of the same
    /// name) no longer matches it, so the entry is replaced rather than served.
    plain: Bytes,
    gzip: Bytes,
}

impl GzipCache {
    /// The gzip of `plain`, the current playlist of `stream` called `name`: from the cache when
    /// it holds the compression of exactly these bytes, else compressed now and kept.
    pub fn playlist(&self, name: &str, stream: &Weak<Stream>, plain: &Bytes) -> Bytes {
        if let Some(e) = self.lock().by_name.get(name) {
            if e.plain == *plain {
                return e.gzip.clone();
            }
        }
        // Compress without the lock held: other streams' viewers need not wait for it. Two
        // requests racing here both compress and the later store wins; both are correct.
        let gzip = compress(plain);
        let mut entries = self.lock();
        if entries.by_name.len() >= entries.prune_at.max(PRUNE_AT_LEAST) {
            entries.by_name.retain(|_, e| e.stream.strong_count() > 0);
            entries.prune_at = entries.by_name.len() * 2;
        }
        entries.by_name.insert(
            name.to_string(),
            Entry {
                stream: stream.clone(),
                plain: plain.clone(),
                gzip: gzip.clone(),
            },
        );
        gzip
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_name.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Every operation leaves the map consistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Best compression: it is paid once per playlist version, and smaller bodies help every viewer.
fn compress(plain: &[u8]) -> Bytes {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(plain.len() / 2 + 64),
        Compression::best(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(plain);
    Bytes::from(enc.finish().unwrap_or_default())
}

/// True when the request's `Accept-Encoding` (RFC 9110 §12.5.3) takes gzip: `gzip` (or its old
/// alias `x-gzip`) listed with a non-zero weight, or, if gzip is not named, `*` with one.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut named: Option<bool> = None;
    let mut any = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let acceptable = parts.all(|p| !is_zero_weight(p));
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                // When gzip is listed twice, refusing it anywhere wins.
                named = Some(named.unwrap_or(true) && acceptable);
            } else if coding == "*" {
                any |= acceptable;
            }
        }
    }
    named.unwrap_or(any)
}

/// A `q=0` parameter (`q=0`, `q=0.0`, `q=0.000`): the coding is not acceptable.
fn is_zero_weight(param: &str) -> bool {
    let Some((key, value)) = param.split_once('=') else {
        return false;
    };
    if !key.trim().eq_ignore_ascii_case("q") {
        return false;
    }
    let value = value.trim();
    match value.strip_prefix('0') {
        Some(rest) => {
            rest.is_empty() || (rest.starts_with('.') && rest[1..].bytes().all(|b| b == b'0'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::Arc;

    use axum::http::HeaderValue;

    use crate::hub::{Hub, StreamSettings};

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn accept(values: &[&str]) -> bool {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        accepts_gzip(&h)
    }

    #[test]
    fn gzip_is_taken_when_listed_with_a_weight_above_zero() {
        assert!(accept(&["gzip"]));
        assert!(accept(&["gzip, deflate, br"]));
        assert!(accept(&["br;q=1.0, GZIP;q=0.5"]));
        assert!(accept(&["x-gzip"]));
        assert!(accept(&["br", "gzip"]), "over two header lines");
        assert!(accept(&["gzip;q=0.001"]));
        assert!(accept(&["*"]));
        assert!(accept(&["br, *;q=0.1"]));
    }

    #[test]
    fn gzip_is_refused_when_absent_or_weighted_zero() {
        assert!(!accept(&[]));
        assert!(!accept(&["identity"]));
        assert!(!accept(&["br, deflate"]));
        assert!(!accept(&["gzip;q=0"]));
        assert!(!accept(&["gzip; q=0.000, br"]));
        assert!(
            !accept(&["*, gzip;q=0"]),
            "naming gzip overrides the wildcard"
        );
        assert!(!accept(&["*;q=0"]));
        assert!(!accept(&["gzip", "gzip;q=0"]));
    }

    #[test]
    fn zero_weights() {
        assert!(is_zero_weight("q=0"));
        assert!(is_zero_weight(" Q = 0.00 "));
        assert!(!is_zero_weight("q=0.01"));
        assert!(!is_zero_weight("q=1"));
        assert!(!is_zero_weight("q=0.0x"));
        assert!(!is_zero_weight("level=0"));
    }

    fn stream(hub: &Hub, name: &str) -> Arc<Stream> {
        hub.claim(name).unwrap()
    }

    #[test]
    fn a_playlist_is_compressed_once_and_served_from_the_cache() {
        let hub = Hub::new(StreamSettings::default());
        let cam = stream(&hub, "cam");
        let cache = GzipCache::default();
        let plain = Bytes::from_static(b"#EXTM3U\n#EXT-X-VERSION:7\n");
        let first = cache.playlist("cam", &Arc::downgrade(&cam), &plain);
        assert_eq!(gunzip(&first), plain);
        let second = cache.playlist("cam", &Arc::downgrade(&cam), &plain.clone());
        assert_eq!(
            second.as_ptr(),
            first.as_ptr(),
            "the same allocation: not compressed again"
        );
    }

    #[test]
    fn a_changed_playlist_replaces_the_cached_gzip() {
        let hub = Hub::new(StreamSettings::default());
        let cam = stream(&hub, "cam");
        let cache = GzipCache::default();
        let v1 = Bytes::from_static(b"#EXTM3U\nseg-1.m4s\n");
        let v2 = Bytes::from_static(b"#EXTM3U\nseg-1.m4s\nseg-2.m4s\n");
        let g1 = cache.playlist("cam", &Arc::downgrade(&cam), &v1);
        let g2 = cache.playlist("cam", &Arc::downgrade(&cam), &v2);
        assert_eq!(gunzip(&g1), v1);
        assert_eq!(gunzip(&g2), v2);
        assert_eq!(cache.len(), 1);
        // Equal bytes in another allocation still hit.
        let again = cache.playlist("cam", &Arc::downgrade(&cam), &Bytes::from(v2.to_vec()));
        assert_eq!(again.as_ptr(), g2.as_ptr());
    }

    #[test]
    fn streams_are_cached_apart() {
        let hub = Hub::new(StreamSettings::default());
        let (a, b) = (stream(&hub, "a"), stream(&hub, "b"));
        let cache = GzipCache::default();
        let pa = Bytes::from_static(b"#EXTM3U\na-0.m4s\n");
        let pb = Bytes::from_static(b"#EXTM3U\nb-0.m4s\n");
        let ga = cache.playlist("a", &Arc::downgrade(&a), &pa);
        let gb = cache.playlist("b", &Arc::downgrade(&b), &pb);
        assert_eq!(gunzip(&ga), pa);
        assert_eq!(gunzip(&gb), pb);
        assert_eq!(
            cache.playlist("a", &Arc::downgrade(&a), &pa).as_ptr(),
            ga.as_ptr()
        );
    }

    #[test]
    fn entries_of_dropped_streams_are_pruned_when_the_cache_grows() {
        let hub = Hub::new(StreamSettings::default());
        let cache = GzipCache::default();
        let plain = Bytes::from_static(b"#EXTM3U\n");
        let kept = stream(&hub, "kept");
        cache.playlist("kept", &Arc::downgrade(&kept), &plain);
        for i in 0..PRUNE_AT_LEAST - 1 {
            // A stream that is gone right after its playlist was served.
            let name = format!("gone{i}");
            let s = stream(&hub, &name);
            cache.playlist(&name, &Arc::downgrade(&s), &plain);
            hub.discard(&s);
        }
        assert_eq!(cache.len(), PRUNE_AT_LEAST);
        let next = stream(&hub, "next");
        cache.playlist("next", &Arc::downgrade(&next), &plain);
        assert_eq!(cache.len(), 2, "only the streams still alive remain");
    }
}
