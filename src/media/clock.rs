//! The stream's one media clock: puts the audio and video frames of a publish on one 90 kHz
//! timeline. Tracks are placed by arrival time at first, then, once both tracks have RTCP
//! sender reports (RFC 3550 §6.4.1), by the sender's own wall clock, the audio being slewed onto
//! the reported alignment rather than jumped. Sans-IO: every instant is a parameter.
//!
//! Why this shape:
//! - A stream must never wait for a sender report: some encoders send none, and a gateway that
//!   holds frames until one arrives shows nothing. Until both tracks have one, each track is
//!   anchored by the arrival of its first frame and then follows its own RTP timestamps, so
//!   network jitter never reaches the output.
//! - Video is the reference: its timeline is never touched (a video frame's time is what the
//!   viewer's decoder paces on and what HLS segments are cut on). Audio moves by at most
//!   1/[`SLEW_DIVISOR`] of the media time that passes, so its output never runs backwards and
//!   players see small gaps or overlaps rather than a jump.
//! - A correction larger than [`MAX_JUMP`] is not a correction but a broken timeline (an
//!   encoder restart, a stepped sender clock); it is never slewed for minutes. A frame whose RTP
//!   time breaks away from its arrival re-anchors its track by arrival; a report that
//!   disagrees that much with the current placement is held off until the two tracks' reports
//!   agree again.

#[cfg(test)]
mod tests;

use std::time::Instant;

use crate::media::{Codec, Frame, CLOCK_RATE};

/// Largest step, in 90 kHz ticks (1 s), that is treated as an adjustment. Beyond it an RTP
/// timestamp jump re-anchors its track and a sender-report alignment is not slewed to.
pub const MAX_JUMP: i64 = CLOCK_RATE as i64;

/// Audio is slewed by at most `1 / SLEW_DIVISOR` of the media time between two of its frames
/// (5 %: 1 ms per 20 ms Opus frame, so a 120 ms correction takes 2.4 s of audio).
pub const SLEW_DIVISOR: i64 = 20;

/// Within this many ticks (1 ms) of the sender-report alignment the tracks count as locked.
pub const LOCK_TOLERANCE: i64 = 90;

/// One of the two tracks of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackId {
    Video,
    Audio,
}

impl TrackId {
    /// The track a codec's frames belong to.
    pub fn for_codec(codec: Codec) -> Self {
        if codec.is_video() {
            TrackId::Video
        } else {
            TrackId::Audio
        }
    }

    fn index(self) -> usize {
        match self {
            TrackId::Video => 0,
            TrackId::Audio => 1,
        }
    }

    /// The RTP clock rate assumed until [`MediaClock::register_track`] says otherwise: 90 kHz
    /// for video (RFC 6184 §8.2.1), 48 kHz for Opus (RFC 7587 §4.1).
    fn default_clock_rate(self) -> u32 {
        match self {
            TrackId::Video => CLOCK_RATE,
            TrackId::Audio => 48_000,
        }
    }
}

/// How the two tracks are currently lined up, for logs and the stream API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// Placed by arrival time: fewer than two tracks have frames and a usable sender report.
    ByArrival,
    /// Audio is moving toward the sender-report alignment; `remaining` ticks to go (positive:
    /// audio is being moved later).
    Slewing { remaining: i64 },
    /// Both tracks are on the sender's wall clock (within [`LOCK_TOLERANCE`]).
    Locked,
    /// The reports disagree with the current placement by more than [`MAX_JUMP`] (one track's
    /// clock was reset, the other's report not yet): audio keeps its place until they agree.
    Mismatch { by: i64 },
}

/// A sender report as it arrived, kept until the track's next frame gives its 32-bit RTP time
/// a cycle to be extended into.
#[derive(Clone, Copy, Debug)]
struct RawReport {
    ntp: u64,
    rtp: u32,
}

/// Where a track's frames go: `output = pts + offset`.
#[derive(Clone, Copy, Debug)]
struct Placement {
    offset: i64,
    last_pts: i64,
    last_out: i64,
    last_arrival: Instant,
    /// The last forward step of the input, as an estimate of one frame's duration.
    last_step: i64,
}

#[derive(Clone, Debug)]
struct Track {
    clock_rate: u32,
    placement: Option<Placement>,
    /// Set when the track was registered again: its next frame starts a new timeline.
    restart: bool,
    pending_report: Option<RawReport>,
    /// The sender's wall clock minus the RTP time, both in ticks: `ntp_ticks(frame) = pts +
    /// wall`. Taken from the last sender report, relative to [`MediaClock::ntp_reference`].
    wall: Option<i64>,
}

