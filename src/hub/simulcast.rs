//! What `/api/streams` says of a simulcast publish: the layers the publisher offered, the one
//! castgate receives, and how many packets of the others it dropped (a sender that ignores the
//! answer and sends them anyway).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Shared by the ingest, which counts, and the stream, which reports.
#[derive(Debug, Default)]
pub struct SimulcastLayers {
    pub offered: Vec<String>,
    pub received: String,
    /// Packets of layers not received, or of video SSRCs no RID identified.
    pub dropped_packets: AtomicU64,
    /// Retransmissions of the received layer identified by repaired RID, delivered.
    pub repaired_packets: AtomicU64,
}

/// A snapshot for `/api/streams`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SimulcastInfo {
    pub offered: Vec<String>,
    pub received: String,
    pub dropped_packets: u64,
    pub repaired_packets: u64,
}

impl SimulcastLayers {
    pub fn info(&self) -> SimulcastInfo {
        SimulcastInfo {
            offered: self.offered.clone(),
            received: self.received.clone(),
            dropped_packets: self.dropped_packets.load(Ordering::Relaxed),
            repaired_packets: self.repaired_packets.load(Ordering::Relaxed),
        }
    }
}
