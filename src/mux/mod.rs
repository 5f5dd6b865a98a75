//! Muxers (sans-IO): FLV tags, fragmented MP4, and the HLS segmenter and playlist.

pub mod flv;
pub mod fmp4;
pub mod hls;
