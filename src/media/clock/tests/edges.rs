//! Edge cases of single calls: RTP/NTP wrap arithmetic, hand-over order, stalls,
//! re-registration, whole frames, hostile input.

use std::time::Instant;

use super::*;
use crate::media::clock::{extend_report_rtp, ntp_ticks_since};
use crate::media::{Codec, Frame};

#[test]
fn report_rtp_time_is_extended_into_the_nearest_cycle_of_the_frames() {
    // A frame just after the wrap (extended 2^32 + 100), a report from just before it.
    let frame = (1i64 << 32) + 100;
    assert_eq!(
        extend_report_rtp(u32::MAX - 899, frame, 90_000),
        frame - 1_000
    );
    // And the other way round: frame before the wrap, report after it.
    assert_eq!(
        extend_report_rtp(50, (1 << 32) - 10, 90_000),
        (1 << 32) + 50
    );
    // Opus: 48 kHz report times are converted as the depacketizer converts (x 15/8, down).
    let frame = opus_ticks_to_media((1i64 << 32) + 960);
    assert_eq!(
        extend_report_rtp(u32::MAX - 7, frame, 48_000),
        opus_ticks_to_media((1i64 << 32) - 8)
    );
    // Negative extended times (the unwrapper steps below 0 for a late packet) work too.
    assert_eq!(extend_report_rtp(u32::MAX, -5, 90_000), -1);
}

#[test]
fn ntp_differences_survive_the_2036_era_rollover() {
    let before = 0xFFFF_FFFF_8000_0000; // half a second before the rollover
    let after = 0x0000_0000_8000_0000; // half a second after it
    assert_eq!(ntp_ticks_since(before, after), SECOND);
    assert_eq!(ntp_ticks_since(after, before), -SECOND);
}

#[test]
fn video_that_never_sends_a_report_leaves_audio_placed_by_arrival() {
    let t0 = Instant::now();
    let mut clock = MediaClock::new();
    let ms = |n: u64| instant(t0, n as i64 * MS);
    assert_eq!(clock.map(TrackId::Video, 1_000_000, ms(0)), 0);
    assert_eq!(clock.map(TrackId::Audio, 77, ms(30)), 30 * MS);
    clock.on_sender_report(TrackId::Audio, 0xE9C1_2F80_0000_0000, 4_000, ms(35));
    assert_eq!(clock.map(TrackId::Video, 1_003_000, ms(33)), 3_000);
    assert_eq!(
        clock.map(TrackId::Audio, 77 + 1_800, ms(50)),
        30 * MS + 1_800
    );
    assert_eq!(clock.sync_state(), SyncState::ByArrival);
}

#[test]
fn frames_handed_over_out_of_arrival_order_across_tracks_are_never_negative() {
    // Two tasks read the clock, then take turns on the lock: the audio frame stamped earlier
    // is mapped after the video frame that started the stream.
    let t0 = Instant::now();
    let mut clock = MediaClock::new();
    assert_eq!(clock.map(TrackId::Video, 500, instant(t0, 10 * MS)), 0);
    assert_eq!(clock.map(TrackId::Audio, 9_000, t0), 0);
    assert_eq!(
        clock.map(TrackId::Audio, 10_800, instant(t0, 20 * MS)),
        1_800
    );
}

#[test]
fn network_stall_then_burst_keeps_rtp_spacing() {
    // Video frames 0..30 on time, then nothing for 2 s while the sender queues, then the
    // queued frames arrive in a burst 1 ms apart: a stall, not a new timeline.
    let t0 = Instant::now();
    let mut clock = MediaClock::new();
    let mut outputs = Vec::new();
    for k in 0..90i64 {
        let arrival = if k < 30 {
            k * VIDEO_FRAME
        } else {
            30 * VIDEO_FRAME + 2 * SECOND + (k - 30) * MS
        };
        outputs.push(clock.map(
            TrackId::Video,
            7_000 + k * VIDEO_FRAME,
            instant(t0, arrival),
        ));
    }
    for (k, out) in outputs.iter().enumerate() {
        assert_eq!(*out, k as i64 * VIDEO_FRAME);
    }
}

#[test]
fn re_registering_a_track_starts_it_afresh_after_its_last_output() {
    let t0 = Instant::now();
    let mut clock = MediaClock::new();
    assert_eq!(clock.map(TrackId::Audio, 1_000, t0), 0);
    assert_eq!(
        clock.map(TrackId::Audio, 2_800, instant(t0, 20 * MS)),
        1_800
    );
    // A new SSRC whose timestamps happen to be close to the old ones.
    clock.register_track(TrackId::Audio, 48_000);
    assert_eq!(
        clock.map(TrackId::Audio, 2_900, instant(t0, 500 * MS)),
        500 * MS
    );
    assert_eq!(
        clock.map(TrackId::Audio, 4_700, instant(t0, 520 * MS)),
        500 * MS + 1_800
    );
}

#[test]
fn map_frame_moves_dts_and_keeps_the_composition_offset() {
    let t0 = Instant::now();
    let mut clock = MediaClock::new();
    let frame = |pts, dts| Frame {
        codec: Codec::H264,
        pts,
        dts,
        keyframe: true,
        data: bytes::Bytes::from_static(&[0, 0, 0, 1, 0x65]),
    };
    let first = clock.map_frame(frame(900_000, 900_000), t0);
    assert_eq!((first.pts, first.dts), (0, 0));
    let second = clock.map_frame(frame(906_000, 903_000), instant(t0, 34 * MS));
    assert_eq!((second.pts, second.dts), (6_000, 3_000));
}

#[test]
fn hostile_timestamps_and_reports_never_panic_or_run_backwards() {
    let t0 = Instant::now();
    let mut clock = MediaClock::new();
    clock.register_track(TrackId::Audio, 0);
    clock.register_track(TrackId::Video, u32::MAX);
    let values = [
        i64::MIN,
        i64::MAX,
        0,
        -1,
        i64::MAX / 2,
        i64::MIN / 3,
        1 << 40,
    ];
    let mut last = [0i64; 2];
    for (k, pts) in values.iter().cycle().take(60).enumerate() {
        let track = if k % 3 == 0 {
            TrackId::Audio
        } else {
            TrackId::Video
        };
        if k % 4 == 0 {
            clock.on_sender_report(track, u64::MAX - k as u64, k as u32, t0);
        }
        if k % 5 == 0 {
            clock.on_sender_report(TrackId::Audio, k as u64, u32::MAX, t0);
        }
        let arrival = if k % 7 == 0 {
            t0
        } else {
            instant(t0, k as i64 * 997)
        };
        let out = clock.map(track, *pts, arrival);
        let i = track.index();
        assert!(out >= 0 && out >= last[i], "{k}: {out} after {}", last[i]);
        last[i] = out;
        let _ = clock.sync_state();
    }
}
