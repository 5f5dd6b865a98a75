//! Every FLV viewer of a stream sees one smooth timeline (issue 18): joining late, with merged
//! writes, across a parameter change, and audio only. Each test plays a stream of 30 fps video
//! with a keyframe a second and AAC frames (1024 samples at 48 kHz) that reach the hub 40 ms
//! after their time, as the transcoder's delay makes them.

use std::sync::Arc;

use bytes::Bytes;

use super::{ready_chunks, test_params, test_video_frame, Hub, Stream, StreamSettings};
use crate::media::h264::test_vectors::{BASELINE_360P30, HIGH_720P30};
use crate::media::{Codec, Frame, CLOCK_RATE};
use crate::mux::flv::{first_step_back, parse_tags, FlvTag, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};

/// 30 fps, as `test_video_frame` makes them.
const VIDEO_TICKS: i64 = 3000;
const AUDIO_TICKS: i64 = 1920;
const AUDIO_DELAY_TICKS: i64 = 40 * 90;
const TICKS_PER_MS: i64 = (CLOCK_RATE / 1000) as i64;

/// A publish in simulated time: `next_video` and `next_audio` count the frames pushed.
struct Publish {
    stream: Arc<Stream>,
    video: bool,
    next_video: i64,
    next_audio: i64,
}

impl Publish {
    fn new(hub: &Hub, video: bool) -> Publish {
        let stream = hub.claim("cam").unwrap();
        if video {
            stream.set_video_params(test_params(&BASELINE_360P30));
        } else {
            stream.set_audio_only();
        }
        // The transcoder announces its AAC before the first frame.
        stream.set_aac_config(Bytes::from_static(&[0x11, 0x90]), 48_000, 2);
        Publish {
            stream,
            video,
            next_video: 0,
            next_audio: 0,
        }
    }

    /// Pushes every frame that reaches the hub before `ms`, in the order they arrive.
    fn run_until(&mut self, ms: i64) {
        let end = ms * TICKS_PER_MS;
        loop {
            let video_at = self.next_video * VIDEO_TICKS;
            let audio_at = self.next_audio * AUDIO_TICKS + AUDIO_DELAY_TICKS;
            if self.video && video_at <= audio_at && video_at < end {
                self.push_video(self.next_video % 30 == 0);
            } else if audio_at < end {
                self.stream.push_aac(Frame {
                    codec: Codec::Aac,
                    pts: self.next_audio * AUDIO_TICKS,
                    dts: self.next_audio * AUDIO_TICKS,
                    keyframe: true,
                    data: Bytes::from_static(&[0x21, 0x10, 0x04]),
                });
                self.next_audio += 1;
            } else {
                return;
            }
        }
    }

    fn push_video(&mut self, keyframe: bool) {
        self.stream
            .push_video(test_video_frame(self.next_video, keyframe));
        self.next_video += 1;
    }
}

/// Everything a viewer got, once its stream ended.
fn watched(viewer: &mut super::FlvViewerStream) -> Vec<FlvTag> {
    parse_tags(&ready_chunks(viewer).concat()).unwrap()
}

fn is_header(t: &FlvTag) -> bool {
    t.tag_type != TAG_SCRIPT && t.body.get(1) == Some(&0)
}

/// (type, timestamp) of the first tags, to show in a failure.
fn head(tags: &[FlvTag]) -> Vec<(u8, u32)> {
    tags.iter()
        .take(8)
        .map(|t| (t.tag_type, t.timestamp_ms))
        .collect()
}

/// The rules of issue 18: the first five tags within 100 ms of each other; each track's
/// timestamps never go back; no step between consecutive tags over 100 ms (the media has no
/// gap here); every sequence header and onMetaData carry the time of the media after them.
fn assert_one_timeline(tags: &[FlvTag]) {
    let first: Vec<u32> = tags.iter().take(5).map(|t| t.timestamp_ms).collect();
    let (lo, hi) = (first.iter().min().unwrap(), first.iter().max().unwrap());
    assert!(hi - lo <= 100, "first five tags {:?}", head(tags));
    if let Some(i) = first_step_back(tags) {
        panic!(
            "tag {i} goes back in its track: {:?}",
            head(&tags[i.saturating_sub(4)..])
        );
    }
    for (i, w) in tags.windows(2).enumerate() {
        let step = i64::from(w[1].timestamp_ms) - i64::from(w[0].timestamp_ms);
        assert!(step.abs() <= 100, "step of {step} ms after tag {i}");
    }
    for (i, t) in tags.iter().enumerate() {
        let next_media = tags[i + 1..]
            .iter()
            .find(|n| !is_header(n) && n.tag_type != TAG_SCRIPT)
            .filter(|_| t.tag_type == TAG_SCRIPT);
        let next_of_track = tags[i + 1..]
            .iter()
            .find(|n| n.tag_type == t.tag_type && !is_header(n))
            .filter(|_| is_header(t));
        if let Some(n) = next_media.or(next_of_track) {
            assert!(
                t.timestamp_ms <= n.timestamp_ms && n.timestamp_ms - t.timestamp_ms <= 100,
                "tag {i} ({}) at {} ms, its media at {} ms",
                t.tag_type,
                t.timestamp_ms,
                n.timestamp_ms
            );
        }
    }
}

