//! H.264 depacketizer under loss: no damaged frame ever leaves, a keyframe is asked for once
//! per episode, and frames resume at the next IDR.

use super::*;
use crate::rtp::H264Packetizer;

/// Packets for: IDR at ts 0 (with SPS/PPS), then P-frames at ts 3000, 6000, ...; each
/// access unit's packets are returned separately. Slices are large enough to need FU-A.
fn gop(packetizer: &mut H264Packetizer, p_frames: u32) -> Vec<Vec<RtpPacket>> {
    let mut aus = vec![packetizer.packetize(&[SPS, PPS, &idr(3000, 0)], 0)];
    for n in 1..=p_frames {
        aus.push(packetizer.packetize(&[&slice(2500, n as u8)], n * 3000));
    }
    aus
}

fn count(events: &[H264Event], pred: impl Fn(&H264Event) -> bool) -> usize {
    events.iter().filter(|e| pred(e)).count()
}

fn keyframe_requests(events: &[H264Event]) -> usize {
    count(events, |e| matches!(e, H264Event::KeyframeNeeded))
}

fn frame_pts(events: &[H264Event]) -> Vec<i64> {
    events
        .iter()
        .filter_map(|e| match e {
            H264Event::AccessUnit(f) => Some(f.pts),
            _ => None,
        })
        .collect()
}

#[test]
fn stream_starts_at_its_first_idr_and_asks_for_it_once() {
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 0);
    let mut packets = Vec::new();
    for n in 0..3u32 {
        packetizer.packetize_into(&[&slice(100, n as u8)], n * 3000, &mut packets);
    }
    let i = idr(100, 9);
    packetizer.packetize_into(&[SPS, PPS, &i], 9000, &mut packets);
    let mut d = H264Depacketizer::new();
    assert_eq!(
        feed(&mut d, &packets),
        vec![
            H264Event::KeyframeNeeded,
            params(SPS, PPS),
            frame(9000, true, &[&i])
        ]
    );
    assert!(!d.is_waiting_for_keyframe());
}

#[test]
fn lost_packet_mid_frame_drops_it_and_p_frames_until_the_next_idr() {
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 0);
    let aus = gop(&mut packetizer, 3);
    let mut d = H264Depacketizer::new();
    let mut out = feed(&mut d, &aus[0]);
    // P-frame 1 loses its middle fragment: the reorder buffer flags the next packet.
    let p1 = &aus[1];
    assert_eq!(p1.len(), 3);
    d.push(&p1[0], false);
    d.push(&p1[2], true);
    out.extend(feed(&mut d, &aus[2]));
    out.extend(feed(&mut d, &aus[3]));
    assert!(d.is_waiting_for_keyframe());
    let i = idr(800, 5);
    out.extend(feed(&mut d, &packetizer.packetize(&[SPS, PPS, &i], 12_000)));
    assert_eq!(frame_pts(&out), vec![0, 12_000]);
    assert_eq!(keyframe_requests(&out), 1);
    assert_eq!(out.last(), Some(&frame(12_000, true, &[&i])));
    assert!(!d.is_waiting_for_keyframe());
}

#[test]
fn fu_a_missing_its_start_is_dropped_even_without_a_sequence_gap() {
    // A sender bug rather than loss: the FU-A continues a fragment that never started.
    let i = idr(20, 1);
    let mut d = H264Depacketizer::new();
    let out = feed(
        &mut d,
        &[
            pkt(1, 0, false, SPS),
            pkt(2, 0, false, PPS),
            pkt(3, 0, true, &i),
            pkt(4, 3000, false, &[0x5c, 0x01, 1, 2]),
            pkt(5, 3000, true, &[0x5c, 0x41, 3]),
            pkt(6, 6000, true, &slice(30, 1)),
        ],
    );
    assert_eq!(
        out,
        vec![
            params(SPS, PPS),
            frame(0, true, &[&i]),
            H264Event::KeyframeNeeded
        ]
    );
}

