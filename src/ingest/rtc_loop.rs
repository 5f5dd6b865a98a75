//! The threads that drive every publisher's connection: one per core, each an epoll (mio) loop
//! that owns its connections and their sockets, waits for datagrams or the earliest timer, and
//! runs the whole receive path (SRTP, depacketizing, transcoding, muxing into the hub) right
//! there, with no task wake-up per packet. The HTTP side talks to a loop through commands and
//! a wake-up; a new connection goes to the loop with the fewest.
//!
//! The shared media port's sockets (`udp_mux`) are read by loop 0: each datagram goes to its
//! connection through the router, handed over with a command when that connection lives on
//! another loop. Only a publisher's first checks, and datagrams of an address that has no
//! socket of its own yet, take that way.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use rtc::peer_connection::transport::RTCIceCandidateInit;
use tokio::sync::oneshot;

use super::connection::{Connection, Reach, MAX_DATAGRAM, MAX_SOCKETS};
use super::ice_tcp::{self, PendingStream};
use super::router::{self, DatagramRouter, RouteKey};
use super::sdpfrag::SdpFrag;
use super::session::Session;
use super::tcp_framing::FrameReader;
use super::IngestError;

const WAKER: Token = Token(usize::MAX);
/// Shared listener `i` on loop 0 has token `LISTENER_BASE - i`.
const LISTENER_BASE: usize = usize::MAX - 1;
/// ICE-TCP listener `j` on loop 0 has token `TCP_LISTENER_BASE - j`.
const TCP_LISTENER_BASE: usize = usize::MAX - 128;
/// A stream accepted there that has not named its connection yet, in place `k` of loop 0's
/// pending list, has token `PENDING_BASE - k`.
const PENDING_BASE: usize = usize::MAX - 1024;
/// Most listening sockets of each kind (one per media address).
const MAX_LISTENERS: usize = 64;

// The token ranges do not meet.
const _: () = assert!(LISTENER_BASE - MAX_LISTENERS > TCP_LISTENER_BASE);
const _: () = assert!(TCP_LISTENER_BASE - MAX_LISTENERS > PENDING_BASE);

/// What a token on a loop names.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    Waker,
    Listener(usize),
    TcpListener(usize),
    Pending(usize),
    /// A connection's socket: its slot and its index there.
    Connection(usize, usize),
}

fn source_of(token: Token) -> Source {
    let t = token.0;
    if token == WAKER {
        Source::Waker
    } else if t > LISTENER_BASE - MAX_LISTENERS {
        Source::Listener(LISTENER_BASE - t)
    } else if t <= TCP_LISTENER_BASE && t > TCP_LISTENER_BASE - MAX_LISTENERS {
        Source::TcpListener(TCP_LISTENER_BASE - t)
    } else if t <= PENDING_BASE && t > PENDING_BASE - ice_tcp::MAX_PENDING {
        Source::Pending(PENDING_BASE - t)
    } else {
        Source::Connection(t / MAX_SOCKETS, t % MAX_SOCKETS)
    }
}

enum Command {
    Open {
        id: u64,
        session: Arc<Session>,
        offer: String,
        reach: Reach,
        reply: oneshot::Sender<Result<String, IngestError>>,
    },
    Close(u64),
    /// Remote candidates trickled by the publisher (WHIP PATCH).
    AddCandidates {
        id: u64,
        candidates: Vec<RTCIceCandidateInit>,
        reply: oneshot::Sender<Result<(), IngestError>>,
    },
    /// An ICE restart asked by the publisher (WHIP PATCH with new credentials).
    RestartIce {
        id: u64,
        frag: SdpFrag,
        reply: oneshot::Sender<Result<String, IngestError>>,
    },
    /// A shared socket to read (loop 0 only).
    Listen(SocketAddr, Arc<UdpSocket>),
    /// An ICE-TCP listening socket to accept on (loop 0 only).
    ListenTcp(SocketAddr, std::net::TcpListener),
    /// An ICE-TCP stream whose first frame named connection `id` on this loop.
    TcpStream {
        id: u64,
        stream: mio::net::TcpStream,
        local: SocketAddr,
        peer: SocketAddr,
        reader: FrameReader,
    },
    /// A datagram from the shared port for connection `id` on this loop.
    Datagram {
        id: u64,
        local: SocketAddr,
        peer: SocketAddr,
        data: Vec<u8>,
    },
    Stop,
}

