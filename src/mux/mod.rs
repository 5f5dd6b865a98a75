//! Muxers (sans-IO): FLV tags, fragmented MP4, MPEG-TS segments, and the HLS segmenter and
//! playlist.

pub mod flv;
pub mod fmp4;
pub mod hls;
pub mod ts;
