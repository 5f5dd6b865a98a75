//! The order of a segment's PES packets: each video sample is one PES; consecutive audio
//! frames are grouped into PES packets of a few frames; the two are merged by decode time
//! (video first on a tie).

use super::adts::{ADTS_HEADER_LEN, MAX_ADTS_FRAME_LEN};
use super::TsSample;

/// Media an audio PES may span when the audio does not carry the PCR: about 100 ms.
pub(crate) const AUDIO_PES_SPAN: i64 = 9000;
/// Payload bytes an audio PES may hold (it keeps PES_packet_length, and the decoder's audio
/// buffer, small).
pub(crate) const AUDIO_PES_MAX_BYTES: usize = 4096;

/// One PES packet to write.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pes<'a> {
    Video(&'a TsSample),
    /// One or more audio frames, in order.
    Audio(&'a [TsSample]),
}

impl Pes<'_> {
    /// Decode time of the PES (of its first frame).
    pub(crate) fn dts(&self) -> i64 {
        match self {
            Pes::Video(sample) => sample.dts,
            Pes::Audio(frames) => frames[0].dts,
        }
    }
}

/// True when a raw AAC frame can go behind an ADTS header (non-empty, 13-bit frame length).
fn fits_adts(frame: &TsSample) -> bool {
    !frame.data.is_empty() && ADTS_HEADER_LEN + frame.data.len() <= MAX_ADTS_FRAME_LEN
}

/// Audio frames in runs: a run takes frames while the span from its first frame's start to the
/// end of the next one stays within `span` ticks and its bytes within
/// [`AUDIO_PES_MAX_BYTES`]; every run has at least one frame. Frames ADTS cannot carry are
/// skipped.
#[derive(Clone, Debug)]
pub(crate) struct AudioGroups<'a> {
    rest: &'a [TsSample],
    frame_ticks: i64,
    span: i64,
}

impl<'a> AudioGroups<'a> {
    pub(crate) fn new(frames: &'a [TsSample], frame_ticks: i64, span: i64) -> Self {
        AudioGroups {
            rest: frames,
            frame_ticks,
            span,
        }
    }
}

impl<'a> Iterator for AudioGroups<'a> {
    type Item = &'a [TsSample];

    fn next(&mut self) -> Option<&'a [TsSample]> {
        let skip = self.rest.iter().position(fits_adts)?;
        let rest = &self.rest[skip..];
        let first = &rest[0];
        let mut bytes = ADTS_HEADER_LEN + first.data.len();
        let mut n = 1;
        for (prev, frame) in rest.iter().zip(&rest[1..]) {
            let frame_bytes = ADTS_HEADER_LEN + frame.data.len();
            let end = frame.dts.saturating_sub(first.dts) + self.frame_ticks;
            let joins = fits_adts(frame)
                && frame.dts >= prev.dts
                && end <= self.span
                && bytes + frame_bytes <= AUDIO_PES_MAX_BYTES;
            if !joins {
                break;
            }
            bytes += frame_bytes;
            n += 1;
        }
        let (group, rest) = rest.split_at(n);
        self.rest = rest;
        Some(group)
    }
}

/// Video and audio PES packets merged by decode time.
#[derive(Clone, Debug)]
pub(crate) struct Interleave<'a> {
    video: &'a [TsSample],
    audio: std::iter::Peekable<AudioGroups<'a>>,
}

impl<'a> Interleave<'a> {
    pub(crate) fn new(video: &'a [TsSample], audio: AudioGroups<'a>) -> Self {
        Interleave {
            video,
            audio: audio.peekable(),
        }
    }
}

impl<'a> Iterator for Interleave<'a> {
    type Item = Pes<'a>;

    fn next(&mut self) -> Option<Pes<'a>> {
        let audio_dts = self.audio.peek().map(|g| g[0].dts);
        match (self.video.split_first(), audio_dts) {
            (Some((v, rest)), a) if a.is_none_or(|a| v.dts <= a) => {
                self.video = rest;
                Some(Pes::Video(v))
            }
            _ => self.audio.next().map(Pes::Audio),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn frame(dts: i64, len: usize) -> TsSample {
        TsSample {
            pts: dts,
            dts,
            keyframe: true,
            data: Bytes::from(vec![0x21; len]),
        }
    }

    fn sizes(groups: AudioGroups) -> Vec<usize> {
        groups.map(<[TsSample]>::len).collect()
    }

    #[test]
    fn groups_span_at_most_the_limit() {
        let frames: Vec<TsSample> = (0..10).map(|i| frame(i * 1920, 200)).collect();
        // 4 × 1920 = 7680 ≤ 9000 < 5 × 1920.
        assert_eq!(
            sizes(AudioGroups::new(&frames, 1920, AUDIO_PES_SPAN)),
            [4, 4, 2]
        );
        // Carrying the PCR: 2 × 1920 > 3600, one frame a PES.
        assert_eq!(sizes(AudioGroups::new(&frames, 1920, 3600)), [1; 10]);
    }

    #[test]
    fn groups_stop_at_the_byte_limit_and_skip_frames_adts_cannot_carry() {
        let frames = [
            frame(0, 2000),
            frame(1920, 2000),
            frame(3840, 100),
            frame(5760, 0),
            frame(7680, MAX_ADTS_FRAME_LEN),
            frame(9600, 10),
        ];
        let groups: Vec<&[TsSample]> = AudioGroups::new(&frames, 1920, 90_000).collect();
        let starts: Vec<Vec<i64>> = groups
            .iter()
            .map(|g| g.iter().map(|f| f.dts).collect())
            .collect();
        assert_eq!(starts, [vec![0, 1920], vec![3840], vec![9600]]);
    }

    #[test]
    fn merge_is_by_decode_time_video_first_on_a_tie() {
        let video = [frame(0, 1), frame(3600, 1), frame(7200, 1)];
        let audio: Vec<TsSample> = (0..5).map(|i| frame(i * 1920, 10)).collect();
        let order: Vec<(char, i64)> = Interleave::new(&video, AudioGroups::new(&audio, 1920, 3600))
            .map(|p| match p {
                Pes::Video(s) => ('v', s.dts),
                Pes::Audio(f) => ('a', f[0].dts),
            })
            .collect();
        assert_eq!(
            order,
            [
                ('v', 0),
                ('a', 0),
                ('a', 1920),
                ('v', 3600),
                ('a', 3840),
                ('a', 5760),
                ('v', 7200),
                ('a', 7680)
            ]
        );
    }
}
