//! AAC-LC encoding: the AudioSpecificConfig both muxers need, the small [`AacEncoder`] trait
//! the transcoder encodes through, and its implementation on the pure-Rust `syom` encoder.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;

use super::AudioError;

/// Samples per channel in one AAC-LC frame (ISO/IEC 14496-3 §4.5.1, `frameLengthFlag` 0).
pub const AAC_FRAME_SAMPLES: u32 = 1024;

/// Audio object type 2, AAC Low Complexity (ISO/IEC 14496-3 §1.5.1.1).
const AOT_AAC_LC: u16 = 2;

/// The sampling frequency table of ISO/IEC 14496-3 §1.6.3.4; the index is what the
/// AudioSpecificConfig and the ADTS header carry.
const SAMPLING_FREQUENCIES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// Index of `sample_rate` in the AAC sampling frequency table.
pub fn sampling_frequency_index(sample_rate: u32) -> Result<u8, AudioError> {
    SAMPLING_FREQUENCIES
        .iter()
        .position(|&f| f == sample_rate)
        .map(|i| i as u8)
        .ok_or(AudioError::SampleRate(sample_rate))
}

/// The 2-byte AudioSpecificConfig of AAC-LC (ISO/IEC 14496-3 §1.6.2.1): object type (5 bits),
/// sampling frequency index (4), channel configuration (4), then the GASpecificConfig flags
/// `frameLengthFlag`, `dependsOnCoreCoder`, `extensionFlag`, all 0 (1024-sample frames).
/// fMP4 puts it in the `esds` box (ISO/IEC 14496-1 DecoderSpecificInfo) and FLV in the
/// AAC sequence header tag. 48 kHz stereo is `11 90`, mono `11 88`.
pub fn audio_specific_config(sample_rate: u32, channels: u8) -> Result<[u8; 2], AudioError> {
    let index = sampling_frequency_index(sample_rate)?;
    if !(1..=2).contains(&channels) {
        return Err(AudioError::Channels(channels));
    }
    let bits = AOT_AAC_LC << 11 | u16::from(index) << 7 | u16::from(channels) << 3;
    Ok(bits.to_be_bytes())
}

/// The default AAC-LC bitrate: 64 kb/s per channel (128 kb/s stereo, 64 kb/s mono), where
/// AAC-LC at 48 kHz is near transparent for speech and most music.
pub fn default_bitrate(channels: u8) -> u32 {
    64_000 * u32::from(channels)
}

/// An AAC-LC encoder for the transcoder: interleaved PCM in, raw AAC frames out.
///
/// Timing contract: the `k`-th frame returned since construction (counting from 0) decodes to
/// the 1024 input samples that start `k * 1024 - delay_samples()` samples after the first
/// input sample; frames before `delay_samples()` are priming. Frames come out in order, as
/// soon as enough input is buffered, with no further lookahead.
pub trait AacEncoder: Send {
    /// Encodes interleaved PCM (`channels()` values per sample frame, any number of frames,
    /// nominally in `[-1, 1]`) and returns the raw AAC frames (no ADTS) completed by it.
    fn encode(&mut self, pcm: &[f32]) -> Result<Vec<Bytes>, AudioError>;
    /// Encoder delay (priming) in samples per channel.
    fn delay_samples(&self) -> u32;
    /// The AudioSpecificConfig of the frames it produces.
    fn audio_specific_config(&self) -> Bytes;
    fn sample_rate(&self) -> u32;
    fn channels(&self) -> u8;
}

/// AAC-LC through `syom` (pure Rust, MIT): long/short windows, M/S stereo, ABR rate control.
/// Its push encoder without lookahead delays output by exactly one frame (1024 samples).
pub struct SyomAacEncoder {
    inner: syom::Encoder,
    sample_rate: u32,
    channels: u8,
    bitrate: u32,
    asc: Bytes,
    /// Deinterleaved, sanitised input, reused across calls.
    planes: [Vec<f32>; 2],
}

impl SyomAacEncoder {
    /// Encoder delay of syom's LC encoder without lookahead (its `EncodeInfo::priming`).
    const DELAY: u32 = AAC_FRAME_SAMPLES;

