//! Timing tests of [`OpusToAac`]: 960-sample packets onto the 1024-sample AAC grid, loss,
//! jitter, hours without drift (scripted codecs), and alignment through the real codecs.

use super::scripted_codecs::*;
use super::*;

#[test]
fn forty_eight_opus_packets_make_45_aac_frames_minus_priming() {
    let mut r = rig();
    let anchor = 7_777_777;
    for i in 0..48 {
        r.t.push(frame(anchor + i * STEP, packet(i as u8)));
    }
    // 48 * 960 = 46080 samples = 45 frames of 1024; the first is priming.
    let frames = drain(&mut r.t);
    assert_eq!(frames.len(), 44);
    assert_grid(&frames, anchor);
    assert_eq!(frames[0].pts, anchor);
    // The encoder's frame 1 is the first one out: its bytes are our counter's.
    assert_eq!(&frames[0].data[..], &1u64.to_be_bytes());
    assert_eq!(r.t.end_pts(), Some(anchor + 48 * STEP));
    assert_eq!(r.t.stats().decoded_samples, 46_080);
}

#[test]
fn aac_frames_follow_the_sample_count_not_opus_timestamps() {
    // 1024-sample frames land between 960-sample packets: frame k starts at k*1024-1024
    // samples = (k-1) * 1920 ticks, which no Opus pts equals after the first.
    let mut r = rig();
    for i in 0..16 {
        r.t.push(frame(i * STEP, packet(1)));
    }
    let pts: Vec<i64> = drain(&mut r.t).iter().map(|f| f.pts).collect();
    assert_eq!(pts, (0..14).map(|j| j * 1920).collect::<Vec<_>>());
}

#[test]
fn one_lost_packet_is_rebuilt_through_fec_of_the_next() {
    let mut r = rig();
    r.t.push(frame(0, packet(1)));
    r.t.push(OpusEvent::Lost {
        last_pts: 0,
        next_pts: 2 * STEP,
    });
    r.t.push(frame(2 * STEP, packet(3)));
    assert_eq!(
        *r.calls.lock().unwrap(),
        vec![Call::Decode(1), Call::Recover(3, 960), Call::Decode(3)]
    );
    assert_eq!(
        *r.input.lock().unwrap(),
        vec![(1.0 / 256.0, 960), (RECOVERED, 960), (3.0 / 256.0, 960)]
    );
}

#[test]
fn burst_loss_is_concealed_per_20_ms_then_fec_for_the_last_packet() {
    let mut r = rig();
    r.t.push(frame(0, packet(1)));
    r.t.push(OpusEvent::Lost {
        last_pts: 0,
        next_pts: 4 * STEP,
    });
    r.t.push(frame(4 * STEP, packet(5)));
    assert_eq!(
        *r.calls.lock().unwrap(),
        vec![
            Call::Decode(1),
            Call::Conceal(960),
            Call::Conceal(960),
            Call::Recover(5, 960),
            Call::Decode(5)
        ]
    );
    assert_eq!(r.t.end_pts(), Some(5 * STEP));
    assert_eq!(r.t.stats().concealed_samples, 1920);
    assert_eq!(r.t.stats().fec_samples, 960);
}

#[test]
fn loss_keeps_the_frame_count_exact() {
    let mut r = rig();
    let anchor = 90_000;
    let mut last = 0;
    for i in 0..48i64 {
        if [7, 8, 20, 33].contains(&i) {
            continue;
        }
        if i - last > 1 {
            r.t.push(OpusEvent::Lost {
                last_pts: anchor + last * STEP,
                next_pts: anchor + i * STEP,
            });
        }
        r.t.push(frame(anchor + i * STEP, packet(i as u8)));
        last = i;
    }
    let frames = drain(&mut r.t);
    assert_eq!(frames.len(), 44);
    assert_grid(&frames, anchor);
    let s = r.t.stats();
    assert_eq!(
        s.decoded_samples + s.concealed_samples + s.fec_samples,
        46_080
    );
}

