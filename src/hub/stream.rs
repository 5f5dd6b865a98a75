//! One published stream: its state, its parameter sets, and its outputs muxed once for every
//! viewer (the FLV tag fan-out with its GOP cache, and the HLS segment window).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::flv_batch::FlvBatcher;
use super::flv_fanout::{FlvCache, FlvKind, FlvPacket, FlvSubscription};
use super::flv_timeline::Owed;
use super::hls_requests::{HlsRequest, HlsRequestCounts, HlsRequestInfo};
use super::meter::{ClientTracker, RateMeter};
use super::simulcast::{SimulcastInfo, SimulcastLayers};
use crate::media::clock::{MediaClock, TrackId};
use crate::media::h264::ParameterSets;
use crate::media::{Codec, Frame, CLOCK_RATE};
use crate::mux::hls::{HlsConfig, HlsProgress, HlsStream, LowLatency};

/// What every stream is built with (from the gateway's config).
#[derive(Clone, Debug)]
pub struct StreamSettings {
    pub segment_target: Duration,
    pub hls_window: usize,
    /// Low-Latency HLS part length (`None`: plain HLS).
    pub hls_part_target: Option<Duration>,
    /// An MPEG-TS rendition (`ts.m3u8`) next to the fMP4 one.
    pub hls_mpegts: bool,
    /// Packets queued per FLV viewer before it skips ahead (see [`FlvBatcher`]).
    pub flv_queue: usize,
    /// FLV tags are held until they span this many ms (0: one packet per video frame)...
    pub flv_merge_ms: u32,
    /// ...while the stream has at least this many FLV viewers (0: always).
    pub flv_merge_from_viewers: usize,
    /// Put the publisher's Opus into HLS as it is (fMP4 `Opus` + `dOps`) instead of AAC.
    /// FLV, which cannot carry Opus, gets AAC either way.
    pub hls_opus_passthrough: bool,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            segment_target: Duration::from_secs(2),
            hls_window: 6,
            hls_part_target: Some(Duration::from_millis(200)),
            hls_mpegts: true,
            flv_queue: 256,
            flv_merge_ms: 0,
            flv_merge_from_viewers: 0,
            hls_opus_passthrough: false,
        }
    }
}

/// Where a stream is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamState {
    /// Claimed by a publisher; no keyframe yet.
    Starting,
    /// Has had its first keyframe: outputs are being written.
    Live,
    /// The publisher was lost; the stream waits for it (or another) to publish again within the
    /// reconnect grace. Viewers stay; nothing new is written.
    Reconnecting,
    /// The publisher left; outputs are final.
    Ended,
}

/// A stream as `/api/streams` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct StreamInfo {
    pub name: String,
    pub state: StreamState,
    /// When the publish began, as Unix milliseconds.
    pub started_at_ms: i64,
    pub video_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f64>,
    /// Video bitrate in bits per second.
    pub video_bitrate: Option<u64>,
    /// The codec the publisher sends audio in.
    pub audio_codec: Option<String>,
    /// The audio codec in the HLS and FLV outputs (AAC-LC), once audio flows.
    pub output_audio_codec: Option<String>,
    pub viewers: Viewers,
    /// Latency the gateway adds, since the publish began (see `hub/latency.rs`).
    pub latency: super::latency::LatencyInfo,
    /// Present when the publisher offered simulcast layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulcast: Option<SimulcastInfo>,
    /// HLS requests answered, by kind.
    pub hls_requests: HlsRequestInfo,
}

/// What [`Stream::push_video`] did with a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VideoPushed {
    /// The outputs would like a keyframe soon (an HLS segment is due, or the stream waits
    /// for its first).
    pub wants_keyframe: bool,
    /// The frame completed an HLS segment or (low latency) part, now published.
    pub segment_published: bool,
    /// The frame ended an HLS segment or part that waits for the audio to reach its end; it
    /// is published with the audio frame that does.
    pub segment_held: bool,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Viewers {
    pub flv: usize,
    pub hls: usize,
}

