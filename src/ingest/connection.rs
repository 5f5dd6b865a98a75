//! One publisher's connection as its loop thread drives it: the sans-IO `rtc` peer connection,
//! the UDP sockets it is reached on, and a receive pipeline per track. Datagrams go in, RTP and
//! Sender Reports go straight to the pipelines on the same thread, and what the connection and
//! the pipelines have to send (ICE, DTLS, receiver reports, PLI, NACK) goes out.
//!
//! A connection is reached either on sockets of its own (the port-range mode) or on the shared
//! media port (`udp_mux`): there it sends from the shared sockets until an address proves to be
//! the publisher's, and then opens a socket of its own connected to that address (on the same
//! port), which the loop registers so the publisher's media reaches it directly.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::BytesMut;
use mio::event::Source;
use mio::net::UdpSocket;
use mio::Interest;
use rtc::ice::tcp_type::TcpType;
use rtc::media_stream::MediaStreamTrackId;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpTransceiverDirection};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::ice_restart;
use super::ice_tcp::TcpLink;
use super::layer_tap::LayerTap;
use super::peer::{self, internal};
use super::router::{self, DatagramRouter, Path, RouteKey};
use super::sdpfrag::SdpFrag;
use super::session::Session;
use super::tcp_framing::FrameReader;
use super::track::TrackPipeline;
use super::{simulcast_offer, IngestError};
use crate::hub::SimulcastLayers;
use crate::rtp::RtpPacket;

/// Largest datagram read: above any MTU a publisher uses.
pub const MAX_DATAGRAM: usize = 2048;
/// Sockets of its own a connection may have: one per interface in the port-range mode, one per
/// verified address on the shared port (the loop's tokens name at most this many).
pub const MAX_SOCKETS: usize = 64;

struct Track {
    id: MediaStreamTrackId,
    receiver: RTCRtpReceiverId,
    pipeline: TrackPipeline,
}

/// A socket of the connection's own: bound to `local`, and connected to `remote` when it was
/// opened on the shared port for one verified address (or accepted there over TCP).
struct OwnSocket {
    io: Io,
    local: SocketAddr,
    remote: Option<SocketAddr>,
}

impl OwnSocket {
    fn udp(&self) -> Option<&UdpSocket> {
        match &self.io {
            Io::Udp(socket) => Some(socket),
            Io::Tcp(_) => None,
        }
    }
}

enum Io {
    Udp(UdpSocket),
    /// An ICE-TCP stream the publisher opened to the shared TCP port (`ice_tcp`).
    Tcp(TcpLink),
}

impl Io {
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Io::Udp(s) => s,
            Io::Tcp(l) => &mut l.stream,
        }
    }

    /// A stream is also watched for room to write what it queued.
    fn interest(&self) -> Interest {
        match self {
            Io::Udp(_) => Interest::READABLE,
            Io::Tcp(_) => Interest::READABLE | Interest::WRITABLE,
        }
    }
}

/// How a new connection is reached, as the HTTP side asks for it.
pub enum Reach {
    /// Sockets of its own, one per media address (port-range mode).
    Own(Vec<std::net::UdpSocket>),
    /// The shared port's sockets (one per media address), with their addresses, and the
    /// ICE-TCP listening addresses, offered as passive candidates.
    Shared {
        udp: Vec<(SocketAddr, Arc<std::net::UdpSocket>)>,
        tcp: Vec<SocketAddr>,
    },
}

/// A connection's place on the shared port; it leaves the router when dropped.
struct SharedRoute {
    listeners: Vec<(SocketAddr, Arc<std::net::UdpSocket>)>,
    router: Arc<Mutex<DatagramRouter>>,
    key: RouteKey,
    /// Paths this connection has told the router about.
    learned: Vec<Path>,
}

