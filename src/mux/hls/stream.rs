//! One live HLS rendition: takes frames and codec configuration, asks the segmenter where to
//! cut, assembles samples per track, writes fMP4 init and media segments and hands them to the
//! window (storage + playlist).
//!
//! Timing: frames carry 90 kHz decode times; a sample is written when its successor arrives
//! (its duration is the difference), so each segment ends exactly where the next begins.
//!
//! Video keyframes carry the SPS and PPS of their segment's init segment in-band as well
//! (`fmp4::InBandParameterSets`), so players that keep the first init still decode a
//! resolution change.
//!
//! Low-Latency HLS: with a part target, the part cutter ends a partial segment inside the open
//! segment every part target or so; each part is one CMAF chunk (`moof` + `mdat`, the first
//! of a segment with `styp`), published as soon as it is complete, and the segment is its parts
//! back to back. Without one, a segment is written as a single chunk when it closes.

use std::time::Duration;

use bytes::Bytes;

use super::parts::PartCutter;
use super::playlist::LowLatency;
use super::segmenter::{Decision, Segmenter};
use super::track::{TimelineBreak, TrackState};
use super::ts_rendition::TsRendition;
use super::window::{Bandwidth, NewPart, NewSegment, SegmentHead, SegmentWindow};
use crate::media::h264::ParameterSets;
use crate::media::{Codec, Frame, CLOCK_RATE};
use crate::mux::fmp4::{
    init_segment, media_chunk, media_segment, InBandParameterSets, TrackCodec, TrackFragment,
    TrackSpec,
};

/// RFC 8216 §6.2.2: a live playlist must not shrink below three target durations of content.
const MIN_WINDOW: usize = 3;
const VIDEO_TRACK_ID: u32 = 1;
const AUDIO_TRACK_ID: u32 = 2;

/// Settings of one HLS stream.
#[derive(Clone, Debug)]
pub struct HlsConfig {
    /// Wanted segment length; segments are cut at the first keyframe at or after it.
    pub segment_target: Duration,
    /// Segments listed in the playlist (at least 3 are kept).
    pub window: usize,
    /// Prefix of every file name, unique per publish so caches never mix two publishes. Only
    /// `[A-Za-z0-9_-]` is kept; anything else becomes `_`.
    pub name_prefix: String,
    /// Where a finished media segment's bytes are kept (the caller may move them, e.g. into
    /// memory that can be sent without copying); the bytes must stay the same.
    pub store_segment: fn(Bytes) -> Bytes,
    /// Low-Latency HLS partial segments of about this length (`None`: plain HLS).
    pub part_target: Option<Duration>,
    /// Also write an MPEG-TS rendition of the same segments (`ts.m3u8`).
    pub mpegts: bool,
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            segment_target: Duration::from_secs(2),
            window: 6,
            name_prefix: "live".to_string(),
            store_segment: std::convert::identity,
            part_target: None,
            mpegts: false,
        }
    }
}

/// Errors of the HLS stream's configuration calls.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HlsError {
    #[error("an audio track needs an audio codec (AAC or Opus), not H.264")]
    NotAudio,
}

/// Bookkeeping of the segment being filled.
struct OpenSegment {
    head: SegmentHead,
    /// Its chunks written so far (its parts, in low-latency mode).
    chunks: Vec<Bytes>,
    /// Seconds of leading-track content in those chunks.
    seconds: f64,
}

/// Video time a chunk end waits at most for the audio to reach it: 200 ms in 90 kHz ticks.
const MAX_AUDIO_WAIT: i64 = 18_000;

/// What closes when a held chunk end is released.
#[derive(Clone, Copy)]
enum CutAction {
    /// A part ends; the next starts with a keyframe or not.
    Part { keyframe: bool },
    /// A segment ends; the next opens at this wall-clock time.
    Segment { wallclock_ms: i64 },
}

