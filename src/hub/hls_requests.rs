//! What HLS clients ask a stream for, counted as the requests are answered: playlists (with
//! and without blocking directives), parts, whole segments, init segments. Shown in
//! `/api/streams`; an operator behind a cache reads from it how much reaches the origin.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Which kind of HLS file a request was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HlsRequest {
    Playlist,
    /// A playlist request with `_HLS_msn` (blocking reload).
    BlockingPlaylist,
    Multivariant,
    Part,
    Segment,
    Init,
}

/// Counters of answered HLS requests of one stream.
#[derive(Debug, Default)]
pub struct HlsRequestCounts {
    playlists: AtomicU64,
    blocking_playlists: AtomicU64,
    multivariant: AtomicU64,
    parts: AtomicU64,
    segments: AtomicU64,
    inits: AtomicU64,
}

/// A snapshot of [`HlsRequestCounts`] (read back by the load tool: missing fields are 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HlsRequestInfo {
    pub playlists: u64,
    pub blocking_playlists: u64,
    pub multivariant: u64,
    pub parts: u64,
    pub segments: u64,
    pub inits: u64,
}

impl HlsRequestCounts {
    pub fn count(&self, kind: HlsRequest) {
        let counter = match kind {
            HlsRequest::Playlist => &self.playlists,
            HlsRequest::BlockingPlaylist => &self.blocking_playlists,
            HlsRequest::Multivariant => &self.multivariant,
            HlsRequest::Part => &self.parts,
            HlsRequest::Segment => &self.segments,
            HlsRequest::Init => &self.inits,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn info(&self) -> HlsRequestInfo {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HlsRequestInfo {
            playlists: get(&self.playlists),
            blocking_playlists: get(&self.blocking_playlists),
            multivariant: get(&self.multivariant),
            parts: get(&self.parts),
            segments: get(&self.segments),
            inits: get(&self.inits),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_counts_on_its_own() {
        let c = HlsRequestCounts::default();
        c.count(HlsRequest::Part);
        c.count(HlsRequest::Part);
        c.count(HlsRequest::BlockingPlaylist);
        c.count(HlsRequest::Init);
        let info = c.info();
        assert_eq!(
            info,
            HlsRequestInfo {
                parts: 2,
                blocking_playlists: 1,
                inits: 1,
                ..HlsRequestInfo::default()
            }
        );
    }
}
