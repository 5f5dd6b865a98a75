//! Packet-level tests of [`TsMuxer`] read back with the test demuxer: packet framing, PAT/PMT,
//! continuity across segments, PCR pacing, Annex B access units, ADTS frames, timestamp wrap.

use bytes::{BufMut, Bytes, BytesMut};

use super::test_demux::{
    check_continuity, packets, pat_programs, pcrs, pes_packets, pmt, section, wrap_diff, Pes, Pmt,
};
use super::*;
use crate::media::h264::{nal, nal_type, split_annexb};
use crate::mux::fmp4::test_support::{adts_frames, PPS_X264, SPS_320X240, SPS_640X360};

/// 25 fps.
const FRAME: i64 = 3600;
/// One AAC frame at 48 kHz.
const AAC: i64 = 1920;
const ASC_48K_MONO: [u8; 2] = [0x11, 0x88];

fn params(sps: &'static [u8]) -> ParameterSets {
    ParameterSets::new(Bytes::from_static(sps), Bytes::from_static(PPS_X264)).unwrap()
}

fn audio_config() -> TsAudio {
    TsAudio::new(Bytes::from_static(&ASC_48K_MONO), 48_000, 1).unwrap()
}

fn av_tracks() -> TsTracks {
    TsTracks {
        video: Some(params(SPS_320X240)),
        audio: Some(audio_config()),
    }
}

/// An AVCC access unit: an SEI and one slice of `len` bytes (IDR when `key`).
fn access_unit(key: bool, len: usize, fill: u8) -> Bytes {
    let mut out = BytesMut::new();
    for unit in [vec![0x06, 0x05, 0x01, 0x80], {
        let mut slice = vec![fill; len];
        slice[0] = if key { 0x65 } else { 0x41 };
        slice
    }] {
        out.put_u32(unit.len() as u32);
        out.put_slice(&unit);
    }
    out.freeze()
}

/// Video frames `range` at 25 fps from `t0`, an IDR every 25.
fn video(range: std::ops::Range<i64>, t0: i64) -> Vec<TsSample> {
    range
        .map(|i| TsSample {
            pts: t0 + i * FRAME,
            dts: t0 + i * FRAME,
            keyframe: i % 25 == 0,
            data: access_unit(i % 25 == 0, 300 + (i as usize * 37) % 900, i as u8),
        })
        .collect()
}

/// AAC frames `range` (48 kHz) from `t0`, of varying size.
fn audio(range: std::ops::Range<i64>, t0: i64) -> Vec<TsSample> {
    range
        .map(|i| TsSample {
            pts: t0 + i * AAC,
            dts: t0 + i * AAC,
            keyframe: true,
            data: Bytes::from(vec![0x20 | (i as u8 & 0x0f); 150 + (i as usize * 13) % 120]),
        })
        .collect()
}

/// One second of A/V from `t0` (25 video frames, 47 AAC frames).
fn one_second(mux: &mut TsMuxer, second: i64, t0: i64) -> Bytes {
    let v = video(second * 25..second * 25 + 25, t0);
    let a = audio(second * 47..second * 47 + 47, t0 - 900);
    mux.segment(&v, &a)
}

fn pmt_of(seg: &[u8]) -> Pmt {
    pmt(section(&packets(seg)[1]))
}

#[test]
fn segment_is_whole_packets_with_pat_and_pmt_first() {
    let mut mux = TsMuxer::new(av_tracks());
    let seg = one_second(&mut mux, 0, 900_000);
    let pk = packets(&seg);
    assert!(pk.len() > 20);
    assert_eq!((pk[0].pid, pk[1].pid), (0, PMT_PID));
    assert_eq!(pat_programs(section(&pk[0])), [(1, PMT_PID)]);
    assert_eq!(
        pmt(section(&pk[1])),
        Pmt {
            version: 0,
            pcr_pid: VIDEO_PID,
            streams: vec![(0x1b, VIDEO_PID), (0x0f, AUDIO_PID)],
        }
    );
    // Only the first two packets are PSI; every other packet is on a media PID.
    assert!(pk[2..]
        .iter()
        .all(|p| p.pid == VIDEO_PID || p.pid == AUDIO_PID));
    let pes = pes_packets(&pk);
    assert_eq!(pes.iter().filter(|p| p.pid == VIDEO_PID).count(), 25);
    assert!(pes.iter().all(|p| p.data_aligned));
}

