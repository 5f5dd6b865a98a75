//! The stream hub: live streams by name. A publisher claims a name, pushes frames into its
//! [`Stream`], and viewers read the shared, already-muxed output from it. A stream whose
//! publisher was lost is held for a reconnect grace; a new claim of its name within it takes
//! the same stream over (viewers stay), after it the stream ends.

mod flv_batch;
mod flv_fanout;
#[cfg(test)]
mod flv_merge_tests;
mod flv_timeline;
#[cfg(test)]
mod flv_timeline_tests;
mod hls_requests;
mod holds;
#[cfg(test)]
mod holds_tests;
pub mod latency;
mod meter;
mod simulcast;
mod stream;

pub use flv_fanout::{FlvSubscription, FlvViewerStream};
pub use hls_requests::{HlsRequest, HlsRequestInfo};
pub use simulcast::{SimulcastInfo, SimulcastLayers};
pub use stream::{Stream, StreamInfo, StreamSettings, StreamState, VideoPushed};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an ended stream stays readable (its final playlist, with `EXT-X-ENDLIST`, and its
/// segments) so players can finish what they buffered.
pub const ENDED_RETENTION: Duration = Duration::from_secs(60);

/// Why a stream could not be claimed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HubError {
    #[error("stream {0:?} is already being published")]
    AlreadyPublishing(String),
}

/// All streams of this gateway.
pub struct Hub {
    settings: StreamSettings,
    inner: Mutex<Streams>,
}

#[derive(Default)]
struct Streams {
    /// Streams being published, and those held for a reconnect (in `holds`).
    live: HashMap<String, Arc<Stream>>,
    holds: holds::Holds,
    /// Ended streams kept for [`ENDED_RETENTION`] after they ended.
    ended: HashMap<String, (Arc<Stream>, Instant)>,
}

impl Streams {
    /// True when `stream` is the live one of its name (not replaced, released or discarded).
    fn is_current(&self, stream: &Arc<Stream>) -> bool {
        self.live
            .get(stream.name())
            .is_some_and(|s| Arc::ptr_eq(s, stream))
    }

    /// Ends the live stream `name` and keeps it readable for [`ENDED_RETENTION`].
    fn end_live(&mut self, name: &str) {
        self.holds.forget(name);
        if let Some(stream) = self.live.remove(name) {
            stream.end();
            self.ended
                .insert(name.to_string(), (stream, Instant::now()));
        }
    }
}

/// A claimed name: a new stream, or a held one taken over.
pub struct Claim {
    pub stream: Arc<Stream>,
    /// The stream was held for a reconnect and continues with this publisher.
    pub resumed: bool,
}

impl Hub {
    pub fn new(settings: StreamSettings) -> Hub {
        Hub {
            settings,
            inner: Mutex::new(Streams::default()),
        }
    }

    /// Claims `name` for a new publish. Fails if someone is publishing it already.
    pub fn claim(&self, name: &str) -> Result<Arc<Stream>, HubError> {
        self.claim_or_resume(name).map(|c| c.stream)
    }

    /// Claims `name`: a stream held for a reconnect is taken over (the same stream, its
    /// viewers stay), else a new one starts. Fails if someone is publishing it already.
    pub fn claim_or_resume(&self, name: &str) -> Result<Claim, HubError> {
        self.claim_at(name, Instant::now())
    }

    pub(crate) fn claim_at(&self, name: &str, now: Instant) -> Result<Claim, HubError> {
        let mut streams = self.lock();
        if let Some(held) = streams.live.get(name).cloned() {
            match streams.holds.claim(name, now) {
                holds::Found::Resumed => {
                    held.resume();
                    tracing::info!(stream = name, "publisher back within the reconnect grace");
                    return Ok(Claim {
                        stream: held,
                        resumed: true,
                    });
                }
                holds::Found::Expired => streams.end_live(name),
                holds::Found::NotHeld => return Err(HubError::AlreadyPublishing(name.to_string())),
            }
        }
        let stream = Arc::new(Stream::new(name.to_string(), &self.settings));
        streams.ended.remove(name);
        streams.live.insert(name.to_string(), stream.clone());
        Ok(Claim {
            stream,
            resumed: false,
        })
    }

