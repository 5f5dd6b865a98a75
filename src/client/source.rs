//! What a publisher sends: H.264 access units and Opus packets loaded from files into memory
//! once, shared (cheaply cloned) by any number of publishers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::annexb::{access_units, AccessUnit};
use super::error::ClientError;
use super::ogg_opus::{opus_packets, OpusPacket};

/// RTP clock of H.264 (RFC 6184 §8.2.1) and of Opus (RFC 7587 §4.1).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;
pub const AUDIO_CLOCK_RATE: u32 = 48_000;

/// Media to publish. Cloning shares the loaded data.
#[derive(Clone, Debug)]
pub struct MediaSource {
    video: Arc<[AccessUnit]>,
    fps: u32,
    audio: Option<Arc<[OpusPacket]>>,
    /// Simulcast: the same pictures coded once per layer, sent as one video track whose
    /// layers are told apart by rid (RFC 8853). Empty for an ordinary publish.
    layers: Arc<[VideoLayer]>,
}

/// One simulcast layer of a [`MediaSource`].
#[derive(Clone, Debug)]
pub struct VideoLayer {
    pub rid: String,
    pub video: Arc<[AccessUnit]>,
}

fn read(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl MediaSource {
    /// Loads an H.264 Annex B file (played at `fps` frames per second, as raw H.264 carries no
    /// timing) and, optionally, an Ogg Opus file.
    pub fn from_files(h264: &Path, fps: u32, ogg_opus: Option<&Path>) -> Result<Self, ClientError> {
        let video = read(h264)?;
        let audio = ogg_opus.map(read).transpose()?;
        Self::from_bytes(&video, fps, audio.as_deref()).map_err(|e| match e {
            ClientError::NoVideo { .. } => ClientError::NoVideo {
                path: h264.to_path_buf(),
            },
            ClientError::NoLeadingKeyframe { .. } => ClientError::NoLeadingKeyframe {
                path: h264.to_path_buf(),
            },
            other => other,
        })
    }

    /// Same as [`MediaSource::from_files`] from bytes already in memory. The video must start
    /// with a keyframe, as a receiver cannot decode anything before one.
    pub fn from_bytes(h264: &[u8], fps: u32, ogg_opus: Option<&[u8]>) -> Result<Self, ClientError> {
        if !(1..=1000).contains(&fps) {
            return Err(ClientError::FrameRate(fps));
        }
        let video = access_units(h264);
        match video.first() {
            None => {
                return Err(ClientError::NoVideo {
                    path: "<memory>".into(),
                })
            }
            Some(au) if !au.keyframe => {
                return Err(ClientError::NoLeadingKeyframe {
                    path: "<memory>".into(),
                })
            }
            Some(_) => {}
        }
        let audio = ogg_opus.map(opus_packets).transpose()?;
        Ok(MediaSource {
            video: video.into(),
            fps,
            audio: audio.map(Into::into),
            layers: Vec::new().into(),
        })
    }

    /// This source's audio with its video sent as simulcast layers, one per `(rid, source)`
    /// in the order given (the offer's order of preference, RFC 8853 §5.2): the video of each
    /// source is that layer. The layers must have the same frame rate and number of frames, as
    /// an encoder's layers code the same pictures.
    pub fn with_layers(&self, layers: &[(&str, &MediaSource)]) -> Result<MediaSource, ClientError> {
        let Some((_, first)) = layers.first() else {
            return Err(ClientError::Layers("no layer given".into()));
        };
        for (rid, layer) in layers {
            if layer.fps != first.fps || layer.video.len() != first.video.len() {
                return Err(ClientError::Layers(format!(
                    "layer {rid:?} has {} frames at {} fps, the first {} at {}",
                    layer.video.len(),
                    layer.fps,
                    first.video.len(),
                    first.fps
                )));
            }
            if rid.is_empty() || !rid.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ClientError::Layers(format!("bad rid {rid:?}")));
            }
        }
        Ok(MediaSource {
            video: first.video.clone(),
            fps: first.fps,
            audio: self.audio.clone(),
            layers: layers
                .iter()
                .map(|(rid, source)| VideoLayer {
                    rid: rid.to_string(),
                    video: source.video.clone(),
                })
                .collect(),
        })
    }

    /// The simulcast layers (empty unless made by [`MediaSource::with_layers`]).
    pub fn layers(&self) -> &[VideoLayer] {
        &self.layers
    }

    /// The same audio without the video: a publisher with a microphone and no camera.
    pub fn without_video(&self) -> MediaSource {
        MediaSource {
            video: Vec::new().into(),
            layers: Vec::new().into(),
            ..self.clone()
        }
    }

    /// This source and then `next` as one source, sent back to back on the same tracks: RTP
    /// timestamps and sequence numbers run on from one to the other, as when a camera changes
    /// resolution mid-publish (the encoder sends the new SPS/PPS with the next keyframe,
    /// which `next` opens with). Both must have the same frame rate, and both or neither audio.
    pub fn followed_by(&self, next: &MediaSource) -> Result<MediaSource, ClientError> {
        if !self.layers.is_empty() || !next.layers.is_empty() {
            return Err(ClientError::Join("simulcast sources cannot be joined"));
        }
        if self.fps != next.fps {
            return Err(ClientError::Join("the frame rates differ"));
        }
        let audio = match (&self.audio, &next.audio) {
            (Some(a), Some(b)) => Some(a.iter().chain(b.iter()).cloned().collect()),
            (None, None) => None,
            _ => return Err(ClientError::Join("only one of them has audio")),
        };
        Ok(MediaSource {
            video: self
                .video
                .iter()
                .chain(next.video.iter())
                .cloned()
                .collect(),
            fps: self.fps,
            audio,
            layers: Vec::new().into(),
        })
    }

    /// The access units, in decoding order.
    pub fn video(&self) -> &[AccessUnit] {
        &self.video
    }

    /// The Opus packets, if the source has audio.
    pub fn audio(&self) -> Option<&[OpusPacket]> {
        self.audio.as_deref()
    }

    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Number of video frames (access units) in one pass over the source.
    pub fn video_frames(&self) -> usize {
        self.video.len()
    }

    /// Number of keyframes in one pass over the source.
    pub fn video_keyframes(&self) -> usize {
        self.video.iter().filter(|au| au.keyframe).count()
    }

    /// Whether the audio is coded in stereo (a packet's TOC byte has the stereo flag, RFC 6716
    /// §3.1). A sender of stereo says so in its offer (`sprop-stereo=1`, RFC 7587 §7.1), as
    /// a receiver otherwise may mix it down to mono.
    pub fn audio_stereo(&self) -> bool {
        self.audio.as_ref().is_some_and(|packets| {
            packets
                .iter()
                .any(|p| p.data.first().is_some_and(|toc| toc & 0x04 != 0))
        })
    }

    /// Number of Opus packets in one pass over the source (0 without audio).
    pub fn audio_packets(&self) -> usize {
        self.audio.as_ref().map_or(0, |a| a.len())
    }

    /// RTP timestamp increment per video frame at 90 kHz (rounded for rates that do not divide
    /// 90 000).
    pub fn frame_ticks(&self) -> u32 {
        (VIDEO_CLOCK_RATE + self.fps / 2) / self.fps
    }

    /// Wall-clock time between two video frames.
    pub fn frame_interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.fps))
    }

    /// Length of one pass over the video.
    pub fn video_duration(&self) -> Duration {
        self.frame_interval() * u32::try_from(self.video.len()).unwrap_or(u32::MAX)
    }
}

