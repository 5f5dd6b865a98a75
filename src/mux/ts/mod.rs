//! MPEG-TS segment writer for HLS (ISO/IEC 13818-1 transport stream; Apple HLS authoring
//! spec): H.264 and AAC-LC in one program, one self-contained segment per call.
//!
//! Sans-IO, like the other muxers: samples in, `Bytes` out, each segment written into one
//! buffer allocated at its exact size. The API:
//!
//! - [`TsTracks`] `{ video: Option<ParameterSets>, audio: Option<TsAudio> }` configures the
//!   program. [`TsAudio::new`]`(audio_specific_config, sample_rate, channels)` checks that an
//!   AAC configuration fits the ADTS header (object type 1–4 from the AudioSpecificConfig,
//!   AAC-LC being 2; a rate of the AAC table; 1–6 or 8 channels; an ASC that agrees) and
//!   `TsAudio::try_from(&TrackCodec::Aac { .. })` does the same from an fMP4 track.
//! - [`TsSample`] `{ pts, dts, keyframe, data }`: 90 kHz ticks on any origin (written modulo
//!   2^33); video data is an AVCC access unit without SPS/PPS/AUD, audio data one raw AAC
//!   frame.
//! - [`TsMuxer::new`]`(tracks)`, [`TsMuxer::set_tracks`]`(tracks)` (takes effect with the next
//!   segment; the PMT version moves on when a stream appears or goes away) and
//!   [`TsMuxer::segment`]`(&video, &audio) -> Bytes`. The muxer keeps the continuity counters
//!   of every PID, PAT and PMT included, so consecutive segments concatenate into one
//!   continuous stream.
//!
//! What a segment holds:
//!
//! - PAT (PID 0, program 1) and PMT ([`PMT_PID`]) first, each one section in one packet with
//!   its CRC-32/MPEG-2. Video is [`VIDEO_PID`] (stream_type 0x1B), audio [`AUDIO_PID`] (0x0F,
//!   ADTS). The PCR is on the video PID, or on the audio PID when there is no video.
//! - Then the PES packets in decode-time order (video first on a tie). Video: one access unit
//!   a PES (stream_id 0xE0, PES_packet_length 0) in Annex B with 4-byte start codes: an access
//!   unit delimiter, on keyframes the SPS and PPS, then the frame's NAL units. Audio (stream_id
//!   0xC0): consecutive frames, each behind a 7-byte ADTS header, grouped into one PES of up to
//!   about 100 ms and 4 KiB (the PTS is the first frame's), as most muxers do: one frame a PES
//!   would cost a mostly stuffed packet per 21 ms frame. When the audio carries the PCR
//!   (no video) its PES packets span at most [`PCR_INTERVAL`], so that each carries a PCR:
//!   one frame a PES at 48 kHz.
//! - PTS, and DTS when it differs; data_alignment_indicator set. A PES's first packet has
//!   random_access_indicator set for keyframes and all audio. The last packet of a PES is
//!   padded with adaptation-field stuffing.
//! - PCR: in the first packet of every PES on the PCR PID, PCR = DTS − [`PCR_LEAD`] (100 ms),
//!   never going back within a segment, so PCR ≤ DTS. Where the PCR PID's PES packets are more
//!   than [`PCR_INTERVAL`] (40 ms) apart (a low frame rate, a hole in the video), PCR-only
//!   packets (adaptation field, no payload) fill the gap; a segment whose first PES is on the
//!   other PID starts its clock with one. Holes over 10 s within a segment are not filled.
//!
//! Limits: audio frames ADTS cannot carry (empty, or over 8191 bytes with the header) are left
//! out; so are samples of a track that is not configured. Timestamps written are the caller's
//! own (modulo 2^33), so they match the fMP4 rendition's when it is fed the same times; with a
//! timeline that starts at 0 the first PCRs (DTS − 100 ms) are just below 2^33 and wrap, which
//! the standard allows.
//!
//! Submodules: `crc` (CRC-32/MPEG-2), `packet` (TS packets, adaptation field, the
//! packetizer), `psi` (PAT, PMT), `pes` (PES headers, Annex B and ADTS payloads), `adts`
//! ([`TsAudio`], the ADTS header), `interleave` (audio grouping, decode-order merge), `muxer`.

mod adts;
mod crc;
mod interleave;
mod muxer;
mod packet;
mod pes;
mod psi;

use bytes::Bytes;

use crate::media::h264::ParameterSets;

pub use adts::TsAudio;
pub use muxer::{TsMuxer, PCR_INTERVAL, PCR_LEAD};
pub use packet::PACKET_LEN;
pub use psi::{AUDIO_PID, PMT_PID, VIDEO_PID};

#[cfg(test)]
mod ffprobe_tests;
#[cfg(test)]
pub(crate) mod test_demux;
#[cfg(test)]
mod tests;

/// The streams of the program.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TsTracks {
    /// H.264: the SPS and PPS written before every keyframe.
    pub video: Option<ParameterSets>,
    pub audio: Option<TsAudio>,
}

/// One video access unit or one audio frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsSample {
    /// Presentation time, 90 kHz ticks (any origin; written modulo 2^33).
    pub pts: i64,
    /// Decode time, 90 kHz ticks.
    pub dts: i64,
    /// An IDR access unit (video); ignored for audio, where every frame is one.
    pub keyframe: bool,
    /// Video: AVCC (4-byte lengths) without SPS, PPS or AUD. Audio: one raw AAC frame.
    pub data: Bytes,
}

/// Why an audio configuration cannot go into a TS segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsError {
    #[error("only AAC audio goes into MPEG-TS segments")]
    NotAac,
    #[error("sample rate {0} Hz has no ADTS sampling frequency index")]
    SampleRate(u32),
    #[error("{0} channels have no ADTS channel configuration")]
    Channels(u8),
    #[error("audio object type {0} has no ADTS profile (1 to 4; AAC-LC is 2)")]
    AudioObjectType(u8),
    #[error("AudioSpecificConfig: {0}")]
    AudioSpecificConfig(&'static str),
}
