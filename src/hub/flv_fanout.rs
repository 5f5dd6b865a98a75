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
    VideoHeader,
    AudioHeader,
    VideoKey,
    VideoInter,
    Audio,
    End,
}

/// Muxed tags (each with its trailing PreviousTagSize) on their way to every viewer: a sequence
/// header, the end, or a batch of media tags (see `flv_batch`) whose kind says how it starts —
/// `VideoKey` at a keyframe, `Audio` if it holds only audio, `VideoInter` otherwise.
#[derive(Clone, Debug)]
pub(crate) struct FlvPacket {
    pub kind: FlvKind,
    pub data: Bytes,
}

/// The stream's current sequence header tags (AVC decoder configuration, AAC
/// AudioSpecificConfig).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Headers {
    pub video: Option<Bytes>,
    pub audio: Option<Bytes>,
}

impl Headers {
    /// The tags a decoder needs first, video before audio.
    pub fn tags(&self) -> impl Iterator<Item = &Bytes> {
        self.video.iter().chain(self.audio.iter())
    }
}

/// Shared with viewers, so one that skipped ahead can pick up a header it missed while lagging.
pub(crate) type SharedHeaders = Arc<RwLock<Headers>>;

/// The per-stream state a new viewer starts from.
#[derive(Default)]
pub(crate) struct FlvCache {
    pub headers: SharedHeaders,
    /// Packets from the latest keyframe on.
    pub gop: Vec<Bytes>,
    gop_bytes: usize,
    /// The timestamp of the latest media tag (sequence headers sent mid-stream carry it).
    pub last_timestamp_ms: u32,
}

impl FlvCache {
    /// Records the current video or audio sequence header.
    pub fn set_header(&mut self, kind: FlvKind, tag: Bytes) {
        let mut headers = self.headers.write().unwrap_or_else(|e| e.into_inner());
        match kind {
            FlvKind::VideoHeader => headers.video = Some(tag),
            FlvKind::AudioHeader => headers.audio = Some(tag),
            _ => {}
        }
    }

    /// Keeps a packet sent to viewers if it belongs to the GOP that new viewers start with.
    pub fn push(&mut self, kind: FlvKind, tag: Bytes) {
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
    headers: SharedHeaders,
    /// No video: a lagging viewer resumes at any audio frame, not at a keyframe.
    audio_only: bool,
}

impl FlvSubscription {
    pub(crate) fn new(
        prelude: Vec<Bytes>,
        rx: broadcast::Receiver<FlvPacket>,
        viewers: Arc<AtomicUsize>,
        headers: SharedHeaders,
    ) -> FlvSubscription {
        viewers.fetch_add(1, Ordering::Relaxed);
        FlvSubscription {
            prelude: prelude.into_iter(),
            rx,
            viewers,
            headers,
            audio_only: false,
        }
    }

    /// For a stream without video.
    pub(crate) fn audio_only(mut self) -> FlvSubscription {
        self.audio_only = true;
        self
    }

