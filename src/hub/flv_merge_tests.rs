//! Merged FLV writes follow the size of a stream's audience: each video frame goes out on its
//! own to a few viewers, several frames per write to many.

use bytes::Bytes;

use super::{
    ready_chunks, test_video_frame, test_video_stream, FlvViewerStream, Hub, Stream, StreamSettings,
};

fn push_frame(stream: &Stream, i: i64) {
    stream.push_video(test_video_frame(i, i == 0));
}

/// The sizes of the writes a viewer has been handed so far.
fn ready_writes(viewer: &mut FlvViewerStream) -> Vec<usize> {
    ready_chunks(viewer).iter().map(Bytes::len).collect()
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
