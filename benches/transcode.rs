//! Opus -> AAC-LC transcoding cost and added delay, per core.
//!
//! Input: `fixtures/music_like_20s.opus`, 20 s of stereo Opus at 64 kb/s in 20 ms packets, as
//! a browser publishes (two modulated tone mixes over pink noise, so the encoders work on
//! broadband content). Made with:
//! `ffmpeg -f lavfi -i "aevalsrc=0.25*sin(2*PI*220*t)*(0.6+0.4*sin(2*PI*0.5*t))+0.15*sin(2*PI*330*t+sin(2*PI*5*t))|0.2*sin(2*PI*277*t)+0.12*sin(2*PI*440*t)*(t-floor(t)):s=48000:d=20"
//!  -f lavfi -i "anoisesrc=color=pink:amplitude=0.08:sample_rate=48000:duration=20"
//!  -filter_complex "[0][1]amix=inputs=2:normalize=0,aformat=channel_layouts=stereo"
//!  -c:a libopus -b:a 64k -frame_duration 20 -map_metadata -1 music_like_20s.opus`
//!
//! Run: `cargo bench --bench transcode` (or `-- --quick`). `TRANSCODE_FIXTURE=file.ogg` measures
//! another Ogg Opus file instead (e.g. the load tool's mono fixture in
//! `target/load-fixtures/`); its channel count comes from the first packet. Criterion's throughput is in
//! elements = seconds of audio, so `elem/s` reads as "times real time". Before Criterion runs,
//! the bench prints the same figure per CPU-second of this thread (immune to other load on
//! the machine) and the delay the transcoder adds.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, Criterion, Throughput};

use castgate::audio::{
    default_bitrate, packet_channels, packet_samples, AacEncoder, OpusDecoder, OpusRsDecoder,
    OpusToAac, SyomAacEncoder, TranscodeConfig,
};
use castgate::client::ogg_opus::opus_packets;
use castgate::media::{Codec, Frame};
use castgate::rtp::OpusEvent;

const FIXTURE: &[u8] = include_bytes!("fixtures/music_like_20s.opus");

fn packets() -> Vec<Bytes> {
    let file =
        std::env::var_os("TRANSCODE_FIXTURE").map(|p| std::fs::read(p).expect("TRANSCODE_FIXTURE"));
    opus_packets(file.as_deref().unwrap_or(FIXTURE))
        .expect("fixture is Ogg Opus")
        .into_iter()
        .map(|p| p.data)
        .collect()
}

/// The packets as the depacketizer hands them over, with their durations in 90 kHz ticks.
fn events(packets: &[Bytes]) -> Vec<(OpusEvent, i64)> {
    let mut pts = 1_000_000;
    packets
        .iter()
        .map(|p| {
            let ticks = packet_samples(p).unwrap() as i64 * 15 / 8;
            let e = OpusEvent::Frame(Frame {
                codec: Codec::Opus,
                pts,
                dts: pts,
                keyframe: true,
                data: p.clone(),
            });
            pts += ticks;
            (e, ticks)
        })
        .collect()
}

fn audio_seconds(packets: &[Bytes]) -> f64 {
    packets
        .iter()
        .map(|p| packet_samples(p).unwrap())
        .sum::<usize>() as f64
        / 48_000.0
}

fn transcode(channels: u8, events: &[(OpusEvent, i64)]) -> usize {
    let mut t = OpusToAac::new(TranscodeConfig {
        channels,
        bitrate: None,
    })
    .unwrap();
    let mut frames = 0;
    for (e, _) in events {
        t.push(e.clone());
        while t.poll().is_some() {
            frames += 1;
        }
    }
    frames
}

/// CPU time of this thread (Linux `schedstat`, ns), or `None` elsewhere.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// CPU milliseconds of this thread per second of audio for `runs` runs of `work`.
fn cpu_ms_per_audio_second(seconds: f64, runs: u32, mut work: impl FnMut() -> usize) -> f64 {
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    for _ in 0..runs {
        std::hint::black_box(work());
    }
    let wall = wall0.elapsed();
    let cpu = cpu0.and_then(|c0| Some(thread_cpu()? - c0)).unwrap_or(wall);
    cpu.as_secs_f64() * 1e3 / (seconds * f64::from(runs))
}

