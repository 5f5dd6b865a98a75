//! H.264 depacketizer on clean streams: packet shapes (RFC 6184 §5.6-5.8), parameter sets,
//! access-unit boundaries, wrap-around, and the senders whose habits these pin down.

use super::*;
use crate::rtp::H264Packetizer;

#[test]
fn single_nal_unit_packets_make_one_avcc_access_unit() {
    let mut d = H264Depacketizer::new();
    let i = idr(20, 1);
    let out = feed(
        &mut d,
        &[
            pkt(100, 3000, false, SPS),
            pkt(101, 3000, false, PPS),
            pkt(102, 3000, true, &i),
        ],
    );
    assert_eq!(out, vec![params(SPS, PPS), frame(3000, true, &[&i])]);
}

#[test]
fn chromium_stap_a_with_sps_pps_before_fu_a_idr() {
    let i = idr(250, 7);
    let p = slice(60, 8);
    let mut packetizer = H264Packetizer::new(112, 102, 0x5eed, 4000);
    let mut packets = packetizer.packetize(&[SPS, PPS, &i], 90_000);
    packets.extend(packetizer.packetize(&[&p], 93_000));
    // The shape Chromium sends: STAP-A(SPS, PPS), FU-A start/middle/end, then a P-frame.
    let types: Vec<u8> = packets.iter().map(|p| p.payload[0] & 0x1f).collect();
    assert_eq!(types, vec![24, 28, 28, 28, 1]);
    assert_eq!(
        &packets[0].payload[..],
        &[
            0x78, 0, 9, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8, 0, 4, 0x68, 0xce,
            0x3c, 0x80
        ]
    );

    let mut d = H264Depacketizer::new();
    assert_eq!(
        feed(&mut d, &packets),
        vec![
            params(SPS, PPS),
            frame(90_000, true, &[&i]),
            frame(93_000, false, &[&p])
        ]
    );
}

#[test]
fn fu_a_takes_f_and_nri_from_the_indicator_and_type_from_the_fu_header() {
    let mut d = H264Depacketizer::new();
    d.set_sprop_parameter_sets("Z0LAH9oBQBbo,aM48gA==").unwrap();
    // Indicator: NRI 2, type 28. FU header: S/E bits, type 5 (IDR).
    let out = feed(
        &mut d,
        &[
            pkt(1, 0, false, &[0x5c, 0x85, 0xaa, 0xbb]),
            pkt(2, 0, false, &[0x5c, 0x05, 0xcc]),
            pkt(3, 0, false, &[0x5c, 0x05, 0xdd, 0xee]),
            pkt(4, 0, true, &[0x5c, 0x45, 0xff]),
        ],
    );
    assert_eq!(
        out,
        vec![
            params(SPS, PPS),
            frame(0, true, &[&[0x45, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]])
        ]
    );
}

#[test]
fn sprop_parameter_sets_are_decoded_with_or_without_padding() {
    let mut d = H264Depacketizer::new();
    // "aM48gA" is the PPS without its "==" padding, as some SDP writers emit it.
    d.set_sprop_parameter_sets(" Z0LAH9oBQBbo , aM48gA ")
        .unwrap();
    let i = idr(10, 2);
    assert_eq!(
        feed(&mut d, &[pkt(9, 1234, true, &i)]),
        vec![params(SPS, PPS), frame(1234, true, &[&i])]
    );
}

#[test]
fn bad_sprop_parameter_sets_are_an_error() {
    let mut d = H264Depacketizer::new();
    assert!(d.set_sprop_parameter_sets("not base64!,aM48gA==").is_err());
    assert!(d.set_sprop_parameter_sets("").is_err());
    // Valid base64 but neither SPS nor PPS (an IDR header byte).
    assert!(d.set_sprop_parameter_sets("ZQ==").is_err());
}

#[test]
fn obs_sends_sps_and_pps_as_separate_access_units_before_the_idr() {
    let i = idr(40, 3);
    let mut d = H264Depacketizer::new();
    let out = feed(
        &mut d,
        &[
            pkt(7, 500, true, SPS),
            pkt(8, 600, true, PPS),
            pkt(9, 700, false, AUD),
            pkt(10, 700, true, &i),
        ],
    );
    assert_eq!(out, vec![params(SPS, PPS), frame(700, true, &[&i])]);
}

#[test]
fn aud_and_parameter_sets_leave_the_frame_but_sei_stays() {
    let i = idr(30, 4);
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 0);
    let packets = packetizer.packetize(&[AUD, SPS, PPS, SEI, &i], 3000);
    let mut d = H264Depacketizer::new();
    assert_eq!(
        feed(&mut d, &packets),
        vec![params(SPS, PPS), frame(3000, true, &[SEI, &i])]
    );
}

#[test]
fn repeated_identical_parameter_sets_are_reported_once() {
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 0);
    let mut packets = Vec::new();
    for n in 0..3u8 {
        packetizer.packetize_into(&[SPS, PPS, &idr(20, n)], u32::from(n) * 3000, &mut packets);
    }
    let mut d = H264Depacketizer::new();
    let out = feed(&mut d, &packets);
    let param_events = out
        .iter()
        .filter(|e| matches!(e, H264Event::ParameterSets { .. }))
        .count();
    assert_eq!((out.len(), param_events), (4, 1));
}