#[test]
fn pat_and_pmt_are_the_bytes_ffmpeg_writes() {
    // FFmpeg 5.1's mpegts muxer: PAT, then the PMT of H.264 on 0x100 (with and without AAC
    // on 0x101), version 0, PCR on 0x100; sections from pointer_field to CRC.
    let pat = [
        0x00, 0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00, 0x2a, 0xb1,
        0x04, 0xb2,
    ];
    let pmt_video = [
        0x00, 0x02, 0xb0, 0x12, 0x00, 0x01, 0xc1, 0x00, 0x00, 0xe1, 0x00, 0xf0, 0x00, 0x1b, 0xe1,
        0x00, 0xf0, 0x00, 0x15, 0xbd, 0x4d, 0x56,
    ];
    let pmt_av = [
        0x00, 0x02, 0xb0, 0x17, 0x00, 0x01, 0xc1, 0x00, 0x00, 0xe1, 0x00, 0xf0, 0x00, 0x1b, 0xe1,
        0x00, 0xf0, 0x00, 0x0f, 0xe1, 0x01, 0xf0, 0x00, 0x2f, 0x44, 0xb9, 0x9b,
    ];
    let seg = TsMuxer::new(av_tracks()).segment(&[], &[]);
    assert_eq!(seg.len(), 2 * PACKET_LEN, "an empty segment is PAT + PMT");
    assert_eq!(&seg[..4], &[0x47, 0x40, 0x00, 0x10]);
    assert_eq!(&seg[4..4 + pat.len()], &pat);
    assert_eq!(&seg[188..192], &[0x47, 0x50, 0x00, 0x10]);
    assert_eq!(&seg[192..192 + pmt_av.len()], &pmt_av);
    let video_only = TsTracks {
        video: Some(params(SPS_320X240)),
        audio: None,
    };
    let seg = TsMuxer::new(video_only).segment(&[], &[]);
    assert_eq!(&seg[192..192 + pmt_video.len()], &pmt_video);
}

#[test]
fn continuity_counters_run_on_across_segments() {
    let mut mux = TsMuxer::new(av_tracks());
    let mut stream = one_second(&mut mux, 0, 900_000).to_vec();
    stream.extend_from_slice(&one_second(&mut mux, 1, 900_000));
    let pk = packets(&stream);
    assert_eq!(check_continuity(&pk), Ok(()));
    // Enough packets that every counter wrapped at least once.
    for pid in [VIDEO_PID, AUDIO_PID] {
        assert!(pk.iter().filter(|p| p.pid == pid).count() > 16);
    }
    // The second segment's PAT and PMT continue the first's (counter 1 after 0).
    let psi: Vec<(u16, u8)> = pk
        .iter()
        .filter(|p| p.pid == 0 || p.pid == PMT_PID)
        .map(|p| (p.pid, p.cc))
        .collect();
    assert_eq!(psi, [(0, 0), (PMT_PID, 0), (0, 1), (PMT_PID, 1)]);

    // Control: a muxer per segment restarts every counter, which the check catches.
    let mut control = one_second(&mut TsMuxer::new(av_tracks()), 0, 900_000).to_vec();
    control.extend_from_slice(&one_second(&mut TsMuxer::new(av_tracks()), 1, 900_000));
    assert!(check_continuity(&packets(&control)).is_err());
}

