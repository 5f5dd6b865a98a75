//! Sample entries of the `stsd` box (ISO/IEC 14496-12 §8.5.2): `avc1` + `avcC` for H.264,
//! `mp4a` + `esds` for AAC, `Opus` + `dOps` for Opus.

use bytes::{BufMut, BytesMut};

use super::boxes::{write_box, write_full_box};
use super::init::TrackCodec;

pub(super) fn write_sample_entry(buf: &mut BytesMut, codec: &TrackCodec) {
    match codec {
        TrackCodec::H264(ps) => write_box(buf, b"avc1", |b| {
            write_visual_entry_fields(b, ps.info.width, ps.info.height);
            write_box(b, b"avcC", |b| {
                b.put_slice(&ps.avc_decoder_configuration_record())
            });
        }),
        TrackCodec::Aac {
            audio_specific_config,
            sample_rate,
            channels,
        } => write_box(buf, b"mp4a", |b| {
            write_audio_entry_fields(b, *channels, *sample_rate);
            write_esds(b, audio_specific_config);
        }),
        TrackCodec::Opus {
            sample_rate,
            channels,
            pre_skip,
        } => write_box(buf, b"Opus", |b| {
            // Opus §4.3.1: the entry's samplerate is always 48000 (the decoder's output rate).
            write_audio_entry_fields(b, *channels, 48_000);
            write_box(b, b"dOps", |b| {
                b.put_u8(0); // Version
                b.put_u8(*channels);
                b.put_u16(*pre_skip);
                b.put_u32(*sample_rate); // InputSampleRate: informational
                b.put_i16(0); // OutputGain
                b.put_u8(0); // ChannelMappingFamily 0: mono or stereo, no mapping table
            });
        }),
    }
}

/// SampleEntry + VisualSampleEntry fields before the child boxes (§8.5.2, §12.1.3).
fn write_visual_entry_fields(buf: &mut BytesMut, width: u32, height: u32) {
    buf.put_slice(&[0; 6]);
    buf.put_u16(1); // data_reference_index
    buf.put_slice(&[0; 16]); // pre_defined, reserved
    buf.put_u16(width.min(0xffff) as u16);
    buf.put_u16(height.min(0xffff) as u16);
    buf.put_u32(0x0048_0000); // 72 dpi
    buf.put_u32(0x0048_0000);
    buf.put_u32(0);
    buf.put_u16(1); // frame_count
    buf.put_slice(&[0; 32]); // compressorname: empty Pascal string
    buf.put_u16(0x0018); // depth: colour, no alpha
    buf.put_i16(-1); // pre_defined
}

/// SampleEntry + AudioSampleEntry fields before the child boxes (§8.5.2, §12.2.3).
fn write_audio_entry_fields(buf: &mut BytesMut, channels: u8, sample_rate: u32) {
    buf.put_slice(&[0; 6]);
    buf.put_u16(1); // data_reference_index
    buf.put_u64(0);
    buf.put_u16(u16::from(channels));
    buf.put_u16(16); // samplesize
    buf.put_u32(0); // pre_defined, reserved
                    // 16.16 fixed point; rates past 65535 Hz (88.2/96 kHz AAC) do not fit and are written as 0,
                    // players take the rate from the AudioSpecificConfig.
    buf.put_u32(if sample_rate <= 0xffff {
        sample_rate << 16
    } else {
        0
    });
}