#[test]
fn sps_change_mid_stream_emits_new_parameter_sets_before_its_idr() {
    let (i1, p1, i2) = (idr(20, 1), slice(20, 2), idr(20, 3));
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 0);
    let mut packets = packetizer.packetize(&[SPS, PPS, &i1], 0);
    packets.extend(packetizer.packetize(&[&p1], 3000));
    packets.extend(packetizer.packetize(&[SPS_720P, PPS, &i2], 6000));
    let mut d = H264Depacketizer::new();
    assert_eq!(
        feed(&mut d, &packets),
        vec![
            params(SPS, PPS),
            frame(0, true, &[&i1]),
            frame(3000, false, &[&p1]),
            params(SPS_720P, PPS),
            frame(6000, true, &[&i2]),
        ]
    );
}

#[test]
fn missing_marker_bit_is_closed_by_the_next_timestamp() {
    let (i, p) = (idr(20, 1), slice(20, 2));
    let mut d = H264Depacketizer::new();
    d.set_sprop_parameter_sets("Z0LAH9oBQBbo,aM48gA==").unwrap();
    let first = feed(&mut d, &[pkt(1, 3000, false, &i)]);
    assert_eq!(first, vec![], "the access unit may still continue");
    let out = feed(&mut d, &[pkt(2, 6000, false, &p), pkt(3, 9000, false, &p)]);
    assert_eq!(
        out,
        vec![
            params(SPS, PPS),
            frame(3000, true, &[&i]),
            frame(6000, false, &[&p])
        ]
    );
}

#[test]
fn multi_slice_access_unit_keeps_every_slice_in_order() {
    let (a, b, c) = (idr(1500, 1), idr(900, 2), idr(1800, 3));
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 0);
    let packets = packetizer.packetize(&[SPS, PPS, &a, &b, &c], 0);
    let mut d = H264Depacketizer::new();
    assert_eq!(
        feed(&mut d, &packets),
        vec![params(SPS, PPS), frame(0, true, &[&a, &b, &c])]
    );
}

#[test]
fn sequence_wrap_in_the_middle_of_an_access_unit() {
    let i = idr(4000, 9);
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 65534);
    let packets = packetizer.packetize(&[SPS, PPS, &i], 77);
    let seqs: Vec<u16> = packets.iter().map(|p| p.sequence).collect();
    assert_eq!(seqs, vec![65534, 65535, 0, 1, 2]);
    let mut d = H264Depacketizer::new();
    assert_eq!(
        feed(&mut d, &packets),
        vec![params(SPS, PPS), frame(77, true, &[&i])]
    );
}

#[test]
fn timestamp_wrap_keeps_pts_increasing() {
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 0);
    let mut packets = packetizer.packetize(&[SPS, PPS, &idr(20, 0)], 0xFFFF_F000);
    for n in 1..4u32 {
        let ts = 0xFFFF_F000u32.wrapping_add(n * 3000);
        packets.extend(packetizer.packetize(&[&slice(20, n as u8)], ts));
    }
    let mut d = H264Depacketizer::new();
    let pts: Vec<i64> = feed(&mut d, &packets)
        .into_iter()
        .filter_map(|e| match e {
            H264Event::AccessUnit(f) => Some(f.pts),
            _ => None,
        })
        .collect();
    let first = 0xFFFF_F000i64;
    assert_eq!(pts, vec![first, first + 3000, first + 6000, first + 9000]);
}

#[test]
fn empty_and_padding_only_packets_are_ignored() {
    let i = idr(20, 1);
    let mut d = H264Depacketizer::new();
    let out = feed(
        &mut d,
        &[
            pkt(1, 3000, false, SPS),
            pkt(2, 3000, false, PPS),
            pkt(3, 99_999, false, &[]), // a padding-only probe with an odd timestamp
            pkt(4, 3000, true, &i),
        ],
    );
    assert_eq!(out, vec![params(SPS, PPS), frame(3000, true, &[&i])]);
}

#[test]
fn reserved_nal_types_are_ignored() {
    let i = idr(20, 1);
    let mut d = H264Depacketizer::new();
    d.set_sprop_parameter_sets("Z0LAH9oBQBbo,aM48gA==").unwrap();
    let out = feed(
        &mut d,
        &[pkt(1, 0, false, &[0x1e, 1, 2]), pkt(2, 0, true, &i)],
    );
    assert_eq!(out, vec![params(SPS, PPS), frame(0, true, &[&i])]);
}

#[test]
fn stap_a_with_zero_size_entry_skips_it() {
    let i = idr(5, 1);
    let mut payload = vec![0x78, 0, 0];
    for n in [SPS, PPS, &i[..]] {
        payload.extend_from_slice(&(n.len() as u16).to_be_bytes());
        payload.extend_from_slice(n);
    }
    let mut d = H264Depacketizer::new();
    assert_eq!(
        feed(&mut d, &[pkt(1, 0, true, &payload)]),
        vec![params(SPS, PPS), frame(0, true, &[&i])]
    );
}

#[test]
fn access_unit_buffer_is_reused_without_corrupting_earlier_frames() {
    let frames: Vec<Vec<u8>> = (0..5u8).map(|n| slice(3000 + usize::from(n), n)).collect();
    let mut packetizer = H264Packetizer::new(1200, 102, 1, 0);
    let mut packets = packetizer.packetize(&[SPS, PPS, &idr(2000, 9)], 0);
    for (n, f) in frames.iter().enumerate() {
        packets.extend(packetizer.packetize(&[f], (n as u32 + 1) * 3000));
    }
    let mut d = H264Depacketizer::new();
    let out = feed(&mut d, &packets);
    // Frames are held across later pushes: each must still hold its own bytes.
    for (n, f) in frames.iter().enumerate() {
        assert_eq!(out[n + 2], frame((n as i64 + 1) * 3000, false, &[f]));
    }
}
