//! HLS (RFC 8216) over fMP4: the segmenter decides when to cut, the stream keeps the segment
//! window and storage, the playlist module writes the M3U8 text.

pub mod blocking;
mod datetime;
pub mod multivariant;
mod parts;
pub mod playlist;
pub mod segmenter;
mod stream;
pub mod strict;
mod track;
mod ts_rendition;
mod window;

pub use multivariant::{render_multivariant, Variant};
pub use playlist::{LowLatency, MediaPlaylist, PlaylistPart, PlaylistSegment};
pub use segmenter::{Decision, Segmenter};
pub use stream::{HlsConfig, HlsError, HlsProgress, HlsStream};
pub use window::Bandwidth;

#[cfg(test)]
mod stream_audio_tests;
#[cfg(test)]
mod stream_break_tests;
#[cfg(test)]
mod stream_in_band_tests;
#[cfg(test)]
mod stream_ll_tests;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod stream_ts_tests;
