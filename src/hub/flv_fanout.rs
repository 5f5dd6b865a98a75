//! HTTP-FLV fan-out: tags are muxed once per stream and shared (`Bytes`) by every viewer.
//! A GOP cache lets a new viewer start at the latest keyframe; each viewer reads from a bounded
//! broadcast queue, and one that falls behind skips ahead to the next keyframe instead of making
//! the server buffer for it. What each viewer gets is on one timeline (see `flv_timeline`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures_util::Stream as FuturesStream;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::flv_timeline::{FirstTimes, Owed};

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
    /// When its first video and audio tags are (none for a header or the end).
    pub first: FirstTimes,
}

impl FlvPacket {
    /// A sequence header or the end: no media, so no time of its own.
    pub fn control(kind: FlvKind, data: Bytes) -> FlvPacket {
        FlvPacket {
            kind,
            data,
            first: FirstTimes::default(),
        }
    }
}

/// The stream's current sequence header tags (AVC decoder configuration, AAC
/// AudioSpecificConfig), stamped 0: each viewer's copy is stamped on its own timeline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Headers {
    pub video: Option<Bytes>,
    pub audio: Option<Bytes>,
}

/// Shared with viewers, so one that skipped ahead can pick up a header it missed while lagging.
pub(crate) type SharedHeaders = Arc<RwLock<Headers>>;

/// The per-stream state a new viewer starts from.
#[derive(Default)]
pub(crate) struct FlvCache {
    pub headers: SharedHeaders,
    /// Packets from the latest keyframe on.
    pub gop: Vec<FlvPacket>,
    gop_bytes: usize,
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

    /// The current sequence headers.
    pub fn current_headers(&self) -> Headers {
        read_headers(&self.headers)
    }

    /// Keeps a packet sent to viewers if it belongs to the GOP that new viewers start with.
    pub fn push(&mut self, packet: &FlvPacket) {
        if packet.kind == FlvKind::VideoKey {
            self.gop.clear();
            self.gop_bytes = 0;
        } else if self.gop.is_empty() {
            // No keyframe cached (none yet, or the GOP outgrew the cap): a viewer could not
            // decode from here.
            return;
        }
        if self.gop_bytes + packet.data.len() > GOP_CACHE_MAX_BYTES {
            self.gop.clear();
            self.gop_bytes = 0;
            return;
        }
        self.gop_bytes += packet.data.len();
        self.gop.push(packet.clone());
    }
}

fn read_headers(headers: &SharedHeaders) -> Headers {
    headers.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A viewer's start: what to send first, and the live feed after it.
pub struct FlvSubscription {
    file_header: Bytes,
    /// onMetaData and the sequence headers, until media they go with comes.
    owed: Owed,
    /// The cached GOP. Without one the viewer waits for the next keyframe (or, audio only,
    /// the next audio frame).
    gop: Vec<FlvPacket>,
    rx: broadcast::Receiver<FlvPacket>,
    viewers: Arc<AtomicUsize>,
    headers: SharedHeaders,
    /// No video: a lagging viewer resumes at any audio frame, not at a keyframe.
    audio_only: bool,
}

impl FlvSubscription {
    /// `owed` holds onMetaData and the sequence headers current when the viewer came (the
    /// ones `gop` was muxed with).
    pub(crate) fn new(
        file_header: Bytes,
        owed: Owed,
        gop: Vec<FlvPacket>,
        rx: broadcast::Receiver<FlvPacket>,
        viewers: Arc<AtomicUsize>,
        headers: SharedHeaders,
    ) -> FlvSubscription {
        viewers.fetch_add(1, Ordering::Relaxed);
        FlvSubscription {
            file_header,
            owed,
            gop,
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
    pub fn into_stream(mut self) -> FlvViewerStream {
        let owed = std::mem::take(&mut self.owed);
        let gop = std::mem::take(&mut self.gop);
        let state = ViewerState {
            skipping: gop.is_empty(),
            gop: gop.into_iter(),
            ready: VecDeque::from([std::mem::take(&mut self.file_header)]),
            sent: owed.headers.clone(),
            owed,
            done: false,
            sub: self,
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
    /// Cached packets still to send, before the live feed.
    gop: std::vec::IntoIter<FlvPacket>,
    /// Chunks to hand out before reading another packet.
    ready: VecDeque<Bytes>,
    /// What waits for the media it goes with, stamped at its time when that comes.
    owed: Owed,
    /// The last sequence headers this viewer was given (or is owed).
    sent: Headers,
    /// Not started, or lagged behind the queue: dropping tags until the next keyframe.
    skipping: bool,
    done: bool,
}

impl ViewerState {
    /// Takes the viewer's next packet (cached or live): what it is to be sent goes to `ready`.
    fn take(&mut self, p: FlvPacket) {
        match p.kind {
            FlvKind::End => self.done = true,
            // Sequence headers always reach the viewer, before the next media of their track
            // (the frames after them need them), on its timeline.
            FlvKind::VideoHeader => {
                self.sent.video = Some(p.data.clone());
                self.owed.headers.video = Some(p.data);
            }
            FlvKind::AudioHeader => {
                self.sent.audio = Some(p.data.clone());
                self.owed.headers.audio = Some(p.data);
            }
            // Every AAC frame is a random access point.
            FlvKind::Audio if self.skipping && self.sub.audio_only => self.resume(p),
            FlvKind::VideoKey if self.skipping => self.resume(p),
            FlvKind::VideoInter | FlvKind::Audio if self.skipping => {}
            FlvKind::VideoKey | FlvKind::VideoInter | FlvKind::Audio => self.send(p),
        }
    }

    /// Starts again at `p` after skipping.
    fn resume(&mut self, p: FlvPacket) {
        self.skipping = false;
        // The queue may have dropped a sequence header while this viewer lagged.
        let current = read_headers(&self.sub.headers);
        if current.video.is_some() && current.video != self.sent.video {
            self.owed.headers.video = current.video.clone();
        }
        if current.audio.is_some() && current.audio != self.sent.audio {
            self.owed.headers.audio = current.audio.clone();
        }
        self.sent = current;
        self.send(p);
    }

    /// A media packet, after whatever it is the first media for.
    fn send(&mut self, p: FlvPacket) {
        self.ready.extend(self.owed.due_before(p.first));
        self.ready.push_back(p.data);
    }
}

async fn next_chunk(mut st: ViewerState) -> Option<(Result<Bytes, std::io::Error>, ViewerState)> {
    loop {
        if let Some(b) = st.ready.pop_front() {
            return Some((Ok(b), st));
        }
        if st.done {
            return None;
        }
        let packet = match st.gop.next() {
            Some(p) => p,
            None => match st.sub.rx.recv().await {
                Ok(p) => p,
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "slow FLV viewer skips to the next keyframe");
                    st.skipping = true;
                    continue;
                }
                Err(RecvError::Closed) => {
                    st.done = true;
                    continue;
                }
            },
        };
        st.take(packet);
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
#[path = "flv_fanout_tests.rs"]
mod tests;