    /// Ends `stream` and moves it out of the live list. A no-op if it was replaced or released.
    pub fn release(&self, stream: &Arc<Stream>) {
        stream.end();
        let mut streams = self.lock();
        if streams.is_current(stream) {
            streams.end_live(stream.name());
        }
    }

    /// The publisher of `stream` was lost: the stream waits `grace` for another (its open HLS
    /// segment is written, FLV viewers stay connected) and is resumed by a claim of its name,
    /// or ended by [`Hub::expire_holds`] once `grace` is over. Returns the deadline, or `None`
    /// (a zero grace, a stream that never went live, or one that is no longer the live one):
    /// then it was released.
    pub fn hold(&self, stream: &Arc<Stream>, grace: Duration) -> Option<Instant> {
        if grace.is_zero() {
            self.release(stream);
            return None;
        }
        let mut streams = self.lock();
        // A stream that never went live has nothing for viewers to stay on.
        if !streams.is_current(stream)
            || !stream.has_gone_live()
            || stream.state() == StreamState::Ended
        {
            drop(streams);
            self.release(stream);
            return None;
        }
        let until = Instant::now() + grace;
        stream.suspend();
        streams.holds.hold(stream.name(), until);
        Some(until)
    }

    /// Ends the held streams whose grace is over at `now` (as [`Hub::release`] does); returns
    /// their names.
    pub fn expire_holds(&self, now: Instant) -> Vec<String> {
        let mut streams = self.lock();
        let names = streams.holds.expired(now);
        for name in &names {
            streams.end_live(name);
        }
        names
    }

    /// Ends every held stream at once (server shutdown).
    pub fn end_held(&self) {
        let mut streams = self.lock();
        for name in streams.holds.drain_held() {
            streams.end_live(&name);
        }
    }

    /// True while `name` is held for a reconnect.
    pub fn is_held(&self, name: &str) -> bool {
        self.lock().holds.is_held(name)
    }

    /// Drops a claim that never became a publish (its offer was refused): unlike
    /// [`Hub::release`], nothing of it stays readable. A claim that took over a held stream
    /// gives it back: the stream is held again, until its grace was to end.
    pub fn discard(&self, stream: &Arc<Stream>) {
        let mut streams = self.lock();
        if !streams.is_current(stream) {
            drop(streams);
            stream.end();
            return;
        }
        match streams.holds.give_back(stream.name(), Instant::now()) {
            holds::GivenBack::HeldAgain => stream.suspend(),
            // A resumed stream whose grace ran out meanwhile: it ends as a release would.
            holds::GivenBack::GraceOver => streams.end_live(stream.name()),
            holds::GivenBack::NotResumed => {
                stream.end();
                streams.live.remove(stream.name());
            }
        }
    }

    /// The live stream called `name`.
    pub fn live(&self, name: &str) -> Option<Arc<Stream>> {
        self.lock().live.get(name).cloned()
    }

    /// The live stream called `name`, or the last one that ended recently.
    pub fn live_or_recent(&self, name: &str) -> Option<Arc<Stream>> {
        let mut streams = self.lock();
        if let Some(s) = streams.live.get(name) {
            return Some(s.clone());
        }
        match streams.ended.get(name) {
            Some((s, at)) if at.elapsed() < ENDED_RETENTION => Some(s.clone()),
            Some(_) => {
                streams.ended.remove(name);
                None
            }
            None => None,
        }
    }

