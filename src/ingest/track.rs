//! The receive loop of one remote track: RTP from webrtc-rs -> `rtp::TrackReceiver` -> frames on
//! the stream's media clock -> the hub. Also asks the publisher for keyframes (RTCP PLI).

use std::sync::Arc;
use std::time::Duration;

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    nack_pairs_from_sequence_numbers, TransportLayerNack,
};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::time::Instant;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::session::Session;
use crate::audio::{OpusToAac, TranscodeConfig};
use crate::media::clock::TrackId;
use crate::media::h264::ParameterSets;
use crate::media::{Codec, Frame};
use crate::rtp::{H264Event, OpusEvent, RtpPacket, TrackEvent, TrackReceiver};

/// How often the audio loop checks that audio keeps up with video.
const AUDIO_FILL_INTERVAL: Duration = Duration::from_millis(100);

/// PLIs closer together than this are merged: an encoder needs a moment to answer one.
const MIN_PLI_SPACING: Duration = Duration::from_millis(300);

/// Runs until the track ends or the session closes.
pub async fn run(track: Arc<dyn TrackRemote>, session: Arc<Session>) {
    let kind = track.kind().await;
    let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
    let codec = track.codec(ssrc).await;
    let mime = codec
        .as_ref()
        .map(|c| c.mime_type.to_ascii_lowercase())
        .unwrap_or_default();
    tracing::info!(stream = session.stream().name(), ?kind, %mime, ssrc, "track started");
    let reorder = Duration::from_millis(session.config().stream.reorder_delay_ms);
    let mut receiver = match (kind, mime.as_str()) {
        (RtpCodecKind::Video, "video/h264") => {
            let mut r = TrackReceiver::h264(reorder);
            let sprop = codec.as_ref().and_then(|c| sprop(&c.sdp_fmtp_line));
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
            return;
        }
    };
    let is_video = kind == RtpCodecKind::Video;
    let mut loop_state = TrackLoop {
        track: track.clone(),
        session: session.clone(),
        ssrc,
        last_pli: None,
        last_keyframe: None,
        keyframe_interval: session.config().keyframe_interval(),
        audio: None,
        last_rtp: std::time::Instant::now(),
    };
    if is_video {
        // A publisher's first keyframe may already be gone: ask for one now.
        loop_state.request_keyframe().await;
    }
    let mut keyframe_timer = tokio::time::interval_at(
        Instant::now() + loop_state.keyframe_interval,
        loop_state.keyframe_interval,
    );
    let mut fill_timer = tokio::time::interval(AUDIO_FILL_INTERVAL);
    fill_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let closed = session.closed();
    tokio::pin!(closed);
    loop {
        let reorder_deadline = receiver.poll_timeout().map(Instant::from_std);
        tokio::select! {
            event = track.poll() => match event {
                Some(TrackRemoteEvent::OnRtpPacket(p)) => {
                    session.media_arrived();
                    let packet = RtpPacket {
                        payload_type: p.header.payload_type,
                        sequence: p.header.sequence_number,
                        timestamp: p.header.timestamp,
                        ssrc: p.header.ssrc,
                        marker: p.header.marker,
                        payload: p.payload,
                    };
                    loop_state.last_rtp = std::time::Instant::now();
                    receiver.push(packet, loop_state.last_rtp);
                }
                Some(TrackRemoteEvent::OnRtcpPacket(packets)) => {
                    let track_id = if is_video { TrackId::Video } else { TrackId::Audio };
                    for sr in packets.iter().filter_map(|p| p.as_any().downcast_ref::<SenderReport>()) {
                        if sr.ssrc == ssrc {
                            session.stream().on_sender_report(track_id, sr.ntp_time, sr.rtp_time);
                        }
                    }
                }
                Some(TrackRemoteEvent::OnEnded) | None => break,
                Some(_) => {}
            },
            _ = sleep_until_opt(reorder_deadline) => {
                receiver.handle_timeout(std::time::Instant::now());
            }
            _ = fill_timer.tick(), if !is_video => {
                let video = session.stream().last_video_dts();
                loop_state.keep_audio_up_with(video);
            }
            _ = keyframe_timer.tick(), if is_video => {
                // Only when the encoder has not sent a keyframe of its own (or answered an
                // earlier request) within the interval: extra keyframes cost bitrate.
                if loop_state.last_keyframe.is_none_or(|t| t.elapsed() >= loop_state.keyframe_interval) {
                    loop_state.request_keyframe().await;
                }
            }
            _ = &mut closed => break,
        }
        while let Some(event) = receiver.poll_event() {
            loop_state.handle(event).await;
        }
        if is_video {
            // Lost packets are asked for as soon as a gap shows, and again while it is open.
            let lost = receiver.poll_nacks(std::time::Instant::now());
            if !lost.is_empty() {
                loop_state.send_nack(&lost).await;
            }
        }
        if is_video && receiver.is_waiting_for_keyframe() {
            // A PLI can be lost too: keep asking (rate-limited) until an IDR gets through.
            loop_state.request_keyframe().await;
        }
    }
    tracing::info!(stream = session.stream().name(), ?kind, "track ended");
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The `sprop-parameter-sets` value of an H.264 fmtp line.
fn sprop(fmtp: &str) -> Option<&str> {
    fmtp.split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("sprop-parameter-sets"))
        .map(|(_, v)| v)
}

