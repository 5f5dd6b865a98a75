//! Chromium publishing a 1280x720 fake camera as a real web app would, read back by strict
//! clients. Two ways it used to go wrong (issue 18):
//! - with simulcast (`sendEncodings` q, h, f), all three layers ended up interleaved in one
//!   rendition: HLS cut into 50 ms segments, each with a new init;
//! - with WebRTC's default `balanced` degradation, the encoder starts small and steps the
//!   resolution up over ~10 s; `ffmpeg -i` on the live playlist kept the first init's avcC and
//!   corrupted every picture after a step.
//!
//! Both runs have ffmpeg read the live HLS playlist from the first segment to `#EXT-X-ENDLIST`
//! and require zero decode errors; the playlist is polled throughout to see how it was cut.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::live_read::{ffmpeg_read_live, LiveRead};
use crate::shared;
use crate::support::{self, Namespace, PageServer};

const STREAM: &str = "camera";

/// How the page publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publish {
    /// Three simulcast layers, the resolution held (`maintain-resolution`).
    Simulcast,
    /// One layer with Chromium's own `balanced` degradation: the start-up ramp.
    Ramp,
    /// One layer, with every UDP datagram between the namespace's addresses dropped (an
    /// nftables rule in the test's namespace, as a firewall that lets no UDP out): Chromium
    /// must reach the gateway over ICE-TCP.
    UdpBlocked,
}

impl Publish {
    fn query(self) -> &'static str {
        match self {
            Publish::Simulcast => "&simulcast=1&degradation=maintain-resolution",
            Publish::Ramp => "&degradation=balanced",
            Publish::UdpBlocked => "&degradation=maintain-resolution",
        }
    }

    /// Long enough for the ramp to reach 720p (~10 s) with time to spare.
    fn seconds(self) -> u64 {
        match self {
            Publish::Simulcast => 10,
            Publish::Ramp => 18,
            Publish::UdpBlocked => 8,
        }
    }
}

/// One media segment as the live playlists listed it.
#[derive(Debug, Clone)]
struct Listed {
    sequence: u64,
    duration: f64,
    discontinuity: bool,
}

/// Drops every UDP datagram sent to the namespace's veth addresses (10.213.0.0/30): only this
/// test's namespace has the rule, and it goes with the namespace. Loopback is untouched.
fn block_udp_in_namespace() {
    let ruleset = "table inet castgate_test {\n\
         chain out {\n\
           type filter hook output priority 0; policy accept;\n\
           ip daddr 10.213.0.0/30 meta l4proto udp drop\n\
         }\n\
       }\n";
    let mut nft = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nft (Debian package nftables; scripts/test.sh installs it) must run");
    use std::io::Write;
    nft.stdin
        .take()
        .expect("nft stdin")
        .write_all(ruleset.as_bytes())
        .expect("write the nftables rules");
    let status = nft.wait().expect("nft");
    assert!(status.success(), "nft refused the rules: {status}");
}

pub async fn run(ns: Namespace, out: &Path, publish: Publish) {
    if publish == Publish::UdpBlocked {
        assert!(
            std::env::var_os("NETNS_NAME").is_some(),
            "UDP is blocked only inside the test's own network namespace"
        );
        block_udp_in_namespace();
    }
    let server = castgate::server::start(support::gateway_config(&ns))
        .await
        .expect("castgate server starts");
    let gateway = server.http_addr();
    let page = PageServer::start().await;
    let url = format!(
        "http://{}/publish.html?gateway=http://{gateway}&stream={STREAM}&seconds={}\
         &width=1280&height=720{}",
        page.addr,
        publish.seconds(),
        publish.query()
    );
    let log = out.join("chromium-stderr.log");
    let profile = out.join("chromium-profile");
    let mut chromium = support::launch_chromium(&ns.chromium, &profile, &log, &url);
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client");
    let api = format!("http://{gateway}/api/streams");
    let playlist = format!("http://{gateway}/hls/{STREAM}/index.m3u8");

    let started = Instant::now();
    shared::eventually("the first HLS segment", Duration::from_secs(20), || async {
        if let Some(error) = page.last("error") {
            panic!("the publisher page failed: {}", error.detail);
        }
        let (status, _) = shared::http_get(&http, &playlist).await;
        (status == 200).then_some(())
    })
    .await;
    eprintln!(
        "first segment {:.1} s after launching chromium",
        started.elapsed().as_secs_f64()
    );
    let limit = Duration::from_secs(publish.seconds() + 30);
    let ffmpeg = tokio::spawn({
        let playlist = playlist.clone();
        async move { ffmpeg_read_live(&playlist, limit).await }
    });
    let listing = tokio::spawn(list_segments(http.clone(), playlist.clone(), limit));

    // While live: what the gateway says of the stream.
    let info = shared::eventually("the stream in /api/streams", Duration::from_secs(5), || {
        let (http, api) = (http.clone(), api.clone());
        async move { support::stream_info(&http, &api, STREAM).await }
    })
    .await;
    eprintln!("live: {info}");
    if publish == Publish::Simulcast {
        check_simulcast_answer(&page, &info);
    }
    if publish == Publish::UdpBlocked {
        // The page's selected candidate pair is a TCP one.
        let stats =
            shared::eventually("the page's candidate pair", Duration::from_secs(10), || {
                let pair = page
                    .last("stats")
                    .filter(|s| s.detail.contains("pair "))
                    .map(|s| s.detail);
                async move { pair }
            })
            .await;
        assert!(stats.contains("pair tcp "), "not over ICE-TCP: {stats}");
    }

    let read = ffmpeg.await.expect("ffmpeg task");
    let listed = listing.await.expect("playlist task");
    let simulcast_after = stream_after_end(&page, &http, &api).await;
    assert!(chromium.running(), "chromium exited; see {}", log.display());
    drop(chromium);
    let _ = std::fs::write(out.join("ffmpeg.log"), &read.stderr);
    eprintln!(
        "ffmpeg read {} frames, sizes {:?}, {} errors, exit {:?}; playlist: {}",
        read.sizes.len(),
        read.size_runs(),
        read.decode_errors.len(),
        read.status,
        describe(&listed)
    );
    check_read(&read, &listed, publish);
    if let Some(dropped) = simulcast_after {
        // Chromium honours the answer: the other layers are not even sent.
        assert_eq!(dropped, 0, "packets of unaccepted layers arrived");
    }
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("gateway shuts down within 10 s");
    let _ = std::fs::remove_dir_all(&profile);
}