/// `esds` (ISO/IEC 14496-14 §5.6) with the ES, DecoderConfig, DecoderSpecificInfo and SLConfig
/// descriptors of ISO/IEC 14496-1 §7.2.6.
fn write_esds(buf: &mut BytesMut, audio_specific_config: &[u8]) {
    // Descriptor sizes are at most four 7-bit groups (2^28 - 1); an ASC is a few bytes.
    let asc = &audio_specific_config[..audio_specific_config.len().min(0xffff)];
    let dsi_len = asc.len();
    let dcd_len = 13 + descriptor_total(dsi_len);
    let es_len = 3 + descriptor_total(dcd_len) + descriptor_total(1);
    write_full_box(buf, b"esds", 0, 0, |b| {
        write_descriptor_header(b, 0x03, es_len); // ES_Descriptor
        b.put_u16(0); // ES_ID
        b.put_u8(0); // no dependency, URL or OCR stream
        write_descriptor_header(b, 0x04, dcd_len); // DecoderConfigDescriptor
        b.put_u8(0x40); // objectTypeIndication: MPEG-4 Audio
        b.put_u8((0x05 << 2) | 1); // streamType audio, upStream 0, reserved 1
        b.put_slice(&[0; 3]); // bufferSizeDB
        b.put_u32(0); // maxBitrate
        b.put_u32(0); // avgBitrate
        write_descriptor_header(b, 0x05, dsi_len); // DecoderSpecificInfo
        b.put_slice(asc);
        write_descriptor_header(b, 0x06, 1); // SLConfigDescriptor
        b.put_u8(0x02); // predefined: reserved for use in MP4 files
    });
}

fn descriptor_len_bytes(len: usize) -> usize {
    match len {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        _ => 4,
    }
}

fn descriptor_total(payload: usize) -> usize {
    1 + descriptor_len_bytes(payload) + payload
}

/// Tag plus the expandable size: 7 bits per byte, high bit set on all but the last.
fn write_descriptor_header(buf: &mut BytesMut, tag: u8, len: usize) {
    buf.put_u8(tag);
    let n = descriptor_len_bytes(len);
    for i in (0..n).rev() {
        let byte = ((len >> (7 * i)) & 0x7f) as u8;
        buf.put_u8(if i == 0 { byte } else { byte | 0x80 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::fmp4::test_support::{child, u32_at};
    use crate::mux::fmp4::TrackSpec;
    use bytes::Bytes;

    /// Offset of child boxes in an AudioSampleEntry body.
    const AUDIO_CHILDREN: usize = 28;

    #[test]
    fn aac_esds_nests_the_audio_specific_config_in_mpeg4_descriptors() {
        // AAC-LC, 48 kHz, stereo: object type 2, frequency index 3, channel config 2.
        let asc = Bytes::from_static(&[0x11, 0x90]);
        let track = TrackSpec {
            track_id: 2,
            timescale: 48_000,
            codec: TrackCodec::Aac {
                audio_specific_config: asc,
                sample_rate: 48_000,
                channels: 2,
            },
        };
        assert_eq!(track.codec.codec_string(), "mp4a.40.2");
        let mut buf = BytesMut::new();
        write_sample_entry(&mut buf, &track.codec);
        let mp4a = child(&buf, "mp4a").unwrap();
        let esds = child(&mp4a[AUDIO_CHILDREN..], "esds").unwrap();
        let expected: &[u8] = &[
            0, 0, 0, 0, // version, flags
            0x03, 25, 0, 0, 0, // ES_Descriptor, ES_ID 0, flags 0
            0x04, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // DecoderConfig
            0x05, 2, 0x11, 0x90, // DecoderSpecificInfo = ASC
            0x06, 1, 0x02, // SLConfig
        ];
        assert_eq!(esds, expected);
    }

    #[test]
    fn descriptor_sizes_use_continuation_bytes_past_127() {
        let mut buf = BytesMut::new();
        write_descriptor_header(&mut buf, 0x05, 200);
        assert_eq!(&buf[..], &[0x05, 0x81, 0x48]);
        assert_eq!(descriptor_total(200), 203);
    }

    #[test]
    fn audio_sample_rates_past_16_bits_are_written_as_zero() {
        let mut buf = BytesMut::new();
        write_audio_entry_fields(&mut buf, 2, 96_000);
        assert_eq!(u32_at(&buf, 24), 0);
    }
}
