//! Per-track sample assembly for the HLS stream: holds the last frame until its successor gives
//! it a duration, converts the 90 kHz media clock to the track's timescale, puts the in-band
//! parameter sets in front of video keyframes, and collects the open segment's samples (their
//! buffer is reused from segment to segment). With an MPEG-TS rendition it also collects each
//! sample for it, timed exactly where the fMP4 timeline puts it.

use bytes::Bytes;

use crate::media::{Frame, CLOCK_RATE};
use crate::mux::fmp4::{InBandParameterSets, Sample, TrackFragment};
use crate::mux::ts::TsSample;

/// Largest believable gap between two consecutive samples of one track (10 s, in seconds).
/// Screen-share video may idle for seconds; anything longer is a clock jump.
const MAX_SAMPLE_GAP_SECONDS: i64 = 10;

/// How a new frame's decode time relates to its predecessor's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TimelineBreak {
    None,
    /// Decode time went backwards (sender restarted its clock).
    Backward,
    /// Decode time jumped forward by more than [`MAX_SAMPLE_GAP_SECONDS`].
    Gap,
}

pub(super) struct TrackState {
    pub id: u32,
    pub timescale: u32,
    /// Duration used when a frame's own cannot be known (last frame of a stream, clock jumps).
    default_duration: u32,
    pending: Option<Frame>,
    samples: Vec<Sample>,
    /// 90 kHz decode time of the first sample in the open segment.
    base: Option<i64>,
    /// Sum of the open segment's sample durations (track timescale).
    duration_sum: u64,
    last_duration: Option<u32>,
    /// Where the previous segment's samples ended on the fMP4 timeline (track timescale).
    last_end: u64,
    /// Parameter sets written in front of each keyframe (H.264 only): those of the init
    /// segment the next samples belong to.
    in_band: Option<InBandParameterSets>,
    /// The open segment's samples for the MPEG-TS rendition (None: there is none), 90 kHz on
    /// the fMP4 timeline.
    ts: Option<Vec<TsSample>>,
}

impl TrackState {
    pub fn new(id: u32, timescale: u32, default_duration: u32) -> Self {
        Self {
            id,
            timescale: timescale.max(1),
            default_duration: default_duration.max(1),
            pending: None,
            samples: Vec::new(),
            base: None,
            duration_sum: 0,
            last_duration: None,
            last_end: 0,
            in_band: None,
            ts: None,
        }
    }

    /// Collect every sample for an MPEG-TS rendition too ([`TrackState::take_ts`]).
    pub fn collect_ts(&mut self) {
        self.ts.get_or_insert_with(Vec::new);
    }

    /// The samples collected for the MPEG-TS rendition since the last call.
    pub fn take_ts(&mut self) -> Vec<TsSample> {
        self.ts.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Track timescale ticks to 90 kHz.
    fn to_clock(&self, ticks: i64) -> i64 {
        let scaled =
            (i128::from(ticks) * i128::from(CLOCK_RATE)).div_euclid(i128::from(self.timescale));
        i64::try_from(scaled).unwrap_or(if scaled < 0 { i64::MIN } else { i64::MAX })
    }

    /// Sets the parameter sets for the keyframes appended from now on (`None`: keyframes go in
    /// as they are). Keyframes already appended keep theirs.
    pub fn set_in_band(&mut self, in_band: Option<InBandParameterSets>) {
        self.in_band = in_band;
    }

    /// Switches to a new codec's timescale; only between segments. A frame still held belongs
    /// to the old codec and is dropped.
    pub fn reconfigure(&mut self, timescale: u32, default_duration: u32) {
        self.timescale = timescale.max(1);
        self.default_duration = default_duration.max(1);
        self.last_duration = None;
        self.pending = None;
    }

    /// 90 kHz ticks to the track timescale, rounding toward minus infinity so the conversion
    /// is monotonic across zero.
    fn to_track(&self, ticks: i64) -> i64 {
        let scaled =
            (i128::from(ticks) * i128::from(self.timescale)).div_euclid(i128::from(CLOCK_RATE));
        i64::try_from(scaled).unwrap_or(if scaled < 0 { i64::MIN } else { i64::MAX })
    }

    fn fallback_duration(&self) -> u32 {
        self.last_duration.unwrap_or(self.default_duration)
    }

    /// Adds a frame: the previous one becomes a sample with the gap between them as its
    /// duration. `origin` is the 90 kHz time of the fMP4 timeline's zero.
    pub fn push(&mut self, frame: Frame, origin: i64) -> TimelineBreak {
        let mut brk = TimelineBreak::None;
        if let Some(prev) = self.pending.take() {
            let delta = self
                .to_track(frame.dts.saturating_sub(origin))
                .saturating_sub(self.to_track(prev.dts.saturating_sub(origin)));
            let max_gap = i64::from(self.timescale) * MAX_SAMPLE_GAP_SECONDS;
            let duration = if delta < 0 {
                brk = TimelineBreak::Backward;
                self.fallback_duration()
            } else if delta > max_gap {
                brk = TimelineBreak::Gap;
                self.fallback_duration()
            } else if delta == 0 {
                // Two frames at one decode time: keep them apart by the usual step.
                self.fallback_duration()
            } else {
                u32::try_from(delta).unwrap_or_else(|_| self.fallback_duration())
            };
            self.append(prev, duration, origin);
        }
        self.pending = Some(frame);
        brk
    }

    /// Decode time of the frame held for its successor (the track's newest), if any.
    pub fn pending_dts(&self) -> Option<i64> {
        self.pending.as_ref().map(|f| f.dts)
    }

    /// Writes the held frame with the last known duration (end of stream).
    pub fn flush_pending(&mut self, origin: i64) {
        if let Some(prev) = self.pending.take() {
            let duration = self.fallback_duration();
            self.append(prev, duration, origin);
        }
    }

    fn append(&mut self, frame: Frame, duration: u32, origin: i64) {
        if self.samples.is_empty() {
            self.base = Some(frame.dts);
        }
        let cts = self
            .to_track(frame.pts.saturating_sub(origin))
            .saturating_sub(self.to_track(frame.dts.saturating_sub(origin)));
        if self.ts.is_some() {
            // Where fMP4 puts this sample: its part's tfdt plus the durations before it.
            let base = self.base.unwrap_or(frame.dts);
            let decode = i64::try_from(self.base_decode_time(base, origin))
                .unwrap_or(i64::MAX)
                .saturating_add(i64::try_from(self.duration_sum).unwrap_or(i64::MAX));
            let dts = self.to_clock(decode);
            let pts = self.to_clock(decode.saturating_add(cts));
            let sample = TsSample {
                pts,
                dts,
                keyframe: frame.keyframe,
                data: frame.data.clone(),
            };
            if let Some(ts) = self.ts.as_mut() {
                ts.push(sample);
            }
        }
        let (prefix, data) = match &self.in_band {
            Some(in_band) if frame.keyframe => in_band.keyframe_sample(&frame.data),
            _ => (Bytes::new(), frame.data),
        };
        self.samples.push(Sample {
            duration,
            cts_offset: cts.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            keyframe: frame.keyframe,
            prefix,
            data,
        });
        self.duration_sum = self.duration_sum.saturating_add(u64::from(duration));
        self.last_duration = Some(duration);
    }

    /// The open segment's samples as a fragment, or None if it has none.
    pub fn fragment(&self, origin: i64) -> Option<TrackFragment<'_>> {
        let base = self.base?;
        if self.samples.is_empty() {
            return None;
        }
        Some(TrackFragment {
            track_id: self.id,
            base_media_decode_time: self.base_decode_time(base, origin),
            samples: &self.samples,
        })
    }

