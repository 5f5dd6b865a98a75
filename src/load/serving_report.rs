//! What the serving side did during the steady window, besides the gateway's CPU and RSS:
//! the HLS requests the gateway answered ([`HlsRequests`], from `/api/streams`; behind a
//! cache, what reached the origin) and the cost of other processes asked about
//! ([`ProcessCost`], e.g. nginx workers in front of the gateway). Pure data.

use serde::Serialize;

/// `hls_requests` of `/api/streams` (the gateway's own snapshot type), summed over the run's
/// streams.
pub type HlsRequests = crate::hub::HlsRequestInfo;

impl HlsRequests {
    pub fn plus(&self, o: &HlsRequests) -> HlsRequests {
        self.zip(o, u64::saturating_add)
    }
    pub fn minus(&self, o: &HlsRequests) -> HlsRequests {
        self.zip(o, u64::saturating_sub)
    }
    pub fn total(&self) -> u64 {
        self.playlists
            + self.blocking_playlists
            + self.multivariant
            + self.parts
            + self.segments
            + self.inits
    }
    fn zip(&self, o: &HlsRequests, f: fn(u64, u64) -> u64) -> HlsRequests {
        HlsRequests {
            playlists: f(self.playlists, o.playlists),
            blocking_playlists: f(self.blocking_playlists, o.blocking_playlists),
            multivariant: f(self.multivariant, o.multivariant),
            parts: f(self.parts, o.parts),
            segments: f(self.segments, o.segments),
            inits: f(self.inits, o.inits),
        }
    }

    /// One summary line: the counts over `secs` and the rates.
    pub fn line(&self, secs: f64) -> String {
        let rate = |n: u64| n as f64 / secs.max(0.001);
        format!(
            "gateway answered over {secs:.1} s: {} blocking playlists ({:.0}/s), {} parts ({:.0}/s), \
             {} playlists, {} segments, {} inits, {} multivariant; {:.0} HLS requests/s\n",
            self.blocking_playlists,
            rate(self.blocking_playlists),
            self.parts,
            rate(self.parts),
            self.playlists,
            self.segments,
            self.inits,
            self.multivariant,
            rate(self.total())
        )
    }
}

/// CPU and memory of another process over the steady window.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct ProcessCost {
    pub pid: u32,
    /// CPU ms per wall second (1000 = one core).
    pub cpu_ms_per_s: f64,
    pub rss_end_kib: u64,
}

impl ProcessCost {
    /// One summary line, naming the process `what`.
    pub fn line(&self, what: &str) -> String {
        format!(
            "{what} (pid {}): {:.1} CPU-ms/s over the steady window, RSS {:.1} MiB at its end\n",
            self.pid,
            self.cpu_ms_per_s,
            self.rss_end_kib as f64 / 1024.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_subtract_and_show_their_rates() {
        let end = HlsRequests {
            blocking_playlists: 3000,
            parts: 2900,
            inits: 10,
            ..HlsRequests::default()
        };
        let start = HlsRequests {
            blocking_playlists: 1000,
            parts: 900,
            inits: 10,
            ..HlsRequests::default()
        };
        let d = end.minus(&start);
        assert_eq!(
            (d.blocking_playlists, d.parts, d.inits, d.total()),
            (2000, 2000, 0, 4000)
        );
        let line = d.line(10.0);
        assert!(
            line.contains("2000 blocking playlists (200/s), 2000 parts (200/s)"),
            "{line}"
        );
        assert!(line.contains("400 HLS requests/s"), "{line}");
    }
}