impl Track {
    fn new(id: TrackId) -> Self {
        Track {
            clock_rate: id.default_clock_rate(),
            placement: None,
            restart: false,
            pending_report: None,
            wall: None,
        }
    }
}

/// The media clock of one stream (see the module docs). Not thread-safe by itself: the two
/// track tasks share it behind a lock.
#[derive(Clone, Debug)]
pub struct MediaClock {
    /// When the first frame of any track arrived: stream time 0.
    start: Option<Instant>,
    /// The NTP time of the first report, which every wall offset is relative to (this keeps
    /// the numbers small and survives the NTP era rollover in 2036).
    ntp_reference: Option<u64>,
    tracks: [Track; 2],
}

impl Default for MediaClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MediaClock {
    pub fn new() -> Self {
        MediaClock {
            start: None,
            ntp_reference: None,
            tracks: [Track::new(TrackId::Video), Track::new(TrackId::Audio)],
        }
    }

    /// Declares a track and the clock rate of its RTP timestamps (and so of its sender
    /// reports). Optional for 90 kHz video and 48 kHz Opus; a rate of 0 is ignored. Registering
    /// a track that already has frames (a new SSRC) starts it afresh: its reports are
    /// forgotten and its next frame is re-anchored by arrival, never before its last output.
    pub fn register_track(&mut self, track: TrackId, clock_rate: u32) {
        let t = &mut self.tracks[track.index()];
        if clock_rate > 0 {
            t.clock_rate = clock_rate;
        }
        t.restart = t.placement.is_some();
        t.pending_report = None;
        t.wall = None;
    }

    /// Takes a sender report of `track`: `ntp` in NTP 64-bit format (RFC 3550 §4), `rtp` the
    /// same instant in the track's RTP clock. It is used from the track's next frame on (that
    /// frame decides which 32-bit cycle the RTP time is in); a newer report replaces one still
    /// waiting. A report pairs two readings taken together at the sender, so when it arrives
    /// does not matter: `_arrival` is not used.
    pub fn on_sender_report(&mut self, track: TrackId, ntp: u64, rtp: u32, _arrival: Instant) {
        self.tracks[track.index()].pending_report = Some(RawReport { ntp, rtp });
    }

    /// The stream time, in 90 kHz ticks, of a frame of `track` whose own (unwrapped, 90 kHz)
    /// time is `pts`, which arrived at `arrival`. Never negative; never less than the track's
    /// previous output. Call it for each frame, in order: it also advances the audio slew.
    pub fn map(&mut self, track: TrackId, pts: i64, arrival: Instant) -> i64 {
        let start = *self.start.get_or_insert(arrival);
        let since_start = ticks_between(start, arrival).max(0);
        let index = track.index();

        // 1. Place the frame: anchor, follow RTP, or re-anchor on a broken timeline.
        let t = &mut self.tracks[index];
        let step = match (t.placement.as_mut(), t.restart) {
            (Some(p), false) => {
                let dp = pts.saturating_sub(p.last_pts);
                let da = ticks_between(p.last_arrival, arrival);
                // Backwards, or ahead of the arrival clock by over a second: a new timeline
                // (encoder restart, new random base). Arrival running ahead of RTP time is
                // not: that is a stall, and the frames still belong where RTP puts them.
                if dp < 0 || dp.saturating_sub(da) > MAX_JUMP {
                    reanchor(p, pts, since_start);
                    t.wall = None;
                    0
                } else {
                    dp
                }
            }
            (Some(p), true) => {
                reanchor(p, pts, since_start);
                t.restart = false;
                0
            }
            (None, _) => {
                t.placement = Some(Placement {
                    offset: since_start.saturating_sub(pts),
                    last_pts: pts,
                    last_out: since_start,
                    last_arrival: arrival,
                    last_step: 0,
                });
                t.restart = false;
                0
            }
        };

        // 2. A waiting sender report gets its RTP cycle from this frame.
        if let Some(report) = self.tracks[index].pending_report.take() {
            let reference = *self.ntp_reference.get_or_insert(report.ntp);
            let t = &mut self.tracks[index];
            let report_pts = extend_report_rtp(report.rtp, pts, t.clock_rate);
            t.wall = Some(ntp_ticks_since(reference, report.ntp).saturating_sub(report_pts));
        }

        // 3. Audio moves toward the sender-report alignment, by a bounded share of the step.
        if track == TrackId::Audio && step > 0 {
            if let Some(remaining) = self
                .audio_correction()
                .filter(|r| r.saturating_abs() <= MAX_JUMP)
            {
                let limit = step / SLEW_DIVISOR;
                if let Some(p) = self.tracks[index].placement.as_mut() {
                    p.offset = p.offset.saturating_add(remaining.clamp(-limit, limit));
                }
            }
        }

        // 4. Output, never before the previous one of this track.
        let Some(p) = self.tracks[index].placement.as_mut() else {
            return 0;
        };
        let out = pts.saturating_add(p.offset).max(p.last_out).max(0);
        if step > 0 {
            p.last_step = step;
        }
        p.last_pts = pts;
        p.last_out = out;
        p.last_arrival = arrival;
        out
    }