impl Inner {
    /// Ended, or waiting for a publisher to come back: media and codec changes are ignored.
    fn without_publisher(&self) -> bool {
        matches!(self.state, StreamState::Ended | StreamState::Reconnecting)
    }

    /// Audio goes out once the stream is live (its first video keyframe); an audio-only
    /// stream goes live with its first audio frame.
    fn audio_ready(&mut self) -> bool {
        if self.aac.is_none() || self.state == StreamState::Ended {
            return false;
        }
        if self.state == StreamState::Starting && self.audio_only {
            self.state = StreamState::Live;
            self.went_live = true;
        }
        self.state == StreamState::Live
    }
}

/// The AAC the outputs carry.
struct AacConfig {
    asc: Bytes,
    sample_rate: u32,
    channels: u8,
}

/// One publish of a stream name.
pub struct Stream {
    name: String,
    publish_id: String,
    started_at: SystemTime,
    inner: Mutex<Inner>,
    /// How far HLS has got, sent after each new segment or part (with the playlist already
    /// rendered), for requests waiting on one: a waiter costs one receiver, no task.
    hls_progress: watch::Sender<HlsProgress>,
    flv_tx: broadcast::Sender<FlvPacket>,
    flv_viewers: Arc<AtomicUsize>,
    /// Merged FLV writes: how long tags are held, from how many viewers on.
    flv_merge_ms: u32,
    flv_merge_from_viewers: usize,
    frames_in: AtomicU64,
    hls_requests: HlsRequestCounts,
    latency: super::latency::StreamLatency,
    /// The current publisher's simulcast layers (a publisher that takes a held stream over
    /// brings its own, or none).
    simulcast: Mutex<Option<Arc<SimulcastLayers>>>,
}

struct Inner {
    state: StreamState,
    /// Has been live (with this publisher or one before it): it has outputs to continue.
    went_live: bool,
    /// No video track: the stream goes live with its first audio frame.
    audio_only: bool,
    hls_opus_passthrough: bool,
    hls_config: HlsConfig,
    video: Option<ParameterSets>,
    audio_codec: Option<Codec>,
    aac: Option<AacConfig>,
    clock: MediaClock,
    last_video_dts: Option<i64>,
    flv: FlvCache,
    flv_batch: FlvBatcher,
    /// Arrival of the oldest audio the FLV batcher holds (for the audio latency).
    audio_held_since: Option<Instant>,
    hls: HlsStream,
    /// Arrival of the video frame whose segment or part waits for audio (for its latency).
    hls_held_arrival: Option<Instant>,
    video_meter: RateMeter,
    hls_clients: ClientTracker,
}

