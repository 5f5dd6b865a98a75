//! WHIP ingest (RFC 9725) on webrtc-rs's sans-IO core (`rtc`): an SDP offer in, an SDP answer
//! with every server candidate out, RTP into the stream hub, and the session registry that
//! ends publishes. The connections run on castgate's own loop threads (`rtc_loop`). This is
//! the only module that receives WebRTC.

mod connection;
pub mod ice_restart;
mod ice_tcp;
mod interfaces;
mod layer_tap;
mod nat;
mod offer;
mod peer;
mod read_tap;
mod router;
mod rtc_loop;
mod rtcp_tap;
pub mod sdpfrag;
mod session;
mod simulcast_offer;
mod tcp_framing;
mod track;
mod udp_mux;

pub use session::Session;
pub use udp_mux::MuxError;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use crate::config::Config;
use crate::hub::{Hub, HubError};
use connection::Reach;
use peer::PortPicker;
use rtc_loop::RtcLoops;
use udp_mux::SharedPort;

/// Why a publish was refused or failed. `http` maps these to status codes.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is not a usable SDP offer (400).
    #[error("malformed SDP offer: {0}")]
    BadOffer(String),
    /// The offer is SDP but asks for what castgate does not take (406).
    #[error("{0}")]
    Unsupported(String),
    /// Someone is publishing this stream name already (409).
    #[error("stream {0:?} is already being published")]
    Conflict(String),
    /// Every media port of the configured range is taken (503: try again later).
    #[error("no free media port; try again later")]
    NoMediaPort,
    /// The shared media port cannot be bound on any media address (503).
    #[error("{0}")]
    MediaPort(#[from] MuxError),
    /// A WHIP PATCH fragment the connection cannot take (400).
    #[error("malformed SDP fragment: {0}")]
    BadFragment(String),
    /// No such session (404).
    #[error("no such WHIP session")]
    NoSession,
    /// Our fault (500): logged, not shown in detail.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A publish that was accepted.
#[derive(Debug)]
pub struct Answer {
    pub sdp: String,
    pub session_id: String,
    pub etag: String,
}

/// An ICE restart that was applied.
#[derive(Debug)]
pub struct Restarted {
    /// Our new credentials and candidates (`application/trickle-ice-sdpfrag`).
    pub fragment: String,
    pub etag: String,
}

pub(crate) struct Shared {
    pub config: Arc<Config>,
    pub hub: Arc<Hub>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Where hold expiries are timed (sessions may end on a media loop thread). Without one
    /// (an `Ingest` made outside a runtime) the hub's periodic sweep ends held streams.
    runtime: Option<tokio::runtime::Handle>,
}

impl Shared {
    /// Ends the streams held until `until` once it has passed (unless resumed meanwhile).
    fn expire_hold_at(&self, until: std::time::Instant) {
        let Some(runtime) = &self.runtime else {
            return;
        };
        let hub = self.hub.clone();
        runtime.spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
            for name in hub.expire_holds(std::time::Instant::now()) {
                tracing::info!(stream = %name, "no publisher within the reconnect grace: stream ended");
            }
        });
    }

    fn remove_session(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// Accepts WHIP publishes and keeps their sessions.
#[derive(Clone)]
pub struct Ingest {
    shared: Arc<Shared>,
    ports: Arc<PortPicker>,
    /// The shared media port (unless a port range is configured), bound at start or with the
    /// first publish.
    media_port: Arc<Mutex<SharedMedia>>,
    /// Started with the first publish (an `Ingest` that never takes one costs no threads).
    loops: Arc<Mutex<Option<Arc<RtcLoops>>>>,
}

#[derive(Default)]
struct SharedMedia {
    port: Option<SharedPort>,
    /// Shared sockets the media loops read already.
    listening: Vec<SocketAddr>,
    /// ICE-TCP listening sockets, one per media address, and whether loop 0 accepts on each
    /// already.
    tcp: Vec<(SocketAddr, std::net::TcpListener, bool)>,
}

impl SharedMedia {
    /// The shared port, taken (`udp_port`; 0 for an ephemeral one) on first use.
    fn port(&mut self, udp_port: u16) -> Result<&mut SharedPort, MuxError> {
        let port = match self.port.take() {
            Some(p) => p,
            None => SharedPort::bind(&[], udp_port)?,
        };
        Ok(self.port.insert(port))
    }

    /// The ICE-TCP listener on `ip` (bound now on `port` if new) and whether the loops accept
    /// on it already.
    fn tcp_listener(
        &mut self,
        ip: IpAddr,
        port: u16,
    ) -> Result<&mut (SocketAddr, std::net::TcpListener, bool), MuxError> {
        let at = match self.tcp.iter().position(|(a, _, _)| a.ip() == ip) {
            Some(at) => at,
            None => {
                let addr = SocketAddr::new(ip, port);
                let bound = ice_tcp::bind_listener(addr)
                    .and_then(|l| Ok((l.local_addr()?, l)))
                    .map_err(|source| MuxError::TcpBind { addr, source })?;
                self.tcp.push((bound.0, bound.1, false));
                self.tcp.len() - 1
            }
        };
        Ok(&mut self.tcp[at])
    }
}

impl Ingest {
    pub fn new(config: Arc<Config>, hub: Arc<Hub>) -> Ingest {
        Ingest {
            shared: Arc::new(Shared {
                config,
                hub,
                sessions: Mutex::new(HashMap::new()),
                runtime: tokio::runtime::Handle::try_current().ok(),
            }),
            ports: Arc::new(PortPicker::default()),
            media_port: Arc::default(),
            loops: Arc::default(),
        }
    }

    /// Whether publishers share one media port (`[webrtc] udp_port`) rather than take one
    /// each from `udp_port_range`.
    fn shares_a_port(&self) -> bool {
        self.shared.config.webrtc.udp_port_range.is_none()
    }

    /// Binds the shared media port on every media address now, so that a port that cannot be
    /// had (another castgate, another program) stops the start with a clear message. Returns
    /// the port (`None` in the port-range mode).
    pub fn bind_media_port(&self) -> Result<Option<u16>, IngestError> {
        if !self.shares_a_port() {
            return Ok(None);
        }
        let addresses = self.media_addresses()?;
        let mut media = self.media_port.lock().unwrap_or_else(|e| e.into_inner());
        let port = media.port(self.shared.config.webrtc.udp_port)?;
        for ip in &addresses {
            port.ensure(*ip)?;
        }
        let number = port.port();
        if let Some(tcp_port) = self.shared.config.webrtc.ice_tcp_port() {
            for ip in &addresses {
                media.tcp_listener(*ip, tcp_port)?;
            }
        }
        Ok(Some(number))
    }

    /// The shared sockets on `addresses` (bound now where new), each read by the loops, and
    /// the ICE-TCP listening addresses (each accepted on by the loops). An address that cannot
    /// be bound is left out (logged) unless none can; one without ICE-TCP only loses that.
    #[allow(clippy::type_complexity)]
    fn shared_listeners(
        &self,
        addresses: &[IpAddr],
        loops: &RtcLoops,
    ) -> Result<(Vec<(SocketAddr, Arc<std::net::UdpSocket>)>, Vec<SocketAddr>), IngestError> {
        let mut media = self.media_port.lock().unwrap_or_else(|e| e.into_inner());
        let mut listeners = Vec::with_capacity(addresses.len());
        let mut last_error = None;
        for ip in addresses {
            match media.port(self.shared.config.webrtc.udp_port)?.ensure(*ip) {
                Ok((local, socket)) => {
                    if !media.listening.contains(&local) {
                        loops.listen(local, socket.clone());
                        media.listening.push(local);
                    }
                    listeners.push((local, socket));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a media address is left out");
                    last_error = Some(e);
                }
            }
        }
        let mut tcp = Vec::new();
        if let Some(tcp_port) = self.shared.config.webrtc.ice_tcp_port() {
            for (udp_local, _) in &listeners {
                match media.tcp_listener(udp_local.ip(), tcp_port) {
                    Ok((local, listener, accepting)) => {
                        if !*accepting {
                            match listener.try_clone() {
                                Ok(l) => {
                                    loops.listen_tcp(*local, l);
                                    *accepting = true;
                                }
                                Err(e) => tracing::warn!(error = %e, "no ICE-TCP on {local}"),
                            }
                        }
                        if *accepting {
                            tcp.push(*local);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "a media address has no ICE-TCP"),
                }
            }
        }
        match last_error {
            Some(e) if listeners.is_empty() => Err(e.into()),
            _ => Ok((listeners, tcp)),
        }
    }

    /// The media loop threads, one per core, started on first use.
    fn loops(&self) -> Result<Arc<RtcLoops>, IngestError> {
        let mut loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = loops.as_ref() {
            return Ok(l.clone());
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let started = Arc::new(
            RtcLoops::start(threads)
                .map_err(|e| IngestError::Internal(format!("cannot start media loops: {e}")))?,
        );
        *loops = Some(started.clone());
        Ok(started)
    }

    /// The addresses to receive media on (see [`interfaces::media_addresses`]).
    fn media_addresses(&self) -> Result<Vec<IpAddr>, IngestError> {
        let configured = &self.shared.config.webrtc.interfaces;
        if !configured.is_empty() && !configured.iter().any(IpAddr::is_unspecified) {
            return Ok(configured.clone());
        }
        let host = interfaces::host_addresses()
            .map_err(|e| IngestError::Internal(format!("cannot list the host's addresses: {e}")))?;
        Ok(interfaces::media_addresses(configured, &host))
    }

    /// Answers a WHIP offer for `stream_name` (already validated). On error nothing is left
    /// behind: the name is free and no connection stays open.
    pub async fn publish(
        &self,
        stream_name: &str,
        offer_sdp: String,
    ) -> Result<Answer, IngestError> {
        let summary = offer::inspect(&offer_sdp)?;
        let conflict = |e| match e {
            HubError::AlreadyPublishing(n) => IngestError::Conflict(n),
        };
        let claim = self
            .shared
            .hub
            .claim_or_resume(stream_name)
            .map_err(conflict)?;
        let mut stream = claim.stream;
        if claim.resumed && stream.is_audio_only() != (summary.video_sections == 0) {
            // Back with other tracks (video added or dropped): the outputs cannot change shape
            // mid-stream, so the held stream ends and a new one starts.
            tracing::info!(
                stream = stream_name,
                "publisher back with other tracks: new stream"
            );
            self.shared.hub.release(&stream);
            stream = self.shared.hub.claim(stream_name).map_err(conflict)?;
        }
        let remote_ufrag = sdpfrag::ice_ufrag(&offer_sdp)
            .unwrap_or_default()
            .to_string();
        let session = Arc::new(Session::new(
            random_hex(16),
            format!("\"{}\"", random_hex(8)),
            remote_ufrag,
            stream.clone(),
            self.shared.clone(),
        ));
        if summary.video_sections == 0 {
            stream.set_audio_only();
        }
        match self
            .negotiate(&session, offer_sdp, summary.video_sections > 0)
            .await
        {
            Ok(sdp) => {
                if summary.has_opus {
                    // Declared before any media, so the first HLS init segment and every FLV
                    // viewer's header already include the audio track.
                    let channels = if summary.opus_stereo { 2 } else { 1 };
                    match crate::audio::audio_specific_config(48_000, channels) {
                        Ok(asc) => stream.set_aac_config(
                            bytes::Bytes::copy_from_slice(&asc),
                            48_000,
                            channels,
                        ),
                        Err(e) => tracing::warn!(error = %e, "no AAC configuration"),
                    }
                }
                self.shared
                    .sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(session.id().to_string(), session.clone());
                tokio::spawn(watchdog(session.clone()));
                Ok(Answer {
                    sdp,
                    session_id: session.id().to_string(),
                    etag: session.etag(),
                })
            }
            Err(e) => {
                session.abandon();
                Err(e)
            }
        }
    }

    async fn negotiate(
        &self,
        session: &Arc<Session>,
        offer_sdp: String,
        wants_video: bool,
    ) -> Result<String, IngestError> {
        let cfg = &self.shared.config.webrtc;
        let addresses = self.media_addresses()?;
        let loops = self.loops()?;
        let reach = if self.shares_a_port() {
            let (udp, tcp) = self.shared_listeners(&addresses, &loops)?;
            Reach::Shared { udp, tcp }
        } else {
            Reach::Own(peer::bind_sockets(
                &addresses,
                cfg.udp_port_range,
                &self.ports,
            )?)
        };
        let sdp = loops.open(session.clone(), offer_sdp, reach).await?;
        if wants_video && (!sdp.contains("m=video") || sdp.contains("m=video 0 ")) {
            return Err(IngestError::Unsupported(
                "no H.264 video could be negotiated; castgate takes H.264 (packetization-mode=1) and Opus".into(),
            ));
        }
        Ok(nat::advertise_public_ips(&sdp, &cfg.public_ips))
    }

    /// Ends the session `session_id` of `stream_name` (WHIP DELETE).
    pub fn delete(&self, stream_name: &str, session_id: &str) -> Result<(), IngestError> {
        let session = self
            .shared
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(session_id)
            .cloned();
        match session {
            Some(s) if s.stream().name() == stream_name => {
                s.close("DELETE by publisher");
                Ok(())
            }
            _ => Err(IngestError::NoSession),
        }
    }

    /// Adds the remote candidates of a trickle PATCH (parsed and checked already) to the
    /// session's connection.
    pub async fn trickle(
        &self,
        session: &Session,
        frag: &sdpfrag::SdpFrag,
    ) -> Result<(), IngestError> {
        let candidates = frag
            .candidates()
            .map(
                |(candidate, mid)| rtc::peer_connection::transport::RTCIceCandidateInit {
                    candidate: candidate.to_string(),
                    sdp_mid: mid.map(str::to_string),
                    username_fragment: frag.ice_ufrag.clone(),
                    ..Default::default()
                },
            )
            .collect::<Vec<_>>();
        if candidates.is_empty() {
            return Ok(());
        }
        session.add_remote_candidates(candidates).await
    }

    /// Restarts ICE on `session` with the publisher's new credentials and candidates in `frag`
    /// (a PATCH already parsed and checked, RFC 9725 §4.3.2). Returns the 200's fragment (our
    /// new credentials and candidates) and the session's new entity-tag.
    pub async fn restart_ice(
        &self,
        session: &Session,
        frag: sdpfrag::SdpFrag,
    ) -> Result<Restarted, IngestError> {
        let etag = format!("\"{}\"", random_hex(8));
        let answer = session.restart_ice(frag, etag.clone()).await?;
        let answer = nat::advertise_public_ips(&answer, &self.shared.config.webrtc.public_ips);
        Ok(Restarted {
            fragment: ice_restart::fragment_of(&answer),
            etag,
        })
    }

    /// The session `session_id` of `stream_name`, if it is open.
    pub fn session(&self, stream_name: &str, session_id: &str) -> Option<Arc<Session>> {
        let sessions = self
            .shared
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        sessions
            .get(session_id)
            .filter(|s| s.stream().name() == stream_name)
            .cloned()
    }

    /// Server shutdown: closes every session, stops the media loops (their connections close)
    /// and releases the media port.
    pub fn stop(&self) {
        self.close_all();
        let loops = self.loops.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(loops);
        *self.media_port.lock().unwrap_or_else(|e| e.into_inner()) = SharedMedia::default();
    }

    /// Closes every session.
    pub fn close_all(&self) {
        let sessions: Vec<Arc<Session>> = self
            .shared
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for s in sessions {
            s.close("server shutting down");
        }
        // Streams waiting for a publisher to come back end too.
        self.shared.hub.end_held();
    }
}

/// Ends a session that has had no media for the configured time (a publisher that vanished
/// without DELETE, or one that never connected).
async fn watchdog(session: Arc<Session>) {
    let timeout = session.config().idle_timeout();
    let closed = session.closed();
    tokio::pin!(closed);
    loop {
        let wait = timeout
            .saturating_sub(session.idle_for())
            .max(Duration::from_millis(100));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                if session.idle_for() >= timeout {
                    session.lose("no media");
                    return;
                }
            }
            _ = &mut closed => return,
        }
    }
}

/// `bytes` random bytes from the thread-local CSPRNG, as lowercase hex.
fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}