    /// [`map`](Self::map) for a whole frame: its decode time drives the clock and its
    /// presentation time keeps its distance from it.
    pub fn map_frame(&mut self, mut frame: Frame, arrival: Instant) -> Frame {
        let composition = frame.pts.saturating_sub(frame.dts);
        frame.dts = self.map(TrackId::for_codec(frame.codec), frame.dts, arrival);
        frame.pts = frame.dts.saturating_add(composition);
        frame
    }

    /// How the tracks are lined up right now.
    pub fn sync_state(&self) -> SyncState {
        match self.audio_correction() {
            None => SyncState::ByArrival,
            Some(by) if by.saturating_abs() > MAX_JUMP => SyncState::Mismatch { by },
            Some(remaining) if remaining.saturating_abs() <= LOCK_TOLERANCE => SyncState::Locked,
            Some(remaining) => SyncState::Slewing { remaining },
        }
    }

    /// How far the audio offset is from the sender-report alignment, when both tracks have
    /// frames and a report.
    fn audio_correction(&self) -> Option<i64> {
        let [video, audio] = &self.tracks;
        let video_offset = video.placement?.offset;
        let audio_offset = audio.placement?.offset;
        // Same sender wall time, same stream time: out = pts + wall + c for both tracks, with c
        // fixed by the video, which is never moved: c = video_offset - video_wall.
        let target = audio
            .wall?
            .saturating_sub(video.wall?)
            .saturating_add(video_offset);
        Some(target.saturating_sub(audio_offset))
    }
}

/// Starts a new timeline for a track at its arrival time, after its last output.
fn reanchor(p: &mut Placement, pts: i64, since_start: i64) {
    let floor = p.last_out.saturating_add(p.last_step.max(1));
    p.offset = since_start.max(floor).saturating_sub(pts);
}

/// Signed 90 kHz ticks from `from` to `to`.
fn ticks_between(from: Instant, to: Instant) -> i64 {
    let (duration, sign) = match to.checked_duration_since(from) {
        Some(d) => (d, 1),
        None => (from.saturating_duration_since(to), -1),
    };
    let ticks = duration.as_nanos().saturating_mul(u128::from(CLOCK_RATE)) / 1_000_000_000;
    i64::try_from(ticks).unwrap_or(i64::MAX) * sign
}

/// 90 kHz ticks from NTP time `reference` to `ntp`. The difference is taken modulo 2^64 and
/// read as signed 32.32 seconds, so it stays right across an NTP era rollover.
fn ntp_ticks_since(reference: u64, ntp: u64) -> i64 {
    let diff = ntp.wrapping_sub(reference) as i64;
    // An arithmetic shift floors, also for times before the reference.
    ((i128::from(diff) * i128::from(CLOCK_RATE)) >> 32) as i64
}

/// A report's 32-bit RTP time, extended into the cycle nearest a frame at `pts` (90 kHz ticks)
/// of the same track, and converted to 90 kHz ticks the way the depacketizers convert (rounding
/// down), so it is directly comparable with the frames' times.
fn extend_report_rtp(rtp: u32, pts: i64, clock_rate: u32) -> i64 {
    let rate = i128::from(clock_rate.max(1));
    let media = i128::from(CLOCK_RATE);
    let frame_native = (i128::from(pts) * rate).div_euclid(media);
    // As in `rtp::TimestampUnwrapper`: the wrapped difference read as signed picks the nearer
    // cycle (RFC 3550 §5.1 timestamps wrap at 2^32).
    let delta = rtp.wrapping_sub(frame_native as u32) as i32;
    let report_native = frame_native + i128::from(delta);
    let ticks = (report_native * media).div_euclid(rate);
    ticks.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}