impl SharedRoute {
    fn router(&self) -> std::sync::MutexGuard<'_, DatagramRouter> {
        self.router.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for SharedRoute {
    fn drop(&mut self) {
        let key = self.key;
        self.router().remove_connection(key);
    }
}

pub struct Connection {
    pc: RTCPeerConnection,
    sockets: Vec<OwnSocket>,
    /// Indexes into `sockets` the loop has not registered yet.
    unregistered: Vec<usize>,
    shared: Option<SharedRoute>,
    session: Arc<Session>,
    /// A publish has one or two tracks: a list is quicker to search per packet than a map.
    tracks: Vec<Track>,
    /// The earliest timer of the connection and its pipelines, cached after every change.
    deadline: Option<Instant>,
    ended: bool,
    /// ICE and DTLS are up. Until then every datagram is followed by a pass over the stack's
    /// events: `rtc` hands the SRTP keys from its DTLS layer to its SRTP layer only while its
    /// events are polled, so SRTP that arrives in the same read burst as the DTLS flight that
    /// completes the handshake (the publisher sends media at once) would be dropped, and with
    /// it the first keyframe.
    connected: bool,
}

impl Connection {
    /// Answers `offer` for `session` with a recvonly connection (RFC 9725 §4.2) whose host
    /// candidates are the addresses it is reached on; returns it with the answer's SDP. On the
    /// shared port it joins `router` as `key`.
    pub fn accept(
        session: Arc<Session>,
        offer: String,
        reach: Reach,
        router: &Arc<Mutex<DatagramRouter>>,
        key: RouteKey,
        now: Instant,
    ) -> Result<(Connection, String), IngestError> {
        // A simulcast offer is answered for its highest layer alone (`simulcast_offer`), and
        // packets of the others are filtered out in the interceptor chain (`layer_tap`).
        let (offer, layers) = match simulcast_offer::plan(&offer) {
            Some(plan) => {
                let layers = Arc::new(SimulcastLayers {
                    offered: plan.offered.iter().map(|l| l.rid.clone()).collect(),
                    received: plan.chosen.clone(),
                    ..Default::default()
                });
                tracing::info!(
                    stream = session.stream().name(),
                    offered = ?layers.offered,
                    received = %plan.chosen,
                    "simulcast offer: receiving one layer"
                );
                session.stream().set_simulcast(layers.clone());
                let tap = LayerTap::new(plan.demux, layers);
                (plan.offer_for_answer, Some(tap))
            }
            None => (offer, None),
        };
        let mut pc = peer::build(now, layers)?;
        let offer = RTCSessionDescription::offer(offer)
            .map_err(|e| IngestError::BadOffer(e.to_string()))?;
        pc.set_remote_description(now, offer)
            .map_err(|e| IngestError::BadOffer(e.to_string()))?;
        // The answer must be recvonly whatever the offer's transceivers say.
        let transceivers: Vec<_> = pc.get_transceivers().collect();
        for id in transceivers {
            if let Some(mut t) = pc.rtp_transceiver(id) {
                t.set_direction(RTCRtpTransceiverDirection::Recvonly);
            }
        }
        let mut own = Vec::new();
        let mut shared = None;
        match reach {
            Reach::Own(sockets) => {
                for socket in sockets {
                    let local = socket.local_addr().map_err(internal)?;
                    add_host_candidate(&mut pc, local)?;
                    own.push(OwnSocket {
                        io: Io::Udp(UdpSocket::from_std(socket)),
                        local,
                        remote: None,
                    });
                }
            }
            Reach::Shared {
                udp: listeners,
                tcp,
            } => {
                for (local, _) in &listeners {
                    add_host_candidate(&mut pc, *local)?;
                }
                for local in &tcp {
                    add_tcp_candidate(&mut pc, *local)?;
                }
                shared = Some(SharedRoute {
                    listeners,
                    router: router.clone(),
                    key,
                    learned: Vec::new(),
                });
            }
        }
        // An empty candidate ends gathering: the answer carries every candidate (no trickle).
        pc.add_local_candidate(Default::default())
            .map_err(internal)?;
        let answer = pc
            .create_answer(None)
            .map_err(|e| IngestError::Unsupported(format!("cannot answer this offer: {e}")))?;
        pc.set_local_description(now, answer).map_err(internal)?;
        let sdp = pc
            .local_description()
            .ok_or_else(|| IngestError::Internal("no local description".into()))?
            .sdp;
        if let Some(route) = &shared {
            // Registered before the answer leaves: the publisher's first check must find us.
            let ufrag = super::sdpfrag::ice_ufrag(&sdp)
                .ok_or_else(|| IngestError::Internal("the answer has no ICE ufrag".into()))?;
            if !route.router().add_connection(route.key, ufrag) {
                return Err(IngestError::Internal("ICE ufrag already in use".into()));
            }
        }
        let mut connection = Connection {
            pc,
            unregistered: (0..own.len()).collect(),
            sockets: own,
            shared,
            session,
            tracks: Vec::new(),
            deadline: None,
            ended: false,
            connected: false,
        };
        connection.settle(now);
        Ok((connection, sdp))
    }

