//! [`OpusToAac`]: one stream's Opus frames in, AAC-LC frames out, on the same 90 kHz time base,
//! with loss concealment, gap filling and exact integer timing (no drift over hours).

use std::collections::VecDeque;

use bytes::Bytes;

use super::aac::{default_bitrate, AacEncoder, SyomAacEncoder, AAC_FRAME_SAMPLES};
use super::opus_decode::{
    packet_channels, packet_samples, OpusDecoder, OpusRsDecoder, CONCEAL_GRANULE, OPUS_SAMPLE_RATE,
};
use super::AudioError;
use crate::media::{Codec, Frame};
use crate::rtp::OpusEvent;

/// Positions on the audio timeline are counted in 48 kHz samples from the anchor.
const GRANULE: i64 = CONCEAL_GRANULE as i64;
const AAC_FRAME: i64 = AAC_FRAME_SAMPLES as i64;
/// Concealment and silence are fed in 20 ms pieces, the usual Opus packet.
const FILL_CHUNK: i64 = 960;
/// Timestamps off by less than 5 ms are jitter (a publisher stamping from a wall clock), not
/// missing or repeated audio: such packets are appended as they are.
const JITTER_TOLERANCE: i64 = 240;
/// A known gap up to 1 s is concealed throughout (the decoder's PLC fades on its own).
const MAX_CONCEALED_GAP: i64 = 48_000;
/// A longer or open-ended gap gets 100 ms of concealment, so the sound fades out instead of
/// stopping with a click, and then silence.
const FADE_OUT: i64 = 4_800;
/// A jump in timestamps beyond 10 s is a discontinuity (publisher restart, broken clock):
/// audio carries on from where it is instead of filling or skipping that much.
const MAX_JUMP: i64 = 10 * 48_000;
/// One `fill_until` call fills at most 10 s, bounding the work a bad timestamp can cause.
const MAX_FILL_PER_CALL: i64 = 10 * 48_000;
/// A 90 kHz span of audio input stall after which [`OpusToAac::fill_until`] fills: 200 ms.
pub const DEFAULT_STALL_THRESHOLD: i64 = 18_000;

/// Silence for filling, one chunk of stereo.
static SILENCE: [f32; 2 * FILL_CHUNK as usize] = [0.0; 2 * FILL_CHUNK as usize];

/// 90 kHz ticks to 48 kHz samples, rounded to the nearest sample: the depacketizer floors
/// `samples * 15 / 8`, so a difference of two pts can be off by one tick.
fn ticks_to_samples(ticks: i64) -> i64 {
    ticks.saturating_mul(16).saturating_add(15).div_euclid(30)
}

/// 48 kHz samples to 90 kHz ticks (exact for multiples of 8 samples, as AAC frames are).
fn samples_to_ticks(samples: i64) -> i64 {
    samples.saturating_mul(15).div_euclid(8)
}

/// Output format of the transcoder; the rate is always 48 kHz.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TranscodeConfig {
    /// 1 or 2, as the source: see [`TranscodeConfig::for_packet`].
    pub channels: u8,
    /// AAC bitrate in b/s for all channels; `None` gives 64 kb/s per channel.
    pub bitrate: Option<u32>,
}

impl TranscodeConfig {
    /// The channel count of a stream's first Opus packet (its TOC stereo flag), default rate.
    /// The SDP cannot tell: WebRTC always declares `opus/48000/2`.
    pub fn for_packet(packet: &[u8]) -> Self {
        Self {
            channels: packet_channels(packet).unwrap_or(2),
            bitrate: None,
        }
    }

    /// The bitrate to encode at.
    pub fn effective_bitrate(&self) -> u32 {
        self.bitrate
            .unwrap_or_else(|| default_bitrate(self.channels))
    }
}

impl Default for TranscodeConfig {
    fn default() -> Self {
        Self {
            channels: 2,
            bitrate: None,
        }
    }
}

/// What the transcoder did, in samples per channel (48 kHz) where it says samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TranscodeStats {
    /// Opus packets received.
    pub packets: u64,
    /// Packets the decoder refused (they are concealed like lost ones).
    pub decode_errors: u64,
    /// Encoder failures (the encoder restarts; see [`AacEncoder`]).
    pub encode_errors: u64,
    /// Samples decoded from packets and fed to the encoder.
    pub decoded_samples: u64,
    /// Samples made up by packet loss concealment.
    pub concealed_samples: u64,
    /// Samples rebuilt from the following packet's in-band FEC (concealed if it had none).
    pub fec_samples: u64,
    /// Samples of silence filled in long gaps and stalls.
    pub silence_samples: u64,
    /// Decoded samples dropped because the timeline already covered them (after a fill).
    pub skipped_samples: u64,
    /// Timestamp jumps bridged without filling.
    pub discontinuities: u64,
}

