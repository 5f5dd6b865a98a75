//! A real browser end to end: headless Chromium publishes its fake camera and microphone over
//! WHIP from a page on another origin (so CORS is exercised); the HLS and HTTP-FLV outputs are
//! checked with ffprobe.
//!
//! Chromium offers no loopback ICE candidates, so media must flow over non-loopback addresses.
//! This test therefore runs only inside a private network namespace made by
//! `../shared/tools/netns-run` (veth addresses 10.213.0.1 and 10.213.0.2, nothing routed out);
//! anywhere else it skips, or fails with `CASTGATE_REQUIRE_BROWSER=1`. scripts/test.sh runs it.

#[path = "browser/camera.rs"]
mod camera;
#[path = "browser/cdp.rs"]
mod cdp;
#[path = "browser/glass.rs"]
mod glass;
#[path = "browser/pages_e2e.rs"]
mod pages_e2e;
#[path = "browser/support.rs"]
mod support;

#[path = "common/live_read.rs"]
mod live_read;
#[path = "common/nginx.rs"]
mod nginx;
#[path = "common/shared.rs"]
mod shared;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{HlsCapture, Namespace, PageServer};

const STREAM: &str = "browsercam";
/// How long the page publishes after it is connected, before it DELETEs its WHIP resource.
const PUBLISH_SECS: u64 = 8;
/// How long the HTTP-FLV response is read.
const FLV_READ: Duration = Duration::from_secs(4);
/// The fake camera runs at 30 fps; the encoder may drop some frames when the two shared CPU
/// cores are busy, so the outputs must carry at least this rate over their measured duration.
const MIN_FPS: f64 = 20.0;
/// Bound on the whole test: it normally takes well under half of this.
const TEST_LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a network namespace and Chromium: scripts/test.sh runs it inside netns-run"]
async fn chromium_fake_camera_publishes_h264_over_whip_to_hls_and_flv() {
    let Some(ns) = support::namespace_or_skip() else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;
    init_tracing();
    let started = Instant::now();
    tokio::time::timeout(TEST_LIMIT, run(ns))
        .await
        .unwrap_or_else(|_| panic!("browser test did not finish within {TEST_LIMIT:?}"));
    eprintln!(
        "browser test passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// `RUST_LOG` decides what the gateway logs into the test's output.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The tests each run a gateway and Chromium: one at a time on the shared cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// castgate's own pages end to end (tests/browser/pages_e2e.rs): publish.html goes live with
/// `?autostart=1`, watch.html plays it with hls.js and with mpegts.js, both viewers recover
/// when the broadcaster stops and starts again; screenshots go to target/tmp/screenshots/.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a network namespace and Chromium: scripts/test.sh runs it inside netns-run"]
async fn served_pages_publish_and_play_hls_and_flv_and_recover_from_a_restart() {
    run_pages(pages_e2e::Scheme::Http, "pages-run").await;
}

/// The same publish and playback over HTTPS with `[http] tls_self_signed = true` (Chromium is
/// told to accept the certificate).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a network namespace and Chromium: scripts/test.sh runs it inside netns-run"]
async fn served_pages_publish_and_play_over_https_with_a_self_signed_certificate() {
    run_pages(pages_e2e::Scheme::HttpsSelfSigned, "pages-https-run").await;
}

/// A simulcast publish (`sendEncodings` q, h, f of a 1280x720 camera) is answered for its top
/// layer alone, Chromium switches the others off, and ffmpeg reads one clean rendition.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a network namespace and Chromium: scripts/test.sh runs it inside netns-run"]
async fn chromium_simulcast_publish_plays_as_one_clean_rendition() {
    run_camera(camera::Publish::Simulcast, "simulcast-run").await;
}

/// A firewall that lets no UDP through (an nftables rule in the test's namespace): Chromium
/// publishes over ICE-TCP (RFC 6544) to the gateway's passive TCP candidate, and ffmpeg reads
/// the live HLS cleanly.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a network namespace and Chromium: scripts/test.sh runs it inside netns-run"]
async fn chromium_publishes_over_ice_tcp_when_udp_is_blocked() {
    run_camera(camera::Publish::UdpBlocked, "udp-blocked-run").await;
}

/// Chromium's start-up resolution ramp (`balanced` degradation of a 1280x720 camera) read live
/// by `ffmpeg -i` from the first segment to the end: both sizes decode, with no error.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a network namespace and Chromium: scripts/test.sh runs it inside netns-run"]
async fn ffmpeg_reads_live_hls_cleanly_across_chromiums_resolution_ramp() {
    run_camera(camera::Publish::Ramp, "ramp-run").await;
}

/// Glass-to-glass latency read from the picture (tests/browser/glass.rs): a canvas showing the
/// wall clock as a barcode, published over WHIP, played by castgate's watch page with hls.js
/// (LL-HLS; direct, and through nginx with config/nginx-castgate.conf) and with mpegts.js; the
/// latencies go to the log as `glass-to-glass:` lines.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a network namespace and Chromium: scripts/test.sh runs it inside netns-run"]
async fn glass_to_glass_latency_of_hls_js_direct_and_through_nginx_and_of_mpegts_js() {
    in_browser_dir("glass-run", "glass-to-glass test", |ns, out| async move {
        glass::run(ns, &out).await
    })
    .await;
}

async fn run_camera(publish: camera::Publish, dir: &str) {
    in_browser_dir(dir, &format!("{publish:?} test"), |ns, out| async move {
        camera::run(ns, &out, publish).await
    })
    .await;
}

async fn run_pages(scheme: pages_e2e::Scheme, dir: &str) {
    in_browser_dir(
        dir,
        &format!("pages test ({scheme:?})"),
        |ns, out| async move { pages_e2e::run(ns, &out, scheme).await },
    )
    .await;
}

/// Runs `test` in the namespace, one browser test at a time, with a fresh output directory
/// `target/tmp/browser-output/{dir}`; on a timeout prints the end of Chromium's log there.
async fn in_browser_dir<F, Fut>(dir: &str, what: &str, test: F)
where
    F: FnOnce(Namespace, PathBuf) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(ns) = support::namespace_or_skip() else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;
    init_tracing();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("browser-output")
        .join(dir);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("create output dir");
    let started = Instant::now();
    let log = out.join("chromium-stderr.log");
    if tokio::time::timeout(TEST_LIMIT, test(ns, out))
        .await
        .is_err()
    {
        eprintln!(
            "---- last lines of {}:\n{}",
            log.display(),
            support::tail(&log, 40)
        );
        panic!("{what} did not finish within {TEST_LIMIT:?}");
    }
    eprintln!("{what} passed in {:.1} s", started.elapsed().as_secs_f64());
}

/// Saves the page's SDPs; on failure (panic or timeout) also prints what the page reported and
/// the end of Chromium's log.
struct Diagnostics<'a> {
    page: &'a PageServer,
    out: PathBuf,
    chromium_log: PathBuf,
    passed: bool,
}