/// The duration to give a webrtc-rs `Sample` so that its packetizer advances the RTP
/// timestamp by exactly `ticks`: it computes `(duration_secs * clock_rate) as u32`, which
/// truncates, so the exact quotient (often not representable in nanoseconds, e.g. 3000/90000 s)
/// is rounded down to whole nanoseconds and then pushed up by one.
pub fn sample_duration(ticks: u32, clock_rate: u32) -> Duration {
    let nanos = u64::from(ticks) * 1_000_000_000 / u64::from(clock_rate.max(1));
    Duration::from_nanos(nanos + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDR_STREAM: &[u8] = &[
        0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88, 0, 0, 0, 1, 0x41,
        0x9a,
    ];

    #[test]
    fn packetizer_duration_gives_exact_ticks_for_30fps_and_20ms_opus() {
        for (ticks, rate) in [
            (3000u32, 90_000u32),
            (960, 48_000),
            (3003, 90_000),
            (1, 90_000),
        ] {
            let d = sample_duration(ticks, rate);
            assert_eq!(
                (d.as_secs_f64() * f64::from(rate)) as u32,
                ticks,
                "{ticks}@{rate}"
            );
        }
    }

    #[test]
    fn video_source_counts_frames_and_keyframes() {
        let src = MediaSource::from_bytes(IDR_STREAM, 30, None).unwrap();
        assert_eq!(src.video_frames(), 2);
        assert_eq!(src.video_keyframes(), 1);
        assert_eq!(src.audio_packets(), 0);
        assert_eq!(src.frame_ticks(), 3000);
        assert_eq!(
            src.video_duration(),
            Duration::from_secs_f64(1.0 / 30.0) * 2
        );
    }

    #[test]
    fn sources_followed_by_each_other_play_one_after_the_other() {
        let a = MediaSource::from_bytes(IDR_STREAM, 30, None).unwrap();
        let b = MediaSource::from_bytes(&IDR_STREAM[..18], 30, None).unwrap();
        let joined = a.followed_by(&b).unwrap();
        assert_eq!(joined.video_frames(), 3);
        assert_eq!(joined.video_keyframes(), 2);
        assert_eq!(joined.video()[..2], a.video()[..]);
        assert_eq!(joined.video()[2], b.video()[0]);
        assert_eq!(
            joined.video_duration(),
            a.video_duration() + b.video_duration()
        );
        assert_eq!(joined.fps(), 30);
        assert!(joined.audio().is_none());
    }

    #[test]
    fn sources_with_other_frame_rates_or_half_the_audio_cannot_be_joined() {
        let a = MediaSource::from_bytes(IDR_STREAM, 30, None).unwrap();
        let b = MediaSource::from_bytes(IDR_STREAM, 25, None).unwrap();
        assert!(matches!(a.followed_by(&b), Err(ClientError::Join(_))));
        let with_audio = MediaSource {
            audio: Some(Vec::new().into()),
            ..a.clone()
        };
        assert!(matches!(
            a.followed_by(&with_audio),
            Err(ClientError::Join(_))
        ));
        assert!(matches!(
            with_audio.followed_by(&a),
            Err(ClientError::Join(_))
        ));
    }

    #[test]
    fn video_starting_with_a_p_frame_is_refused() {
        let err = MediaSource::from_bytes(&[0, 0, 1, 0x41, 0x9a], 30, None).unwrap_err();
        assert!(
            matches!(err, ClientError::NoLeadingKeyframe { .. }),
            "{err}"
        );
    }

    #[test]
    fn empty_video_and_bad_frame_rate_are_refused() {
        assert!(matches!(
            MediaSource::from_bytes(&[], 30, None),
            Err(ClientError::NoVideo { .. })
        ));
        assert!(matches!(
            MediaSource::from_bytes(IDR_STREAM, 0, None),
            Err(ClientError::FrameRate(0))
        ));
    }

    #[test]
    fn non_opus_audio_is_refused() {
        let err = MediaSource::from_bytes(IDR_STREAM, 30, Some(b"not ogg at all, definitely not"));
        assert!(matches!(err, Err(ClientError::Audio(_))));
    }

    /// An Ogg Opus file whose audio packets are 20 ms CELT frames with these TOC bytes.
    fn ogg_with_tocs(tocs: &[u8]) -> Vec<u8> {
        use crate::client::ogg_opus::test_page;
        let mut file = test_page(
            0x02,
            9,
            &[19],
            b"OpusHead\x01\x02\x38\x01\x80\xbb\0\0\0\0\0",
        );
        file.extend(test_page(0, 9, &[12], b"OpusTags\0\0\0\0"));
        for &toc in tocs {
            file.extend(test_page(0, 9, &[2], &[toc, 0xff]));
        }
        file
    }

    #[test]
    fn audio_is_stereo_when_a_packet_is_coded_in_stereo() {
        // Config 31 (CELT FB 20 ms), one frame; bit 2 of the TOC is the stereo flag.
        let mono = ogg_with_tocs(&[0xf8, 0xf8]);
        let stereo = ogg_with_tocs(&[0xf8, 0xfc]);
        let src = |ogg: &[u8]| MediaSource::from_bytes(IDR_STREAM, 30, Some(ogg)).unwrap();
        assert!(!src(&mono).audio_stereo());
        assert!(src(&stereo).audio_stereo());
        assert!(!MediaSource::from_bytes(IDR_STREAM, 30, None)
            .unwrap()
            .audio_stereo());
    }
}
