//! The threads that drive every publisher's connection: one per core, each an epoll (mio) loop
//! that owns its connections and their sockets, waits for datagrams or the earliest timer, and
//! runs the whole receive path (SRTP, depacketizing, transcoding, muxing into the hub) right
//! there, with no task wake-up per packet. The HTTP side talks to a loop through commands and
//! a wake-up; a new connection goes to the loop with the fewest.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::oneshot;

use super::connection::{Connection, MAX_DATAGRAM};
use super::session::Session;
use super::IngestError;

/// Sockets per connection a token can name (one per interface the gateway listens on).
const MAX_SOCKETS: usize = 64;
const WAKER: Token = Token(usize::MAX);

enum Command {
    Open {
        id: u64,
        session: Arc<Session>,
        offer: String,
        sockets: Vec<std::net::UdpSocket>,
        reply: oneshot::Sender<Result<String, IngestError>>,
    },
    Close(u64),
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
    loops: Vec<Arc<LoopShared>>,
    next_id: AtomicU64,
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
}

impl RtcLoops {
    /// Starts `threads` loop threads.
    pub fn start(threads: usize) -> std::io::Result<RtcLoops> {
        let mut loops = Vec::with_capacity(threads);
        for i in 0..threads.max(1) {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKER)?;
            let (tx, rx) = mpsc::channel();
            let shared = Arc::new(LoopShared {
                commands: Mutex::new(tx),
                waker,
                connections: AtomicUsize::new(0),
            });
            let state = LoopThread {
                poll,
                commands: rx,
                slots: Vec::new(),
                shared: shared.clone(),
            };
            std::thread::Builder::new()
                .name(format!("castgate-rtc{i}"))
                .spawn(move || state.run())?;
            loops.push(shared);
        }
        Ok(RtcLoops {
            loops,
            next_id: AtomicU64::new(1),
        })
    }

    /// Answers `offer` with a connection on the least busy loop, reached on `sockets`; the
    /// session gets the handle that closes it. Returns the answer's SDP.
    pub async fn open(
        &self,
        session: Arc<Session>,
        offer: String,
        sockets: Vec<std::net::UdpSocket>,
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
            sockets,
            reply,
        });
        answer
            .await
            .map_err(|_| IngestError::Internal("the media loop stopped".into()))?
    }
}

impl Drop for RtcLoops {
    fn drop(&mut self) {
        for l in &self.loops {
            l.send(Command::Stop);
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
    poll: Poll,
    commands: mpsc::Receiver<Command>,
    /// Connection in slot `i` has tokens `i * MAX_SOCKETS + socket index`.
    slots: Vec<Option<Slot>>,
    shared: Arc<LoopShared>,
}

impl LoopThread {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut touched: Vec<usize> = Vec::new();
        loop {
            let next = self
                .slots
                .iter()
                .flatten()
                .filter_map(|s| s.connection.deadline())
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
                if event.token() == WAKER {
                    if !self.take_commands(now) {
                        self.close_all();
                        return;
                    }
                    continue;
                }
                let (slot, socket) = (event.token().0 / MAX_SOCKETS, event.token().0 % MAX_SOCKETS);
                if let Some(Some(s)) = self.slots.get_mut(slot) {
                    guarded(&mut s.connection, |c| c.read(socket, &mut buf, now));
                    touched.push(slot);
                }
            }
            for (i, slot) in self.slots.iter_mut().enumerate() {
                let Some(s) = slot else { continue };
                if touched.contains(&i) || s.connection.deadline().is_some_and(|d| d <= now) {
                    guarded(&mut s.connection, |c| c.settle(now));
                }
            }
            self.drop_ended();
        }
    }

    /// Handles queued commands; false once told to stop (or the sender is gone).
    fn take_commands(&mut self, now: Instant) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Open {
                    id,
                    session,
                    offer,
                    sockets,
                    reply,
                }) => {
                    let answered = self.open(id, session, offer, sockets, now);
                    let _ = reply.send(answered);
                }
                Ok(Command::Close(id)) => {
                    if let Some(s) = self.slots.iter_mut().flatten().find(|s| s.id == id) {
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
        sockets: Vec<std::net::UdpSocket>,
        now: Instant,
    ) -> Result<String, IngestError> {
        if sockets.len() > MAX_SOCKETS {
            return Err(IngestError::Internal(format!(
                "at most {MAX_SOCKETS} media interfaces"
            )));
        }
        let (mut connection, sdp) = Connection::accept(session, offer, sockets, now)?;
        let index = self
            .slots
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.slots.len());
        let registry = self.poll.registry();
        for (i, socket) in connection.sockets_mut().enumerate() {
            registry
                .register(socket, Token(index * MAX_SOCKETS + i), Interest::READABLE)
                .map_err(|e| IngestError::Internal(e.to_string()))?;
        }
        let slot = Some(Slot { id, connection });
        if index == self.slots.len() {
            self.slots.push(slot);
        } else {
            self.slots[index] = slot;
        }
        self.shared.connections.fetch_add(1, Ordering::Relaxed);
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
                    self.shared.connections.fetch_sub(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

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
