//! The FLV viewer's byte stream: the prelude, the live feed, skipping ahead, and the timeline
//! its sequence headers and onMetaData are stamped on.

use super::*;
use crate::media::Frame;
use crate::mux::flv;
use futures_util::StreamExt;

fn media(kind: FlvKind, ts: u32) -> FlvPacket {
    let mut first = FirstTimes::default();
    let data = match kind {
        FlvKind::Audio => flv::aac_frame_tag(&[0x21, 0x10], ts),
        _ => flv::avc_frame_tag(
            &Frame::h264_at_zero(kind == FlvKind::VideoKey, &[0, 0, 0, 1, 0x65]),
            ts,
            0,
        ),
    };
    first.note(kind != FlvKind::Audio, ts);
    FlvPacket { kind, data, first }
}

fn key(ts: u32) -> FlvPacket {
    media(FlvKind::VideoKey, ts)
}

fn inter(ts: u32) -> FlvPacket {
    media(FlvKind::VideoInter, ts)
}

fn audio(ts: u32) -> FlvPacket {
    media(FlvKind::Audio, ts)
}

fn end() -> FlvPacket {
    FlvPacket::control(FlvKind::End, Bytes::new())
}

/// A sequence header tag, stamped 0 as the stream keeps it; `version` tells them apart.
fn avc_header(version: u8) -> Bytes {
    let mut ps = crate::hub::test_params(&crate::media::h264::test_vectors::BASELINE_360P30);
    ps.pps = Bytes::from(vec![0x68, 0xce, version]);
    flv::avc_sequence_header_tag(&ps, 0)
}

fn aac_header(version: u8) -> Bytes {
    flv::aac_sequence_header_tag(&[0x11, version], 0)
}

fn owed(video: Option<Bytes>, audio: Option<Bytes>) -> Owed {
    Owed {
        metadata: Some(flv::metadata_tag(&flv::FlvMetadata::default())),
        headers: Headers { video, audio },
    }
}

fn subscribe(
    owed: Owed,
    gop: Vec<FlvPacket>,
    queue: usize,
) -> (broadcast::Sender<FlvPacket>, SharedHeaders, FlvSubscription) {
    let (tx, rx) = broadcast::channel(queue);
    let headers = SharedHeaders::new(RwLock::new(owed.headers.clone()));
    let sub = FlvSubscription::new(
        flv::file_header(true, true),
        owed,
        gop,
        rx,
        Arc::default(),
        headers.clone(),
    );
    (tx, headers, sub)
}

/// What a viewer got, a tag a letter: `M` onMetaData, `V`/`A` video/audio sequence header
/// (with the second byte of its last body byte pair, to tell versions apart), `k` keyframe,
/// `i` inter frame, `a` audio frame; with each tag's timestamp.
async fn watch(stream: FlvViewerStream) -> Vec<(String, u32)> {
    let chunks: Vec<Bytes> = stream.map(|r| r.unwrap()).collect().await;
    flv::parse_tags(&chunks.concat())
        .unwrap()
        .iter()
        .map(|t| {
            let last = t.body.last().copied().unwrap_or(0);
            let what = match (t.tag_type, t.body[0] >> 4, t.body[1]) {
                (18, _, _) => "M".to_string(),
                (9, _, 0) => format!("V{last}"),
                (9, 1, _) => "k".to_string(),
                (9, _, _) => "i".to_string(),
                (_, _, 0) => format!("A{last}"),
                _ => "a".to_string(),
            };
            (what, t.timestamp_ms)
        })
        .collect()
}

fn tags(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    list.iter().map(|(w, t)| (w.to_string(), *t)).collect()
}

#[test]
fn gop_cache_restarts_at_each_keyframe() {
    let mut c = FlvCache::default();
    c.push(&inter(0));
    assert!(
        c.gop.is_empty(),
        "no keyframe yet: nothing decodable to cache"
    );
    for p in [key(1000), inter(1033), key(2000), inter(2033)] {
        c.push(&p);
    }
    let cached: Vec<_> = c.gop.iter().map(|p| p.first.video).collect();
    assert_eq!(cached, vec![Some(2000), Some(2033)]);
}

#[tokio::test]
async fn viewer_count_follows_the_viewer() {
    let (tx, _, sub) = subscribe(owed(None, None), vec![key(0)], 16);
    let viewers = sub.viewers.clone();
    assert_eq!(viewers.load(Ordering::Relaxed), 1);
    tx.send(end()).unwrap();
    watch(sub.into_stream()).await;
    assert_eq!(
        viewers.load(Ordering::Relaxed),
        0,
        "viewer count drops with the stream"
    );
}

