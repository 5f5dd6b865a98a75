//! One remote track's receive pipeline, sans-IO: RTP packets and Sender Reports in (with the
//! time they came), frames on the stream's media clock out to the hub, and the RTCP feedback
//! the publisher should get (PLI keyframe requests, NACKs for lost video) queued for the
//! connection to send. Its timers (reorder wait, NACK retries, keyframe interval, audio fill)
//! are reported by `poll_timeout` and fired by `handle_timeout`; it never reads a clock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    nack_pairs_from_sequence_numbers, TransportLayerNack,
};
use rtc::rtcp::Packet as RtcpPacket;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};

use super::session::Session;
use crate::audio::{OpusToAac, TranscodeConfig};
use crate::media::clock::TrackId;
use crate::media::h264::ParameterSets;
use crate::media::{Codec, Frame};
use crate::rtp::{H264Event, OpusEvent, RtpPacket, TrackEvent, TrackReceiver};

/// How often the audio pipeline checks that audio keeps up with video.
const AUDIO_FILL_INTERVAL: Duration = Duration::from_millis(100);

/// PLIs closer together than this are merged: an encoder needs a moment to answer one.
const MIN_PLI_SPACING: Duration = Duration::from_millis(300);
/// How long a new video track waits for the IDR it may have opened with before it asks for
/// one (see `TrackPipeline::start_pli`): a keyframe's packets come back to back, well within.
const START_PLI_GRACE: Duration = Duration::from_millis(100);

/// The receive side of one H.264 or Opus track of a publish.
pub struct TrackPipeline {
    receiver: TrackReceiver,
    session: Arc<Session>,
    ssrc: u32,
    is_video: bool,
    last_pli: Option<Instant>,
    /// When the keyframe request a video track opens with goes out unless the track has its
    /// IDR by then. Publishers that start on a keyframe (browsers, GStreamer) would otherwise
    /// answer it with a second IDR right behind their first: bitrate for nothing, and a
    /// one-frame GOP (an HTTP-FLV viewer that joins a frame late misses the first frame).
    /// A first frame that is not an IDR, or lost packets, ask at once (`KeyframeNeeded`).
    start_pli: Option<Instant>,
    last_keyframe: Option<Instant>,
    keyframe_interval: Duration,
    /// Video: when to check that a keyframe came within the interval. Audio: when to fill.
    next_check: Instant,
    audio: Option<AudioOut>,
    /// When the latest RTP packet came: frames it completes are timed from it (the
    /// gateway-added latency in `/api/streams`).
    last_rtp: Instant,
    feedback: VecDeque<Box<dyn RtcpPacket>>,
}

