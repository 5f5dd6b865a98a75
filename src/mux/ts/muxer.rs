//! [`TsMuxer`]: the state that outlives a segment (tracks, PMT version, continuity counters)
//! and the writing of one segment: PAT, PMT, then the PES packets in decode order with the
//! PCR paced on its PID.

use bytes::{Bytes, BytesMut};

use super::interleave::{AudioGroups, Interleave, Pes, AUDIO_PES_SPAN};
use super::packet::{packets_for, write_pcr_only, Continuity, StartFlags, PACKET_LEN};
use super::pes::{audio_pes_len, video_pes_len, write_audio_pes, write_video_pes};
use super::psi::{write_pat, write_pmt, StreamSet, AUDIO_PID};
use super::{TsSample, TsTracks};

/// How far the PCR runs behind the decode time of the PES it starts: the decoder has the
/// access unit this long before it is due (90 kHz ticks, 100 ms).
pub const PCR_LEAD: i64 = 9000;
/// The longest gap between two PCRs on the PCR PID: 40 ms (ISO/IEC 13818-1 allows 100 ms).
pub const PCR_INTERVAL: i64 = 3600;
/// A gap in the media longer than this (10 s) within a segment is not filled with PCR-only
/// packets: the clock restarts at the next PES, as it does at the start of every segment.
const MAX_PCR_FILL: i64 = 900_000;

/// Where the PCRs go around one PES packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PcrPlan {
    /// PCR-only packets before the PES: `fill_count` of them, from `fill_from` in steps of
    /// [`PCR_INTERVAL`].
    fill_from: i64,
    fill_count: i64,
    /// The PCR in the PES's first packet (PES on the PCR PID only).
    pes_pcr: Option<i64>,
}

impl PcrPlan {
    fn fillers(self) -> impl Iterator<Item = i64> {
        (0..self.fill_count).map(move |i| self.fill_from + i * PCR_INTERVAL)
    }
}

/// The PCR of one segment. Every PES on the PCR PID carries PCR = its DTS − [`PCR_LEAD`] (held
/// monotonic); where the PES packets leave a gap longer than [`PCR_INTERVAL`] on the PCR PID,
/// PCR-only packets fill it, and a segment whose first PES is on another PID starts with one.
#[derive(Debug, Default)]
struct PcrClock {
    last: Option<i64>,
}

impl PcrClock {
    /// The PCRs due before and in a PES at `dts`; `carries` when the PES is on the PCR PID.
    fn plan(&mut self, dts: i64, carries: bool) -> PcrPlan {
        let want = dts.saturating_sub(PCR_LEAD);
        match self.last {
            // A step back of up to PCR_LEAD is held at the last PCR, which stays ≤ DTS.
            Some(last) if (last - PCR_LEAD..=last + MAX_PCR_FILL).contains(&want) => {
                let want = want.max(last);
                let fill_count = (want - last - 1).max(0) / PCR_INTERVAL;
                let filled = last + fill_count * PCR_INTERVAL;
                self.last = Some(if carries { want } else { filled });
                PcrPlan {
                    fill_from: last + PCR_INTERVAL,
                    fill_count,
                    pes_pcr: carries.then_some(want),
                }
            }
            // The segment's first PES, or a jump: the clock starts here.
            _ => {
                self.last = Some(want);
                PcrPlan {
                    fill_from: want,
                    fill_count: i64::from(!carries),
                    pes_pcr: carries.then_some(want),
                }
            }
        }
    }
}

/// Continuity counters of the four PIDs.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    pat: Continuity,
    pmt: Continuity,
    video: Continuity,
    audio: Continuity,
}

/// Writes HLS MPEG-TS segments of one stream; see the module documentation.
#[derive(Debug)]
pub struct TsMuxer {
    tracks: TsTracks,
    streams: StreamSet,
    pmt_version: u8,
    cc: Counters,
}

fn stream_set(tracks: &TsTracks) -> StreamSet {
    StreamSet {
        video: tracks.video.is_some(),
        audio: tracks.audio.is_some(),
    }
}

impl TsMuxer {
    pub fn new(tracks: TsTracks) -> Self {
        TsMuxer {
            streams: stream_set(&tracks),
            tracks,
            pmt_version: 0,
            cc: Counters::default(),
        }
    }

    /// New parameter sets or audio configuration, for the segments written from now on. The
    /// PMT version moves on (modulo 32) when a stream appears or goes away.
    pub fn set_tracks(&mut self, tracks: TsTracks) {
        let streams = stream_set(&tracks);
        if streams != self.streams {
            self.pmt_version = (self.pmt_version + 1) & 0x1f;
            self.streams = streams;
        }
        self.tracks = tracks;
    }

    pub fn tracks(&self) -> &TsTracks {
        &self.tracks
    }

