//! One publisher's connection as its loop thread drives it: the sans-IO `rtc` peer connection,
//! the UDP sockets it is reached on, and a receive pipeline per track. Datagrams go in, RTP and
//! Sender Reports go straight to the pipelines on the same thread, and what the connection and
//! the pipelines have to send (ICE, DTLS, receiver reports, PLI, NACK) goes out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use mio::net::UdpSocket;
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

use super::layer_tap::LayerTap;
use super::peer::{self, internal};
use super::session::Session;
use super::track::TrackPipeline;
use super::{simulcast_offer, IngestError};
use crate::hub::SimulcastLayers;
use crate::rtp::RtpPacket;

/// Largest datagram read: above any MTU a publisher uses.
pub const MAX_DATAGRAM: usize = 2048;

struct Track {
    id: MediaStreamTrackId,
    receiver: RTCRtpReceiverId,
    pipeline: TrackPipeline,
}

pub struct Connection {
    pc: RTCPeerConnection,
    sockets: Vec<(UdpSocket, SocketAddr)>,
    session: Arc<Session>,
    /// A publish has one or two tracks: a list is quicker to search per packet than a map.
    tracks: Vec<Track>,
    /// The earliest timer of the connection and its pipelines, cached after every change.
    deadline: Option<Instant>,
    ended: bool,
}

impl Connection {
    /// Answers `offer` for `session` with a recvonly connection (RFC 9725 §4.2) whose host
    /// candidates are the `sockets`' addresses; returns it with the answer's SDP.
    pub fn accept(
        session: Arc<Session>,
        offer: String,
        sockets: Vec<std::net::UdpSocket>,
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
        let mut bound = Vec::with_capacity(sockets.len());
        for socket in sockets {
            let local = socket.local_addr().map_err(internal)?;
            add_host_candidate(&mut pc, local)?;
            bound.push((UdpSocket::from_std(socket), local));
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
        let mut connection = Connection {
            pc,
            sockets: bound,
            session,
            tracks: Vec::new(),
            deadline: None,
            ended: false,
        };
        connection.settle(now);
        Ok((connection, sdp))
    }

    pub fn sockets_mut(&mut self) -> impl Iterator<Item = &mut UdpSocket> {
        self.sockets.iter_mut().map(|(s, _)| s)
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The connection failed or closed: the loop drops it.
    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// Feeds every datagram waiting on socket `index` (edge-triggered: read until empty).
    pub fn read(&mut self, index: usize, buf: &mut [u8], now: Instant) {
        let Some(&(_, local)) = self.sockets.get(index) else {
            return;
        };
        loop {
            let received = self.sockets[index].0.recv_from(buf);
            match received {
                Ok((n, peer_addr)) => {
                    let datagram = TaggedBytesMut {
                        now,
                        transport: TransportContext {
                            local_addr: local,
                            peer_addr,
                            ecn: None,
                            transport_protocol: TransportProtocol::UDP,
                        },
                        message: BytesMut::from(&buf[..n]),
                    };
                    // A datagram the stack cannot use (garbage, a replay, a stray STUN) is
                    // dropped; the connection goes on.
                    if let Err(e) = self.pc.handle_read(datagram) {
                        tracing::trace!(error = %e, "datagram dropped");
                    }
                    self.drain_reads(now);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ICMP errors surface here (port unreachable after the publisher left).
                    tracing::debug!(error = %e, "media socket read");
                    return;
                }
            }
        }
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
        self.session.close("internal error");
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
                        RTCPeerConnectionState::Failed => {
                            self.ended = true;
                            self.session.close("ICE/DTLS failed");
                        }
                        RTCPeerConnectionState::Closed => {
                            self.ended = true;
                            self.session.close("peer connection closed");
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

    /// Sends every datagram the connection has queued, from the socket it names.
    fn flush(&mut self) {
        while let Some(out) = self.pc.poll_write() {
            let local = out.transport.local_addr;
            let socket = self
                .sockets
                .iter()
                .find(|(_, addr)| *addr == local)
                .or_else(|| self.sockets.first());
            if let Some((socket, _)) = socket {
                // A full send buffer drops the datagram, as the network could: no retry.
                if let Err(e) = socket.send_to(&out.message, out.transport.peer_addr) {
                    tracing::trace!(error = %e, "datagram not sent");
                }
            }
        }
    }
}

fn add_host_candidate(pc: &mut RTCPeerConnection, local: SocketAddr) -> Result<(), IngestError> {
    let host = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".into(),
            address: local.ip().to_string(),
            port: local.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .map_err(internal)?;
    let init = RTCIceCandidate::from(&host).to_json().map_err(internal)?;
    pc.add_local_candidate(init).map_err(internal)
}
