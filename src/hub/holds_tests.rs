//! The reconnect grace through the hub: a lost publisher's stream is held (listed as
//! reconnecting), a new claim within the grace takes the same stream over (FLV viewers keep
//! their response and get new sequence headers on a timeline that goes on forward, HLS goes on
//! behind a discontinuity), and one that does not come back ends it when the grace is over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};

use super::{
    test_params, test_video_frame, FlvViewerStream, Hub, HubError, Stream, StreamSettings,
    StreamState,
};
use crate::media::clock::TrackId;
use crate::media::h264::test_vectors::BASELINE_360P30;
use crate::media::{Codec, Frame};
use crate::mux::flv::{first_step_back, parse_tags, FlvTag, TAG_AUDIO, TAG_VIDEO};

const GRACE: Duration = Duration::from_secs(10);
const ASC: &[u8] = &[0x11, 0x90];

fn hub() -> Hub {
    Hub::new(StreamSettings {
        segment_target: Duration::from_secs(1),
        hls_part_target: None,
        ..StreamSettings::default()
    })
}

/// A publisher on `stream`: its own RTP clocks (starting at `rtp_base`), its frames placed on
/// the stream's media clock by arrival, from `t0` on; 30 fps video, a keyframe a second, and
/// AAC every 1920 ticks.
struct Publisher {
    stream: Arc<Stream>,
    t0: Instant,
    rtp_base: i64,
    frames: i64,
}

impl Publisher {
    fn start(stream: Arc<Stream>, t0: Instant, rtp_base: i64) -> Publisher {
        stream.register_track(TrackId::Video, 90_000);
        stream.register_track(TrackId::Audio, 48_000);
        stream.set_aac_config(Bytes::from_static(ASC), 48_000, 2);
        stream.set_video_params(test_params(&BASELINE_360P30));
        Publisher {
            stream,
            t0,
            rtp_base,
            frames: 0,
        }
    }

    /// `n` more video frames, each with the audio of its 1/30 s.
    fn run(&mut self, n: i64) {
        for _ in 0..n {
            let i = self.frames;
            let arrival = self.t0 + Duration::from_micros((i * 1_000_000 / 30) as u64);
            let mut video = test_video_frame(i, i % 30 == 0);
            video.dts += self.rtp_base;
            video.pts += self.rtp_base;
            let video = self.stream.map_frame(video, arrival);
            self.stream.push_video(video);
            let audio = Frame {
                codec: Codec::Aac,
                pts: self.rtp_base + i * 3000,
                dts: self.rtp_base + i * 3000,
                keyframe: true,
                data: Bytes::from_static(&[0x21, 0x10, 0x04]),
            };
            let audio = self.stream.map_frame(audio, arrival);
            self.stream.push_aac(audio);
            self.frames += 1;
        }
    }
}

/// The chunks a viewer has ready, and whether its response has ended.
fn drain(viewer: &mut FlvViewerStream) -> (Vec<Bytes>, bool) {
    let mut chunks = Vec::new();
    loop {
        match viewer.next().now_or_never() {
            Some(Some(chunk)) => chunks.push(chunk.unwrap()),
            Some(None) => return (chunks, true),
            None => return (chunks, false),
        }
    }
}

/// A stream "cam" that has gone live (its first keyframe).
fn live_stream(hub: &Hub) -> Arc<Stream> {
    let stream = super::test_video_stream(hub);
    stream.push_video(test_video_frame(0, true));
    assert_eq!(stream.state(), StreamState::Live);
    stream
}

fn is_sequence_header(t: &FlvTag) -> bool {
    matches!(t.tag_type, TAG_VIDEO | TAG_AUDIO) && t.body.get(1) == Some(&0)
}

fn count(tags: &[FlvTag], tag_type: u8) -> usize {
    tags.iter()
        .filter(|t| t.tag_type == tag_type && is_sequence_header(t))
        .count()
}

