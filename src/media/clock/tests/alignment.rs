//! Simulated publishes: arrival placement, sender reports early, late, jumping and wrapping,
//! encoder restarts, audio-only.

use super::*;

#[test]
fn no_sender_reports_places_tracks_by_arrival_and_follows_rtp_through_jitter() {
    let p = Publisher {
        video_delay: 50 * MS,
        audio_delay: 20 * MS,
        jitter: 15 * MS,
        ..publisher()
    };
    let run = p.run();
    let video = run.track(TrackId::Video);
    let audio = run.track(TrackId::Audio);
    // The first frame of the stream (audio, 20 ms after capture) is at 0; the first video
    // frame arrived 30 ms later (50 ms delay) and sits 30 ms later, both captured at 0.
    assert_eq!(audio[0].out, 0);
    assert!((video[0].out - 30 * MS).abs() <= 1, "{:?}", video[0]);
    // Then each follows its RTP time, not its jittery arrival, and never goes backwards.
    assert_follows_rtp(&video);
    assert_follows_rtp(&audio);
    assert_monotonic_and_bounded_slew(&audio);
    assert!(run.outputs.iter().all(|o| o.state == SyncState::ByArrival));
    // Audio captured with the video is 30 ms early on the stream: what arrival times said.
    assert!(run
        .audio_errors()
        .iter()
        .all(|(_, e)| (e + 30 * MS).abs() <= 1));
}

#[test]
fn reports_after_three_seconds_slew_audio_onto_the_sender_alignment() {
    // Audio takes 120 ms longer to arrive than video (a deeper jitter buffer at the sender,
    // say): arrival placement puts it 120 ms late. The reports reveal it.
    let p = Publisher {
        video_delay: 40 * MS,
        audio_delay: 160 * MS,
        jitter: 10 * MS,
        first_report: Some(2_900 * MS),
        ..publisher()
    };
    let run = p.run();
    assert_follows_rtp(&run.track(TrackId::Video));
    assert_monotonic_and_bounded_slew(&run.track(TrackId::Audio));
    // 120 ms at 1/20 of the media time is 2.4 s of audio after the reports arrive (3.06 s).
    let initial = assert_converges(&run, 3_060 * MS, 5_500 * MS);
    assert!((initial - 120 * MS).abs() <= ROUNDING, "{initial}");
}

#[test]
fn first_reports_ten_seconds_in_still_align_without_a_jump() {
    // Audio arrives 80 ms earlier than video: arrival placement puts it 80 ms early, and the
    // correction moves it later (the other direction from the test above).
    let p = Publisher {
        video_delay: 120 * MS,
        audio_delay: 40 * MS,
        first_report: Some(10 * SECOND),
        duration: 20 * SECOND,
        ..publisher()
    };
    let run = p.run();
    assert_follows_rtp(&run.track(TrackId::Video));
    assert_monotonic_and_bounded_slew(&run.track(TrackId::Audio));
    let initial = assert_converges(&run, 10 * SECOND + 120 * MS, 11_800 * MS);
    assert!((initial + 80 * MS).abs() <= ROUNDING, "{initial}");
}

#[test]
fn reports_that_arrive_before_the_first_frames_are_used_once_frames_come() {
    let p = Publisher {
        audio_delay: 100 * MS,
        first_report: Some(0),
        report_head_start: 30 * MS,
        duration: 6 * SECOND,
        ..publisher()
    };
    let run = p.run();
    assert_monotonic_and_bounded_slew(&run.track(TrackId::Audio));
    // 60 ms of correction from the very first frames: 1.2 s of audio.
    assert_converges(&run, 0, 1_400 * MS);
}