/// A chunk (part or segment) end decided at video time `at`, waiting for the audio to reach
/// it so the chunk's audio covers its video: players that buffer both tracks as one (hls.js)
/// otherwise see every chunk end short by the audio's lag, and refetch or stall. Video frames
/// that come meanwhile wait here.
struct HeldCut {
    at: i64,
    action: CutAction,
    video: Vec<(Frame, i64)>,
}

/// How far the stream has got, for requests that wait for a segment or part (blocking
/// playlist reload, preload hints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HlsProgress {
    /// Media sequence number of the segment being written (segments before it are complete).
    pub next_msn: u64,
    /// Parts of that segment published so far.
    pub parts_in_open: u64,
    /// Parts of the segment before it (the last complete one).
    pub parts_in_last: u64,
    /// Sequence number the next part file will get (`{prefix}-p{n}.m4s`).
    pub next_part: u64,
    /// The stream ended: nothing more will come.
    pub ended: bool,
}

/// A live HLS stream (fMP4 segments, sliding-window media playlist). Sans-IO: frames and
/// wall-clock times in, files out through [`HlsStream::playlist`] and [`HlsStream::get`].
pub struct HlsStream {
    prefix: String,
    store_segment: fn(Bytes) -> Bytes,
    target_duration: u32,
    segmenter: Segmenter,
    video: TrackState,
    audio: TrackState,
    /// Active parameter sets / audio codec (those of the current init segment).
    video_ps: Option<ParameterSets>,
    audio_codec: Option<TrackCodec>,
    /// Replacements that take effect when the next segment opens.
    next_video_ps: Option<ParameterSets>,
    next_audio_codec: Option<TrackCodec>,
    init_dirty: bool,
    /// The next segment gets EXT-X-DISCONTINUITY (new init or a timeline break).
    pending_discontinuity: bool,
    /// The leading track's clock jumped: the next segment re-anchors the timeline.
    timeline_break: bool,
    /// 90 kHz decode time that maps to 0 in the fMP4 timeline.
    origin: Option<i64>,
    /// EXT-X-PROGRAM-DATE-TIME follows the media timeline from this point: (fMP4 timeline
    /// ticks, Unix ms). Set by the first segment and at each timeline break.
    pdt_anchor: Option<(i64, i64)>,
    open: Option<OpenSegment>,
    next_msn: u64,
    next_init_seq: u32,
    files: SegmentWindow,
    ended: bool,
    /// Low latency: where parts end inside a segment, and the playlist's values for it.
    parts: Option<PartCutter>,
    low_latency: Option<LowLatency>,
    /// The open part starts with a keyframe (INDEPENDENT=YES).
    part_independent: bool,
    parts_in_open: u64,
    parts_in_last: u64,
    next_part: u64,
    /// mfhd sequence number of the next chunk (starts at 1, only increases).
    next_chunk_seq: u32,
    ts: Option<TsRendition>,
    held: Option<HeldCut>,
}

impl HlsStream {
    /// A stream whose segments are cut at video keyframes (audio, if any, follows along).
    pub fn new(config: HlsConfig) -> Self {
        Self::build(config, true)
    }

    /// A stream without video: segments are cut at the first audio frame past the target.
    pub fn new_audio_only(config: HlsConfig) -> Self {
        Self::build(config, false)
    }