/// Checks the PCR rules on one segment: a PCR in the first packet of the first PES on the PCR
/// PID (and before any PES), PCRs at most 40 ms apart, and each PES's DTS at or after the last
/// PCR before it (within 200 ms).
fn check_pcr(seg: &[u8], pcr_pid: u16) -> Vec<Pes> {
    let pk = packets(seg);
    let pes = pes_packets(&pk);
    let clock = pcrs(&pk, pcr_pid);
    let first = pes
        .iter()
        .find(|p| p.pid == pcr_pid)
        .expect("a PES on the PCR PID");
    assert!(first.pcr.is_some(), "PCR in the first PES on the PCR PID");
    assert!(
        clock[0].0 <= pes[0].first_packet,
        "the clock starts before any PES"
    );
    for w in clock.windows(2) {
        let gap = wrap_diff(w[0].1, w[1].1);
        assert!(
            (0..=PCR_INTERVAL).contains(&gap),
            "PCR gap {gap} at packet {}",
            w[1].0
        );
    }
    for p in &pes {
        let (_, pcr) = clock
            .iter()
            .rev()
            .find(|(i, _)| *i <= p.first_packet)
            .expect("a PCR before every PES");
        let ahead = wrap_diff(*pcr, p.decode_time());
        assert!((0..=2 * PCR_LEAD).contains(&ahead), "DTS − PCR = {ahead}");
    }
    pes
}

#[test]
fn pcr_starts_the_first_video_pes_and_keeps_within_40ms_and_behind_dts() {
    let mut mux = TsMuxer::new(av_tracks());
    let seg = one_second(&mut mux, 0, 900_000);
    let pes = check_pcr(&seg, VIDEO_PID);
    // The segment starts with audio 10 ms before the keyframe: a PCR-only packet comes first.
    let pk = packets(&seg);
    assert_eq!((pk[2].pid, pk[2].has_payload), (VIDEO_PID, false));
    assert_eq!(pk[2].pcr(), Some(900_000 - 900 - PCR_LEAD as u64));
    // Every video PES carries its DTS − 100 ms.
    for p in pes.iter().filter(|p| p.pid == VIDEO_PID) {
        assert_eq!(p.pcr, Some(p.decode_time() - PCR_LEAD as u64));
    }
    // At 25 fps the video PES are exactly 40 ms apart: no other PCR-only packet.
    assert_eq!(pk.iter().filter(|p| !p.has_payload).count(), 1);
}

#[test]
fn pcr_only_packets_fill_holes_in_the_video() {
    let mut mux = TsMuxer::new(av_tracks());
    // 10 fps with a 500 ms hole: video PES 100 ms and then 600 ms apart.
    let mut v = video(0..5, 900_000);
    for (i, s) in v.iter_mut().enumerate() {
        let t = 900_000 + i as i64 * 9000 + if i >= 3 { 45_000 } else { 0 };
        (s.pts, s.dts) = (t, t);
    }
    let a = audio(0..47, 900_000);
    let seg = mux.segment(&v, &a);
    check_pcr(&seg, VIDEO_PID);
    let pk = packets(&seg);
    let fillers = pk.iter().filter(|p| !p.has_payload).count();
    // Each of the three 9000-tick gaps needs 2 fillers (at +3600, +7200), the 54 000 one 14.
    assert_eq!(fillers, 3 * 2 + 14);
    assert_eq!(check_continuity(&pk), Ok(()));
    // Video only, same holes: the fillers are all there is between the frames.
    let mut video_only = TsMuxer::new(TsTracks {
        video: Some(params(SPS_320X240)),
        audio: None,
    });
    check_pcr(&video_only.segment(&v, &[]), VIDEO_PID);
}

#[test]
fn audio_only_carries_the_pcr_on_the_audio_pid_one_frame_a_pes() {
    let mut mux = TsMuxer::new(TsTracks {
        video: None,
        audio: Some(audio_config()),
    });
    let a = audio(0..47, 900_000);
    let seg = mux.segment(&video(0..25, 900_000), &a);
    assert_eq!(pmt_of(&seg).pcr_pid, AUDIO_PID);
    assert_eq!(pmt_of(&seg).streams, [(0x0f, AUDIO_PID)]);
    let pes = check_pcr(&seg, AUDIO_PID);
    assert_eq!(pes.len(), 47, "one frame a PES, no video");
    assert!(pes.iter().all(|p| p.pcr.is_some() && p.random_access));
}