/// The answer took the full layer alone, the browser dropped the other two, and the gateway
/// receives `f`.
fn check_simulcast_answer(page: &PageServer, info: &serde_json::Value) {
    let offer = page.last("offer-sdp").expect("the page reported its offer");
    assert!(
        offer.detail.contains("a=simulcast:send q;h;f"),
        "Chromium offers three layers:\n{}",
        offer.detail
    );
    let answer = page
        .last("answer-sdp")
        .expect("the page reported the answer");
    assert_eq!(
        castgate::client::accepted_layers(&answer.detail),
        Some(vec!["f".to_string()]),
        "{}",
        answer.detail
    );
    let encodings = page
        .last("encodings")
        .expect("the page reported its encodings");
    // Chromium removes the encodings the answer left out (RFC 8853 §5.3).
    assert_eq!(encodings.detail, "f:active");
    assert_eq!(info["simulcast"]["received"], "f", "{info}");
}

/// The stream's dropped simulcast packets just before the page's DELETE ended it (`None`
/// without simulcast), waiting for the page to finish.
async fn stream_after_end(page: &PageServer, http: &reqwest::Client, api: &str) -> Option<u64> {
    let mut dropped = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while page.last("done").is_none() && Instant::now() < deadline {
        if let Some(info) = support::stream_info(http, api, STREAM).await {
            dropped = info["simulcast"]["dropped_packets"].as_u64();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let done = page.last("done").expect("the page ended its publish");
    assert!(
        done.detail.starts_with('2'),
        "DELETE answered {}",
        done.detail
    );
    dropped
}

fn check_read(read: &LiveRead, listed: &[Listed], publish: Publish) {
    assert_eq!(read.status, Some(0), "ffmpeg did not read to the end");
    assert!(
        read.decode_errors.is_empty(),
        "ffmpeg reported {} damaged pictures reading the live playlist, first: {:?}",
        read.decode_errors.len(),
        &read.decode_errors[..read.decode_errors.len().min(5)]
    );
    if !read.errors.is_empty() {
        eprintln!("NOTICE: ffmpeg logged other errors: {:?}", read.errors);
    }
    let runs = read.size_runs();
    // At 30 fps for most of the publish (the encoder may drop frames on two busy cores).
    let min_frames = publish.seconds() * 10;
    assert!(
        read.sizes.len() as u64 >= min_frames,
        "ffmpeg decoded {} frames, expected at least {min_frames}",
        read.sizes.len()
    );
    let changes = listed.iter().filter(|s| s.discontinuity).count();
    match publish {
        Publish::Simulcast => {
            // One rendition: a handful of size steps at most (none with maintain-resolution
            // once Chromium settles), never the layers alternating.
            assert!(
                runs.len() <= 3 && changes <= 2,
                "the picture size changed {} times: {runs:?}",
                runs.len() - 1,
            );
            let last = runs.last().expect("frames");
            assert_eq!((last.0, last.1), (1280, 720), "{runs:?}");
        }
        Publish::Ramp => {
            assert!(
                runs.len() >= 2,
                "Chromium's encoder did not change resolution ({runs:?}): nothing was tested",
            );
        }
        Publish::UdpBlocked => {
            let last = runs.last().expect("frames");
            assert_eq!((last.0, last.1), (1280, 720), "{runs:?}");
        }
    }
    // Segments of about the target length (1 s; the gateway asks for the keyframe that ends
    // one a little ahead), except where a size change cut one short (and the last).
    let (_, whole) = listed.split_last().expect("segments were listed");
    let short = whole.iter().filter(|s| s.duration < 0.75).count();
    assert!(
        short <= changes + 1,
        "{short} segments shorter than 0.75 s for {changes} size changes: {}",
        describe(listed)
    );
}

fn describe(listed: &[Listed]) -> String {
    listed
        .iter()
        .map(|s| {
            format!(
                "{}{}:{:.2}",
                if s.discontinuity { "|" } else { "" },
                s.sequence,
                s.duration
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Polls the playlist until `#EXT-X-ENDLIST` (or `limit`), noting every segment once.
async fn list_segments(http: reqwest::Client, url: String, limit: Duration) -> Vec<Listed> {
    let deadline = Instant::now() + limit;
    let mut listed: Vec<Listed> = Vec::new();
    while Instant::now() < deadline {
        let (status, body) = shared::http_get(&http, &url).await;
        if status == 200 {
            let playlist = m3u8_rs::parse_media_playlist_res(&body).unwrap_or_else(|e| {
                panic!(
                    "playlist does not parse ({e:?}): {}",
                    String::from_utf8_lossy(&body)
                )
            });
            for (i, segment) in playlist.segments.iter().enumerate() {
                let sequence = playlist.media_sequence + i as u64;
                if listed.last().is_none_or(|l| sequence > l.sequence) {
                    listed.push(Listed {
                        sequence,
                        duration: f64::from(segment.duration),
                        discontinuity: segment.discontinuity,
                    });
                }
            }
            if playlist.end_list {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    listed
}
