//! Latency the gateway itself adds, always on and cheap enough for every frame: from the
//! arrival of the RTP packet that completed a frame to the moment its output is ready (its FLV
//! tag queued for viewers, or the HLS segment it closed published). A fixed set of log-spaced
//! microsecond buckets of atomic counters, so recording takes no lock and the memory is fixed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Values below this many µs get a bucket each (exact).
const LINEAR: u64 = 16;
/// Each power of two from [`LINEAR`] up is split into this many buckets (log2 of it: 3), so a
/// bucket is at most 1/8 of its lower edge wide: percentiles are within 12.5 % above the truth.
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// Octaves kept above [`LINEAR`]: up to 2^30 µs (about 18 minutes); larger values share the
/// last bucket (the exact maximum is kept apart).
const OCTAVES: u64 = 26;
const BUCKETS: usize = (LINEAR + OCTAVES * SUB) as usize;

/// A histogram of microsecond values, recorded concurrently.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
    max_us: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            max_us: AtomicU64::new(0),
        }
    }
}

/// What `/api/streams` shows of one histogram. Percentiles are nearest-rank, reported as the
/// upper edge of the bucket they fall in (never below the true value, at most 12.5 % above
/// it; exact below 16 µs) and never above the maximum, which is exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl LatencyHistogram {
    pub fn record(&self, elapsed: Duration) {
        self.record_us(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn record_us(&self, us: u64) {
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Count, p50, p99 and maximum of everything recorded so far. Taken while others record,
    /// it may miss values being added; it is consistent with itself (count = sum of buckets).
    pub fn summary(&self) -> LatencySummary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        let max_us = self.max_us.load(Ordering::Relaxed);
        let percentile = |per_mille: u64| {
            let rank = (count * per_mille).div_ceil(1000).max(1);
            let mut seen = 0u64;
            for (i, &c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return upper_edge(i).min(max_us);
                }
            }
            max_us
        };
        if count == 0 {
            return LatencySummary::default();
        }
        LatencySummary {
            count,
            p50_us: percentile(500),
            p99_us: percentile(990),
            max_us,
        }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let octave = u64::from(63 - us.leading_zeros()); // floor(log2 us), >= 4
    let first = u64::from(LINEAR.trailing_zeros());
    if octave >= first + OCTAVES {
        return BUCKETS - 1;
    }
    let sub = (us >> (octave - u64::from(SUB_BITS))) & (SUB - 1);
    (LINEAR + (octave - first) * SUB + sub) as usize
}

/// The largest value that lands in bucket `i`.
fn upper_edge(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    if i as usize == BUCKETS - 1 {
        return u64::MAX;
    }
    let octave = (i - LINEAR) / SUB + u64::from(LINEAR.trailing_zeros());
    let sub = (i - LINEAR) % SUB;
    let width = 1u64 << (octave - u64::from(SUB_BITS));
    ((SUB + sub) << (octave - u64::from(SUB_BITS))) + width - 1
}

/// The latencies one stream measures (see the module comment for where each starts and ends).
#[derive(Debug, Default)]
pub struct StreamLatency {
    /// Video access unit: its last RTP packet in -> its FLV tag in the shared FLV queue.
    pub video_flv: LatencyHistogram,
    /// Video frame that completed an HLS segment or (low latency) part: its last RTP packet in ->
    /// that segment or part published.
    pub video_hls: LatencyHistogram,
    /// Opus packet in -> the AAC frames it completed in the FLV queue (transcode included, and
    /// the wait for the video frame they are sent with; the codecs' own frame delay is not,
    /// it is in the timestamps).
    pub audio_flv: LatencyHistogram,
}

/// [`StreamLatency`] as `/api/streams` shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatencyInfo {
    pub video_flv: LatencySummary,
    pub video_hls: LatencySummary,
    pub audio_flv: LatencySummary,
}

