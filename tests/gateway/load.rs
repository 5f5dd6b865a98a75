//! Smoke run of the load tool (`castgate::load`, the engine of `castgate-load`) against an
//! in-process gateway on loopback: a few publishers and viewers (FLV, HLS and Low-Latency HLS)
//! for a few seconds, and nothing may be lost or stall. The big runs are in BENCHMARKS.md, not in CI. Also: the latency stamps
//! the load tool's publishers put in every access unit reach both outputs and decode cleanly.

use std::time::Duration;

use castgate::client::PublishOptions;
use castgate::load::{run, scan_latency_stamps, FlvScanner, Limits, LoadConfig};

use crate::support::{
    expected_video, finish_viewers, fixture, init_tracing, output_dir, probe_video,
    publish_and_watch_with, require_media_tools, write, write_hls_file, TestServer, Watched,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_smoke_two_publishers_four_flv_two_hls_two_ll_hls_viewers_nothing_lost_or_stalled() {
    init_tracing();
    require_media_tools();
    let fixture = fixture(2).await;
    let srv = TestServer::start().await;

    let mut cfg = LoadConfig::new(format!("http://{}", srv.addr), fixture.media_source());
    cfg.publishers = 2;
    cfg.flv_viewers = 4;
    cfg.hls_viewers = 2;
    cfg.ll_hls_viewers = 2;
    cfg.publisher_ramp_per_sec = 20.0;
    cfg.viewer_ramp_per_sec = 20.0;
    cfg.hold = Duration::from_secs(5);
    cfg.stream_prefix = "smoke".into();
    // The gateway runs in this process: its CPU and RSS include the load tool's, which is
    // fine for a smoke run (the sampling path is what is checked).
    cfg.gateway_pid = Some(std::process::id());

    let report = tokio::time::timeout(Duration::from_secs(40), run(cfg))
        .await
        .expect("load run ends by itself")
        .expect("load run starts");
    let table = report.table();
    eprintln!("{table}");

    assert!(
        report.violations(Limits::default()).is_empty(),
        "limits broken: {:?}\n{table}",
        report.violations(Limits::default())
    );
    assert_eq!(report.publishers_connected, 2, "{table}");
    assert_eq!(report.flv_viewers_playing, 4, "{table}");
    assert_eq!(report.hls_viewers_playing, 2, "{table}");
    assert_eq!(report.flv_first_keyframe.count, 4, "{table}");
    assert_eq!(report.hls_first_segment.count, 2, "{table}");
    // Every viewer got media: at least one keyframe's worth of bytes (the fixture's IDRs are
    // several KB), not just headers.
    assert!(report.min_viewer_bytes > 10_000, "{table}");
    assert!(report.steady_mbps > 0.0, "{table}");
    let steady: Vec<_> = report
        .samples
        .iter()
        .filter(|s| s.phase == "steady")
        .collect();
    assert!(steady.len() >= 4, "one sample per second: {table}");
    assert!(
        steady.iter().all(|s| s.bytes > 0 && s.viewers_stalled == 0),
        "{table}"
    );
    let gateway = report.gateway.as_ref().expect("process sampled");
    assert!(gateway.rss_end_kib > 0, "{table}");

    // The publishers stamp every access unit: both kinds of viewer measure end-to-end latency,
    // and the gateway reports what it added.
    assert!(report.flv_end_to_end_latency.count > 100, "{table}");
    assert!(report.hls_end_to_end_latency.count > 0, "{table}");
    let added = report.gateway_latency.expect("gateway reports its latency");
    assert_eq!(added.video_flv.streams, 2, "{table}");
    assert!(added.video_flv.count > 100, "{table}");
    assert!(added.audio_flv.count > 100, "{table}");
    assert!(added.video_hls.count > 0, "{table}");

    // The LL-HLS viewers followed the live edge part by part (200 ms parts: about five
    // blocking reloads a second each), through the preload hint, with nothing refused,
    // unparsable or missed (counted as lost, so the limits above already hold them to 0).
    let ll = report.ll_hls.as_ref().expect("LL-HLS viewers reported");
    assert_eq!((ll.viewers, ll.playing), (2, 2), "{table}");
    assert_eq!(ll.problems(), 0, "{table}");
    assert_eq!(ll.first_part.count, 2, "{table}");
    assert!(ll.blocking_requests >= 2 * 5 * 4, "{table}");
    assert!(ll.parts_fetched >= 2 * 5 * 4, "{table}");
    assert!(ll.hinted_parts * 2 >= ll.parts_fetched, "{table}");
    assert!(ll.parts_measured >= 5 * 4, "{table}");
    assert!(ll.answer_spread.count >= 2 * 5 * 4, "{table}");
    assert!(ll.part_spread.count > 0, "{table}");
    // Blocking reloads wait for the next part: about a part long, never the 3 s to a 503.
    assert!(ll.blocking_duration.count >= 2 * 5 * 4, "{table}");
    assert!(ll.blocking_duration.p50_ms > 20.0, "{table}");
    assert!(ll.blocking_duration.max_ms < 3000.0, "{table}");
    assert!(ll.glass_to_part.count > 0, "{table}");
    let requests = report.gateway_hls_requests.expect("hls_requests counted");
    assert!(
        requests.blocking_playlists >= ll.blocking_duration.count as u64 / 2,
        "{table}"
    );
    assert!(requests.parts > 0, "{table}");

    // The JSON report carries the same totals.
    let json = serde_json::to_value(&report).expect("report serializes");
    assert_eq!(json["publishers_connected"], 2);
    assert_eq!(json["stalls"], 0);
    assert_eq!(json["ll_hls"]["viewers"], 2);
    assert_eq!(
        json["samples"].as_array().map(Vec::len),
        Some(report.samples.len())
    );
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn latency_stamped_publish_decodes_frame_exact_with_a_stamp_on_every_frame() {
    init_tracing();
    require_media_tools();
    let fixture = fixture(3).await;
    let srv = TestServer::start().await;
    let Watched {
        mut session,
        flv,
        hls,
    } = publish_and_watch_with(
        &srv,
        "stamped",
        fixture.media_source(),
        PublishOptions {
            latency_stamps: true,
            ..PublishOptions::default()
        },
    )
    .await;
    let sent = tokio::time::timeout(Duration::from_secs(25), session.finished())
        .await
        .expect("publisher finishes the fixture in real time")
        .expect("publisher sends without error");
    // Let the last packets clear the reorder buffer, then read what the gateway measured.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, api) = srv.get("/api/streams").await;
    let api: serde_json::Value = serde_json::from_slice(&api).expect("JSON");
    let latency = &api["streams"][0]["latency"];
    session.stop().await.expect("DELETE succeeds");
    let (hls, flv) = finish_viewers(hls, flv).await;
    srv.shutdown().await;

    // The gateway timed every access unit it received (all of them, on loopback) and the
    // keyframes that closed segments; percentiles are ordered.
    assert_eq!(
        latency["video_flv"]["count"], sent.video_frames,
        "{latency}"
    );
    assert!(
        latency["video_hls"]["count"].as_u64() >= Some(1),
        "{latency}"
    );
    let us = |k: &str| latency["video_flv"][k].as_u64().unwrap_or(0);
    assert!(
        us("p50_us") <= us("p99_us") && us("p99_us") <= us("max_us"),
        "{latency}"
    );

    // Both outputs decode, frame-exact, with the stamps in.
    let out = output_dir("load-stamped");
    let expected = expected_video(&fixture, sent.video_frames);
    let flv_file = out.join("viewer.flv");
    write(&flv_file, &[&flv.bytes]);
    assert_eq!(probe_video(&flv_file), expected, "{}", flv_file.display());
    let hls_file = write_hls_file(&hls, &out);
    assert_eq!(probe_video(&hls_file), expected, "{}", hls_file.display());

    // Every video tag of the FLV response carries its stamp where the load tool looks (the
    // front of the access unit), in sending order; so does every HLS sample.
    let mut stamps = Vec::new();
    let mut video_tags = 0u64;
    FlvScanner::new()
        .feed(&flv.bytes, |tag| {
            if tag.tag_type == 9 && tag.media {
                video_tags += 1;
                stamps.extend(tag.latency_stamp_us);
            }
        })
        .expect("FLV scans");
    assert_eq!(video_tags, sent.video_frames);
    assert_eq!(stamps.len() as u64, sent.video_frames);
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "stamps in order");
    let hls_stamps: usize = hls
        .segments
        .iter()
        .map(|(_, _, b)| scan_latency_stamps(b).len())
        .sum();
    assert_eq!(hls_stamps as u64, sent.video_frames);
}