struct TrackLoop {
    track: Arc<dyn TrackRemote>,
    session: Arc<Session>,
    ssrc: u32,
    last_pli: Option<Instant>,
    last_keyframe: Option<Instant>,
    keyframe_interval: Duration,
    audio: Option<AudioOut>,
    /// When the latest RTP packet came: frames it completes are timed from it (the
    /// gateway-added latency in `/api/streams`).
    last_rtp: std::time::Instant,
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

impl TrackLoop {
    async fn handle(&mut self, event: TrackEvent) {
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
                        self.request_keyframe().await;
                    }
                }
            }
            TrackEvent::H264(H264Event::KeyframeNeeded) => self.request_keyframe().await,
            TrackEvent::H264(H264Event::AccessUnit(frame)) => {
                if frame.keyframe {
                    self.last_keyframe = Some(Instant::now());
                }
                let frame = self.rebase(frame);
                let pushed = stream.push_video(frame);
                stream.note_video_latency(self.last_rtp, pushed);
                if pushed.wants_keyframe {
                    self.request_keyframe().await;
                }
            }
            TrackEvent::Opus(OpusEvent::Frame(frame)) => {
                let placed = self.rebase(frame.clone());
                let offset = placed.dts - frame.dts;
                stream.push_opus(placed);
                if self.audio.is_none() {
                    self.audio = self.start_audio(&frame);
                }
                if let Some(audio) = self.audio.as_mut() {
                    audio.offset = offset;
                    audio.last_input = Some((frame.dts, Instant::now()));
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
    fn keep_audio_up_with(&mut self, video_dts: Option<i64>) {
        let Some(audio) = self.audio.as_mut() else {
            return;
        };
        let until = match (video_dts, audio.last_input) {
            (Some(video), _) => video - audio.offset,
            (None, Some((pts, at))) => {
                pts + (at.elapsed().as_micros() as i64) * i64::from(crate::media::CLOCK_RATE)
                    / 1_000_000
            }
            (None, None) => return,
        };
        audio.transcoder.fill_until(until);
        self.drain_audio();
    }

    /// Moves a frame onto the stream's media clock, where audio and video line up.
    fn rebase(&mut self, frame: Frame) -> Frame {
        self.session
            .stream()
            .map_frame(frame, std::time::Instant::now())
    }

    /// Asks the publisher to resend these packets (Generic NACK, RFC 4585 §6.2.1).
    async fn send_nack(&mut self, sequence_numbers: &[u16]) {
        let nack = TransportLayerNack {
            sender_ssrc: 0,
            media_ssrc: self.ssrc,
            nacks: nack_pairs_from_sequence_numbers(sequence_numbers),
        };
        if let Err(e) = self.track.write_rtcp(vec![Box::new(nack)]).await {
            tracing::debug!(error = %e, "NACK not sent");
        }
    }

    async fn request_keyframe(&mut self) {
        let now = Instant::now();
        if self.last_pli.is_some_and(|t| now - t < MIN_PLI_SPACING) {
            return;
        }
        self.last_pli = Some(now);
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: self.ssrc,
        };
        if let Err(e) = self.track.write_rtcp(vec![Box::new(pli)]).await {
            tracing::debug!(error = %e, "PLI not sent");
        }
    }
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
}