impl StreamLatency {
    pub fn info(&self) -> LatencyInfo {
        LatencyInfo {
            video_flv: self.video_flv.summary(),
            video_hls: self.video_hls.summary(),
            audio_flv: self.audio_flv.summary(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Hub, StreamSettings};
    use crate::media::{Codec, Frame};
    use bytes::Bytes;
    use std::time::Instant;

    #[test]
    fn buckets_are_exact_below_16_then_eight_per_octave() {
        assert_eq!((bucket_of(0), bucket_of(15)), (0, 15));
        // 16..=17 is the first two-wide bucket; 32..=35 the first four-wide one.
        assert_eq!((bucket_of(16), bucket_of(17), bucket_of(18)), (16, 16, 17));
        assert_eq!((upper_edge(16), upper_edge(17)), (17, 19));
        assert_eq!((bucket_of(31), bucket_of(32), bucket_of(35)), (23, 24, 24));
        assert_eq!(upper_edge(24), 35);
        assert_eq!(bucket_of(1000), bucket_of(1023));
        assert_eq!(upper_edge(bucket_of(1000)), 1023);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        // The last bucket holds the top eighth of the last octave and everything above it.
        assert_eq!(bucket_of(1 << 30), BUCKETS - 1);
        assert_eq!(bucket_of(15 << 26), BUCKETS - 1);
        assert_eq!(upper_edge(BUCKETS - 2), (15 << 26) - 1);
    }

    #[test]
    fn every_value_lies_in_its_bucket_and_edges_follow_each_other() {
        for i in 1..BUCKETS - 1 {
            assert_eq!(bucket_of(upper_edge(i - 1) + 1), i, "first value of {i}");
            assert_eq!(bucket_of(upper_edge(i)), i, "last value of {i}");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank_bucket_upper_edges() {
        let h = LatencyHistogram::default();
        // 1..=100 µs: p50 is the 50th value (50, in bucket 48..=51), p99 the 99th (99, in
        // 96..=103, capped by the maximum 100).
        for us in 1..=100 {
            h.record_us(us);
        }
        assert_eq!(
            h.summary(),
            LatencySummary {
                count: 100,
                p50_us: 51,
                p99_us: 100,
                max_us: 100
            }
        );
    }

    #[test]
    fn one_slow_frame_in_a_hundred_shows_in_p99_only_past_its_rank() {
        let h = LatencyHistogram::default();
        for _ in 0..99 {
            h.record(Duration::from_micros(7));
        }
        h.record(Duration::from_millis(40));
        let s = h.summary();
        assert_eq!((s.count, s.p50_us, s.p99_us, s.max_us), (100, 7, 7, 40_000));
        h.record(Duration::from_micros(7));
        // 101 values: the rank of p99 is ceil(99.99) = 100, the last 7.
        assert_eq!(h.summary().p99_us, 7);
        h.record(Duration::from_millis(40));
        // 102 values: rank ceil(100.98) = 101 is the first 40 ms one. 40000 lies in the
        // bucket 36864..=40959, whose edge is capped by the exact maximum.
        assert_eq!(h.summary().p99_us, 40_000);
    }

    #[test]
    fn empty_histogram_reports_zeros_and_huge_values_are_kept_as_the_max() {
        let h = LatencyHistogram::default();
        assert_eq!(h.summary(), LatencySummary::default());
        h.record(Duration::from_secs(86_400));
        let s = h.summary();
        assert_eq!(
            (s.count, s.p50_us, s.max_us),
            (1, 86_400_000_000, 86_400_000_000)
        );
    }

    #[test]
    fn a_stream_times_every_video_frame_for_flv_and_segment_closing_keyframes_for_hls() {
        let hub = Hub::new(StreamSettings {
            segment_target: Duration::from_secs(1),
            hls_part_target: None,
            ..StreamSettings::default()
        });
        let stream = crate::hub::test_video_stream(&hub);
        // Plain HLS, 3 s of 30 fps, a keyframe every second: the keyframes at 1, 2 and 3 s close a
        // segment each; the one at 0 s only opens the first.
        for i in 0..=90i64 {
            let arrival = Instant::now() - Duration::from_millis(3);
            let pushed = stream.push_video(crate::hub::test_video_frame(i, i % 30 == 0));
            stream.note_video_latency(arrival, pushed);
        }
        let latency = stream.info().latency;
        assert_eq!(latency.video_flv.count, 91);
        assert_eq!(latency.video_hls.count, 3);
        assert_eq!(latency.audio_flv.count, 0);
        assert!(latency.video_flv.p50_us >= 3000, "{latency:?}");
        assert!(latency.video_hls.max_us >= 3000, "{latency:?}");
        let json = serde_json::to_value(stream.info()).unwrap();
        assert_eq!(json["latency"]["video_hls"]["count"], 3);
    }

    #[test]
    fn audio_held_for_the_next_video_frame_is_timed_when_it_goes_out() {
        let hub = Hub::new(StreamSettings::default());
        let stream = crate::hub::test_video_stream(&hub);
        stream.set_aac_config(Bytes::from_static(&[0x11, 0x90]), 48_000, 2);
        let video = |i: i64, keyframe: bool| Frame {
            codec: Codec::H264,
            pts: i * 3000,
            dts: i * 3000,
            keyframe,
            data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
        };
        stream.push_video(video(0, true));
        let arrival = Instant::now() - Duration::from_millis(2);
        stream.push_aac(Frame {
            codec: Codec::Aac,
            pts: 0,
            dts: 0,
            keyframe: true,
            data: Bytes::from_static(&[0x21, 0x00]),
        });
        stream.note_audio_latency(arrival);
        assert_eq!(
            stream.info().latency.audio_flv.count,
            0,
            "held with the next video frame"
        );
        stream.push_video(video(1, false));
        let audio = stream.info().latency.audio_flv;
        assert_eq!(audio.count, 1);
        assert!(audio.max_us >= 2000, "{audio:?}");
    }
}