    fn build(config: HlsConfig, video_led: bool) -> Self {
        let target = config.segment_target;
        let target_ticks = duration_ticks(target);
        // ceil(1.5 × target) whole seconds: keyframes arrive on request (PLI) when a segment is
        // due, so segments land near the target; the margin keeps EXTINF rounded to an integer
        // at or below EXT-X-TARGETDURATION when a keyframe is late. Constant for the stream.
        let target_duration = u32::try_from((target.as_millis() * 3).div_ceil(2000))
            .unwrap_or(u32::MAX)
            .max(1);
        let prefix: String = config
            .name_prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let parts = config
            .part_target
            .map(|p| PartCutter::new(duration_ticks(p)));
        let low_latency = config
            .part_target
            .map(|p| low_latency_info(p, target_duration));
        let window = config.window.max(MIN_WINDOW);
        let ts = config
            .mpegts
            .then(|| TsRendition::new(window, target_duration));
        let mut video = TrackState::new(VIDEO_TRACK_ID, CLOCK_RATE, CLOCK_RATE / 30);
        let mut audio = TrackState::new(AUDIO_TRACK_ID, 48_000, 960);
        if ts.is_some() {
            video.collect_ts();
            audio.collect_ts();
        }
        Self {
            prefix,
            store_segment: config.store_segment,
            target_duration,
            segmenter: Segmenter::new(target_ticks, video_led),
            // Fallback durations: one frame at 30 fps, one 20 ms Opus frame.
            video,
            audio,
            video_ps: None,
            audio_codec: None,
            next_video_ps: None,
            next_audio_codec: None,
            init_dirty: true,
            pending_discontinuity: false,
            timeline_break: false,
            origin: None,
            pdt_anchor: None,
            open: None,
            next_msn: 0,
            next_init_seq: 0,
            files: SegmentWindow::new(window, target_duration, low_latency),
            ended: false,
            parts,
            low_latency,
            part_independent: false,
            parts_in_open: 0,
            parts_in_last: 0,
            next_part: 0,
            next_chunk_seq: 1,
            ts,
            held: None,
        }
    }

    /// Sets the H.264 parameter sets. Repeating the current ones (WebRTC senders resend them
    /// before every IDR) costs one comparison. Different ones take effect at the next keyframe:
    /// the open segment is cut there and the next one gets a new init segment, EXT-X-MAP and
    /// EXT-X-DISCONTINUITY.
    pub fn set_video(&mut self, ps: ParameterSets) {
        if !self.segmenter.video_led() {
            return; // an audio-only stream has no video track
        }
        let same = |cur: &ParameterSets| cur.sps == ps.sps && cur.pps == ps.pps;
        let latest = self.next_video_ps.as_ref().or(self.video_ps.as_ref());
        if latest.is_some_and(same) {
            return;
        }
        if self.video_ps.as_ref().is_some_and(same) {
            // Switched back before the switch happened: nothing changes after all.
            self.next_video_ps = None;
            return;
        }
        if self.segmenter.is_open() {
            self.next_video_ps = Some(ps);
            self.segmenter.request_cut();
        } else {
            self.video_ps = Some(ps);
            self.next_video_ps = None;
            self.init_dirty = true;
        }
    }

    /// Adds (or changes) the audio track: AAC or Opus, timescale = its sample rate. Like
    /// [`HlsStream::set_video`], a change while a segment is open takes effect at the next cut.
    pub fn set_audio(&mut self, codec: TrackCodec) -> Result<(), HlsError> {
        if matches!(codec, TrackCodec::H264(_)) {
            return Err(HlsError::NotAudio);
        }
        let latest = self.next_audio_codec.as_ref().or(self.audio_codec.as_ref());
        if latest == Some(&codec) {
            return Ok(());
        }
        if self.segmenter.is_open() {
            self.next_audio_codec = Some(codec);
            self.segmenter.request_cut();
        } else {
            let (timescale, frame) = audio_timing(&codec);
            self.audio.reconfigure(timescale, frame);
            self.audio_codec = Some(codec);
            self.next_audio_codec = None;
            self.init_dirty = true;
        }
        Ok(())
    }

