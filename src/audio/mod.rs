//! Audio transcoding: Opus from WebRTC publishers to AAC-LC for HLS and FLV players.
//!
//! Browsers publish Opus; iPhone HLS and FLV players only play AAC. [`OpusToAac`] decodes each
//! Opus packet (`opus-rs`, pure Rust port of libopus, BSD-3-Clause) and re-encodes AAC-LC
//! (`syom`, pure Rust, MIT) at 48 kHz with the source's channel count. Both crates build with
//! plain `cargo build`, no system libraries. Sans-IO: frames in, frames out, no clock.
//!
//! Timing: Opus packets are 960 samples, AAC frames 1024, so AAC frames are stamped from a
//! count of samples fed to the encoder, anchored on the first Opus packet's pts — never from
//! Opus timestamps: frame `k` of the encoder plays at `anchor + (k * 1024 - delay) * 15 / 8`
//! (90 kHz), computed afresh for each frame; priming frames (negative time) are dropped. Lost
//! packets are concealed (PLC, or FEC from the next packet), DTX and mutes are filled, so the
//! count always matches media time and nothing drifts.
//!
//! Use, per stream (the hub):
//!
//! ```text
//! let mut aac = OpusToAac::new(TranscodeConfig::for_packet(&first_opus_frame.data))?;
//! // ASC for the fMP4 esds / FLV AAC sequence header: aac.audio_specific_config()
//! for event in depacketizer events { aac.push(event) }
//! aac.fill_until(media_time_on_the_audio_time_base);   // as video (or the clock) advances
//! while let Some(frame) = aac.poll() { /* Codec::Aac, raw AAC frame */ }
//! aac.finish();                                         // at the end of the stream
//! ```

mod aac;
mod error;
mod opus_decode;
mod transcode;

pub use aac::{
    audio_specific_config, default_bitrate, sampling_frequency_index, AacEncoder, SyomAacEncoder,
    AAC_FRAME_SAMPLES,
};
pub use error::AudioError;
pub use opus_decode::{
    packet_channels, packet_samples, OpusDecoder, OpusRsDecoder, CONCEAL_GRANULE,
    MAX_PACKET_SAMPLES, OPUS_SAMPLE_RATE,
};
pub use transcode::{OpusToAac, TranscodeConfig, TranscodeStats, DEFAULT_STALL_THRESHOLD};
