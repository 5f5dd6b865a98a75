//! Helpers for the browser test: the network-namespace gate, a process guard for Chromium, the
//! page server (another origin), HLS collection, a minimal FLV tag walker and ffprobe.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use tokio::task::JoinHandle;

pub use super::shared::{http_get, probe_audio, probe_video};

/// Where the test may run: inside a namespace made by `netns-run`, with both veth addresses.
pub struct Namespace {
    pub name: String,
    pub ips: Vec<IpAddr>,
    pub chromium: PathBuf,
}

/// Decides whether the browser test may run here. It gathers real (non-loopback) ICE
/// candidates, so it is only allowed inside a private namespace made by `netns-run`; anywhere
/// else it skips with a message, or fails when `CASTGATE_REQUIRE_BROWSER=1` (as in CI).
pub fn namespace_or_skip() -> Option<Namespace> {
    match check_namespace() {
        Ok(ns) => Some(ns),
        Err(why) if browser_required() => {
            panic!("browser test cannot run (CASTGATE_REQUIRE_BROWSER=1): {why}")
        }
        Err(why) => {
            eprintln!(
                "SKIPPED browser test: {why}. It only runs inside a private network namespace: \
                 `../shared/tools/netns-run env CASTGATE_REQUIRE_BROWSER=1 cargo test --test \
                 browser -- --nocapture` (scripts/test.sh does this)."
            );
            None
        }
    }
}

/// `CASTGATE_REQUIRE_BROWSER=1` (CI, scripts/test.sh): what a browser test needs and does not
/// find is a failure, not a skip.
pub fn browser_required() -> bool {
    std::env::var("CASTGATE_REQUIRE_BROWSER").as_deref() == Ok("1")
}

fn check_namespace() -> Result<Namespace, String> {
    let name = std::env::var("NETNS_NAME")
        .map_err(|_| "not inside a netns-run namespace (NETNS_NAME is unset)".to_string())?;
    let mut ips = Vec::new();
    for var in ["NETNS_IP_A", "NETNS_IP_B"] {
        let value = std::env::var(var).map_err(|_| format!("{var} is unset"))?;
        let ip: IpAddr = value
            .parse()
            .map_err(|_| format!("{var}={value:?} is not an IP address"))?;
        if ip.is_loopback() || ip.is_unspecified() {
            return Err(format!("{var}={ip} is not a veth address"));
        }
        // Binding proves the address is assigned in this namespace: a stray NETNS_NAME on the
        // host does not let the test near real interfaces.
        UdpSocket::bind((ip, 0))
            .map_err(|e| format!("{var}={ip} is not an address of this namespace ({e})"))?;
        ips.push(ip);
    }
    let chromium = PathBuf::from(
        std::env::var("CASTGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string()),
    );
    if !chromium.exists() {
        return Err(format!(
            "{} not found (Debian: apt-get install chromium)",
            chromium.display()
        ));
    }
    let ffprobe_ok = Command::new("ffprobe")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ffprobe_ok {
        return Err("ffprobe not found (Debian: apt-get install ffmpeg)".to_string());
    }
    Ok(Namespace {
        name,
        ips,
        chromium,
    })
}

/// A child process started in its own process group; dropping this kills the whole group
/// (Chromium forks zygote, renderer, GPU and utility processes) and reaps the leader.
pub struct ProcessGroup {
    child: Child,
}

impl ProcessGroup {
    pub fn spawn(mut command: Command) -> std::io::Result<ProcessGroup> {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        Ok(ProcessGroup {
            child: command.spawn()?,
        })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // The group id is the leader's pid (process_group(0)); only our own processes are in it.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway's settings for a browser test: HTTP on the namespace's loopback (the page
/// there may use the camera), media on its veth addresses only, 1 s HLS segments.
pub fn gateway_config(ns: &Namespace) -> castgate::config::Config {
    let mut config = castgate::config::Config::default();
    config.http.listen = "127.0.0.1:0".parse().expect("loopback addr");
    config.webrtc.interfaces = ns.ips.clone();
    // One ephemeral shared port per gateway: tests run side by side.
    config.webrtc.udp_port = 0;
    config.hls.segment_duration_secs = 1.0;
    config
}

/// Launches headless Chromium on `url` with a fake camera and microphone, a fresh profile in
/// `profile` and stderr written to `log`.
pub fn launch_chromium(chromium: &Path, profile: &Path, log: &Path, url: &str) -> ProcessGroup {
    launch_chromium_with(chromium, profile, log, &[], url)
}

/// [`launch_chromium`] with `extra` command-line switches.
pub fn launch_chromium_with(
    chromium: &Path,
    profile: &Path,
    log: &Path,
    extra: &[&str],
    url: &str,
) -> ProcessGroup {
    let stderr = std::fs::File::create(log).expect("create chromium log");
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-proxy-server",
            // The fake camera runs at 20 fps unless told otherwise.
            "--use-fake-device-for-media-stream=fps=30",
            "--use-fake-ui-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    ProcessGroup::spawn(command)
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()))
}

/// The test pages' barcode clock (tests/browser/clock.js): served to the publisher page, and
/// evaluated in viewer pages to read their picture.
pub const CLOCK_JS: &str = include_str!("clock.js");

/// [`launch_chromium`] on `about:blank` for a test that drives its tabs over the DevTools
/// protocol (`crate::cdp::Cdp::connect` on the same `profile`): every tab keeps running as if
/// it were in front, and `extra` switches are added.
pub fn launch_chromium_for_devtools(
    chromium: &Path,
    profile: &Path,
    log: &Path,
    extra: &[&str],
) -> ProcessGroup {
    let mut switches = vec![
        "--remote-debugging-port=0",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
        "--window-size=1280,800",
    ];
    switches.extend_from_slice(extra);
    launch_chromium_with(chromium, profile, log, &switches, "about:blank")
}

/// One progress report POSTed by the publisher page.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct PageReport {
    pub state: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub ms: u64,
}

