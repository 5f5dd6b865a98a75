//! [`HlsStream::break_timeline`]: a publisher lost and another continuing the stream. The open
//! segment is written at once, the next one starts behind EXT-X-DISCONTINUITY where the last
//! ended on the fMP4 timeline, with no gap in the media sequence (fMP4, LL-HLS parts and the
//! MPEG-TS rendition alike), and a discontinuity that slides out is counted.

use std::time::Duration;

use super::stream_tests::{config, feed, params, parse, video, video_stream, FRAME, T0_MS};
use super::strict::parse_strict;
use super::{HlsConfig, HlsStream};
use crate::media::Frame;
use crate::mux::fmp4::test_support::{parse_media_segment, SPS_320X240, SPS_640X360};

/// Frames `range` of a second publisher whose clock starts at `base` (90 kHz).
fn feed_from(s: &mut HlsStream, base: i64, range: std::ops::Range<i64>, gop: i64) {
    for i in range {
        let mut f: Frame = video(i, i % gop == 0);
        f.dts = base + i * FRAME;
        f.pts = f.dts;
        s.push(f, T0_MS + 60_000 + i * 40);
    }
}

/// tfdt of segment `name`'s video track.
fn tfdt(s: &HlsStream, name: &str) -> u64 {
    let seg = s.get(name).unwrap_or_else(|| panic!("no {name}"));
    parse_media_segment(&seg).1[0].base_media_decode_time
}

/// Sum of the sample durations of segment `name`'s video track.
fn duration(s: &HlsStream, name: &str) -> u64 {
    let seg = s.get(name).unwrap();
    let (_, trafs) = parse_media_segment(&seg);
    trafs[0].samples.iter().map(|x| u64::from(x.0)).sum()
}

#[test]
fn the_open_segment_is_written_and_the_next_continues_behind_a_discontinuity() {
    let mut s = video_stream(1000, 6);
    feed(&mut s, 0..60, 25); // segments 0 and 1; segment 2 (frames 50..59) open
    assert_eq!(parse(&s).segments.len(), 2);
    s.break_timeline();
    let p = parse(&s);
    assert_eq!(p.segments.len(), 3, "the open segment is written at once");
    assert_eq!(p.segments[2].uri, "ab12-2.m4s");
    assert!(!p.end_list, "the stream goes on");
    assert!(
        s.wants_keyframe(),
        "the next publisher is asked for a keyframe"
    );

    // The new publisher's clock starts far away (a new RTP base); its first frames are not a
    // keyframe and cannot start a segment.
    let base = 90_000 * 3600;
    feed_from(&mut s, base, 1..3, 25);
    feed_from(&mut s, base, 25..85, 25);
    let p = parse(&s);
    let uris: Vec<&str> = p.segments.iter().map(|x| x.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "ab12-0.m4s",
            "ab12-1.m4s",
            "ab12-2.m4s",
            "ab12-3.m4s",
            "ab12-4.m4s"
        ],
        "no gap in the media sequence"
    );
    let disc: Vec<bool> = p.segments.iter().map(|x| x.discontinuity).collect();
    assert_eq!(disc, [false, false, false, true, false]);
    assert!(
        p.segments.iter().skip(1).all(|x| x.map.is_none()),
        "the same parameter sets need no new init"
    );
    // The fMP4 timeline goes on where segment 2 ended.
    let end_of_2 = tfdt(&s, "ab12-2.m4s") + duration(&s, "ab12-2.m4s");
    assert_eq!(
        end_of_2,
        60 * FRAME as u64,
        "frames 0..60, the last one flushed"
    );
    assert_eq!(tfdt(&s, "ab12-3.m4s"), end_of_2);
}

#[test]
fn a_new_publisher_with_other_parameter_sets_gets_a_new_init() {
    let mut s = video_stream(1000, 6);
    feed(&mut s, 0..30, 25);
    s.break_timeline();
    s.set_video(params(SPS_640X360));
    feed_from(&mut s, 0, 0..60, 25); // its clock starts at 0 again: backwards
    let p = parse(&s);
    assert!(p.segments[2].discontinuity);
    assert_eq!(p.segments[2].map.as_ref().unwrap().uri, "ab12-init-1.mp4");
    assert_eq!(s.resolution(), Some((640, 360)));
    let disc = p.segments.iter().filter(|x| x.discontinuity).count();
    assert_eq!(disc, 1, "one discontinuity: the reconnect");
    assert!(tfdt(&s, "ab12-2.m4s") >= tfdt(&s, "ab12-1.m4s") + duration(&s, "ab12-1.m4s"));
}

#[test]
fn a_discontinuity_that_slides_out_is_counted() {
    let mut s = video_stream(1000, 3);
    feed(&mut s, 0..30, 25);
    s.break_timeline();
    feed_from(&mut s, 0, 0..200, 25);
    let p = parse(&s);
    assert_eq!(p.discontinuity_sequence, 1);
    assert!(p.segments.iter().all(|x| !x.discontinuity));
    let first = p.media_sequence;
    let n = p.segments.len() as u64;
    let uris: Vec<String> = p.segments.iter().map(|x| x.uri.clone()).collect();
    let want: Vec<String> = (first..first + n)
        .map(|m| format!("ab12-{m}.m4s"))
        .collect();
    assert_eq!(uris, want);
}

#[test]
fn parts_and_the_ts_rendition_follow() {
    let mut s = HlsStream::new(HlsConfig {
        part_target: Some(Duration::from_millis(200)),
        mpegts: true,
        ..config(1000, 6)
    });
    s.set_video(params(SPS_320X240));
    feed(&mut s, 0..40, 25); // segment 0; segment 1 open with parts
    let parts_before = s.progress().next_part;
    s.break_timeline();
    let progress = s.progress();
    assert_eq!(progress.next_msn, 2, "segment 1 written");
    assert!(progress.next_part > parts_before, "its last part too");
    feed_from(&mut s, 0, 0..60, 25);

    let text = String::from_utf8(s.playlist(false).unwrap().to_vec()).unwrap();
    let p = parse_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(p.violations(), Vec::<String>::new(), "{text}");
    let seg2 = p.segments.iter().find(|x| x.msn == 2).expect("segment 2");
    assert!(seg2.discontinuity, "{text}");
    // Part numbers go on from where segment 1's parts ended.
    let first_part = &seg2.parts[0].uri;
    assert_eq!(first_part, &format!("ab12-p{}.m4s", progress.next_part));
    assert!(seg2.parts[0].independent);

    let ts = s.ts_playlist().expect("ts playlist");
    let ts = m3u8_rs::parse_media_playlist_res(&ts).expect("ts playlist parses");
    let disc: Vec<bool> = ts.segments.iter().map(|x| x.discontinuity).collect();
    let fmp4 = parse(&s);
    let want: Vec<bool> = fmp4.segments.iter().map(|x| x.discontinuity).collect();
    assert_eq!(disc, want);
    assert!(disc[2]);
}

#[test]
fn the_end_after_a_break_adds_only_the_endlist() {
    let mut s = video_stream(1000, 6);
    feed(&mut s, 0..40, 25);
    s.break_timeline();
    s.break_timeline(); // a second one changes nothing
    assert_eq!(parse(&s).segments.len(), 2);
    s.end(T0_MS + 10_000);
    let p = parse(&s);
    assert_eq!(p.segments.len(), 2);
    assert!(p.end_list);
    // Before any segment, nothing to break.
    let mut fresh = video_stream(1000, 6);
    fresh.break_timeline();
    feed(&mut fresh, 0..30, 25);
    assert!(parse(&fresh).segments.iter().all(|x| !x.discontinuity));
}
