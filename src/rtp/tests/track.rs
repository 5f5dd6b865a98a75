//! The whole track pipeline (reorder buffer + depacketizer) as the ingest layer drives it.

use std::time::{Duration, Instant};

use super::*;
use crate::rtp::{H264Packetizer, OpusEvent, TrackEvent, TrackReceiver};

const MAX_DELAY: Duration = Duration::from_millis(100);

/// An IDR (with SPS/PPS) then `p_frames` P-frames, 3000 ticks apart, as RTP packets.
fn stream(packetizer: &mut H264Packetizer, first_ts: u32, p_frames: u32) -> Vec<RtpPacket> {
    let mut packets = packetizer.packetize(&[SPS, PPS, &idr(5000, 0)], first_ts);
    for n in 1..=p_frames {
        let size = 200 + (n as usize * 397) % 3000;
        let ts = first_ts.wrapping_add(n * 3000);
        packetizer.packetize_into(&[&slice(size, n as u8)], ts, &mut packets);
    }
    packets
}

fn run(
    rx: &mut TrackReceiver,
    packets: impl IntoIterator<Item = RtpPacket>,
    now: Instant,
) -> Vec<TrackEvent> {
    let mut out = Vec::new();
    for p in packets {
        rx.push(p, now);
        out.extend(std::iter::from_fn(|| rx.poll_event()));
    }
    out
}

/// One short line per event (frame bytes reduced to length and checksum), so a mismatch
/// prints readably.
fn summary(events: &[TrackEvent]) -> Vec<String> {
    let digest = |b: &[u8]| {
        b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
            (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
        })
    };
    events
        .iter()
        .map(|e| match e {
            TrackEvent::H264(H264Event::AccessUnit(f)) => {
                format!(
                    "frame pts={} key={} len={} sum={:x}",
                    f.pts,
                    f.keyframe,
                    f.data.len(),
                    digest(&f.data)
                )
            }
            other => format!("{other:?}"),
        })
        .collect()
}

fn h264_frames(events: &[TrackEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, TrackEvent::H264(H264Event::AccessUnit(_))))
        .count()
}

#[test]
fn shuffled_packets_give_identical_frames() {
    let t0 = Instant::now();
    let packets = stream(
        &mut H264Packetizer::new(1200, 102, 9, 65_500),
        0xFFFF_0000,
        20,
    );
    let expected = run(&mut TrackReceiver::h264(MAX_DELAY), packets.clone(), t0);
    assert_eq!(h264_frames(&expected), 21);
    assert!(matches!(
        expected[0],
        TrackEvent::H264(H264Event::ParameterSets { .. })
    ));

    let mut rng = TestRng::new(0x5417);
    let mut shuffled = packets;
    // Local shuffles, like network reordering: each window of 8 packets is permuted. The
    // first packet stays first: it defines where the stream starts (anything older is late).
    for window in shuffled[1..].chunks_mut(8) {
        for i in (1..window.len()).rev() {
            window.swap(i, rng.below(i + 1));
        }
    }
    let got = run(&mut TrackReceiver::h264(MAX_DELAY), shuffled, t0);
    assert_eq!(summary(&got), summary(&expected));
    assert!(got == expected);
}

#[test]
fn rtx_retransmissions_of_delivered_packets_are_dropped() {
    // webrtc-rs hands RTX packets over with the original SSRC and sequence number.
    let t0 = Instant::now();
    let packets = stream(&mut H264Packetizer::new(1200, 102, 9, 0), 90_000, 10);
    let expected = run(&mut TrackReceiver::h264(MAX_DELAY), packets.clone(), t0);
    let mut with_rtx = Vec::new();
    for (n, p) in packets.iter().enumerate() {
        with_rtx.push(p.clone());
        if n % 3 == 0 && n >= 2 {
            with_rtx.push(packets[n - 2].clone());
            with_rtx.push(p.clone());
        }
    }
    let mut rx = TrackReceiver::h264(MAX_DELAY);
    let got = run(&mut rx, with_rtx, t0);
    assert_eq!(summary(&got), summary(&expected));
    assert!(got == expected);
    assert!(rx.reorder_stats().dropped_late > 0);
}

#[test]
fn lost_packet_is_given_up_after_max_delay_then_frames_resume_at_the_next_idr() {
    let t0 = Instant::now();
    let mut packetizer = H264Packetizer::new(1200, 102, 9, 0);
    let mut packets = stream(&mut packetizer, 0, 3);
    let lost = packets.remove(6); // inside a P-frame
    assert_eq!(lost.timestamp, 3000);
    let mut rx = TrackReceiver::h264(MAX_DELAY);
    let out = run(&mut rx, packets, t0);
    assert_eq!(h264_frames(&out), 1, "only the IDR before the gap is out");
    assert_eq!(rx.poll_timeout(), Some(t0 + MAX_DELAY));

    rx.handle_timeout(t0 + MAX_DELAY);
    let out: Vec<TrackEvent> = std::iter::from_fn(|| rx.poll_event()).collect();
    assert_eq!(out, vec![TrackEvent::H264(H264Event::KeyframeNeeded)]);
    assert!(rx.is_waiting_for_keyframe());
    assert_eq!(rx.poll_timeout(), None);

    let i = idr(100, 3);
    let later = t0 + Duration::from_millis(200);
    let out = run(&mut rx, packetizer.packetize(&[&i], 12_000), later);
    assert_eq!(out, vec![TrackEvent::H264(frame(12_000, true, &[&i]))]);
}

