//! HLS (RFC 8216) over fMP4: the segmenter decides when to cut, the stream keeps the segment
//! window and storage, the playlist module writes the M3U8 text.

mod datetime;
pub mod playlist;
pub mod segmenter;
mod stream;
mod track;
mod window;

pub use playlist::{MediaPlaylist, PlaylistSegment};
pub use segmenter::{Decision, Segmenter};
pub use stream::{HlsConfig, HlsError, HlsStream};
pub use window::Bandwidth;

#[cfg(test)]
mod stream_audio_tests;
#[cfg(test)]
mod stream_in_band_tests;
#[cfg(test)]
mod stream_tests;
