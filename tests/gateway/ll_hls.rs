//! Low-Latency HLS from a real publish (in-repo WHIP client, H.264 + Opus -> AAC): the live
//! playlist keeps every LL rule (strict reader), blocking requests for the next part are
//! answered as parts complete, the hinted part is served whole, every part marked independent
//! starts with a keyframe (ffprobe), and the multivariant playlist describes the rendition.

use std::time::{Duration, Instant};

use castgate::client::PublishOptions;
use castgate::load::newest_part;
use castgate::mux::hls::strict::{parse_strict, StrictPlaylist};

use super::shared::{eventually, ffprobe_json};
use super::support::{
    finish_publish, fixture, init_tracing, output_dir, publish_live, require_media_tools, write,
    TestServer,
};

const FIXTURE_SECONDS: u32 = 8;
/// The default part target.
const PART: Duration = Duration::from_millis(200);

async fn playlist(srv: &TestServer, query: &str) -> (StrictPlaylist, Duration) {
    let started = Instant::now();
    let (status, body) = srv.get(&format!("/hls/ll/index.m3u8{query}")).await;
    let took = started.elapsed();
    let text = String::from_utf8(body.to_vec()).expect("UTF-8 playlist");
    assert_eq!(status, 200, "index.m3u8{query}: {text}");
    let p = parse_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(p.violations(), Vec::<String>::new(), "{text}");
    (p, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ll_hls_parts_block_and_describe_themselves_on_a_real_publish() {
    init_tracing();
    require_media_tools();
    let fixture = fixture(FIXTURE_SECONDS).await;
    let srv = TestServer::start().await;
    let session = publish_live(
        &srv,
        "ll",
        fixture.media_source(),
        PublishOptions::default(),
    )
    .await;

    eventually("the first LL playlist", Duration::from_secs(10), || async {
        (srv.get("/hls/ll/index.m3u8").await.0 == 200).then_some(())
    })
    .await;
    let (first, _) = playlist(&srv, "").await;
    assert_eq!(first.part_target, Some(0.2));
    assert!(first.preload_hint.is_some());

    // Follow the live edge part by part with blocking requests, as hls.js does.
    let mut at = newest_part(&first).expect("a segment with parts");
    let mut waits = Vec::new();
    for _ in 0..15 {
        let query = format!("?_HLS_msn={}&_HLS_part={}", at.msn, at.index + 1);
        let (p, took) = playlist(&srv, &query).await;
        let next = newest_part(&p).expect("a segment with parts");
        assert!(
            next > at,
            "the answer holds a newer part: {next:?} after {at:?}"
        );
        at = next;
        waits.push(took);
    }
    waits.sort();
    let median = waits[waits.len() / 2];
    let worst = *waits.last().unwrap();
    // A part completes about every 200 ms, so a request for the next one waits less than a
    // part on average and never much more than one (a poller would wait its poll interval).
    assert!(
        median <= PART + Duration::from_millis(60),
        "median wait {median:?} ({waits:?})"
    );
    assert!(
        worst <= 2 * PART + Duration::from_millis(150),
        "worst wait {worst:?} ({waits:?})"
    );

    // The hinted part, requested before it exists, comes whole once complete.
    let (p, _) = playlist(&srv, "").await;
    let hint = p.preload_hint.clone().expect("preload hint");
    let started = Instant::now();
    let (status, body) = srv.get(&format!("/hls/ll/{hint}")).await;
    assert_eq!(status, 200);
    assert!(!body.is_empty());
    assert!(started.elapsed() <= 2 * PART + Duration::from_millis(150));
    let (after, _) = playlist(&srv, "").await;
    let listed = after
        .segments
        .iter()
        .flat_map(|s| s.parts.iter())
        .any(|x| x.uri == hint);
    assert!(listed, "{hint} is listed once served");

    // Too far ahead: 400 at once.
    let (status, _) = srv
        .get(&format!("/hls/ll/index.m3u8?_HLS_msn={}", at.msn + 5))
        .await;
    assert_eq!(status, 400);

    // The multivariant playlist describes the rendition from its SPS and audio codec.
    let (status, master) = srv.get("/hls/ll/master.m3u8").await;
    assert_eq!(status, 200);
    let master = match m3u8_rs::parse_playlist_res(&master) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => m,
        other => panic!("master.m3u8: {other:?}"),
    };
    let v = &master.variants[0];
    assert_eq!(v.uri, "index.m3u8");
    let codecs = v.codecs.clone().unwrap_or_default();
    assert!(
        codecs.starts_with("avc1.") && codecs.ends_with(",mp4a.40.2"),
        "{codecs}"
    );
    let r = v.resolution.expect("RESOLUTION");
    assert_eq!(
        (r.width, r.height),
        (u64::from(fixture.width), u64::from(fixture.height))
    );
    assert!(v.bandwidth >= v.average_bandwidth.unwrap_or(0) && v.bandwidth > 100_000);

    // Every part marked independent starts with a keyframe, every other with a non-keyframe.
    let (p, _) = playlist(&srv, "").await;
    let out = output_dir("ll_hls");
    let mut checked = 0;
    for seg in &p.segments {
        let map = seg
            .map
            .clone()
            .or_else(|| p.segments[0].map.clone())
            .expect("EXT-X-MAP");
        let (_, init) = srv.get(&format!("/hls/ll/{map}")).await;
        for part in &seg.parts {
            let (status, data) = srv.get(&format!("/hls/ll/{}", part.uri)).await;
            assert_eq!(status, 200, "{}", part.uri);
            let file = out.join(&part.uri).with_extension("mp4");
            write(&file, &[&init, &data]);
            // The first video packet's flags as the demuxer reads them from the trun.
            let json = ffprobe_json(
                &[
                    "-select_streams",
                    "v:0",
                    "-show_entries",
                    "packet=flags",
                    "-read_intervals",
                    "%+#1",
                ],
                &file,
            );
            let flags = json["packets"][0]["flags"].as_str().unwrap_or("");
            assert_eq!(
                flags.starts_with('K'),
                part.independent,
                "{}: {flags:?}",
                part.uri
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} parts listed");

    finish_publish(&srv, "ll", session, FIXTURE_SECONDS).await;
    srv.shutdown().await;
}
