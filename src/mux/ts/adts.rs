//! The AAC track of a TS program: [`TsAudio`], checked once against the ADTS header's limits,
//! and the 7-byte ADTS header (ISO/IEC 13818-7 §6.2 / ISO/IEC 14496-3 §1.A.2.2, no CRC) that
//! every raw AAC frame gets in the PES.

use bytes::Bytes;

use super::TsError;
use crate::audio::{sampling_frequency_index, AAC_FRAME_SAMPLES};
use crate::media::CLOCK_RATE;
use crate::mux::fmp4::TrackCodec;

/// Bytes of an ADTS header without CRC (protection_absent = 1).
pub const ADTS_HEADER_LEN: usize = 7;
/// aac_frame_length is 13 bits and counts the header.
pub const MAX_ADTS_FRAME_LEN: usize = (1 << 13) - 1;
/// The escape value of audioObjectType (ISO/IEC 14496-3 §1.6.2.1).
const AOT_ESCAPE: u8 = 31;

/// The AAC stream of a [`super::TsTracks`]: its configuration, checked to fit ADTS. ADTS has
/// a 2-bit profile (audio object type − 1, so types 1 to 4; AAC-LC is 2), a sampling frequency
/// index from the 13-entry table and a 3-bit channel configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsAudio {
    sample_rate: u32,
    channels: u8,
    audio_specific_config: Bytes,
    /// ADTS profile (2 bits), sampling_frequency_index (4), channel_configuration (3).
    profile: u8,
    frequency_index: u8,
    channel_configuration: u8,
}

