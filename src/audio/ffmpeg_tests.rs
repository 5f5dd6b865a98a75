//! End-to-end checks against FFmpeg as an independent encoder of the Opus input and decoder of
//! our AAC output (each test is skipped with a notice when FFmpeg is not installed).

use bytes::Bytes;

use super::test_support::*;
use crate::audio::{packet_samples, OpusDecoder, OpusRsDecoder};
use crate::client::ogg_opus::opus_packets;

/// Opus packets of an Ogg file FFmpeg made from `source` (lavfi) with extra encoder options.
fn opus_from_ffmpeg(ff: &Ffmpeg, source: &str, channels: u8, extra: &[&str]) -> Vec<Bytes> {
    let ogg = ff.path("in.ogg");
    let ac = channels.to_string();
    let mut args = vec!["-f", "lavfi", "-i", source, "-t", "2", "-ac", &ac];
    args.extend(["-c:a", "libopus", "-frame_duration", "20"]);
    args.extend(extra);
    args.push(ogg.to_str().unwrap());
    ff.run(&args);
    let file = std::fs::read(&ogg).unwrap();
    opus_packets(&file)
        .unwrap()
        .into_iter()
        .map(|p| p.data)
        .collect()
}

fn write_adts(ff: &Ffmpeg, frames: &[crate::media::Frame], channels: u8) -> std::path::PathBuf {
    let path = ff.path("out.aac");
    let bytes: Vec<u8> = frames
        .iter()
        .flat_map(|f| adts(&f.data, channels))
        .collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

fn field<'a>(probe: &'a [(String, String)], key: &str) -> &'a str {
    probe
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[test]
fn ffmpeg_opus_sine_becomes_aac_lc_48k_stereo_of_the_same_length_and_pitch() {
    let Some(ff) = ffmpeg("sine_stereo") else {
        return;
    };
    let packets = opus_from_ffmpeg(
        &ff,
        "sine=frequency=1000:sample_rate=48000",
        2,
        &["-b:a", "64k"],
    );
    let opus_samples: usize = packets.iter().map(|p| packet_samples(p).unwrap()).sum();
    let (frames, t) = transcode(events(&packets, 123_456_789, |_| false), 2);
    assert_eq!(&t.audio_specific_config()[..], &[0x11, 0x90]);
    let aac = write_adts(&ff, &frames, 2);

    let probe = ff.probe(&aac);
    assert_eq!(field(&probe, "codec_name"), "aac");
    assert_eq!(field(&probe, "profile"), "LC");
    assert_eq!(field(&probe, "sample_rate"), "48000");
    assert_eq!(field(&probe, "channels"), "2");
    assert_eq!(field(&probe, "nb_read_packets"), frames.len().to_string());

    let pcm = ff.decode(&aac);
    let decoded = pcm.len() / 2;
    // Every Opus sample is in the output, padded to whole AAC frames: within one frame.
    assert!(
        decoded >= opus_samples && decoded < opus_samples + 1024,
        "{decoded} samples decoded for {opus_samples} in"
    );
    let reference = opus_reference(&packets, 2);
    for c in 0..2 {
        let x = channel(&pcm, 2, c);
        let steady = &x[4800..decoded - 4800];
        let hz = zero_crossing_hz(steady);
        assert!((hz - 1000.0).abs() < 5.0, "channel {c}: {hz} Hz");
        // Same loudness as what an Opus receiver would play, within 0.5 dB.
        let want = rms(&channel(&reference, 2, c)[4800..decoded - 4800]);
        let db = 20.0 * (rms(steady) / want).log10();
        assert!(db.abs() < 0.5, "channel {c}: {db:.2} dB off the Opus level");
    }
}

