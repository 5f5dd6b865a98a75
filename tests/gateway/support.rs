//! Helpers shared by the gateway tests: a loopback-only server, HTTP clients (reqwest and a raw
//! HTTP/1.1 one that sends paths untouched), HLS and HTTP-FLV viewers that capture what they
//! get, bounded polling, and ffprobe.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use castgate::config::Config;
use castgate::server::Server;
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use super::shared::{eventually, ffprobe_json, http_get, probe_audio, probe_video, VideoProbe};

/// Logs go to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=debug`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The media tests need ffmpeg (fixtures) and ffprobe (checking the output); CI installs both.
pub fn require_media_tools() {
    for tool in ["ffmpeg", "ffprobe"] {
        let ok = Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "`{tool}` is required by the gateway tests but could not be run; \
             install it (Debian/Ubuntu: apt-get install ffmpeg)"
        );
    }
}

/// Where fixtures are cached between runs (Cargo's scratch dir for integration tests).
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures")
}

/// The ffmpeg test-pattern fixture of `seconds` (stereo audio), made once and cached.
pub async fn fixture(seconds: u32) -> castgate::client::Fixture {
    tokio::task::spawn_blocking(move || castgate::client::generate_fixture(&fixture_dir(), seconds))
        .await
        .expect("fixture task")
        .expect("ffmpeg makes the fixture")
}

/// [`fixture`] at another picture size.
pub async fn fixture_sized(seconds: u32, size: (u32, u32)) -> castgate::client::Fixture {
    tokio::task::spawn_blocking(move || {
        castgate::client::generate_fixture_sized(&fixture_dir(), seconds, size)
    })
    .await
    .expect("fixture task")
    .expect("ffmpeg makes the fixture")
}

/// A fresh scratch directory for one test's output files (kept for inspection after a failure).
pub fn output_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("gateway-output")
        .join(format!("{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create output dir");
    dir
}

/// Defaults, except: loopback only (HTTP on an ephemeral port, ICE on 127.0.0.1) and 1 s HLS
/// segments so a few seconds of media make several of them.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.http.listen = "127.0.0.1:0".parse().expect("loopback addr");
    config.webrtc.interfaces = vec!["127.0.0.1".parse().expect("loopback ip")];
    // One ephemeral shared port per gateway: tests run side by side.
    config.webrtc.udp_port = 0;
    config.hls.segment_duration_secs = 1.0;
    config
}

/// An HTTP client that never goes through a proxy (the tests only talk to 127.0.0.1).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("build reqwest client")
}

pub struct TestServer {
    server: Server,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(test_config()).await
    }

    pub async fn start_with(config: Config) -> TestServer {
        let server = castgate::server::start(config)
            .await
            .expect("castgate server starts");
        let addr = server.http_addr();
        assert!(addr.ip().is_loopback(), "server bound {addr}, not loopback");
        TestServer {
            server,
            addr,
            http: http_client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GET `path` (short timeout), returning status and body.
    pub async fn get(&self, path: &str) -> (u16, bytes::Bytes) {
        http_get(&self.http, &self.url(path)).await
    }

    /// The `state` of stream `name` in `GET /api/streams`, or `None` if it is not listed.
    pub async fn stream_state(&self, name: &str) -> Option<String> {
        self.stream_json(name)
            .await
            .map(|s| s["state"].as_str().unwrap_or("").to_string())
    }

    /// Stream `name` as `GET /api/streams` lists it, or `None` if it is not listed.
    pub async fn stream_json(&self, name: &str) -> Option<serde_json::Value> {
        let (status, body) = self.get("/api/streams").await;
        assert_eq!(status, 200, "GET /api/streams");
        let mut json: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("/api/streams is not JSON ({e}): {body:?}"));
        let streams = json["streams"]
            .as_array_mut()
            .unwrap_or_else(|| panic!("/api/streams has no `streams` array"));
        let i = streams.iter().position(|s| s["name"] == name)?;
        Some(streams.swap_remove(i))
    }

    pub async fn shutdown(self) {
        tokio::time::timeout(Duration::from_secs(10), self.server.shutdown())
            .await
            .expect("server shuts down within 10 s");
    }
}

/// A response read by [`raw_request`]: the status and the header block.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
}

