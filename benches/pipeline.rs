//! Throughput of the sans-IO media path, per core: RTP -> (reorder, depacketize) -> frames, and on
//! to FLV tags and to fMP4 HLS segments. Input: 20 s of synthetic 2.5 Mb/s, 30 fps H.264 in
//! Chromium's packet shapes (SPS+PPS in a STAP-A before each IDR, FU-A for large NAL units).
//! The muxers never look inside slices, so random slice bytes measure the same work as real ones.
//!
//! Run: `cargo bench --bench pipeline`. Throughput is media bytes (RTP payload) per second.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use castgate::media::h264::ParameterSets;
use castgate::media::Frame;
use castgate::mux::flv;
use castgate::mux::hls::{HlsConfig, HlsStream};
use castgate::rtp::{H264Event, H264Packetizer, RtpPacket, TrackEvent, TrackReceiver};

/// x264 constrained-baseline 640x360 SPS and PPS (any valid pair will do for the muxers).
const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01,
    0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2e, 0x48,
];
const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

const FPS: u32 = 30;
const SECONDS: u32 = 20;
const GOP: u32 = 60;
const BITRATE: usize = 2_500_000;

/// Deterministic filler bytes (xorshift), so runs are comparable.
fn filler(len: usize, seed: &mut u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed as u8
        })
        .collect()
}

/// The RTP packets of the whole clip, and the media bytes they carry.
fn clip() -> (Vec<RtpPacket>, u64) {
    let mut packetizer = H264Packetizer::new(H264Packetizer::DEFAULT_MTU, 102, 0x1234, 65_000);
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    let per_frame = BITRATE / 8 / FPS as usize;
    let mut packets = Vec::new();
    for i in 0..FPS * SECONDS {
        let ts = 3_000_000_000u32.wrapping_add(i * 3000);
        let keyframe = i % GOP == 0;
        let nals: Vec<Vec<u8>> = if keyframe {
            let mut idr = filler(per_frame * 6, &mut seed);
            idr[0] = 0x65;
            vec![SPS.to_vec(), PPS.to_vec(), idr]
        } else {
            let mut slice = filler(per_frame * 9 / 10, &mut seed);
            slice[0] = 0x41;
            vec![slice]
        };
        packets.extend(packetizer.packetize(&nals, ts));
    }
    let bytes = packets.iter().map(|p| p.payload.len() as u64).sum();
    (packets, bytes)
}

/// Feeds every packet through a fresh receiver and hands each event to `sink`.
fn depacketize(packets: &[RtpPacket], mut sink: impl FnMut(H264Event)) {
    let mut rx = TrackReceiver::h264(Duration::from_millis(150));
    let start = Instant::now();
    for (i, p) in packets.iter().enumerate() {
        // Packets arrive about 0.2 ms apart; time only matters for gaps, and there are none.
        rx.push(p.clone(), start + Duration::from_micros(i as u64 * 200));
        while let Some(TrackEvent::H264(e)) = rx.poll_event() {
            sink(e);
        }
    }
}

fn bench(c: &mut Criterion) {
    let (packets, media_bytes) = clip();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Bytes(media_bytes));
    group.sample_size(20);

    group.bench_function("depacketize", |b| {
        b.iter(|| {
            let mut frames = 0u32;
            depacketize(&packets, |e| {
                if let H264Event::AccessUnit(_) = e {
                    frames += 1;
                }
            });
            assert_eq!(frames, FPS * SECONDS);
        })
    });

    group.bench_function("depacketize_to_flv", |b| {
        b.iter(|| {
            let mut out = 0usize;
            depacketize(&packets, |e| match e {
                H264Event::ParameterSets { sps, pps } => {
                    let ps = ParameterSets::new(sps, pps).unwrap();
                    out += flv::avc_sequence_header_tag(&ps, 0).len();
                }
                H264Event::AccessUnit(f) => {
                    out += flv::avc_frame_tag(&f, (f.dts / 90) as u32, 0).len();
                }
                H264Event::KeyframeNeeded => {}
            });
            assert!(out as u64 > media_bytes * 9 / 10);
        })
    });

    group.bench_function("depacketize_to_fmp4_hls", |b| {
        b.iter(|| {
            let mut hls = HlsStream::new(HlsConfig {
                segment_target: Duration::from_secs(2),
                window: 6,
                name_prefix: "bench".into(),
                ..HlsConfig::default()
            });
            let mut base = None;
            depacketize(&packets, |e| match e {
                H264Event::ParameterSets { sps, pps } => {
                    hls.set_video(ParameterSets::new(sps, pps).unwrap())
                }
                H264Event::AccessUnit(f) => {
                    let b0 = *base.get_or_insert(f.dts);
                    let frame = Frame {
                        pts: f.pts - b0,
                        dts: f.dts - b0,
                        ..f
                    };
                    hls.push(frame, 1_700_000_000_000);
                }
                H264Event::KeyframeNeeded => {}
            });
            assert!(hls.playlist(false).is_some());
        })
    });
    group.finish();

    // The muxers alone, on ready frames: where the time goes after depacketizing.
    let mut frames: Vec<Frame> = Vec::new();
    let mut ps = None;
    depacketize(&packets, |e| match e {
        H264Event::ParameterSets { sps, pps } => ps = Some(ParameterSets::new(sps, pps).unwrap()),
        H264Event::AccessUnit(f) => frames.push(f),
        H264Event::KeyframeNeeded => {}
    });
    let ps = ps.unwrap();
    let frame_bytes: u64 = frames.iter().map(|f| f.data.len() as u64).sum();
    let mut group = c.benchmark_group("mux");
    group.throughput(Throughput::Bytes(frame_bytes));
    group.sample_size(20);
    group.bench_function("flv_tags", |b| {
        b.iter(|| {
            // Each tag is dropped at once, as the server's bounded queues do, so this measures
            // the writer rather than first-touch page faults of 6 MB of fresh memory.
            frames
                .iter()
                .map(|f| flv::avc_frame_tag(f, (f.dts / 90) as u32, 0).len())
                .sum::<usize>()
        })
    });
    // Plain HLS, then with 200 ms LL-HLS parts (a chunk, a playlist render per part, the
    // segment joined from its parts), then with the MPEG-TS rendition as well.
    for (name, part_target, mpegts) in [
        ("fmp4_hls", None, false),
        ("fmp4_ll_hls", Some(Duration::from_millis(200)), false),
        ("fmp4_ll_hls_and_ts", Some(Duration::from_millis(200)), true),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut hls = HlsStream::new(HlsConfig {
                    segment_target: Duration::from_secs(2),
                    window: 6,
                    name_prefix: "bench".into(),
                    part_target,
                    mpegts,
                    ..HlsConfig::default()
                });
                hls.set_video(ps.clone());
                let b0 = frames[0].dts;
                for f in &frames {
                    let frame = Frame {
                        pts: f.pts - b0,
                        dts: f.dts - b0,
                        ..f.clone()
                    };
                    hls.push(frame, 1_700_000_000_000);
                }
                hls
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
