//! HTTP-FLV fan-out: tags are muxed once per stream and shared (`Bytes`) by every viewer.
//! A GOP cache lets a new viewer start at the latest keyframe; each viewer reads from a bounded
//! broadcast queue, and one that falls behind skips ahead to the next keyframe instead of making
//! the server buffer for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures_util::Stream as FuturesStream;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

/// Cap on the cached GOP: a stream whose keyframes are further apart than this stops caching
/// until the next keyframe (new viewers then wait for it) rather than growing without bound.
const GOP_CACHE_MAX_BYTES: usize = 32 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlvKind {
    SequenceHeader,
    VideoKey,
    VideoInter,
    End,
}

/// One muxed tag (with its trailing PreviousTagSize) on its way to every viewer.
#[derive(Clone, Debug)]
pub(crate) struct FlvPacket {
    pub kind: FlvKind,
    pub data: Bytes,
}

/// The stream's current AVC sequence header tag, shared with viewers so one that skipped ahead
/// can pick up a header it missed while lagging.
pub(crate) type SharedHeader = Arc<RwLock<Option<Bytes>>>;

/// The per-stream state a new viewer starts from.
#[derive(Default)]
pub(crate) struct FlvCache {
    pub sequence_header: SharedHeader,
    /// Tags from the latest keyframe on.
    pub gop: Vec<Bytes>,
    gop_bytes: usize,
    pub last_timestamp_ms: u32,
}

impl FlvCache {
    pub fn push(&mut self, kind: FlvKind, tag: Bytes, timestamp_ms: u32) {
        self.last_timestamp_ms = timestamp_ms;
        if kind == FlvKind::VideoKey {
            self.gop.clear();
            self.gop_bytes = 0;
        } else if self.gop.is_empty() {
            // No keyframe cached (none yet, or the GOP outgrew the cap): a viewer could not
            // decode from here.
            return;
        }
        if self.gop_bytes + tag.len() > GOP_CACHE_MAX_BYTES {
            self.gop.clear();
            self.gop_bytes = 0;
            return;
        }
        self.gop_bytes += tag.len();
        self.gop.push(tag);
    }
}

/// A viewer's start: what to send first, and the live feed after it.
pub struct FlvSubscription {
    prelude: std::vec::IntoIter<Bytes>,
    rx: broadcast::Receiver<FlvPacket>,
    viewers: Arc<AtomicUsize>,
    header: SharedHeader,
}

impl FlvSubscription {
    pub(crate) fn new(
        prelude: Vec<Bytes>,
        rx: broadcast::Receiver<FlvPacket>,
        viewers: Arc<AtomicUsize>,
        header: SharedHeader,
    ) -> FlvSubscription {
        viewers.fetch_add(1, Ordering::Relaxed);
        FlvSubscription {
            prelude: prelude.into_iter(),
            rx,
            viewers,
            header,
        }
    }

    /// The viewer's byte stream, ending when the publisher does.
    pub fn into_stream(self) -> FlvViewerStream {
        // The prelude carries the header current at subscription time.
        let sent_header = self
            .header
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let state = ViewerState {
            sub: self,
            skipping: false,
            done: false,
            sent_header,
            pending: None,
        };
        FlvViewerStream {
            inner: Box::pin(futures_util::stream::unfold(state, next_chunk)),
        }
    }
}

