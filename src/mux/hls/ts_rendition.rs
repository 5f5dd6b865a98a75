//! The MPEG-TS rendition of an HLS stream (`ts.m3u8`), for players that know neither fMP4 nor
//! LL-HLS (set-top boxes, old smart TVs, some ffplay builds). It takes the fMP4 rendition's
//! cuts: the same frames, segment for segment, under the same sequence numbers, durations,
//! wall-clock times and discontinuities, so a viewer can switch between the two.
//!
//! Timestamps are the fMP4 timeline's (90 kHz from the stream's origin) plus [`TS_OFFSET`], so
//! PTS and PCR start a second in rather than wrapping below zero.

use bytes::Bytes;

use super::window::{NewSegment, SegmentWindow};
use crate::media::h264::ParameterSets;
use crate::mux::fmp4::TrackCodec;
use crate::mux::ts::{TsAudio, TsMuxer, TsSample, TsTracks};

/// Added to every timestamp: one second, more than the PCR's lead on the DTS.
pub(super) const TS_OFFSET: i64 = 90_000;

/// Version 3: decimal EXTINF and nothing newer, for the oldest players.
const TS_PLAYLIST_VERSION: u8 = 3;

pub(super) struct TsRendition {
    muxer: TsMuxer,
    files: SegmentWindow,
}

impl TsRendition {
    pub fn new(window: usize, target_duration: u32) -> Self {
        let mut files = SegmentWindow::new(window, target_duration, None);
        files.set_version(TS_PLAYLIST_VERSION);
        Self {
            muxer: TsMuxer::new(TsTracks::default()),
            files,
        }
    }

    /// The tracks of the segments from the next one on. Audio other than AAC (Opus passed
    /// through) has no place in MPEG-TS for HLS: the rendition is then video only.
    pub fn set_tracks(&mut self, video: Option<&ParameterSets>, audio: Option<&TrackCodec>) {
        let tracks = TsTracks {
            video: video.cloned(),
            audio: audio.and_then(|a| TsAudio::try_from(a).ok()),
        };
        if *self.muxer.tracks() != tracks {
            self.muxer.set_tracks(tracks);
        }
    }

    /// Writes a segment's samples, timed on the fMP4 timeline (90 kHz from the origin), as
    /// segment `like.msn` and lists it as the fMP4 segment `like` is listed (its name with
    /// `.ts`).
    pub fn publish(
        &mut self,
        like: &NewSegment,
        prefix: &str,
        mut video: Vec<TsSample>,
        mut audio: Vec<TsSample>,
    ) {
        for s in video.iter_mut().chain(audio.iter_mut()) {
            s.pts = s.pts.saturating_add(TS_OFFSET);
            s.dts = s.dts.saturating_add(TS_OFFSET);
        }
        let data = self.muxer.segment(&video, &audio);
        self.files.publish(NewSegment {
            msn: like.msn,
            name: format!("{prefix}-{}.ts", like.msn),
            data,
            duration: like.duration,
            wallclock_ms: like.wallclock_ms,
            discontinuity: like.discontinuity,
            init_seq: u32::MAX,
        });
    }

    pub fn end(&mut self) {
        self.files.end();
    }

    pub fn playlist(&self) -> Option<Bytes> {
        self.files.playlist(false)
    }

    pub fn get(&self, name: &str) -> Option<Bytes> {
        self.files.get(name)
    }
}