impl TrackPipeline {
    /// The pipeline of a track the publisher opened, or `None` (logged) for a codec castgate
    /// does not take. A video pipeline starts by asking for a keyframe: the publisher's first
    /// one may already be gone.
    /// The SSRC whose packets this pipeline takes.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn new(
        session: Arc<Session>,
        kind: RtpCodecKind,
        codec: Option<&RTCRtpCodec>,
        ssrc: u32,
        now: Instant,
    ) -> Option<TrackPipeline> {
        let mime = codec
            .map(|c| c.mime_type.to_ascii_lowercase())
            .unwrap_or_default();
        tracing::info!(stream = session.stream().name(), ?kind, %mime, ssrc, "track started");
        let reorder = Duration::from_millis(session.config().stream.reorder_delay_ms);
        let receiver = match (kind, mime.as_str()) {
            (RtpCodecKind::Video, "video/h264") => {
                let mut r = TrackReceiver::h264(reorder);
                let sprop = codec.and_then(|c| sprop(&c.sdp_fmtp_line));
                if let (Some(sprop), Some(depacketizer)) = (sprop, r.h264_mut()) {
                    if let Err(e) = depacketizer.set_sprop_parameter_sets(sprop) {
                        tracing::debug!(error = %e, "ignoring bad sprop-parameter-sets");
                    }
                }
                session.stream().register_track(TrackId::Video, 90_000);
                r
            }
            (RtpCodecKind::Audio, "audio/opus") => {
                session.stream().set_audio_codec(Codec::Opus);
                session.stream().register_track(TrackId::Audio, 48_000);
                TrackReceiver::opus(reorder)
            }
            _ => {
                tracing::warn!(%mime, "ignoring a track castgate cannot use");
                return None;
            }
        };
        let is_video = kind == RtpCodecKind::Video;
        let keyframe_interval = session.config().keyframe_interval();
        let first_check = if is_video {
            keyframe_interval
        } else {
            AUDIO_FILL_INTERVAL
        };
        let pipeline = TrackPipeline {
            receiver,
            session,
            ssrc,
            is_video,
            last_pli: None,
            start_pli: is_video.then_some(now + START_PLI_GRACE),
            last_keyframe: None,
            keyframe_interval,
            next_check: now + first_check,
            audio: None,
            last_rtp: now,
            feedback: VecDeque::new(),
        };
        Some(pipeline)
    }

    /// One RTP packet of this track, as it came.
    pub fn on_rtp(&mut self, packet: RtpPacket, now: Instant) {
        if self.session.is_closed() {
            return;
        }
        self.session.media_arrived();
        self.last_rtp = now;
        self.receiver.push(packet, now);
        self.settle(now);
    }

    /// RTCP the connection routed to this track: Sender Reports about it map its RTP time to
    /// wall time.
    pub fn on_rtcp(&mut self, packets: &[Box<dyn RtcpPacket>]) {
        let track = if self.is_video {
            TrackId::Video
        } else {
            TrackId::Audio
        };
        for sr in packets
            .iter()
            .filter_map(|p| p.as_any().downcast_ref::<SenderReport>())
        {
            if sr.ssrc == self.ssrc {
                self.session
                    .stream()
                    .on_sender_report(track, sr.ntp_time, sr.rtp_time);
            }
        }
    }

    /// The earliest time `handle_timeout` has something to do.
    pub fn poll_timeout(&self) -> Instant {
        let next = match self.receiver.poll_timeout() {
            Some(t) => t.min(self.next_check),
            None => self.next_check,
        };
        self.start_pli.map_or(next, |t| t.min(next))
    }

    /// Fires whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.session.is_closed() {
            return;
        }
        if self.receiver.poll_timeout().is_some_and(|t| t <= now) {
            self.receiver.handle_timeout(now);
        }
        if self.start_pli.is_some_and(|t| t <= now) {
            self.start_pli = None;
            if self.last_keyframe.is_none() {
                self.request_keyframe(now);
            }
        }
        if now >= self.next_check {
            if self.is_video {
                self.next_check = now + self.keyframe_interval;
                // Only when the encoder has not sent a keyframe of its own (or answered an
                // earlier request) within the interval: extra keyframes cost bitrate.
                if self
                    .last_keyframe
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.keyframe_interval)
                {
                    self.request_keyframe(now);
                }
            } else {
                self.next_check = now + AUDIO_FILL_INTERVAL;
                let video = self.session.stream().last_video_dts();
                self.keep_audio_up_with(video, now);
            }
        }
        self.settle(now);
    }

    /// The next RTCP packet to send the publisher about this track.
    pub fn poll_feedback(&mut self) -> Option<Box<dyn RtcpPacket>> {
        self.feedback.pop_front()
    }

    /// Hands on what the receiver completed, and asks for what it misses.
    fn settle(&mut self, now: Instant) {
        while let Some(event) = self.receiver.poll_event() {
            self.handle(event, now);
        }
        if self.is_video {
            // Lost packets are asked for as soon as a gap shows, and again while it is open.
            let lost = self.receiver.poll_nacks(now);
            if !lost.is_empty() {
                self.feedback.push_back(Box::new(TransportLayerNack {
                    sender_ssrc: 0,
                    media_ssrc: self.ssrc,
                    nacks: nack_pairs_from_sequence_numbers(&lost),
                }));
            }
            if self.receiver.is_waiting_for_keyframe() && self.start_pli.is_none() {
                // A PLI can be lost too: keep asking (rate-limited) until an IDR gets through.
                // Not while the opening request waits (see `start_pli`).
                self.request_keyframe(now);
            }
        }
    }

    fn handle(&mut self, event: TrackEvent, now: Instant) {
        let stream = self.session.stream().clone();
        match event {
            TrackEvent::H264(H264Event::ParameterSets { sps, pps }) => {
                match ParameterSets::new(sps, pps) {
                    Ok(ps) => {
                        tracing::info!(
                            stream = stream.name(),
                            width = ps.info.width,
                            height = ps.info.height,
                            codec = %ps.codec_string(),
                            "video parameters"
                        );
                        stream.set_video_params(ps);
                    }
                    Err(e) => {
                        tracing::warn!(stream = stream.name(), error = %e, "unusable SPS/PPS");
                        self.request_keyframe(now);
                    }
                }
            }
            TrackEvent::H264(H264Event::KeyframeNeeded) => self.request_keyframe(now),
            TrackEvent::H264(H264Event::AccessUnit(frame)) => {
                if frame.keyframe {
                    self.last_keyframe = Some(now);
                    self.start_pli = None;
                }
                // Onto the stream's media clock, where audio and video line up.
                let frame = stream.map_frame(frame, now);
                let pushed = stream.push_video(frame);
                stream.note_video_latency(self.last_rtp, pushed);
                if pushed.wants_keyframe {
                    self.request_keyframe(now);
                }
            }
            TrackEvent::Opus(OpusEvent::Frame(frame)) => {
                let placed = stream.map_frame(frame.clone(), now);
                let offset = placed.dts - frame.dts;
                stream.push_opus(placed);
                if self.audio.is_none() {
                    self.audio = self.start_audio(&frame);
                }
                if let Some(audio) = self.audio.as_mut() {
                    audio.offset = offset;
                    audio.last_input = Some((frame.dts, now));
                    audio.transcoder.push(OpusEvent::Frame(frame));
                }
                if self.drain_audio() {
                    stream.note_audio_latency(self.last_rtp);
                }
            }
            TrackEvent::Opus(lost @ OpusEvent::Lost { .. }) => {
                if let Some(audio) = self.audio.as_mut() {
                    audio.transcoder.push(lost);
                }
                self.drain_audio();
            }
        }
    }

    /// Makes the transcoder. Its channel count is the one the stream declared from the offer
    /// (the decoder mixes or splits whatever the packets carry to it); failing that, the first
    /// packet's. The AAC configuration goes to the outputs (unchanged if already declared).
    fn start_audio(&self, first: &Frame) -> Option<AudioOut> {
        let mut config = TranscodeConfig::for_packet(&first.data);
        if let Some(channels) = self.session.stream().aac_channels() {
            config.channels = channels;
        }
        config.bitrate = self.session.config().audio.aac_bitrate;
        match OpusToAac::new(config) {
            Ok(transcoder) => {
                self.session.stream().set_aac_config(
                    transcoder.audio_specific_config(),
                    transcoder.sample_rate(),
                    transcoder.channels(),
                );
                Some(AudioOut {
                    transcoder,
                    offset: 0,
                    last_input: None,
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot transcode this audio; the outputs stay video-only");
                None
            }
        }
    }

    /// Sends every AAC frame the transcoder has ready to the outputs; true if there was one.
    fn drain_audio(&mut self) -> bool {
        let Some(audio) = self.audio.as_mut() else {
            return false;
        };
        let stream = self.session.stream();
        let mut sent = false;
        while let Some(mut aac) = audio.transcoder.poll() {
            aac.pts += audio.offset;
            aac.dts += audio.offset;
            stream.push_aac(aac);
            sent = true;
        }
        sent
    }

    /// Keeps audio going while the publisher sends none (muted, DTX, loss): the transcoder
    /// fills the gap with concealment, then silence, so players keep playing. The pace is the
    /// video's when there is video, else the wall clock since the last Opus packet.
    fn keep_audio_up_with(&mut self, video_dts: Option<i64>, now: Instant) {
        let Some(audio) = self.audio.as_mut() else {
            return;
        };
        let until = match (video_dts, audio.last_input) {
            (Some(video), _) => video - audio.offset,
            (None, Some((pts, at))) => {
                pts + (now.saturating_duration_since(at).as_micros() as i64)
                    * i64::from(crate::media::CLOCK_RATE)
                    / 1_000_000
            }
            (None, None) => return,
        };
        audio.transcoder.fill_until(until);
        self.drain_audio();
    }

    /// Queues a PLI (RFC 4585 §6.3.1) unless one went out less than [`MIN_PLI_SPACING`] ago.
    fn request_keyframe(&mut self, now: Instant) {
        if self
            .last_pli
            .is_some_and(|t| now.saturating_duration_since(t) < MIN_PLI_SPACING)
        {
            return;
        }
        self.last_pli = Some(now);
        self.feedback.push_back(Box::new(PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: self.ssrc,
        }));
    }
}

