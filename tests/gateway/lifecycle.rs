//! How publishes end without a DELETE: a publisher whose media stops while its connection stays
//! up is ended by the idle timeout, and its playlist gets `#EXT-X-ENDLIST`.

use std::time::{Duration, Instant};

use castgate::client::{publish, PublishOptions};

use super::support::{
    eventually, fixture, http_client, init_tracing, require_media_tools, test_config, TestServer,
};

#[tokio::test(flavor = "multi_thread")]
async fn silent_publisher_is_ended_by_the_idle_timeout() {
    init_tracing();
    require_media_tools();
    let fixture = fixture(2).await;
    let mut config = test_config();
    config.stream.idle_timeout_secs = 1.5;
    // Ended at the timeout itself: no reconnect grace (that is `reconnect.rs`).
    config.stream.reconnect_grace_secs = 0.0;
    let srv = TestServer::start_with(config).await;
    let opts = PublishOptions {
        http: Some(http_client()),
        ..PublishOptions::default()
    };
    let mut session = publish(&srv.url("/whip/quiet"), None, fixture.media_source(), opts)
        .await
        .expect("WHIP publish is accepted");
    eventually("stream to go live", Duration::from_secs(10), || async {
        srv.stream_state("quiet").await.filter(|s| s == "live")
    })
    .await;
    tokio::time::timeout(Duration::from_secs(20), session.finished())
        .await
        .expect("publisher finishes")
        .expect("publisher sends without error");
    // The connection stays up (ICE consent continues) but no media comes any more.
    let silent_since = Instant::now();
    eventually(
        "stream to be ended for lack of media",
        Duration::from_secs(8),
        || async { srv.stream_state("quiet").await.is_none().then_some(()) },
    )
    .await;
    let waited = silent_since.elapsed();
    assert!(
        waited >= Duration::from_millis(1000),
        "ended after {waited:?}, before the 1.5 s idle timeout could have passed"
    );
    let (status, playlist) = srv.get("/hls/quiet/index.m3u8").await;
    assert_eq!(
        status, 200,
        "the ended stream's final playlist stays readable"
    );
    assert!(
        String::from_utf8_lossy(&playlist)
            .trim_end()
            .ends_with("#EXT-X-ENDLIST"),
        "{}",
        String::from_utf8_lossy(&playlist)
    );
    let (status, _) = srv.get("/flv/quiet.flv").await;
    assert_eq!(status, 404);
    // The session is gone: its DELETE is a 404 now.
    let res = http_client()
        .delete(session.location())
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status(), 404);
    drop(session);
    srv.shutdown().await;
}
