//! H.264 depacketizer (RFC 6184, non-interleaved mode): RTP packets in sequence order to AVCC
//! access units, with parameter sets pulled out and loss turned into a keyframe request.
//!
//! Access units are grouped by RTP timestamp and closed by the marker bit (§5.1) or by the first
//! packet of the next timestamp (some senders drop the marker). SPS, PPS and access unit
//! delimiters never go into frames; SPS/PPS are reported as [`H264Event::ParameterSets`].
//! A damaged access unit is never emitted: after any loss, frames resume at the next IDR.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::sprop::parse_sprop_parameter_sets;
use super::{RtpError, RtpPacket, TimestampUnwrapper};
use crate::media::{Codec, Frame};

/// An access unit bigger than this is dropped as if lost (even a 4K IDR is rarely 1 MiB).
pub const MAX_ACCESS_UNIT_BYTES: usize = 8 * 1024 * 1024;
/// More RTP packets than this in one access unit is treated as loss.
pub const MAX_PACKETS_PER_ACCESS_UNIT: u32 = 16_384;
/// More NAL units than this in one access unit is treated as loss.
pub const MAX_NALS_PER_ACCESS_UNIT: u32 = 8_192;

// NAL unit types (H.264 Table 7-1) and the RTP packet types castgate takes (RFC 6184 Table 1).
use crate::media::h264::nal::{
    AUD as NAL_AUD, FU_A, IDR as NAL_IDR, PPS as NAL_PPS, SPS as NAL_SPS, STAP_A,
};
// Packet types of the interleaved mode (RFC 6184 Table 1), which castgate does not take.
const STAP_B: u8 = 25;
const MTAP16: u8 = 26;
const MTAP24: u8 = 27;
const FU_B: u8 = 29;

/// What the depacketizer has to say, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum H264Event {
    /// The SPS and PPS (NAL units with their 1-byte header, no start code or length) that the
    /// following frames need. Sent before the first frame and again whenever either changes.
    ParameterSets { sps: Bytes, pps: Bytes },
    /// One complete access unit (see the module docs for what it contains).
    AccessUnit(Frame),
    /// Frames are being dropped until an IDR arrives; the ingest layer should send a PLI.
    /// Sent once per loss episode (again if the IDR that would end it is itself damaged).
    KeyframeNeeded,
}

/// The access unit being assembled.
#[derive(Debug)]
struct AccessUnit {
    /// Counts access units, to tell whether a keyframe request came before this one.
    serial: u64,
    rtp_timestamp: u32,
    pts: i64,
    /// Loss touched this access unit: it is skipped, only its IDR/SPS/PPS are noted.
    broken: bool,
    /// Packets were lost just before this unit's first packet: they may have been its start.
    /// Only kept if it proves complete, see [`AccessUnit::survives_loss_before`].
    suspect: bool,
    has_sps: bool,
    has_pps: bool,
    has_idr: bool,
    /// Holds a slice (types 1-5), so it is a picture and not just SEI or parameter sets.
    has_vcl: bool,
    packets: u32,
    nals: u32,
}

impl AccessUnit {
    /// A suspect unit is kept only if nothing that matters can have been lost before it: it
    /// is an IDR that carries its own SPS and PPS (Chromium sends them before every IDR).
    /// Parameter sets precede the slices (H.264 §7.4.1.2.3), so every slice arrived, and a
    /// lost parameter-set change (resolution switch) can't slip by. Only an AUD or SEI can
    /// have been lost. Non-IDR units are useless after loss anyway.
    fn survives_loss_before(&self) -> bool {
        self.has_idr && self.has_sps && self.has_pps
    }
}

/// A FU-A NAL unit being reassembled in place at the end of the access unit buffer.
#[derive(Debug)]
struct Fragment {
    /// Offset in the access-unit buffer of its 4-byte length prefix.
    start: usize,
    nal_type: u8,
}

/// RFC 6184 depacketizer. Feed packets in sequence order (a [`super::ReorderBuffer`] does
/// that) with [`push`](Self::push), then drain [`poll`](Self::poll).
#[derive(Debug)]
pub struct H264Depacketizer {
    timestamps: TimestampUnwrapper,
    last_sequence: Option<u16>,
    /// AVCC bytes of the current access unit; reused across access units.
    buf: BytesMut,
    au: Option<AccessUnit>,
    fragment: Option<Fragment>,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    /// The current SPS/PPS have already been sent as `ParameterSets`.
    parameter_sets_sent: bool,
    /// Non-IDR frames are dropped (stream start or after loss).
    waiting_for_idr: bool,
    /// `KeyframeNeeded` was sent for the current episode.
    keyframe_requested: bool,
    /// Loss was seen; the access unit of the next non-empty packet is suspect.
    loss_pending: bool,
    /// Serial of the last access unit started.
    au_serial: u64,
    /// Serial of the access unit during (or just before) which `KeyframeNeeded` was sent.
    requested_for: u64,
    events: VecDeque<H264Event>,
}