/// The `sprop-parameter-sets` value of an H.264 fmtp line.
fn sprop(fmtp: &str) -> Option<&str> {
    fmtp.split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("sprop-parameter-sets"))
        .map(|(_, v)| v)
}

/// The audio track's way into the outputs: Opus transcoded to AAC, placed on the stream clock.
struct AudioOut {
    transcoder: OpusToAac,
    /// Stream time minus Opus time, from the latest Opus frame the clock placed. AAC frames
    /// share the Opus time base, so they take the same offset.
    offset: i64,
    /// The latest Opus frame's time and when it came.
    last_input: Option<(i64, Instant)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sprop_is_found_in_fmtp() {
        assert_eq!(
            sprop("packetization-mode=1; sprop-parameter-sets=Z0LAHtkA,aM4G4g==;profile-level-id=42c01e"),
            Some("Z0LAHtkA,aM4G4g==")
        );
        assert_eq!(sprop("packetization-mode=1"), None);
    }

    use crate::config::Config;
    use crate::hub::{Hub, StreamSettings};
    use crate::ingest::Shared;
    use bytes::Bytes;
    use std::sync::Mutex;

    const SSRC: u32 = 0x1234;

    fn session() -> Arc<Session> {
        let hub = Arc::new(Hub::new(StreamSettings::default()));
        let stream = hub.claim("cam").unwrap();
        let shared = Arc::new(Shared {
            config: Arc::new(Config::default()),
            hub,
            sessions: Mutex::default(),
            runtime: None,
        });
        Arc::new(Session::new(
            "s".into(),
            "\"e\"".into(),
            "u".into(),
            stream,
            shared,
        ))
    }

