//! ICE over TCP (RFC 6544) on the shared media port, for publishers whose network lets no UDP
//! through: castgate listens on one TCP port per media address (`[webrtc] tcp_port`) and offers
//! it in every answer as a passive host candidate; a publisher's active candidate connects to
//! it. `rtc`'s sans-IO ICE agent takes TCP candidates and tags what it sends with the
//! transport, but it reads and writes no stream: castgate accepts the streams, frames and
//! deframes their messages (RFC 4571, `tcp_framing`) and hands each to the connection as it
//! does a datagram.
//!
//! A new stream belongs to no one until its first frame: that must be an ICE check (a STUN
//! binding request) whose USERNAME names a connection's ufrag, and the stream then moves to
//! that connection's loop for good. A stream that sends anything else, or nothing for
//! [`PENDING_TIMEOUT`], is closed.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::net::TcpStream;

use super::tcp_framing::{write_frame, FrameReader, MAX_BUFFERED};

/// How long a new stream may take to send its first ICE check.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(10);
/// Most streams awaiting their first check at once (per gateway); more are refused.
pub const MAX_PENDING: usize = 256;
/// Most bytes queued for a stream that does not take them; beyond, messages are dropped (as
/// a full UDP send buffer would drop them: ICE and DTLS retransmit).
pub const MAX_UNSENT: usize = 256 * 1024;

/// A listening TCP socket for ICE-TCP on `addr` (port 0: an ephemeral one), non-blocking.
pub fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    // std sets SO_REUSEADDR on Unix: a restarted gateway gets its port back at once.
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// One ICE-TCP stream of a connection: what has been read but not yet cut into frames, and
/// what is framed but not yet taken by the kernel.
pub struct TcpLink {
    pub stream: TcpStream,
    reader: FrameReader,
    unsent: Vec<u8>,
    closed: bool,
}

impl TcpLink {
    pub fn new(stream: TcpStream, reader: FrameReader) -> TcpLink {
        TcpLink {
            stream,
            reader,
            unsent: Vec::new(),
            closed: false,
        }
    }

    /// Reads what the stream has (until it would block) and appends every whole frame to
    /// `frames`, the ones read before too. At the end of the stream, or when the peer floods
    /// it with a frame that never completes, the link is closed.
    pub fn read_frames(&mut self, buf: &mut [u8], frames: &mut Vec<BytesMut>) {
        while let Some(f) = self.reader.next_frame() {
            frames.push(f);
        }
        while !self.closed {
            match self.stream.read(buf) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    self.reader.push(&buf[..n]);
                    while let Some(f) = self.reader.next_frame() {
                        frames.push(f);
                    }
                    if self.reader.buffered() > MAX_BUFFERED {
                        self.closed = true;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(error = %e, "ICE-TCP stream read");
                    self.closed = true;
                }
            }
        }
    }

    /// Frames `message` and writes it, after what is still waiting.
    pub fn send(&mut self, message: &[u8]) {
        if self.closed || self.unsent.len() + message.len() > MAX_UNSENT {
            return;
        }
        if let Err(e) = write_frame(message, &mut self.unsent) {
            tracing::debug!(error = %e, "ICE-TCP message dropped");
        }
        self.flush();
    }

    /// Writes what the kernel takes of the queued frames (again once the stream is writable).
    pub fn flush(&mut self) {
        while !self.unsent.is_empty() && !self.closed {
            match self.stream.write(&self.unsent) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    self.unsent.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(error = %e, "ICE-TCP stream write");
                    self.closed = true;
                }
            }
        }
    }
}

/// A stream accepted on the ICE-TCP port that has not yet named its connection.
pub struct PendingStream {
    pub stream: TcpStream,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub reader: FrameReader,
    pub since: Instant,
}

/// What to do with a pending stream after a read.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// No whole frame yet.
    Wait,
    /// Its first frame is there: route the stream by it.
    Route,
    /// It ended, or sent more than a frame can hold without completing one.
    Close,
}

impl PendingStream {
    /// Reads what the stream has; says whether its first frame has arrived.
    pub fn read(&mut self, buf: &mut [u8]) -> Next {
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Next::Close,
                Ok(n) => {
                    self.reader.push(&buf[..n]);
                    if self.reader.buffered() > MAX_BUFFERED {
                        return Next::Close;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
        if self.reader.peek_frame().is_some() {
            Next::Route
        } else {
            Next::Wait
        }
    }

    pub fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) >= PENDING_TIMEOUT
    }
}