    fn base_decode_time(&self, base: i64, origin: i64) -> u64 {
        u64::try_from(self.to_track(base.saturating_sub(origin))).unwrap_or(0)
    }

    /// Seconds of content in the open segment.
    pub fn segment_seconds(&self) -> f64 {
        self.duration_sum as f64 / f64::from(self.timescale)
    }

    /// Forgets the written segment's samples (keeping the buffer) and records where it ended.
    pub fn clear_segment(&mut self, origin: i64) {
        if let Some(base) = self.base.take() {
            self.last_end = self
                .base_decode_time(base, origin)
                .saturating_add(self.duration_sum);
        }
        self.samples.clear();
        self.duration_sum = 0;
    }

    /// End of the last written segment on the fMP4 timeline, in 90 kHz ticks.
    pub fn last_end_ticks(&self) -> i64 {
        let ticks = u128::from(self.last_end) * u128::from(CLOCK_RATE) / u128::from(self.timescale);
        i64::try_from(ticks).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Codec;
    use bytes::Bytes;

    fn frame(dts: i64, keyframe: bool) -> Frame {
        Frame {
            codec: Codec::H264,
            pts: dts,
            dts,
            keyframe,
            data: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn sample_duration_is_the_gap_to_the_next_frame() {
        let mut t = TrackState::new(1, 90_000, 3000);
        assert_eq!(t.push(frame(1000, true), 1000), TimelineBreak::None);
        t.push(frame(4600, false), 1000);
        t.push(frame(7000, false), 1000);
        let f = t.fragment(1000).unwrap();
        assert_eq!(f.base_media_decode_time, 0);
        let durations: Vec<u32> = f.samples.iter().map(|s| s.duration).collect();
        assert_eq!(durations, [3600, 2400]);
        assert!(f.samples[0].keyframe && !f.samples[1].keyframe);
    }

    #[test]
    fn opus_frames_convert_exactly_to_48_khz() {
        let mut t = TrackState::new(2, 48_000, 960);
        for i in 0..4 {
            t.push(frame(90_000 + i * 1800, true), 0);
        }
        let f = t.fragment(0).unwrap();
        assert_eq!(f.base_media_decode_time, 48_000);
        assert!(f.samples.iter().all(|s| s.duration == 960));
    }

    #[test]
    fn backward_and_huge_jumps_are_reported_and_get_the_previous_duration() {
        let mut t = TrackState::new(1, 90_000, 3000);
        t.push(frame(0, true), 0);
        t.push(frame(3600, false), 0);
        assert_eq!(t.push(frame(100, false), 0), TimelineBreak::Backward);
        assert_eq!(
            t.push(frame(100 + 11 * 90_000, false), 0),
            TimelineBreak::Gap
        );
        let f = t.fragment(0).unwrap();
        let durations: Vec<u32> = f.samples.iter().map(|s| s.duration).collect();
        assert_eq!(durations, [3600, 3600, 3600]);
    }

    #[test]
    fn flush_uses_the_last_duration_and_clear_records_the_end() {
        let mut t = TrackState::new(1, 90_000, 3000);
        t.push(frame(900, true), 900);
        t.push(frame(4500, false), 900);
        t.flush_pending(900);
        assert_eq!(t.segment_seconds(), 0.08);
        t.clear_segment(900);
        assert!(t.fragment(900).is_none());
        assert_eq!(t.last_end_ticks(), 7200);
    }

    #[test]
    fn composition_offset_follows_pts_minus_dts() {
        let mut t = TrackState::new(1, 90_000, 3000);
        let mut f = frame(0, true);
        f.pts = 6000;
        t.push(f, 0);
        t.flush_pending(0);
        assert_eq!(t.fragment(0).unwrap().samples[0].cts_offset, 6000);
    }
}
