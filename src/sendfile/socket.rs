//! The plain-HTTP listener and its connections: tokio TCP streams, except that a body slice
//! that lives in a mapped segment ([`super::mapped`]) is sent with `sendfile(2)` from its file
//! rather than copied from memory by `writev`.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::mapped::lookup;

/// Accepts connections for `axum::serve`, handing out [`SendfileStream`]s.
pub struct SendfileListener {
    inner: TcpListener,
}

impl SendfileListener {
    pub fn new(inner: TcpListener) -> SendfileListener {
        SendfileListener { inner }
    }
}

impl axum::serve::Listener for SendfileListener {
    type Io = SendfileStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((inner, addr)) => return (SendfileStream { inner }, addr),
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of file descriptors, say: wait instead of spinning on the error.
                    tracing::error!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A failure of one incoming connection only, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One HTTP connection.
pub struct SendfileStream {
    inner: TcpStream,
}

impl SendfileStream {
    /// Sends small writes at once (FLV frames, playlists) instead of waiting for the peer to
    /// acknowledge earlier ones (Nagle), which can hold a live frame for tens of milliseconds.
    pub fn set_nodelay(&mut self) {
        if let Err(e) = self.inner.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    }

    /// Sends `len` bytes of `file` from `offset`; like a write, it may send fewer.
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: RawFd,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let socket = self.inner.as_raw_fd();
        self.poll_send(cx, || {
            let mut off = offset as libc::off_t;
            // SAFETY: both descriptors are open (the caller holds the segment's `Bytes`, which
            // keeps its file open); `off` is a valid pointer.
            unsafe { libc::sendfile(socket, file, &mut off, len) }
        })
    }

    /// Runs a non-blocking send system call (returning bytes sent, or < 0 with `errno`) once
    /// the socket is writable, waiting again whenever it turns out to be full.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        mut send: impl FnMut() -> isize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let sent = self.inner.try_io(Interest::WRITABLE, || {
                let n = send();
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    /// `writev` with `MSG_MORE`: the kernel waits briefly for the data that follows.
    fn poll_send_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let socket = self.inner.as_raw_fd();
        // SAFETY: an all-zero msghdr is valid; on Unix `IoSlice` has the layout of `iovec`
        // (std guarantees it), and `bufs` outlives the calls.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
        self.poll_send(cx, || {
            // SAFETY: `msg` describes valid buffers; the socket is open.
            unsafe { libc::sendmsg(socket, &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL) }
        })
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match lookup(buf) {
            Some((file, offset)) => self.poll_sendfile(cx, file, offset, buf.len()),
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Ordinary slices go out together up to the first mapped one; a mapped slice at the
        // front goes out by itself from its file. A short count is fine: the caller resumes
        // from where the write stopped.
        let mapped = bufs
            .iter()
            .enumerate()
            .find_map(|(i, b)| lookup(b).map(|m| (i, m)));
        match mapped {
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            Some((0, (file, offset))) => self.poll_sendfile(cx, file, offset, bufs[0].len()),
            // What comes before a mapped body (the response head) is held back (MSG_MORE) to
            // leave in the same packet as the body's first bytes, as TCP_CORK would.
            Some((i, _)) => self.poll_send_more(cx, &bufs[..i]),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connected pair: the server side as the listener hands it out, and a client.
    async fn pair() -> (SendfileStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = SendfileListener::new(listener);
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await;
        (server, client)
    }

    fn pattern(len: usize, seed: usize) -> Bytes {
        Bytes::from(
            (0..len)
                .map(|i| ((i + seed) * 13 % 251) as u8)
                .collect::<Vec<u8>>(),
        )
    }

    #[tokio::test]
    async fn headers_and_a_mapped_body_arrive_in_order_byte_for_byte() {
        let (mut server, mut client) = pair().await;
        let head = Bytes::from_static(b"HTTP/1.1 200 OK\r\ncontent-length: 3000000\r\n\r\n");
        // Larger than any socket buffer: the sends are partial and must resume correctly.
        let body = crate::sendfile::map_segment(pattern(3_000_000, 1));
        assert!(lookup(&body).is_some(), "body is in a memory file");
        let tail = pattern(100, 7);
        let expected: Vec<u8> = [&head[..], &body[..], &tail[..]].concat();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        // Written as hyper does: vectored, resuming after every short write.
        let mut parts = [head, body, tail];
        let mut first = 0;
        while first < parts.len() {
            let slices: Vec<IoSlice<'_>> = parts[first..].iter().map(|b| IoSlice::new(b)).collect();
            let mut n = server.write_vectored(&slices).await.unwrap();
            assert!(n > 0);
            while n > 0 {
                let take = n.min(parts[first].len());
                bytes::Buf::advance(&mut parts[first], take);
                n -= take;
                if parts[first].is_empty() {
                    first += 1;
                }
            }
        }
        server.shutdown().await.unwrap();
        drop(server);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes differ");
    }
}