/// The encoder side: counts samples fed, stamps the frames that come out.
struct AacSink {
    encoder: Box<dyn AacEncoder>,
    channels: usize,
    delay: i64,
    /// pts (90 kHz) of the first Opus frame: position 0.
    anchor: i64,
    /// Samples fed to the encoder since the anchor: where the audio timeline ends.
    fed: i64,
    /// Position of the encoder's first input sample (moves only when the encoder restarts).
    grid: i64,
    /// Frames the encoder has produced since it (re)started.
    frames: i64,
    /// Start of the next frame that may be emitted: drops priming and, after a restart,
    /// frames overlapping ones already out.
    next_start: i64,
    out: VecDeque<Frame>,
    errors: u64,
    /// Trailing samples of `fed` that are only end-of-stream padding from `finish`.
    padding: i64,
}

impl AacSink {
    fn feed(&mut self, pcm: &[f32]) {
        if pcm.is_empty() {
            return;
        }
        self.fed = self.fed.saturating_add((pcm.len() / self.channels) as i64);
        self.padding = 0;
        match self.encoder.encode(pcm) {
            Ok(aus) => {
                for data in aus {
                    // Frame k of the encoder decodes to the samples from k * 1024 - delay on,
                    // computed afresh each time so nothing accumulates.
                    let start = self.grid + self.frames * AAC_FRAME - self.delay;
                    self.frames += 1;
                    if start < self.next_start {
                        continue;
                    }
                    self.next_start = start + AAC_FRAME;
                    let pts = self.anchor.saturating_add(samples_to_ticks(start));
                    self.out.push_back(Frame {
                        codec: Codec::Aac,
                        pts,
                        dts: pts,
                        keyframe: true,
                        data,
                    });
                }
            }
            Err(_) => {
                // The encoder starts over with the input that follows: a short hole, then
                // frames on the new grid, still at their true times.
                self.errors += 1;
                self.grid = self.fed;
                self.frames = 0;
            }
        }
    }

    fn silence(&mut self, samples: i64) {
        let mut left = samples;
        while left > 0 {
            let n = left.min(FILL_CHUNK);
            self.feed(&SILENCE[..n as usize * self.channels]);
            left -= n;
        }
    }
}

/// Opus -> AAC-LC for one stream (sans-IO).
///
/// Feed [`OpusEvent`]s in order with [`push`](Self::push), tell it how far media time has got
/// with [`fill_until`](Self::fill_until), and drain AAC frames with [`poll`](Self::poll). Output
/// frame times are on the input's 90 kHz time base: the frame starting `s` samples after the
/// first Opus frame has pts `first_pts + s * 15 / 8`, and frame `k` of the encoder starts at
/// `s = k * 1024 - delay` (priming frames, with `s < 0`, are dropped).
pub struct OpusToAac {
    decoder: Box<dyn OpusDecoder>,
    sink: AacSink,
    channels: u8,
    sample_rate: u32,
    asc: Bytes,
    anchor: Option<i64>,
    /// Samples added to input positions after bridged timestamp jumps.
    offset: i64,
    /// Samples filled since the last decoded packet (decides concealment vs silence).
    run: i64,
    loss_pending: bool,
    stall_threshold: i64,
    stats: TranscodeStats,
}

impl OpusToAac {
    /// Opus (opus-rs) to AAC-LC (syom) at 48 kHz with `config.channels` channels.
    pub fn new(config: TranscodeConfig) -> Result<Self, AudioError> {
        let decoder = OpusRsDecoder::new(config.channels)?;
        let encoder = SyomAacEncoder::new(
            OPUS_SAMPLE_RATE,
            config.channels,
            config.effective_bitrate(),
        )?;
        Self::with_codecs(Box::new(decoder), Box::new(encoder))
    }