/// What the HTTP side holds of one loop thread.
struct LoopShared {
    commands: Mutex<mpsc::Sender<Command>>,
    waker: Waker,
    /// Connections on this loop, to place new ones.
    connections: AtomicUsize,
}

impl LoopShared {
    fn send(&self, command: Command) {
        let _ = self
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(command);
        if let Err(e) = self.waker.wake() {
            tracing::error!(error = %e, "cannot wake a media loop");
        }
    }
}

/// The loop threads. Dropping it stops them (their connections close).
pub struct RtcLoops {
    loops: Arc<[Arc<LoopShared>]>,
    next_id: AtomicU64,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A session's way to close its connection on whichever loop holds it.
pub struct ConnectionHandle {
    owner: Arc<LoopShared>,
    id: u64,
}

impl ConnectionHandle {
    /// Closes the connection (from any thread, more than once is fine).
    pub fn close(&self) {
        self.owner.send(Command::Close(self.id));
    }

    /// Adds remote candidates to the connection; fails if one is refused (the ones before it
    /// stay) or the connection is gone.
    pub async fn add_remote_candidates(
        &self,
        candidates: Vec<RTCIceCandidateInit>,
    ) -> Result<(), IngestError> {
        let id = self.id;
        self.ask(|reply| Command::AddCandidates {
            id,
            candidates,
            reply,
        })
        .await
    }

    /// Restarts the connection's ICE with the publisher's new credentials and candidates in
    /// `frag`; returns the new answer SDP.
    pub async fn restart_ice(&self, frag: SdpFrag) -> Result<String, IngestError> {
        let id = self.id;
        self.ask(|reply| Command::RestartIce { id, frag, reply })
            .await
    }

    /// Sends the command `make` builds around a reply channel, and waits for the reply (the
    /// connection is gone if its loop drops the channel).
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, IngestError>>) -> Command,
    ) -> Result<T, IngestError> {
        let (reply, done) = oneshot::channel();
        self.owner.send(make(reply));
        done.await.map_err(|_| IngestError::NoSession)?
    }
}

impl RtcLoops {
    /// Starts `threads` loop threads.
    pub fn start(threads: usize) -> std::io::Result<RtcLoops> {
        let mut loops = Vec::with_capacity(threads);
        let mut states = Vec::with_capacity(threads);
        for _ in 0..threads.max(1) {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKER)?;
            let (tx, rx) = mpsc::channel();
            loops.push(Arc::new(LoopShared {
                commands: Mutex::new(tx),
                waker,
                connections: AtomicUsize::new(0),
            }));
            states.push((poll, rx));
        }
        let loops: Arc<[Arc<LoopShared>]> = loops.into();
        let router = Arc::new(Mutex::new(DatagramRouter::default()));
        let mut threads = Vec::with_capacity(loops.len());
        for (index, (poll, commands)) in states.into_iter().enumerate() {
            let state = LoopThread {
                index,
                poll,
                commands,
                slots: Vec::new(),
                loops: loops.clone(),
                router: router.clone(),
                listeners: Vec::new(),
                tcp_listeners: Vec::new(),
                pending: Vec::new(),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("castgate-rtc{index}"))
                    .spawn(move || state.run())?,
            );
        }
        Ok(RtcLoops {
            loops,
            next_id: AtomicU64::new(1),
            threads,
        })
    }

    /// Has loop 0 read the shared socket `socket` (bound to `local`) from now on.
    pub fn listen(&self, local: SocketAddr, socket: Arc<UdpSocket>) {
        self.loops[0].send(Command::Listen(local, socket));
    }

    /// Has loop 0 accept ICE-TCP streams on `listener` (bound to `local`) from now on.
    pub fn listen_tcp(&self, local: SocketAddr, listener: std::net::TcpListener) {
        self.loops[0].send(Command::ListenTcp(local, listener));
    }

    /// Answers `offer` with a connection on the least busy loop, reached as `reach` says; the
    /// session gets the handle that closes it. Returns the answer's SDP.
    pub async fn open(
        &self,
        session: Arc<Session>,
        offer: String,
        reach: Reach,
    ) -> Result<String, IngestError> {
        let owner = self
            .loops
            .iter()
            .min_by_key(|l| l.connections.load(Ordering::Relaxed))
            .ok_or_else(|| IngestError::Internal("no media loop".into()))?
            .clone();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        session.set_connection(ConnectionHandle {
            owner: owner.clone(),
            id,
        });
        let (reply, answer) = oneshot::channel();
        owner.send(Command::Open {
            id,
            session,
            offer,
            reach,
            reply,
        });
        answer
            .await
            .map_err(|_| IngestError::Internal("the media loop stopped".into()))?
    }
}

