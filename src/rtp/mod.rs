//! RTP to frames (sans-IO): packet parsing, reordering, timestamp unwrapping, depacketizers.
//!
//! One received track goes through a [`ReorderBuffer`] (sequence order, duplicates from RTX
//! dropped, gaps given up after a deadline) and then a depacketizer ([`H264Depacketizer`] or
//! [`OpusDepacketizer`]) that turns payloads into [`crate::media::Frame`]s. [`TrackReceiver`]
//! chains the two behind the push/poll contract the ingest layer drives:
//!
//! ```text
//! for each packet:  receiver.push(pkt, now); while let Some(ev) = receiver.poll_event() { .. }
//! on the timer:     receiver.handle_timeout(now); drain poll_event() the same way
//! arm the timer at: receiver.poll_timeout()
//! ```
//!
//! Nothing here reads the clock or does I/O: time is always a parameter.

mod error;
pub mod h264;
pub mod layer_demux;
pub mod nack;
pub mod opus;
pub mod packet;
pub mod packetize;
pub mod reorder;
pub mod sprop;
pub mod unwrap;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use error::RtpError;
pub use h264::{H264Depacketizer, H264Event};
pub use layer_demux::{LayerDemux, LayerDemuxConfig, LayerDemuxStats, LayerPacket, LayerVerdict};
pub use nack::NackScheduler;
pub use opus::{OpusDepacketizer, OpusEvent};
pub use packet::RtpPacket;
pub use packetize::H264Packetizer;
pub use reorder::{ReorderBuffer, ReorderStats, Reordered};
pub use sprop::parse_sprop_parameter_sets;
pub use unwrap::{SeqUnwrapper, TimestampUnwrapper};

/// Default number of video packets that may wait behind a gap: enough for a large keyframe
/// burst (a 300 KB IDR is ~250 packets) to be repaired by NACK/RTX.
pub const DEFAULT_VIDEO_CAPACITY: usize = 2048;
/// Default number of audio packets that may wait behind a gap (50 packets per second).
pub const DEFAULT_AUDIO_CAPACITY: usize = 128;

/// An event from one track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackEvent {
    H264(H264Event),
    Opus(OpusEvent),
}

#[derive(Debug)]
enum Depacketizer {
    H264(H264Depacketizer),
    Opus(OpusDepacketizer),
}

/// Reorder buffer plus depacketizer for one received track.
#[derive(Debug)]
pub struct TrackReceiver {
    reorder: ReorderBuffer,
    depacketizer: Depacketizer,
    events: VecDeque<TrackEvent>,
    /// Video only: asks for lost packets (audio is not resent: Opus has its own concealment).
    nack: Option<NackScheduler>,
    missing: Vec<i64>,
}

impl TrackReceiver {
    /// An H.264 track whose gaps wait at most `max_delay` (see [`ReorderBuffer`]).
    pub fn h264(max_delay: Duration) -> Self {
        Self::h264_with_capacity(max_delay, DEFAULT_VIDEO_CAPACITY)
    }

    pub fn h264_with_capacity(max_delay: Duration, capacity: usize) -> Self {
        let mut receiver = Self::with(
            ReorderBuffer::new(max_delay, capacity),
            Depacketizer::H264(H264Depacketizer::new()),
        );
        receiver.nack = Some(NackScheduler::default());
        receiver
    }

    /// An Opus track whose gaps wait at most `max_delay`.
    pub fn opus(max_delay: Duration) -> Self {
        Self::opus_with_capacity(max_delay, DEFAULT_AUDIO_CAPACITY)
    }

    pub fn opus_with_capacity(max_delay: Duration, capacity: usize) -> Self {
        Self::with(
            ReorderBuffer::new(max_delay, capacity),
            Depacketizer::Opus(OpusDepacketizer::new()),
        )
    }

    fn with(reorder: ReorderBuffer, depacketizer: Depacketizer) -> Self {
        Self {
            reorder,
            depacketizer,
            events: VecDeque::new(),
            nack: None,
            missing: Vec::new(),
        }
    }

    /// The H.264 depacketizer, e.g. to give it `sprop-parameter-sets`; `None` for audio.
    pub fn h264_mut(&mut self) -> Option<&mut H264Depacketizer> {
        match &mut self.depacketizer {
            Depacketizer::H264(d) => Some(d),
            Depacketizer::Opus(_) => None,
        }
    }

    /// True while an H.264 track drops frames until the next IDR (repeat the PLI while so).
    pub fn is_waiting_for_keyframe(&self) -> bool {
        match &self.depacketizer {
            Depacketizer::H264(d) => d.is_waiting_for_keyframe(),
            Depacketizer::Opus(_) => false,
        }
    }

    pub fn reorder_stats(&self) -> ReorderStats {
        self.reorder.stats()
    }

    /// Takes a packet received at `now`; then drain [`poll_event`](Self::poll_event).
    pub fn push(&mut self, pkt: RtpPacket, now: Instant) {
        self.reorder.push(pkt, now);
        self.handle_timeout(now);
    }

    /// Gives up on gaps whose wait is over at `now` and depacketizes what that releases.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reordered {
            packet,
            lost_before,
        }) = self.reorder.poll(now)
        {
            match &mut self.depacketizer {
                Depacketizer::H264(d) => {
                    d.push(&packet, lost_before);
                    self.events
                        .extend(std::iter::from_fn(|| d.poll()).map(TrackEvent::H264));
                }
                Depacketizer::Opus(d) => {
                    d.push(&packet, lost_before);
                    self.events
                        .extend(std::iter::from_fn(|| d.poll()).map(TrackEvent::Opus));
                }
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<TrackEvent> {
        self.events.pop_front()
    }

    /// The RTP sequence numbers to ask the sender for at `now` (a Generic NACK); empty for
    /// audio and while nothing is missing. Call after each push and timeout.
    pub fn poll_nacks(&mut self, now: Instant) -> Vec<u16> {
        let Some(nack) = self.nack.as_mut() else {
            return Vec::new();
        };
        if self.reorder.held() == 0 {
            nack.clear();
            return Vec::new();
        }
        self.reorder.missing_into(&mut self.missing);
        nack.poll(&self.missing, now)
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) (and
    /// [`poll_nacks`](Self::poll_nacks)) next, if anything is waiting.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let reorder = self.reorder.poll_timeout();
        let nack = self.nack.as_ref().and_then(|n| n.poll_timeout());
        match (reorder, nack) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
