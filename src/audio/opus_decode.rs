//! Opus decoding for the transcoder: TOC inspection (duration, channels; RFC 6716 §3.1), the
//! small [`OpusDecoder`] trait (decode, loss concealment, in-band FEC), and its implementation
//! on the pure-Rust `opus-rs` decoder, always at 48 kHz.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::AudioError;

/// Opus in WebRTC is decoded at 48 kHz: its RTP clock (RFC 7587 §4.1) and AAC's best rate.
pub const OPUS_SAMPLE_RATE: u32 = 48_000;

/// The longest Opus packet, 120 ms (RFC 6716 §3.2.5), in 48 kHz samples.
pub const MAX_PACKET_SAMPLES: usize = 5760;

/// Concealment works in whole 2.5 ms steps, the shortest Opus frame (RFC 6716 §2.1.4).
pub const CONCEAL_GRANULE: usize = 120;

/// Samples (48 kHz) in one Opus packet, from its TOC byte and, for code 3, its frame-count
/// byte (RFC 6716 §3.1, §3.2.5). Errors on an empty packet, a code 3 packet without the count,
/// a zero count, or more than 120 ms.
pub fn packet_samples(packet: &[u8]) -> Result<usize, AudioError> {
    let toc = *packet
        .first()
        .ok_or(AudioError::BadPacket("empty packet"))?;
    let config = toc >> 3;
    let frame: usize = match config {
        // SILK-only NB/MB/WB: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config & 3)],
        // Hybrid SWB/FB: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config & 1)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config & 3)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let count = packet
                .get(1)
                .ok_or(AudioError::BadPacket("code 3 packet without frame count"))?;
            usize::from(count & 0x3f)
        }
    };
    match frame * frames {
        0 => Err(AudioError::BadPacket("code 3 packet with zero frames")),
        n if n > MAX_PACKET_SAMPLES => Err(AudioError::BadPacket("packet longer than 120 ms")),
        n => Ok(n),
    }
}

/// Channels coded in the packet, from the TOC's stereo flag (RFC 6716 §3.1). WebRTC SDP always
/// says `opus/48000/2` (RFC 7587 §7), so this, not the SDP, tells a mono publisher (Chrome's
/// default) from a stereo one (`stereo=1`).
pub fn packet_channels(packet: &[u8]) -> Option<u8> {
    packet
        .first()
        .map(|toc| if toc & 0x04 != 0 { 2 } else { 1 })
}

/// An Opus decoder at 48 kHz giving interleaved `f32` PCM. Returned slices borrow the
/// decoder's buffer until the next call.
pub trait OpusDecoder: Send {
    /// Output channels (a mono packet is played on both channels of a stereo decoder, a stereo
    /// packet is downmixed by a mono one).
    fn channels(&self) -> u8;
    /// Decodes one packet: `packet_samples(packet)` samples per channel. A packet of one byte
    /// (TOC only, as DTX may send) is concealed for the duration its TOC gives.
    fn decode(&mut self, packet: &[u8]) -> Result<&[f32], AudioError>;
    /// Packet loss concealment for `samples` missing samples (a multiple of
    /// [`CONCEAL_GRANULE`], at most [`MAX_PACKET_SAMPLES`]), continuing the last decoded signal.
    fn conceal(&mut self, samples: usize) -> Result<&[f32], AudioError>;
    /// Rebuilds the `samples` right before `next` from `next`'s in-band FEC (SILK LBRR,
    /// RFC 6716 §4.2.4) where it has some, concealing otherwise. `next` itself still has to
    /// be decoded afterwards.
    fn recover(&mut self, next: &[u8], samples: usize) -> Result<&[f32], AudioError>;
}

/// [`OpusDecoder`] on `opus-rs` (pure Rust port of libopus 1.6, BSD-3-Clause).
pub struct OpusRsDecoder {
    inner: opus_rs::OpusDecoder,
    channels: u8,
    pcm: Vec<f32>,
}

impl OpusRsDecoder {
    pub fn new(channels: u8) -> Result<Self, AudioError> {
        Ok(Self {
            inner: Self::build(channels)?,
            channels,
            pcm: vec![0.0; MAX_PACKET_SAMPLES * usize::from(channels)],
        })
    }

    fn build(channels: u8) -> Result<opus_rs::OpusDecoder, AudioError> {
        if !(1..=2).contains(&channels) {
            return Err(AudioError::Channels(channels));
        }
        opus_rs::OpusDecoder::new(OPUS_SAMPLE_RATE as i32, usize::from(channels))
            .map_err(AudioError::Decode)
    }