#[test]
fn jittered_timestamps_are_neither_filled_nor_trimmed() {
    // A publisher stamping from a wall clock: each pts off by up to +-4 ms.
    let mut r = rig();
    let mut seed = 99u64;
    for i in 0..48i64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = (seed >> 33) as i64 % 721 - 360; // +-360 ticks = +-192 samples
        let pts = if i == 0 { 0 } else { i * STEP + jitter };
        r.t.push(frame(pts, packet(i as u8)));
    }
    let frames = drain(&mut r.t);
    assert_eq!(frames.len(), 44);
    assert_grid(&frames, 0);
    let s = r.t.stats();
    assert_eq!(
        (s.concealed_samples, s.silence_samples, s.skipped_samples),
        (0, 0, 0)
    );
}

#[test]
fn corrupt_packet_is_concealed_like_a_lost_one() {
    let mut r = rig();
    r.t.push(frame(0, packet(1)));
    r.t.push(frame(STEP, packet(0xEE)));
    r.t.push(frame(2 * STEP, packet(3)));
    assert_eq!(
        *r.calls.lock().unwrap(),
        vec![Call::Decode(1), Call::Recover(3, 960), Call::Decode(3)]
    );
    assert_eq!(r.t.stats().decode_errors, 1);
    assert_eq!(r.t.end_pts(), Some(3 * STEP));
}

#[test]
fn encoder_failure_restarts_the_grid_without_shifting_later_frames() {
    // The 10th encode call fails: its samples and the encoder's buffer are lost, then the
    // encoder primes again. Frames after that still sit at their true sample positions.
    let mut r = rig_with(false, Some(10));
    for i in 0..100 {
        r.t.push(frame(i * STEP, packet(1)));
    }
    let frames = drain(&mut r.t);
    assert_eq!(r.t.stats().encode_errors, 1);
    let pts: Vec<i64> = frames.iter().map(|f| f.pts).collect();
    assert!(pts.windows(2).all(|w| w[1] - w[0] >= 1920));
    // The restart grid begins at 10 * 960 samples: frames on it are 9600 + j*1024 - 1024.
    let restarted: Vec<i64> = pts
        .iter()
        .copied()
        .filter(|&p| p >= 9600 * 15 / 8)
        .collect();
    for (j, p) in restarted.iter().enumerate() {
        assert_eq!(*p, (9600 + j as i64 * 1024) * 15 / 8);
    }
    assert_eq!(restarted.len() as i64, (100 * 960 - 9600) / 1024 - 1);
}

#[test]
fn other_codecs_are_ignored() {
    let mut r = rig();
    r.t.push(OpusEvent::Frame(Frame {
        codec: Codec::H264,
        pts: 0,
        dts: 0,
        keyframe: true,
        data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
    }));
    assert_eq!(r.t.end_pts(), None);
    assert_eq!(r.t.stats().packets, 0);
}

#[test]
fn loss_before_the_first_packet_is_not_concealed() {
    let mut r = rig();
    r.t.push(OpusEvent::Lost {
        last_pts: 0,
        next_pts: 0,
    });
    r.t.push(frame(5 * STEP, packet(1)));
    assert_eq!(*r.calls.lock().unwrap(), vec![Call::Decode(1)]);
}

