//! Real-time pacing: sends the source's access units and Opus packets on one timeline, as a
//! live encoder would, counting what went out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rtc::media::Sample;
use tokio::sync::watch;
use webrtc::peer_connection::RTCPeerConnectionState;

use super::annexb::AccessUnit;
use super::error::ClientError;
use super::ogg_opus::OpusPacket;
use super::peer::{failed, payload_type_and_ssrc, Outgoing};
use super::simulcast::{identifying_extensions, LayerOut, SimulcastOut, IDENTIFIED_FRAMES};
use super::source::{sample_duration, MediaSource, AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE};

/// What has been sent so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendStats {
    /// H.264 access units handed to the packetizer.
    pub video_frames: u64,
    pub video_keyframes: u64,
    /// Opus packets (one RTP packet each).
    pub audio_packets: u64,
    /// First transmissions of video RTP packets withheld on purpose
    /// ([`super::PublishOptions::drop_video_packets`]); 0 unless loss is asked for.
    pub video_packets_dropped: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    video_frames: AtomicU64,
    video_keyframes: AtomicU64,
    audio_packets: AtomicU64,
    /// Shared with the loss interceptor (`lossy.rs`), which counts into it.
    pub(super) video_packets_dropped: Arc<AtomicU64>,
}

impl Counters {
    pub(super) fn snapshot(&self) -> SendStats {
        SendStats {
            video_frames: self.video_frames.load(Ordering::Relaxed),
            video_keyframes: self.video_keyframes.load(Ordering::Relaxed),
            audio_packets: self.audio_packets.load(Ordering::Relaxed),
            video_packets_dropped: self.video_packets_dropped.load(Ordering::Relaxed),
        }
    }
}

/// How the media goes out (from [`super::PublishOptions`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct Pacing {
    /// Start again from the first frame when the source ends.
    pub looping: bool,
    /// Stamp each access unit with the wall-clock time as it is sent (see `sei.rs`).
    pub latency_stamps: bool,
}

/// Waits for the connection, then sends video and audio in real time following [`Schedule`].
pub(super) async fn send_media(
    video: Option<Outgoing>,
    audio: Option<Outgoing>,
    source: MediaSource,
    pacing: Pacing,
    counters: Arc<Counters>,
    mut state: watch::Receiver<RTCPeerConnectionState>,
    connect_timeout: Duration,
) -> Result<SendStats, ClientError> {
    let connected = tokio::time::timeout(
        connect_timeout,
        state.wait_for(|s| *s == RTCPeerConnectionState::Connected || failed(*s)),
    )
    .await
    .map_err(|_| ClientError::Timeout("ICE/DTLS connection"))?
    .map_err(|_| ClientError::ConnectionLost("peer connection dropped".into()))
    .map(|s| *s)?;
    if connected != RTCPeerConnectionState::Connected {
        return Err(ClientError::ConnectionLost(format!(
            "connection {connected} before media started"
        )));
    }

    let video = match &video {
        Some(out) => Some((out, payload_type_and_ssrc(out).await?)),
        None => None,
    };
    let audio = match &audio {
        Some(out) => Some((out, payload_type_and_ssrc(out).await?)),
        None => None,
    };
    // Without a video track, no frame is scheduled.
    let frames = match video {
        Some(_) => source.video(),
        None => &[],
    };
    // Without an audio track, Opus packets are not scheduled at all.
    let packets = match audio {
        Some(_) => source.audio().unwrap_or(&[]),
        None => &[],
    };
    let frame_duration = sample_duration(source.frame_ticks(), VIDEO_CLOCK_RATE);
    let schedule = Schedule::new(frames.len(), source.fps(), packets, pacing.looping);

    let start = tokio::time::Instant::now();
    for (at, next) in schedule {
        tokio::time::sleep_until(start + at).await;
        let now_state = *state.borrow();
        if failed(now_state) {
            return Err(ClientError::ConnectionLost(format!(
                "connection {now_state} while sending"
            )));
        }
        match (next, &audio) {
            (Next::Video(i), _) => {
                let Some((out, (video_pt, video_ssrc))) = video else {
                    continue;
                };
                let au = &frames[i];
                let sample = |au: &AccessUnit| Sample {
                    data: if pacing.latency_stamps {
                        super::sei::stamp_access_unit(&au.data, super::unix_micros())
                    } else {
                        au.data.clone()
                    },
                    duration: frame_duration,
                    ..Sample::new(std::time::Instant::now())
                };
                match &out.simulcast {
                    None => {
                        out.track
                            .sample_writer(video_ssrc, video_pt)
                            .write_sample(&sample(au))
                            .await?;
                    }
                    // Simulcast: the same picture on every layer, each coded at its own size.
                    Some(SimulcastOut { mid, layers }) => {
                        let sent = counters.video_frames.load(Ordering::Relaxed);
                        for LayerOut { ssrc, layer } in layers {
                            let mut writer = out.track.sample_writer(*ssrc, video_pt);
                            if sent < IDENTIFIED_FRAMES {
                                for ext in identifying_extensions(mid, &layer.rid) {
                                    writer = writer.with_extension(ext);
                                }
                            }
                            writer.write_sample(&sample(&layer.video[i])).await?;
                        }
                    }
                }
                counters.video_frames.fetch_add(1, Ordering::Relaxed);
                if au.keyframe {
                    counters.video_keyframes.fetch_add(1, Ordering::Relaxed);
                }
            }
            (Next::Audio(i), Some((out, (pt, ssrc)))) => {
                let packet = &packets[i];
                let sample = Sample {
                    data: packet.data.clone(),
                    duration: sample_duration(packet.samples, AUDIO_CLOCK_RATE),
                    ..Sample::new(std::time::Instant::now())
                };
                out.track
                    .sample_writer(*ssrc, *pt)
                    .write_sample(&sample)
                    .await?;
                counters.audio_packets.fetch_add(1, Ordering::Relaxed);
            }
            (Next::Audio(_), None) => {}
        }
    }
    Ok(counters.snapshot())
}