#[tokio::test]
async fn a_late_joiner_starts_its_timeline_at_the_cached_gop() {
    // 29 s in; the AVC header was last set at 9888 ms and the AAC header at 0 ms: what the
    // viewer is sent carries the times of the media after it, per track.
    let owed = owed(Some(avc_header(1)), Some(aac_header(0x90)));
    let gop = vec![key(29_029), audio(29_010), inter(29_062)];
    let (tx, _, sub) = subscribe(owed, gop, 16);
    tx.send(audio(29_031)).unwrap();
    tx.send(end()).unwrap();
    assert_eq!(
        watch(sub.into_stream()).await,
        tags(&[
            ("M", 29_029),
            ("V1", 29_029),
            ("k", 29_029),
            ("A144", 29_010),
            ("a", 29_010),
            ("i", 29_062),
            ("a", 29_031),
        ])
    );
}

#[tokio::test]
async fn a_viewer_without_a_cached_gop_starts_at_the_next_keyframe() {
    let (tx, _, sub) = subscribe(
        owed(Some(avc_header(1)), Some(aac_header(0x90))),
        vec![],
        16,
    );
    tx.send(inter(4_933)).unwrap();
    tx.send(audio(4_950)).unwrap();
    tx.send(key(5_000)).unwrap();
    tx.send(audio(4_990)).unwrap();
    tx.send(end()).unwrap();
    assert_eq!(
        watch(sub.into_stream()).await,
        tags(&[
            ("M", 5_000),
            ("V1", 5_000),
            ("k", 5_000),
            ("A144", 4_990),
            ("a", 4_990)
        ])
    );
}

#[tokio::test]
async fn a_new_sequence_header_takes_the_time_of_the_media_it_precedes() {
    let (tx, _, sub) = subscribe(
        owed(Some(avc_header(1)), Some(aac_header(0x90))),
        vec![key(0)],
        16,
    );
    tx.send(inter(33)).unwrap();
    tx.send(FlvPacket::control(FlvKind::VideoHeader, avc_header(2)))
        .unwrap();
    tx.send(FlvPacket::control(FlvKind::AudioHeader, aac_header(0x88)))
        .unwrap();
    tx.send(key(1_000)).unwrap();
    tx.send(audio(990)).unwrap();
    tx.send(end()).unwrap();
    assert_eq!(
        watch(sub.into_stream()).await,
        tags(&[
            ("M", 0),
            ("V1", 0),
            ("k", 0),
            ("i", 33),
            ("V2", 1_000),
            ("k", 1_000),
            ("A136", 990),
            ("a", 990),
        ])
    );
}

#[tokio::test]
async fn an_audio_only_viewer_starts_at_the_next_audio_frame() {
    let (tx, _, sub) = subscribe(owed(None, Some(aac_header(0x90))), vec![], 16);
    let sub = sub.audio_only();
    tx.send(audio(7_021)).unwrap();
    tx.send(audio(7_042)).unwrap();
    tx.send(end()).unwrap();
    assert_eq!(
        watch(sub.into_stream()).await,
        tags(&[("M", 7_021), ("A144", 7_021), ("a", 7_021), ("a", 7_042)])
    );
}

#[tokio::test]
async fn lagging_viewer_skips_to_next_keyframe() {
    let (tx, _, sub) = subscribe(owed(Some(avc_header(1)), None), vec![key(0)], 4);
    // Ten inter tags into a queue of four: the viewer lags and must not resume mid-GOP.
    for i in 1..=10 {
        tx.send(inter(i * 33)).unwrap();
    }
    tx.send(key(1_000)).unwrap();
    tx.send(inter(1_033)).unwrap();
    tx.send(end()).unwrap();
    assert_eq!(
        watch(sub.into_stream()).await,
        tags(&[("M", 0), ("V1", 0), ("k", 0), ("k", 1_000), ("i", 1_033)])
    );
}

#[tokio::test]
async fn lagging_viewer_drops_audio_until_the_keyframe_then_gets_missed_headers() {
    let (tx, headers, sub) = subscribe(owed(Some(avc_header(1)), None), vec![key(0)], 4);
    let stream = sub.into_stream();
    // Audio starts (new AAC header) and the resolution changes while the viewer is far
    // behind: both headers are pushed out of its queue before it reads.
    headers.write().unwrap().audio = Some(aac_header(0x90));
    tx.send(FlvPacket::control(FlvKind::AudioHeader, aac_header(0x90)))
        .unwrap();
    headers.write().unwrap().video = Some(avc_header(2));
    tx.send(FlvPacket::control(FlvKind::VideoHeader, avc_header(2)))
        .unwrap();
    for i in 0..10 {
        tx.send(audio(500 + i * 21)).unwrap();
    }
    tx.send(key(1_000)).unwrap();
    tx.send(audio(1_003)).unwrap();
    tx.send(end()).unwrap();
    assert_eq!(
        watch(stream).await,
        tags(&[
            ("M", 0),
            ("V1", 0),
            ("k", 0),
            ("V2", 1_000),
            ("k", 1_000),
            ("A144", 1_003),
            ("a", 1_003),
        ])
    );
}