    /// The viewer's byte stream, ending when the publisher does.
    pub fn into_stream(self) -> FlvViewerStream {
        // The prelude carries the headers current at subscription time.
        let sent = self.current_headers();
        let state = ViewerState {
            sub: self,
            skipping: false,
            done: false,
            sent,
            pending: None,
        };
        FlvViewerStream {
            inner: Box::pin(futures_util::stream::unfold(state, next_chunk)),
        }
    }
}

impl FlvSubscription {
    fn current_headers(&self) -> Headers {
        self.headers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
    /// The last sequence headers this viewer was sent.
    sent: Headers,
    /// Tags to send before reading the queue again.
    pending: Option<Vec<Bytes>>,
}

async fn next_chunk(mut st: ViewerState) -> Option<(Result<Bytes, std::io::Error>, ViewerState)> {
    if st.done {
        return None;
    }
    if let Some(b) = st.sub.prelude.next() {
        return Some((Ok(b), st));
    }
    if let Some(pending) = st.pending.as_mut() {
        if !pending.is_empty() {
            let b = pending.remove(0);
            return Some((Ok(b), st));
        }
        st.pending = None;
    }
    loop {
        match st.sub.rx.recv().await {
            Ok(p) => match p.kind {
                FlvKind::End => return None,
                // Sequence headers are always delivered: the frames after them need them.
                FlvKind::VideoHeader => {
                    st.sent.video = Some(p.data.clone());
                    return Some((Ok(p.data), st));
                }
                FlvKind::AudioHeader => {
                    st.sent.audio = Some(p.data.clone());
                    return Some((Ok(p.data), st));
                }
                FlvKind::Audio if st.skipping && st.sub.audio_only => {
                    // Every AAC frame is a random access point.
                    st.skipping = false;
                    return Some((Ok(p.data), st));
                }
                FlvKind::VideoKey if st.skipping => {
                    st.skipping = false;
                    // The queue may have dropped a sequence header while this viewer lagged.
                    let current = st.sub.current_headers();
                    let mut missed: Vec<Bytes> = Vec::new();
                    if current.video.is_some() && current.video != st.sent.video {
                        missed.extend(current.video.clone());
                    }
                    if current.audio.is_some() && current.audio != st.sent.audio {
                        missed.extend(current.audio.clone());
                    }
                    st.sent = current;
                    if missed.is_empty() {
                        return Some((Ok(p.data), st));
                    }
                    missed.push(p.data);
                    let first = missed.remove(0);
                    st.pending = Some(missed);
                    return Some((Ok(first), st));
                }
                FlvKind::VideoInter | FlvKind::Audio if st.skipping => continue,
                FlvKind::VideoKey | FlvKind::VideoInter | FlvKind::Audio => {
                    return Some((Ok(p.data), st))
                }
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
        c.push(FlvKind::VideoInter, Bytes::from_static(b"i0"));
        assert!(
            c.gop.is_empty(),
            "no keyframe yet: nothing decodable to cache"
        );
        c.push(FlvKind::VideoKey, Bytes::from_static(b"k1"));
        c.push(FlvKind::VideoInter, Bytes::from_static(b"i1"));
        c.push(FlvKind::VideoKey, Bytes::from_static(b"k2"));
        c.push(FlvKind::VideoInter, Bytes::from_static(b"i2"));
        assert_eq!(
            c.gop,
            vec![Bytes::from_static(b"k2"), Bytes::from_static(b"i2")]
        );
    }

    #[tokio::test]
    async fn viewer_gets_prelude_then_live_then_ends() {
        let (tx, rx) = broadcast::channel(16);
        let viewers = Arc::new(AtomicUsize::new(0));
        let sub = FlvSubscription::new(
            vec![Bytes::from_static(b"H")],
            rx,
            viewers.clone(),
            SharedHeaders::default(),
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
        let sub = FlvSubscription::new(vec![], rx, Arc::default(), SharedHeaders::default());
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
    async fn lagging_viewer_drops_audio_until_the_keyframe_then_gets_missed_headers() {
        let (tx, rx) = broadcast::channel(4);
        let headers = SharedHeaders::default();
        headers.write().unwrap().video = Some(Bytes::from(vec![50]));
        let stream =
            FlvSubscription::new(vec![], rx, Arc::default(), headers.clone()).into_stream();
        // Audio starts (new AAC header) while the viewer is far behind.
        headers.write().unwrap().audio = Some(Bytes::from(vec![60]));
        tx.send(packet(FlvKind::AudioHeader, 60)).unwrap();
        for i in 0..10 {
            tx.send(packet(FlvKind::Audio, i)).unwrap();
        }
        tx.send(packet(FlvKind::VideoKey, 102)).unwrap();
        tx.send(packet(FlvKind::Audio, 103)).unwrap();
        tx.send(packet(FlvKind::End, 0)).unwrap();
        let got: Vec<u8> = stream.map(|r| r.unwrap()[0]).collect().await;
        assert_eq!(got, vec![60, 102, 103]);
    }

    #[tokio::test]
    async fn lagging_viewer_gets_a_sequence_header_it_missed() {
        let (tx, rx) = broadcast::channel(4);
        let header = SharedHeaders::default();
        header.write().unwrap().video = Some(Bytes::from(vec![50]));
        let sub = FlvSubscription::new(vec![], rx, Arc::default(), header.clone());
        let stream = sub.into_stream();
        // The resolution changes while the viewer is far behind: the new header is pushed
        // out of its queue before it reads.
        header.write().unwrap().video = Some(Bytes::from(vec![100]));
        tx.send(packet(FlvKind::VideoHeader, 100)).unwrap();
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
