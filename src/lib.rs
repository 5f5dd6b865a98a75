//! castgate: a live-streaming gateway. WHIP (WebRTC) in; HLS (fMP4) and HTTP-FLV out.
//!
//! Data flows one way: `ingest` (WHIP, webrtc-rs) -> `rtp` (reorder, depacketize) ->
//! `media` (frames) -> `hub` (live streams, fan-out) -> `mux` (FLV, fMP4, playlists) -> `http`.
//! `rtp`, `media` and `mux` are sans-IO: bytes and timestamps in, bytes out.

pub mod audio;
pub mod client;
pub mod config;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod load;
pub mod media;
pub mod mux;
pub mod rtp;
pub mod sendfile;
pub mod server;