#[test]
fn three_hours_of_20_ms_packets_with_1_percent_loss_do_not_drift() {
    let mut r = rig_with(false, None);
    let anchor: i64 = 4_000_000_123; // a late start on the unwrapped clock
    let packets: i64 = 3 * 3600 * 50;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut last_sent: Option<i64> = None;
    let mut k: i64 = 1;
    let data = packet(1);
    for i in 0..packets {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let lost = i > 0 && i < packets - 1 && seed.is_multiple_of(100);
        if lost {
            continue;
        }
        let pts = anchor + i * STEP;
        if let Some(prev) = last_sent {
            if prev != i - 1 {
                r.t.push(OpusEvent::Lost {
                    last_pts: anchor + prev * STEP,
                    next_pts: pts,
                });
            }
        }
        r.t.push(frame(pts, data.clone()));
        last_sent = Some(i);
        while let Some(f) = r.t.poll() {
            assert_eq!(f.pts, anchor + (k * 1024 - 1024) * 15 / 8, "frame {k}");
            k += 1;
        }
    }
    let total = packets * 960;
    assert_eq!(r.t.end_pts(), Some(anchor + packets * STEP));
    assert_eq!(k - 1, total / 1024 - 1);
    let s = r.t.stats();
    assert!(s.fec_samples > 0);
    assert_eq!(
        (s.decoded_samples + s.concealed_samples + s.fec_samples) as i64,
        total
    );
}

#[test]
fn channel_mismatch_between_codecs_is_refused() {
    let decoder = scripted_decoder(1, None);
    let encoder = counting_encoder(2, None, None);
    assert!(matches!(
        OpusToAac::with_codecs(Box::new(decoder), Box::new(encoder)),
        Err(AudioError::Channels(1))
    ));
}

#[test]
fn config_follows_the_first_packets_stereo_flag() {
    assert_eq!(TranscodeConfig::for_packet(&[0xfc, 1]).channels, 2);
    assert_eq!(TranscodeConfig::for_packet(&[0x78, 1]).channels, 1);
    assert_eq!(TranscodeConfig::default().effective_bitrate(), 128_000);
    let mono = TranscodeConfig {
        channels: 1,
        bitrate: None,
    };
    assert_eq!(mono.effective_bitrate(), 64_000);
}

#[test]
fn real_codecs_report_48k_and_the_source_channels() {
    let t = OpusToAac::new(TranscodeConfig {
        channels: 1,
        bitrate: Some(48_000),
    })
    .unwrap();
    assert_eq!(
        (t.sample_rate(), t.channels(), t.delay_samples()),
        (48_000, 1, 1024)
    );
    assert_eq!(&t.audio_specific_config()[..], &[0x11, 0x88]);
    assert!(OpusToAac::new(TranscodeConfig {
        channels: 3,
        bitrate: None
    })
    .is_err());
}

#[test]
fn real_codecs_keep_a_chirp_sample_aligned_through_loss() {
    // No FFmpeg needed: opus-rs encodes, we transcode with 2 packets lost, syom's own
    // decoder plays the AAC back. Its sample i must line up with Opus sample i.
    use super::test_support::*;
    let pcm: Vec<f32> = (0..48_000)
        .flat_map(|i| {
            let t = i as f32 / 48_000.0;
            let x = 0.4 * (2.0 * std::f32::consts::PI * (300.0 + 1500.0 * t) * t).sin();
            [x, -x]
        })
        .collect();
    let packets = opus_encode(&pcm, 2);
    let dropped = |i: usize| i % 50 == 17 || i % 50 == 18;
    let (frames, t) = transcode(events(&packets, 555, dropped), 2);
    assert_eq!(t.stats().concealed_samples + t.stats().fec_samples, 2 * 960);
    assert_grid(&frames, 555);
    let adts_file: Vec<u8> = frames.iter().flat_map(|f| adts(&f.data, 2)).collect();
    let decoded = syom::decode_with(&adts_file, &syom::DecodeOptions::unbounded()).unwrap();
    assert_eq!(decoded.channels.len(), 2);
    let reference = opus_reference(&packets, 2);
    for (c, plane) in decoded.channels.iter().enumerate() {
        let want = channel(&reference, 2, c);
        // At 0.2 s and 0.78 s, either side of the loss at 0.34-0.38 s.
        for from in [9_600, 37_440] {
            assert_eq!(
                best_lag(&want, plane, from, 2_400, 1_200),
                0,
                "ch {c} at {from}"
            );
        }
    }
}