/// What to send next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    Video(usize),
    Audio(usize),
}

/// The send timeline, as an iterator of (offset from start, item): video frame `n` at
/// `n / fps` s, each Opus packet when the packets before it have played out; at equal times
/// video goes first. When looping, indexes wrap and time keeps running, so it never ends.
/// Times are computed from totals, not summed per item, so they do not drift.
pub(super) struct Schedule<'a> {
    frames: usize,
    fps: u64,
    packets: &'a [OpusPacket],
    looping: bool,
    video_index: usize,
    audio_index: usize,
    frames_sent: u64,
    samples_sent: u64,
}

impl<'a> Schedule<'a> {
    pub(super) fn new(frames: usize, fps: u32, packets: &'a [OpusPacket], looping: bool) -> Self {
        Schedule {
            frames,
            fps: u64::from(fps.max(1)),
            packets,
            looping,
            video_index: 0,
            audio_index: 0,
            frames_sent: 0,
            samples_sent: 0,
        }
    }
}

impl Iterator for Schedule<'_> {
    type Item = (Duration, Next);

    fn next(&mut self) -> Option<Self::Item> {
        if self.looping {
            self.video_index %= self.frames.max(1);
            self.audio_index %= self.packets.len().max(1);
        }
        let video_at = (self.video_index < self.frames).then(|| {
            Duration::from_nanos(self.frames_sent.saturating_mul(1_000_000_000) / self.fps)
        });
        let audio_at = (self.audio_index < self.packets.len()).then(|| {
            Duration::from_nanos(
                self.samples_sent.saturating_mul(1_000_000_000) / u64::from(AUDIO_CLOCK_RATE),
            )
        });
        let take_video = match (video_at, audio_at) {
            (Some(v), Some(a)) => v <= a,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if take_video {
            let item = Next::Video(self.video_index);
            self.video_index += 1;
            self.frames_sent += 1;
            video_at.map(|t| (t, item))
        } else {
            let item = Next::Audio(self.audio_index);
            let samples = self.packets.get(self.audio_index).map_or(0, |p| p.samples);
            self.samples_sent += u64::from(samples);
            self.audio_index += 1;
            audio_at.map(|t| (t, item))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn packets(samples: &[u32]) -> Vec<OpusPacket> {
        samples
            .iter()
            .map(|&samples| OpusPacket {
                data: Bytes::from_static(&[0xfc]),
                samples,
            })
            .collect()
    }

    fn ms(v: f64) -> Duration {
        Duration::from_nanos((v * 1_000_000.0).round() as u64)
    }

    #[test]
    fn thirty_fps_video_and_20ms_audio_interleave_by_time() {
        let audio = packets(&[960; 4]);
        let got: Vec<_> = Schedule::new(3, 30, &audio, false).collect();
        let want = vec![
            (ms(0.0), Next::Video(0)),
            (ms(0.0), Next::Audio(0)),
            (ms(20.0), Next::Audio(1)),
            (Duration::from_nanos(33_333_333), Next::Video(1)),
            (ms(40.0), Next::Audio(2)),
            (ms(60.0), Next::Audio(3)),
            (Duration::from_nanos(66_666_666), Next::Video(2)),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn audio_time_follows_each_packets_own_duration() {
        // 20 ms, 60 ms (SILK 60 ms frame), 10 ms.
        let audio = packets(&[960, 2880, 480]);
        let got: Vec<_> = Schedule::new(0, 30, &audio, false)
            .map(|(t, _)| t)
            .collect();
        assert_eq!(got, vec![ms(0.0), ms(20.0), ms(80.0)]);
    }

    #[test]
    fn looping_wraps_indexes_while_time_runs_on() {
        let got: Vec<_> = Schedule::new(2, 25, &[], true).take(5).collect();
        assert_eq!(
            got,
            vec![
                (ms(0.0), Next::Video(0)),
                (ms(40.0), Next::Video(1)),
                (ms(80.0), Next::Video(0)),
                (ms(120.0), Next::Video(1)),
                (ms(160.0), Next::Video(0)),
            ]
        );
    }

    #[test]
    fn without_looping_every_item_is_sent_once() {
        let audio = packets(&[960; 301]);
        let items: Vec<_> = Schedule::new(180, 30, &audio, false).collect();
        assert_eq!(items.len(), 481);
        assert_eq!(
            items
                .iter()
                .filter(|(_, n)| matches!(n, Next::Video(_)))
                .count(),
            180
        );
        assert!(
            items.windows(2).all(|w| w[0].0 <= w[1].0),
            "times never go back"
        );
    }

    #[test]
    fn empty_schedule_ends_at_once_even_when_looping() {
        assert_eq!(Schedule::new(0, 30, &[], true).next(), None);
    }
}
