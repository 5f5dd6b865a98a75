//! Garbage in, no panic out: thousands of pseudo-random byte strings and mangled streams
//! (fixed seeds, so failures reproduce) through the parser, the reorder buffer and both
//! depacketizers. Whatever comes out must still be well-formed.

use std::time::{Duration, Instant};

use super::*;
use crate::rtp::{H264Packetizer, OpusDepacketizer, TrackEvent, TrackReceiver};

/// Checks every invariant a consumer relies on: parameter sets come first, frames are valid
/// AVCC without SPS/PPS/AUD, and `keyframe` means an IDR is inside.
fn assert_well_formed(events: &[H264Event]) {
    let mut have_params = false;
    for e in events {
        match e {
            H264Event::ParameterSets { sps, pps } => {
                assert_eq!(sps.first().map(|b| b & 0x1f), Some(7));
                assert_eq!(pps.first().map(|b| b & 0x1f), Some(8));
                have_params = true;
            }
            H264Event::AccessUnit(f) => {
                assert!(have_params, "frame before parameter sets");
                assert_eq!(f.pts, f.dts);
                let mut rest = &f.data[..];
                let mut has_idr = false;
                let mut has_slice = false;
                while !rest.is_empty() {
                    assert!(rest.len() >= 5, "truncated AVCC length or empty NAL");
                    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    assert!(
                        len >= 1 && len <= rest.len() - 4,
                        "AVCC length out of range"
                    );
                    let nal_type = rest[4] & 0x1f;
                    assert!(
                        ![7, 8, 9].contains(&nal_type),
                        "parameter set or AUD in frame"
                    );
                    has_idr |= nal_type == 5;
                    has_slice |= (1..=5).contains(&nal_type);
                    rest = &rest[4 + len..];
                }
                assert!(has_slice);
                assert_eq!(f.keyframe, has_idr);
            }
            H264Event::KeyframeNeeded => {}
        }
    }
}

/// A payload whose first byte is a NAL/packet type worth exercising.
fn random_payload(rng: &mut TestRng) -> Vec<u8> {
    const TYPES: [u8; 14] = [0, 1, 5, 6, 7, 8, 9, 24, 25, 26, 27, 28, 29, 31];
    let len = rng.below(48);
    let mut payload = rng.bytes(len);
    if let Some(first) = payload.first_mut() {
        *first = (*first & 0xe0) | TYPES[rng.below(TYPES.len())];
    }
    payload
}

#[test]
fn random_bytes_never_panic_the_parser_or_depacketizers() {
    let mut rng = TestRng::new(0xC0FFEE);
    let mut h264 = H264Depacketizer::new();
    let mut opus = OpusDepacketizer::new();
    let mut events = Vec::new();
    let mut parsed = 0;
    for _ in 0..5000 {
        let len = rng.below(64);
        let mut buf = rng.bytes(len);
        if let Some(b0) = buf.first_mut() {
            // Mostly version 2, often without CSRCs or extension, to get past the header.
            *b0 = match rng.below(4) {
                0 => *b0,
                1 => (*b0 & 0x3f) | 0x80,
                _ => 0x80 | (*b0 & 0x20),
            };
        }
        let Ok(p) = RtpPacket::parse(Bytes::from(buf)) else {
            continue;
        };
        assert!(p.payload.len() + 12 <= len);
        parsed += 1;
        h264.push(&p, rng.below(8) == 0);
        opus.push(&p, false);
        events.extend(std::iter::from_fn(|| h264.poll()));
        while opus.poll().is_some() {}
    }
    assert!(
        parsed > 1000,
        "the generator should get past the parser often ({parsed})"
    );
    assert_well_formed(&events);
}

