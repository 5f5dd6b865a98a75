//! An HTTP-FLV viewer that joins a live stream late starts on one timeline (issue 18): its
//! onMetaData and sequence headers carry the time of its first media, not 0 or the time the
//! parameters were set, so players that take the first tag as their clock base see no hole.

use std::time::Duration;

use castgate::client::PublishOptions;
use castgate::mux::flv::{first_step_back, parse_tags, TAG_AUDIO, TAG_VIDEO};

use super::support::{
    capture_flv, ffprobe_json, fixture, init_tracing, output_dir, publish_live,
    require_media_tools, write, TestServer, VIEWER_DEADLINE,
};

const JOIN_AFTER: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flv_viewer_joining_10_s_in_starts_its_timeline_at_its_first_media() {
    init_tracing();
    require_media_tools();
    let fixture = fixture(6).await;
    let srv = TestServer::start().await;
    let opts = PublishOptions {
        looping: true,
        ..PublishOptions::default()
    };
    let session = publish_live(&srv, "late", fixture.media_source(), opts).await;
    tokio::time::sleep(JOIN_AFTER).await;
    let flv = tokio::spawn(capture_flv(srv.http.clone(), srv.url("/flv/late.flv")));
    tokio::time::sleep(Duration::from_secs(2)).await;
    session
        .stop()
        .await
        .expect("DELETE of the WHIP session succeeds");
    let flv = tokio::time::timeout(VIEWER_DEADLINE, flv)
        .await
        .expect("FLV viewer finishes")
        .expect("FLV viewer task");
    srv.shutdown().await;

    let file = output_dir("flv-timeline").join("late.flv");
    write(&file, &[&flv.bytes]);
    assert_eq!(flv.status, 200, "FLV viewer (error: {:?})", flv.error);
    let tags = parse_tags(&flv.bytes).unwrap_or_else(|e| panic!("{e}: {}", file.display()));
    let head: Vec<(u8, u32)> = tags
        .iter()
        .take(8)
        .map(|t| (t.tag_type, t.timestamp_ms))
        .collect();
    assert!(tags.len() >= 5, "{head:?} ({})", file.display());

    // The viewer really joined late: its media starts about 10 s into the stream.
    let first_media = tags
        .iter()
        .find(|t| matches!(t.tag_type, TAG_AUDIO | TAG_VIDEO) && t.body.get(1) == Some(&1))
        .expect("a media tag")
        .timestamp_ms;
    assert!(first_media >= 8_000, "{head:?} ({})", file.display());

    let first: Vec<u32> = tags.iter().take(5).map(|t| t.timestamp_ms).collect();
    let spread = first.iter().max().unwrap() - first.iter().min().unwrap();
    assert!(
        spread <= 100,
        "the first five tags span {spread} ms: {head:?} ({})",
        file.display()
    );
    if let Some(i) = first_step_back(&tags) {
        let around: Vec<(u8, u32)> = tags[i.saturating_sub(4)..=i]
            .iter()
            .map(|t| (t.tag_type, t.timestamp_ms))
            .collect();
        panic!(
            "tag {i} goes back in its track: {around:?} ({})",
            file.display()
        );
    }

    // ffprobe's start time is that of the first media, not 0 with a 10 s hole. (ffmpeg 5.1
    // takes it from media tags only, so this holds with sequence headers stamped 0 too: it
    // checks that re-stamping moved no media, while the spread above is what catches the hole.)
    let json = ffprobe_json(&["-show_entries", "format=start_time"], &file);
    let start: f64 = json["format"]["start_time"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no start_time: {json}"));
    assert!(
        (start - f64::from(first_media) / 1000.0).abs() <= 0.2,
        "ffprobe start_time {start} s, first media tag at {first_media} ms ({})",
        file.display()
    );
}
