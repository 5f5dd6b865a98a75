//! Tests across the `rtp` module: H.264 depacketizing quirks, the track pipeline, and garbage
//! input. Shared builders live here.

// These build Instants from one base `Instant::now()`; the code under test never does.
#[allow(clippy::disallowed_methods)]
mod garbage;
mod h264_depacketizer;
mod h264_loss;
#[allow(clippy::disallowed_methods)]
mod track;

use bytes::Bytes;

use super::{H264Depacketizer, H264Event, RtpPacket};
use crate::media::{Codec, Frame};

pub(super) const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8];
/// Same profile, another resolution: what a mid-stream SPS change looks like.
pub(super) const SPS_720P: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x50, 0x05, 0xbb];
pub(super) const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
pub(super) const AUD: &[u8] = &[0x09, 0xf0];
pub(super) const SEI: &[u8] = &[0x06, 0x05, 0x01, 0xaa, 0x80];

/// An IDR slice NAL unit (type 5, NRI 3) of `len` bytes with a recognisable body.
pub(super) fn idr(len: usize, tag: u8) -> Vec<u8> {
    nal(0x65, len, tag)
}

/// A non-IDR slice NAL unit (type 1, NRI 2) of `len` bytes.
pub(super) fn slice(len: usize, tag: u8) -> Vec<u8> {
    nal(0x41, len, tag)
}

fn nal(header: u8, len: usize, tag: u8) -> Vec<u8> {
    let mut v = vec![header];
    v.extend((1..len.max(1)).map(|i| (i as u8).wrapping_mul(31) ^ tag));
    v
}

/// The AVCC form the depacketizer must produce: 4-byte big-endian length before each NAL.
pub(super) fn avcc(nals: &[&[u8]]) -> Bytes {
    let mut out = Vec::new();
    for n in nals {
        out.extend_from_slice(&(n.len() as u32).to_be_bytes());
        out.extend_from_slice(n);
    }
    Bytes::from(out)
}

pub(super) fn pkt(sequence: u16, timestamp: u32, marker: bool, payload: &[u8]) -> RtpPacket {
    RtpPacket {
        payload_type: 102,
        sequence,
        timestamp,
        ssrc: 0x5eed,
        marker,
        payload: Bytes::copy_from_slice(payload),
    }
}

pub(super) fn frame(pts: i64, keyframe: bool, nals: &[&[u8]]) -> H264Event {
    H264Event::AccessUnit(Frame {
        codec: Codec::H264,
        pts,
        dts: pts,
        keyframe,
        data: avcc(nals),
    })
}

pub(super) fn params(sps: &[u8], pps: &[u8]) -> H264Event {
    H264Event::ParameterSets {
        sps: Bytes::copy_from_slice(sps),
        pps: Bytes::copy_from_slice(pps),
    }
}

/// Pushes in-order packets (no loss flag) and returns everything the depacketizer emitted.
pub(super) fn feed(d: &mut H264Depacketizer, packets: &[RtpPacket]) -> Vec<H264Event> {
    for p in packets {
        d.push(p, false);
    }
    events(d)
}

pub(super) fn events(d: &mut H264Depacketizer) -> Vec<H264Event> {
    std::iter::from_fn(|| d.poll()).collect()
}

/// A small fixed-seed generator (xorshift64*), so "random" tests are reproducible.
pub(super) struct TestRng(u64);

impl TestRng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub(super) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}