    /// Adds one frame (90 kHz times) that arrived at `wallclock_unix_ms`. Frames of a track not
    /// configured yet, video before the first keyframe and anything after [`HlsStream::end`]
    /// are dropped. Returns true when a segment or part was completed (the playlist changed).
    pub fn push(&mut self, mut frame: Frame, wallclock_unix_ms: i64) -> bool {
        if self.ended || !self.accepts(&frame) {
            return false;
        }
        let is_video = frame.codec.is_video();
        // Every AAC/Opus frame decodes on its own: always a sync sample, whatever the flag.
        frame.keyframe |= !is_video;
        if let Some(held) = self.held.as_mut() {
            if is_video {
                let overdue = frame.dts.saturating_sub(held.at) > MAX_AUDIO_WAIT;
                held.video.push((frame, wallclock_unix_ms));
                return overdue && self.release_cut();
            }
            let (dts, at) = (frame.dts, held.at);
            let published = self.push_now(frame, wallclock_unix_ms);
            return if dts >= at {
                self.release_cut() | published
            } else {
                published
            };
        }
        self.push_now(frame, wallclock_unix_ms)
    }

    /// True when a chunk ending at video time `at` should wait for the audio: the stream has
    /// an audio track whose newest frame is still before `at`.
    fn audio_behind(&self, at: i64) -> bool {
        self.segmenter.video_led()
            && self.audio_codec.is_some()
            && self.audio.pending_dts().is_some_and(|d| d < at)
    }

    /// Closes the held chunk, then lets the video that waited in.
    fn release_cut(&mut self) -> bool {
        let Some(held) = self.held.take() else {
            return false;
        };
        let mut published = match held.action {
            CutAction::Part { keyframe } => {
                let published = self.close_part();
                self.part_independent = keyframe;
                published
            }
            CutAction::Segment { wallclock_ms } => {
                let published = self.close_segment();
                self.open_segment(held.at, wallclock_ms);
                self.start_part(held.at);
                published
            }
        };
        for (frame, wallclock) in held.video {
            published |= self.push(frame, wallclock);
        }
        published
    }

    fn push_now(&mut self, frame: Frame, wallclock_unix_ms: i64) -> bool {
        let is_video = frame.codec.is_video();
        match self.segmenter.decide(is_video, frame.keyframe, frame.dts) {
            Decision::Drop => false,
            Decision::Start => {
                self.open_segment(frame.dts, wallclock_unix_ms);
                self.start_part(frame.dts);
                self.add_frame(frame, false);
                false
            }
            Decision::Append => {
                // Audio that predates the timeline origin (it arrived late) has no place in it.
                if !is_video && self.origin.is_some_and(|o| frame.dts < o) {
                    return false;
                }
                let leading = is_video == self.segmenter.video_led();
                let cut_part =
                    leading && self.parts.as_mut().is_some_and(|p| p.cut_before(frame.dts));
                let (keyframe, dts) = (frame.keyframe, frame.dts);
                // As for a segment cut: this frame completes the part's last sample and then
                // waits for its own successor in the next part.
                self.add_frame(frame, false);
                if !cut_part {
                    return false;
                }
                if self.audio_behind(dts) {
                    self.held = Some(HeldCut {
                        at: dts,
                        action: CutAction::Part { keyframe },
                        video: Vec::new(),
                    });
                    return false;
                }
                let published = self.close_part();
                self.part_independent = keyframe;
                published
            }
            Decision::Cut => {
                let start = frame.dts;
                // The leading track's last sample gets its duration from this frame and goes
                // into the segment being closed; this frame opens the next one.
                self.add_frame(frame, true);
                if self.audio_behind(start) {
                    self.held = Some(HeldCut {
                        at: start,
                        action: CutAction::Segment {
                            wallclock_ms: wallclock_unix_ms,
                        },
                        video: Vec::new(),
                    });
                    return false;
                }
                let published = self.close_segment();
                self.open_segment(start, wallclock_unix_ms);
                self.start_part(start);
                published
            }
        }
    }

