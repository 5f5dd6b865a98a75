//! Packet loss on the publisher's path is repaired by NACK: the in-repo publisher withholds the
//! first transmission of one video RTP packet in 30 (`PublishOptions::drop_video_packets`), the
//! gateway asks for each (a Generic NACK from the track pipeline, `rtp::nack`), the publisher's NACK
//! responder resends it, and the viewers get every frame, byte for byte, on an unbroken
//! timeline. Without the NACKs the gateway drops every frame from a loss to the next keyframe
//! (a freeze; the viewer got 13 of 180 frames), which this catches.

use std::time::Duration;

use castgate::client::annexb::split_nal_units;
use castgate::client::PublishOptions;
use castgate::mux::flv::parse_tags;

use super::support::{
    expected_video, finish_publish, finish_viewers, fixture, init_tracing, output_dir, probe_video,
    publish_and_watch_with, require_media_tools, write, write_hls_file, TestServer, Watched,
};

const FIXTURE_SECONDS: u32 = 6;
/// One video packet in this many is lost on its first transmission.
const DROP_ONE_IN: u32 = 30;

/// FLV video tag: frame type / codec byte, then AVCPacketType (0 = sequence header, 1 = NALUs).
const FLV_VIDEO: u8 = 9;
const AVC_NALU: u8 = 1;

/// The picture data of one access unit: its slice NAL units (types 1-5). The gateway moves
/// SPS/PPS into the sequence header and drops delimiters, and never touches the slices.
fn slices<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> Vec<Vec<u8>> {
    nals.into_iter()
        .filter(|nal| nal.first().is_some_and(|b| (1..=5).contains(&(b & 0x1f))))
        .map(<[u8]>::to_vec)
        .collect()
}

/// NAL units of an AVCC sample (4-byte big-endian lengths), or `None` if the lengths do not
/// tile the sample exactly.
fn avcc_nal_units(mut sample: &[u8]) -> Option<Vec<&[u8]>> {
    let mut nals = Vec::new();
    while !sample.is_empty() {
        let len = u32::from_be_bytes(sample.get(..4)?.try_into().ok()?) as usize;
        nals.push(sample.get(4..4 + len)?);
        sample = &sample[4 + len..];
    }
    Some(nals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_video_packets_are_recovered_by_nack_and_every_frame_reaches_the_viewers() {
    publish_with_loss_and_check_every_frame("lossy", Duration::ZERO).await;
}

/// On a real path a repair takes a round trip, and the gateway's reorder buffer waits only so
/// long (150 ms by default) before it gives up on a gap: the NACK must go out soon enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_video_packets_are_recovered_when_a_repair_takes_a_60ms_round_trip() {
    publish_with_loss_and_check_every_frame("lossy-rtt", Duration::from_millis(60)).await;
}

/// Publishes the fixture losing one video packet in [`DROP_ONE_IN`] on first transmission,
/// each resend held `resend_delay`, and checks both viewers got every frame.
async fn publish_with_loss_and_check_every_frame(name: &str, resend_delay: Duration) {
    init_tracing();
    require_media_tools();
    let fixture = fixture(FIXTURE_SECONDS).await;

    let srv = TestServer::start().await;
    let opts = PublishOptions {
        drop_video_packets: Some(DROP_ONE_IN),
        resend_delay,
        ..PublishOptions::default()
    };
    let Watched { session, flv, hls } =
        publish_and_watch_with(&srv, name, fixture.media_source(), opts).await;
    let sent = finish_publish(&srv, name, session, FIXTURE_SECONDS).await;
    assert_eq!(sent.video_frames, fixture.video_frames as u64);
    let (hls, flv) = finish_viewers(hls, flv).await;
    srv.shutdown().await;

    eprintln!(
        "sent {} video frames, withheld {} video packets on first transmission",
        sent.video_frames, sent.video_packets_dropped
    );
    // The loss really happened: about one packet in 30 of a 1.5 Mb/s, 6 s stream (~750 packets).
    assert!(
        sent.video_packets_dropped >= 10,
        "only {} video packets were withheld: the loss simulation did not run",
        sent.video_packets_dropped
    );

    let out = output_dir(name);
    let flv_file = out.join("viewer.flv");
    write(&flv_file, &[&flv.bytes]);
    assert_eq!(flv.status, 200, "FLV viewer (error: {:?})", flv.error);
    assert!(flv.ended, "FLV response not ended ({:?})", flv.error);
    let tags = parse_tags(&flv.bytes)
        .unwrap_or_else(|e| panic!("FLV capture does not parse ({e}): {}", flv_file.display()));
    let frames: Vec<_> = tags
        .iter()
        .filter(|t| t.tag_type == FLV_VIDEO && t.body.get(1) == Some(&AVC_NALU))
        .collect();

    // Every frame, byte for byte: the pictures of the FLV are the fixture's, in order.
    let want: Vec<Vec<Vec<u8>>> = fixture
        .media_source()
        .video()
        .iter()
        .map(|au| slices(split_nal_units(&au.data)))
        .collect();
    let got: Vec<Vec<Vec<u8>>> = frames
        .iter()
        .map(|t| {
            let nals = avcc_nal_units(t.body.get(5..).unwrap_or_default())
                .unwrap_or_else(|| panic!("FLV video tag at {} ms is not AVCC", t.timestamp_ms));
            slices(nals)
        })
        .collect();
    assert_eq!(
        got.len(),
        want.len(),
        "FLV has {} of {} frames after {} losses ({})",
        got.len(),
        want.len(),
        sent.video_packets_dropped,
        flv_file.display()
    );
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "FLV frame {i} differs from the fixture's ({})",
            flv_file.display()
        );
    }

    // An unbroken timeline: each frame one frame interval (33 or 34 ms at 30 fps) after the last.
    let interval_ms = 1000 / fixture.fps;
    let steps: Vec<u32> = frames
        .windows(2)
        .map(|w| w[1].timestamp_ms.wrapping_sub(w[0].timestamp_ms))
        .collect();
    let bad: Vec<(usize, u32)> = steps
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, s)| !(interval_ms..=interval_ms + 1).contains(&s))
        .collect();
    assert!(
        bad.is_empty(),
        "FLV frame steps (index, ms) off the {interval_ms} ms cadence: {bad:?}"
    );

    // And a decoder reads every frame (ffprobe), from FLV and from HLS.
    let expected = expected_video(&fixture, sent.video_frames);
    assert_eq!(probe_video(&flv_file), expected, "{}", flv_file.display());
    let hls_file = write_hls_file(&hls, &out);
    assert_eq!(probe_video(&hls_file), expected, "{}", hls_file.display());
}
