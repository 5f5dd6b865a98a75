//! A real nginx (Debian's) in front of castgate as a caching edge, configured by the file the
//! README recommends (`config/nginx-castgate.conf`, addresses and cache directory replaced):
//! 40 LL-HLS clients follow the live edge through it with blocking playlist reloads and part
//! fetches, and castgate, counting what reaches it (`/api/streams` `hls_requests`), answers
//! about one request per part and per playlist update instead of one per client.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use castgate::client::PublishOptions;
use castgate::load::newest_part;
use castgate::mux::hls::strict::parse_strict;

use super::nginx::{nginx_binary, start_nginx};
use super::shared::{eventually, http_get};
use super::support::{
    finish_publish, fixture, http_client, init_tracing, output_dir, publish_live,
    require_media_tools, TestServer,
};

const CLIENTS: usize = 40;
const FOLLOW_FOR: Duration = Duration::from_secs(4);
const FIXTURE_SECONDS: u32 = 16;

/// What all clients saw, shared.
#[derive(Default)]
struct Seen {
    /// Every blocking query asked (distinct).
    queries: HashSet<String>,
    /// Part URI -> its length, as each client got it (must agree).
    parts: HashMap<String, usize>,
    requests: usize,
    mismatches: Vec<String>,
    waits_ms: Vec<u128>,
    cache_status: HashMap<String, usize>,
}

/// One LL-HLS client: follows the live edge part by part with blocking reloads, fetching each
/// new part, as hls.js does.
async fn follow(edge: String, seen: Arc<Mutex<Seen>>) {
    let http = http_client();
    let res = http
        .get(format!("{edge}/hls/ll2/index.m3u8"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("first playlist through nginx: {e:?}"));
    assert_eq!(res.status(), 200);
    let body = res.bytes().await.unwrap();
    let p = parse_strict(std::str::from_utf8(&body).unwrap()).expect("strict playlist");
    let mut at = newest_part(&p).expect("parts listed");
    let mut have: HashSet<String> = p
        .segments
        .iter()
        .flat_map(|s| s.parts.iter().map(|x| x.uri.clone()))
        .collect();
    let until = Instant::now() + FOLLOW_FOR;
    while Instant::now() < until {
        let query = format!("_HLS_msn={}&_HLS_part={}", at.msn, at.index + 1);
        let started = Instant::now();
        let res = http
            .get(format!("{edge}/hls/ll2/index.m3u8?{query}"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("blocking reload through nginx");
        assert_eq!(res.status(), 200, "{query}");
        let status = res
            .headers()
            .get("x-cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        let text = res.text().await.unwrap();
        let waited = started.elapsed().as_millis();
        let p = parse_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(p.violations(), Vec::<String>::new(), "{text}");
        let next = newest_part(&p).expect("parts listed");
        assert!(next > at, "{query} answered without a newer part:\n{text}");
        at = next;
        let new: Vec<String> = p
            .segments
            .iter()
            .flat_map(|s| s.parts.iter().map(|x| x.uri.clone()))
            .filter(|u| !have.contains(u))
            .collect();
        let mut fetched = Vec::new();
        for uri in new {
            let (status, data) = http_get(&http, &format!("{edge}/hls/ll2/{uri}")).await;
            assert_eq!(status, 200, "{uri}");
            fetched.push((uri.clone(), data.len()));
            have.insert(uri);
        }
        let mut s = seen.lock().unwrap();
        s.requests += 1 + fetched.len();
        s.queries.insert(query);
        s.waits_ms.push(waited);
        *s.cache_status.entry(status).or_default() += 1;
        for (uri, len) in fetched {
            if let Some(prev) = s.parts.insert(uri.clone(), len) {
                if prev != len {
                    s.mismatches.push(uri);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_edge_collapses_ll_hls_clients_into_one_request_per_part() {
    init_tracing();
    require_media_tools();
    // Before the fixture is made: fail at once without nginx.
    nginx_binary();
    let fixture = fixture(FIXTURE_SECONDS).await;
    let srv = TestServer::start().await;
    let session = publish_live(
        &srv,
        "ll2",
        fixture.media_source(),
        PublishOptions::default(),
    )
    .await;
    let dir = output_dir("nginx_cache");
    let nginx = start_nginx(srv.addr, &dir);
    let edge = format!("http://127.0.0.1:{}", nginx.port);
    eprintln!("nginx ({}) on {edge}", nginx.binary.display());
    let http = http_client();
    eventually(
        "nginx to proxy the playlist",
        Duration::from_secs(10),
        || async {
            let r = http
                .get(format!("{edge}/hls/ll2/master.m3u8"))
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;

    let before = srv.stream_json("ll2").await.expect("listed")["hls_requests"].clone();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(follow(edge.clone(), seen.clone())))
        .collect();
    for c in clients {
        c.await.expect("client task");
    }
    let after = srv.stream_json("ll2").await.expect("listed")["hls_requests"].clone();
    let delta = |k: &str| after[k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);

    let mut seen = std::mem::take(&mut *seen.lock().unwrap());
    seen.waits_ms.sort_unstable();
    let waits = &seen.waits_ms;
    let (p50, p95) = (waits[waits.len() / 2], waits[waits.len() * 95 / 100]);
    eprintln!(
        "nginx edge: {} client requests ({} distinct blocking queries, {} parts); castgate \
         answered {} blocking playlists and {} parts; client waits p50 {p50} ms, p95 {p95} ms; \
         cache status {:?}",
        seen.requests,
        seen.queries.len(),
        seen.parts.len(),
        delta("blocking_playlists"),
        delta("parts"),
        seen.cache_status,
    );
    assert!(
        seen.mismatches.is_empty(),
        "clients got different bytes for {:?}",
        seen.mismatches
    );
    assert!(
        seen.parts.len() >= 10,
        "the clients followed only {} parts",
        seen.parts.len()
    );
    // About one origin request per distinct query and per part (a little slack for a client
    // that asks just as a cached answer expires), where the clients made 40 times as many.
    let distinct_queries = seen.queries.len() as u64;
    let distinct_parts = seen.parts.len() as u64;
    assert!(
        delta("blocking_playlists") <= distinct_queries + distinct_queries / 4 + 2,
        "castgate answered {} blocking playlists for {distinct_queries} distinct queries",
        delta("blocking_playlists")
    );
    assert!(
        delta("parts") <= distinct_parts + distinct_parts / 4 + 2,
        "castgate served {} parts for {distinct_parts} distinct parts",
        delta("parts")
    );
    assert!(seen.requests as u64 >= 10 * (delta("blocking_playlists") + delta("parts")));
    drop(nginx);
    finish_publish(&srv, "ll2", session, FIXTURE_SECONDS).await;
    srv.shutdown().await;
}
