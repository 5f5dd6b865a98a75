//! The files of one HLS stream and its sliding window: init segments, media segments and
//! (low latency) partial segments by name, the media playlist model and its rendered text
//! (re-rendered only when a segment or part is added or the stream ends; the delta update is
//! rendered alongside when the playlist has one).

use std::collections::VecDeque;

use bytes::Bytes;

use super::playlist::{LowLatency, MediaPlaylist, PlaylistPart, PlaylistSegment};

/// Segments kept for download after they left the playlist, for clients still fetching them.
const RETAINED_BEYOND_WINDOW: usize = 2;

/// Segments list their parts while they are within this many target durations of the end.
const PART_HORIZON_TARGETS: f64 = 3.0;

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

struct PartFile {
    /// The segment the part belongs to.
    msn: u64,
    name: String,
    data: Bytes,
}

/// A finished partial segment, ready to be listed.
pub(super) struct NewPart {
    pub msn: u64,
    pub name: String,
    pub data: Bytes,
    pub duration: f64,
    pub independent: bool,
    /// The URI the part after this one will have (EXT-X-PRELOAD-HINT).
    pub next_name: String,
}

/// What the playlist says before the first part of a segment.
#[derive(Clone, Copy)]
pub(super) struct SegmentHead {
    pub wallclock_ms: i64,
    pub discontinuity: bool,
    pub init_seq: u32,
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
    /// Parts of the recent segments and of the open one, oldest first.
    parts: VecDeque<PartFile>,
    playlist: MediaPlaylist,
    rendered: Option<Bytes>,
    /// The delta update, when the playlist has segments it can skip.
    rendered_delta: Option<Bytes>,
}

impl SegmentWindow {
    pub fn new(window: usize, target_duration: u32, low_latency: Option<LowLatency>) -> Self {
        let mut playlist = MediaPlaylist::new(target_duration);
        if let Some(ll) = low_latency {
            if ll.can_skip_until.is_some() {
                playlist.version = 9; // EXT-X-SKIP
            }
            playlist.low_latency = Some(ll);
        }
        Self {
            window: window.max(1),
            inits: VecDeque::new(),
            segments: VecDeque::with_capacity(window + RETAINED_BEYOND_WINDOW + 1),
            parts: VecDeque::new(),
            playlist,
            rendered: None,
            rendered_delta: None,
        }
    }

    /// EXT-X-VERSION, for playlists that need less than fMP4's 7.
    pub fn set_version(&mut self, version: u8) {
        self.playlist.version = version;
    }

    fn map_uri(&self, init_seq: u32) -> Option<String> {
        self.inits
            .iter()
            .find(|i| i.seq == init_seq)
            .map(|i| i.name.clone())
    }

    /// Lists a partial segment of the open segment (the first one opens it in the playlist)
    /// and hints the next.
    pub fn publish_part(&mut self, part: NewPart, head: SegmentHead) {
        if self.playlist.open.is_none() {
            if self.playlist.segments.is_empty() && self.segments.is_empty() {
                self.playlist.media_sequence = part.msn;
            }
            self.playlist.open = Some(PlaylistSegment {
                uri: String::new(),
                duration: 0.0,
                program_date_time_ms: Some(head.wallclock_ms),
                discontinuity: head.discontinuity,
                map_uri: self.map_uri(head.init_seq),
                parts: Vec::new(),
            });
        }
        if let Some(open) = self.playlist.open.as_mut() {
            open.parts.push(PlaylistPart {
                uri: part.name.clone(),
                duration: part.duration,
                independent: part.independent,
            });
        }
        self.parts.push_back(PartFile {
            msn: part.msn,
            name: part.name,
            data: part.data,
        });
        self.playlist.preload_hint = Some(part.next_name);
        self.render();
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
        let map_uri = self.map_uri(seg.init_seq);
        if self.playlist.segments.is_empty() && self.segments.is_empty() {
            self.playlist.media_sequence = seg.msn;
        }
        let parts = self
            .playlist
            .open
            .take()
            .map(|o| o.parts)
            .unwrap_or_default();
        self.playlist.segments.push(PlaylistSegment {
            uri: seg.name.clone(),
            duration: seg.duration,
            program_date_time_ms: Some(seg.wallclock_ms),
            discontinuity: seg.discontinuity,
            map_uri,
            parts,
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
        self.drop_old_parts();
        self.render();
    }

    /// Parts are listed for the segments within [`PART_HORIZON_TARGETS`] target durations of
    /// the live edge (RFC 8216bis §4.4.4.9 lets older ones go); their files stay one segment
    /// longer, for clients still fetching them.
    fn drop_old_parts(&mut self) {
        let horizon = f64::from(self.playlist.target_duration) * PART_HORIZON_TARGETS;
        let mut from_end = 0.0;
        let mut oldest_with_parts = None;
        let newest = self.playlist.media_sequence + self.playlist.segments.len() as u64;
        for (i, segment) in self.playlist.segments.iter_mut().enumerate().rev() {
            if from_end >= horizon {
                segment.parts = Vec::new();
            } else if !segment.parts.is_empty() {
                oldest_with_parts = Some(self.playlist.media_sequence + i as u64);
            }
            from_end += segment.duration.max(0.0);
        }
        let keep_from = oldest_with_parts.unwrap_or(newest).saturating_sub(1);
        while self.parts.front().is_some_and(|p| p.msn < keep_from) {
            self.parts.pop_front();
        }
    }

    /// Marks the playlist ended (EXT-X-ENDLIST): no more parts to hint. Without any segment
    /// there stays no playlist.
    pub fn end(&mut self) {
        self.playlist.ended = true;
        self.playlist.preload_hint = None;
        self.playlist.open = None;
        if !self.playlist.segments.is_empty() {
            self.render();
        }
    }

    fn render(&mut self) {
        // Not before the first whole segment: players that ignore parts (ffmpeg) take a
        // playlist of parts alone for an empty stream and give up.
        if self.playlist.segments.is_empty() {
            return;
        }
        self.rendered = Some(Bytes::from(self.playlist.render()));
        let skip = self.playlist.skippable_segments();
        self.rendered_delta = (skip > 0).then(|| Bytes::from(self.playlist.render_skipping(skip)));
    }

    /// The playlist; `delta`: the delta update when there is one (else the full playlist).
    pub fn playlist(&self, delta: bool) -> Option<Bytes> {
        if delta {
            if let Some(d) = &self.rendered_delta {
                return Some(d.clone());
            }
        }
        self.rendered.clone()
    }

    /// A stored file by name; recent files are the most requested, so search from the end.
    pub fn get(&self, name: &str) -> Option<Bytes> {
        if let Some(part) = self.parts.iter().rev().find(|p| p.name == name) {
            return Some(part.data.clone());
        }
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
