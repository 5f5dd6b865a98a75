//! Scripted codecs for the transcoder's timing tests: a decoder that logs what it was asked
//! and an encoder that counts samples, so hours of stream run in a unit test.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::*;

/// What the transcoder asked the decoder for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Call {
    Decode(u8),
    Conceal(usize),
    Recover(u8, usize),
}

/// Decodes a packet to its TOC duration of samples, all equal to `packet[1] / 256` (the
/// packet's id), so the encoder's input shows which packet each sample came from. A packet
/// with id 0xEE is corrupt.
pub(super) struct ScriptedDecoder {
    channels: u8,
    pcm: Vec<f32>,
    log: Option<Arc<Mutex<Vec<Call>>>>,
}

impl ScriptedDecoder {
    fn output(&mut self, samples: usize, value: f32) -> &[f32] {
        let len = samples * usize::from(self.channels);
        if self.log.is_some() {
            self.pcm[..len].fill(value);
        }
        &self.pcm[..len]
    }

    fn note(&self, call: Call) {
        if let Some(log) = &self.log {
            log.lock().unwrap().push(call);
        }
    }
}

pub(super) const CONCEALED: f32 = -0.5;
pub(super) const RECOVERED: f32 = -0.25;

impl OpusDecoder for ScriptedDecoder {
    fn channels(&self) -> u8 {
        self.channels
    }
    fn decode(&mut self, packet: &[u8]) -> Result<&[f32], AudioError> {
        let id = packet.get(1).copied().unwrap_or(0);
        if id == 0xEE {
            return Err(AudioError::Decode("scripted corruption"));
        }
        let n = packet_samples(packet)?;
        self.note(Call::Decode(id));
        Ok(self.output(n, f32::from(id) / 256.0))
    }
    fn conceal(&mut self, samples: usize) -> Result<&[f32], AudioError> {
        assert!(
            samples > 0 && samples.is_multiple_of(120) && samples <= 960,
            "{samples}"
        );
        self.note(Call::Conceal(samples));
        Ok(self.output(samples, CONCEALED))
    }
    fn recover(&mut self, next: &[u8], samples: usize) -> Result<&[f32], AudioError> {
        self.note(Call::Recover(next.get(1).copied().unwrap_or(0), samples));
        Ok(self.output(samples, RECOVERED))
    }
}

/// The encoder's input as runs of equal values (first channel).
pub(super) type Runs = Arc<Mutex<Vec<(f32, usize)>>>;

/// One frame per 1024 samples after a 1024-sample delay, like a real AAC-LC encoder. Records
/// the first channel's input as runs of equal values when asked to. Fails when told to.
pub(super) struct CountingEncoder {
    channels: u8,
    pending: usize,
    made: u64,
    input: Option<Runs>,
    fail_at_call: Option<u64>,
    calls: u64,
}

impl AacEncoder for CountingEncoder {
    fn encode(&mut self, pcm: &[f32]) -> Result<Vec<Bytes>, AudioError> {
        self.calls += 1;
        if self.fail_at_call == Some(self.calls) {
            // Like syom after a failure: buffered input is gone, the next frame is priming.
            self.pending = 0;
            self.made = 0;
            return Err(AudioError::Encode("scripted".into()));
        }
        let ch = usize::from(self.channels);
        if let Some(input) = &self.input {
            let mut runs = input.lock().unwrap();
            for &x in pcm.iter().step_by(ch) {
                match runs.last_mut() {
                    Some((v, n)) if *v == x => *n += 1,
                    _ => runs.push((x, 1)),
                }
            }
        }
        self.pending += pcm.len() / ch;
        let mut out = Vec::new();
        while self.pending >= 1024 {
            self.pending -= 1024;
            out.push(Bytes::from(self.made.to_be_bytes().to_vec()));
            self.made += 1;
        }
        Ok(out)
    }
    fn delay_samples(&self) -> u32 {
        1024
    }
    fn audio_specific_config(&self) -> Bytes {
        Bytes::from_static(&[0x11, 0x90])
    }
    fn sample_rate(&self) -> u32 {
        48_000
    }
    fn channels(&self) -> u8 {
        self.channels
    }
}

pub(super) struct Rig {
    pub t: OpusToAac,
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub input: Runs,
}

pub(super) fn scripted_decoder(
    channels: u8,
    log: Option<Arc<Mutex<Vec<Call>>>>,
) -> ScriptedDecoder {
    ScriptedDecoder {
        channels,
        pcm: vec![0.0; usize::from(channels) * 5760],
        log,
    }
}

pub(super) fn counting_encoder(
    channels: u8,
    input: Option<Runs>,
    fail_at_call: Option<u64>,
) -> CountingEncoder {
    CountingEncoder {
        channels,
        pending: 0,
        made: 0,
        input,
        fail_at_call,
        calls: 0,
    }
}

pub(super) fn rig_with(record: bool, fail_at_call: Option<u64>) -> Rig {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let input = Arc::new(Mutex::new(Vec::new()));
    let decoder = scripted_decoder(2, record.then(|| calls.clone()));
    let encoder = counting_encoder(2, record.then(|| input.clone()), fail_at_call);
    let t = OpusToAac::with_codecs(Box::new(decoder), Box::new(encoder)).unwrap();
    Rig { t, calls, input }
}

pub(super) fn rig() -> Rig {
    rig_with(true, None)
}

/// A 20 ms CELT stereo packet with an id byte.
pub(super) fn packet(id: u8) -> Bytes {
    Bytes::from(vec![31 << 3 | 0x04, id, 0x55])
}

pub(super) fn frame(pts: i64, data: Bytes) -> OpusEvent {
    OpusEvent::Frame(Frame {
        codec: Codec::Opus,
        pts,
        dts: pts,
        keyframe: true,
        data,
    })
}

pub(super) fn drain(t: &mut OpusToAac) -> Vec<Frame> {
    std::iter::from_fn(|| t.poll()).collect()
}

/// The pts AAC frame `k` of the encoder must have.
pub(super) fn expected_pts(anchor: i64, k: i64) -> i64 {
    anchor + (k * 1024 - 1024) * 15 / 8
}

pub(super) fn assert_grid(frames: &[Frame], anchor: i64) {
    for (j, f) in frames.iter().enumerate() {
        let k = j as i64 + 1; // frame 0 is priming
        assert_eq!(f.pts, expected_pts(anchor, k), "frame {j}");
        assert_eq!(f.dts, f.pts);
        assert_eq!(f.codec, Codec::Aac);
        assert!(f.keyframe);
    }
}

/// 20 ms steps on the 90 kHz clock.
pub(super) const STEP: i64 = 1800;