fn late_joiner_sees_one_timeline(settings: StreamSettings) {
    let hub = Hub::new(settings);
    let mut publish = Publish::new(&hub, true);
    publish.run_until(10_120);
    let mut viewer = publish.stream.subscribe_flv().unwrap().into_stream();
    publish.run_until(11_500);
    publish.stream.end();
    let tags = watched(&mut viewer);
    assert_one_timeline(&tags);
    // The viewer starts at the keyframe at 10 s, not at 0 (the headers' old time).
    assert!(
        tags.iter().all(|t| t.timestamp_ms >= 9_900),
        "{:?}",
        head(&tags)
    );
    // onMetaData, the AVC header, and (after the AAC header when the packet has audio too)
    // the keyframe.
    let kinds: Vec<_> = tags
        .iter()
        .take(2)
        .map(|t| (t.tag_type, t.body[0]))
        .collect();
    assert_eq!(kinds, [(TAG_SCRIPT, 2), (TAG_VIDEO, 0x17)]);
    let first_frame = tags
        .iter()
        .find(|t| t.tag_type == TAG_VIDEO && !is_header(t));
    assert_eq!(first_frame.map(|t| t.body[0]), Some(0x17));
}

#[test]
fn a_viewer_joining_10_s_in_starts_its_timeline_at_its_first_keyframe() {
    late_joiner_sees_one_timeline(StreamSettings::default());
}

#[test]
fn a_viewer_joining_10_s_in_with_merged_writes_starts_at_its_first_keyframe() {
    late_joiner_sees_one_timeline(StreamSettings {
        flv_merge_ms: 70,
        flv_merge_from_viewers: 0,
        ..StreamSettings::default()
    });
}

#[test]
fn a_parameter_change_mid_stream_carries_the_time_of_the_keyframe_it_precedes() {
    let hub = Hub::new(StreamSettings::default());
    let mut publish = Publish::new(&hub, true);
    publish.run_until(1_010);
    let mut early = publish.stream.subscribe_flv().unwrap().into_stream();
    // The resolution changes with the keyframe at 5 s: the new SPS/PPS come just before it.
    publish.run_until(4_990);
    publish.stream.set_video_params(test_params(&HIGH_720P30));
    publish.push_video(true);
    // And the audio configuration changes at 6.5 s.
    publish.run_until(6_500);
    publish
        .stream
        .set_aac_config(Bytes::from_static(&[0x11, 0x88]), 48_000, 1);
    publish.run_until(7_010);
    let mut late = publish.stream.subscribe_flv().unwrap().into_stream();
    publish.run_until(8_000);
    publish.stream.end();

    let early = watched(&mut early);
    assert_one_timeline(&early);
    let headers: Vec<(u8, u32)> = early
        .iter()
        .filter(|t| is_header(t))
        .map(|t| (t.tag_type, t.timestamp_ms))
        .collect();
    let aac_changed = early
        .iter()
        .skip_while(|t| !(is_header(t) && t.body[2..] == [0x11, 0x88]))
        .find(|t| t.tag_type == TAG_AUDIO && !is_header(t))
        .unwrap()
        .timestamp_ms;
    assert!((6_400..6_500).contains(&aac_changed), "{aac_changed}");
    assert_eq!(
        headers,
        [
            (TAG_VIDEO, 1_000),
            // The first audio after the keyframe the viewer joined at.
            (TAG_AUDIO, early[3].timestamp_ms),
            (TAG_VIDEO, 5_000),
            (TAG_AUDIO, aac_changed),
        ]
    );
    // The viewer joining after both changes gets the new headers at its first media.
    let late = watched(&mut late);
    assert_one_timeline(&late);
    assert_eq!(late[1].timestamp_ms, 7_000);
    assert!(late
        .iter()
        .filter(|t| is_header(t) && t.tag_type == TAG_AUDIO)
        .all(|t| t.body[2..] == [0x11, 0x88]));
}

#[test]
fn an_audio_only_viewer_joining_10_s_in_starts_at_its_first_audio_frame() {
    let hub = Hub::new(StreamSettings::default());
    let mut publish = Publish::new(&hub, false);
    publish.run_until(10_000);
    let mut viewer = publish.stream.subscribe_flv().unwrap().into_stream();
    publish.run_until(10_500);
    publish.stream.end();
    let tags = watched(&mut viewer);
    assert_one_timeline(&tags);
    let kinds: Vec<_> = tags
        .iter()
        .take(3)
        .map(|t| (t.tag_type, t.body[1]))
        .collect();
    assert_eq!(kinds, [(TAG_SCRIPT, 0), (TAG_AUDIO, 0), (TAG_AUDIO, 1)]);
    assert!(tags[0].timestamp_ms >= 9_900, "{:?}", head(&tags));
}
