//! Tests of the media clock against simulated publishers: a sender wall clock, 90 kHz video and
//! 48 kHz Opus RTP clocks with random bases, network delay and jitter, periodic sender reports.
//! The truth is the capture time each frame was stamped with, so "aligned" is checkable.
//! Instants are built from one base `Instant::now()`; the code under test never reads the clock.

use std::time::{Duration, Instant};

use super::{MediaClock, SyncState, TrackId};
use crate::rtp::opus::opus_ticks_to_media;
use crate::rtp::TimestampUnwrapper;

mod alignment;
mod edges;

/// Video frames every 1/30 s, Opus frames every 20 ms, in 90 kHz ticks.
const VIDEO_FRAME: i64 = 3_000;
const AUDIO_FRAME: i64 = 1_800;
const SECOND: i64 = 90_000;
const MS: i64 = 90;
/// Rounding of the 48 kHz to 90 kHz conversion and of NTP fractions: at most a tick or two.
const ROUNDING: i64 = 2;

/// A simulated WebRTC publisher and the network between it and the gateway. All times are
/// 90 kHz ticks of the sender's capture clock; "arrival" is when the frame leaves our
/// depacketizer.
#[derive(Clone, Debug)]
struct Publisher {
    video: bool,
    audio: bool,
    video_base: u32,
    audio_base: u32,
    ntp_base: u64,
    video_delay: i64,
    audio_delay: i64,
    /// Largest extra delay of a frame; the first frame of each track has none.
    jitter: i64,
    /// When the first sender report of each track is sent (`None`: the encoder sends none).
    first_report: Option<i64>,
    video_report_every: i64,
    audio_report_every: i64,
    /// Reports skip the receive queues frames wait in, so they can overtake them by this much.
    report_head_start: i64,
    /// The audio encoder restarts at this capture time with a new RTP base.
    audio_restart: Option<(i64, u32)>,
    /// From this capture time on, the track's reports carry an NTP time this many ticks off.
    video_ntp_step: Option<(i64, i64)>,
    audio_ntp_step: Option<(i64, i64)>,
    duration: i64,
}

fn publisher() -> Publisher {
    Publisher {
        video: true,
        audio: true,
        video_base: 0x5A3C_91E7,
        audio_base: 0x0B71_4C2D,
        ntp_base: 0xE9C1_2F80_4000_0000,
        video_delay: 40 * MS,
        audio_delay: 40 * MS,
        jitter: 0,
        first_report: None,
        video_report_every: SECOND,
        audio_report_every: 5 * SECOND,
        report_head_start: 0,
        audio_restart: None,
        video_ntp_step: None,
        audio_ntp_step: None,
        duration: 15 * SECOND,
    }
}

impl Publisher {
    fn rtp(&self, track: TrackId, capture: i64) -> u32 {
        match track {
            TrackId::Video => self.video_base.wrapping_add(capture as u32),
            TrackId::Audio => match self.audio_restart {
                Some((at, base)) if capture >= at => {
                    base.wrapping_add(((capture - at) * 8 / 15) as u32)
                }
                _ => self.audio_base.wrapping_add((capture * 8 / 15) as u32),
            },
        }
    }

    fn ntp(&self, track: TrackId, capture: i64) -> u64 {
        let step = match track {
            TrackId::Video => self.video_ntp_step,
            TrackId::Audio => self.audio_ntp_step,
        };
        let capture = match step {
            Some((from, by)) if capture >= from => capture + by,
            _ => capture,
        };
        self.ntp_base
            .wrapping_add(((capture as i128) << 32).div_euclid(SECOND as i128) as u64)
    }

    fn delay(&self, track: TrackId) -> i64 {
        match track {
            TrackId::Video => self.video_delay,
            TrackId::Audio => self.audio_delay,
        }
    }

    fn events(&self) -> Vec<Event> {
        let mut events = Vec::new();
        for (track, on, frame, every) in [
            (
                TrackId::Video,
                self.video,
                VIDEO_FRAME,
                self.video_report_every,
            ),
            (
                TrackId::Audio,
                self.audio,
                AUDIO_FRAME,
                self.audio_report_every,
            ),
        ] {
            if !on {
                continue;
            }
            let mut last_arrival = 0;
            for k in 0..self.duration / frame {
                let capture = k * frame;
                // Deterministic jitter, none on the first frame; the depacketizer releases
                // frames in order, so arrivals never go backwards within a track.
                let jitter = (k * 37 % 11) * self.jitter / 10;
                let arrival = (capture + self.delay(track) + jitter).max(last_arrival);
                last_arrival = arrival;
                events.push(Event {
                    arrival,
                    kind: Kind::Frame {
                        track,
                        capture,
                        rtp: self.rtp(track, capture),
                    },
                });
            }
            let mut sent = self.first_report.unwrap_or(i64::MAX);
            while sent < self.duration {
                events.push(Event {
                    arrival: sent + self.delay(track) - self.report_head_start,
                    kind: Kind::Report {
                        track,
                        ntp: self.ntp(track, sent),
                        rtp: self.rtp(track, sent),
                    },
                });
                sent += every;
            }
        }
        // Stable: at equal arrival, video before audio, frames before reports of a track.
        events.sort_by_key(|e| e.arrival);
        events
    }