/// Sends one HTTP/1.1 request with `target` written exactly as given (no normalisation of
/// `..` or percent-escapes, unlike URL libraries), and reads the status line and headers.
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let mut request =
            format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PATCH" | "PUT") {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        // A server may answer (413) and close before reading a large body; that is fine.
        let _ = stream.write_all(body).await;
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the end of the header block (or EOF): only the head is needed.
        while !response.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {target}: no response within 10 s"))
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
    let text = String::from_utf8_lossy(&response);
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {target}: not an HTTP response: {head:?}"));
    RawResponse { status, head }
}

/// `key_frame` of every decoded video frame of `file`, in order.
pub fn video_key_frames(file: &Path) -> Vec<bool> {
    let json = ffprobe_json(
        &["-select_streams", "v:0", "-show_entries", "frame=key_frame"],
        file,
    );
    json["frames"]
        .as_array()
        .map(|frames| {
            frames
                .iter()
                .map(|f| f["key_frame"].as_i64() == Some(1))
                .collect()
        })
        .unwrap_or_default()
}

/// `(address, port)` of every UDP candidate in an SDP (or fragment).
pub fn candidates(sdp: &str) -> Vec<(String, u16)> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .map(|c| c.split_whitespace().collect::<Vec<&str>>())
        .filter(|f| f[2].eq_ignore_ascii_case("udp"))
        .map(|f| (f[4].to_string(), f[5].parse().expect("candidate port")))
        .collect()
}

/// The network rule of these tests: every ICE candidate in `sdp` is a plain 127.0.0.1 host
/// candidate (no other interface, no mDNS name, no server-reflexive address), and there is one.
pub fn assert_loopback_candidates(what: &str, sdp: &str) {
    let candidates: Vec<&str> = sdp
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(
        !candidates.is_empty(),
        "{what} has no ICE candidate:\n{sdp}"
    );
    for c in &candidates {
        // candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type>
        let fields: Vec<&str> = c.split_whitespace().collect();
        assert!(
            fields.get(4) == Some(&"127.0.0.1") && fields.get(7) == Some(&"host"),
            "{what} has a candidate that is not a loopback host candidate: {c}"
        );
    }
}

// ---- Viewers: an HLS client polling the live playlist and an HTTP-FLV client ----

/// Upper bound for anything the viewers wait on; the test must never hang.
pub const VIEWER_DEADLINE: Duration = Duration::from_secs(60);

/// What an HLS client polling the live playlist collected.
#[derive(Debug, Default)]
pub struct HlsCapture {
    /// The last playlist text seen.
    pub playlist: String,
    pub init: Option<Bytes>,
    /// Media sequence number and bytes of every segment fetched, in order.
    pub segments: Vec<(u64, String, Bytes)>,
    /// Things that went wrong while polling (non-200s, gaps, deadline).
    pub problems: Vec<String>,
}

