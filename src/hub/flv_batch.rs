//! Groups a stream's FLV tags into the packets its viewers are woken for. Every packet costs each
//! viewer a task wake-up and a socket write, so sending ~80 small tags a second (30 video
//! frames, ~47 AAC frames) one by one costs more than the bytes do. The batcher sends each video
//! frame together with the audio that arrived since the one before, and can hold tags longer
//! (`merge_ms`) for very large audiences. Sans-IO: tags and their timestamps in, packets out.

use bytes::{Bytes, BytesMut};

use super::flv_fanout::{FlvKind, FlvPacket};
use super::flv_timeline::FirstTimes;

/// With video running, audio waits for the next video frame; if video stops (a paused camera),
/// audio goes out on its own once this much of it is waiting.
const AUDIO_ALONE_MAX_MS: u32 = 100;

/// Collects media tags (video frames and audio frames) into packets. A packet never holds a
/// keyframe anywhere but at its start, so a viewer that joins or resumes at a packet of kind
/// [`FlvKind::VideoKey`] starts decoding at a keyframe.
#[derive(Debug)]
pub(crate) struct FlvBatcher {
    merge_ms: u32,
    audio_only: bool,
    pending: BytesMut,
    /// What the pending packet is, once it holds a tag.
    kind: Option<FlvKind>,
    first_ts: u32,
    /// The first video and audio timestamps of the pending packet.
    first: FirstTimes,
}

impl FlvBatcher {
    /// `merge_ms == 0`: a packet per video frame (audio rides along). `merge_ms > 0`: a packet
    /// when the held tags span that many milliseconds, or at the next keyframe.
    pub fn new(merge_ms: u32) -> FlvBatcher {
        FlvBatcher {
            merge_ms,
            audio_only: false,
            pending: BytesMut::new(),
            kind: None,
            first_ts: 0,
            first: FirstTimes::default(),
        }
    }

    /// Changes how long tags are held, from the next tag on (a stream's audience grew or
    /// shrank). Tags already held go out by the new rule.
    pub fn set_merge_ms(&mut self, merge_ms: u32) {
        self.merge_ms = merge_ms;
    }

    /// A stream without video: every audio frame may go out at once (nothing to wait for).
    pub fn set_audio_only(&mut self) {
        self.audio_only = true;
    }

    /// Adds one media tag (`VideoKey`, `VideoInter` or `Audio`; anything else is ignored) and
    /// returns the packets now ready, oldest first.
    pub fn push(
        &mut self,
        kind: FlvKind,
        tag: &[u8],
        timestamp_ms: u32,
    ) -> impl Iterator<Item = FlvPacket> {
        let mut before = None;
        if !matches!(
            kind,
            FlvKind::VideoKey | FlvKind::VideoInter | FlvKind::Audio
        ) {
            return [None, None].into_iter().flatten();
        }
        if kind == FlvKind::VideoKey {
            // A keyframe starts a packet: it is where a new or skipping viewer begins.
            before = self.flush();
        }
        self.kind = Some(match self.kind {
            None => {
                self.first_ts = timestamp_ms;
                kind
            }
            // Audio first, then video that is not at the packet's start: no random access.
            Some(FlvKind::Audio) if kind != FlvKind::Audio => FlvKind::VideoInter,
            Some(k) => k,
        });
        self.pending.extend_from_slice(tag);
        self.first.note(kind != FlvKind::Audio, timestamp_ms);
        // Serial arithmetic on the 32-bit FLV clock (it wraps after 49 days).
        let span = timestamp_ms.wrapping_sub(self.first_ts) as i32;
        let held_ms = span.max(0) as u32;
        // Audio stamped before the frame that opened the packet is already late (the
        // transcoder's AAC runs ~50 ms behind the video it goes with): the packet goes out with
        // it at once rather than holding it longer. Holding it instead cut writes by ~8 % but
        // added ~22 ms p50 and ~64 ms p99 end-to-end latency at 1000 viewers (BENCHMARKS.md §3).
        let late_audio = kind == FlvKind::Audio && span < 0;
        let due = if self.merge_ms > 0 {
            held_ms >= self.merge_ms || late_audio
        } else {
            kind != FlvKind::Audio || self.audio_only || late_audio || held_ms >= AUDIO_ALONE_MAX_MS
        };
        let after = if due { self.flush() } else { None };
        [before, after].into_iter().flatten()
    }

    /// True while tags wait for a packet.
    pub fn holds_tags(&self) -> bool {
        self.kind.is_some()
    }

    /// Whatever is held, as one packet (before a sequence header, at the end of the stream).
    pub fn flush(&mut self) -> Option<FlvPacket> {
        let kind = self.kind.take()?;
        let data: Bytes = self.pending.split().freeze();
        let first = std::mem::take(&mut self.first);
        Some(FlvPacket { kind, data, first })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(byte: u8) -> [u8; 2] {
        [byte, byte]
    }

    fn kinds_and_bytes(packets: impl Iterator<Item = FlvPacket>) -> Vec<(FlvKind, Vec<u8>)> {
        packets.map(|p| (p.kind, p.data.to_vec())).collect()
    }

    #[test]
    fn audio_rides_with_the_next_video_frame() {
        let mut b = FlvBatcher::new(0);
        assert!(b.push(FlvKind::Audio, &tag(1), 0).next().is_none());
        assert!(b.push(FlvKind::Audio, &tag(2), 21).next().is_none());
        assert!(b.holds_tags());
        let out = kinds_and_bytes(b.push(FlvKind::VideoInter, &tag(3), 33));
        assert_eq!(out, vec![(FlvKind::VideoInter, vec![1, 1, 2, 2, 3, 3])]);
        // Nothing is left behind.
        assert!(!b.holds_tags());
        assert!(b.flush().is_none());
    }

    #[test]
    fn a_keyframe_always_starts_its_own_packet() {
        let mut b = FlvBatcher::new(0);
        assert!(b.push(FlvKind::Audio, &tag(1), 0).next().is_none());
        let out = kinds_and_bytes(b.push(FlvKind::VideoKey, &tag(9), 33));
        assert_eq!(
            out,
            vec![
                (FlvKind::Audio, vec![1, 1]),
                (FlvKind::VideoKey, vec![9, 9])
            ]
        );
    }

    #[test]
    fn audio_goes_alone_when_video_stops() {
        let mut b = FlvBatcher::new(0);
        let mut sent = Vec::new();
        for i in 0..6u32 {
            sent.extend(kinds_and_bytes(b.push(
                FlvKind::Audio,
                &tag(i as u8),
                i * 21,
            )));
        }
        // 0..105 ms of audio with no video: one packet once 100 ms were held.
        assert_eq!(
            sent,
            vec![(FlvKind::Audio, vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])]
        );
    }