#[test]
fn fu_a_sequence_gap_without_loss_flag_is_still_loss() {
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 0);
    let aus = gop(&mut packetizer, 2);
    let mut d = H264Depacketizer::new();
    let mut out = feed(&mut d, &aus[0]);
    // Middle fragment of P-frame 1 never arrives and nobody says so.
    out.extend(feed(&mut d, &[aus[1][0].clone(), aus[1][2].clone()]));
    out.extend(feed(&mut d, &aus[2]));
    assert_eq!(frame_pts(&out), vec![0]);
    assert_eq!(keyframe_requests(&out), 1);
}

#[test]
fn fu_a_without_end_bit_before_the_marker_is_dropped() {
    let mut d = H264Depacketizer::new();
    d.set_sprop_parameter_sets("Z0LAH9oBQBbo,aM48gA==").unwrap();
    let out = feed(
        &mut d,
        &[
            pkt(1, 0, false, &[0x7c, 0x85, 1]),
            pkt(2, 0, true, &[0x7c, 0x05, 2]),
        ],
    );
    assert_eq!(out, vec![H264Event::KeyframeNeeded]);
}

#[test]
fn loss_on_the_last_packet_drops_the_frame_that_lost_its_marker() {
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 0);
    let aus = gop(&mut packetizer, 2);
    let mut d = H264Depacketizer::new();
    let mut out = feed(&mut d, &aus[0]);
    let p1 = &aus[1];
    for p in &p1[..p1.len() - 1] {
        d.push(p, false);
    }
    // The end fragment (with the marker) is lost; P-frame 2 arrives flagged.
    d.push(&aus[2][0], true);
    out.extend(feed(&mut d, &aus[2][1..]));
    assert_eq!(frame_pts(&out), vec![0]);
    assert_eq!(keyframe_requests(&out), 1);
}

#[test]
fn several_losses_before_the_idr_ask_for_a_keyframe_once() {
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 0);
    let aus = gop(&mut packetizer, 6);
    let mut d = H264Depacketizer::new();
    let mut out = feed(&mut d, &aus[0]);
    for au in &aus[1..] {
        // Every P-frame loses its first packet.
        for (n, p) in au.iter().enumerate().skip(1) {
            d.push(p, n == 1);
        }
    }
    out.extend(events(&mut d));
    assert_eq!(keyframe_requests(&out), 1);
    // After an IDR ends the episode, the next loss asks again.
    let mut next = packetizer.packetize(&[&idr(100, 1)], 21_000);
    next.extend(packetizer.packetize(&[&slice(100, 2)], 24_000));
    next.extend(packetizer.packetize(&[&slice(100, 3)], 27_000));
    d.push(&next[0], false);
    d.push(&next[2], true);
    let tail = events(&mut d);
    assert_eq!(frame_pts(&tail), vec![21_000]);
    assert_eq!(keyframe_requests(&tail), 1);
}

#[test]
fn damaged_idr_asks_for_another_keyframe() {
    // WebRTC senders have no periodic keyframes: if the IDR answering a PLI is itself hit,
    // staying silent would stall the stream forever.
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 0);
    let aus = gop(&mut packetizer, 1);
    let mut d = H264Depacketizer::new();
    let mut out = feed(&mut d, &aus[0]);
    d.push(&aus[1][1], true); // P-frame loses its start
    d.push(&aus[1][2], false);
    out.extend(events(&mut d));
    assert_eq!(keyframe_requests(&out), 1);
    let answer = packetizer.packetize(&[SPS, PPS, &idr(3000, 2)], 6000);
    // The IDR loses a middle fragment.
    for (n, p) in answer.iter().enumerate() {
        if n != 2 {
            d.push(p, n == 3);
        }
    }
    let out = events(&mut d);
    assert_eq!(out, vec![H264Event::KeyframeNeeded]);
}