impl Drop for RtcLoops {
    fn drop(&mut self) {
        for l in self.loops.iter() {
            l.send(Command::Stop);
        }
        // Their connections close and their sockets (the shared port's too) are released
        // before this returns, so a gateway started next can bind the same port.
        for t in self.threads.drain(..) {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// Runs `f` on one connection; if it panics (a bug in the stack or a codec, met by one
/// publisher's packets), that connection is dropped and its publish ended, and the loop's
/// other connections go on.
fn guarded(connection: &mut Connection, f: impl FnOnce(&mut Connection)) {
    if !survives(|| f(&mut *connection)) {
        tracing::error!("a publisher's connection failed inside castgate; it is closed");
        connection.abort();
    }
}

/// Whether `f` returned rather than panicked.
fn survives(f: impl FnOnce()) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok()
}

struct Slot {
    id: u64,
    connection: Connection,
}

struct LoopThread {
    /// This loop's place in `loops`.
    index: usize,
    poll: Poll,
    commands: mpsc::Receiver<Command>,
    /// Connection in slot `i` has tokens `i * MAX_SOCKETS + socket index`.
    slots: Vec<Option<Slot>>,
    loops: Arc<[Arc<LoopShared>]>,
    router: Arc<Mutex<DatagramRouter>>,
    /// The shared port's sockets this loop reads (loop 0).
    listeners: Vec<(SocketAddr, Arc<UdpSocket>)>,
    /// The ICE-TCP listening sockets (loop 0).
    tcp_listeners: Vec<(SocketAddr, mio::net::TcpListener)>,
    /// Streams accepted on them that have not named their connection yet (loop 0).
    pending: Vec<Option<PendingStream>>,
}

impl LoopThread {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut touched: Vec<usize> = Vec::new();
        loop {
            let pending = self.pending.iter().flatten();
            let next = self
                .slots
                .iter()
                .flatten()
                .filter_map(|s| s.connection.deadline())
                .chain(pending.map(|p| p.since + ice_tcp::PENDING_TIMEOUT))
                .min();
            let timeout = next.map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "media loop cannot poll; its publishers stop");
                    return;
                }
            }
            let now = Instant::now();
            touched.clear();
            for event in events.iter() {
                match source_of(event.token()) {
                    Source::Waker => {
                        if !self.take_commands(now, &mut touched) {
                            self.close_all();
                            return;
                        }
                    }
                    Source::Listener(i) => self.read_listener(i, &mut buf, now, &mut touched),
                    Source::TcpListener(j) => self.accept_tcp(j, &mut buf, now, &mut touched),
                    Source::Pending(k) => self.read_pending(k, &mut buf, now, &mut touched),
                    Source::Connection(slot, socket) => {
                        if let Some(Some(s)) = self.slots.get_mut(slot) {
                            guarded(&mut s.connection, |c| c.read(socket, &mut buf, now));
                            touched.push(slot);
                        }
                    }
                }
            }
            self.expire_pending(now);
            for (i, slot) in self.slots.iter_mut().enumerate() {
                let Some(s) = slot else { continue };
                if touched.contains(&i) || s.connection.deadline().is_some_and(|d| d <= now) {
                    guarded(&mut s.connection, |c| c.settle(now));
                    register_new_sockets(&self.poll, i, &mut s.connection);
                }
            }
            self.drop_ended();
        }
    }

    /// Reads every datagram waiting on shared listener `i` and hands each to its connection.
    fn read_listener(&mut self, i: usize, buf: &mut [u8], now: Instant, touched: &mut Vec<usize>) {
        let Some((local, socket)) = self.listeners.get(i).cloned() else {
            return;
        };
        loop {
            let (n, peer) = match socket.recv_from(buf) {
                Ok(received) => received,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "shared media socket read");
                    return;
                }
            };
            let routed = self
                .router
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .route((local, peer), &buf[..n]);
            match routed {
                Ok(key) => self.deliver(key, local, peer, &buf[..n], now, touched),
                Err(why) => tracing::trace!(?why, %peer, "datagram on the shared port dropped"),
            }
        }
    }

    /// Accepts every stream waiting on ICE-TCP listener `j`; each waits for its first frame.
    fn accept_tcp(&mut self, j: usize, buf: &mut [u8], now: Instant, touched: &mut Vec<usize>) {
        loop {
            let Some((local, listener)) = self.tcp_listeners.get(j) else {
                return;
            };
            let local = *local;
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: the next accept may work.
                    tracing::warn!(error = %e, "ICE-TCP accept");
                    return;
                }
            };
            let Some(k) = (0..ice_tcp::MAX_PENDING)
                .find(|k| self.pending.get(*k).is_none_or(Option::is_none))
            else {
                tracing::debug!(%peer, "too many ICE-TCP streams awaiting a check; refused");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let mut pending = PendingStream {
                stream,
                local,
                peer,
                reader: FrameReader::default(),
                since: now,
            };
            if let Err(e) = self.poll.registry().register(
                &mut pending.stream,
                Token(PENDING_BASE - k),
                Interest::READABLE,
            ) {
                tracing::warn!(error = %e, "cannot watch an ICE-TCP stream");
                continue;
            }
            if k == self.pending.len() {
                self.pending.push(Some(pending));
            } else {
                self.pending[k] = Some(pending);
            }
            // What came with the connection: edge-triggered epoll may not report it again.
            self.read_pending(k, buf, now, touched);
        }
    }

    /// Reads pending stream `k`; once its first frame is there, hands the stream to the
    /// connection that frame's ICE check names, or closes it.
    fn read_pending(&mut self, k: usize, buf: &mut [u8], now: Instant, touched: &mut Vec<usize>) {
        let Some(Some(pending)) = self.pending.get_mut(k) else {
            return;
        };
        let next = pending.read(buf);
        if next == ice_tcp::Next::Wait {
            return;
        }
        let Some(mut pending) = self.pending[k].take() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut pending.stream);
        if next == ice_tcp::Next::Close {
            return;
        }
        let path = (pending.local, pending.peer);
        let key = pending
            .reader
            .peek_frame()
            .filter(|frame| router::stun_request_ufrag(frame).is_some())
            .and_then(|frame| {
                self.router
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .route(path, frame)
                    .ok()
            });
        let Some(key) = key else {
            tracing::debug!(peer = %pending.peer, "ICE-TCP stream names no connection; closed");
            return;
        };
        let PendingStream {
            stream,
            local,
            peer,
            reader,
            ..
        } = pending;
        if key.loop_index != self.index {
            if let Some(owner) = self.loops.get(key.loop_index) {
                owner.send(Command::TcpStream {
                    id: key.id,
                    stream,
                    local,
                    peer,
                    reader,
                });
            }
            return;
        }
        if let Some((i, s)) = self.slot_mut(key.id) {
            guarded(&mut s.connection, |c| {
                c.add_tcp(stream, local, peer, reader, buf, now)
            });
            touched.push(i);
        }
    }

    /// Closes the pending streams that sent no check in time.
    fn expire_pending(&mut self, now: Instant) {
        for slot in self.pending.iter_mut() {
            if slot.as_ref().is_some_and(|p| p.expired(now)) {
                if let Some(mut p) = slot.take() {
                    let _ = self.poll.registry().deregister(&mut p.stream);
                    tracing::debug!(peer = %p.peer, "ICE-TCP stream sent no check in time; closed");
                }
            }
        }
    }

    /// Gives a routed datagram to its connection, here or on its own loop.
    fn deliver(
        &mut self,
        key: RouteKey,
        local: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
        now: Instant,
        touched: &mut Vec<usize>,
    ) {
        if key.loop_index != self.index {
            if let Some(owner) = self.loops.get(key.loop_index) {
                owner.send(Command::Datagram {
                    id: key.id,
                    local,
                    peer,
                    data: data.to_vec(),
                });
            }
            return;
        }
        if let Some((i, s)) = self.slot_mut(key.id) {
            guarded(&mut s.connection, |c| c.receive(local, peer, data, now));
            touched.push(i);
        }
    }

    /// The slot index and slot of connection `id`, if it is on this loop.
    fn slot_mut(&mut self, id: u64) -> Option<(usize, &mut Slot)> {
        self.slots
            .iter_mut()
            .enumerate()
            .find_map(|(i, s)| s.as_mut().filter(|s| s.id == id).map(|s| (i, s)))
    }

    /// Handles queued commands; false once told to stop (or the sender is gone).
    fn take_commands(&mut self, now: Instant, touched: &mut Vec<usize>) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Open {
                    id,
                    session,
                    offer,
                    reach,
                    reply,
                }) => {
                    let answered = self.open(id, session, offer, reach, now);
                    let _ = reply.send(answered);
                }
                Ok(Command::Listen(local, socket)) => {
                    let token = Token(LISTENER_BASE - self.listeners.len());
                    let fd = socket.as_raw_fd();
                    match self.poll.registry().register(
                        &mut SourceFd(&fd),
                        token,
                        Interest::READABLE,
                    ) {
                        Ok(()) => {
                            self.listeners.push((local, socket));
                            // Datagrams that came before the registration: edge-triggered
                            // epoll would not report them.
                            self.read_listener(
                                self.listeners.len() - 1,
                                &mut vec![0u8; MAX_DATAGRAM],
                                now,
                                touched,
                            );
                        }
                        Err(e) => {
                            tracing::error!(error = %e, %local, "cannot read the shared media port")
                        }
                    }
                }
                Ok(Command::ListenTcp(local, listener)) => {
                    let j = self.tcp_listeners.len();
                    if j >= MAX_LISTENERS {
                        tracing::error!(%local, "too many ICE-TCP listeners");
                        continue;
                    }
                    let mut listener = mio::net::TcpListener::from_std(listener);
                    match self.poll.registry().register(
                        &mut listener,
                        Token(TCP_LISTENER_BASE - j),
                        Interest::READABLE,
                    ) {
                        Ok(()) => {
                            self.tcp_listeners.push((local, listener));
                            self.accept_tcp(j, &mut vec![0u8; MAX_DATAGRAM], now, touched);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, %local, "cannot accept ICE-TCP streams")
                        }
                    }
                }
                Ok(Command::TcpStream {
                    id,
                    stream,
                    local,
                    peer,
                    reader,
                }) => {
                    if let Some((i, s)) = self.slot_mut(id) {
                        let mut buf = vec![0u8; MAX_DATAGRAM];
                        guarded(&mut s.connection, |c| {
                            c.add_tcp(stream, local, peer, reader, &mut buf, now)
                        });
                        touched.push(i);
                    }
                }
                Ok(Command::Datagram {
                    id,
                    local,
                    peer,
                    data,
                }) => {
                    let key = RouteKey {
                        loop_index: self.index,
                        id,
                    };
                    self.deliver(key, local, peer, &data, now, touched);
                }
                Ok(Command::AddCandidates {
                    id,
                    candidates,
                    reply,
                }) => {
                    let added = match self.slot_mut(id) {
                        Some((i, s)) => {
                            touched.push(i);
                            s.connection.add_remote_candidates(candidates)
                        }
                        None => Err(IngestError::NoSession),
                    };
                    let _ = reply.send(added);
                }
                Ok(Command::RestartIce { id, frag, reply }) => {
                    let restarted = match self.slot_mut(id) {
                        Some((i, s)) => {
                            touched.push(i);
                            let mut outcome = None;
                            guarded(&mut s.connection, |c| {
                                outcome = Some(c.restart_ice(&frag, now));
                            });
                            outcome.unwrap_or_else(|| {
                                Err(IngestError::Internal("the ICE restart failed".into()))
                            })
                        }
                        None => Err(IngestError::NoSession),
                    };
                    let _ = reply.send(restarted);
                }
                Ok(Command::Close(id)) => {
                    if let Some((_, s)) = self.slot_mut(id) {
                        s.connection.close();
                    }
                    self.drop_ended();
                }
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }

    fn open(
        &mut self,
        id: u64,
        session: Arc<Session>,
        offer: String,
        reach: Reach,
        now: Instant,
    ) -> Result<String, IngestError> {
        if matches!(&reach, Reach::Own(sockets) if sockets.len() > MAX_SOCKETS) {
            return Err(IngestError::Internal(format!(
                "at most {MAX_SOCKETS} media interfaces"
            )));
        }
        let key = RouteKey {
            loop_index: self.index,
            id,
        };
        let (mut connection, sdp) =
            Connection::accept(session, offer, reach, &self.router, key, now)?;
        let index = self
            .slots
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.slots.len());
        for (i, socket, interest) in connection.take_unregistered() {
            self.poll
                .registry()
                .register(socket, Token(index * MAX_SOCKETS + i), interest)
                .map_err(|e| IngestError::Internal(e.to_string()))?;
        }
        let slot = Some(Slot { id, connection });
        if index == self.slots.len() {
            self.slots.push(slot);
        } else {
            self.slots[index] = slot;
        }
        self.loops[self.index]
            .connections
            .fetch_add(1, Ordering::Relaxed);
        Ok(sdp)
    }

    /// Forgets connections that failed or were closed; their sockets close with them.
    fn drop_ended(&mut self) {
        for slot in self.slots.iter_mut() {
            if slot.as_ref().is_some_and(|s| s.connection.has_ended()) {
                if let Some(mut s) = slot.take() {
                    for socket in s.connection.sockets_mut() {
                        let _ = self.poll.registry().deregister(socket);
                    }
                    self.loops[self.index]
                        .connections
                        .fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn close_all(&mut self) {
        for s in self.slots.iter_mut().flatten() {
            s.connection.close();
        }
        self.drop_ended();
    }
}

/// Registers the sockets `connection` (in slot `slot`) opened since the last time.
fn register_new_sockets(poll: &Poll, slot: usize, connection: &mut Connection) {
    let mut failed = false;
    for (i, socket, interest) in connection.take_unregistered() {
        if let Err(e) = poll
            .registry()
            .register(socket, Token(slot * MAX_SOCKETS + i), interest)
        {
            // Unread, the socket would swallow the publisher's media: end the connection.
            tracing::error!(error = %e, "cannot register a publisher's socket");
            failed = true;
        }
    }
    if failed {
        connection.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_names_one_source() {
        assert_eq!(source_of(WAKER), Source::Waker);
        assert_eq!(source_of(Token(LISTENER_BASE)), Source::Listener(0));
        assert_eq!(source_of(Token(LISTENER_BASE - 63)), Source::Listener(63));
        assert_eq!(source_of(Token(TCP_LISTENER_BASE)), Source::TcpListener(0));
        assert_eq!(
            source_of(Token(TCP_LISTENER_BASE - 63)),
            Source::TcpListener(63)
        );
        assert_eq!(source_of(Token(PENDING_BASE)), Source::Pending(0));
        let last = ice_tcp::MAX_PENDING - 1;
        assert_eq!(source_of(Token(PENDING_BASE - last)), Source::Pending(last));
        assert_eq!(source_of(Token(0)), Source::Connection(0, 0));
        assert_eq!(
            source_of(Token(7 * MAX_SOCKETS + 5)),
            Source::Connection(7, 5)
        );
    }

    #[test]
    fn a_panic_is_contained_and_reported() {
        assert!(survives(|| {}));
        let mut touched = false;
        assert!(!survives(|| {
            touched = true;
            panic!("a codec bug");
        }));
        assert!(touched);
    }
}