    /// The transcoder over other codec implementations (same channels, 48 kHz encoder).
    pub fn with_codecs(
        decoder: Box<dyn OpusDecoder>,
        encoder: Box<dyn AacEncoder>,
    ) -> Result<Self, AudioError> {
        let channels = encoder.channels();
        if decoder.channels() != channels || !(1..=2).contains(&channels) {
            return Err(AudioError::Channels(decoder.channels()));
        }
        if encoder.sample_rate() != OPUS_SAMPLE_RATE {
            return Err(AudioError::SampleRate(encoder.sample_rate()));
        }
        Ok(Self {
            sample_rate: encoder.sample_rate(),
            asc: encoder.audio_specific_config(),
            sink: AacSink {
                channels: usize::from(channels),
                delay: i64::from(encoder.delay_samples()),
                encoder,
                anchor: 0,
                fed: 0,
                grid: 0,
                frames: 0,
                next_start: 0,
                out: VecDeque::new(),
                errors: 0,
                padding: 0,
            },
            decoder,
            channels,
            anchor: None,
            offset: 0,
            run: 0,
            loss_pending: false,
            stall_threshold: ticks_to_samples(DEFAULT_STALL_THRESHOLD),
            stats: TranscodeStats::default(),
        })
    }

    /// How far (90 kHz ticks) audio input may lag before [`fill_until`](Self::fill_until)
    /// fills; [`DEFAULT_STALL_THRESHOLD`] (200 ms) unless set.
    pub fn with_stall_threshold(mut self, ticks: i64) -> Self {
        self.stall_threshold = ticks_to_samples(ticks.max(0));
        self
    }

    /// Takes the next depacketizer event.
    pub fn push(&mut self, event: OpusEvent) {
        match event {
            // The gap itself is measured from the next frame's pts against the samples
            // already fed; the event says that gap is loss, so FEC is worth trying.
            OpusEvent::Lost { .. } => self.loss_pending = self.anchor.is_some(),
            OpusEvent::Frame(frame) if frame.codec == Codec::Opus => {
                self.on_packet(frame.pts, &frame.data)
            }
            OpusEvent::Frame(_) => {}
        }
    }

    /// Media time has reached `pts` (same time base as the Opus frames). If audio input
    /// lags it by more than the stall threshold (publisher muted, DTX, outage), the audio
    /// timeline is filled up to `pts` — a short concealment fade, then silence — so players
    /// keep playing. Packets that later arrive for the filled span are trimmed.
    pub fn fill_until(&mut self, pts: i64) {
        let Some(anchor) = self.anchor else { return };
        let behind = self.position(pts, anchor).saturating_sub(self.sink.fed);
        if behind <= self.stall_threshold {
            return;
        }
        let n = behind.min(MAX_FILL_PER_CALL);
        self.fill(n - n % GRANULE, FADE_OUT);
    }

    /// End of stream: pads with silence until every sample fed so far is in an emitted frame
    /// (the encoder holds back its delay plus a partial frame). Input pushed afterwards
    /// continues after the padding.
    pub fn finish(&mut self) {
        if self.anchor.is_none() {
            return;
        }
        let sink = &mut self.sink;
        // Frames out end at grid + frames * 1024 - delay; they must reach the content's end.
        let content_end = sink.fed - sink.padding;
        let need = content_end
            .saturating_sub(sink.grid)
            .saturating_add(sink.delay);
        let frames = need.saturating_add(AAC_FRAME - 1).div_euclid(AAC_FRAME);
        let pad = (frames * AAC_FRAME - (sink.fed - sink.grid)).max(0);
        let padding = sink.padding + pad;
        sink.silence(pad);
        sink.padding = padding;
        self.stats.silence_samples += pad as u64;
    }

    /// Next AAC frame: codec Aac, `pts == dts`, keyframe, raw AAC (no ADTS header).
    pub fn poll(&mut self) -> Option<Frame> {
        self.sink.out.pop_front()
    }

    /// The AudioSpecificConfig for the fMP4 `esds` and the FLV AAC sequence header.
    pub fn audio_specific_config(&self) -> Bytes {
        self.asc.clone()
    }

    /// 48000.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Encoder delay in samples: AAC output trails its input by this plus up to one frame.
    pub fn delay_samples(&self) -> u32 {
        self.sink.delay as u32
    }

    /// Media time (90 kHz) up to which audio input has been consumed, once audio started.
    pub fn end_pts(&self) -> Option<i64> {
        self.anchor
            .map(|a| a.saturating_add(samples_to_ticks(self.sink.fed)))
    }

    pub fn stats(&self) -> TranscodeStats {
        TranscodeStats {
            encode_errors: self.sink.errors,
            ..self.stats
        }
    }