    /// A raw-frame AAC-LC encoder at `bitrate` b/s (whole stream, all channels).
    pub fn new(sample_rate: u32, channels: u8, bitrate: u32) -> Result<Self, AudioError> {
        let asc = audio_specific_config(sample_rate, channels)?;
        // An AAC frame carries at most 6144 bits per channel (ISO/IEC 14496-3 §4.5.3.2).
        let max = u64::from(6144 * u32::from(channels)) * u64::from(sample_rate)
            / u64::from(AAC_FRAME_SAMPLES);
        if bitrate == 0 || u64::from(bitrate) > max {
            return Err(AudioError::Bitrate(bitrate));
        }
        let inner = Self::build(sample_rate, channels, bitrate)?;
        Ok(Self {
            inner,
            sample_rate,
            channels,
            bitrate,
            asc: Bytes::copy_from_slice(&asc),
            planes: [Vec::new(), Vec::new()],
        })
    }

    fn build(sample_rate: u32, channels: u8, bitrate: u32) -> Result<syom::Encoder, AudioError> {
        let options = syom::EncodeOptions::raw().with_bitrate_bps(bitrate);
        syom::Encoder::new(sample_rate, usize::from(channels), &options)
            .map_err(|e| AudioError::Encode(e.to_string()))
    }

    /// The configured bitrate in b/s.
    pub fn bitrate(&self) -> u32 {
        self.bitrate
    }

    /// After a failure syom refuses input until reset; a fresh start beats a dead track.
    fn recover(&mut self) {
        if self.inner.reset().is_err() {
            if let Ok(fresh) = Self::build(self.sample_rate, self.channels, self.bitrate) {
                self.inner = fresh;
            }
        }
    }
}