impl TsAudio {
    /// Checks an AAC configuration: the AudioSpecificConfig gives the object type (its first 5
    /// bits; it must be 1 to 4) and, when it is 2 bytes or longer, must agree with
    /// `sample_rate` and `channels` (1 to 6, or 8 as configuration 7).
    pub fn new(
        audio_specific_config: Bytes,
        sample_rate: u32,
        channels: u8,
    ) -> Result<Self, TsError> {
        let frequency_index =
            sampling_frequency_index(sample_rate).map_err(|_| TsError::SampleRate(sample_rate))?;
        let channel_configuration = match channels {
            1..=6 => channels,
            8 => 7,
            _ => return Err(TsError::Channels(channels)),
        };
        let &first = audio_specific_config
            .first()
            .ok_or(TsError::AudioSpecificConfig("empty"))?;
        let object_type = first >> 3;
        if object_type == AOT_ESCAPE || !(1..=4).contains(&object_type) {
            return Err(TsError::AudioObjectType(object_type));
        }
        if let Some(&second) = audio_specific_config.get(1) {
            let asc_index = (first & 0x07) << 1 | second >> 7;
            let asc_channels = (second >> 3) & 0x0f;
            if asc_index != frequency_index || asc_channels != channel_configuration {
                return Err(TsError::AudioSpecificConfig(
                    "sampling frequency or channels differ from the track's",
                ));
            }
        }
        Ok(TsAudio {
            sample_rate,
            channels,
            audio_specific_config,
            profile: object_type - 1,
            frequency_index,
            channel_configuration,
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn channels(&self) -> u8 {
        self.channels
    }

    pub fn audio_specific_config(&self) -> &Bytes {
        &self.audio_specific_config
    }

    /// The audio object type (2 for AAC-LC).
    pub fn audio_object_type(&self) -> u8 {
        self.profile + 1
    }

    /// One frame's duration in 90 kHz ticks, rounded up.
    pub(crate) fn frame_ticks(&self) -> i64 {
        let ticks = u64::from(AAC_FRAME_SAMPLES) * u64::from(CLOCK_RATE);
        ticks.div_ceil(u64::from(self.sample_rate.max(1))) as i64
    }

    /// The ADTS header of a frame with `payload_len` raw bytes (the caller keeps
    /// `ADTS_HEADER_LEN + payload_len` within [`MAX_ADTS_FRAME_LEN`]).
    pub(crate) fn adts_header(&self, payload_len: usize) -> [u8; ADTS_HEADER_LEN] {
        let len = (ADTS_HEADER_LEN + payload_len) as u32;
        // original_copy, home and the copyright bits 0; then aac_frame_length (13 bits),
        // adts_buffer_fullness 0x7FF (variable rate), number_of_raw_data_blocks_in_frame 0.
        let tail = u32::from(self.channel_configuration & 3) << 30 | len << 13 | 0x7ff << 2;
        let [t0, t1, t2, t3] = tail.to_be_bytes();
        [
            // syncword 0xFFF, ID 0 (MPEG-4), layer 0, protection_absent 1.
            0xff,
            0xf1,
            self.profile << 6 | self.frequency_index << 2 | self.channel_configuration >> 2,
            t0,
            t1,
            t2,
            t3,
        ]
    }
}

/// The TS audio of an fMP4 track: AAC only (Opus has no place in HLS TS).
impl TryFrom<&TrackCodec> for TsAudio {
    type Error = TsError;

    fn try_from(codec: &TrackCodec) -> Result<Self, TsError> {
        match codec {
            TrackCodec::Aac {
                audio_specific_config,
                sample_rate,
                channels,
            } => TsAudio::new(audio_specific_config.clone(), *sample_rate, *channels),
            _ => Err(TsError::NotAac),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lc(sample_rate: u32, channels: u8) -> TsAudio {
        let asc = crate::audio::audio_specific_config(sample_rate, channels).unwrap();
        TsAudio::new(Bytes::copy_from_slice(&asc), sample_rate, channels).unwrap()
    }

    #[test]
    fn adts_header_of_48k_stereo_lc() {
        let buf = lc(48_000, 2).adts_header(100);
        // Profile 1 (LC), index 3, channels 2, length 107, fullness 0x7FF, one raw block.
        assert_eq!(&buf[..], &[0xff, 0xf1, 0x4c, 0x80, 0x0d, 0x7f, 0xfc]);
    }

    #[test]
    fn adts_header_of_44k1_mono_and_a_long_frame() {
        let buf = lc(44_100, 1).adts_header(MAX_ADTS_FRAME_LEN - ADTS_HEADER_LEN);
        assert_eq!(buf[2], 0x50, "LC, index 4, channel bit 2 clear");
        let len =
            (usize::from(buf[3] & 3) << 11) | usize::from(buf[4]) << 3 | usize::from(buf[5] >> 5);
        assert_eq!(len, MAX_ADTS_FRAME_LEN);
        assert_eq!(buf[3] >> 6, 1, "mono");
    }

    #[test]
    fn frame_ticks_round_up() {
        assert_eq!(lc(48_000, 2).frame_ticks(), 1920);
        assert_eq!(lc(44_100, 2).frame_ticks(), 2090);
    }

    #[test]
    fn configurations_adts_cannot_carry_are_refused() {
        let asc = || Bytes::from_static(&[0x11, 0x90]);
        assert_eq!(
            TsAudio::new(asc(), 47_999, 2),
            Err(TsError::SampleRate(47_999))
        );
        assert_eq!(TsAudio::new(asc(), 48_000, 0), Err(TsError::Channels(0)));
        assert_eq!(TsAudio::new(asc(), 48_000, 7), Err(TsError::Channels(7)));
        assert!(matches!(
            TsAudio::new(Bytes::new(), 48_000, 2),
            Err(TsError::AudioSpecificConfig(_))
        ));
        // HE-AAC (object type 5) signalled explicitly has no ADTS profile.
        assert_eq!(
            TsAudio::new(Bytes::from_static(&[0x29, 0x90]), 48_000, 2),
            Err(TsError::AudioObjectType(5))
        );
        // A mono ASC for a stereo track.
        assert!(matches!(
            TsAudio::new(Bytes::from_static(&[0x11, 0x88]), 48_000, 2),
            Err(TsError::AudioSpecificConfig(_))
        ));
        let audio = TsAudio::new(asc(), 48_000, 2).unwrap();
        assert_eq!(audio.audio_object_type(), 2);
    }

    #[test]
    fn from_fmp4_track_codec() {
        let aac = TrackCodec::Aac {
            audio_specific_config: Bytes::from_static(&[0x11, 0x88]),
            sample_rate: 48_000,
            channels: 1,
        };
        let audio = TsAudio::try_from(&aac).unwrap();
        assert_eq!((audio.sample_rate(), audio.channels()), (48_000, 1));
        let opus = TrackCodec::Opus {
            sample_rate: 48_000,
            channels: 2,
            pre_skip: 312,
        };
        assert_eq!(TsAudio::try_from(&opus), Err(TsError::NotAac));
    }
}
