//! Opus depacketizer (RFC 7587): one Opus packet per RTP payload, 48 kHz RTP clock, turned
//! into frames on the 90 kHz media clock, with gaps reported for the audio transcoder.

use std::collections::VecDeque;

use super::{RtpPacket, TimestampUnwrapper};
use crate::media::{Codec, Frame, CLOCK_RATE};

/// The RTP clock of Opus is always 48 kHz, whatever the encoder's sample rate (RFC 7587 §4.1).
pub const OPUS_RTP_CLOCK_RATE: u32 = 48_000;

/// Converts an extended 48 kHz RTP timestamp to 90 kHz media ticks (rounding down).
/// Exact for multiples of 8 samples, which covers every Opus frame size (2.5 ms = 120 samples
/// and up), so durations between frames are exact even when the random start is not.
pub fn opus_ticks_to_media(rtp: i64) -> i64 {
    // 90_000 / 48_000 = 15 / 8; the inputs are far below i64::MAX / 15 for any real stream.
    rtp.saturating_mul(15).div_euclid(8)
}

const _: () = assert!(CLOCK_RATE * 8 == OPUS_RTP_CLOCK_RATE * 15);

/// What the Opus depacketizer has to say, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpusEvent {
    /// One Opus packet: codec Opus, `pts == dts` in 90 kHz ticks, `keyframe` true.
    Frame(Frame),
    /// Packets were lost between the frame at `last_pts` and the one at `next_pts`, which
    /// comes right after this event (the decoder can conceal the gap, e.g. with FEC/PLC).
    Lost { last_pts: i64, next_pts: i64 },
}

/// RFC 7587 depacketizer. Feed packets in sequence order with [`push`](Self::push), then
/// drain [`poll`](Self::poll).
#[derive(Debug, Default)]
pub struct OpusDepacketizer {
    timestamps: TimestampUnwrapper,
    last_sequence: Option<u16>,
    last_pts: Option<i64>,
    loss_pending: bool,
    events: VecDeque<OpusEvent>,
}

impl OpusDepacketizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next packet in sequence order. `lost_before`: packets before this one were
    /// lost. Sequence gaps are noticed here too; duplicates are dropped; empty payloads (and
    /// padding-only packets) are skipped. DTX silence sends no packets at all and leaves no
    /// sequence gap, so it is not reported as loss.
    pub fn push(&mut self, pkt: &RtpPacket, lost_before: bool) {
        let gap = match self.last_sequence {
            Some(prev) if prev == pkt.sequence => return,
            Some(prev) => pkt.sequence != prev.wrapping_add(1),
            None => false,
        };
        self.last_sequence = Some(pkt.sequence);
        self.loss_pending |= lost_before || gap;
        if pkt.payload.is_empty() {
            return;
        }
        let pts = opus_ticks_to_media(self.timestamps.unwrap(pkt.timestamp));
        if std::mem::take(&mut self.loss_pending) {
            if let Some(last_pts) = self.last_pts {
                self.events.push_back(OpusEvent::Lost {
                    last_pts,
                    next_pts: pts,
                });
            }
        }
        self.last_pts = Some(pts);
        self.events.push_back(OpusEvent::Frame(Frame {
            codec: Codec::Opus,
            pts,
            dts: pts,
            keyframe: true,
            data: pkt.payload.clone(),
        }));
    }

    /// Returns the next event, if any.
    pub fn poll(&mut self) -> Option<OpusEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pkt(seq: u16, ts: u32, payload: &'static [u8]) -> RtpPacket {
        RtpPacket {
            payload_type: 111,
            sequence: seq,
            timestamp: ts,
            ssrc: 1,
            marker: false,
            payload: Bytes::from_static(payload),
        }
    }

    fn events(d: &mut OpusDepacketizer) -> Vec<OpusEvent> {
        std::iter::from_fn(|| d.poll()).collect()
    }

    fn frame(pts: i64, data: &'static [u8]) -> OpusEvent {
        OpusEvent::Frame(Frame {
            codec: Codec::Opus,
            pts,
            dts: pts,
            keyframe: true,
            data: Bytes::from_static(data),
        })
    }

    #[test]
    fn twenty_ms_packets_become_1800_tick_steps() {
        let mut d = OpusDepacketizer::new();
        d.push(&pkt(1, 960, &[0xfc, 1]), false);
        d.push(&pkt(2, 1920, &[0xfc, 2]), false);
        assert_eq!(
            events(&mut d),
            vec![frame(1800, &[0xfc, 1]), frame(3600, &[0xfc, 2])]
        );
    }

    #[test]
    fn timestamp_wrap_keeps_pts_increasing() {
        let mut d = OpusDepacketizer::new();
        d.push(&pkt(1, 0xFFFF_FC40, &[1]), false); // 960 before the wrap
        d.push(&pkt(2, 0, &[2]), false);
        let pts: Vec<i64> = events(&mut d)
            .into_iter()
            .map(|e| match e {
                OpusEvent::Frame(f) => f.pts,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(pts[1] - pts[0], 1800);
        assert_eq!(pts[1], opus_ticks_to_media(0x1_0000_0000));
    }

    #[test]
    fn gap_reports_lost_before_the_next_frame() {
        let mut d = OpusDepacketizer::new();
        d.push(&pkt(10, 0, &[1]), false);
        d.push(&pkt(13, 2880, &[4]), false);
        d.push(&pkt(14, 3840, &[5]), true);
        assert_eq!(
            events(&mut d),
            vec![
                frame(0, &[1]),
                OpusEvent::Lost {
                    last_pts: 0,
                    next_pts: 5400
                },
                frame(5400, &[4]),
                OpusEvent::Lost {
                    last_pts: 5400,
                    next_pts: 7200
                },
                frame(7200, &[5]),
            ]
        );
    }

    #[test]
    fn empty_payloads_and_duplicates_are_skipped() {
        let mut d = OpusDepacketizer::new();
        d.push(&pkt(1, 0, &[1]), false);
        d.push(&pkt(1, 0, &[1]), false);
        d.push(&pkt(2, 960, &[]), false);
        d.push(&pkt(3, 1920, &[3]), false);
        assert_eq!(events(&mut d), vec![frame(0, &[1]), frame(3600, &[3])]);
    }

    #[test]
    fn loss_before_the_first_frame_is_not_reported() {
        let mut d = OpusDepacketizer::new();
        d.push(&pkt(5, 0, &[1]), true);
        assert_eq!(events(&mut d), vec![frame(0, &[1])]);
    }
}
