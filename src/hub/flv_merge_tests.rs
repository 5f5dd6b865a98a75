//! Merged FLV writes follow the size of a stream's audience: each video frame goes out on its
//! own to a few viewers, several frames per write to many.

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};

use super::{test_video_stream, FlvViewerStream, Hub, Stream, StreamSettings};
use crate::media::{Codec, Frame};

fn push_frame(stream: &Stream, i: i64) {
    let nal: &[u8] = if i == 0 { &[0x65, 0x88] } else { &[0x41, 0x9a] };
    let mut data = (nal.len() as u32).to_be_bytes().to_vec();
    data.extend_from_slice(nal);
    // 30 fps on the 90 kHz clock.
    stream.push_video(Frame {
        codec: Codec::H264,
        pts: i * 3000,
        dts: i * 3000,
        keyframe: i == 0,
        data: Bytes::from(data),
    });
}

/// The sizes of the writes a viewer has been handed so far.
fn ready_writes(viewer: &mut FlvViewerStream) -> Vec<usize> {
    let mut sizes = Vec::new();
    while let Some(Some(chunk)) = viewer.next().now_or_never() {
        sizes.push(chunk.unwrap().len());
    }
    sizes
}

#[test]
fn frames_are_merged_only_while_the_audience_is_large() {
    let hub = Hub::new(StreamSettings {
        flv_merge_ms: 70,
        flv_merge_from_viewers: 2,
        ..StreamSettings::default()
    });
    let stream = test_video_stream(&hub);
    push_frame(&stream, 0);
    let mut first = stream.subscribe_flv().unwrap().into_stream();
    assert!(!ready_writes(&mut first).is_empty(), "the prelude");

    // One viewer: a write per frame.
    (1..=6).for_each(|i| push_frame(&stream, i));
    let alone = ready_writes(&mut first);
    assert_eq!(alone.len(), 6, "{alone:?}");
    let frame = alone[0];
    assert!(alone.iter().all(|&n| n == frame), "{alone:?}");

    // Two viewers: frames 7..=10 span 100 ms >= 70 and go out in one write; 11 and 12 are held.
    let mut second = stream.subscribe_flv().unwrap().into_stream();
    ready_writes(&mut second);
    (7..=12).for_each(|i| push_frame(&stream, i));
    assert_eq!(ready_writes(&mut first), vec![4 * frame]);
    assert_eq!(ready_writes(&mut second), vec![4 * frame]);

    // Back to one: the held frames leave with the next one, then a write per frame again.
    drop(second);
    (13..=14).for_each(|i| push_frame(&stream, i));
    assert_eq!(ready_writes(&mut first), vec![3 * frame, frame]);
}
