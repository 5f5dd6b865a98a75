//! One WHIP session: its claimed stream, a handle on its connection (which lives on a loop
//! thread, `rtc_loop`), and the single way it ends, which releases everything once. A publisher
//! that is done (WHIP DELETE, server shutdown) ends its stream at once; one that is lost (ICE or
//! DTLS failure, its connection closed without a DELETE, no media for too long) leaves it held
//! for `[stream] reconnect_grace_secs`, for a new publish of the name to continue.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tokio::sync::watch;

use rtc::peer_connection::transport::RTCIceCandidateInit;

use super::rtc_loop::ConnectionHandle;
use super::sdpfrag::SdpFrag;
use super::{IngestError, Shared};
use crate::config::Config;
use crate::hub::Stream;

/// How a session ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The publisher (or the server) is done: the stream ends.
    Done,
    /// The publisher was lost: the stream is held for the reconnect grace.
    Lost,
    /// The offer was refused: the claim is undone.
    Refused,
}

pub struct Session {
    id: String,
    /// The resource's entity-tag and the publisher's ICE ufrag: both change with an ICE restart.
    ice: Mutex<IceState>,
    /// Held while a PATCH is checked and applied, so that two PATCHes cannot both pass one
    /// `If-Match` and restart twice.
    patches: tokio::sync::Mutex<()>,
    stream: Arc<Stream>,
    shared: Arc<Shared>,
    connection: OnceLock<ConnectionHandle>,
    created: Instant,
    /// Milliseconds after `created` when the last RTP packet arrived.
    last_media_ms: AtomicU64,
    closed: AtomicBool,
    closed_tx: watch::Sender<bool>,
}

struct IceState {
    etag: String,
    remote_ufrag: String,
}

impl Session {
    pub(super) fn new(
        id: String,
        etag: String,
        remote_ufrag: String,
        stream: Arc<Stream>,
        shared: Arc<Shared>,
    ) -> Self {
        Session {
            id,
            ice: Mutex::new(IceState { etag, remote_ufrag }),
            patches: tokio::sync::Mutex::new(()),
            stream,
            shared,
            connection: OnceLock::new(),
            created: Instant::now(),
            last_media_ms: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            closed_tx: watch::channel(false).0,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The strong entity-tag of the session resource (RFC 9725 §4.3.1), quoted.
    pub fn etag(&self) -> String {
        self.ice_state().etag.clone()
    }

    /// The publisher's current ICE ufrag: a PATCH naming another asks for a restart.
    pub fn remote_ufrag(&self) -> String {
        self.ice_state().remote_ufrag.clone()
    }

    fn ice_state(&self) -> std::sync::MutexGuard<'_, IceState> {
        self.ice.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serializes PATCHes on this session: hold the guard from the `If-Match` check until the
    /// PATCH is applied.
    pub async fn patch_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.patches.lock().await
    }

    /// Restarts the connection's ICE with the publisher's new credentials (`frag`, checked
    /// already); on success the session has the new remote ufrag and entity-tag `etag`.
    /// Returns the new answer SDP.
    pub(super) async fn restart_ice(
        &self,
        frag: SdpFrag,
        etag: String,
    ) -> Result<String, IngestError> {
        let ufrag = frag.ice_ufrag.clone().unwrap_or_default();
        let answer = self.connection()?.restart_ice(frag).await?;
        let mut ice = self.ice_state();
        ice.remote_ufrag = ufrag;
        ice.etag = etag;
        Ok(answer)
    }

    fn connection(&self) -> Result<&ConnectionHandle, IngestError> {
        self.connection
            .get()
            .ok_or_else(|| IngestError::Internal("session without a connection".into()))
    }

    /// Hands trickled remote candidates (WHIP PATCH) to the connection.
    pub(super) async fn add_remote_candidates(
        &self,
        candidates: Vec<RTCIceCandidateInit>,
    ) -> Result<(), IngestError> {
        self.connection()?.add_remote_candidates(candidates).await
    }

    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    pub(super) fn set_connection(&self, connection: ConnectionHandle) {
        let _ = self.connection.set(connection);
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

    /// Ends the session because the publisher is done (DELETE, server shutdown): the stream
    /// ends at once (playlist gets ENDLIST, FLV viewers finish), the name is free again, and the
    /// peer connection is closed in the background.
    pub fn close(&self, reason: &'static str) {
        self.shutdown(reason, End::Done);
    }

    /// Ends the session because the publisher was lost (ICE/DTLS failure, no media, its
    /// connection gone): the stream is held for the reconnect grace (ended at once when it
    /// is 0), and the peer connection is closed in the background.
    pub fn lose(&self, reason: &'static str) {
        self.shutdown(reason, End::Lost);
    }

    /// Undoes a publish whose offer was refused: no trace of it stays in the hub (a held
    /// stream it was to continue is held again).
    pub(super) fn abandon(&self) {
        self.shutdown("offer refused", End::Refused);
    }

    fn shutdown(&self, reason: &'static str, end: End) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(stream = self.stream.name(), session = %self.id, reason, "publish ended");
        match end {
            End::Done => self.shared.hub.release(&self.stream),
            End::Refused => self.shared.hub.discard(&self.stream),
            End::Lost => {
                let grace = self.shared.config.reconnect_grace();
                if let Some(until) = self.shared.hub.hold(&self.stream, grace) {
                    tracing::info!(
                        stream = self.stream.name(),
                        grace_s = grace.as_secs_f64(),
                        "stream held for the publisher to reconnect"
                    );
                    self.shared.expire_hold_at(until);
                }
            }
        }
        self.shared.remove_session(&self.id);
        let _ = self.closed_tx.send(true);
        if let Some(connection) = self.connection.get() {
            connection.close();
        }
    }
}
