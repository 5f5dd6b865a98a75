//! Fragmented MP4 (CMAF) writer: init segments (ftyp+moov) and media segments (styp+moof+mdat).
//!
//! Sans-IO and stateless: callers hand in tracks and samples, get `Bytes` back. Layout follows
//! ISO/IEC 14496-12 (ISO BMFF) and the CMAF profile of ISO/IEC 23000-19 that HLS fMP4 uses.
//! H.264 is `avc1` with the SPS and PPS also in-band before each IDR (`in_band`, where the
//! choice is explained).

mod boxes;
mod fragment;
mod in_band;
mod init;
mod sample_entry;

pub use fragment::{media_chunk, media_segment, Sample, TrackFragment};
pub use in_band::InBandParameterSets;
pub use init::{init_segment, TrackCodec, TrackSpec};

#[cfg(test)]
mod ffprobe_tests;
#[cfg(test)]
pub(crate) mod test_support;