    /// Ends the stream: writes the open segment (its last samples keep the previous sample's
    /// duration) and adds EXT-X-ENDLIST. Later frames are ignored. The wall-clock time is not
    /// needed by the playlist today; it is taken for symmetry with [`HlsStream::push`].
    pub fn end(&mut self, _wallclock_unix_ms: i64) {
        if self.ended {
            return;
        }
        self.release_cut();
        self.ended = true;
        self.write_open_segment();
        self.files.end();
        if let Some(ts) = self.ts.as_mut() {
            ts.end();
        }
    }

    /// Writes the open segment (and part) with the samples it holds, and starts the cutting
    /// anew.
    fn write_open_segment(&mut self) {
        let origin = self.origin.unwrap_or(0);
        self.video.flush_pending(origin);
        self.audio.flush_pending(origin);
        self.close_segment();
        self.segmenter.reset();
        if let Some(p) = self.parts.as_mut() {
            p.reset();
        }
    }

    /// The publisher is gone and another may continue the stream (a reconnect): the open
    /// segment (and part) is written with what it has, and the next segment, from the next
    /// keyframe on, gets EXT-X-DISCONTINUITY and continues the fMP4 timeline where this one
    /// ended, whatever the new publisher's clock says. Codec changes it brings (new parameter
    /// sets, another audio configuration) get a new init segment as usual. Media sequence and
    /// part numbers go on without a gap. A no-op before the first segment and after the end.
    pub fn break_timeline(&mut self) {
        if self.ended || self.origin.is_none() {
            return;
        }
        self.release_cut();
        self.write_open_segment();
        self.pending_discontinuity = true;
        self.timeline_break = true;
    }

    /// The media playlist, once a whole segment exists (low latency too: parts alone would
    /// look like an empty stream to players that ignore them). Rendered only when it changes. `delta`: the delta update (`_HLS_skip=YES`) when the playlist has segments to
    /// skip, else the full playlist.
    pub fn playlist(&self, delta: bool) -> Option<Bytes> {
        self.files.playlist(delta)
    }

    /// An init segment, media segment or part by file name (`{prefix}-init-{n}.mp4`,
    /// `{prefix}-{msn}.m4s`, `{prefix}-p{n}.m4s`). Segments stay available for a couple of
    /// segment durations after leaving the playlist, parts for a segment after theirs did.
    pub fn get(&self, name: &str) -> Option<Bytes> {
        if name.ends_with(".ts") {
            return self.ts.as_ref()?.get(name);
        }
        self.files.get(name)
    }

    /// The MPEG-TS rendition's playlist, once its first segment exists (None without one).
    pub fn ts_playlist(&self) -> Option<Bytes> {
        self.ts.as_ref()?.playlist()
    }

    /// The part sequence number in a part file name of this publish (`{prefix}-p{n}.m4s`).
    pub fn part_number(&self, name: &str) -> Option<u64> {
        let n = name
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("-p")?
            .strip_suffix(".m4s")?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n.parse().ok()
    }

    /// How far the stream has got (for blocking requests).
    pub fn progress(&self) -> HlsProgress {
        HlsProgress {
            next_msn: self.next_msn,
            parts_in_open: self.parts_in_open,
            parts_in_last: self.parts_in_last,
            next_part: self.next_part,
            ended: self.ended,
        }
    }

    /// True while a part or segment end waits for the audio to reach it.
    pub fn holds_cut(&self) -> bool {
        self.held.is_some()
    }

    /// The low-latency parameters (None: plain HLS).
    pub fn low_latency(&self) -> Option<LowLatency> {
        self.low_latency
    }

    /// True when the sender should be asked for a keyframe (RTCP PLI) now: a segment is due,
    /// parameter sets changed, or the stream still waits for its first keyframe.
    pub fn wants_keyframe(&self) -> bool {
        !self.ended && self.segmenter.wants_keyframe()
    }

    /// EXT-X-MEDIA-SEQUENCE: the sequence number of the first listed segment.
    pub fn media_sequence(&self) -> u64 {
        self.files.media_sequence()
    }

    /// The sequence number the next completed segment will get.
    pub fn next_media_sequence(&self) -> u64 {
        self.next_msn
    }

