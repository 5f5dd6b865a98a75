//! The reconnect grace (issue 12): a publisher dropped without a WHIP DELETE that publishes the
//! same name again within `[stream] reconnect_grace_secs` continues the same stream. An FLV
//! viewer recording from before the drop to the end gets one file ffmpeg decodes without an
//! error, with one video and one audio stream, a second pair of sequence headers and no
//! timestamp going back; HLS goes on behind EXT-X-DISCONTINUITY with no gap in the media
//! sequence. Without a new publisher the stream ends when the grace is over; a DELETE ends it
//! at once.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use castgate::client::{ClientError, PublishOptions};
use castgate::config::Config;
use castgate::mux::flv::{first_step_back, parse_tags, FlvTag, TAG_AUDIO, TAG_VIDEO};

use super::shared::ffprobe_json;
use super::support::{
    eventually, finish_publish, finish_viewers, fixture, init_tracing, output_dir,
    publish_and_watch_with, publish_live, require_media_tools, test_config, FlvCapture, TestServer,
    Watched, VIEWER_DEADLINE,
};

/// A dropped publisher's connection is given up on after a second without media (a closed
/// connection is seen at once).
fn config(grace_secs: f64) -> Config {
    let mut config = test_config();
    config.stream.idle_timeout_secs = 1.0;
    config.stream.reconnect_grace_secs = grace_secs;
    config
}

/// Publishes `name` and starts an FLV recorder and an HLS poller on it.
async fn publish_and_record(srv: &TestServer, name: &str, seconds: u32) -> Watched {
    let fixture = fixture(seconds).await;
    publish_and_watch_with(srv, name, fixture.media_source(), PublishOptions::default()).await
}

/// Waits until the live playlist of `name` lists `n` segments (media is flowing).
async fn segments_listed(srv: &TestServer, name: &str, n: usize) {
    let path = format!("/hls/{name}/index.m3u8");
    eventually(
        &format!("{n} HLS segments"),
        Duration::from_secs(20),
        || async {
            let (status, body) = srv.get(&path).await;
            let playlist = m3u8_rs::parse_media_playlist_res(&body).ok()?;
            (status == 200 && playlist.segments.len() >= n).then_some(())
        },
    )
    .await;
}

async fn wait_state(srv: &TestServer, name: &str, state: &str, limit: Duration) {
    eventually(&format!("stream {name} to be {state}"), limit, || async {
        srv.stream_state(name)
            .await
            .filter(|s| s == state)
            .map(drop)
    })
    .await;
}

/// FLV sequence headers (AVCPacketType / AACPacketType 0) of one tag type.
fn sequence_headers(tags: &[FlvTag], tag_type: u8) -> usize {
    tags.iter()
        .filter(|t| t.tag_type == tag_type && t.body.get(1) == Some(&0))
        .count()
}

