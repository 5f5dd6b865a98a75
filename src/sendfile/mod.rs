//! Zero-copy sending of HLS segments: segments live in sealed memory files, and plain-HTTP
//! connections send them with `sendfile(2)`. Everything else (FLV, playlists, pages, TLS
//! connections) is written as before.

mod mapped;
mod socket;

pub use mapped::map_segment;
pub use socket::{SendfileListener, SendfileStream};
