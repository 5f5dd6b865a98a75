//! PES packets (ISO/IEC 13818-1 §2.4.3.6) for the two streams: one H.264 access unit in
//! Annex B form per video PES, one or more ADTS frames per audio PES. Each function pair gives
//! a PES packet's exact length (for sizing the segment) and writes it through a
//! [`Packetizer`], so no PES is assembled anywhere before it is packetized.

use bytes::BytesMut;

use super::adts::{TsAudio, ADTS_HEADER_LEN};
use super::packet::{ts33, Continuity, Packetizer, StartFlags};
use super::psi::{AUDIO_PID, VIDEO_PID};
use super::TsSample;
use crate::media::h264::{avcc_nals, nal, nal_type, ParameterSets};

/// stream_id of the first video and the first audio stream (Table 2-22).
pub const STREAM_ID_VIDEO: u8 = 0xe0;
pub const STREAM_ID_AUDIO: u8 = 0xc0;

/// packet_start_code_prefix, stream_id, PES_packet_length, the two flag bytes and
/// PES_header_data_length.
const FIXED_HEADER_LEN: usize = 9;
/// One PTS or DTS field.
const TIMESTAMP_LEN: usize = 5;
/// '10', not scrambled, no priority, data_alignment_indicator 1, no copyright, copy.
const FLAGS_ALIGNED: u8 = 0x84;
/// PTS_DTS_flags '10' (PTS only) and '11' (both).
const PTS_ONLY: u8 = 0x80;
const PTS_AND_DTS: u8 = 0xc0;

const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// Access unit delimiter NAL (type 9): primary_pic_type 7 (any slice type), stop bit.
const AUD: [u8; 6] = [0, 0, 0, 1, nal::AUD, 0xf0];

/// The PES header of a packet with `payload_len` bytes after it: PTS, and DTS when it differs.
/// `bounded` writes PES_packet_length; otherwise (video only, §2.4.3.7) it is 0.
fn header(
    stream_id: u8,
    pts: i64,
    dts: i64,
    payload_len: usize,
    bounded: bool,
) -> ([u8; 19], usize) {
    let with_dts = pts != dts;
    let data_len = if with_dts {
        2 * TIMESTAMP_LEN
    } else {
        TIMESTAMP_LEN
    };
    let packet_len = 3 + data_len + payload_len;
    let length_field = if bounded {
        u16::try_from(packet_len).unwrap_or(0)
    } else {
        0
    };
    let mut h = [0u8; 19];
    h[..4].copy_from_slice(&[0, 0, 1, stream_id]);
    h[4..6].copy_from_slice(&length_field.to_be_bytes());
    h[6] = FLAGS_ALIGNED;
    h[7] = if with_dts { PTS_AND_DTS } else { PTS_ONLY };
    h[8] = data_len as u8;
    put_timestamp(&mut h[9..14], if with_dts { 0x3 } else { 0x2 }, pts);
    if with_dts {
        put_timestamp(&mut h[14..19], 0x1, dts);
    }
    (h, FIXED_HEADER_LEN + data_len)
}

fn header_len(pts: i64, dts: i64) -> usize {
    FIXED_HEADER_LEN
        + if pts != dts {
            2 * TIMESTAMP_LEN
        } else {
            TIMESTAMP_LEN
        }
}

/// A 33-bit timestamp in 5 bytes behind a 4-bit prefix, with marker bits (§2.4.3.7).
fn put_timestamp(out: &mut [u8], prefix: u8, t: i64) {
    let t = ts33(t);
    out[0] = prefix << 4 | ((t >> 29) as u8 & 0x0e) | 1;
    out[1..3].copy_from_slice(&(((t >> 14) as u16 & 0xfffe) | 1).to_be_bytes());
    out[3..5].copy_from_slice(&(((t << 1) as u16 & 0xfffe) | 1).to_be_bytes());
}

/// The NAL units of an AVCC frame that go into the PES: all but empty ones and delimiters
/// (the PES starts with its own AUD).
fn frame_nals(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    avcc_nals(data).filter(|n| n.first().is_some_and(|&h| nal_type(h) != nal::AUD))
}

fn video_payload_len(sample: &TsSample, ps: &ParameterSets) -> usize {
    let sets = if sample.keyframe {
        2 * START_CODE.len() + ps.sps.len() + ps.pps.len()
    } else {
        0
    };
    let nals: usize = frame_nals(&sample.data)
        .map(|n| START_CODE.len() + n.len())
        .sum();
    AUD.len() + sets + nals
}