    /// EXT-X-TARGETDURATION (seconds), constant for the stream.
    pub fn target_duration(&self) -> u32 {
        self.target_duration
    }

    /// True once [`HlsStream::end`] was called.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The RFC 6381 CODECS value of the current tracks (`avc1.42c01f,opus`), once known.
    pub fn codecs(&self) -> Option<String> {
        let video = self.video_ps.as_ref().map(ParameterSets::codec_string);
        let audio = self.audio_codec.as_ref().map(TrackCodec::codec_string);
        match (video, audio) {
            (Some(v), Some(a)) if self.segmenter.video_led() => Some(format!("{v},{a}")),
            (Some(v), _) if self.segmenter.video_led() => Some(v),
            (_, Some(a)) => Some(a),
            _ => None,
        }
    }

    /// Coded width and height of the current video, once known.
    pub fn resolution(&self) -> Option<(u32, u32)> {
        self.video_ps
            .as_ref()
            .map(|ps| (ps.info.width, ps.info.height))
    }

    /// Frame rate signalled in the SPS VUI, if any.
    pub fn frame_rate(&self) -> Option<f64> {
        self.video_ps.as_ref().and_then(|ps| ps.info.frame_rate)
    }

    /// Peak and average bit rate over the listed segments.
    pub fn bandwidth(&self) -> Option<Bandwidth> {
        self.files.bandwidth()
    }

    fn accepts(&self, frame: &Frame) -> bool {
        match frame.codec {
            Codec::H264 => self.video_ps.is_some() || self.next_video_ps.is_some(),
            // Only the active codec: the track of a queued one is not in the current init.
            Codec::Opus | Codec::Aac => {
                matches!(
                    (&self.audio_codec, frame.codec),
                    (Some(TrackCodec::Opus { .. }), Codec::Opus)
                        | (Some(TrackCodec::Aac { .. }), Codec::Aac)
                )
            }
        }
    }

    fn leading(&mut self) -> &mut TrackState {
        if self.segmenter.video_led() {
            &mut self.video
        } else {
            &mut self.audio
        }
    }

    /// Hands a frame to its track. `cutting`: this frame starts the next segment.
    fn add_frame(&mut self, frame: Frame, cutting: bool) {
        let origin = self.origin.unwrap_or(frame.dts);
        let is_leading = frame.codec.is_video() == self.segmenter.video_led();
        let track = if frame.codec.is_video() {
            &mut self.video
        } else {
            &mut self.audio
        };
        let brk = track.push(frame, origin);
        if is_leading && brk != TimelineBreak::None {
            // The leading track's clock jumped: the segment after the jump is marked as a
            // discontinuity and re-anchors the timeline; cut at the next cut point for it.
            self.pending_discontinuity = true;
            self.timeline_break = true;
            if !cutting {
                self.segmenter.request_cut();
            }
        }
    }

    fn open_segment(&mut self, start_dts: i64, wallclock_ms: i64) {
        if let Some(ps) = self.next_video_ps.take() {
            self.video_ps = Some(ps);
            self.init_dirty = true;
        }
        if let Some(codec) = self.next_audio_codec.take() {
            let (timescale, frame) = audio_timing(&codec);
            self.audio.reconfigure(timescale, frame);
            self.audio_codec = Some(codec);
            self.init_dirty = true;
        }
        if self.init_dirty || self.files.latest_init().is_none() {
            if self.next_msn > 0 {
                self.pending_discontinuity = true;
            }
            self.write_init();
        }
        if self.origin.is_none() {
            self.origin = Some(start_dts);
        } else if std::mem::take(&mut self.timeline_break) {
            // Keep the fMP4 timeline monotonic across the clock jump: the new segment starts
            // where the previous one ended, whatever its frames' clock says.
            let end = self.leading().last_end_ticks();
            self.origin = Some(start_dts.saturating_sub(end));
            self.pdt_anchor = None;
        }
        let wallclock_ms = self.program_date_time(start_dts, wallclock_ms);
        let init_seq = self.files.latest_init().unwrap_or(0);
        self.open = Some(OpenSegment {
            head: SegmentHead {
                wallclock_ms,
                discontinuity: std::mem::take(&mut self.pending_discontinuity),
                init_seq,
            },
            chunks: Vec::new(),
            seconds: 0.0,
        });
    }