#[test]
fn restarted_publisher_with_new_ssrc_resumes_at_its_idr() {
    let t0 = Instant::now();
    let mut rx = TrackReceiver::h264(MAX_DELAY);
    let first = run(
        &mut rx,
        stream(&mut H264Packetizer::new(1200, 102, 1, 100), 0, 2),
        t0,
    );
    assert_eq!(h264_frames(&first), 3);
    let second = run(
        &mut rx,
        stream(&mut H264Packetizer::new(1200, 102, 2, 40_000), 7_000_000, 2),
        t0,
    );
    assert_eq!(h264_frames(&second), 3);
    let first_pts = second.iter().find_map(|e| match e {
        TrackEvent::H264(H264Event::AccessUnit(f)) => Some(f.pts),
        _ => None,
    });
    assert_eq!(first_pts, Some(7_000_000));
}

#[test]
fn sprop_parameter_sets_reach_the_depacketizer_through_the_receiver() {
    let t0 = Instant::now();
    let mut rx = TrackReceiver::h264(MAX_DELAY);
    rx.h264_mut()
        .unwrap()
        .set_sprop_parameter_sets("Z0LAH9oBQBbo,aM48gA==")
        .unwrap();
    assert!(TrackReceiver::opus(MAX_DELAY).h264_mut().is_none());
    let i = idr(50, 1);
    let out = run(&mut rx, [pkt(5, 0, true, &i)], t0);
    assert_eq!(
        out,
        vec![
            TrackEvent::H264(params(SPS, PPS)),
            TrackEvent::H264(frame(0, true, &[&i]))
        ]
    );
}

#[test]
fn opus_track_reorders_and_reports_the_gap() {
    let t0 = Instant::now();
    let opus = |seq: u16| {
        let mut p = pkt(seq, u32::from(seq) * 960, false, &[0xfc, seq as u8]);
        p.payload_type = 111;
        p
    };
    let mut rx = TrackReceiver::opus(MAX_DELAY);
    let mut out = run(&mut rx, [opus(1), opus(3), opus(2), opus(5)], t0);
    rx.handle_timeout(t0 + MAX_DELAY);
    out.extend(std::iter::from_fn(|| rx.poll_event()));
    let summary: Vec<String> = out
        .iter()
        .map(|e| match e {
            TrackEvent::Opus(OpusEvent::Frame(f)) => format!("frame {}", f.pts),
            TrackEvent::Opus(OpusEvent::Lost { last_pts, next_pts }) => {
                format!("lost {last_pts}..{next_pts}")
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            "frame 1800",
            "frame 3600",
            "frame 5400",
            "lost 5400..9000",
            "frame 9000"
        ]
    );
}

#[test]
fn video_gaps_are_nacked_at_once_then_again_until_repaired() {
    let t0 = Instant::now();
    let mut packetizer = H264Packetizer::new(1200, 102, 0x5eed, 100);
    let packets = stream(&mut packetizer, 0, 3);
    assert!(packets.len() > 8, "the keyframe spans several packets");
    let mut rx = TrackReceiver::h264(Duration::from_millis(150));
    // Packets 102 and 103 are lost on the way.
    let (lost, rest): (Vec<_>, Vec<_>) = packets
        .into_iter()
        .partition(|p| p.sequence == 102 || p.sequence == 103);
    // 100 and 101 in order ask for nothing; 104 shows the gap: both are asked for at once.
    let mut rest = rest.into_iter();
    let mut asked = Vec::new();
    for p in rest.by_ref().take(3) {
        rx.push(p, t0);
        asked.push(rx.poll_nacks(t0));
    }
    assert_eq!(asked, vec![vec![], vec![], vec![102, 103]]);
    // Nothing new arrives: asked again once the retry wait is over, not before, and before
    // the reorder buffer would give up on the gap.
    let retry = rx.poll_timeout().expect("a retry is scheduled");
    assert!(retry < t0 + Duration::from_millis(150));
    let early = retry - Duration::from_millis(1);
    rx.handle_timeout(early);
    assert!(rx.poll_nacks(early).is_empty());
    rx.handle_timeout(retry);
    assert_eq!(rx.poll_nacks(retry), vec![102, 103]);
    // The resends arrive: nothing is asked or scheduled any more, and the rest of the
    // stream completes the keyframe.
    for p in lost {
        rx.push(p, retry);
    }
    assert!(rx.poll_nacks(retry).is_empty());
    assert_eq!(rx.poll_timeout(), None);
    for p in rest {
        rx.push(p, retry);
        assert!(rx.poll_nacks(retry).is_empty());
    }
    let keyframes = std::iter::from_fn(|| rx.poll_event())
        .filter(|e| matches!(e, TrackEvent::H264(H264Event::AccessUnit(f)) if f.keyframe))
        .count();
    assert_eq!(keyframes, 1);
}

#[test]
fn audio_gaps_are_not_nacked() {
    let t0 = Instant::now();
    let mut rx = TrackReceiver::opus(Duration::from_millis(150));
    for seq in [1u16, 2, 4] {
        rx.push(
            RtpPacket {
                payload_type: 111,
                sequence: seq,
                timestamp: u32::from(seq) * 960,
                ssrc: 7,
                marker: false,
                payload: Bytes::from_static(&[0xfc, 0xff]),
            },
            t0,
        );
        assert!(rx.poll_nacks(t0).is_empty());
    }
}