#[test]
fn a_lost_publisher_is_held_and_a_new_claim_takes_the_same_stream_over() {
    let hub = hub();
    let first = live_stream(&hub);
    assert!(hub.hold(&first, GRACE).is_some());
    assert!(hub.is_held("cam"));
    let listed = hub.list();
    assert_eq!(listed.len(), 1, "a held stream is still listed");
    assert_eq!(listed[0].state, StreamState::Reconnecting);
    assert!(hub.live("cam").is_some(), "its playlists stay readable");

    let claim = hub.claim_or_resume("cam").unwrap();
    assert!(claim.resumed);
    assert!(
        Arc::ptr_eq(&claim.stream, &first),
        "the same stream goes on"
    );
    assert_eq!(first.state(), StreamState::Starting);
    assert!(!hub.is_held("cam"));
    assert_eq!(
        hub.claim("cam").err(),
        Some(HubError::AlreadyPublishing("cam".into())),
        "a second publisher while one is live is refused"
    );
}

#[test]
fn flv_viewers_stay_and_get_new_headers_on_a_timeline_that_goes_on() {
    let hub = hub();
    let t0 = Instant::now();
    let mut a = Publisher::start(hub.claim("cam").unwrap(), t0, 1_000_000);
    a.run(45);
    let mut viewer = a.stream.subscribe_flv().unwrap().into_stream();
    a.run(30);
    let (mut seen, _) = drain(&mut viewer);
    hub.hold(&a.stream, GRACE).unwrap();
    let (held, ended) = drain(&mut viewer);
    assert!(!ended, "held: the viewer stays");
    seen.extend(held);
    let a_start = || seen.concat();

    // Back 3 s later with new RTP clocks that start lower than the old ones.
    let claim = hub.claim_or_resume("cam").unwrap();
    assert!(claim.resumed);
    let mut b = Publisher::start(claim.stream, t0 + Duration::from_secs(5), 500);
    // It starts between keyframes (at 5333 ms): nothing goes out until its keyframe at 6 s.
    b.frames = 10;
    b.run(20);
    assert!(
        drain(&mut viewer).0.is_empty(),
        "no media before the new keyframe"
    );
    b.run(60);
    let (chunks, ended) = drain(&mut viewer);
    assert!(!ended, "the viewer is still watching");
    let tags = parse_tags(&[a_start(), chunks.concat()].concat()).unwrap();
    assert_eq!(count(&tags, TAG_VIDEO), 2, "a new AVC sequence header");
    assert_eq!(count(&tags, TAG_AUDIO), 2, "a new AAC sequence header");
    assert_eq!(first_step_back(&tags), None, "no track goes back in time");
    // The second header comes just before the new publisher's first keyframe, at its time,
    // after everything of the first publisher.
    let second = tags
        .iter()
        .enumerate()
        .filter(|(_, t)| t.tag_type == TAG_VIDEO && is_sequence_header(t))
        .nth(1)
        .unwrap()
        .0;
    let next = &tags[second + 1..]
        .iter()
        .find(|t| t.tag_type == TAG_VIDEO)
        .unwrap();
    assert_eq!(next.body[0] >> 4, 1, "a keyframe follows the header");
    assert_eq!(next.timestamp_ms, tags[second].timestamp_ms);
    let last_of_a = tags[..second]
        .iter()
        .filter(|t| t.tag_type == TAG_VIDEO)
        .map(|t| t.timestamp_ms)
        .max()
        .unwrap();
    assert!(last_of_a < 2_500);
    assert!(
        (5_990..=6_000).contains(&next.timestamp_ms),
        "the new media is placed by its arrival (6 s) on the stream's clock: {} ms",
        next.timestamp_ms
    );
    assert_eq!(b.stream.state(), StreamState::Live);
    hub.release(&b.stream);
    assert!(
        drain(&mut viewer).1,
        "a release (DELETE) ends the viewer's response"
    );
}