/// Polls the playlist every 200 ms, fetching the init segment once and every new media
/// segment, until `#EXT-X-ENDLIST` appears or the deadline passes.
pub async fn capture_hls(http: reqwest::Client, playlist_url: String) -> HlsCapture {
    let mut cap = HlsCapture::default();
    let base = Url::parse(&playlist_url).expect("playlist URL");
    let deadline = tokio::time::Instant::now() + VIEWER_DEADLINE;
    let mut next_seq: Option<u64> = None;
    loop {
        if tokio::time::Instant::now() > deadline {
            cap.problems
                .push("no #EXT-X-ENDLIST before the deadline".into());
            return cap;
        }
        let (status, body) = fetch(&http, base.as_str()).await;
        if status != 200 {
            // Before the first segment is cut the playlist may not exist yet.
            if next_seq.is_some() {
                cap.problems.push(format!("playlist answered {status}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        cap.playlist = String::from_utf8_lossy(&body).into_owned();
        let playlist = match m3u8_rs::parse_media_playlist_res(&body) {
            Ok(p) => p,
            Err(e) => {
                cap.problems
                    .push(format!("unparsable playlist ({e:?}): {}", cap.playlist));
                return cap;
            }
        };
        for (i, segment) in playlist.segments.iter().enumerate() {
            let seq = playlist.media_sequence + i as u64;
            if cap.init.is_none() {
                if let Some(map) = &segment.map {
                    let url = base.join(&map.uri).expect("init URI");
                    let (status, bytes) = fetch(&http, url.as_str()).await;
                    if status == 200 {
                        cap.init = Some(bytes);
                    } else {
                        cap.problems
                            .push(format!("init {} answered {status}", map.uri));
                    }
                }
            }
            if next_seq.is_some_and(|n| seq < n) {
                continue;
            }
            if let Some(n) = next_seq.filter(|&n| seq > n) {
                cap.problems
                    .push(format!("segments {n}..{seq} were never seen"));
            }
            let url = base.join(&segment.uri).expect("segment URI");
            let (status, bytes) = fetch(&http, url.as_str()).await;
            if status == 200 {
                cap.segments.push((seq, segment.uri.clone(), bytes));
            } else {
                cap.problems
                    .push(format!("segment {} answered {status}", segment.uri));
            }
            next_seq = Some(seq + 1);
        }
        if playlist.end_list {
            return cap;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> (u16, Bytes) {
    match http.get(url).timeout(Duration::from_secs(10)).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.bytes().await.unwrap_or_default())
        }
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// What an HTTP-FLV viewer received.
#[derive(Debug, Default)]
pub struct FlvCapture {
    pub status: u16,
    pub content_type: String,
    pub bytes: Vec<u8>,
    /// The server ended the response (as it should when the stream ends).
    pub ended: bool,
    pub error: Option<String>,
}

pub async fn capture_flv(http: reqwest::Client, url: String) -> FlvCapture {
    let mut cap = FlvCapture::default();
    let read = async {
        let mut response = match http.get(&url).send().await {
            Ok(r) => r,
            Err(e) => {
                cap.error = Some(e.to_string());
                return;
            }
        };
        cap.status = response.status().as_u16();
        cap.content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => cap.bytes.extend_from_slice(&chunk),
                Ok(None) => {
                    cap.ended = true;
                    return;
                }
                Err(e) => {
                    cap.error = Some(e.to_string());
                    return;
                }
            }
        }
    };
    if tokio::time::timeout(VIEWER_DEADLINE, read).await.is_err() {
        cap.error = Some("response still open at the deadline".into());
    }
    cap
}

/// Writes `parts` one after the other into `path` (e.g. an init segment and media segments).
pub fn write(path: &Path, parts: &[&[u8]]) {
    let data: Vec<u8> = parts.concat();
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A live publish with an HLS poller and an HTTP-FLV viewer started on it.
pub struct Watched {
    pub session: castgate::client::PublishSession,
    pub flv: tokio::task::JoinHandle<FlvCapture>,
    pub hls: tokio::task::JoinHandle<HlsCapture>,
}

/// Publishes `source` to `/whip/{name}`, waits until it is connected and live, and starts both
/// viewers at once, inside the first GOP: the FLV GOP cache starts them at frame 0 and the HLS
/// window still holds the first segment.
pub async fn publish_and_watch(
    srv: &TestServer,
    name: &str,
    source: castgate::client::MediaSource,
) -> Watched {
    publish_and_watch_with(
        srv,
        name,
        source,
        castgate::client::PublishOptions::default(),
    )
    .await
}

/// [`publish_and_watch`] with publisher options (its HTTP client is the tests' own).
pub async fn publish_and_watch_with(
    srv: &TestServer,
    name: &str,
    source: castgate::client::MediaSource,
    opts: castgate::client::PublishOptions,
) -> Watched {
    let session = publish_live(srv, name, source, opts).await;
    let flv = tokio::spawn(capture_flv(
        srv.http.clone(),
        srv.url(&format!("/flv/{name}.flv")),
    ));
    let hls = tokio::spawn(capture_hls(
        srv.http.clone(),
        srv.url(&format!("/hls/{name}/index.m3u8")),
    ));
    Watched { session, flv, hls }
}

/// Publishes `source` to `/whip/{name}` with `opts` (its HTTP client is the tests' own) and
/// waits until it is connected and live.
pub async fn publish_live(
    srv: &TestServer,
    name: &str,
    source: castgate::client::MediaSource,
    opts: castgate::client::PublishOptions,
) -> castgate::client::PublishSession {
    let opts = castgate::client::PublishOptions {
        http: Some(http_client()),
        ..opts
    };
    let mut session =
        castgate::client::publish(&srv.url(&format!("/whip/{name}")), None, source, opts)
            .await
            .expect("WHIP publish is accepted");
    session
        .wait_connected(Duration::from_secs(10))
        .await
        .expect("ICE + DTLS connect over loopback");
    eventually(
        &format!("stream {name} to be live in /api/streams"),
        Duration::from_secs(10),
        || async { srv.stream_state(name).await.filter(|s| s == "live") },
    )
    .await;
    session
}

/// Waits for `session` to send its whole source (`seconds` long, sent in real time), lets the
/// last packets clear the gateway's reorder buffer, ends the publish with a WHIP DELETE and
/// waits for the stream to leave /api/streams. Returns what the publisher sent.
pub async fn finish_publish(
    srv: &TestServer,
    name: &str,
    mut session: castgate::client::PublishSession,
    seconds: u32,
) -> castgate::client::SendStats {
    let limit = Duration::from_secs(u64::from(seconds) + 15);
    let sent = tokio::time::timeout(limit, session.finished())
        .await
        .expect("publisher finishes the fixture in real time")
        .expect("publisher sends without error");
    tokio::time::sleep(Duration::from_millis(500)).await;
    session
        .stop()
        .await
        .expect("DELETE of the WHIP session succeeds");
    eventually(
        &format!("stream {name} to leave /api/streams"),
        Duration::from_secs(10),
        || async { srv.stream_state(name).await.is_none().then_some(()) },
    )
    .await;
    sent
}

/// Checks the HLS poller saw no problems and writes its init segment and media segments, in
/// order, to `out/hls-all.mp4` (one playable file); returns that path.
pub fn write_hls_file(hls: &HlsCapture, out: &Path) -> PathBuf {
    assert!(hls.problems.is_empty(), "HLS problems: {:?}", hls.problems);
    let init = hls.init.clone().expect("playlist names an init segment");
    let mut whole: Vec<&[u8]> = vec![&init[..]];
    whole.extend(hls.segments.iter().map(|(_, _, b)| &b[..]));
    let hls_file = out.join("hls-all.mp4");
    write(&hls_file, &whole);
    hls_file
}

/// Waits (bounded) for both viewers to reach the end of the stream and returns what they got.
pub async fn finish_viewers(
    hls: tokio::task::JoinHandle<HlsCapture>,
    flv: tokio::task::JoinHandle<FlvCapture>,
) -> (HlsCapture, FlvCapture) {
    let hls = tokio::time::timeout(VIEWER_DEADLINE, hls)
        .await
        .expect("HLS poller finishes")
        .expect("HLS poller task");
    let flv = tokio::time::timeout(VIEWER_DEADLINE, flv)
        .await
        .expect("FLV viewer finishes")
        .expect("FLV viewer task");
    (hls, flv)
}

/// What ffprobe should find in an output that carries every frame of `fixture` that was sent.
pub fn expected_video(fixture: &castgate::client::Fixture, frames: u64) -> VideoProbe {
    VideoProbe {
        codec: "h264".into(),
        width: u64::from(fixture.width),
        height: u64::from(fixture.height),
        frames,
    }
}

/// What `ffmpeg -v error` says while decoding all of `file` (empty: no decode error).
pub fn decode_errors(file: &Path) -> String {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Checks that the publisher sent all of `fixture` (`seconds` long) and that both outputs of
/// stream `name` hold every frame it sent, decode with no ffmpeg error, and carry its audio as
/// AAC for about as long. The files go to the test's output directory.
pub fn assert_both_outputs_whole(
    fixture: &castgate::client::Fixture,
    sent: &castgate::client::SendStats,
    (hls, flv): (&HlsCapture, &FlvCapture),
    name: &str,
    seconds: u32,
) {
    assert_eq!(sent.video_frames, fixture.video_frames as u64, "{name}");
    let out = output_dir(name);
    assert_eq!(flv.status, 200, "{name}: FLV error {:?}", flv.error);
    let flv_file = out.join(format!("{name}.flv"));
    write(&flv_file, &[&flv.bytes]);
    let hls_file = write_hls_file(hls, &out);
    for file in [&flv_file, &hls_file] {
        assert_eq!(
            probe_video(file),
            expected_video(fixture, sent.video_frames),
            "every frame sent ({})",
            file.display()
        );
        assert_eq!(decode_errors(file), "", "{}", file.display());
        let audio = probe_audio(file);
        assert_eq!(audio.codec, "aac", "{}: {audio:?}", file.display());
        assert!(
            audio.seconds() > f64::from(seconds) - 1.0,
            "{}: audio all along: {audio:?}",
            file.display()
        );
    }
}