    /// Runs one decoder call on the scratch buffer. Packets come from the network: should the
    /// decoder panic on one, it is replaced by a fresh decoder and the packet counts as lost.
    fn run(
        &mut self,
        samples: usize,
        call: impl FnOnce(&mut opus_rs::OpusDecoder, &mut [f32]) -> Result<usize, &'static str>,
    ) -> Result<&[f32], AudioError> {
        let channels = usize::from(self.channels);
        let out = &mut self.pcm[..samples * channels];
        let inner = &mut self.inner;
        match catch_unwind(AssertUnwindSafe(|| call(inner, out))) {
            Ok(Ok(n)) if n <= samples => Ok(&self.pcm[..n * channels]),
            Ok(Ok(_)) => Err(AudioError::Decode("decoder wrote more than asked")),
            Ok(Err(e)) => Err(AudioError::Decode(e)),
            Err(_) => {
                self.inner = Self::build(self.channels)?;
                Err(AudioError::Decode("decoder panicked"))
            }
        }
    }

    fn check_conceal(samples: usize) -> Result<(), AudioError> {
        if samples == 0 || !samples.is_multiple_of(CONCEAL_GRANULE) || samples > MAX_PACKET_SAMPLES
        {
            return Err(AudioError::BadPacket(
                "concealment length not a 2.5 ms multiple",
            ));
        }
        Ok(())
    }
}

impl OpusDecoder for OpusRsDecoder {
    fn channels(&self) -> u8 {
        self.channels
    }

    fn decode(&mut self, packet: &[u8]) -> Result<&[f32], AudioError> {
        let samples = packet_samples(packet)?;
        self.run(samples, |dec, out| dec.decode(packet, samples, out))
    }

    fn conceal(&mut self, samples: usize) -> Result<&[f32], AudioError> {
        Self::check_conceal(samples)?;
        self.run(samples, |dec, out| dec.decode(&[], samples, out))
    }

    fn recover(&mut self, next: &[u8], samples: usize) -> Result<&[f32], AudioError> {
        Self::check_conceal(samples)?;
        packet_samples(next)?;
        self.run(samples, |dec, out| dec.decode_fec(next, samples, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toc_durations_follow_rfc6716_table() {
        assert_eq!(packet_samples(&[31 << 3, 0]), Ok(960)); // CELT FB 20 ms
        assert_eq!(packet_samples(&[1 << 3 | 1]), Ok(1920)); // SILK NB 20 ms, two frames
        assert_eq!(packet_samples(&[13 << 3 | 2]), Ok(1920)); // Hybrid 20 ms, two frames
        assert_eq!(packet_samples(&[3 << 3]), Ok(2880)); // SILK 60 ms
        assert_eq!(packet_samples(&[16 << 3 | 3, 4]), Ok(480)); // CELT 2.5 ms x4
        assert_eq!(packet_samples(&[3 << 3 | 3, 2]), Ok(5760)); // 2 x 60 ms = 120 ms
    }

    #[test]
    fn malformed_tocs_are_errors() {
        assert!(packet_samples(&[]).is_err());
        assert!(packet_samples(&[16 << 3 | 3]).is_err()); // code 3 without count
        assert!(packet_samples(&[16 << 3 | 3, 0]).is_err()); // zero frames
        assert!(packet_samples(&[3 << 3 | 3, 3]).is_err()); // 180 ms > 120 ms
    }

    #[test]
    fn stereo_flag_gives_channels() {
        assert_eq!(packet_channels(&[0xfc]), Some(2));
        assert_eq!(packet_channels(&[0xf8]), Some(1));
        assert_eq!(packet_channels(&[]), None);
    }

    #[test]
    fn three_channel_decoder_is_refused() {
        assert!(matches!(
            OpusRsDecoder::new(3),
            Err(AudioError::Channels(3))
        ));
    }

    #[test]
    fn toc_only_packet_is_concealed_for_its_duration() {
        // DTX may send TOC-only packets; before any audio, concealment is silence.
        let mut dec = OpusRsDecoder::new(2).unwrap();
        let pcm = dec.decode(&[31 << 3 | 0x04]).unwrap();
        assert_eq!(pcm.len(), 960 * 2);
        assert!(pcm.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn conceal_lengths_must_be_whole_granules() {
        let mut dec = OpusRsDecoder::new(1).unwrap();
        assert_eq!(dec.conceal(960).unwrap().len(), 960);
        assert!(dec.conceal(100).is_err());
        assert!(dec.conceal(0).is_err());
        assert!(dec.conceal(MAX_PACKET_SAMPLES + 120).is_err());
    }

    #[test]
    fn garbage_packets_give_errors_or_audio_never_panics() {
        let mut dec = OpusRsDecoder::new(2).unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..400usize {
            let packet: Vec<u8> = (0..len % 97)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            if let Ok(pcm) = dec.decode(&packet) {
                assert_eq!(pcm.len(), packet_samples(&packet).unwrap() * 2);
            }
            let _ = dec.recover(&packet, 960);
        }
    }
}