/// What `ffmpeg -v error` says decoding the whole file (nothing, when it decodes cleanly).
fn ffmpeg_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg failed on {}", file.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_flv_viewer_ended_cleanly(flv: &FlvCapture) {
    assert_eq!(flv.status, 200);
    assert_eq!(flv.error, None);
    assert!(flv.ended, "the FLV response reached its end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publisher_back_within_the_grace_keeps_the_flv_viewer_playing() {
    init_tracing();
    require_media_tools();
    let srv = TestServer::start_with(config(30.0)).await;
    let name = "comeback";
    let Watched { session, flv, hls } = publish_and_record(&srv, name, 8).await;
    segments_listed(&srv, name, 2).await;

    // Killed without a DELETE: it stops sending and its peer connection goes away.
    drop(session);
    wait_state(&srv, name, "reconnecting", Duration::from_secs(10)).await;
    assert!(
        !flv.is_finished(),
        "the FLV viewer stays connected while the stream is held"
    );

    let again = fixture(4).await;
    let session = publish_live(&srv, name, again.media_source(), PublishOptions::default()).await;
    // The stream went on: HLS shows the reconnect as a discontinuity.
    let path = format!("/hls/{name}/index.m3u8");
    let live = eventually(
        "a discontinuity in the playlist",
        Duration::from_secs(20),
        || async {
            let (_, body) = srv.get(&path).await;
            let playlist = m3u8_rs::parse_media_playlist_res(&body).ok()?;
            playlist
                .segments
                .iter()
                .any(|s| s.discontinuity)
                .then_some(playlist)
        },
    )
    .await;
    let prefix = live.segments[0]
        .uri
        .rsplit_once('-')
        .expect("segment name")
        .0;
    for (i, segment) in live.segments.iter().enumerate() {
        let msn = live.media_sequence + i as u64;
        assert_eq!(
            segment.uri,
            format!("{prefix}-{msn}.m4s"),
            "no gap in the media sequence"
        );
    }
    // Someone else publishing the name meanwhile is refused, as always.
    let third = castgate::client::publish(
        &srv.url(&format!("/whip/{name}")),
        None,
        again.media_source(),
        PublishOptions {
            http: Some(srv.http.clone()),
            ..PublishOptions::default()
        },
    )
    .await;
    assert!(
        matches!(third, Err(ClientError::Status { status: 409, .. })),
        "{:?}",
        third.err()
    );

    finish_publish(&srv, name, session, 4).await;
    let (hls, flv) = finish_viewers(hls, flv).await;
    srv.shutdown().await;

    assert!(hls.problems.is_empty(), "HLS problems: {:?}", hls.problems);
    let seqs: Vec<u64> = hls.segments.iter().map(|(seq, _, _)| *seq).collect();
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..first + seqs.len() as u64).collect::<Vec<_>>(),
        "every segment, in one unbroken media sequence"
    );
    let last = m3u8_rs::parse_media_playlist_res(hls.playlist.as_bytes()).expect("playlist");
    assert!(last.end_list);
    let listed = last.segments.iter().filter(|s| s.discontinuity).count() as u64;
    assert_eq!(
        last.discontinuity_sequence + listed,
        1,
        "one discontinuity, listed or slid out and counted:\n{}",
        hls.playlist
    );

    assert_flv_viewer_ended_cleanly(&flv);
    let out = output_dir("reconnect");
    let rec = out.join("rec.flv");
    std::fs::write(&rec, &flv.bytes).expect("write recording");
    let tags = parse_tags(&flv.bytes).expect("the recording is well-formed FLV");
    assert_eq!(
        sequence_headers(&tags, TAG_VIDEO),
        2,
        "a new AVC sequence header"
    );
    assert_eq!(
        sequence_headers(&tags, TAG_AUDIO),
        2,
        "a new AAC sequence header"
    );
    assert_eq!(first_step_back(&tags), None, "timestamps never go back");
    let probe = ffprobe_json(&["-show_entries", "stream=codec_type,codec_name"], &rec);
    let kinds: Vec<&str> = probe["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| s["codec_type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "video").count(),
        1,
        "{probe}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "audio").count(),
        1,
        "{probe}"
    );
    assert_eq!(kinds.len(), 2, "{probe}");
    let errors = ffmpeg_errors(&rec);
    assert!(
        errors.is_empty(),
        "ffmpeg errors decoding {}:\n{errors}",
        rec.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_new_publisher_the_stream_ends_when_the_grace_is_over() {
    init_tracing();
    require_media_tools();
    let srv = TestServer::start_with(config(3.0)).await;
    let name = "gone";
    let Watched { session, flv, hls } = publish_and_record(&srv, name, 8).await;
    segments_listed(&srv, name, 2).await;
    drop(session);
    wait_state(&srv, name, "reconnecting", Duration::from_secs(10)).await;
    assert!(!flv.is_finished(), "held: the FLV viewer stays");
    eventually(
        "the held stream to end",
        Duration::from_secs(15),
        || async { srv.stream_state(name).await.is_none().then_some(()) },
    )
    .await;
    let (hls, flv) = finish_viewers(hls, flv).await;
    assert_flv_viewer_ended_cleanly(&flv);
    assert!(hls.problems.is_empty(), "HLS problems: {:?}", hls.problems);
    let last = m3u8_rs::parse_media_playlist_res(hls.playlist.as_bytes()).expect("playlist");
    assert!(last.end_list, "{}", hls.playlist);
    assert!(last.segments.iter().all(|s| !s.discontinuity));
    // The name is free: a publish now starts a new stream (new file names).
    let old_prefix = hls.segments[0].1.rsplit_once('-').unwrap().0.to_string();
    let again = publish_and_record(&srv, name, 4).await;
    segments_listed(&srv, name, 1).await;
    let (_, body) = srv.get(&format!("/hls/{name}/index.m3u8")).await;
    let fresh = m3u8_rs::parse_media_playlist_res(&body).unwrap();
    assert!(
        !fresh.segments[0].uri.starts_with(&old_prefix),
        "a new publish, not the old one"
    );
    drop(again);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_ends_the_stream_at_once() {
    init_tracing();
    require_media_tools();
    // A grace far longer than anything this test waits for.
    let srv = TestServer::start_with(config(600.0)).await;
    let name = "done";
    let Watched { session, flv, hls } = publish_and_record(&srv, name, 8).await;
    segments_listed(&srv, name, 2).await;
    session
        .stop()
        .await
        .expect("DELETE of the WHIP session succeeds");
    eventually("the stream to end", Duration::from_secs(10), || async {
        srv.stream_state(name).await.is_none().then_some(())
    })
    .await;
    let (hls, flv) = tokio::time::timeout(VIEWER_DEADLINE, finish_viewers(hls, flv))
        .await
        .expect("viewers finish");
    assert_flv_viewer_ended_cleanly(&flv);
    assert!(
        hls.playlist.trim_end().ends_with("#EXT-X-ENDLIST"),
        "{}",
        hls.playlist
    );
    srv.shutdown().await;
}