    pub fn sockets_mut(&mut self) -> impl Iterator<Item = &mut dyn Source> {
        self.sockets.iter_mut().map(|s| s.io.source())
    }

    /// The sockets opened since the last call, with their index and what to watch them for,
    /// for the loop to register.
    pub fn take_unregistered(&mut self) -> Vec<(usize, &mut dyn Source, Interest)> {
        let new = std::mem::take(&mut self.unregistered);
        self.sockets
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| new.contains(i))
            .map(|(i, s)| {
                let interest = s.io.interest();
                (i, s.io.source(), interest)
            })
            .collect()
    }

    /// Takes an ICE-TCP stream whose first frame named this connection (`ice_tcp`), with what
    /// was read from it already; its frames are fed now, and the loop registers it next.
    pub fn add_tcp(
        &mut self,
        stream: mio::net::TcpStream,
        local: SocketAddr,
        peer: SocketAddr,
        reader: FrameReader,
        buf: &mut [u8],
        now: Instant,
    ) {
        if self.sockets.len() >= MAX_SOCKETS {
            return;
        }
        tracing::debug!(stream = self.session.stream().name(), %peer, "ICE-TCP stream");
        self.unregistered.push(self.sockets.len());
        self.sockets.push(OwnSocket {
            io: Io::Tcp(TcpLink::new(stream, reader)),
            local,
            remote: Some(peer),
        });
        self.read(self.sockets.len() - 1, buf, now);
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The connection failed or closed: the loop drops it.
    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// Feeds every datagram waiting on socket `index` (edge-triggered: read until empty), or
    /// every frame of its stream, after writing what the stream can take of its queue.
    pub fn read(&mut self, index: usize, buf: &mut [u8], now: Instant) {
        let Some(own) = self.sockets.get_mut(index) else {
            return;
        };
        let local = own.local;
        if let Io::Tcp(link) = &mut own.io {
            let Some(peer) = own.remote else { return };
            link.flush();
            let mut frames = Vec::new();
            link.read_frames(buf, &mut frames);
            for frame in frames {
                self.receive_over(TransportProtocol::TCP, local, peer, &frame, now);
            }
            return;
        }
        loop {
            let Some(Io::Udp(socket)) = self.sockets.get(index).map(|s| &s.io) else {
                return;
            };
            let received = socket.recv_from(buf);
            match received {
                Ok((n, peer_addr)) => self.receive(local, peer_addr, &buf[..n], now),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                // A connected socket reports an ICMP error once; what follows it is still read.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted | std::io::ErrorKind::ConnectionRefused
                    ) => {}
                Err(e) => {
                    // ICMP errors surface here (port unreachable after the publisher left).
                    tracing::debug!(error = %e, "media socket read");
                    return;
                }
            }
        }
    }

    /// Adds trickled remote candidates (already checked by `sdpfrag`); ICE checks them on its
    /// next timer.
    pub fn add_remote_candidates(
        &mut self,
        candidates: Vec<rtc::peer_connection::transport::RTCIceCandidateInit>,
    ) -> Result<(), IngestError> {
        for candidate in candidates {
            let text = candidate.candidate.clone();
            self.pc
                .add_remote_candidate(candidate)
                .map_err(|e| IngestError::BadFragment(format!("candidate {text:?}: {e}")))?;
        }
        Ok(())
    }

