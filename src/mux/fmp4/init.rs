//! Init segments: `ftyp` + `moov` describing each track and its codec configuration, with the
//! empty sample tables and `mvex` a fragmented file needs (ISO/IEC 14496-12 §8.2–§8.8).

use bytes::{BufMut, Bytes, BytesMut};

use super::boxes::{write_box, write_full_box, write_unity_matrix};
use super::sample_entry::write_sample_entry;
use crate::media::h264::ParameterSets;

/// The codec of one track and the configuration its sample entry needs.
#[derive(Clone, Debug, PartialEq)]
pub enum TrackCodec {
    /// H.264 in `avc1` + `avcC` (ISO/IEC 14496-15 §5.4). Keyframe samples may carry the same
    /// SPS and PPS in-band as well ([`super::InBandParameterSets`] says why that stays `avc1`);
    /// other parameter sets need a new init segment.
    H264(ParameterSets),
    /// AAC in `mp4a` + `esds` (ISO/IEC 14496-14 §5.6).
    Aac {
        audio_specific_config: Bytes,
        sample_rate: u32,
        channels: u8,
    },
    /// Opus in `Opus` + `dOps` ("Encapsulation of Opus in ISO Base Media File Format" §4).
    /// Channel mapping family 0 is written, so `channels` must be 1 or 2.
    Opus {
        sample_rate: u32,
        channels: u8,
        pre_skip: u16,
    },
}

impl TrackCodec {
    fn is_video(&self) -> bool {
        matches!(self, TrackCodec::H264(_))
    }

    /// The RFC 6381 `CODECS` value of this track (`avc1.PPCCLL`, `mp4a.40.2`, `opus`).
    pub fn codec_string(&self) -> String {
        match self {
            TrackCodec::H264(ps) => ps.codec_string(),
            TrackCodec::Aac {
                audio_specific_config,
                ..
            } => {
                // The audio object type is the top 5 bits of the AudioSpecificConfig
                // (ISO/IEC 14496-3 §1.6.2.1); AAC-LC (2) when absent.
                let aot = audio_specific_config.first().map_or(2, |b| b >> 3);
                format!("mp4a.40.{}", if aot == 0 { 2 } else { aot })
            }
            TrackCodec::Opus { .. } => "opus".to_string(),
        }
    }
}

/// One track of an init segment.
#[derive(Clone, Debug)]
pub struct TrackSpec {
    pub track_id: u32,
    /// Ticks per second of the track's sample times (90000 for video, the sample rate for audio).
    pub timescale: u32,
    pub codec: TrackCodec,
}

/// Movie timescale of `mvhd`; nothing is timed at movie level in a fragmented file.
const MOVIE_TIMESCALE: u32 = 1000;
/// ISO 639-2/T "und" packed as three 5-bit letters (§8.4.2.3).
const LANGUAGE_UND: u16 = 0x55c4;

/// Writes an init segment for `tracks`: `ftyp` and a `moov` with one `trak` per track plus
/// `mvex`/`trex`, ready for media segments from [`super::media_segment`].
pub fn init_segment(tracks: &[TrackSpec]) -> Bytes {
    let config_len: usize = tracks
        .iter()
        .map(|t| match &t.codec {
            TrackCodec::H264(ps) => ps.sps.len() + ps.pps.len() + 16,
            TrackCodec::Aac {
                audio_specific_config,
                ..
            } => audio_specific_config.len(),
            TrackCodec::Opus { .. } => 0,
        })
        .sum();
    let mut buf = BytesMut::with_capacity(64 + 600 * tracks.len() + config_len);
    write_ftyp(&mut buf, tracks);
    write_box(&mut buf, b"moov", |b| {
        let next_track_id = tracks
            .iter()
            .map(|t| t.track_id)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        write_mvhd(b, next_track_id);
        for track in tracks {
            write_trak(b, track);
        }
        write_box(b, b"mvex", |b| {
            for track in tracks {
                write_trex(b, track.track_id);
            }
        });
    });
    buf.freeze()
}