impl Default for H264Depacketizer {
    fn default() -> Self {
        Self::new()
    }
}

impl H264Depacketizer {
    pub fn new() -> Self {
        Self {
            timestamps: TimestampUnwrapper::new(),
            last_sequence: None,
            buf: BytesMut::new(),
            au: None,
            fragment: None,
            sps: None,
            pps: None,
            parameter_sets_sent: false,
            waiting_for_idr: true,
            keyframe_requested: false,
            loss_pending: false,
            au_serial: 0,
            requested_for: 0,
            events: VecDeque::new(),
        }
    }

    /// Takes the `sprop-parameter-sets` fmtp value (RFC 6184 §8.1): comma-separated base64
    /// NAL units, normally "SPS,PPS". Other NAL types in it are ignored; in-band parameter
    /// sets received later replace these.
    pub fn set_sprop_parameter_sets(&mut self, value: &str) -> Result<(), RtpError> {
        let (sps, pps) = parse_sprop_parameter_sets(value)?;
        if let Some(sps) = sps {
            self.set_sps(sps);
        }
        if let Some(pps) = pps {
            self.set_pps(pps);
        }
        Ok(())
    }

    /// True while frames are being dropped until the next IDR (the ingest layer may repeat
    /// its PLI on a timer while this holds).
    pub fn is_waiting_for_keyframe(&self) -> bool {
        self.waiting_for_idr
    }

    /// Takes the next packet in sequence order. `lost_before`: packets before this one were
    /// lost (from [`super::Reordered`]). Gaps and repeats in the sequence numbers are also
    /// noticed here.
    pub fn push(&mut self, pkt: &RtpPacket, lost_before: bool) {
        let gap = match self.last_sequence {
            Some(prev) if prev == pkt.sequence => return, // a duplicate
            Some(prev) => pkt.sequence != prev.wrapping_add(1),
            None => false,
        };
        self.last_sequence = Some(pkt.sequence);
        if lost_before || gap {
            self.on_loss();
        }
        // Padding-only and empty packets carry nothing (and their timestamp may be stale).
        if pkt.payload.is_empty() {
            return;
        }
        if let Some(au) = &self.au {
            if au.rtp_timestamp != pkt.timestamp {
                // A new timestamp closes the previous access unit even without its marker.
                self.finish_access_unit();
            } else {
                // Same timestamp: whatever was lost belonged to the open (now broken) unit.
                self.loss_pending = false;
            }
        }
        if self.au.is_none() {
            self.start_access_unit(pkt.timestamp);
        }
        self.depacketize(&pkt.payload);
        if pkt.marker {
            self.finish_access_unit();
        }
    }

    /// Returns the next event, if any.
    pub fn poll(&mut self) -> Option<H264Event> {
        self.events.pop_front()
    }

    fn start_access_unit(&mut self, rtp_timestamp: u32) {
        self.buf.clear();
        self.fragment = None;
        self.au_serial += 1;
        self.au = Some(AccessUnit {
            serial: self.au_serial,
            rtp_timestamp,
            pts: self.timestamps.unwrap(rtp_timestamp),
            broken: false,
            suspect: std::mem::take(&mut self.loss_pending),
            has_sps: false,
            has_pps: false,
            has_idr: false,
            has_vcl: false,
            packets: 0,
            nals: 0,
        });
    }

    /// Breaks the open access unit (its middle or end is missing) and makes the next one
    /// suspect, unless the next packet turns out to share the open unit's timestamp: the
    /// lost packets may have been the next unit's beginning.
    fn on_loss(&mut self) {
        // The request answers for the unit after the loss too (it is suspect): if that one is
        // a damaged IDR, it was already in flight and does not warrant a second request.
        self.need_keyframe(self.au_serial + 1);
        self.break_access_unit();
        self.loss_pending = true;
    }

    /// Starts (or continues) a loss episode; `serial` is the access unit it concerns.
    fn need_keyframe(&mut self, serial: u64) {
        self.waiting_for_idr = true;
        if !self.keyframe_requested {
            self.keyframe_requested = true;
            self.requested_for = serial;
            self.events.push_back(H264Event::KeyframeNeeded);
        }
    }