    /// Position in samples on the audio timeline of input time `pts`.
    fn position(&self, pts: i64, anchor: i64) -> i64 {
        ticks_to_samples(pts.saturating_sub(anchor)).saturating_add(self.offset)
    }

    fn on_packet(&mut self, pts: i64, data: &Bytes) {
        self.stats.packets += 1;
        let lost = std::mem::take(&mut self.loss_pending);
        let Some(anchor) = self.anchor else {
            self.anchor = Some(pts);
            self.sink.anchor = pts;
            self.decode(data, 0);
            return;
        };
        let mut gap = self.position(pts, anchor).saturating_sub(self.sink.fed);
        if gap.unsigned_abs() > MAX_JUMP as u64 {
            self.offset = self.offset.saturating_sub(gap);
            self.stats.discontinuities += 1;
            gap = 0;
        }
        if gap >= JITTER_TOLERANCE || (lost && gap >= GRANULE) {
            self.fill_gap(gap - gap % GRANULE, lost.then_some(data));
            gap = self.position(pts, anchor).saturating_sub(self.sink.fed);
        }
        let skip = if gap <= -JITTER_TOLERANCE { -gap } else { 0 };
        self.decode(data, skip);
    }

    /// Decodes a packet and feeds it, minus `skip` leading samples the timeline already has.
    fn decode(&mut self, data: &[u8], skip: i64) {
        match self.decoder.decode(data) {
            Ok(pcm) => {
                let n = (pcm.len() / self.sink.channels) as i64;
                let skip = skip.clamp(0, n);
                self.sink.feed(&pcm[skip as usize * self.sink.channels..]);
                self.stats.decoded_samples += (n - skip) as u64;
                self.stats.skipped_samples += skip as u64;
                self.run = 0;
            }
            Err(_) => {
                // Left out of the timeline: the next packet finds the hole and conceals it.
                self.stats.decode_errors += 1;
                self.loss_pending = true;
            }
        }
    }

    /// Fills a known gap of `samples` (whole granules) before `next`. Loss: concealment,
    /// the last packet's worth from `next`'s FEC. Beyond 1 s: a fade, then silence.
    fn fill_gap(&mut self, samples: i64, next_after_loss: Option<&Bytes>) {
        let short = self.run.saturating_add(samples) <= MAX_CONCEALED_GAP;
        let limit = if short { i64::MAX } else { FADE_OUT };
        let fec = next_after_loss
            .filter(|_| short)
            .and_then(|next| Some((next, packet_samples(next).ok()? as i64)))
            .filter(|&(_, n)| n <= samples && n % GRANULE == 0);
        self.fill(samples - fec.map_or(0, |(_, n)| n), limit);
        if let Some((next, n)) = fec {
            match self.decoder.recover(next, n as usize) {
                Ok(pcm) => {
                    self.sink.feed(pcm);
                    self.stats.fec_samples += n as u64;
                }
                Err(_) => {
                    self.sink.silence(n);
                    self.stats.silence_samples += n as u64;
                }
            }
            self.run += n;
        }
    }

    /// Feeds `samples` (whole granules) of made-up audio: decoder concealment while the
    /// current run of missing audio is shorter than `conceal_limit`, silence after it.
    fn fill(&mut self, samples: i64, conceal_limit: i64) {
        let mut left = samples;
        while left > 0 {
            let concealing = self.run < conceal_limit;
            let mut n = left.min(FILL_CHUNK);
            if concealing {
                n = n.min(conceal_limit - self.run);
                n -= n % GRANULE;
            }
            if n <= 0 {
                n = left.min(FILL_CHUNK);
            }
            let concealed = concealing
                && match self.decoder.conceal(n as usize) {
                    Ok(pcm) => {
                        self.sink.feed(pcm);
                        true
                    }
                    Err(_) => false,
                };
            if concealed {
                self.stats.concealed_samples += n as u64;
            } else {
                self.sink.silence(n);
                self.stats.silence_samples += n as u64;
            }
            self.run = self.run.saturating_add(n);
            left -= n;
        }
    }
}

#[cfg(test)]
#[path = "test_support.rs"]
pub(crate) mod test_support;

#[cfg(test)]
#[path = "scripted_codecs.rs"]
mod scripted_codecs;

#[cfg(test)]
#[path = "transcode_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "gap_tests.rs"]
mod gap_tests;

#[cfg(test)]
#[path = "ffmpeg_tests.rs"]
mod ffmpeg_tests;