/// `ftyp`: `iso6` (the brand that covers `tfdt` and default-base-is-moof), `mp41`, `cmfc` when
/// the file is a single CMAF track, `avc1` when H.264 is present.
fn write_ftyp(buf: &mut BytesMut, tracks: &[TrackSpec]) {
    write_box(buf, b"ftyp", |b| {
        b.put_slice(b"iso6");
        b.put_u32(0);
        b.put_slice(b"iso6");
        b.put_slice(b"mp41");
        if tracks.len() == 1 {
            b.put_slice(b"cmfc");
        }
        if tracks.iter().any(|t| t.codec.is_video()) {
            b.put_slice(b"avc1");
        }
    });
}

fn write_mvhd(buf: &mut BytesMut, next_track_id: u32) {
    write_full_box(buf, b"mvhd", 0, 0, |b| {
        b.put_u32(0); // creation_time
        b.put_u32(0); // modification_time
        b.put_u32(MOVIE_TIMESCALE);
        b.put_u32(0); // duration: unknown, the fragments carry the samples
        b.put_u32(0x0001_0000); // rate 1.0
        b.put_u16(0x0100); // volume 1.0
        b.put_u16(0);
        b.put_u64(0);
        write_unity_matrix(b);
        b.put_slice(&[0; 24]); // pre_defined
        b.put_u32(next_track_id);
    });
}

fn write_trak(buf: &mut BytesMut, track: &TrackSpec) {
    write_box(buf, b"trak", |b| {
        write_tkhd(b, track);
        write_box(b, b"mdia", |b| {
            write_full_box(b, b"mdhd", 0, 0, |b| {
                b.put_u32(0); // creation_time
                b.put_u32(0); // modification_time
                b.put_u32(track.timescale);
                b.put_u32(0); // duration
                b.put_u16(LANGUAGE_UND);
                b.put_u16(0);
            });
            let (handler, name): (&[u8; 4], &[u8]) = if track.codec.is_video() {
                (b"vide", b"VideoHandler\0")
            } else {
                (b"soun", b"SoundHandler\0")
            };
            write_full_box(b, b"hdlr", 0, 0, |b| {
                b.put_u32(0); // pre_defined
                b.put_slice(handler);
                b.put_slice(&[0; 12]);
                b.put_slice(name);
            });
            write_box(b, b"minf", |b| write_minf(b, track));
        });
    });
}

fn write_tkhd(buf: &mut BytesMut, track: &TrackSpec) {
    // Flags: track_enabled | track_in_movie (§8.3.2.3).
    write_full_box(buf, b"tkhd", 0, 0x3, |b| {
        b.put_u32(0); // creation_time
        b.put_u32(0); // modification_time
        b.put_u32(track.track_id);
        b.put_u32(0);
        b.put_u32(0); // duration
        b.put_u64(0);
        b.put_u16(0); // layer
        b.put_u16(0); // alternate_group
        b.put_u16(if track.codec.is_video() { 0 } else { 0x0100 }); // volume
        b.put_u16(0);
        write_unity_matrix(b);
        let (width, height) = match &track.codec {
            TrackCodec::H264(ps) => (ps.info.width, ps.info.height),
            _ => (0, 0),
        };
        // 16.16 fixed point; a dimension past 65535 cannot be expressed and is clamped.
        b.put_u32(width.min(0xffff) << 16);
        b.put_u32(height.min(0xffff) << 16);
    });
}

fn write_minf(buf: &mut BytesMut, track: &TrackSpec) {
    if track.codec.is_video() {
        // vmhd flags must be 1 (§12.1.2.2); graphicsmode copy, opcolor 0.
        write_full_box(buf, b"vmhd", 0, 1, |b| b.put_slice(&[0; 8]));
    } else {
        write_full_box(buf, b"smhd", 0, 0, |b| b.put_u32(0)); // balance, reserved
    }
    write_box(buf, b"dinf", |b| {
        write_full_box(b, b"dref", 0, 0, |b| {
            b.put_u32(1);
            // Flag 1: the media data is in this file.
            write_full_box(b, b"url ", 0, 1, |_| {});
        });
    });
    write_box(buf, b"stbl", |b| {
        write_full_box(b, b"stsd", 0, 0, |b| {
            b.put_u32(1);
            write_sample_entry(b, &track.codec);
        });
        // Empty tables: every sample is in a movie fragment (§8.8.1).
        write_full_box(b, b"stts", 0, 0, |b| b.put_u32(0));
        write_full_box(b, b"stsc", 0, 0, |b| b.put_u32(0));
        write_full_box(b, b"stsz", 0, 0, |b| b.put_u64(0)); // sample_size, sample_count
        write_full_box(b, b"stco", 0, 0, |b| b.put_u32(0));
    });
}