    fn codec(mime: &str) -> RTCRtpCodec {
        RTCRtpCodec {
            mime_type: mime.into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: "packetization-mode=1".into(),
            rtcp_feedback: vec![],
        }
    }

    fn video(now: Instant) -> TrackPipeline {
        TrackPipeline::new(
            session(),
            RtpCodecKind::Video,
            Some(&codec("video/H264")),
            SSRC,
            now,
        )
        .unwrap()
    }

    /// A non-IDR slice in one packet (single NAL unit mode).
    fn slice(sequence: u16) -> RtpPacket {
        RtpPacket {
            payload_type: 102,
            sequence,
            timestamp: u32::from(sequence) * 3000,
            ssrc: SSRC,
            marker: true,
            payload: Bytes::from_static(&[0x41, 0x9a, 0x00]),
        }
    }

    fn feedback(p: &mut TrackPipeline) -> (usize, Vec<Vec<u16>>) {
        let (mut plis, mut nacks) = (0, Vec::new());
        while let Some(packet) = p.poll_feedback() {
            if packet
                .as_any()
                .downcast_ref::<PictureLossIndication>()
                .is_some_and(|pli| pli.media_ssrc == SSRC)
            {
                plis += 1;
            } else if let Some(nack) = packet.as_any().downcast_ref::<TransportLayerNack>() {
                assert_eq!(nack.media_ssrc, SSRC);
                nacks.push(
                    nack.nacks
                        .iter()
                        .flat_map(|pair| pair.packet_list())
                        .collect(),
                );
            } else {
                panic!("unexpected feedback {packet:?}");
            }
        }
        (plis, nacks)
    }

    #[test]
    fn video_asks_for_a_keyframe_then_no_faster_than_the_spacing() {
        let t0 = Instant::now();
        let mut p = video(t0);
        p.handle_timeout(t0 + START_PLI_GRACE);
        assert_eq!(feedback(&mut p), (1, vec![]), "a PLI when no media came");
        // Slices without a keyframe: still waiting for one, but the last PLI is too recent.
        p.on_rtp(slice(1), t0 + START_PLI_GRACE + Duration::from_millis(100));
        assert_eq!(feedback(&mut p), (0, vec![]));
        p.on_rtp(
            slice(2),
            t0 + START_PLI_GRACE + MIN_PLI_SPACING + Duration::from_millis(1),
        );
        assert_eq!(
            feedback(&mut p),
            (1, vec![]),
            "asked again after the spacing"
        );
    }

    #[test]
    fn a_gap_is_nacked_as_soon_as_it_shows() {
        let t0 = Instant::now();
        let mut p = video(t0);
        feedback(&mut p);
        p.on_rtp(slice(10), t0);
        p.on_rtp(slice(13), t0 + Duration::from_millis(1));
        let (_, nacks) = feedback(&mut p);
        assert_eq!(nacks, vec![vec![11, 12]]);
    }

    /// One NAL unit per packet, all of one access unit at `timestamp`.
    fn access_unit(first_sequence: u16, timestamp: u32, nals: &[&[u8]]) -> Vec<RtpPacket> {
        nals.iter()
            .enumerate()
            .map(|(i, nal)| RtpPacket {
                payload_type: 102,
                sequence: first_sequence + i as u16,
                timestamp,
                ssrc: SSRC,
                marker: i + 1 == nals.len(),
                payload: Bytes::copy_from_slice(nal),
            })
            .collect()
    }

