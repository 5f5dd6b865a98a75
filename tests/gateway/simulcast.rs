//! A simulcast publish (three rid layers, as web apps offer with `sendEncodings`) becomes one
//! clean rendition: the answer accepts the highest layer alone, and even a sender that keeps
//! sending the other two never gets them into HLS or HTTP-FLV; and loss on that layer is
//! repaired from its RTX stream, which only the repaired-RID extension identifies.

use std::time::Duration;

use castgate::client::{accepted_layers, PublishOptions};

use super::support::{
    eventually, expected_video, finish_publish, finish_viewers, fixture, fixture_sized,
    init_tracing, output_dir, probe_video, publish_and_watch_with, require_media_tools, write,
    write_hls_file, TestServer, Watched,
};

const SECONDS: u32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_layer_simulcast_offer_is_received_as_its_top_layer_only() {
    init_tracing();
    require_media_tools();
    // Layers like Chromium's `q`, `h`, `f` (scaleResolutionDownBy 4, 2, 1 of 1280x720),
    // offered low to high as the WebRTC samples do.
    let q = fixture_sized(SECONDS, (320, 180)).await;
    let h = fixture(SECONDS).await;
    let f = fixture_sized(SECONDS, (1280, 720)).await;
    let source = h
        .media_source()
        .with_layers(&[
            ("q", &q.media_source()),
            ("h", &h.media_source()),
            ("f", &f.media_source()),
        ])
        .expect("layers of one length");

    let srv = TestServer::start().await;
    // A faulty sender: it goes on sending every layer whatever the answer says.
    let opts = PublishOptions {
        send_unaccepted_layers: true,
        ..PublishOptions::default()
    };
    let Watched { session, flv, hls } = publish_and_watch_with(&srv, "sim", source, opts).await;

    let offer = session.offer_sdp();
    assert!(
        offer.contains("a=simulcast:send q;h;f"),
        "the client offers three layers:\n{offer}"
    );
    let answer = session.answer_sdp().to_string();
    assert_eq!(
        accepted_layers(&answer),
        Some(vec!["f".to_string()]),
        "the answer accepts the top layer alone (RFC 8853 §5.3):\n{answer}"
    );
    assert!(answer.contains("a=rid:f recv"), "{answer}");
    assert!(
        !answer.contains("a=rid:q") && !answer.contains("a=rid:h"),
        "{answer}"
    );

    // The other layers arrive, and are dropped and counted.
    let info = eventually(
        "the dropped layers to show in /api/streams",
        Duration::from_secs(10),
        || async {
            srv.stream_json("sim")
                .await
                .filter(|s| s["simulcast"]["dropped_packets"].as_u64() > Some(100))
        },
    )
    .await;
    assert_eq!(info["simulcast"]["received"], "f", "{info}");
    assert_eq!(
        info["simulcast"]["offered"],
        serde_json::json!(["q", "h", "f"])
    );
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(1280), Some(720))
    );

    let sent = finish_publish(&srv, "sim", session, SECONDS).await;
    let (hls, flv) = finish_viewers(hls, flv).await;
    srv.shutdown().await;
    let out = output_dir("simulcast");
    let expected = expected_video(&f, sent.video_frames);

    // HLS: one init, no discontinuity, segments of the target length (1 s here), each a clean
    // 1280x720 GOP.
    assert!(hls.problems.is_empty(), "HLS problems: {:?}", hls.problems);
    assert!(
        !hls.playlist.contains("#EXT-X-DISCONTINUITY"),
        "the layers must not alternate:\n{}",
        hls.playlist
    );
    assert_eq!(
        hls.playlist.matches("#EXT-X-MAP").count(),
        1,
        "{}",
        hls.playlist
    );
    let playlist = m3u8_rs::parse_media_playlist_res(hls.playlist.as_bytes()).expect("playlist");
    let (last, whole) = playlist.segments.split_last().expect("segments");
    assert!(whole.len() + 1 >= SECONDS as usize - 1, "{}", hls.playlist);
    for segment in whole {
        assert!(
            (0.9..=1.1).contains(&segment.duration),
            "segment of {} s, target 1 s:\n{}",
            segment.duration,
            hls.playlist
        );
    }
    assert!(last.duration <= 1.1);
    let init = hls.init.clone().expect("init segment");
    let mut parts: Vec<&[u8]> = vec![&init[..]];
    parts.extend(hls.segments.iter().map(|(_, _, b)| &b[..]));
    let hls_file = out.join("hls-all.mp4");
    write(&hls_file, &parts);
    assert_eq!(probe_video(&hls_file), expected, "{}", hls_file.display());

    // HTTP-FLV: every frame, all of the top layer.
    assert_eq!(flv.status, 200, "{:?}", flv.error);
    let flv_file = out.join("viewer.flv");
    write(&flv_file, &[&flv.bytes]);
    assert_eq!(probe_video(&flv_file), expected, "{}", flv_file.display());
}

/// Loss on a simulcast layer is repaired the way browsers repair it: the gateway NACKs the
/// received layer, and the publisher resends on an RTX stream of its own, identified only by
/// the repaired-RID extension (webrtc-rs cannot route those; the layer filter unwraps them).
/// Without the repair every loss freezes the picture until the next keyframe.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn loss_on_a_simulcast_layer_is_repaired_by_repaired_rid_rtx() {
    init_tracing();
    require_media_tools();
    let q = fixture_sized(SECONDS, (320, 180)).await;
    let f = fixture(SECONDS).await;
    let source = f
        .media_source()
        .with_layers(&[("q", &q.media_source()), ("f", &f.media_source())])
        .expect("layers of one length");
    let srv = TestServer::start().await;
    let opts = PublishOptions {
        drop_video_packets: Some(30),
        ..PublishOptions::default()
    };
    let Watched { session, flv, hls } = publish_and_watch_with(&srv, "simloss", source, opts).await;
    let answer = session.answer_sdp().to_string();
    assert!(
        answer.contains(" rtx/90000"),
        "RTX is negotiated:\n{answer}"
    );
    assert_eq!(accepted_layers(&answer), Some(vec!["f".to_string()]));
    let info = eventually("repairs to show", Duration::from_secs(10), || async {
        srv.stream_json("simloss")
            .await
            .filter(|s| s["simulcast"]["repaired_packets"].as_u64() >= Some(5))
    })
    .await;
    assert_eq!(info["simulcast"]["dropped_packets"], 0, "{info}");

    let sent = finish_publish(&srv, "simloss", session, SECONDS).await;
    let (hls, flv) = finish_viewers(hls, flv).await;
    srv.shutdown().await;
    assert!(sent.video_packets_dropped >= 10, "{sent:?}");
    let out = output_dir("simulcast-loss");
    let expected = expected_video(&f, sent.video_frames);
    let flv_file = out.join("viewer.flv");
    write(&flv_file, &[&flv.bytes]);
    assert_eq!(
        probe_video(&flv_file),
        expected,
        "every frame after {} losses ({})",
        sent.video_packets_dropped,
        flv_file.display()
    );
    let hls_file = write_hls_file(&hls, &out);
    assert_eq!(probe_video(&hls_file), expected, "{}", hls_file.display());
}