fn write_trex(buf: &mut BytesMut, track_id: u32) {
    write_full_box(buf, b"trex", 0, 0, |b| {
        b.put_u32(track_id);
        b.put_u32(1); // default_sample_description_index
        b.put_u32(0); // default_sample_duration
        b.put_u32(0); // default_sample_size
        b.put_u32(0); // default_sample_flags: every trun entry carries its own
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::fmp4::test_support::{
        child, children, find_path, parse_boxes, u16_at, u32_at, PPS_X264, SPS_320X240,
    };

    fn h264_track() -> TrackSpec {
        let ps = ParameterSets::new(
            Bytes::from_static(SPS_320X240),
            Bytes::from_static(PPS_X264),
        )
        .unwrap();
        TrackSpec {
            track_id: 1,
            timescale: 90_000,
            codec: TrackCodec::H264(ps),
        }
    }

    fn opus_track() -> TrackSpec {
        TrackSpec {
            track_id: 2,
            timescale: 48_000,
            codec: TrackCodec::Opus {
                sample_rate: 48_000,
                channels: 2,
                pre_skip: 312,
            },
        }
    }

    /// Offset of the child boxes inside an `stsd` body: version/flags + entry_count.
    const STSD_ENTRIES: usize = 8;
    /// Offset of child boxes in a VisualSampleEntry / AudioSampleEntry body.
    const VISUAL_CHILDREN: usize = 78;
    const AUDIO_CHILDREN: usize = 28;

    #[test]
    fn h264_init_has_ftyp_moov_and_the_cmaf_box_tree() {
        let init = init_segment(&[h264_track()]);
        let top = parse_boxes(&init).unwrap();
        let kinds: Vec<&str> = top.iter().map(|b| b.kind).collect();
        assert_eq!(kinds, ["ftyp", "moov"]);
        assert_eq!(top[0].body, b"iso6\0\0\0\0iso6mp41cmfcavc1");
        let moov: Vec<&str> = children(top[1].body).iter().map(|b| b.kind).collect();
        assert_eq!(moov, ["mvhd", "trak", "mvex"]);
        let trak: Vec<&str> = children(find_path(&init, &["moov", "trak"]).unwrap())
            .iter()
            .map(|b| b.kind)
            .collect();
        assert_eq!(trak, ["tkhd", "mdia"]);
        let stbl = find_path(&init, &["moov", "trak", "mdia", "minf", "stbl"]).unwrap();
        let tables: Vec<&str> = children(stbl).iter().map(|b| b.kind).collect();
        assert_eq!(tables, ["stsd", "stts", "stsc", "stsz", "stco"]);
        let minf = find_path(&init, &["moov", "trak", "mdia", "minf"]).unwrap();
        assert!(child(minf, "vmhd").is_some());
        let dref = find_path(minf, &["dinf", "dref"]).unwrap();
        assert_eq!(u32_at(dref, 4), 1);
        assert_eq!(children(&dref[8..])[0].kind, "url ");
    }

    #[test]
    fn tkhd_and_avc1_carry_the_sps_dimensions() {
        let init = init_segment(&[h264_track()]);
        let tkhd = find_path(&init, &["moov", "trak", "tkhd"]).unwrap();
        assert_eq!(u32_at(tkhd, 0), 0x0000_0003, "v0, enabled + in movie");
        assert_eq!(u32_at(tkhd, 12), 1, "track_ID");
        // width/height are the last two 16.16 fields.
        assert_eq!(u32_at(tkhd, tkhd.len() - 8), 320 << 16);
        assert_eq!(u32_at(tkhd, tkhd.len() - 4), 240 << 16);
        let stsd = find_path(&init, &["moov", "trak", "mdia", "minf", "stbl", "stsd"]).unwrap();
        let entry = &children(&stsd[STSD_ENTRIES..])[0];
        assert_eq!(entry.kind, "avc1");
        assert_eq!(u16_at(entry.body, 24), 320);
        assert_eq!(u16_at(entry.body, 26), 240);
    }

    #[test]
    fn avcc_inside_avc1_is_the_decoder_configuration_record() {
        let track = h264_track();
        let TrackCodec::H264(ps) = &track.codec else {
            unreachable!()
        };
        let record = ps.avc_decoder_configuration_record();
        let init = init_segment(std::slice::from_ref(&track));
        let stsd = find_path(&init, &["moov", "trak", "mdia", "minf", "stbl", "stsd"]).unwrap();
        assert_eq!(u32_at(stsd, 4), 1, "one sample entry");
        let avc1 = child(&stsd[STSD_ENTRIES..], "avc1").unwrap();
        let avcc = child(&avc1[VISUAL_CHILDREN..], "avcC").unwrap();
        assert_eq!(avcc, &record[..]);
        // configurationVersion 1, profile/compat/level from the SPS.
        assert_eq!(&avcc[..4], &[1, 0x42, 0xc0, 0x0d]);
    }

    #[test]
    fn mdhd_hdlr_and_trex_describe_the_video_track() {
        let init = init_segment(&[h264_track()]);
        let mdhd = find_path(&init, &["moov", "trak", "mdia", "mdhd"]).unwrap();
        assert_eq!(u32_at(mdhd, 12), 90_000);
        assert_eq!(u16_at(mdhd, 20), 0x55c4, "und");
        let hdlr = find_path(&init, &["moov", "trak", "mdia", "hdlr"]).unwrap();
        assert_eq!(&hdlr[8..12], b"vide");
        let trex = find_path(&init, &["moov", "mvex", "trex"]).unwrap();
        assert_eq!(u32_at(trex, 4), 1);
        assert_eq!(u32_at(trex, 8), 1, "default_sample_description_index");
        let mvhd = find_path(&init, &["moov", "mvhd"]).unwrap();
        assert_eq!(u32_at(mvhd, mvhd.len() - 4), 2, "next_track_ID");
    }

    #[test]
    fn video_and_opus_tracks_share_one_moov_without_the_cmaf_brand() {
        let init = init_segment(&[h264_track(), opus_track()]);
        let top = parse_boxes(&init).unwrap();
        assert_eq!(top[0].body, b"iso6\0\0\0\0iso6mp41avc1");
        let moov = children(top[1].body);
        let traks: Vec<_> = moov.iter().filter(|b| b.kind == "trak").collect();
        assert_eq!(traks.len(), 2);
        let audio = traks[1].body;
        assert_eq!(
            &find_path(audio, &["mdia", "hdlr"]).unwrap()[8..12],
            b"soun"
        );
        assert!(find_path(audio, &["mdia", "minf", "smhd"]).is_some());
        let stsd = find_path(audio, &["mdia", "minf", "stbl", "stsd"]).unwrap();
        let opus = child(&stsd[STSD_ENTRIES..], "Opus").unwrap();
        assert_eq!(u16_at(opus, 16), 2, "channelcount");
        assert_eq!(u32_at(opus, 24), 48_000 << 16);
        let dops = child(&opus[AUDIO_CHILDREN..], "dOps").unwrap();
        // Version 0, 2 channels, pre-skip 312, 48 kHz input, gain 0, mapping family 0.
        assert_eq!(dops, &[0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]);
        let trex: Vec<u32> = children(child(top[1].body, "mvex").unwrap())
            .iter()
            .map(|b| u32_at(b.body, 4))
            .collect();
        assert_eq!(trex, [1, 2]);
        let mvhd = child(top[1].body, "mvhd").unwrap();
        assert_eq!(u32_at(mvhd, mvhd.len() - 4), 3);
    }
}
