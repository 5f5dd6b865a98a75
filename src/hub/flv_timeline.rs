//! One smooth timeline for every FLV viewer. Media tags are muxed once, stamped with the
//! stream's media clock, and shared by all viewers, so they cannot be rebased to start each
//! viewer at 0 without a copy of every tag per viewer. Instead, the few tags made for one
//! viewer (onMetaData and its copies of the sequence headers) are stamped at the time of the
//! media that follows them: a sequence header goes out just before the first packet carrying
//! media of its track, at that track's first timestamp in the packet, and onMetaData before the
//! first media packet, at the earliest of them. A viewer joining 29 s in sees 29029, 29029,
//! 29029, 29010 ... instead of 0, 9888, 29029 ...: no hole for players that take the first tag
//! as their clock base, and no track going back in time. The same rule covers a new sequence
//! header mid-stream (it carries the time of the keyframe it precedes), headers a lagging viewer
//! missed, the AAC header known before any audio, and audio-only streams. It is applied to the
//! viewer's byte stream (`FlvViewerStream`), so any transport of it (HTTP-FLV, WS-FLV) gets it.
//! The cost is a copy of a few small tags per viewer when it starts or a header changes; media
//! tags stay shared. Sans-IO.

use bytes::{Bytes, BytesMut};

use super::flv_fanout::Headers;
use crate::mux::flv::set_timestamp;

/// The timestamps of the first video tag and the first audio tag of a packet (`None`: the
/// packet has no tag of that track).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FirstTimes {
    pub video: Option<u32>,
    pub audio: Option<u32>,
}

impl FirstTimes {
    /// Notes a media tag of the packet, in the order they were added.
    pub fn note(&mut self, video: bool, timestamp_ms: u32) {
        let first = if video {
            &mut self.video
        } else {
            &mut self.audio
        };
        first.get_or_insert(timestamp_ms);
    }

    /// The earlier of the two (FLV time is 32-bit and wraps: the earlier is the one the other
    /// is a short step after).
    pub fn earliest(&self) -> Option<u32> {
        match (self.video, self.audio) {
            (Some(v), Some(a)) => Some(if a.wrapping_sub(v) as i32 >= 0 { v } else { a }),
            (v, a) => v.or(a),
        }
    }
}

/// The tags a viewer is owed until media they describe reaches it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Owed {
    /// onMetaData, sent once, before the viewer's first media tag.
    pub metadata: Option<Bytes>,
    /// Sequence headers not yet sent (or replaced since): each before its track's next media.
    pub headers: Headers,
}

impl Owed {
    /// What is due before a packet whose media starts at `first`, as one chunk stamped on the
    /// packet's timeline: onMetaData, then the video header, then the audio header. Headers of a
    /// track the packet has no media of stay owed.
    pub fn due_before(&mut self, first: FirstTimes) -> Option<Bytes> {
        let start = first.earliest()?;
        let mut out = BytesMut::new();
        let mut put = |tag: Option<Bytes>, at: u32| {
            if let Some(tag) = tag {
                let from = out.len();
                out.extend_from_slice(&tag);
                set_timestamp(&mut out[from..], at);
            }
        };
        put(self.metadata.take(), start);
        if let Some(at) = first.video {
            put(self.headers.video.take(), at);
        }
        if let Some(at) = first.audio {
            put(self.headers.audio.take(), at);
        }
        (!out.is_empty()).then(|| out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::flv::{aac_sequence_header_tag, parse_tag_stream};

    fn first(video: Option<u32>, audio: Option<u32>) -> FirstTimes {
        FirstTimes { video, audio }
    }

    /// (tag type, timestamp) of each tag in `chunk`.
    fn stamps(chunk: &Bytes) -> Vec<(u8, u32)> {
        parse_tag_stream(chunk)
            .unwrap()
            .iter()
            .map(|t| (t.tag_type, t.timestamp_ms))
            .collect()
    }

    fn owed_all() -> Owed {
        Owed {
            metadata: Some(crate::mux::flv::metadata_tag(
                &crate::mux::flv::FlvMetadata::default(),
            )),
            headers: Headers {
                video: Some(crate::mux::flv::avc_sequence_header_tag(
                    &crate::hub::test_params(&crate::media::h264::test_vectors::BASELINE_360P30),
                    0,
                )),
                audio: Some(aac_sequence_header_tag(&[0x11, 0x90], 0)),
            },
        }
    }

    #[test]
    fn the_first_tag_of_each_track_sets_its_time() {
        let mut f = FirstTimes::default();
        f.note(false, 990);
        f.note(true, 1000);
        f.note(false, 1011);
        f.note(true, 1033);
        assert_eq!(f, first(Some(1000), Some(990)));
        assert_eq!(f.earliest(), Some(990));
        assert_eq!(first(Some(5), None).earliest(), Some(5));
        assert_eq!(FirstTimes::default().earliest(), None);
        // Across the 32-bit wrap, 5 ms is 16 ms after u32::MAX - 10.
        assert_eq!(
            first(Some(5), Some(u32::MAX - 10)).earliest(),
            Some(u32::MAX - 10)
        );
    }

    #[test]
    fn metadata_and_headers_take_the_time_of_the_media_after_them() {
        let mut owed = owed_all();
        // A keyframe at 29029 ms with audio from 29010 ms in the same (merged) packet.
        let chunk = owed.due_before(first(Some(29_029), Some(29_010))).unwrap();
        assert_eq!(stamps(&chunk), vec![(18, 29_010), (9, 29_029), (8, 29_010)]);
        assert_eq!(owed, Owed::default(), "all paid");
        assert_eq!(owed.due_before(first(Some(29_062), Some(29_031))), None);
    }

    #[test]
    fn a_header_waits_for_media_of_its_track() {
        let mut owed = owed_all();
        let chunk = owed.due_before(first(Some(10_000), None)).unwrap();
        assert_eq!(stamps(&chunk), vec![(18, 10_000), (9, 10_000)]);
        assert!(owed.headers.audio.is_some(), "no audio yet: still owed");
        // Nothing is due before a packet without media (a header or the end).
        assert_eq!(owed.due_before(FirstTimes::default()), None);
        let chunk = owed.due_before(first(Some(10_033), Some(9_990))).unwrap();
        assert_eq!(stamps(&chunk), vec![(8, 9_990)]);
    }
}
