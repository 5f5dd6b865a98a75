//! The files of one HLS stream and its sliding window: init and media segments by name, the
//! media playlist model and its rendered text (re-rendered only when a segment is added or the
//! stream ends).

use std::collections::VecDeque;

use bytes::Bytes;

use super::playlist::{MediaPlaylist, PlaylistSegment};

/// Segments kept for download after they left the playlist, for clients still fetching them.
const RETAINED_BEYOND_WINDOW: usize = 2;

/// Peak and average bit rate of the listed segments (bits per second), for the multivariant
/// playlist's BANDWIDTH and AVERAGE-BANDWIDTH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bandwidth {
    pub peak: u64,
    pub average: u64,
}

struct InitFile {
    seq: u32,
    name: String,
    data: Bytes,
}

struct SegmentFile {
    name: String,
    data: Bytes,
    duration: f64,
    init_seq: u32,
}

/// A finished media segment, ready to be listed.
pub(super) struct NewSegment {
    pub msn: u64,
    pub name: String,
    pub data: Bytes,
    pub duration: f64,
    pub wallclock_ms: i64,
    pub discontinuity: bool,
    pub init_seq: u32,
}

pub(super) struct SegmentWindow {
    /// Segments listed in the playlist.
    window: usize,
    inits: VecDeque<InitFile>,
    /// Listed segments plus up to [`RETAINED_BEYOND_WINDOW`] older ones, oldest first.
    segments: VecDeque<SegmentFile>,
    playlist: MediaPlaylist,
    rendered: Option<Bytes>,
}

impl SegmentWindow {
    pub fn new(window: usize, target_duration: u32) -> Self {
        Self {
            window: window.max(1),
            inits: VecDeque::new(),
            segments: VecDeque::with_capacity(window + RETAINED_BEYOND_WINDOW + 1),
            playlist: MediaPlaylist::new(target_duration),
            rendered: None,
        }
    }

    /// Stores a new init segment; it stays while a stored segment uses it (or it is the latest).
    pub fn add_init(&mut self, seq: u32, name: String, data: Bytes) {
        self.inits.push_back(InitFile { seq, name, data });
    }

    /// Sequence number of the latest init segment.
    pub fn latest_init(&self) -> Option<u32> {
        self.inits.back().map(|i| i.seq)
    }

    /// Lists a segment and slides the window (RFC 8216 §6.2.2): the media sequence steps by
    /// one per removed segment, and the discontinuity sequence counts the discontinuities that
    /// left with them.
    pub fn publish(&mut self, seg: NewSegment) {
        let map_uri = self
            .inits
            .iter()
            .find(|i| i.seq == seg.init_seq)
            .map(|i| i.name.clone());
        if self.playlist.segments.is_empty() && self.segments.is_empty() {
            self.playlist.media_sequence = seg.msn;
        }
        self.playlist.segments.push(PlaylistSegment {
            uri: seg.name.clone(),
            duration: seg.duration,
            program_date_time_ms: Some(seg.wallclock_ms),
            discontinuity: seg.discontinuity,
            map_uri,
        });
        self.segments.push_back(SegmentFile {
            name: seg.name,
            data: seg.data,
            duration: seg.duration,
            init_seq: seg.init_seq,
        });
        while self.playlist.segments.len() > self.window {
            let removed = self.playlist.segments.remove(0);
            self.playlist.media_sequence += 1;
            if removed.discontinuity {
                self.playlist.discontinuity_sequence += 1;
            }
        }
        while self.segments.len() > self.window + RETAINED_BEYOND_WINDOW {
            self.segments.pop_front();
        }
        let oldest_needed = self.segments.front().map(|s| s.init_seq);
        while self.inits.len() > 1 && self.inits.front().map(|i| i.seq) != oldest_needed {
            self.inits.pop_front();
        }
        self.render();
    }

    /// Marks the playlist ended (EXT-X-ENDLIST). Without any segment there stays no playlist.
    pub fn end(&mut self) {
        self.playlist.ended = true;
        if !self.playlist.segments.is_empty() {
            self.render();
        }
    }

    fn render(&mut self) {
        self.rendered = Some(Bytes::from(self.playlist.render()));
    }

    pub fn playlist(&self) -> Option<Bytes> {
        self.rendered.clone()
    }

    /// A stored file by name; recent segments are the most requested, so search from the end.
    pub fn get(&self, name: &str) -> Option<Bytes> {
        if let Some(seg) = self.segments.iter().rev().find(|s| s.name == name) {
            return Some(seg.data.clone());
        }
        self.inits
            .iter()
            .rev()
            .find(|i| i.name == name)
            .map(|i| i.data.clone())
    }

    pub fn media_sequence(&self) -> u64 {
        self.playlist.media_sequence
    }

    pub fn bandwidth(&self) -> Option<Bandwidth> {
        let listed = self
            .segments
            .iter()
            .rev()
            .take(self.playlist.segments.len());
        let (mut bits, mut seconds, mut peak) = (0f64, 0f64, 0f64);
        for seg in listed.filter(|s| s.duration > 0.0) {
            let seg_bits = seg.data.len() as f64 * 8.0;
            bits += seg_bits;
            seconds += seg.duration;
            peak = peak.max(seg_bits / seg.duration);
        }
        (seconds > 0.0).then(|| Bandwidth {
            peak: peak.ceil() as u64,
            average: (bits / seconds).ceil() as u64,
        })
    }
}
