//! The in-repo WHIP publisher: used by the integration tests and the load tool.
//!
//! [`publish`] sends a [`MediaSource`] (H.264 Annex B + Ogg Opus, loaded once and shared) to a
//! WHIP endpoint over webrtc-rs; [`generate_fixture`] makes browser-like test media with ffmpeg.

pub mod annexb;
mod error;
mod fixture;
mod ice_servers;
mod lossy;
pub mod ogg_opus;
mod pacer;
mod peer;
mod rtx_out;
pub mod sei;
mod simulcast;
mod source;
mod whip;

pub use annexb::AccessUnit;
pub use error::ClientError;
pub use fixture::{
    generate_fixture, generate_fixture_sized, generate_fixture_with_audio, generate_sync_fixture,
    Fixture, FixtureAudio, FIXTURE_FPS, FIXTURE_HEIGHT, FIXTURE_VIDEO_KBPS, FIXTURE_WIDTH,
    SYNC_BURST_MS, SYNC_TONE_HZ,
};
pub use ice_servers::{ice_servers_from_links, IceServer};
pub use ogg_opus::OpusPacket;
pub use pacer::SendStats;
pub use simulcast::accepted_layers;
pub use source::{sample_duration, MediaSource, VideoLayer, AUDIO_CLOCK_RATE, VIDEO_CLOCK_RATE};
pub use whip::{publish, Candidate, PublishOptions, PublishSession, SelectedPair};

/// Wall-clock time in µs since the Unix epoch: what latency stamps ([`sei`]) carry, read by the
/// publisher when it stamps and by the load tool's viewers when they read the stamps back.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