impl Stream {
    pub(super) fn new(name: String, settings: &StreamSettings) -> Stream {
        let publish_id = new_publish_id();
        let hls_config = HlsConfig {
            segment_target: settings.segment_target,
            window: settings.hls_window,
            name_prefix: publish_id.clone(),
            // Kept where plain-HTTP connections can send them without copying.
            store_segment: crate::sendfile::map_segment,
            part_target: settings.hls_part_target,
            mpegts: settings.hls_mpegts,
        };
        let hls = HlsStream::new(hls_config.clone());
        let (hls_progress, _) = watch::channel(hls.progress());
        let (flv_tx, _) = broadcast::channel(settings.flv_queue);
        Stream {
            name,
            publish_id,
            started_at: SystemTime::now(),
            inner: Mutex::new(Inner {
                went_live: false,
                state: StreamState::Starting,
                audio_only: false,
                hls_opus_passthrough: settings.hls_opus_passthrough,
                hls_config,
                video: None,
                audio_codec: None,
                aac: None,
                clock: MediaClock::new(),
                last_video_dts: None,
                flv: FlvCache::default(),
                flv_batch: FlvBatcher::new(settings.flv_merge_ms),
                audio_held_since: None,
                hls,
                hls_held_arrival: None,
                video_meter: RateMeter::new(Duration::from_secs(2)),
                hls_clients: ClientTracker::new(settings.segment_target * 4),
            }),
            hls_progress,
            flv_tx,
            flv_viewers: Arc::new(AtomicUsize::new(0)),
            flv_merge_ms: settings.flv_merge_ms,
            flv_merge_from_viewers: settings.flv_merge_from_viewers,
            frames_in: AtomicU64::new(0),
            hls_requests: HlsRequestCounts::default(),
            latency: super::latency::StreamLatency::default(),
            simulcast: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A short id unique to this publish; HLS file names carry it so caches never mix publishes.
    pub fn publish_id(&self) -> &str {
        &self.publish_id
    }

    pub fn state(&self) -> StreamState {
        self.lock().state
    }

    /// Frames received so far (video and audio).
    pub fn frames_in(&self) -> u64 {
        self.frames_in.load(Ordering::Relaxed)
    }

    /// Starts (or restarts, on a new SSRC) a track on the stream's media clock.
    pub fn register_track(&self, track: TrackId, clock_rate: u32) {
        self.lock().clock.register_track(track, clock_rate);
    }

    /// An RTCP Sender Report of one track (NTP 32.32 time, RTP time in the track's clock).
    pub fn on_sender_report(&self, track: TrackId, ntp: u64, rtp: u32) {
        self.lock()
            .clock
            .on_sender_report(track, ntp, rtp, std::time::Instant::now());
    }

    /// Moves a depacketized frame (its track's RTP time, in 90 kHz ticks) onto the stream's
    /// media clock, where audio and video line up. `arrival` is when its last packet came.
    pub fn map_frame(&self, frame: Frame, arrival: std::time::Instant) -> Frame {
        self.lock().clock.map_frame(frame, arrival)
    }

    /// New or changed H.264 parameter sets. Unchanged ones are ignored.
    pub fn set_video_params(&self, ps: ParameterSets) {
        let mut inner = self.lock();
        if inner.without_publisher() {
            return;
        }
        if inner
            .video
            .as_ref()
            .is_some_and(|old| old.sps == ps.sps && old.pps == ps.pps)
        {
            return;
        }
        // Stamped by each viewer at the time of the keyframe it precedes (`flv_timeline`).
        let tag = crate::mux::flv::avc_sequence_header_tag(&ps, 0);
        // Frames after a new sequence header cannot be decoded with the old one: the cached
        // GOP ends here, and the next keyframe starts a new one.
        self.flush_flv(&mut inner);
        inner.flv.gop.clear();
        self.send_flv_header(&mut inner, FlvKind::VideoHeader, tag);
        inner.hls.set_video(ps.clone());
        inner.video = Some(ps);
    }

    /// Declares a publish without video, before any media: HLS segments are cut on audio and
    /// the stream goes live with its first audio frame.
    pub fn set_audio_only(&self) {
        let mut inner = self.lock();
        if inner.state == StreamState::Starting && !inner.audio_only {
            inner.audio_only = true;
            inner.flv_batch.set_audio_only();
            inner.hls = HlsStream::new_audio_only(inner.hls_config.clone());
        }
    }

    /// Declares the codec the publisher sends audio in (shown by `/api/streams`).
    pub fn set_audio_codec(&self, codec: Codec) {
        self.lock().audio_codec = Some(codec);
    }

    /// The AAC configuration of the audio in the outputs (from the transcoder). A new one
    /// (other bytes) sends a new FLV sequence header and a new HLS init segment.
    pub fn set_aac_config(&self, audio_specific_config: Bytes, sample_rate: u32, channels: u8) {
        let mut inner = self.lock();
        if inner.without_publisher()
            || inner
                .aac
                .as_ref()
                .is_some_and(|a| a.asc == audio_specific_config)
        {
            return;
        }
        // Stamped by each viewer at the time of the first audio after it (`flv_timeline`).
        let tag = crate::mux::flv::aac_sequence_header_tag(&audio_specific_config, 0);
        self.send_flv_header(&mut inner, FlvKind::AudioHeader, tag);
        let codec = if inner.hls_opus_passthrough {
            crate::mux::fmp4::TrackCodec::Opus {
                sample_rate,
                channels,
                // libopus encoders (browsers, OBS) use 3.25 ms of pre-skip at 48 kHz.
                pre_skip: 312,
            }
        } else {
            crate::mux::fmp4::TrackCodec::Aac {
                audio_specific_config: audio_specific_config.clone(),
                sample_rate,
                channels,
            }
        };
        if let Err(e) = inner.hls.set_audio(codec) {
            tracing::warn!(stream = %self.name, error = %e, "HLS refused the audio track");
        }
        inner.aac = Some(AacConfig {
            asc: audio_specific_config,
            sample_rate,
            channels,
        });
    }

    /// Channels of the AAC in the outputs, once declared.
    pub fn aac_channels(&self) -> Option<u8> {
        self.lock().aac.as_ref().map(|a| a.channels)
    }

    /// An AAC frame on the stream's media clock, into FLV and HLS.
    pub fn push_aac(&self, frame: Frame) {
        let mut inner = self.lock();
        if !inner.audio_ready() {
            return;
        }
        let ts = dts_to_ms(frame.dts);
        let tag = crate::mux::flv::aac_frame_tag(&frame.data, ts);
        self.send_flv_media(&mut inner, FlvKind::Audio, &tag, ts);
        if !inner.hls_opus_passthrough {
            self.push_hls(&mut inner, frame);
        }
    }

    /// A publisher's Opus frame on the stream's media clock: counted, and into HLS when Opus
    /// passes through. Otherwise what reaches the outputs is its AAC ([`Stream::push_aac`]).
    pub fn push_opus(&self, frame: Frame) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        if inner.hls_opus_passthrough && inner.audio_ready() {
            self.push_hls(&mut inner, frame);
        }
    }

    /// A video access unit, its timestamps on the stream's media clock (90 kHz, from 0).
    pub fn push_video(&self, frame: Frame) -> VideoPushed {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        if inner.without_publisher() || inner.video.is_none() {
            return VideoPushed::default();
        }
        if inner.state == StreamState::Starting {
            if !frame.keyframe {
                return VideoPushed {
                    wants_keyframe: true,
                    ..VideoPushed::default()
                };
            }
            inner.state = StreamState::Live;
            inner.went_live = true;
        }
        inner.video_meter.record(frame.pts, frame.data.len());
        inner.last_video_dts = Some(frame.dts);

        let ts = dts_to_ms(frame.dts);
        let cts =
            i32::try_from((frame.pts - frame.dts) / i64::from(CLOCK_RATE / 1000)).unwrap_or(0);
        let tag = crate::mux::flv::avc_frame_tag(&frame, ts, cts);
        let kind = if frame.keyframe {
            FlvKind::VideoKey
        } else {
            FlvKind::VideoInter
        };
        self.send_flv_media(&mut inner, kind, &tag, ts);

        let segment_published = self.push_hls(&mut inner, frame);
        VideoPushed {
            segment_held: inner.hls.holds_cut() && inner.hls_held_arrival.is_none(),
            wants_keyframe: inner.hls.wants_keyframe(),
            segment_published,
        }
    }

    /// The stream time of the latest video frame.
    pub fn last_video_dts(&self) -> Option<i64> {
        self.lock().last_video_dts
    }

    /// Ends the stream: the playlist gets `EXT-X-ENDLIST`, FLV viewers reach the end of their
    /// response. Idempotent.
    pub fn end(&self) {
        let mut inner = self.lock();
        if inner.state == StreamState::Ended {
            return;
        }
        inner.state = StreamState::Ended;
        inner.hls.end(unix_ms(SystemTime::now()));
        self.hls_progress.send_replace(inner.hls.progress());
        self.flush_flv(&mut inner);
        let _ = self
            .flv_tx
            .send(FlvPacket::control(FlvKind::End, Bytes::new()));
    }

    /// The publisher was lost (the hub holds the stream for a reconnect): what the outputs
    /// hold goes out (the FLV batch, the open HLS segment) and the stream waits, its viewers
    /// connected. Idempotent; a no-op once ended.
    pub(super) fn suspend(&self) {
        let mut inner = self.lock();
        if inner.without_publisher() {
            return;
        }
        inner.state = StreamState::Reconnecting;
        self.flush_flv(&mut inner);
        inner.hls.break_timeline();
        inner.hls_held_arrival = None;
        inner.audio_held_since = None;
        self.hls_progress.send_replace(inner.hls.progress());
    }

    /// A new publisher continues the held stream. It declares its codecs afresh, so FLV
    /// viewers get new sequence headers even when they are the same; its media waits for its
    /// first keyframe (new viewers wait with it: the cached GOP was the old publisher's). Its
    /// clocks start anew: each track is re-anchored after its last output, so FLV time goes
    /// on forward; HLS goes on behind a discontinuity.
    pub(super) fn resume(&self) {
        let mut inner = self.lock();
        if inner.state != StreamState::Reconnecting {
            return;
        }
        inner.state = StreamState::Starting;
        *self.simulcast.lock().unwrap_or_else(|e| e.into_inner()) = None;
        inner.video = None;
        inner.aac = None;
        inner.audio_codec = None;
        inner.last_video_dts = None;
        inner.flv.gop.clear();
        inner.clock.register_track(TrackId::Video, 0);
        inner.clock.register_track(TrackId::Audio, 0);
    }

    /// True once the stream has been live: it has outputs a reconnect could continue.
    pub fn has_gone_live(&self) -> bool {
        self.lock().went_live
    }

    /// Declared without video ([`Stream::set_audio_only`]).
    pub fn is_audio_only(&self) -> bool {
        self.lock().audio_only
    }

    /// Starts an FLV viewer: the file header, metadata, sequence headers and cached GOP, then
    /// live tags; metadata and headers are stamped at the time of the media after them, so the
    /// viewer's timeline starts where its media does (`flv_timeline`). `None` until the stream
    /// has its first keyframe, or after it ended.
    pub fn subscribe_flv(&self) -> Option<FlvSubscription> {
        let inner = self.lock();
        if inner.state != StreamState::Live {
            return None;
        }
        let ps = inner.video.as_ref();
        if ps.is_none() && !inner.audio_only {
            return None;
        }
        let meta = crate::mux::flv::FlvMetadata {
            width: ps.map_or(0, |p| p.info.width),
            height: ps.map_or(0, |p| p.info.height),
            frame_rate: ps
                .and_then(|p| p.info.frame_rate)
                .or_else(|| inner.video_meter.frame_rate()),
            video_data_rate_kbps: inner.video_meter.bitrate().map(|b| b / 1000.0),
            has_video: ps.is_some(),
            audio: inner.aac.as_ref().map(|a| crate::mux::flv::FlvAudioInfo {
                sample_rate: a.sample_rate,
                channels: a.channels,
            }),
        };
        // The AAC configuration is known as soon as the audio track starts (before its first
        // frame). Announcing audio that never comes would make some players wait for it.
        let has_audio = inner.aac.is_some();
        let file_header = crate::mux::flv::file_header(has_audio, ps.is_some());
        let owed = Owed {
            metadata: Some(crate::mux::flv::metadata_tag(&meta)),
            headers: inner.flv.current_headers(),
        };
        // Subscribing while holding the lock: no tag is missed or sent twice between the
        // cached GOP and the live feed.
        let rx = self.flv_tx.subscribe();
        let sub = FlvSubscription::new(
            file_header,
            owed,
            inner.flv.gop.clone(),
            rx,
            self.flv_viewers.clone(),
            inner.flv.headers.clone(),
        );
        Some(if inner.audio_only {
            sub.audio_only()
        } else {
            sub
        })
    }

    /// The current HLS playlist, once there is a segment. `client` identifies the caller for the
    /// viewer count; `delta`: the delta update when there is one.
    pub fn hls_playlist(&self, client: u64, delta: bool) -> Option<Bytes> {
        let mut inner = self.lock();
        inner.hls_clients.seen(client, Instant::now());
        inner.hls.playlist(delta)
    }

    /// The multivariant playlist's entry for this stream's fMP4 rendition (`uri`), once its
    /// codecs and bit rate are known. `client` is counted as an HLS viewer.
    pub fn hls_variant(&self, uri: &str, client: u64) -> Option<crate::mux::hls::Variant> {
        let mut inner = self.lock();
        inner.hls_clients.seen(client, Instant::now());
        // Listed once its media playlist can be fetched.
        inner.hls.playlist(false)?;
        let codecs = inner.hls.codecs()?;
        let bandwidth = inner.hls.bandwidth()?;
        let video = !inner.audio_only;
        Some(crate::mux::hls::Variant {
            uri: uri.to_string(),
            bandwidth: bandwidth.peak,
            average_bandwidth: Some(bandwidth.average),
            codecs,
            resolution: inner.hls.resolution().filter(|_| video),
            frame_rate: inner
                .hls
                .frame_rate()
                .or_else(|| inner.video_meter.frame_rate())
                .filter(|_| video),
        })
    }

    /// Counts an answered HLS request.
    pub fn count_hls_request(&self, kind: HlsRequest) {
        self.hls_requests.count(kind);
    }

    /// The MPEG-TS rendition's playlist, once it has a segment.
    pub fn hls_ts_playlist(&self, client: u64) -> Option<Bytes> {
        let mut inner = self.lock();
        inner.hls_clients.seen(client, Instant::now());
        inner.hls.ts_playlist()
    }

    /// Follows HLS progress (new segments and parts) without taking the stream's lock.
    pub fn hls_progress(&self) -> watch::Receiver<HlsProgress> {
        self.hls_progress.subscribe()
    }

    /// The HLS low-latency parameters and target duration (seconds).
    pub fn hls_timing(&self) -> (Option<LowLatency>, u32) {
        let inner = self.lock();
        (inner.hls.low_latency(), inner.hls.target_duration())
    }

    /// The part sequence number of a part file name of this publish.
    pub fn hls_part_number(&self, name: &str) -> Option<u64> {
        self.lock().hls.part_number(name)
    }

    /// An HLS init or media segment by file name.
    pub fn hls_file(&self, name: &str) -> Option<Bytes> {
        self.lock().hls.get(name)
    }

    /// A snapshot for `/api/streams`.
    pub fn info(&self) -> StreamInfo {
        let mut inner = self.lock();
        let hls_viewers = inner.hls_clients.count(Instant::now());
        let ps = inner.video.as_ref();
        let frame_rate = ps
            .and_then(|p| p.info.frame_rate)
            .or_else(|| inner.video_meter.frame_rate())
            .map(|f| (f * 100.0).round() / 100.0);
        StreamInfo {
            name: self.name.clone(),
            state: inner.state,
            started_at_ms: unix_ms(self.started_at),
            video_codec: ps.map(|p| p.codec_string()),
            width: ps.map(|p| p.info.width),
            height: ps.map(|p| p.info.height),
            frame_rate,
            video_bitrate: inner.video_meter.bitrate().map(|b| b as u64),
            audio_codec: inner.audio_codec.map(|c| match c {
                Codec::Opus => "opus".to_string(),
                Codec::Aac => "mp4a.40.2".to_string(),
                Codec::H264 => "h264".to_string(),
            }),
            output_audio_codec: inner.aac.as_ref().map(|_| "mp4a.40.2".to_string()),
            viewers: Viewers {
                flv: self.flv_viewers.load(Ordering::Relaxed),
                hls: hls_viewers,
            },
            latency: self.latency.info(),
            simulcast: self.simulcast_layers().map(|s| s.info()),
            hls_requests: self.hls_requests.info(),
        }
    }

    /// The publish offered simulcast: which layers, and which one is received.
    pub fn set_simulcast(&self, layers: Arc<SimulcastLayers>) {
        *self.simulcast.lock().unwrap_or_else(|e| e.into_inner()) = Some(layers);
    }

    fn simulcast_layers(&self) -> Option<Arc<SimulcastLayers>> {
        self.simulcast
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A new sequence header: kept for viewers to come, sent to those watching.
    fn send_flv_header(&self, inner: &mut Inner, kind: FlvKind, tag: Bytes) {
        // Tags held before the header were made with the old one: they go first.
        self.flush_flv(inner);
        inner.flv.set_header(kind, tag.clone());
        let _ = self.flv_tx.send(FlvPacket::control(kind, tag));
    }

    /// A video or audio tag: into the batch, and what the batcher releases to the GOP cache and
    /// every viewer.
    fn send_flv_media(&self, inner: &mut Inner, kind: FlvKind, tag: &[u8], timestamp_ms: u32) {
        // A few viewers get each frame at once; a large audience gets fewer, larger writes,
        // where the cost per write (a wake-up and a syscall per viewer) is what limits it.
        let merge_ms = if self.flv_viewers.load(Ordering::Relaxed) >= self.flv_merge_from_viewers {
            self.flv_merge_ms
        } else {
            0
        };
        inner.flv_batch.set_merge_ms(merge_ms);
        for packet in inner.flv_batch.push(kind, tag, timestamp_ms) {
            self.send_flv_packet(inner, packet);
        }
    }

    /// Sends whatever the batcher holds.
    fn flush_flv(&self, inner: &mut Inner) {
        if let Some(packet) = inner.flv_batch.flush() {
            self.send_flv_packet(inner, packet);
        }
    }

    fn send_flv_packet(&self, inner: &mut Inner, packet: FlvPacket) {
        // Everything the batcher held goes out together: the oldest held audio included.
        if let Some(arrival) = inner.audio_held_since.take() {
            self.latency.audio_flv.record(arrival.elapsed());
        }
        inner.flv.push(&packet);
        let _ = self.flv_tx.send(packet);
    }

    /// A frame into HLS; a new segment or part is announced to waiting requests.
    fn push_hls(&self, inner: &mut Inner, frame: Frame) -> bool {
        let published = inner.hls.push(frame, unix_ms(SystemTime::now()));
        if published {
            self.hls_progress.send_replace(inner.hls.progress());
            // A segment or part that waited for audio is out: time it from its video frame.
            if let Some(arrival) = inner.hls_held_arrival.take() {
                self.latency.video_hls.record(arrival.elapsed());
            }
        }
        published
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A video access unit whose last RTP packet came at `arrival` has just gone through
    /// [`Stream::push_video`], which said what it did: if the frame closed an HLS segment, the
    /// same latency counts for HLS.
    pub fn note_video_latency(&self, arrival: Instant, pushed: VideoPushed) {
        let elapsed = arrival.elapsed();
        self.latency.video_flv.record(elapsed);
        if pushed.segment_published {
            self.latency.video_hls.record(elapsed);
        } else if pushed.segment_held {
            let mut inner = self.lock();
            if inner.hls.holds_cut() {
                inner.hls_held_arrival.get_or_insert(arrival);
            }
        }
    }

    /// The AAC frames an Opus packet that came at `arrival` completed have gone through
    /// [`Stream::push_aac`]. If the FLV batcher holds them for the next video frame, they are
    /// timed when that packet goes out.
    pub fn note_audio_latency(&self, arrival: Instant) {
        let mut inner = self.lock();
        if inner.flv_batch.holds_tags() {
            inner.audio_held_since.get_or_insert(arrival);
        } else {
            self.latency.audio_flv.record(arrival.elapsed());
        }
    }
}

fn dts_to_ms(dts: i64) -> u32 {
    // FLV timestamps are 32-bit milliseconds; they wrap after 49 days, as the format does.
    (dts.max(0) / i64::from(CLOCK_RATE / 1000)) as u32
}

pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn new_publish_id() -> String {
    use rand::Rng;
    let v: u32 = rand::rng().random();
    format!("{v:08x}")
}