    /// An ICE restart the publisher asked for (WHIP PATCH with new credentials, already parsed
    /// and checked): its old offer with the new credentials and candidates is applied as a new
    /// offer, which restarts ICE on our side too (new local credentials, the same candidates,
    /// DTLS and SRTP kept), and the new answer is returned. On the shared port the router now
    /// knows the connection by its new ufrag (checks with the old one no longer reach it).
    pub fn restart_ice(&mut self, frag: &SdpFrag, now: Instant) -> Result<String, IngestError> {
        let previous = self
            .pc
            .remote_description()
            .ok_or_else(|| IngestError::Internal("no remote description".into()))?
            .sdp
            .clone();
        let offer = ice_restart::restarted(&previous, frag).ok_or_else(|| {
            IngestError::BadFragment("an ICE restart needs ice-ufrag and ice-pwd".into())
        })?;
        let offer = RTCSessionDescription::offer(offer)
            .map_err(|e| IngestError::BadFragment(e.to_string()))?;
        self.pc
            .set_remote_description(now, offer)
            .map_err(|e| IngestError::BadFragment(format!("cannot restart ICE with it: {e}")))?;
        let answered = self
            .pc
            .create_answer(None)
            .and_then(|answer| self.pc.set_local_description(now, answer));
        if let Err(e) = answered {
            // Back to the session as it was, so that the media goes on and a later restart
            // can be tried.
            if let Err(e) = RTCSessionDescription::rollback(None)
                .and_then(|rollback| self.pc.set_remote_description(now, rollback))
            {
                tracing::warn!(error = %e, "ICE restart not rolled back");
            }
            return Err(IngestError::BadFragment(format!(
                "cannot restart ICE with it: {e}"
            )));
        }
        let sdp = self
            .pc
            .local_description()
            .ok_or_else(|| IngestError::Internal("no local description".into()))?
            .sdp;
        if let Some(route) = &self.shared {
            let ufrag = super::sdpfrag::ice_ufrag(&sdp)
                .ok_or_else(|| IngestError::Internal("the answer has no ICE ufrag".into()))?;
            if !route.router().set_ufrag(route.key, ufrag) {
                return Err(IngestError::Internal("ICE ufrag already in use".into()));
            }
        }
        tracing::info!(
            stream = self.session.stream().name(),
            "ICE restarted by the publisher"
        );
        Ok(sdp)
    }

    /// Feeds one datagram that reached `local` from `peer_addr` (read here, or routed from the
    /// shared port).
    pub fn receive(&mut self, local: SocketAddr, peer_addr: SocketAddr, data: &[u8], now: Instant) {
        self.receive_over(TransportProtocol::UDP, local, peer_addr, data, now);
    }