    /// The wall-clock time of a segment starting at `start_dts`: the arrival time of the first
    /// segment's first frame (and of the first after a timeline break), then that time plus
    /// the media time since. Arrival times jitter by tens of milliseconds; a player that
    /// aligns playlist reloads by date (hls.js does) would see every segment shifted against
    /// its EXTINF durations and lose its place in the parts.
    fn program_date_time(&mut self, start_dts: i64, arrived_ms: i64) -> i64 {
        let at = start_dts.saturating_sub(self.origin.unwrap_or(start_dts));
        let (anchor_ticks, anchor_ms) = *self.pdt_anchor.get_or_insert((at, arrived_ms));
        let ticks = i128::from(at) - i128::from(anchor_ticks);
        // Ticks to milliseconds, rounded to the nearest.
        let ms = (ticks * 1000 + i128::from(CLOCK_RATE / 2)).div_euclid(i128::from(CLOCK_RATE));
        anchor_ms.saturating_add(i64::try_from(ms).unwrap_or(0))
    }

    /// A part starts with the leading frame that opens a segment: a keyframe for video.
    fn start_part(&mut self, dts: i64) {
        if let Some(p) = self.parts.as_mut() {
            p.start(dts);
        }
        self.part_independent = true;
    }

    fn write_init(&mut self) {
        let mut tracks = Vec::with_capacity(2);
        let mut in_band = None;
        if self.segmenter.video_led() {
            if let Some(ps) = &self.video_ps {
                tracks.push(TrackSpec {
                    track_id: VIDEO_TRACK_ID,
                    timescale: CLOCK_RATE,
                    codec: TrackCodec::H264(ps.clone()),
                });
                in_band = Some(InBandParameterSets::new(ps));
            }
        }
        // The keyframes of the segments this init governs repeat its avcC in-band. An init is
        // only written as a segment opens, before its first frame becomes a sample.
        self.video.set_in_band(in_band);
        if let Some(ts) = self.ts.as_mut() {
            let video = self
                .video_ps
                .as_ref()
                .filter(|_| self.segmenter.video_led());
            ts.set_tracks(video, self.audio_codec.as_ref());
        }
        if let Some(codec) = &self.audio_codec {
            tracks.push(TrackSpec {
                track_id: AUDIO_TRACK_ID,
                timescale: self.audio.timescale,
                codec: codec.clone(),
            });
        }
        let seq = self.next_init_seq;
        self.next_init_seq = self.next_init_seq.wrapping_add(1);
        let name = format!("{}-init-{seq}.mp4", self.prefix);
        self.files.add_init(seq, name, init_segment(&tracks));
        self.init_dirty = false;
    }

