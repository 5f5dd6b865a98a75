//! The one error type of the WHIP client: media files, ffmpeg, HTTP signalling and WebRTC.

use std::path::PathBuf;

use super::ogg_opus::OggError;

/// Why publishing (or preparing media for it) failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ffmpeg failed: {0}")]
    Ffmpeg(String),
    #[error("{path}: no H.264 access unit found in the Annex B stream")]
    NoVideo { path: PathBuf },
    #[error("{path}: the first access unit is not a keyframe (IDR)")]
    NoLeadingKeyframe { path: PathBuf },
    #[error("invalid Ogg Opus audio: {0}")]
    Audio(#[from] OggError),
    #[error("invalid frame rate {0}: must be 1..=1000")]
    FrameRate(u32),
    #[error("invalid simulcast layers: {0}")]
    Layers(String),
    #[error("cannot send these media sources back to back: {0}")]
    Join(&'static str),
    #[error("invalid WHIP endpoint URL {url}: {reason}")]
    Endpoint { url: String, reason: String },
    #[error("HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("WHIP server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("relay-only ICE needs a TURN server, and none was given or advertised")]
    NoIceServer,
    #[error("WHIP 201 response has no usable Location header")]
    MissingLocation,
    #[error("WebRTC error: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    #[error("ICE restart refused: {0}")]
    Restart(String),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("peer connection ended: {0}")]
    ConnectionLost(String),
    #[error("the sender task stopped abnormally: {0}")]
    Task(String),
}