    fn run(&self) -> Run {
        let t0 = Instant::now();
        let mut clock = MediaClock::new();
        clock.register_track(TrackId::Video, 90_000);
        clock.register_track(TrackId::Audio, 48_000);
        let mut video_ts = TimestampUnwrapper::new();
        let mut audio_ts = TimestampUnwrapper::new();
        let mut run = Run::default();
        for event in self.events() {
            let arrival = instant(t0, event.arrival);
            match event.kind {
                Kind::Frame {
                    track,
                    capture,
                    rtp,
                } => {
                    // What the depacketizers put in `Frame::pts`.
                    let pts = match track {
                        TrackId::Video => video_ts.unwrap(rtp),
                        TrackId::Audio => opus_ticks_to_media(audio_ts.unwrap(rtp)),
                    };
                    let out = clock.map(track, pts, arrival);
                    run.outputs.push(Output {
                        track,
                        capture,
                        pts,
                        out,
                        arrival: event.arrival,
                        state: clock.sync_state(),
                    });
                }
                Kind::Report { track, ntp, rtp } => {
                    clock.on_sender_report(track, ntp, rtp, arrival)
                }
            }
        }
        run
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Frame {
        track: TrackId,
        capture: i64,
        rtp: u32,
    },
    Report {
        track: TrackId,
        ntp: u64,
        rtp: u32,
    },
}

#[derive(Clone, Copy, Debug)]
struct Event {
    arrival: i64,
    kind: Kind,
}

fn instant(t0: Instant, ticks: i64) -> Instant {
    t0 + Duration::from_nanos(ticks as u64 * 100_000 / 9)
}

#[derive(Clone, Copy, Debug)]
struct Output {
    track: TrackId,
    capture: i64,
    pts: i64,
    out: i64,
    arrival: i64,
    state: SyncState,
}

#[derive(Debug, Default)]
struct Run {
    outputs: Vec<Output>,
}

impl Run {
    fn track(&self, track: TrackId) -> Vec<Output> {
        self.outputs
            .iter()
            .filter(|o| o.track == track)
            .copied()
            .collect()
    }

    /// Video is never moved: every video output is its RTP time plus one constant, which is
    /// returned (stream time minus capture time).
    fn video_offset(&self) -> i64 {
        let video = self.track(TrackId::Video);
        let first = video[0];
        for o in &video {
            assert_eq!(o.out - first.out, o.pts - first.pts, "video moved at {o:?}");
        }
        first.out - first.capture
    }

    /// For each audio frame: (capture time, how far it sits from the video frame captured at
    /// the same instant, in ticks; positive = audio late).
    fn audio_errors(&self) -> Vec<(i64, i64)> {
        let video = self.video_offset();
        self.track(TrackId::Audio)
            .iter()
            .map(|o| (o.capture, o.out - o.capture - video))
            .collect()
    }
}

/// Every output of the track is later than the one before, and moves by its RTP step give or
/// take 10 % of it (the most the clock may slew).
fn assert_monotonic_and_bounded_slew(outputs: &[Output]) {
    for pair in outputs.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let step = b.pts - a.pts;
        let moved = b.out - a.out;
        assert!(
            moved > 0,
            "output went backwards or stood still: {a:?} -> {b:?}"
        );
        assert!(
            (moved - step).abs() * 10 <= step,
            "slewed too fast: media step {step}, output step {moved} at {b:?}"
        );
    }
}

/// Outputs follow the RTP times exactly, from the first one.
fn assert_follows_rtp(outputs: &[Output]) {
    let first = outputs[0];
    for o in outputs {
        assert_eq!(
            o.out - first.out,
            o.pts - first.pts,
            "left the RTP timeline at {o:?}"
        );
    }
}

/// The audio that arrived by `report_arrival` is still at its arrival-based place; audio
/// captured from `until` on is on the sender-report alignment, and the run ends locked.
/// Returns the arrival-based error.
fn assert_converges(run: &Run, report_arrival: i64, until: i64) -> i64 {
    let audio = run.track(TrackId::Audio);
    let errors = run.audio_errors();
    let initial = errors[0].1;
    for (o, (_, error)) in audio.iter().zip(&errors) {
        if o.arrival <= report_arrival {
            assert_eq!(*error, initial, "audio moved before any report: {o:?}");
            assert_eq!(o.state, SyncState::ByArrival);
        }
        if o.capture >= until {
            assert!(
                error.abs() <= ROUNDING,
                "not aligned by {until}: {error} at {o:?}"
            );
        }
    }
    assert_eq!(audio.last().map(|o| o.state), Some(SyncState::Locked));
    initial
}