#[test]
fn keyframes_start_with_aud_sps_pps_other_frames_with_aud() {
    let mut mux = TsMuxer::new(av_tracks());
    let mut v = video(0..30, 900_000);
    // A delimiter already in the frame is not written twice.
    let mut with_aud = BytesMut::from(&[0, 0, 0, 2, 0x09, 0xf0][..]);
    with_aud.extend_from_slice(&v[1].data);
    v[1].data = with_aud.freeze();
    let seg = mux.segment(&v, &[]);
    let pes: Vec<Pes> = pes_packets(&packets(&seg));
    assert_eq!(pes.len(), 30);
    for (p, sample) in pes.iter().zip(&v) {
        assert_eq!((p.pid, p.stream_id, p.length_field), (VIDEO_PID, 0xe0, 0));
        assert_eq!(p.random_access, sample.keyframe);
        // The whole payload, byte for byte: no stuffing in it.
        let mut expected = vec![0, 0, 0, 1, 0x09, 0xf0];
        if sample.keyframe {
            for set in [SPS_320X240, PPS_X264] {
                expected.extend_from_slice(&[0, 0, 0, 1]);
                expected.extend_from_slice(set);
            }
        }
        for unit in crate::media::h264::avcc_nals(&sample.data) {
            if nal_type(unit[0]) != nal::AUD {
                expected.extend_from_slice(&[0, 0, 0, 1]);
                expected.extend_from_slice(unit);
            }
        }
        assert_eq!(p.payload, expected);
        let types: Vec<u8> = split_annexb(&p.payload).map(|n| nal_type(n[0])).collect();
        let slice = if sample.keyframe {
            nal::IDR
        } else {
            nal::SLICE
        };
        if sample.keyframe {
            assert_eq!(types, [nal::AUD, nal::SPS, nal::PPS, nal::SEI, slice]);
        } else {
            assert_eq!(types, [nal::AUD, nal::SEI, slice]);
        }
    }
}

#[test]
fn adts_frames_carry_length_rate_and_channels_a_few_to_a_pes() {
    let mut mux = TsMuxer::new(av_tracks());
    let a = audio(0..47, 900_000);
    let seg = mux.segment(&video(0..25, 900_000), &a);
    let pes: Vec<Pes> = pes_packets(&packets(&seg))
        .into_iter()
        .filter(|p| p.pid == AUDIO_PID)
        .collect();
    let mut frames = Vec::new();
    for p in &pes {
        assert_eq!(p.stream_id, 0xc0);
        assert_eq!(
            usize::from(p.length_field),
            p.after_length,
            "PES_packet_length"
        );
        assert!(p.random_access && p.pcr.is_none());
        let (asc, group) = adts_frames(&p.payload);
        // Profile LC, index 3 (48 kHz), 1 channel: the ASC the first header implies.
        assert_eq!(&asc[..], &ASC_48K_MONO);
        // PTS of the first frame, no DTS; at most 4 frames (85 ms) a PES.
        assert_eq!(p.pts, a[frames.len()].pts as u64);
        assert_eq!(p.dts, None);
        assert!((1..=4).contains(&group.len()));
        frames.extend(group);
    }
    // Lengths right: the frames split back to exactly the input.
    let input: Vec<Bytes> = a.iter().map(|f| f.data.clone()).collect();
    assert_eq!(frames, input);
    assert_eq!(pes.len(), 12, "47 frames in PES of 4");
    // Every header, not just each PES's first, has the same fixed fields.
    let mut at = 0;
    let payload: Vec<u8> = pes.iter().flat_map(|p| p.payload.clone()).collect();
    for f in &a {
        assert_eq!(&payload[at..at + 3], &[0xff, 0xf1, 0x4c]);
        assert_eq!(payload[at + 3] >> 6, 1, "mono");
        at += 7 + f.data.len();
    }
}