/// CPU cost per second of audio (this thread's CPU time, immune to other load on the
/// machine) of the whole transcode and of each half, and the delay AAC frames add over the
/// Opus packets they come from: when a frame comes out, how far the newest Opus sample is
/// past the frame's end.
fn report(channels: u8, packets: &[Bytes], events: &[(OpusEvent, i64)], pcm: &[f32]) {
    let seconds = audio_seconds(packets);
    let bitrate = default_bitrate(channels);
    let runs = 3;
    let whole = cpu_ms_per_audio_second(seconds, runs, || transcode(channels, events));
    let decode = cpu_ms_per_audio_second(seconds, runs, || decode_all(channels, packets));
    let encode = cpu_ms_per_audio_second(seconds, runs, || encode_all(channels, bitrate, pcm));
    println!(
        "transcode {channels} ch, AAC {} kb/s: {whole:.2} CPU-ms per audio-second \
         ({:.0}x real time); Opus decode {decode:.2}, AAC encode {encode:.2}",
        bitrate / 1000,
        1000.0 / whole,
    );

    let mut t = OpusToAac::new(TranscodeConfig {
        channels,
        bitrate: None,
    })
    .unwrap();
    let frame_ticks = 1024 * 15 / 8;
    let mut delays = Vec::new();
    for (e, ticks) in events {
        let OpusEvent::Frame(f) = e else { continue };
        let input_end = f.pts + ticks;
        t.push(e.clone());
        while let Some(aac) = t.poll() {
            delays.push((input_end - (aac.pts + frame_ticks)) as f64 / 90.0);
        }
    }
    let mean = delays.iter().sum::<f64>() / delays.len() as f64;
    let min = delays.iter().copied().fold(f64::MAX, f64::min);
    let max = delays.iter().copied().fold(f64::MIN, f64::max);
    println!(
        "added delay: encoder {:.2} ms + frame buffering = {min:.2} ms min, {mean:.2} ms mean, \
         {max:.2} ms max ({} AAC frames)",
        t.delay_samples() as f64 / 48.0,
        delays.len()
    );
}

fn decode_all(channels: u8, packets: &[Bytes]) -> usize {
    let mut dec = OpusRsDecoder::new(channels).unwrap();
    packets.iter().map(|p| dec.decode(p).unwrap().len()).sum()
}

fn encode_all(channels: u8, bitrate: u32, pcm: &[f32]) -> usize {
    let mut enc = SyomAacEncoder::new(48_000, channels, bitrate).unwrap();
    pcm.chunks(960 * usize::from(channels))
        .map(|chunk| enc.encode(chunk).unwrap().len())
        .sum()
}

fn bench(c: &mut Criterion) {
    let packets = packets();
    let channels = packet_channels(&packets[0]).unwrap_or(2);
    let events = events(&packets);
    let seconds = audio_seconds(&packets).round() as u64;
    let bitrate = default_bitrate(channels);

    let mut pcm = Vec::new();
    let mut dec = OpusRsDecoder::new(channels).unwrap();
    for p in &packets {
        pcm.extend_from_slice(dec.decode(p).unwrap());
    }
    report(channels, &packets, &events, &pcm);

    let layout = if channels == 1 { "mono" } else { "stereo" };
    let name = format!("audio_{seconds}s_{layout}");
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(seconds));
    g.sample_size(10);
    g.bench_function(format!("opus_to_aac_{}k", bitrate / 1000), |b| {
        b.iter(|| transcode(channels, &events))
    });
    g.bench_function("opus_decode_only", |b| {
        b.iter(|| decode_all(channels, &packets))
    });
    g.bench_function(format!("aac_encode_only_{}k", bitrate / 1000), |b| {
        b.iter(|| encode_all(channels, bitrate, &pcm))
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