#[test]
fn random_payloads_behind_valid_headers_never_panic_and_stay_well_formed() {
    let t0 = Instant::now();
    let mut rng = TestRng::new(42);
    let mut bare = H264Depacketizer::new();
    bare.set_sprop_parameter_sets("Z0LAH9oBQBbo,aM48gA==")
        .unwrap();
    let mut rx = TrackReceiver::h264_with_capacity(Duration::from_millis(50), 32);
    let (mut seq, mut ts) = (65_000u16, 0xFFFF_0000u32);
    let (mut bare_events, mut rx_events) = (Vec::new(), Vec::new());
    for n in 0..8000u64 {
        // Mostly forward, sometimes back, sometimes far.
        seq = match rng.below(20) {
            0 => seq.wrapping_sub(rng.below(40) as u16),
            1 => rng.next_u64() as u16,
            _ => seq.wrapping_add(1),
        };
        if rng.below(4) == 0 {
            ts = ts.wrapping_add(3000);
        }
        let p = pkt(seq, ts, rng.below(3) == 0, &random_payload(&mut rng));
        bare.push(&p, rng.below(10) == 0);
        bare_events.extend(std::iter::from_fn(|| bare.poll()));
        let now = t0 + Duration::from_millis(n);
        rx.push(p, now);
        rx.handle_timeout(now);
        rx_events.extend(std::iter::from_fn(|| rx.poll_event()).map(|e| match e {
            TrackEvent::H264(e) => e,
            other => panic!("opus event from an H.264 track: {other:?}"),
        }));
    }
    assert_well_formed(&bare_events);
    assert_well_formed(&rx_events);
}

#[test]
fn dropped_duplicated_and_swapped_packets_never_yield_a_damaged_frame() {
    // A valid stream mangled the ways a network does it, fed without a reorder buffer:
    // every frame that still comes out must be byte-identical to the access unit sent.
    let mut packetizer = H264Packetizer::new(300, 102, 3, 65_400);
    let mut originals = Vec::new();
    let mut packets = Vec::new();
    for n in 0..60u32 {
        let (nals, slices) = if n % 10 == 0 {
            let i = idr(700 + n as usize, n as u8);
            (vec![SPS.to_vec(), PPS.to_vec(), i.clone()], vec![i])
        } else {
            let p = slice(100 + (n as usize * 37) % 900, n as u8);
            (vec![p.clone()], vec![p])
        };
        let slices: Vec<&[u8]> = slices.iter().map(|v| &v[..]).collect();
        originals.push(avcc(&slices));
        packetizer.packetize_into(&nals, n * 3000, &mut packets);
    }
    let mut delivered = 0;
    for seed in 1..40u64 {
        let mut rng = TestRng::new(seed);
        let mut mangled: Vec<RtpPacket> = Vec::new();
        for p in &packets {
            match rng.below(60) {
                0 => {}
                1 => {
                    mangled.push(p.clone());
                    mangled.push(p.clone());
                }
                2 if mangled.len() >= 2 => {
                    let late = mangled.len() - 2;
                    let old = mangled[late].clone();
                    mangled.push(p.clone());
                    mangled.push(old);
                }
                3 if !mangled.is_empty() => {
                    let last = mangled.len() - 1;
                    mangled.push(p.clone());
                    mangled.swap(last, last + 1);
                }
                _ => mangled.push(p.clone()),
            }
        }
        let mut d = H264Depacketizer::new();
        let out = feed(&mut d, &mangled);
        assert_well_formed(&out);
        for e in &out {
            if let H264Event::AccessUnit(f) = e {
                assert_eq!(f.data, originals[(f.pts / 3000) as usize], "seed {seed}");
                delivered += 1;
            }
        }
    }
    assert!(
        delivered > 200,
        "most frames should survive light damage ({delivered})"
    );
}

#[test]
fn flipped_and_truncated_payloads_never_panic() {
    let mut packetizer = H264Packetizer::new(200, 102, 3, 0);
    let mut packets = Vec::new();
    for n in 0..40u32 {
        let nals = if n % 8 == 0 {
            vec![SPS.to_vec(), PPS.to_vec(), idr(900, n as u8)]
        } else {
            vec![SEI.to_vec(), slice(300, n as u8)]
        };
        packetizer.packetize_into(&nals, n * 3000, &mut packets);
    }
    for seed in 1..30u64 {
        let mut rng = TestRng::new(seed);
        let mut d = H264Depacketizer::new();
        let mut out = Vec::new();
        for p in &packets {
            let mut bytes = p.payload.to_vec();
            match rng.below(6) {
                0 => {
                    let at = rng.below(bytes.len());
                    bytes[at] ^= 1 << rng.below(8);
                }
                1 => bytes.truncate(rng.below(bytes.len())),
                _ => {}
            }
            d.push(
                &RtpPacket {
                    payload: Bytes::from(bytes),
                    ..p.clone()
                },
                false,
            );
            out.extend(std::iter::from_fn(|| d.poll()));
        }
        assert_well_formed(&out);
    }
}