    /// One segment: PAT, PMT, then the PES packets of `video` and `audio` merged by decode
    /// time. Samples of a track the muxer has no configuration for are left out.
    pub fn segment(&mut self, video: &[TsSample], audio: &[TsSample]) -> Bytes {
        let pcr_pid = self.streams.pcr_pid();
        let video = if self.tracks.video.is_some() {
            video
        } else {
            &[]
        };
        let groups = match &self.tracks.audio {
            Some(a) => {
                let span = if pcr_pid == AUDIO_PID {
                    PCR_INTERVAL
                } else {
                    AUDIO_PES_SPAN
                };
                AudioGroups::new(audio, a.frame_ticks(), span)
            }
            None => AudioGroups::new(&[], 1, 1),
        };
        let order = Interleave::new(video, groups);
        let audio_carries = pcr_pid == AUDIO_PID;

        // Sizing pass: the same PCR plan and PES lengths the writing pass uses.
        let mut clock = PcrClock::default();
        let mut total = 2 * PACKET_LEN;
        for pes in order.clone() {
            let carries = matches!(pes, Pes::Audio(_)) == audio_carries;
            let plan = clock.plan(pes.dts(), carries);
            let (len, flags) = self.pes_len_and_flags(pes, plan.pes_pcr);
            total += (plan.fill_count as usize + packets_for(len, flags.af_len())) * PACKET_LEN;
        }

        let mut buf = BytesMut::with_capacity(total);
        write_pat(&mut buf, &mut self.cc.pat);
        write_pmt(&mut buf, &mut self.cc.pmt, self.streams, self.pmt_version);
        let mut clock = PcrClock::default();
        for pes in order {
            let carries = matches!(pes, Pes::Audio(_)) == audio_carries;
            let plan = clock.plan(pes.dts(), carries);
            let pcr_cc = if audio_carries {
                self.cc.audio
            } else {
                self.cc.video
            };
            for pcr in plan.fillers() {
                write_pcr_only(&mut buf, pcr_pid, pcr_cc, pcr);
            }
            let (_, flags) = self.pes_len_and_flags(pes, plan.pes_pcr);
            match (pes, &self.tracks.video, &self.tracks.audio) {
                (Pes::Video(sample), Some(ps), _) => {
                    write_video_pes(&mut buf, &mut self.cc.video, flags, sample, ps)
                }
                (Pes::Audio(frames), _, Some(a)) => {
                    write_audio_pes(&mut buf, &mut self.cc.audio, flags, frames, a)
                }
                _ => unreachable!("PES packets only come from configured tracks"),
            }
        }
        debug_assert_eq!(buf.len(), total, "segment size precomputation");
        buf.freeze()
    }

    /// A PES packet's length and its first packet's adaptation field flags: random access on
    /// keyframes (every audio frame is one), and the planned PCR.
    fn pes_len_and_flags(&self, pes: Pes, pcr: Option<i64>) -> (usize, StartFlags) {
        let (len, random_access) = match (pes, &self.tracks.video) {
            (Pes::Video(sample), Some(ps)) => (video_pes_len(sample, ps), sample.keyframe),
            (Pes::Audio(frames), _) => (audio_pes_len(frames), true),
            (Pes::Video(_), None) => (0, false),
        };
        (len, StartFlags { random_access, pcr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_on_every_pcr_pid_pes_fillers_in_gaps() {
        let mut c = PcrClock::default();
        // The first PES is audio while the PCR is on video: a PCR-only packet starts the clock.
        let p = c.plan(9000, false);
        assert_eq!(
            (p.fillers().collect::<Vec<_>>(), p.pes_pcr),
            (vec![0], None)
        );
        let p = c.plan(12_600, true);
        assert_eq!((p.fill_count, p.pes_pcr), (0, Some(3600)));
        // 100 ms to the next video frame: two fillers 40 ms apart, then the PES's own PCR.
        let p = c.plan(21_600, true);
        assert_eq!(p.fillers().collect::<Vec<_>>(), [7200, 10_800]);
        assert_eq!(p.pes_pcr, Some(12_600));
        // Exactly 40 ms later needs no filler.
        assert_eq!(c.plan(25_200, true).fill_count, 0);
    }

    #[test]
    fn pcr_holds_through_small_steps_back_and_restarts_on_jumps() {
        let mut c = PcrClock::default();
        assert_eq!(c.plan(100_000, true).pes_pcr, Some(91_000));
        assert_eq!(
            c.plan(99_000, true).pes_pcr,
            Some(91_000),
            "held, still ≤ DTS"
        );
        assert_eq!(
            c.plan(10_000, true).pes_pcr,
            Some(1000),
            "restart backwards"
        );
        let p = c.plan(10_000 + MAX_PCR_FILL + 1, true);
        assert_eq!((p.fill_count, p.pes_pcr), (0, Some(1001 + MAX_PCR_FILL)));
    }
}