#[test]
fn interleaved_mode_packets_are_treated_as_loss() {
    let mut d = H264Depacketizer::new();
    d.set_sprop_parameter_sets("Z0LAH9oBQBbo,aM48gA==").unwrap();
    let i = idr(20, 1);
    // STAP-B (25) has a DON field we can't honour in non-interleaved mode.
    let out = feed(
        &mut d,
        &[
            pkt(1, 0, false, &[0x79, 0, 1, 0, 3, 0x65, 1, 2]),
            pkt(2, 0, true, &i),
        ],
    );
    assert_eq!(out, vec![H264Event::KeyframeNeeded]);
}

#[test]
fn truncated_stap_a_is_treated_as_loss() {
    let mut d = H264Depacketizer::new();
    d.set_sprop_parameter_sets("Z0LAH9oBQBbo,aM48gA==").unwrap();
    let out = feed(&mut d, &[pkt(1, 0, true, &[0x78, 0, 9, 0x65, 1])]);
    assert_eq!(out, vec![H264Event::KeyframeNeeded]);
}

#[test]
fn idr_without_any_parameter_sets_is_not_emitted() {
    let mut d = H264Depacketizer::new();
    let out = feed(&mut d, &[pkt(1, 0, true, &idr(20, 1))]);
    assert_eq!(out, vec![H264Event::KeyframeNeeded]);
}

#[test]
fn access_unit_over_the_size_limit_is_dropped_as_loss() {
    let mut d = H264Depacketizer::new();
    d.set_sprop_parameter_sets("Z0LAH9oBQBbo,aM48gA==").unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut fu = |seq: u16, header: u8, marker: bool| {
        let mut payload = vec![0x7c, header];
        payload.extend_from_slice(&chunk);
        d.push(&pkt(seq, 0, marker, &payload), false);
    };
    fu(0, 0x85, false);
    for seq in 1..9 {
        fu(seq, 0x05, false);
    }
    fu(9, 0x45, true);
    assert_eq!(events(&mut d), vec![H264Event::KeyframeNeeded]);
    // The buffer was cleared, and the next IDR comes through.
    let i = idr(20, 1);
    assert_eq!(
        feed(&mut d, &[pkt(10, 3000, true, &i)]),
        vec![params(SPS, PPS), frame(3000, true, &[&i])]
    );
}

#[test]
fn loss_just_before_a_chromium_idr_keeps_that_idr() {
    // The lost packet is the end of a P-frame; the next one starts an IDR that carries its
    // own SPS/PPS, so nothing it needs can have been lost.
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 0);
    let aus = gop(&mut packetizer, 1);
    let i = idr(3000, 4);
    let answer = packetizer.packetize(&[SPS, PPS, &i], 6000);
    let mut d = H264Depacketizer::new();
    let mut out = feed(&mut d, &aus[0]);
    let p1 = &aus[1];
    out.extend(feed(&mut d, &p1[..p1.len() - 1]));
    d.push(&answer[0], true);
    out.extend(feed(&mut d, &answer[1..]));
    assert_eq!(
        out,
        vec![
            params(SPS, PPS),
            frame(0, true, &[&idr(3000, 0)]),
            H264Event::KeyframeNeeded,
            frame(6000, true, &[&i]),
        ]
    );
}

#[test]
fn loss_just_before_an_idr_without_in_band_parameter_sets_drops_it() {
    // A parameter-set change could have been in the lost packets.
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 0);
    let aus = gop(&mut packetizer, 1);
    let answer = packetizer.packetize(&[&idr(3000, 4)], 6000);
    let mut d = H264Depacketizer::new();
    let mut out = feed(&mut d, &aus[0]);
    let p1 = &aus[1];
    out.extend(feed(&mut d, &p1[..p1.len() - 1]));
    d.push(&answer[0], true);
    out.extend(feed(&mut d, &answer[1..]));
    assert_eq!(frame_pts(&out), vec![0]);
    assert_eq!(keyframe_requests(&out), 1);
    assert!(d.is_waiting_for_keyframe());
}