#[test]
fn timestamps_are_written_modulo_2_pow_33() {
    let wrap = 1i64 << 33;
    let mut mux = TsMuxer::new(av_tracks());
    // From 0.2 s before the wrap, with a negative multiple of 2^33 on top, and a B-frame-like
    // composition offset on every other frame.
    let t0 = -3 * wrap + wrap - 18_000;
    let mut v = video(0..10, t0);
    for s in v.iter_mut().skip(1).step_by(2) {
        s.pts += 2 * FRAME;
    }
    let a = audio(0..19, t0);
    let seg = mux.segment(&v, &a);
    let pes = check_pcr(&seg, VIDEO_PID);
    let video_pes: Vec<&Pes> = pes.iter().filter(|p| p.pid == VIDEO_PID).collect();
    for (p, s) in video_pes.iter().zip(&v) {
        assert_eq!(p.pts, s.pts.rem_euclid(wrap) as u64);
        if s.pts == s.dts {
            assert_eq!(p.dts, None, "PTS only when equal");
        } else {
            assert_eq!(p.dts, Some(s.dts.rem_euclid(wrap) as u64));
        }
    }
    assert_eq!(video_pes[0].pts, (wrap - 18_000) as u64);
    assert_eq!(video_pes[9].decode_time(), (9 * FRAME - 18_000) as u64);
    let first_pcr = pcrs(&packets(&seg), VIDEO_PID)[0].1;
    assert_eq!(first_pcr, (wrap - 18_000 - PCR_LEAD) as u64);
}

#[test]
fn pmt_version_moves_on_only_when_the_stream_set_changes() {
    let mut mux = TsMuxer::new(av_tracks());
    let v = video(0..25, 900_000);
    assert_eq!(pmt_of(&mux.segment(&v, &[])).version, 0);
    // New parameter sets: same streams, same PMT; the next keyframe carries the new SPS.
    mux.set_tracks(TsTracks {
        video: Some(params(SPS_640X360)),
        audio: Some(audio_config()),
    });
    let seg = mux.segment(&v, &[]);
    assert_eq!(pmt_of(&seg).version, 0);
    let first = &pes_packets(&packets(&seg))[0];
    assert_eq!(split_annexb(&first.payload).nth(1), Some(SPS_640X360));
    // Audio goes away: version 1, and its samples are left out.
    mux.set_tracks(TsTracks {
        video: Some(params(SPS_640X360)),
        audio: None,
    });
    let seg = mux.segment(&v, &audio(0..47, 900_000));
    assert_eq!(
        pmt_of(&seg),
        Pmt {
            version: 1,
            pcr_pid: VIDEO_PID,
            streams: vec![(0x1b, VIDEO_PID)],
        }
    );
    assert!(packets(&seg).iter().all(|p| p.pid != AUDIO_PID));
    // Video goes away too: version 2, no PCR PID (0x1FFF), video left out.
    mux.set_tracks(TsTracks::default());
    let seg = mux.segment(&v, &[]);
    assert_eq!(seg.len(), 2 * PACKET_LEN);
    assert_eq!(pmt_of(&seg).version, 2);
    assert_eq!(pmt_of(&seg).pcr_pid, 0x1fff);
}

#[test]
fn a_pes_that_ends_a_packet_exactly_gets_no_stuffing() {
    // Payload sizes around packet boundaries: every PES still reassembles to its bytes.
    let mut mux = TsMuxer::new(TsTracks {
        video: Some(params(SPS_320X240)),
        audio: None,
    });
    for len in 150..=600 {
        let sample = TsSample {
            pts: 0,
            dts: 0,
            keyframe: false,
            data: access_unit(false, len, 0x77),
        };
        let seg = mux.segment(std::slice::from_ref(&sample), &[]);
        let pes = pes_packets(&packets(&seg));
        assert_eq!(pes.len(), 1);
        let payload_len = 6 + 8 + 4 + len;
        assert_eq!(pes[0].payload.len(), payload_len, "len {len}");
        assert_eq!(pes[0].payload.last(), Some(&0x77));
    }
}