    /// Snapshot of every live stream, sorted by name.
    pub fn list(&self) -> Vec<StreamInfo> {
        let streams: Vec<Arc<Stream>> = self.lock().live.values().cloned().collect();
        let mut infos: Vec<StreamInfo> = streams.iter().map(|s| s.info()).collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    /// Drops ended streams past their retention, and ends held streams past their grace (a
    /// backstop: each hold's own timer does it on time). Called periodically by the server.
    pub fn sweep(&self) {
        self.expire_holds(Instant::now());
        self.lock()
            .ended
            .retain(|_, (_, at)| at.elapsed() < ENDED_RETENTION);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Streams> {
        // A panic while holding this lock cannot leave the maps inconsistent (each
        // operation is a single insert/remove), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A stream name is 1–64 characters of `[A-Za-z0-9_-]`.
pub fn valid_stream_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The parameter sets of a test vector, for tests.
#[cfg(test)]
pub(crate) fn test_params(
    v: &crate::media::h264::test_vectors::Vector,
) -> crate::media::h264::ParameterSets {
    crate::media::h264::ParameterSets::new(
        bytes::Bytes::from_static(v.sps),
        bytes::Bytes::from_static(v.pps),
    )
    .unwrap()
}

/// A stream "cam" of `hub` with 360p parameter sets, for tests.
#[cfg(test)]
pub(crate) fn test_video_stream(hub: &Hub) -> Arc<Stream> {
    let stream = hub.claim("cam").unwrap();
    stream.set_video_params(test_params(
        &crate::media::h264::test_vectors::BASELINE_360P30,
    ));
    stream
}

/// Video frame `i` of a 30 fps stream (90 kHz ticks), one tiny NAL unit, for tests.
#[cfg(test)]
pub(crate) fn test_video_frame(i: i64, keyframe: bool) -> crate::media::Frame {
    let nal: &[u8] = if keyframe {
        &[0x65, 0x88]
    } else {
        &[0x41, 0x9a]
    };
    let mut data = (nal.len() as u32).to_be_bytes().to_vec();
    data.extend_from_slice(nal);
    crate::media::Frame {
        codec: crate::media::Codec::H264,
        pts: i * 3000,
        dts: i * 3000,
        keyframe,
        data: bytes::Bytes::from(data),
    }
}

/// The chunks a viewer has been handed so far (all of them, once its stream ended).
#[cfg(test)]
pub(crate) fn ready_chunks(viewer: &mut FlvViewerStream) -> Vec<bytes::Bytes> {
    use futures_util::{FutureExt, StreamExt};
    let mut chunks = Vec::new();
    while let Some(Some(chunk)) = viewer.next().now_or_never() {
        chunks.push(chunk.unwrap());
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names() {
        assert!(valid_stream_name("cam-1_A"));
        assert!(valid_stream_name(&"a".repeat(64)));
        assert!(!valid_stream_name(&"a".repeat(65)));
        assert!(!valid_stream_name(""));
        assert!(!valid_stream_name(".."));
        assert!(!valid_stream_name("a b"));
        assert!(!valid_stream_name("a/b"));
        assert!(!valid_stream_name("é"));
    }

    #[test]
    fn a_name_is_claimed_once_until_released() {
        let hub = Hub::new(StreamSettings::default());
        let first = hub.claim("cam").unwrap();
        assert!(matches!(
            hub.claim("cam"),
            Err(HubError::AlreadyPublishing(n)) if n == "cam"
        ));
        assert!(hub.live("cam").is_some());
        hub.release(&first);
        assert!(hub.live("cam").is_none());
        assert!(
            hub.live_or_recent("cam").is_some(),
            "ended stream stays readable"
        );
        let second = hub.claim("cam").unwrap();
        hub.discard(&second);
        assert!(hub.live("cam").is_none());
        assert!(
            hub.live_or_recent("cam").is_none(),
            "a discarded claim leaves nothing readable behind"
        );
        let second = hub.claim("cam").unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        // Releasing the old publish again must not remove the new one.
        hub.release(&first);
        assert!(hub.live("cam").is_some());
    }
}
