//! One WHIP session: its peer connection, its claimed stream, and the single way it ends
//! (DELETE, ICE/DTLS failure, or no media for too long), which releases everything once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use tokio::sync::{watch, Notify};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
};

use super::Shared;
use crate::config::Config;
use crate::hub::Stream;

pub struct Session {
    id: String,
    etag: String,
    stream: Arc<Stream>,
    shared: Arc<Shared>,
    pc: OnceLock<Arc<dyn PeerConnection>>,
    created: Instant,
    /// Milliseconds after `created` when the last RTP packet arrived.
    last_media_ms: AtomicU64,
    closed: AtomicBool,
    closed_tx: watch::Sender<bool>,
    gathered: Notify,
    gathering_done: AtomicBool,
}

impl Session {
    pub(super) fn new(id: String, etag: String, stream: Arc<Stream>, shared: Arc<Shared>) -> Self {
        Session {
            id,
            etag,
            stream,
            shared,
            pc: OnceLock::new(),
            created: Instant::now(),
            last_media_ms: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            closed_tx: watch::channel(false).0,
            gathered: Notify::new(),
            gathering_done: AtomicBool::new(false),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn etag(&self) -> &str {
        &self.etag
    }

    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    pub(super) fn set_peer_connection(&self, pc: Arc<dyn PeerConnection>) {
        let _ = self.pc.set(pc);
    }

    /// Waits until ICE gathering completed (the answer then carries every candidate).
    pub(super) async fn wait_gathered(&self) {
        loop {
            let notified = self.gathered.notified();
            if self.gathering_done.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    pub fn media_arrived(&self) {
        let ms = self.created.elapsed().as_millis() as u64;
        self.last_media_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the last media packet (or since the session began, if none came yet).
    pub fn idle_for(&self) -> std::time::Duration {
        let last = std::time::Duration::from_millis(self.last_media_ms.load(Ordering::Relaxed));
        self.created.elapsed().saturating_sub(last)
    }

    /// Resolves once the session has closed.
    pub async fn closed(&self) {
        let mut rx = self.closed_tx.subscribe();
        // The borrow guard is not held across the await (it is not `Send`).
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Ends the session: the stream ends at once (playlist gets ENDLIST, FLV viewers finish),
    /// the name is free again, and the peer connection is closed in the background.
    pub fn close(&self, reason: &'static str) {
        self.shutdown(reason, false);
    }

    /// Undoes a publish whose offer was refused: no trace of it stays in the hub.
    pub(super) fn abandon(&self) {
        self.shutdown("offer refused", true);
    }

    fn shutdown(&self, reason: &'static str, abandon: bool) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(stream = self.stream.name(), session = %self.id, reason, "publish ended");
        if abandon {
            self.shared.hub.discard(&self.stream);
        } else {
            self.shared.hub.release(&self.stream);
        }
        self.shared.remove_session(&self.id);
        let _ = self.closed_tx.send(true);
        if let Some(pc) = self.pc.get().cloned() {
            tokio::spawn(async move {
                if let Err(e) = pc.close().await {
                    tracing::debug!(error = %e, "closing peer connection");
                }
            });
        }
    }
}

/// webrtc-rs calls this with the connection's events. It holds the session weakly: the
/// session owns the connection, not the other way round.
pub(super) struct Events {
    pub session: Weak<Session>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            if let Some(s) = self.session.upgrade() {
                s.gathering_done.store(true, Ordering::Release);
                s.gathered.notify_waiters();
            }
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let Some(s) = self.session.upgrade() else {
            return;
        };
        tracing::debug!(stream = s.stream.name(), %state, "peer connection state");
        match state {
            RTCPeerConnectionState::Failed => s.close("ICE/DTLS failed"),
            RTCPeerConnectionState::Closed => s.close("peer connection closed"),
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(s) = self.session.upgrade() {
            if !s.is_closed() {
                // Called from the connection's driver: this lands on its reactor thread
                // (`peer::reactor_threads`), next to the driver that feeds the track.
                tokio::spawn(super::track::run(track, s));
            }
        }
    }
}