/// Serves the publisher page on its own port (a different origin from the gateway) and
/// collects what the page reports. Stops serving when dropped.
pub struct PageServer {
    pub addr: SocketAddr,
    reports: Arc<Mutex<Vec<PageReport>>>,
    task: JoinHandle<()>,
}

impl PageServer {
    pub async fn start() -> PageServer {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = reports.clone();
        let asset = |content_type: &'static str, body: &'static str| {
            get(move || async move { ([(header::CONTENT_TYPE, content_type)], body) })
        };
        const JS: &str = "text/javascript; charset=utf-8";
        let router = Router::new()
            .route(
                "/publish.html",
                asset("text/html; charset=utf-8", include_str!("publish.html")),
            )
            .route("/publish.js", asset(JS, include_str!("publish.js")))
            .route("/clock.js", asset(JS, CLOCK_JS))
            .route(
                "/report",
                post(move |body: String| async move {
                    match serde_json::from_str::<PageReport>(&body) {
                        Ok(report) => {
                            // SDPs are long: they are written to files instead.
                            if !report.state.ends_with("-sdp") {
                                eprintln!(
                                    "[page +{} ms] {}: {}",
                                    report.ms, report.state, report.detail
                                );
                            }
                            sink.lock().unwrap_or_else(|e| e.into_inner()).push(report);
                            StatusCode::NO_CONTENT
                        }
                        Err(_) => StatusCode::BAD_REQUEST,
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind page server");
        let addr = listener.local_addr().expect("page server addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        PageServer {
            addr,
            reports,
            task,
        }
    }

    pub fn reports(&self) -> Vec<PageReport> {
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The last report in `state`, if any.
    pub fn last(&self, state: &str) -> Option<PageReport> {
        self.reports().into_iter().rev().find(|r| r.state == state)
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Everything fetched from one HLS stream: the init segment and every media segment seen, by
/// media sequence number, with its `#EXTINF` duration.
#[derive(Debug, Default)]
pub struct HlsCapture {
    pub init: Option<(String, Bytes)>,
    pub segments: BTreeMap<u64, (String, f64, Bytes)>,
    pub ended: bool,
    pub playlists: usize,
    /// The largest `#EXT-X-TARGETDURATION` seen.
    pub target_duration: u64,
}

impl HlsCapture {
    pub fn duration_secs(&self) -> f64 {
        self.segments.values().map(|(_, d, _)| d).sum()
    }

    /// Init segment then media segments in order: one playable fragmented MP4.
    pub fn concatenated(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some((_, init)) = &self.init {
            out.extend_from_slice(init);
        }
        for (_, _, data) in self.segments.values() {
            out.extend_from_slice(data);
        }
        out
    }
}

/// Polls the playlist at `playlist_url` every 300 ms and fetches each new segment at once, until
/// the playlist carries `#EXT-X-ENDLIST` or `limit` passes.
pub async fn collect_hls(
    http: reqwest::Client,
    playlist_url: String,
    limit: Duration,
) -> HlsCapture {
    let base = reqwest::Url::parse(&playlist_url).expect("playlist URL");
    let deadline = tokio::time::Instant::now() + limit;
    let mut capture = HlsCapture::default();
    while tokio::time::Instant::now() < deadline {
        let (status, body) = http_get(&http, base.as_str()).await;
        if status == 404 {
            // No segment yet.
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        assert_eq!(status, 200, "GET {base}");
        capture.playlists += 1;
        let playlist = m3u8_rs::parse_media_playlist_res(&body).unwrap_or_else(|e| {
            panic!(
                "playlist does not parse ({e:?}):\n{}",
                String::from_utf8_lossy(&body)
            )
        });
        capture.target_duration = capture.target_duration.max(playlist.target_duration);
        for (i, segment) in playlist.segments.iter().enumerate() {
            if let Some(map) = &segment.map {
                match &capture.init {
                    Some((uri, _)) => assert_eq!(uri, &map.uri, "init segment changed mid-publish"),
                    None => {
                        let data = fetch(&http, &base, &map.uri).await;
                        capture.init = Some((map.uri.clone(), data));
                    }
                }
            }
            let sequence = playlist.media_sequence + i as u64;
            match capture.segments.entry(sequence) {
                Entry::Vacant(slot) => {
                    let data = fetch(&http, &base, &segment.uri).await;
                    slot.insert((segment.uri.clone(), f64::from(segment.duration), data));
                }
                // A sequence number names one segment for the whole publish.
                Entry::Occupied(seen) => assert_eq!(
                    seen.get().0,
                    segment.uri,
                    "media sequence {sequence} changed its URI"
                ),
            }
        }
        if playlist.end_list {
            capture.ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    capture
}

async fn fetch(http: &reqwest::Client, base: &reqwest::Url, uri: &str) -> Bytes {
    let url = base
        .join(uri)
        .unwrap_or_else(|e| panic!("bad URI {uri:?}: {e}"));
    let (status, body) = http_get(http, url.as_str()).await;
    assert_eq!(status, 200, "GET {url}");
    assert!(!body.is_empty(), "GET {url}: empty body");
    body
}

/// Reads a long HTTP response for `duration`, returning what arrived (the response may also
/// end earlier).
pub async fn read_for(http: &reqwest::Client, url: &str, duration: Duration) -> Vec<u8> {
    let mut response = http
        .get(url)
        .timeout(duration + Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status().as_u16(), 200, "GET {url}");
    let deadline = tokio::time::Instant::now() + duration;
    let mut body = Vec::new();
    while let Ok(chunk) = tokio::time::timeout_at(deadline, response.chunk()).await {
        match chunk {
            Ok(Some(bytes)) => body.extend_from_slice(&bytes),
            Ok(None) => break,
            Err(e) => panic!("GET {url}: body failed after {} bytes: {e}", body.len()),
        }
    }
    body
}

/// The video frames of an FLV byte stream cut off mid-tag: the timestamps (ms) of its coded
/// video tags, and the length of the prefix made of whole tags. FLV spec v10.1 E.2/E.4.1:
/// a header (its size in bytes 5..9), then PreviousTagSize + tag, repeated.
pub struct FlvVideo {
    pub timestamps: Vec<u32>,
    pub complete_len: usize,
}

pub fn flv_video(flv: &[u8]) -> FlvVideo {
    let mut video = FlvVideo {
        timestamps: Vec::new(),
        complete_len: 0,
    };
    if flv.len() < 9 || &flv[..3] != b"FLV" {
        return video;
    }
    let header_len = u32::from_be_bytes([flv[5], flv[6], flv[7], flv[8]]) as usize;
    let mut pos = header_len + 4; // PreviousTagSize0
    video.complete_len = pos.min(flv.len());
    while let Some(tag) = flv.get(pos..pos + 11) {
        let size = u32::from_be_bytes([0, tag[1], tag[2], tag[3]]) as usize;
        // Timestamp is 24 bits plus an extension byte holding bits 24..32.
        let ts = u32::from_be_bytes([tag[7], tag[4], tag[5], tag[6]]);
        let end = pos + 11 + size + 4; // tag header, body, PreviousTagSize
        if end > flv.len() {
            break;
        }
        // Tag type 9 is video; AVCPacketType (body byte 1) 1 is a coded frame, 0 the
        // sequence header and 2 the end of sequence.
        if tag[0] & 0x1f == 9 && flv.get(pos + 12) == Some(&1) {
            video.timestamps.push(ts);
        }
        pos = end;
        video.complete_len = end;
    }
    video
}

/// Chromium's fake microphone reaches both outputs as AAC, covering (nearly) the video.
pub fn check_audio(output: &str, file: &Path, video_secs: f64) {
    let audio = probe_audio(file);
    eprintln!(
        "{output} audio: ffprobe {audio:?} = {:.2} s",
        audio.seconds()
    );
    assert_eq!(
        (audio.codec.as_str(), audio.sample_rate),
        ("aac", 48_000),
        "{output} audio"
    );
    assert!(
        audio.seconds() >= video_secs * 0.8,
        "{output}: {:.2} s of audio for {video_secs:.2} s of video",
        audio.seconds()
    );
}

/// The last `lines` lines of a text file (for failure messages).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Stream `name`'s entry in `GET /api/streams` at `api`, or `None` when it is not listed.
pub async fn stream_info(
    http: &reqwest::Client,
    api: &str,
    name: &str,
) -> Option<serde_json::Value> {
    let (status, body) = http_get(http, api).await;
    assert_eq!(status, 200, "GET {api}");
    let json: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{api} is not JSON ({e}): {body:?}"));
    json["streams"]
        .as_array()
        .unwrap_or_else(|| panic!("{api} has no `streams` array: {json}"))
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
}