#[test]
fn hls_goes_on_behind_a_discontinuity_with_no_gap() {
    let hub = hub();
    let t0 = Instant::now();
    let mut a = Publisher::start(hub.claim("cam").unwrap(), t0, 0);
    a.run(75);
    hub.hold(&a.stream, GRACE).unwrap();
    let claim = hub.claim_or_resume("cam").unwrap();
    let mut b = Publisher::start(claim.stream, t0 + Duration::from_secs(4), 0);
    b.run(95);
    let text = b.stream.hls_playlist(1, false).unwrap();
    let p = m3u8_rs::parse_media_playlist_res(&text).unwrap();
    let disc: Vec<bool> = p.segments.iter().map(|s| s.discontinuity).collect();
    assert_eq!(disc, [false, false, false, true, false, false], "{disc:?}");
    let prefix = b.stream.publish_id();
    for (i, s) in p.segments.iter().enumerate() {
        assert_eq!(
            s.uri,
            format!("{prefix}-{}.m4s", p.media_sequence + i as u64)
        );
    }
    assert!(!p.end_list);
}

#[test]
fn without_a_new_publisher_the_stream_ends_when_the_grace_is_over() {
    let hub = hub();
    let t0 = Instant::now();
    let mut a = Publisher::start(hub.claim("cam").unwrap(), t0, 0);
    a.run(45);
    let mut viewer = a.stream.subscribe_flv().unwrap().into_stream();
    let until = hub.hold(&a.stream, GRACE).unwrap();
    assert!(!drain(&mut viewer).1, "held: the viewer stays");
    assert!(hub
        .expire_holds(until - Duration::from_millis(1))
        .is_empty());
    assert_ne!(a.stream.state(), StreamState::Ended);
    assert_eq!(hub.expire_holds(until), vec!["cam".to_string()]);
    assert_eq!(a.stream.state(), StreamState::Ended);
    assert!(hub.live("cam").is_none());
    assert!(
        hub.live_or_recent("cam").is_some(),
        "ended streams stay readable"
    );
    let text = a.stream.hls_playlist(1, false).unwrap();
    assert!(String::from_utf8_lossy(&text)
        .trim_end()
        .ends_with("#EXT-X-ENDLIST"));
    assert!(drain(&mut viewer).1, "the viewer's response ends");
    // The name is free: a new claim is a new stream.
    let fresh = hub.claim_or_resume("cam").unwrap();
    assert!(!fresh.resumed && !Arc::ptr_eq(&fresh.stream, &a.stream));
}

#[test]
fn a_claim_past_the_grace_starts_a_new_stream_even_before_the_expiry_ran() {
    let hub = hub();
    let old = live_stream(&hub);
    let until = hub.hold(&old, GRACE).unwrap();
    let claim = hub.claim_at("cam", until).unwrap();
    assert!(!claim.resumed && !Arc::ptr_eq(&claim.stream, &old));
    assert_eq!(old.state(), StreamState::Ended);
}

#[test]
fn a_stream_that_never_went_live_is_not_held() {
    let hub = hub();
    let s = hub.claim("cam").unwrap();
    assert_eq!(hub.hold(&s, GRACE), None);
    assert_eq!(s.state(), StreamState::Ended);
    assert!(hub.live("cam").is_none());
}

#[test]
fn a_zero_grace_ends_at_once() {
    let hub = hub();
    let s = live_stream(&hub);
    assert_eq!(hub.hold(&s, Duration::ZERO), None);
    assert_eq!(s.state(), StreamState::Ended);
    assert!(hub.live("cam").is_none());
    assert!(!hub.claim_or_resume("cam").unwrap().resumed);
}

#[test]
fn a_refused_resume_leaves_the_stream_held() {
    let hub = hub();
    let s = live_stream(&hub);
    hub.hold(&s, GRACE).unwrap();
    let claim = hub.claim_or_resume("cam").unwrap();
    hub.discard(&claim.stream);
    assert!(hub.is_held("cam"));
    assert_eq!(s.state(), StreamState::Reconnecting);
    assert!(hub.claim_or_resume("cam").unwrap().resumed);
    // A release (DELETE) of a held-then-resumed stream ends it for good.
    hub.release(&s);
    assert!(!hub.is_held("cam") && hub.live("cam").is_none());
}

#[test]
fn server_shutdown_ends_held_streams() {
    let hub = hub();
    let s = live_stream(&hub);
    hub.hold(&s, GRACE).unwrap();
    hub.end_held();
    assert_eq!(s.state(), StreamState::Ended);
    assert!(hub.live("cam").is_none());
}