    /// Feeds one message that came over `protocol` (a datagram, or an ICE-TCP frame).
    fn receive_over(
        &mut self,
        protocol: TransportProtocol,
        local: SocketAddr,
        peer_addr: SocketAddr,
        data: &[u8],
        now: Instant,
    ) {
        let datagram = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: local,
                peer_addr,
                ecn: None,
                transport_protocol: protocol,
            },
            message: BytesMut::from(data),
        };
        // A datagram the stack cannot use (garbage, a replay, a stray STUN) is dropped; the
        // connection goes on.
        if let Err(e) = self.pc.handle_read(datagram) {
            tracing::trace!(error = %e, "datagram dropped");
        }
        if !self.connected {
            self.handle_events(now);
        }
        self.drain_reads(now);
    }

    /// Fires due timers, hands out events, sends what is queued, and recomputes the deadline.
    /// Called after anything that may have changed the connection.
    pub fn settle(&mut self, now: Instant) {
        if self.pc.poll_timeout().is_some_and(|d| d <= now) {
            if let Err(e) = self.pc.handle_timeout(now) {
                tracing::debug!(error = %e, "peer connection timer");
            }
            self.drain_reads(now);
        }
        for track in self.tracks.iter_mut() {
            if track.pipeline.poll_timeout() <= now {
                track.pipeline.handle_timeout(now);
            }
        }
        self.handle_events(now);
        self.send_feedback(now);
        self.flush();
        let pipelines = self.tracks.iter().map(|t| t.pipeline.poll_timeout());
        self.deadline = self.pc.poll_timeout().into_iter().chain(pipelines).min();
    }

    /// Closes the peer connection (a DTLS close alert goes out) and stops.
    pub fn close(&mut self) {
        if let Err(e) = self.pc.close() {
            tracing::debug!(error = %e, "closing peer connection");
        }
        self.flush();
        self.ended = true;
    }

    /// Gives up on the connection after an internal failure: its publish ends, the loop drops
    /// it (nothing more is sent: its state may be broken).
    pub fn abort(&mut self) {
        self.ended = true;
        self.session.lose("internal error");
    }

    fn drain_reads(&mut self, now: Instant) {
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            let track_id = match &message {
                RTCMessage::RtpPacket(id, _) | RTCMessage::RtcpPacket(id, _) => id,
                _ => continue,
            };
            if !self.tracks.iter().any(|t| t.id == *track_id) {
                // A track's first packet comes out together with its open event: make its
                // pipeline first, so that the packet (often the first keyframe's) is not lost.
                self.handle_events(now);
            }
            match message {
                RTCMessage::RtpPacket(track_id, p) => {
                    if let Some(track) = self.tracks.iter_mut().find(|t| t.id == track_id) {
                        let packet = RtpPacket {
                            payload_type: p.header.payload_type,
                            sequence: p.header.sequence_number,
                            timestamp: p.header.timestamp,
                            ssrc: p.header.ssrc,
                            marker: p.header.marker,
                            payload: p.payload,
                        };
                        track.pipeline.on_rtp(packet, now);
                    }
                }
                RTCMessage::RtcpPacket(track_id, packets) => {
                    if let Some(track) = self.tracks.iter_mut().find(|t| t.id == track_id) {
                        track.pipeline.on_rtcp(&packets);
                    }
                }
                _ => {}
            }
        }
    }

    fn handle_events(&mut self, now: Instant) {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    // A renegotiation (an ICE restart) opens the same tracks again: their
                    // pipelines go on, or the frames until the next keyframe would be lost.
                    if self.tracks.iter().any(|t| {
                        t.id == init.track_id
                            && t.receiver == init.receiver_id
                            && t.pipeline.ssrc() == init.ssrc
                    }) {
                        continue;
                    }
                    let Some(receiver) = self.pc.rtp_receiver(init.receiver_id) else {
                        continue;
                    };
                    let track = receiver.track();
                    let kind = track.kind();
                    let codec = track.codec(init.ssrc).cloned();
                    let pipeline = TrackPipeline::new(
                        self.session.clone(),
                        kind,
                        codec.as_ref(),
                        init.ssrc,
                        now,
                    );
                    if let Some(pipeline) = pipeline {
                        self.tracks.retain(|t| t.id != init.track_id);
                        self.tracks.push(Track {
                            id: init.track_id,
                            receiver: init.receiver_id,
                            pipeline,
                        });
                    }
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    tracing::debug!(stream = self.session.stream().name(), %state, "peer connection state");
                    match state {
                        RTCPeerConnectionState::Connected => self.connected = true,
                        RTCPeerConnectionState::Failed => {
                            self.ended = true;
                            self.session.lose("ICE/DTLS failed");
                        }
                        RTCPeerConnectionState::Closed => {
                            self.ended = true;
                            self.session.lose("peer connection closed");
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }

    /// The pipelines' PLIs and NACKs, through their track's receiver.
    fn send_feedback(&mut self, now: Instant) {
        for track in self.tracks.iter_mut() {
            let mut packets = Vec::new();
            while let Some(p) = track.pipeline.poll_feedback() {
                packets.push(p);
            }
            if packets.is_empty() {
                continue;
            }
            if let Some(mut receiver) = self.pc.rtp_receiver(track.receiver) {
                if let Err(e) = receiver.write_rtcp(now, packets) {
                    tracing::debug!(error = %e, "RTCP feedback not sent");
                }
            }
        }
    }

    /// Sends every datagram the connection has queued, from the socket it names. A full send
    /// buffer drops the datagram, as the network could: no retry.
    fn flush(&mut self) {
        while let Some(out) = self.pc.poll_write() {
            let (local, peer) = (out.transport.local_addr, out.transport.peer_addr);
            if out.transport.transport_protocol == TransportProtocol::TCP {
                let link = self.sockets.iter_mut().find_map(|s| match &mut s.io {
                    Io::Tcp(link) if s.local == local && s.remote == Some(peer) => Some(link),
                    _ => None,
                });
                if let Some(link) = link {
                    link.send(&out.message);
                }
                continue;
            }
            if let Some(route) = &self.shared {
                if let Some(txid) = router::stun_request_transaction(&out.message) {
                    let key = route.key;
                    route.router().expect_response(key, txid);
                } else if router::sending_proves_path(&out.message) {
                    self.learn_path((local, peer));
                }
            }
            let connected = self.sockets.iter().find_map(|s| match &s.io {
                Io::Udp(socket) if s.local == local && s.remote == Some(peer) => Some(socket),
                _ => None,
            });
            let sent = if let Some(socket) = connected {
                socket.send(&out.message)
            } else if let Some(route) = &self.shared {
                let listener = route
                    .listeners
                    .iter()
                    .find(|(addr, _)| *addr == local)
                    .or_else(|| route.listeners.first());
                match listener {
                    Some((_, l)) => l.send_to(&out.message, peer),
                    None => continue,
                }
            } else {
                let own = self
                    .sockets
                    .iter()
                    .find(|s| s.local == local)
                    .and_then(OwnSocket::udp)
                    .or_else(|| self.sockets.iter().find_map(OwnSocket::udp));
                match own {
                    Some(socket) => socket.send_to(&out.message, peer),
                    None => continue,
                }
            };
            if let Err(e) = sent {
                tracing::trace!(error = %e, "datagram not sent");
            }
        }
    }

    /// `path` is the publisher's (see `router::sending_proves_path`): route the shared port's
    /// datagrams on it here, and open a socket of our own for it.
    fn learn_path(&mut self, path: Path) {
        let Some(route) = self.shared.as_mut() else {
            return;
        };
        if route.learned.contains(&path) {
            return;
        }
        let key = route.key;
        if !route.router().add_path(key, path) {
            return;
        }
        // The router keeps the latest MAX_PATHS paths; so does this list.
        if route.learned.len() >= router::MAX_PATHS {
            route.learned.remove(0);
        }
        route.learned.push(path);
        let has_socket = self
            .sockets
            .iter()
            .any(|s| s.local == path.0 && s.remote == Some(path.1));
        if has_socket || self.sockets.len() >= MAX_SOCKETS {
            // The shared socket and the router carry it, one hop slower.
            return;
        }
        match super::udp_mux::connected_socket(path.0, path.1) {
            Ok(socket) => {
                tracing::debug!(local = %path.0, remote = %path.1, "publisher address verified");
                self.unregistered.push(self.sockets.len());
                self.sockets.push(OwnSocket {
                    io: Io::Udp(UdpSocket::from_std(socket)),
                    local: path.0,
                    remote: Some(path.1),
                });
            }
            // The shared socket and the router still carry this path, one hop slower.
            Err(e) => {
                tracing::warn!(error = %e, remote = %path.1, "no socket of its own for a publisher")
            }
        }
    }
}

/// A UDP host candidate on `local`.
fn add_host_candidate(pc: &mut RTCPeerConnection, local: SocketAddr) -> Result<(), IngestError> {
    add_candidate(pc, local, "udp", TcpType::Unspecified)
}

/// A passive ICE-TCP host candidate on `local` (RFC 6544 §4.1): publishers connect to it.
fn add_tcp_candidate(pc: &mut RTCPeerConnection, local: SocketAddr) -> Result<(), IngestError> {
    add_candidate(pc, local, "tcp", TcpType::Passive)
}

fn add_candidate(
    pc: &mut RTCPeerConnection,
    local: SocketAddr,
    network: &str,
    tcp_type: TcpType,
) -> Result<(), IngestError> {
    let host = CandidateHostConfig {
        base_config: CandidateConfig {
            network: network.into(),
            address: local.ip().to_string(),
            port: local.port(),
            component: 1,
            ..Default::default()
        },
        tcp_type,
    }
    .new_candidate_host()
    .map_err(internal)?;
    let init = RTCIceCandidate::from(&host).to_json().map_err(internal)?;
    pc.add_local_candidate(init).map_err(internal)
}