    #[test]
    fn late_audio_ends_a_merged_packet_at_once() {
        let mut b = FlvBatcher::new(100);
        assert!(b.push(FlvKind::VideoKey, &tag(1), 1000).next().is_none());
        assert!(b.push(FlvKind::Audio, &tag(2), 1010).next().is_none());
        // AAC for the time before the keyframe, out of the transcoder after it: not held.
        let out = kinds_and_bytes(b.push(FlvKind::Audio, &tag(3), 980));
        assert_eq!(out, vec![(FlvKind::VideoKey, vec![1, 1, 2, 2, 3, 3])]);
        // A later frame opens the next packet, held as long as merge_ms says.
        assert!(b.push(FlvKind::VideoInter, &tag(4), 1033).next().is_none());
        assert!(b.push(FlvKind::VideoInter, &tag(5), 1066).next().is_none());
        let out = kinds_and_bytes(b.push(FlvKind::VideoInter, &tag(6), 1133));
        assert_eq!(out, vec![(FlvKind::VideoInter, vec![4, 4, 5, 5, 6, 6])]);
    }

    #[test]
    fn audio_only_streams_send_every_frame_at_once() {
        let mut b = FlvBatcher::new(0);
        b.set_audio_only();
        let out = kinds_and_bytes(b.push(FlvKind::Audio, &tag(4), 0));
        assert_eq!(out, vec![(FlvKind::Audio, vec![4, 4])]);
    }

    #[test]
    fn merged_writes_hold_tags_until_they_span_merge_ms() {
        let mut b = FlvBatcher::new(100);
        let mut sent = Vec::new();
        // 30 fps video: frames at 0, 33, 66, 100 ms; the fourth makes the span 100 ms.
        sent.extend(kinds_and_bytes(b.push(FlvKind::VideoKey, &tag(1), 0)));
        sent.extend(kinds_and_bytes(b.push(FlvKind::VideoInter, &tag(2), 33)));
        sent.extend(kinds_and_bytes(b.push(FlvKind::Audio, &tag(3), 40)));
        sent.extend(kinds_and_bytes(b.push(FlvKind::VideoInter, &tag(4), 66)));
        assert!(sent.is_empty());
        sent.extend(kinds_and_bytes(b.push(FlvKind::VideoInter, &tag(5), 100)));
        assert_eq!(
            sent,
            vec![(FlvKind::VideoKey, vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5])]
        );
        // The next keyframe still begins a packet of its own, ending the one held before it.
        assert!(b.push(FlvKind::VideoInter, &tag(6), 133).next().is_none());
        let out = kinds_and_bytes(b.push(FlvKind::VideoKey, &tag(7), 166));
        assert_eq!(out, vec![(FlvKind::VideoInter, vec![6, 6])]);
        assert_eq!(
            b.flush().map(|p| (p.kind, p.data.to_vec())),
            Some((FlvKind::VideoKey, vec![7, 7]))
        );
    }

    #[test]
    fn a_packet_knows_when_its_first_video_and_first_audio_tags_are() {
        let mut b = FlvBatcher::new(100);
        for (kind, ts) in [
            (FlvKind::Audio, 990),
            (FlvKind::VideoInter, 1000),
            (FlvKind::Audio, 1011),
            (FlvKind::VideoInter, 1033),
        ] {
            assert!(b.push(kind, &tag(1), ts).next().is_none());
        }
        let first = b.flush().unwrap().first;
        assert_eq!((first.video, first.audio), (Some(1000), Some(990)));
        // The next packet starts afresh.
        b.push(FlvKind::Audio, &tag(2), 1032).for_each(drop);
        let first = b.flush().unwrap().first;
        assert_eq!((first.video, first.audio), (None, Some(1032)));
    }

    #[test]
    fn headers_and_end_are_not_batched() {
        let mut b = FlvBatcher::new(0);
        assert!(b.push(FlvKind::VideoHeader, &tag(1), 0).next().is_none());
        assert!(b.push(FlvKind::End, &[], 0).next().is_none());
        assert!(b.flush().is_none());
    }

    #[test]
    fn timestamp_wrap_does_not_hold_audio_forever() {
        let mut b = FlvBatcher::new(0);
        assert!(b
            .push(FlvKind::Audio, &tag(1), u32::MAX - 10)
            .next()
            .is_none());
        // 32-bit FLV time wraps after 49 days; 111 ms later is a small step, not a jump back.
        let out = kinds_and_bytes(b.push(FlvKind::Audio, &tag(2), 100));
        assert_eq!(out, vec![(FlvKind::Audio, vec![1, 1, 2, 2])]);
    }
}