    /// Writes the samples collected since the last chunk as one chunk of the open segment
    /// and, in low-latency mode, publishes it as a part. Returns true when a part was
    /// published; false when there were no samples (nothing is written then).
    fn close_part(&mut self) -> bool {
        let Some(open) = self.open.as_mut() else {
            return false;
        };
        let origin = self.origin.unwrap_or(0);
        let empty = TrackFragment {
            track_id: 0,
            base_media_decode_time: 0,
            samples: &[],
        };
        let mut fragments = [empty; 2];
        let mut n = 0;
        for track in [&self.video, &self.audio] {
            if let Some(fragment) = track.fragment(origin) {
                fragments[n] = fragment;
                n += 1;
            }
        }
        if n == 0 {
            return false;
        }
        let leading = if self.segmenter.video_led() {
            &self.video
        } else {
            &self.audio
        };
        let seconds = leading.segment_seconds();
        let seq = self.next_chunk_seq;
        self.next_chunk_seq = self.next_chunk_seq.wrapping_add(1).max(1);
        let chunk = if open.chunks.is_empty() {
            media_segment(seq, &fragments[..n])
        } else {
            media_chunk(seq, &fragments[..n])
        };
        self.video.clear_segment(origin);
        self.audio.clear_segment(origin);
        open.chunks.push(chunk.clone());
        open.seconds += seconds;
        if self.parts.is_none() {
            return false;
        }
        let part = self.next_part;
        self.next_part += 1;
        self.parts_in_open += 1;
        let head = open.head;
        self.files.publish_part(
            NewPart {
                msn: self.next_msn,
                name: format!("{}-p{part}.m4s", self.prefix),
                data: chunk,
                duration: seconds,
                independent: self.part_independent || !self.segmenter.video_led(),
                next_name: format!("{}-p{}.m4s", self.prefix, part + 1),
            },
            head,
        );
        true
    }

    /// Writes the open segment's last chunk, then the segment (its chunks back to back), and
    /// publishes it. Returns false when there was nothing to write.
    fn close_segment(&mut self) -> bool {
        self.close_part();
        let Some(open) = self.open.take() else {
            return false;
        };
        if open.chunks.is_empty() {
            return false;
        }
        let data = if open.chunks.len() == 1 {
            open.chunks[0].clone()
        } else {
            let len = open.chunks.iter().map(Bytes::len).sum();
            let mut joined = bytes::BytesMut::with_capacity(len);
            for chunk in &open.chunks {
                joined.extend_from_slice(chunk);
            }
            joined.freeze()
        };
        let msn = self.next_msn;
        self.next_msn += 1;
        self.parts_in_last = std::mem::take(&mut self.parts_in_open);
        let segment = NewSegment {
            msn,
            name: format!("{}-{msn}.m4s", self.prefix),
            data: (self.store_segment)(data),
            duration: open.seconds,
            wallclock_ms: open.head.wallclock_ms,
            discontinuity: open.head.discontinuity,
            init_seq: open.head.init_seq,
        };
        if let Some(ts) = self.ts.as_mut() {
            let (video, audio) = (self.video.take_ts(), self.audio.take_ts());
            ts.publish(&segment, &self.prefix, video, audio);
        }
        self.files.publish(segment);
        true
    }
}

/// The server-control values for a part target and target duration: PART-HOLD-BACK three part
/// targets (Apple's minimum, which players then aim at), HOLD-BACK three target durations,
/// and delta updates for segments older than six target durations (RFC 8216bis minimum).
fn low_latency_info(part_target: Duration, target_duration: u32) -> LowLatency {
    let part = part_target.as_secs_f64();
    let target = f64::from(target_duration);
    LowLatency {
        part_target: part,
        part_hold_back: 3.0 * part,
        hold_back: 3.0 * target,
        can_skip_until: Some(6.0 * target),
    }
}

/// A duration in 90 kHz ticks (saturating).
fn duration_ticks(d: Duration) -> i64 {
    i64::try_from(d.as_micros() * u128::from(CLOCK_RATE) / 1_000_000).unwrap_or(i64::MAX)
}

/// Timescale and usual frame duration of an audio track.
fn audio_timing(codec: &TrackCodec) -> (u32, u32) {
    match codec {
        // Opus always decodes at 48 kHz (RFC 7587 uses that clock too); WebRTC sends 20 ms.
        TrackCodec::Opus { .. } => (48_000, 960),
        // AAC-LC frames are 1024 samples.
        TrackCodec::Aac { sample_rate, .. } => ((*sample_rate).max(1), 1024),
        TrackCodec::H264(_) => (CLOCK_RATE, CLOCK_RATE / 30),
    }
}
