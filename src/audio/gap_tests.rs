//! Gap tests of [`OpusToAac`]: DTX, long silences, `fill_until` during a mute, duplicates,
//! timestamp jumps and the end-of-stream flush (scripted codecs).

use super::scripted_codecs::*;
use super::*;

#[test]
fn dtx_gap_without_loss_is_concealed_to_the_next_packet() {
    // DTX: timestamps jump 400 ms, sequence numbers do not (no Lost event).
    let mut r = rig();
    r.t.push(frame(0, packet(1)));
    r.t.push(frame(21 * STEP, packet(2)));
    let s = r.t.stats();
    assert_eq!(s.concealed_samples, 20 * 960);
    assert_eq!(s.fec_samples, 0);
    assert_eq!(r.t.end_pts(), Some(22 * STEP));
}

#[test]
fn gap_longer_than_a_second_fades_for_100_ms_then_is_silent() {
    let mut r = rig();
    r.t.push(frame(0, packet(1)));
    // 3 s of nothing, then a packet (after loss: no FEC for such a gap).
    r.t.push(OpusEvent::Lost {
        last_pts: 0,
        next_pts: 151 * STEP,
    });
    r.t.push(frame(151 * STEP, packet(2)));
    let s = r.t.stats();
    assert_eq!(s.concealed_samples, 4800);
    assert_eq!(s.silence_samples, 150 * 960 - 4800);
    assert_eq!(s.fec_samples, 0);
    let input = r.input.lock().unwrap();
    assert_eq!(input[1], (CONCEALED, 4800));
    assert_eq!(input[2], (0.0, 150 * 960 - 4800));
}

#[test]
fn fill_until_during_a_mute_keeps_audio_in_pace_and_resumes_without_overlap() {
    let mut r = rig();
    let anchor = 1_000;
    for i in 0..50 {
        r.t.push(frame(anchor + i * STEP, packet(1)));
    }
    // Muted for 5 s; the hub reports video progress every 33 ms.
    let mut now = anchor + 50 * STEP;
    let resume = now + 5 * 90_000;
    while now < resume {
        r.t.fill_until(now);
        let end = r.t.end_pts().unwrap();
        assert!(
            now - end <= DEFAULT_STALL_THRESHOLD,
            "audio at {end}, media at {now}"
        );
        now += 3000;
    }
    assert!(r.t.stats().silence_samples > 0);
    // The publisher comes back: its first packets fall inside the filled span.
    let end_before = r.t.end_pts().unwrap();
    let first_back = anchor + 50 * STEP + 250 * STEP - 20 * STEP;
    for i in 0..40 {
        r.t.push(frame(first_back + i * STEP, packet(2)));
    }
    let covered = ticks_to_samples(end_before - first_back) as u64;
    assert_eq!(r.t.stats().skipped_samples, covered);
    assert_eq!(r.t.end_pts(), Some(first_back + 40 * STEP));
    let frames = drain(&mut r.t);
    assert_grid(&frames, anchor);
    let s = r.t.stats();
    let total = s.decoded_samples + s.concealed_samples + s.silence_samples;
    assert_eq!(
        total as i64,
        ticks_to_samples(first_back + 40 * STEP - anchor)
    );
    assert_eq!(frames.len() as i64, total as i64 / 1024 - 1);
}

#[test]
fn fill_until_short_of_the_threshold_does_nothing() {
    let mut r = rig();
    assert_eq!(r.t.end_pts(), None);
    r.t.fill_until(1_000_000); // no audio yet: nothing to anchor on
    assert_eq!(r.t.end_pts(), None);
    r.t.push(frame(0, packet(1)));
    r.t.fill_until(STEP + DEFAULT_STALL_THRESHOLD);
    assert_eq!(r.t.end_pts(), Some(STEP));
    r.t.fill_until(STEP + DEFAULT_STALL_THRESHOLD + 1800);
    assert_eq!(r.t.end_pts(), Some(2 * STEP + DEFAULT_STALL_THRESHOLD));
}

#[test]
fn stall_threshold_is_configurable() {
    let mut r = rig();
    r.t = r.t.with_stall_threshold(0);
    r.t.push(frame(0, packet(1)));
    r.t.fill_until(2 * STEP);
    assert_eq!(r.t.end_pts(), Some(2 * STEP));
}

#[test]
fn a_huge_fill_request_is_bounded_per_call() {
    let mut r = rig_with(false, None);
    r.t.push(frame(0, packet(1)));
    r.t.fill_until(3600 * 90_000);
    assert_eq!(r.t.end_pts(), Some(STEP + 10 * 90_000));
}

#[test]
fn timestamp_jumps_are_bridged_without_filling_or_skipping() {
    let mut r = rig();
    r.t.push(frame(0, packet(1)));
    r.t.push(frame(STEP + 3600 * 90_000, packet(2))); // +1 h: a broken clock
    r.t.push(frame(2 * STEP + 3600 * 90_000, packet(3)));
    r.t.push(frame(-50 * 90_000, packet(4))); // then back by more than an hour
    r.t.push(frame(-50 * 90_000 + STEP, packet(5)));
    let s = r.t.stats();
    assert_eq!(s.discontinuities, 2);
    assert_eq!(s.decoded_samples, 5 * 960);
    assert_eq!(
        (s.concealed_samples, s.silence_samples, s.skipped_samples),
        (0, 0, 0)
    );
    assert_grid(&drain(&mut r.t), 0);
}

#[test]
fn duplicate_packet_is_dropped_by_the_timeline() {
    let mut r = rig();
    r.t.push(frame(0, packet(1)));
    r.t.push(frame(STEP, packet(2)));
    r.t.push(frame(STEP, packet(2)));
    r.t.push(frame(2 * STEP, packet(3)));
    assert_eq!(r.t.stats().skipped_samples, 960);
    assert_eq!(r.t.end_pts(), Some(3 * STEP));
}

#[test]
fn finish_flushes_every_fed_sample_into_frames() {
    let mut r = rig();
    for i in 0..48 {
        r.t.push(frame(i * STEP, packet(1)));
    }
    r.t.finish();
    let frames = drain(&mut r.t);
    assert_grid(&frames, 0);
    // 46080 samples need frames up to one ending at or after 46080: 45 frames (k = 1..=45).
    assert_eq!(frames.len(), 45);
    assert_eq!(frames[44].pts + 1920, 46_080 * 15 / 8);
    r.t.finish(); // nothing left to flush
    assert!(r.t.poll().is_none());
}