    /// GStreamer's webrtcbin (and browsers) start on an IDR: a track that opens on one sends
    /// no opening PLI; one whose IDR does not come within the grace asks then; one that opens
    /// on a P-frame asks at once.
    #[test]
    fn the_opening_pli_waits_for_the_keyframe_the_track_may_open_with() {
        use crate::media::h264::test_vectors::BASELINE_360P30;
        let t0 = Instant::now();
        let idr: &[u8] = &[0x65, 0x88, 0x80];
        let keyframe = access_unit(1, 0, &[BASELINE_360P30.sps, BASELINE_360P30.pps, idr]);

        let mut p = video(t0);
        assert_eq!(p.poll_timeout(), t0 + START_PLI_GRACE);
        // The IDR's packets one by one, the feedback collected after each (as the gateway's
        // loop does): no request while it is still coming, none once it is in.
        for (i, packet) in keyframe.iter().enumerate() {
            p.on_rtp(packet.clone(), t0 + Duration::from_millis(i as u64));
            assert_eq!(feedback(&mut p), (0, vec![]), "after packet {i} of the IDR");
        }
        p.handle_timeout(t0 + START_PLI_GRACE);
        assert_eq!(feedback(&mut p), (0, vec![]), "opened on an IDR: no PLI");

        let mut p = video(t0);
        p.on_rtp(keyframe[0].clone(), t0);
        assert_eq!(
            feedback(&mut p),
            (0, vec![]),
            "parameter sets only, within the grace"
        );
        p.handle_timeout(t0 + START_PLI_GRACE);
        assert_eq!(
            feedback(&mut p),
            (1, vec![]),
            "no IDR within the grace: ask"
        );

        let mut p = video(t0);
        p.on_rtp(slice(1), t0);
        assert_eq!(
            feedback(&mut p),
            (1, vec![]),
            "opened on a P-frame: ask at once"
        );
    }

    #[test]
    fn the_keyframe_timer_asks_only_when_no_keyframe_came_within_the_interval() {
        use crate::media::h264::test_vectors::BASELINE_360P30;
        let t0 = Instant::now();
        let interval = Config::default().keyframe_interval();
        let mut p = video(t0);
        feedback(&mut p);
        // A keyframe from the encoder 10 ms in: the first check finds it recent enough.
        let idr: &[u8] = &[0x65, 0x88, 0x80];
        for packet in access_unit(1, 0, &[BASELINE_360P30.sps, BASELINE_360P30.pps, idr]) {
            p.on_rtp(packet, t0 + Duration::from_millis(10));
        }
        assert_eq!(feedback(&mut p).0, 0);
        let due = p.poll_timeout();
        assert_eq!(due, t0 + interval);
        p.handle_timeout(due);
        assert_eq!(feedback(&mut p).0, 0, "a keyframe came 1.99 s ago");
        let next = p.poll_timeout();
        assert_eq!(next, due + interval, "rearmed");
        p.handle_timeout(next);
        assert_eq!(feedback(&mut p).0, 1, "none for 3.99 s: ask");
    }

    #[test]
    fn audio_wakes_to_fill_and_never_asks_for_keyframes() {
        let t0 = Instant::now();
        let mut audio = TrackPipeline::new(
            session(),
            RtpCodecKind::Audio,
            Some(&codec("audio/opus")),
            SSRC,
            t0,
        )
        .unwrap();
        assert_eq!(audio.poll_timeout(), t0 + AUDIO_FILL_INTERVAL);
        audio.handle_timeout(t0 + AUDIO_FILL_INTERVAL);
        assert_eq!(audio.poll_timeout(), t0 + 2 * AUDIO_FILL_INTERVAL);
        assert!(audio.poll_feedback().is_none());
    }

    #[test]
    fn other_codecs_get_no_pipeline_and_a_closed_session_takes_no_media() {
        let t0 = Instant::now();
        assert!(TrackPipeline::new(
            session(),
            RtpCodecKind::Video,
            Some(&codec("video/VP8")),
            SSRC,
            t0
        )
        .is_none());
        let mut p = video(t0);
        feedback(&mut p);
        p.session.close("test");
        p.on_rtp(slice(1), t0);
        p.on_rtp(slice(5), t0 + Duration::from_secs(1));
        assert_eq!(feedback(&mut p), (0, vec![]), "no NACK or PLI after close");
    }
}
