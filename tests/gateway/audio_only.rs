//! A publisher with a microphone and no camera: its Opus reaches both outputs as AAC, with no
//! video track, covering the time it sent. The media loop paces the audio-only stream's gap
//! filling by the wall clock (there is no video to follow).

use super::support::{
    ffprobe_json, finish_publish, finish_viewers, fixture, init_tracing, output_dir, probe_audio,
    publish_and_watch, require_media_tools, write, write_hls_file, TestServer, Watched,
};

const FIXTURE_SECONDS: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audio_only_publish_reaches_hls_and_flv_as_aac() {
    init_tracing();
    require_media_tools();
    let fixture = fixture(FIXTURE_SECONDS).await;
    let source = fixture.media_source().without_video();
    let srv = TestServer::start().await;
    let Watched { session, flv, hls } = publish_and_watch(&srv, "mic", source).await;
    assert!(
        !session.offer_sdp().contains("m=video"),
        "an audio-only offer:\n{}",
        session.offer_sdp()
    );
    let sent = finish_publish(&srv, "mic", session, FIXTURE_SECONDS).await;
    assert_eq!(sent.video_frames, 0);
    assert_eq!(sent.audio_packets, fixture.audio_packets as u64);
    let (hls, flv) = finish_viewers(hls, flv).await;
    srv.shutdown().await;

    let out = output_dir("audio-only");
    let flv_file = out.join("viewer.flv");
    write(&flv_file, &[&flv.bytes]);
    assert_eq!(flv.status, 200, "FLV viewer (error: {:?})", flv.error);
    let hls_file = write_hls_file(&hls, &out);
    for (output, file) in [("HTTP-FLV", &flv_file), ("HLS", &hls_file)] {
        let audio = probe_audio(file);
        assert_eq!(audio.codec, "aac", "{output} ({})", file.display());
        assert_eq!(audio.sample_rate, 48_000, "{output}");
        // Viewers join once the stream is live, a few hundred ms in: most of the 4 s. After the
        // last packet the gateway fills silence (paced by the wall clock, every 100 ms) until
        // the DELETE half a second later, so that players keep playing through a pause.
        let seconds = audio.seconds();
        assert!(
            (f64::from(FIXTURE_SECONDS) - 1.0..=f64::from(FIXTURE_SECONDS) + 0.7)
                .contains(&seconds),
            "{output} holds {seconds:.2} s of audio ({})",
            file.display()
        );
        let video = ffprobe_json(
            &["-select_streams", "v", "-show_entries", "stream=index"],
            file,
        );
        assert_eq!(
            video["streams"].as_array().map(Vec::len),
            Some(0),
            "{output} has no video track ({})",
            file.display()
        );
    }
}
