//! Small measurements for `/api/streams`: bitrate and frame rate over a sliding window of media
//! time, and an estimate of how many HLS clients are watching.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::media::CLOCK_RATE;

/// Bitrate and frame rate of one track over the last `window` of media time.
#[derive(Debug)]
pub struct RateMeter {
    window: i64,
    samples: VecDeque<(i64, usize)>,
    bytes_in_window: usize,
}

impl RateMeter {
    pub fn new(window: Duration) -> RateMeter {
        RateMeter {
            window: (window.as_millis() as i64) * i64::from(CLOCK_RATE) / 1000,
            samples: VecDeque::new(),
            bytes_in_window: 0,
        }
    }

    /// Records a frame of `bytes` at media time `pts` (90 kHz).
    pub fn record(&mut self, pts: i64, bytes: usize) {
        self.samples.push_back((pts, bytes));
        self.bytes_in_window += bytes;
        while let Some(&(first, b)) = self.samples.front() {
            if pts - first > self.window {
                self.samples.pop_front();
                self.bytes_in_window -= b;
            } else {
                break;
            }
        }
    }

    fn span_secs(&self) -> Option<f64> {
        let first = self.samples.front()?.0;
        let last = self.samples.back()?.0;
        let span = last - first;
        (span > 0).then(|| span as f64 / f64::from(CLOCK_RATE))
    }

    /// Frames per second, from the frames' own timestamps.
    pub fn frame_rate(&self) -> Option<f64> {
        let span = self.span_secs()?;
        Some((self.samples.len() - 1) as f64 / span)
    }

    /// Bits per second.
    pub fn bitrate(&self) -> Option<f64> {
        let span = self.span_secs()?;
        // The last frame's bytes belong to the interval after it: leave them out.
        let last = self.samples.back()?.1;
        Some((self.bytes_in_window - last) as f64 * 8.0 / span)
    }
}

/// Counts HLS clients: a client is a key (address + user agent) that fetched the playlist
/// within the last `active_for`.
#[derive(Debug)]
pub struct ClientTracker {
    active_for: Duration,
    last_seen: HashMap<u64, Instant>,
}

impl ClientTracker {
    pub fn new(active_for: Duration) -> ClientTracker {
        ClientTracker {
            active_for,
            last_seen: HashMap::new(),
        }
    }

    pub fn seen(&mut self, key: u64, now: Instant) {
        self.last_seen.insert(key, now);
        if self.last_seen.len() > 64 {
            self.prune(now);
        }
    }

    pub fn count(&mut self, now: Instant) -> usize {
        self.prune(now);
        self.last_seen.len()
    }

    fn prune(&mut self, now: Instant) {
        let active_for = self.active_for;
        self.last_seen
            .retain(|_, seen| now.saturating_duration_since(*seen) < active_for);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_fps_at_one_megabit() {
        let mut m = RateMeter::new(Duration::from_secs(2));
        // 30 fps, 4166 bytes a frame = 1 Mb/s; five seconds of it.
        for i in 0..150 {
            m.record(i * 3000, 4166);
        }
        let fps = m.frame_rate().unwrap();
        assert!((fps - 30.0).abs() < 0.01, "{fps}");
        let bps = m.bitrate().unwrap();
        assert!((bps - 999_840.0).abs() < 1.0, "{bps}");
    }

    #[test]
    fn one_frame_gives_no_rate() {
        let mut m = RateMeter::new(Duration::from_secs(2));
        m.record(0, 100);
        assert_eq!(m.frame_rate(), None);
        assert_eq!(m.bitrate(), None);
    }

    #[test]
    fn clients_expire() {
        let mut t = ClientTracker::new(Duration::from_secs(6));
        let t0 = Instant::now();
        t.seen(1, t0);
        t.seen(2, t0 + Duration::from_secs(5));
        t.seen(1, t0 + Duration::from_secs(5));
        assert_eq!(t.count(t0 + Duration::from_secs(5)), 2);
        assert_eq!(t.count(t0 + Duration::from_secs(12)), 0);
    }
}