impl Drop for Diagnostics<'_> {
    fn drop(&mut self) {
        let reports = self.page.reports();
        // The offer and answer always go to files: they are too long for the log.
        for r in reports.iter().filter(|r| r.state.ends_with("-sdp")) {
            let _ = std::fs::write(self.out.join(format!("{}.txt", r.state)), &r.detail);
        }
        if self.passed {
            return;
        }
        eprintln!("---- browser test failed; the page reported:");
        for r in reports.iter().filter(|r| !r.state.ends_with("-sdp")) {
            eprintln!("  +{} ms {}: {}", r.ms, r.state, r.detail);
        }
        eprintln!(
            "---- offer and answer SDP in {}; last lines of {}:\n{}",
            self.out.display(),
            self.chromium_log.display(),
            support::tail(&self.chromium_log, 40)
        );
    }
}

async fn run(ns: Namespace) {
    let out = output_dir();
    eprintln!(
        "browser test in namespace {}; output in {}",
        ns.name,
        out.display()
    );

    let server = castgate::server::start(support::gateway_config(&ns))
        .await
        .expect("castgate server starts");
    let gateway = server.http_addr();
    assert!(
        gateway.ip().is_loopback(),
        "gateway bound {gateway}, not loopback"
    );

    let page = PageServer::start().await;
    assert_ne!(page.addr, gateway, "the page must come from another origin");
    let page_url = format!(
        "http://{}/publish.html?gateway=http://{gateway}&stream={STREAM}&seconds={PUBLISH_SECS}",
        page.addr
    );
    let chromium_log = out.join("chromium-stderr.log");
    let mut diagnostics = Diagnostics {
        page: &page,
        out: out.clone(),
        chromium_log: chromium_log.clone(),
        passed: false,
    };

    let profile = out.join("chromium-profile");
    let launched = Instant::now();
    let mut chromium = support::launch_chromium(&ns.chromium, &profile, &chromium_log, &page_url);
    eprintln!("chromium pid {} opened {page_url}", chromium.id());

    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client");
    let api = format!("http://{gateway}/api/streams");

    // 1. The page publishes and the gateway reports the stream live.
    let info = shared::eventually("the stream to be live", Duration::from_secs(15), || async {
        fail_on_page_error(&page);
        support::stream_info(&http, &api, STREAM)
            .await
            .filter(|s| s["state"] == "live")
    })
    .await;
    eprintln!(
        "live {:.1} s after launching chromium: {info}",
        launched.elapsed().as_secs_f64()
    );
    assert!(
        info["video_codec"]
            .as_str()
            .is_some_and(|c| c.starts_with("avc1.")),
        "live stream is not H.264: {info}"
    );
    assert_eq!(
        (
            &info["width"],
            &info["height"],
            &info["audio_codec"],
            &info["output_audio_codec"]
        ),
        (
            &640.into(),
            &360.into(),
            &"opus".into(),
            &"mp4a.40.2".into()
        ),
        "live stream: {info}"
    );
    let answer = page
        .last("answer")
        .expect("the page reported the WHIP answer");
    for candidate in answer
        .detail
        .split(" ; ")
        .filter(|c| c.contains("candidate:"))
    {
        assert!(
            ns.ips
                .iter()
                .any(|ip| candidate.contains(&format!(" {ip} "))),
            "answer candidate outside the namespace's veth addresses: {candidate}"
        );
    }
    assert!(
        !answer.detail.starts_with("0 candidates"),
        "the WHIP answer carries no candidates"
    );

    // 2. HLS is collected in the background (every segment as it appears) while FLV is read.
    let hls_task = tokio::spawn(support::collect_hls(
        http.clone(),
        format!("http://{gateway}/hls/{STREAM}/index.m3u8"),
        Duration::from_secs(PUBLISH_SECS + 20),
    ));
    let flv = support::read_for(
        &http,
        &format!("http://{gateway}/flv/{STREAM}.flv"),
        FLV_READ,
    )
    .await;

    // 3. The page ends its publish with DELETE: the stream leaves the list, HLS gets ENDLIST.
    // (The gateway may drop the stream before the page's report of the DELETE arrives.)
    let done = shared::eventually(
        "the page's DELETE to end the stream",
        Duration::from_secs(PUBLISH_SECS + 15),
        || async {
            fail_on_page_error(&page);
            let done = page.last("done")?;
            support::stream_info(&http, &api, STREAM)
                .await
                .is_none()
                .then_some(done)
        },
    )
    .await;
    let hls: HlsCapture = tokio::time::timeout(Duration::from_secs(15), hls_task)
        .await
        .expect("HLS collection finished")
        .expect("HLS collection did not panic");
    assert!(
        done.detail.starts_with('2'),
        "DELETE of the WHIP resource answered {}",
        done.detail
    );
    assert!(
        chromium.running(),
        "chromium exited by itself; see {}",
        chromium_log.display()
    );
    drop(chromium);

    // 4. Both outputs decode as 640x360 H.264 with plausible frame counts.
    check_flv(&flv, &out.join("browser.flv"));
    check_hls(&hls, &out.join("browser-hls.mp4"), frames_encoded(&page));

    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("gateway shuts down within 10 s");
    diagnostics.passed = true;
    drop(diagnostics);
    let _ = std::fs::remove_dir_all(&profile);
}

