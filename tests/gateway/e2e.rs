//! The whole path: ffmpeg fixture -> WHIP publisher (webrtc-rs) -> castgate -> HLS (fMP4) and
//! HTTP-FLV viewers -> ffprobe. Every frame sent must come out of both, decodable.

use castgate::client::{publish, ClientError, PublishOptions};

use super::support::{
    assert_loopback_candidates, expected_video, finish_publish, finish_viewers, fixture,
    http_client, init_tracing, output_dir, probe_video, publish_and_watch, require_media_tools,
    video_key_frames, write, TestServer, Watched,
};

const FIXTURE_SECONDS: u32 = 6;
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whip_publish_is_seen_frame_exact_by_hls_and_flv_viewers() {
    init_tracing();
    require_media_tools();
    let fixture = fixture(FIXTURE_SECONDS).await;
    assert!(
        fixture.video_keyframes >= FIXTURE_SECONDS as usize,
        "{fixture:?}"
    );

    let srv = TestServer::start().await;
    let Watched { session, flv, hls } =
        publish_and_watch(&srv, "e2e", fixture.media_source()).await;
    assert!(
        session.location().starts_with(&srv.url("/whip/e2e/")),
        "Location {} is not under /whip/e2e/",
        session.location()
    );
    assert_loopback_candidates("publisher offer", session.offer_sdp());
    assert_loopback_candidates("castgate answer", session.answer_sdp());

    // RFC 9725: one publisher per stream; a second one while the first is live is a conflict.
    let opts = PublishOptions {
        http: Some(http_client()),
        ..PublishOptions::default()
    };
    match publish(&srv.url("/whip/e2e"), None, fixture.media_source(), opts).await {
        Err(ClientError::Status { status: 409, .. }) => {}
        Err(e) => panic!("second publisher to a live stream: expected 409, got {e}"),
        Ok(s) => {
            let location = s.location().to_string();
            let _ = s.stop().await;
            panic!("second publisher to a live stream was accepted at {location}; expected 409");
        }
    }

    let sent = finish_publish(&srv, "e2e", session, FIXTURE_SECONDS).await;
    assert_eq!(sent.video_frames, fixture.video_frames as u64);
    assert_eq!(sent.audio_packets, fixture.audio_packets as u64);
    let (hls, flv) = finish_viewers(hls, flv).await;
    srv.shutdown().await;

    let out = output_dir("e2e");
    let expected = expected_video(&fixture, sent.video_frames);

    // HLS: a finished, well-formed playlist and a complete, decodable set of segments.
    assert!(hls.problems.is_empty(), "HLS problems: {:?}", hls.problems);
    assert!(
        hls.playlist.trim_end().ends_with("#EXT-X-ENDLIST"),
        "final playlist does not end with #EXT-X-ENDLIST:\n{}",
        hls.playlist
    );
    let playlist = m3u8_rs::parse_media_playlist_res(hls.playlist.as_bytes())
        .unwrap_or_else(|e| panic!("final playlist does not parse ({e:?}):\n{}", hls.playlist));
    assert!(playlist.end_list);
    for segment in &playlist.segments {
        // RFC 8216 §4.3.3.1: every EXTINF, rounded, is at most the target duration.
        assert!(
            (segment.duration.round() as u64) <= playlist.target_duration,
            "EXTINF {} exceeds EXT-X-TARGETDURATION {}",
            segment.duration,
            playlist.target_duration
        );
    }
    let init = hls
        .init
        .clone()
        .expect("playlist names an init segment (EXT-X-MAP)");
    assert!(
        hls.segments.len() >= (FIXTURE_SECONDS as usize) / 2,
        "only {} HLS segments for {FIXTURE_SECONDS} s of 1 s segments",
        hls.segments.len()
    );
    let mut whole: Vec<&[u8]> = vec![&init[..]];
    for (seq, uri, bytes) in &hls.segments {
        whole.push(&bytes[..]);
        let file = out.join(format!("segment-{seq}.mp4"));
        write(&file, &[&init[..], &bytes[..]]);
        let keys = video_key_frames(&file);
        assert_eq!(
            keys.first(),
            Some(&true),
            "HLS segment {seq} ({uri}) does not start with a keyframe: {}",
            file.display()
        );
    }
    let hls_file = out.join("hls-all.mp4");
    write(&hls_file, &whole);
    assert_eq!(
        probe_video(&hls_file),
        expected,
        "HLS init + segments ({})",
        hls_file.display()
    );

    // HTTP-FLV: one long response from the first keyframe to the end of the stream.
    assert_eq!(
        flv.status, 200,
        "FLV viewer status (error: {:?})",
        flv.error
    );
    assert!(
        flv.bytes.starts_with(b"FLV\x01"),
        "FLV response does not start with an FLV header"
    );
    let flv_file = out.join("viewer.flv");
    write(&flv_file, &[&flv.bytes]);
    assert!(
        flv.ended,
        "FLV response was not ended by the server after the stream ended ({:?}); {} bytes in {}",
        flv.error,
        flv.bytes.len(),
        flv_file.display()
    );
    assert_eq!(
        probe_video(&flv_file),
        expected,
        "HTTP-FLV capture ({})",
        flv_file.display()
    );
}