/// Bytes of the video PES packet of `sample`.
pub(crate) fn video_pes_len(sample: &TsSample, ps: &ParameterSets) -> usize {
    header_len(sample.pts, sample.dts) + video_payload_len(sample, ps)
}

/// The video PES of one access unit: AUD, then on keyframes SPS and PPS, then the frame's NAL
/// units, each behind a 4-byte start code.
pub(crate) fn write_video_pes(
    buf: &mut BytesMut,
    cc: &mut Continuity,
    flags: StartFlags,
    sample: &TsSample,
    ps: &ParameterSets,
) {
    let payload_len = video_payload_len(sample, ps);
    let (h, h_len) = header(STREAM_ID_VIDEO, sample.pts, sample.dts, payload_len, false);
    let mut p = Packetizer::new(buf, VIDEO_PID, cc, h_len + payload_len, flags);
    p.put(&h[..h_len]);
    p.put(&AUD);
    if sample.keyframe {
        for set in [&ps.sps, &ps.pps] {
            p.put(&START_CODE);
            p.put(set);
        }
    }
    for unit in frame_nals(&sample.data) {
        p.put(&START_CODE);
        p.put(unit);
    }
    p.finish();
}

fn audio_payload_len(frames: &[TsSample]) -> usize {
    frames.iter().map(|f| ADTS_HEADER_LEN + f.data.len()).sum()
}

/// Bytes of the audio PES packet of `frames` (at least one).
pub(crate) fn audio_pes_len(frames: &[TsSample]) -> usize {
    header_len(frames[0].pts, frames[0].dts) + audio_payload_len(frames)
}

/// One audio PES: the first frame's timestamps, then every frame behind its ADTS header.
pub(crate) fn write_audio_pes(
    buf: &mut BytesMut,
    cc: &mut Continuity,
    flags: StartFlags,
    frames: &[TsSample],
    audio: &TsAudio,
) {
    let payload_len = audio_payload_len(frames);
    let first = &frames[0];
    let (h, h_len) = header(STREAM_ID_AUDIO, first.pts, first.dts, payload_len, true);
    let mut p = Packetizer::new(buf, AUDIO_PID, cc, h_len + payload_len, flags);
    p.put(&h[..h_len]);
    for frame in frames {
        p.put(&audio.adts_header(frame.data.len()));
        p.put(&frame.data);
    }
    p.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_timestamp(b: &[u8]) -> u64 {
        (u64::from(b[0] >> 1) & 7) << 30
            | u64::from(u16::from_be_bytes([b[1], b[2]]) >> 1) << 15
            | u64::from(u16::from_be_bytes([b[3], b[4]]) >> 1)
    }

    #[test]
    fn pts_only_when_equal_both_when_not() {
        let (h, len) = header(STREAM_ID_AUDIO, 90_000, 90_000, 100, true);
        assert_eq!(len, 14);
        assert_eq!(&h[..9], &[0, 0, 1, 0xc0, 0, 108, 0x84, 0x80, 5]);
        assert_eq!(h[9] >> 4, 0x2);
        assert_eq!(read_timestamp(&h[9..14]), 90_000);
        let (h, len) = header(STREAM_ID_VIDEO, 7200, 3600, 100, false);
        assert_eq!(len, 19);
        assert_eq!(&h[4..9], &[0, 0, 0x84, 0xc0, 10]);
        assert_eq!((h[9] >> 4, h[14] >> 4), (0x3, 0x1));
        assert_eq!(read_timestamp(&h[9..14]), 7200);
        assert_eq!(read_timestamp(&h[14..19]), 3600);
    }

    #[test]
    fn timestamps_are_written_modulo_2_pow_33_with_marker_bits() {
        let mut out = [0u8; 5];
        put_timestamp(&mut out, 0x2, (1 << 33) + 0x1_fedc_ba98);
        assert_eq!(read_timestamp(&out), 0x1_fedc_ba98);
        assert_eq!((out[0] & 1, out[2] & 1, out[4] & 1), (1, 1, 1));
        put_timestamp(&mut out, 0x2, -90_000);
        assert_eq!(read_timestamp(&out), (1 << 33) - 90_000);
    }
}