fn check_flv(flv: &[u8], file: &Path) {
    let video = support::flv_video(flv);
    // The read stopped mid-tag: keep whole tags only, so every tag must decode.
    std::fs::write(file, &flv[..video.complete_len]).expect("write FLV");
    let (Some(first), Some(last)) = (video.timestamps.first(), video.timestamps.last()) else {
        panic!("no video frames in {} bytes of FLV", flv.len());
    };
    let duration = f64::from(last.saturating_sub(*first)) / 1000.0;
    let probe = support::probe_video(file);
    eprintln!(
        "FLV: {} bytes, {} video frames over {duration:.2} s, ffprobe {probe:?}",
        flv.len(),
        video.timestamps.len()
    );
    assert_eq!(
        (probe.codec.as_str(), probe.width, probe.height),
        ("h264", 640, 360),
        "FLV video"
    );
    assert_eq!(
        probe.frames,
        video.timestamps.len() as u64,
        "every FLV video tag decodes to one frame"
    );
    // Read for 4 s of wall time (after the cached GOP it starts with).
    assert!(duration >= 3.0, "FLV covers only {duration:.2} s of video");
    let min_frames = (MIN_FPS * duration).floor().max(60.0) as u64;
    assert!(
        probe.frames >= min_frames,
        "FLV: {} frames over {duration:.2} s, expected at least {min_frames}",
        probe.frames
    );
    support::check_audio("FLV", file, duration);
}