impl Drop for FlvSubscription {
    fn drop(&mut self) {
        self.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

struct ViewerState {
    sub: FlvSubscription,
    /// Lagged behind the queue: dropping tags until the next keyframe.
    skipping: bool,
    done: bool,
    /// The last sequence header this viewer was sent.
    sent_header: Option<Bytes>,
    /// A tag to send after the one being returned now.
    pending: Option<Bytes>,
}

async fn next_chunk(mut st: ViewerState) -> Option<(Result<Bytes, std::io::Error>, ViewerState)> {
    if st.done {
        return None;
    }
    if let Some(b) = st.sub.prelude.next() {
        return Some((Ok(b), st));
    }
    if let Some(b) = st.pending.take() {
        return Some((Ok(b), st));
    }
    loop {
        match st.sub.rx.recv().await {
            Ok(p) => match p.kind {
                FlvKind::End => return None,
                // A sequence header is always delivered: frames after it need it.
                FlvKind::SequenceHeader => {
                    st.sent_header = Some(p.data.clone());
                    return Some((Ok(p.data), st));
                }
                FlvKind::VideoKey if st.skipping => {
                    st.skipping = false;
                    // The queue may have dropped a sequence header while this viewer lagged.
                    let current = st
                        .sub
                        .header
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    if current.is_some() && current != st.sent_header {
                        st.sent_header = current.clone();
                        st.pending = Some(p.data);
                        return Some((Ok(current.unwrap_or_default()), st));
                    }
                    return Some((Ok(p.data), st));
                }
                FlvKind::VideoKey => return Some((Ok(p.data), st)),
                FlvKind::VideoInter if st.skipping => continue,
                FlvKind::VideoInter => return Some((Ok(p.data), st)),
            },
            Err(RecvError::Lagged(n)) => {
                tracing::debug!(skipped = n, "slow FLV viewer skips to the next keyframe");
                st.skipping = true;
            }
            Err(RecvError::Closed) => {
                st.done = true;
                return None;
            }
        }
    }
}

/// The bytes of one FLV viewer's response.
pub struct FlvViewerStream {
    inner: std::pin::Pin<
        Box<dyn FuturesStream<Item = Result<Bytes, std::io::Error>> + Send + 'static>,
    >,
}

impl FuturesStream for FlvViewerStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn packet(kind: FlvKind, byte: u8) -> FlvPacket {
        FlvPacket {
            kind,
            data: Bytes::from(vec![byte]),
        }
    }

    #[test]
    fn gop_cache_restarts_at_each_keyframe() {
        let mut c = FlvCache::default();
        c.push(FlvKind::VideoInter, Bytes::from_static(b"i0"), 0);
        assert!(
            c.gop.is_empty(),
            "no keyframe yet: nothing decodable to cache"
        );
        c.push(FlvKind::VideoKey, Bytes::from_static(b"k1"), 33);
        c.push(FlvKind::VideoInter, Bytes::from_static(b"i1"), 66);
        c.push(FlvKind::VideoKey, Bytes::from_static(b"k2"), 99);
        c.push(FlvKind::VideoInter, Bytes::from_static(b"i2"), 133);
        assert_eq!(
            c.gop,
            vec![Bytes::from_static(b"k2"), Bytes::from_static(b"i2")]
        );
        assert_eq!(c.last_timestamp_ms, 133);
    }

    #[tokio::test]
    async fn viewer_gets_prelude_then_live_then_ends() {
        let (tx, rx) = broadcast::channel(16);
        let viewers = Arc::new(AtomicUsize::new(0));
        let sub = FlvSubscription::new(
            vec![Bytes::from_static(b"H")],
            rx,
            viewers.clone(),
            SharedHeader::default(),
        );
        assert_eq!(viewers.load(Ordering::Relaxed), 1);
        tx.send(packet(FlvKind::VideoInter, 1)).unwrap();
        tx.send(packet(FlvKind::End, 0)).unwrap();
        let got: Vec<Bytes> = sub.into_stream().map(|r| r.unwrap()).collect().await;
        assert_eq!(got, vec![Bytes::from_static(b"H"), Bytes::from(vec![1])]);
        assert_eq!(
            viewers.load(Ordering::Relaxed),
            0,
            "viewer count drops with the stream"
        );
    }

    #[tokio::test]
    async fn lagging_viewer_skips_to_next_keyframe() {
        let (tx, rx) = broadcast::channel(4);
        let sub = FlvSubscription::new(vec![], rx, Arc::default(), SharedHeader::default());
        // Ten inter tags into a queue of four: the viewer lags and must not resume mid-GOP.
        for i in 0..10 {
            tx.send(packet(FlvKind::VideoInter, i)).unwrap();
        }
        tx.send(packet(FlvKind::VideoKey, 102)).unwrap();
        tx.send(packet(FlvKind::VideoInter, 103)).unwrap();
        tx.send(packet(FlvKind::End, 0)).unwrap();
        let got: Vec<u8> = sub.into_stream().map(|r| r.unwrap()[0]).collect().await;
        assert_eq!(got, vec![102, 103]);
    }

    #[tokio::test]
    async fn lagging_viewer_gets_a_sequence_header_it_missed() {
        let (tx, rx) = broadcast::channel(4);
        let header = SharedHeader::default();
        *header.write().unwrap() = Some(Bytes::from(vec![50]));
        let sub = FlvSubscription::new(vec![], rx, Arc::default(), header.clone());
        let stream = sub.into_stream();
        // The resolution changes while the viewer is far behind: the new header is pushed
        // out of its queue before it reads.
        *header.write().unwrap() = Some(Bytes::from(vec![100]));
        tx.send(packet(FlvKind::SequenceHeader, 100)).unwrap();
        for i in 0..10 {
            tx.send(packet(FlvKind::VideoInter, i)).unwrap();
        }
        tx.send(packet(FlvKind::VideoKey, 102)).unwrap();
        tx.send(packet(FlvKind::VideoInter, 103)).unwrap();
        tx.send(packet(FlvKind::End, 0)).unwrap();
        let got: Vec<u8> = stream.map(|r| r.unwrap()[0]).collect().await;
        assert_eq!(got, vec![100, 102, 103]);
    }
}