    /// Throws away the assembled bytes of `au` and asks for a keyframe.
    fn discard(&mut self, au: &AccessUnit) {
        self.buf.clear();
        self.fragment = None;
        if au.has_idr {
            self.idr_damaged(au.serial);
        } else {
            self.need_keyframe(au.serial);
        }
    }

    /// An IDR is unusable. If it may have been the answer to an earlier request, ask again:
    /// WebRTC senders send no periodic keyframes, so staying quiet could stall the stream.
    fn idr_damaged(&mut self, serial: u64) {
        if self.keyframe_requested && self.requested_for < serial {
            self.keyframe_requested = false;
        }
        self.need_keyframe(serial);
    }

    /// The current access unit can't be completed: skip the rest of it.
    fn break_access_unit(&mut self) {
        if let Some(au) = self.au.as_mut() {
            if !au.broken {
                au.broken = true;
                let serial = au.serial;
                self.buf.clear();
                self.fragment = None;
                self.need_keyframe(serial);
            }
        }
    }

    fn finish_access_unit(&mut self) {
        let Some(au) = self.au.take() else { return };
        if au.broken || (au.suspect && !au.survives_loss_before()) {
            // Loss was already signalled; ask again if this was the awaited IDR.
            if au.has_idr {
                self.idr_damaged(au.serial);
            }
            self.buf.clear();
            return;
        }
        if self.fragment.is_some() {
            // A FU-A without its end bit: the rest of the NAL unit is missing.
            self.discard(&au);
            return;
        }
        if !au.has_vcl {
            // E.g. OBS sends SPS and PPS as access units of their own; they are recorded.
            self.buf.clear();
            return;
        }
        if self.waiting_for_idr && !au.has_idr {
            self.buf.clear();
            self.need_keyframe(au.serial);
            return;
        }
        let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
            // Undecodable without parameter sets; a new IDR will usually bring them in-band.
            self.discard(&au);
            return;
        };
        if !self.parameter_sets_sent {
            self.events.push_back(H264Event::ParameterSets {
                sps: sps.clone(),
                pps: pps.clone(),
            });
            self.parameter_sets_sent = true;
        }
        self.events.push_back(H264Event::AccessUnit(Frame {
            codec: Codec::H264,
            pts: au.pts,
            dts: au.pts,
            keyframe: au.has_idr,
            data: self.buf.split().freeze(),
        }));
        if au.has_idr {
            self.waiting_for_idr = false;
            self.keyframe_requested = false;
        }
    }

    /// Dispatches one RTP payload by its packet type (RFC 6184 §5.2).
    fn depacketize(&mut self, payload: &Bytes) {
        let Some(au) = self.au.as_mut() else { return };
        au.packets += 1;
        if au.packets > MAX_PACKETS_PER_ACCESS_UNIT {
            self.break_access_unit();
            return;
        }
        match payload[0] & 0x1f {
            1..=23 => {
                if self.fragment.is_some() {
                    self.break_access_unit(); // the open FU-A never got its end
                }
                self.add_nal(payload.clone());
            }
            STAP_A => self.stap_a(payload),
            FU_A => self.fu_a(payload),
            // Interleaved-mode packet types are not allowed in the non-interleaved mode we
            // negotiate (§6.2); their content is unusable, so treat them as loss.
            STAP_B | MTAP16 | MTAP24 | FU_B => self.break_access_unit(),
            // Types 0, 30 and 31 are reserved: receivers ignore them (§5.2).
            _ => {}
        }
    }

    /// STAP-A (§5.7.1): 1-byte header, then (16-bit size, NAL unit) pairs.
    fn stap_a(&mut self, payload: &Bytes) {
        if self.fragment.is_some() {
            self.break_access_unit();
        }
        // Validate the whole packet first so a bad one adds nothing.
        let mut at = 1;
        while at < payload.len() {
            let Some(size) = payload.get(at..at + 2) else {
                self.break_access_unit();
                return;
            };
            at += 2 + usize::from(u16::from_be_bytes([size[0], size[1]]));
            if at > payload.len() {
                self.break_access_unit();
                return;
            }
        }
        let mut at = 1;
        while at + 2 <= payload.len() {
            let size = usize::from(u16::from_be_bytes([payload[at], payload[at + 1]]));
            at += 2;
            // Zero-size entries carry nothing; skip them rather than fail.
            if size > 0 {
                self.add_nal(payload.slice(at..at + size));
            }
            at += size;
        }
    }

    /// FU-A (§5.8): FU indicator (F|NRI|28), FU header (S|E|R|type), fragment bytes.
    fn fu_a(&mut self, payload: &Bytes) {
        let (Some(&indicator), Some(&header)) = (payload.first(), payload.get(1)) else {
            self.break_access_unit();
            return;
        };
        let (start, end, nal_type) = (header & 0x80 != 0, header & 0x40 != 0, header & 0x1f);
        let Some(au) = self.au.as_mut() else { return };
        au.has_idr |= nal_type == NAL_IDR; // noted even when broken, see `finish_access_unit`
        if au.broken {
            return;
        }

        if nal_type == 0 || nal_type >= STAP_A {
            self.break_access_unit(); // a fragment must hold a plain NAL unit
            return;
        }
        let data = &payload[2..];
        match (&self.fragment, start) {
            (None, true) => {
                if !self.reserve(4 + 1 + data.len()) {
                    return;
                }
                let at = self.buf.len();
                self.buf.put_u32(0); // length, patched at the end bit
                                     // The reconstructed header: F and NRI from the indicator, type from the header.
                self.buf.put_u8((indicator & 0xe0) | nal_type);
                self.buf.put_slice(data);
                self.fragment = Some(Fragment {
                    start: at,
                    nal_type,
                });
            }
            (Some(open), false) if open.nal_type == nal_type => {
                if !self.reserve(data.len()) {
                    return;
                }
                self.buf.put_slice(data);
            }
            // A start inside an open fragment, a middle/end without a start, or a type change.
            _ => {
                self.break_access_unit();
                return;
            }
        }
        if end {
            self.end_fragment();
        }
    }

    fn end_fragment(&mut self) {
        let Some(fragment) = self.fragment.take() else {
            return;
        };
        let nal_start = fragment.start + 4;
        let nal_len = self.buf.len() - nal_start;
        match fragment.nal_type {
            NAL_SPS | NAL_PPS | NAL_AUD => {
                let nal = Bytes::copy_from_slice(&self.buf[nal_start..]);
                self.buf.truncate(fragment.start);
                if let Some(au) = self.au.as_mut() {
                    au.has_sps |= fragment.nal_type == NAL_SPS;
                    au.has_pps |= fragment.nal_type == NAL_PPS;
                }
                if fragment.nal_type == NAL_SPS {
                    self.set_sps(nal);
                } else if fragment.nal_type == NAL_PPS {
                    self.set_pps(nal);
                }
            }
            nal_type => {
                // The buffer is capped at 8 MiB, so the length fits in 32 bits.
                let len = (nal_len as u32).to_be_bytes();
                self.buf[fragment.start..nal_start].copy_from_slice(&len);
                self.note_nal(nal_type);
            }
        }
    }

    /// A complete NAL unit (single-NAL packet or STAP-A entry).
    fn add_nal(&mut self, nal: Bytes) {
        let nal_type = nal[0] & 0x1f;
        let Some(au) = self.au.as_mut() else { return };
        match nal_type {
            // Complete parameter sets are good even in a broken access unit.
            NAL_SPS => {
                au.has_sps = true;
                self.set_sps(nal);
            }
            NAL_PPS => {
                au.has_pps = true;
                self.set_pps(nal);
            }
            NAL_AUD => {}
            _ if au.broken => au.has_idr |= nal_type == NAL_IDR,
            _ => {
                if !self.reserve(4 + nal.len()) {
                    return;
                }
                self.buf.put_u32(nal.len() as u32);
                self.buf.put_slice(&nal);
                self.note_nal(nal_type);
            }
        }
    }

    /// Counts an appended NAL unit and records what it says about the access unit.
    fn note_nal(&mut self, nal_type: u8) {
        let Some(au) = self.au.as_mut() else { return };
        au.nals += 1;
        au.has_idr |= nal_type == NAL_IDR;
        au.has_vcl |= (1..=NAL_IDR).contains(&nal_type);
        if au.nals > MAX_NALS_PER_ACCESS_UNIT {
            self.break_access_unit();
        }
    }

    /// Makes room for `extra` bytes, or breaks the access unit when it would grow too big.
    fn reserve(&mut self, extra: usize) -> bool {
        if self.buf.len() + extra > MAX_ACCESS_UNIT_BYTES {
            self.break_access_unit();
            return false;
        }
        // Reclaims the previous allocation once the frames that shared it are dropped.
        self.buf.reserve(extra);
        true
    }

    fn set_sps(&mut self, sps: Bytes) {
        if self.sps.as_ref() != Some(&sps) {
            self.sps = Some(sps);
            self.parameter_sets_sent = false;
        }
    }

    fn set_pps(&mut self, pps: Bytes) {
        if self.pps.as_ref() != Some(&pps) {
            self.pps = Some(pps);
            self.parameter_sets_sent = false;
        }
    }
}