/// `encoded`: the frame count the browser's encoder reported just before the DELETE.
fn check_hls(hls: &HlsCapture, file: &Path, encoded: u64) {
    assert!(hls.ended, "the playlist never got #EXT-X-ENDLIST");
    assert!(
        hls.init.is_some(),
        "the playlist never named an init segment (#EXT-X-MAP)"
    );
    let sequences: Vec<u64> = hls.segments.keys().copied().collect();
    assert!(
        sequences.windows(2).all(|w| w[1] == w[0] + 1),
        "media sequence numbers have gaps: {sequences:?}"
    );
    // RFC 8216 §4.3.3.1: every EXTINF, rounded, is at most EXT-X-TARGETDURATION.
    for (sequence, (uri, extinf, _)) in &hls.segments {
        assert!(
            extinf.round() as u64 <= hls.target_duration,
            "segment {sequence} ({uri}) lasts {extinf} s, over the target {} s",
            hls.target_duration
        );
    }
    std::fs::write(file, hls.concatenated()).expect("write HLS");
    let duration = hls.duration_secs();
    let probe = support::probe_video(file);
    let extinf: Vec<String> = hls
        .segments
        .values()
        .map(|(_, d, _)| format!("{d:.3}"))
        .collect();
    eprintln!(
        "HLS: {} segments (sequence {sequences:?}), EXTINF [{}] = {duration:.2} s, target {} s, \
         {} playlists read, ffprobe {probe:?}",
        hls.segments.len(),
        extinf.join(", "),
        hls.target_duration,
        hls.playlists
    );
    assert_eq!(
        (probe.codec.as_str(), probe.width, probe.height),
        ("h264", 640, 360),
        "HLS video"
    );
    // The page published for PUBLISH_SECS; the first segment may be short of it by the time to
    // the first keyframe and the last by the DELETE.
    assert!(
        duration >= PUBLISH_SECS as f64 / 2.0,
        "HLS covers only {duration:.2} s"
    );
    let min_frames = (MIN_FPS * duration).floor() as u64;
    assert!(
        probe.frames >= min_frames,
        "HLS: {} frames decoded over {duration:.2} s of EXTINF, expected at least {min_frames}",
        probe.frames
    );
    // Nothing is lost on a veth pair: the playlist holds (nearly) every frame the browser
    // encoded. Slack for frames in flight when the last stats were read.
    assert!(
        probe.frames * 10 >= encoded * 9,
        "HLS: {} frames decoded, but the browser encoded {encoded}",
        probe.frames
    );
    support::check_audio("HLS", file, duration);
}

/// `framesEncoded` of the video sender in the page's last stats report.
fn frames_encoded(page: &PageServer) -> u64 {
    let stats = page.last("stats").expect("the page reported sender stats");
    stats
        .detail
        .split_whitespace()
        .find_map(|word| word.strip_prefix("encoded="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no encoded= in the page's stats: {}", stats.detail))
}

/// Fails at once when the page reported an error, instead of waiting for a timeout.
fn fail_on_page_error(page: &PageServer) {
    if let Some(error) = page.last("error") {
        panic!("the publisher page failed: {}", error.detail);
    }
}

/// A fresh directory for this run's files (the previous run's are removed), kept for inspection.
fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("browser-output")
        .join("last-run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create output dir");
    dir
}