#[test]
fn ffmpeg_decodes_our_aac_sample_aligned_with_the_opus_it_came_from() {
    // A chirp has one unambiguous alignment; a 21-43 ms late stamp would show as a lag.
    let Some(ff) = ffmpeg("chirp_mono") else {
        return;
    };
    let packets = opus_from_ffmpeg(
        &ff,
        "aevalsrc=0.4*sin(2*PI*(300+1500*t)*t):s=48000:d=2",
        1,
        &["-b:a", "64k"],
    );
    let (frames, t) = transcode(events(&packets, 0, |_| false), 1);
    assert_eq!(&t.audio_specific_config()[..], &[0x11, 0x88]);
    assert_eq!(frames[0].pts, 0);
    let aac = write_adts(&ff, &frames, 1);
    assert_eq!(field(&ff.probe(&aac), "channels"), "1");
    let reference = opus_reference(&packets, 1);
    let decoded = ff.decode(&aac);
    // Decoded sample i of the ADTS file plays at frames[0].pts + i: compare at 0.5 s and 1.5 s.
    for from in [24_000, 72_000] {
        assert_eq!(
            best_lag(&reference, &decoded, from, 4_800, 1_200),
            0,
            "at {from}"
        );
    }
}

#[test]
fn ffmpeg_tone_with_5_percent_loss_keeps_length_and_pitch() {
    let Some(ff) = ffmpeg("sine_loss") else {
        return;
    };
    let packets = opus_from_ffmpeg(
        &ff,
        "sine=frequency=1000:sample_rate=48000",
        1,
        &["-b:a", "48k"],
    );
    let opus_samples: usize = packets.iter().map(|p| packet_samples(p).unwrap()).sum();
    let dropped = |i: usize| i > 0 && i % 20 == 7;
    let (frames, t) = transcode(events(&packets, 0, dropped), 1);
    let s = t.stats();
    assert_eq!(
        s.fec_samples,
        960 * (0..packets.len()).filter(|&i| dropped(i)).count() as u64
    );
    let aac = write_adts(&ff, &frames, 1);
    let pcm = ff.decode(&aac);
    assert!(pcm.len() >= opus_samples && pcm.len() < opus_samples + 1024);
    let steady = &pcm[4800..pcm.len() - 4800];
    let hz = zero_crossing_hz(steady);
    assert!((hz - 1000.0).abs() < 10.0, "{hz} Hz");
    assert!(
        rms(steady) > 0.06,
        "concealment left holes: rms {}",
        rms(steady)
    );
}

#[test]
fn ffmpeg_opus_fec_rebuilds_a_lost_silk_packet_better_than_concealment() {
    // libopus in VoIP mode at a low rate codes SILK with LBRR (in-band FEC) for 20% loss.
    let Some(ff) = ffmpeg("fec") else { return };
    let packets = opus_from_ffmpeg(
        &ff,
        "aevalsrc=0.3*sin(2*PI*440*t)*(1+0.6*sin(2*PI*3*t))+0.1*sin(2*PI*1230*t):s=48000:d=2",
        1,
        &[
            "-application",
            "voip",
            "-b:a",
            "24k",
            "-fec",
            "1",
            "-packet_loss",
            "20",
        ],
    );
    let reference = opus_reference(&packets, 1);
    let (mut fec_err, mut plc_err) = (0.0f64, 0.0f64);
    for lost in (10..packets.len() - 1).step_by(9) {
        let mut with_fec = OpusRsDecoder::new(1).unwrap();
        let mut with_plc = OpusRsDecoder::new(1).unwrap();
        for p in &packets[..lost] {
            with_fec.decode(p).unwrap();
            with_plc.decode(p).unwrap();
        }
        let want = &reference[lost * 960..(lost + 1) * 960];
        let err = |got: &[f32]| -> f64 {
            got.iter()
                .zip(want)
                .map(|(&a, &b)| f64::from(a - b).powi(2))
                .sum()
        };
        fec_err += err(with_fec.recover(&packets[lost + 1], 960).unwrap());
        plc_err += err(with_plc.conceal(960).unwrap());
    }
    assert!(
        fec_err < plc_err * 0.5,
        "FEC error {fec_err:.3} vs concealment {plc_err:.3}"
    );
}