/// A sample syom accepts: clipped to `[-1, 1]`, non-finite values silenced.
#[inline]
fn sanitize(x: f32) -> f32 {
    if x.is_finite() {
        x.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

impl AacEncoder for SyomAacEncoder {
    fn encode(&mut self, pcm: &[f32]) -> Result<Vec<Bytes>, AudioError> {
        let channels = usize::from(self.channels);
        if !pcm.len().is_multiple_of(channels) {
            return Err(AudioError::PcmShape {
                len: pcm.len(),
                channels: self.channels,
            });
        }
        // syom rejects samples outside [-1, 1] and non-finite ones (and then stops);
        // decoders may overshoot slightly, so clip here rather than lose the stream.
        // One pass over whole sample frames (not one strided pass per channel): the
        // deinterleave runs on every decoded packet.
        let frames_in = pcm.len() / channels;
        let [left, right] = &mut self.planes;
        left.resize(frames_in, 0.0);
        if channels == 1 {
            for (out, &x) in left.iter_mut().zip(pcm) {
                *out = sanitize(x);
            }
        } else {
            right.resize(frames_in, 0.0);
            for ((l, r), frame) in left
                .iter_mut()
                .zip(right.iter_mut())
                .zip(pcm.chunks_exact(2))
            {
                *l = sanitize(frame[0]);
                *r = sanitize(frame[1]);
            }
        }
        let planes: [&[f32]; 2] = [&self.planes[0], &self.planes[1]];
        let mut frames = Vec::new();
        let inner = &mut self.inner;
        // The encoder runs on bytes from the network (via the decoder); a bug in it must cost
        // this call, not the whole gateway task.
        let result = catch_unwind(AssertUnwindSafe(|| {
            inner.feed(&planes[..channels], |frame| {
                frames.push(Bytes::copy_from_slice(frame.au));
                Ok(())
            })
        }));
        match result {
            Ok(Ok(_)) => Ok(frames),
            Ok(Err(e)) => {
                self.recover();
                Err(AudioError::Encode(e.to_string()))
            }
            Err(_) => {
                self.recover();
                Err(AudioError::Encode("encoder panicked".into()))
            }
        }
    }

    fn delay_samples(&self) -> u32 {
        Self::DELAY
    }

    fn audio_specific_config(&self) -> Bytes {
        self.asc.clone()
    }

    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn channels(&self) -> u8 {
        self.channels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_48k_stereo_is_11_90() {
        assert_eq!(audio_specific_config(48_000, 2), Ok([0x11, 0x90]));
    }

    #[test]
    fn asc_48k_mono_is_11_88() {
        assert_eq!(audio_specific_config(48_000, 1), Ok([0x11, 0x88]));
    }

    #[test]
    fn asc_44k1_stereo_uses_index_4() {
        // 00010 0100 0010 000 -> 0x12 0x10, the well-known 44.1 kHz stereo LC config.
        assert_eq!(audio_specific_config(44_100, 2), Ok([0x12, 0x10]));
    }

    #[test]
    fn asc_rejects_rates_outside_the_table_and_odd_channel_counts() {
        assert_eq!(
            audio_specific_config(47_999, 2),
            Err(AudioError::SampleRate(47_999))
        );
        assert_eq!(
            audio_specific_config(48_000, 0),
            Err(AudioError::Channels(0))
        );
        assert_eq!(
            audio_specific_config(48_000, 3),
            Err(AudioError::Channels(3))
        );
    }

    #[test]
    fn syom_encoder_reports_our_asc_and_one_frame_delay() {
        let enc = SyomAacEncoder::new(48_000, 2, 128_000).unwrap();
        assert_eq!(&enc.audio_specific_config()[..], &[0x11, 0x90]);
        assert_eq!(enc.delay_samples(), 1024);
        assert_eq!((enc.sample_rate(), enc.channels()), (48_000, 2));
    }

    #[test]
    fn syom_encoder_emits_one_frame_per_1024_samples_in_any_chunking() {
        let mut enc = SyomAacEncoder::new(48_000, 1, 64_000).unwrap();
        let tone: Vec<f32> = (0..5 * 1024)
            .map(|i| 0.25 * (i as f32 * 0.13).sin())
            .collect();
        let mut counts = Vec::new();
        for chunk in tone.chunks(960) {
            counts.push(enc.encode(chunk).unwrap().len());
        }
        // 960, 1920, 2880, 3840, 4800, 5120 samples in: frames complete at 1024..5120.
        assert_eq!(counts, vec![0, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn out_of_range_and_nan_samples_are_clipped_not_fatal() {
        let mut enc = SyomAacEncoder::new(48_000, 2, 128_000).unwrap();
        let mut pcm = vec![1.5f32; 2048];
        pcm[7] = f32::NAN;
        pcm[8] = f32::NEG_INFINITY;
        assert_eq!(enc.encode(&pcm).unwrap().len(), 1);
        assert_eq!(enc.encode(&[0.0; 2048]).unwrap().len(), 1);
    }

    #[test]
    fn sanitize_clips_to_unit_range_and_silences_non_finite() {
        assert_eq!(sanitize(0.25), 0.25);
        assert_eq!(sanitize(1.5), 1.0);
        assert_eq!(sanitize(-2.0), -1.0);
        assert_eq!(sanitize(f32::NAN), 0.0);
        assert_eq!(sanitize(f32::INFINITY), 0.0);
        assert_eq!(sanitize(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn ragged_interleaved_input_is_an_error() {
        let mut enc = SyomAacEncoder::new(48_000, 2, 128_000).unwrap();
        assert_eq!(
            enc.encode(&[0.0; 3]),
            Err(AudioError::PcmShape {
                len: 3,
                channels: 2
            })
        );
    }

    #[test]
    fn bitrate_zero_or_beyond_6144_bits_per_channel_is_rejected() {
        assert!(matches!(
            SyomAacEncoder::new(48_000, 2, 0),
            Err(AudioError::Bitrate(0))
        ));
        // 6144 * 2 * 48000 / 1024 = 576 kb/s is the stereo ceiling.
        assert!(SyomAacEncoder::new(48_000, 2, 576_000).is_ok());
        assert!(matches!(
            SyomAacEncoder::new(48_000, 2, 576_001),
            Err(AudioError::Bitrate(576_001))
        ));
    }
}