#[test]
fn audio_encoder_restart_reanchors_audio_by_arrival_then_realigns() {
    // Aligned after the first reports; at 8 s the audio encoder restarts with a new random
    // RTP base (its reports follow the new base). Audio arrives 100 ms after the video.
    let p = Publisher {
        audio_delay: 140 * MS,
        first_report: Some(AUDIO_FRAME),
        audio_report_every: SECOND,
        audio_restart: Some((8 * SECOND, 0xF00D_0001)),
        duration: 16 * SECOND,
        ..publisher()
    };
    let run = p.run();
    let audio = run.track(TrackId::Audio);
    let errors = run.audio_errors();
    let restart = audio.iter().position(|o| o.capture == 8 * SECOND).unwrap();
    // Locked before the restart.
    assert!(errors[restart - 1].1.abs() <= ROUNDING);
    // The new timeline starts where its arrival says (100 ms late, as arrival placement
    // had it), not hours away where the new RTP base would put it, nor backwards.
    assert!(
        (errors[restart].1 - 100 * MS).abs() <= ROUNDING,
        "{:?}",
        errors[restart]
    );
    assert_monotonic_and_bounded_slew(&audio[..restart]);
    assert_monotonic_and_bounded_slew(&audio[restart..]);
    assert!(audio[restart].out > audio[restart - 1].out);
    // Realigned from the new reports, slewing 100 ms (2 s of audio) rather than minutes.
    for (capture, error) in &errors[restart..] {
        if *capture >= 8 * SECOND + 3 * SECOND {
            assert!(error.abs() <= ROUNDING, "{capture}: {error}");
        }
    }
    assert_eq!(audio.last().map(|o| o.state), Some(SyncState::Locked));
}

#[test]
fn a_report_clock_step_on_one_track_is_held_not_slewed() {
    // The sender's wall clock steps 5 s forward: video reports show it from 6 s, audio
    // reports only from 9 s. In between, the reports disagree by 5 s: the audio must not
    // start a 100 s slew towards that, and once both show the step it is aligned as before.
    let p = Publisher {
        audio_delay: 100 * MS,
        first_report: Some(0),
        audio_report_every: SECOND,
        video_ntp_step: Some((6 * SECOND, 5 * SECOND)),
        audio_ntp_step: Some((9 * SECOND, 5 * SECOND)),
        duration: 14 * SECOND,
        ..publisher()
    };
    let run = p.run();
    let audio = run.track(TrackId::Audio);
    assert_monotonic_and_bounded_slew(&audio);
    for (o, (_, error)) in audio.iter().zip(run.audio_errors()) {
        if o.capture >= 2 * SECOND {
            assert!(
                error.abs() <= ROUNDING,
                "moved by a clock step: {error} at {o:?}"
            );
        }
    }
    assert!(audio.iter().any(
        |o| matches!(o.state, SyncState::Mismatch { by } if (by + 5 * SECOND).abs() <= ROUNDING)
    ));
    assert_eq!(audio.last().map(|o| o.state), Some(SyncState::Locked));
}

#[test]
fn rtp_timestamps_wrapping_between_reports_keep_the_lock() {
    // Both RTP clocks pass 2^32 a few seconds in (video at 2 s, audio at 3 s). One report of
    // each track is sent just before its wrap and only taken up by the first frame after it
    // (video: sent at 1.989 s, frame of 2 s; audio: 2.990 s, frame of 3 s), so its 32-bit time
    // must be extended into the previous cycle of the frames, not theirs.
    let p = Publisher {
        video_base: u32::MAX - 2 * 90_000 + 17,
        audio_base: u32::MAX - 3 * 48_000 + 5,
        audio_delay: 70 * MS,
        first_report: Some(500 * MS),
        video_report_every: 67_000,
        audio_report_every: 74_700,
        duration: 8 * SECOND,
        ..publisher()
    };
    let run = p.run();
    let video = run.track(TrackId::Video);
    assert!(
        video.last().unwrap().pts > i64::from(u32::MAX),
        "video did not wrap"
    );
    assert_follows_rtp(&video);
    assert_monotonic_and_bounded_slew(&run.track(TrackId::Audio));
    assert!(run
        .outputs
        .iter()
        .all(|o| !matches!(o.state, SyncState::Mismatch { .. })));
    assert_converges(&run, 560 * MS, 2_200 * MS);
}

#[test]
fn audio_only_stream_starts_at_zero_and_follows_its_rtp_whatever_its_reports() {
    let p = Publisher {
        video: false,
        jitter: 12 * MS,
        first_report: Some(SECOND),
        audio_report_every: SECOND,
        ..publisher()
    };
    let run = p.run();
    let audio = run.track(TrackId::Audio);
    assert_eq!(audio[0].out, 0);
    assert_follows_rtp(&audio);
    assert!(audio.iter().all(|o| o.state == SyncState::ByArrival));
}
