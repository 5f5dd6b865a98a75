//! The gateway's `GET /api/streams`, as the load tool uses it: to wait until streams are live,
//! to read the latency the gateway says it added, and to count the HLS requests it answered.

use std::sync::Arc;
use std::time::Duration;

use super::config::LoadConfig;
use super::publisher::PublisherStats;
use super::report::{AddedLatency, GatewayLatency};
use super::serving_report::HlsRequests;
use super::RunClock;

/// Polls `GET /api/streams` until every connected publisher's stream is listed as live (every
/// stream, when someone else publishes them: those are marked connected once live, and failed
/// if they are not live by `deadline`).
pub(super) async fn wait_live(
    http: &reqwest::Client,
    cfg: &LoadConfig,
    publishers: &[Arc<PublisherStats>],
    clock: RunClock,
    deadline: tokio::time::Instant,
) {
    loop {
        if tokio::time::Instant::now() >= deadline {
            if !cfg.start_publishers {
                for p in publishers.iter().filter(|p| !p.connected()) {
                    p.fail(format!("stream {} was not live in time", p.stream));
                }
            }
            return;
        }
        let live: Vec<String> = streams_json(http, cfg)
            .await
            .and_then(|json| {
                json["streams"].as_array().map(|a| {
                    a.iter()
                        .filter(|s| s["state"] == "live")
                        .filter_map(|s| s["name"].as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default();
        if !cfg.start_publishers {
            for p in publishers.iter().filter(|p| live.contains(&p.stream)) {
                p.mark_connected(clock.ms());
            }
        }
        if publishers
            .iter()
            .filter(|p| p.connected() || !cfg.start_publishers)
            .all(|p| live.contains(&p.stream))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET /api/streams` as JSON, or `None` on any error.
async fn streams_json(http: &reqwest::Client, cfg: &LoadConfig) -> Option<serde_json::Value> {
    let r = http
        .get(cfg.url("/api/streams"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    serde_json::from_slice(&r.bytes().await.ok()?).ok()
}

/// The gateway-added latency of `streams` (see [`GatewayLatency`]); `None` when the gateway
/// does not report it (an older build) or cannot be asked.
pub(super) async fn gateway_latency(
    http: &reqwest::Client,
    cfg: &LoadConfig,
    streams: &[String],
) -> Option<GatewayLatency> {
    latency_of(&streams_json(http, cfg).await?, streams)
}

/// The HLS requests the gateway answered for `streams` (`hls_requests`, summed); `None`
/// when it does not report them or cannot be asked.
pub(super) async fn hls_requests(
    http: &reqwest::Client,
    cfg: &LoadConfig,
    streams: &[String],
) -> Option<HlsRequests> {
    hls_requests_of(&streams_json(http, cfg).await?, streams)
}

fn hls_requests_of(json: &serde_json::Value, streams: &[String]) -> Option<HlsRequests> {
    let mut out = HlsRequests::default();
    let mut reported = false;
    for s in json["streams"].as_array()? {
        let ours = s["name"]
            .as_str()
            .is_some_and(|n| streams.iter().any(|m| m == n));
        let r = &s["hls_requests"];
        if !ours || !r.is_object() {
            continue;
        }
        if let Ok(counts) = serde_json::from_value::<HlsRequests>(r.clone()) {
            reported = true;
            out = out.plus(&counts);
        }
    }
    reported.then_some(out)
}

fn latency_of(json: &serde_json::Value, streams: &[String]) -> Option<GatewayLatency> {
    let mut out = GatewayLatency::default();
    let mut reported = false;
    for s in json["streams"].as_array()? {
        if !s["name"]
            .as_str()
            .is_some_and(|n| streams.iter().any(|m| m == n))
        {
            continue;
        }
        let latency = &s["latency"];
        if latency.is_null() {
            continue;
        }
        reported = true;
        let add = |into: &mut AddedLatency, key: &str| {
            let h = &latency[key];
            let v = |f: &str| h[f].as_u64().unwrap_or(0);
            into.add_stream(v("count"), v("p50_us"), v("p99_us"), v("max_us"));
        };
        add(&mut out.video_flv, "video_flv");
        add(&mut out.video_hls, "video_hls");
        add(&mut out.audio_flv, "audio_flv");
    }
    reported.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_combined_over_the_runs_streams_only() {
        let json = serde_json::json!({"streams": [
            {"name": "load0", "latency": {
                "video_flv": {"count": 300, "p50_us": 95, "p99_us": 1023, "max_us": 2100},
                "video_hls": {"count": 5, "p50_us": 700, "p99_us": 900, "max_us": 900},
                "audio_flv": {"count": 0, "p50_us": 0, "p99_us": 0, "max_us": 0}}},
            {"name": "load1", "latency": {
                "video_flv": {"count": 200, "p50_us": 120, "p99_us": 511, "max_us": 600}}},
            {"name": "other", "latency": {
                "video_flv": {"count": 9, "p50_us": 99999, "p99_us": 99999, "max_us": 99999}}}
        ]});
        let streams = vec!["load0".to_string(), "load1".to_string()];
        let got = latency_of(&json, &streams).unwrap();
        assert_eq!(
            got.video_flv,
            AddedLatency {
                streams: 2,
                count: 500,
                worst_p50_us: 120,
                worst_p99_us: 1023,
                max_us: 2100
            }
        );
        assert_eq!((got.video_hls.streams, got.video_hls.count), (1, 5));
        assert_eq!(got.audio_flv, AddedLatency::default());
        // A gateway without the field says nothing.
        let old = serde_json::json!({"streams": [{"name": "load0", "state": "live"}]});
        assert_eq!(latency_of(&old, &streams), None);
        assert_eq!(hls_requests_of(&old, &streams), None);
    }

    #[test]
    fn hls_requests_are_summed_over_the_runs_streams() {
        let json = serde_json::json!({"streams": [
            {"name": "load0", "hls_requests": {"playlists": 1, "blocking_playlists": 500,
                "multivariant": 0, "parts": 480, "segments": 2, "inits": 10}},
            {"name": "load1", "hls_requests": {"blocking_playlists": 5, "parts": 4}},
            {"name": "other", "hls_requests": {"blocking_playlists": 999}}
        ]});
        let streams = vec!["load0".to_string(), "load1".to_string()];
        let got = hls_requests_of(&json, &streams).unwrap();
        assert_eq!(
            got,
            HlsRequests {
                playlists: 1,
                blocking_playlists: 505,
                multivariant: 0,
                parts: 484,
                segments: 2,
                inits: 10
            }
        );
        assert_eq!(got.minus(&got), HlsRequests::default());
    }
}
