//! Smoke run of the load tool (`castgate::load`, the engine of `castgate-load`) against an
//! in-process gateway on loopback: a few publishers and viewers for a few seconds, and nothing
//! may be lost or stall. The big runs are in BENCHMARKS.md, not in CI.

use std::time::Duration;

use castgate::client::generate_fixture;
use castgate::load::{run, Limits, LoadConfig};

use crate::support::{fixture_dir, init_tracing, require_media_tools, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_smoke_two_publishers_four_flv_two_hls_viewers_nothing_lost_or_stalled() {
    init_tracing();
    require_media_tools();
    let fixture = tokio::task::spawn_blocking(|| generate_fixture(&fixture_dir(), 2))
        .await
        .expect("fixture task")
        .expect("ffmpeg makes the fixture");
    let srv = TestServer::start().await;

    let mut cfg = LoadConfig::new(format!("http://{}", srv.addr), fixture.media_source());
    cfg.publishers = 2;
    cfg.flv_viewers = 4;
    cfg.hls_viewers = 2;
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

    // The JSON report carries the same totals.
    let json = serde_json::to_value(&report).expect("report serializes");
    assert_eq!(json["publishers_connected"], 2);
    assert_eq!(json["stalls"], 0);
    assert_eq!(
        json["samples"].as_array().map(Vec::len),
        Some(report.samples.len())
    );
    srv.shutdown().await;
}
