//! The shared media port (`[webrtc] udp_port`): one UDP socket per media address that every
//! publisher's ICE reaches, and, once a publisher's address is verified, a socket of its own
//! connected to that address on the same local address and port. Linux delivers a datagram to
//! the connected socket that matches its sender before the shared one, so a publisher's media
//! goes straight to its own loop thread; only the first checks (and addresses that could not
//! get a connected socket) pass through the shared socket and the router.
//!
//! All these sockets set SO_REUSEPORT to share the port, which would also let a second castgate
//! of the same user bind it silently; an abstract Unix socket named after the port is held
//! while castgate runs, so a second one fails at start with a clear message instead.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixListener;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

/// Why the shared port cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error(
        "UDP port {port} is already used by another castgate on this host \
         (set [webrtc] udp_port to another port, or stop the other one)"
    )]
    HeldByCastgate { port: u16 },
    #[error("cannot bind the media port {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot listen for ICE over TCP on {addr}: {source} \
         (set [webrtc] tcp_port to another port, or ice_tcp = false)"
    )]
    TcpBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The shared sockets: one per media address, all on one port.
pub struct SharedPort {
    port: u16,
    sockets: Vec<(SocketAddr, Arc<UdpSocket>)>,
    /// Held for as long as the port is: see the module comment.
    _lock: Option<UnixListener>,
}

impl SharedPort {
    /// Binds `port` (0: one ephemeral port, the same on every address) on each of `ips`.
    pub fn bind(ips: &[IpAddr], port: u16) -> Result<SharedPort, MuxError> {
        let lock = if port == 0 {
            None
        } else {
            Some(instance_lock(port)?)
        };
        let mut shared = SharedPort {
            port,
            sockets: Vec::new(),
            _lock: lock,
        };
        for ip in ips {
            shared.ensure(*ip)?;
        }
        Ok(shared)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared socket on `ip` with its address, bound now if this address is new (an
    /// interface that came up after the start).
    pub fn ensure(&mut self, ip: IpAddr) -> Result<(SocketAddr, Arc<UdpSocket>), MuxError> {
        if let Some((a, s)) = self.sockets.iter().find(|(a, _)| a.ip() == ip) {
            return Ok((*a, s.clone()));
        }
        let addr = SocketAddr::new(ip, self.port);
        let socket = reuse_port_socket(addr)
            .and_then(|s| {
                s.bind(&addr.into())?;
                Ok(UdpSocket::from(s))
            })
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AddrInUse if self.port != 0 => MuxError::Bind {
                    addr,
                    source: std::io::Error::new(
                        source.kind(),
                        format!("{source} (another program holds this UDP port)"),
                    ),
                },
                _ => MuxError::Bind { addr, source },
            })?;
        let local = socket
            .local_addr()
            .map_err(|source| MuxError::Bind { addr, source })?;
        self.port = local.port();
        let socket = Arc::new(socket);
        self.sockets.push((local, socket.clone()));
        Ok((local, socket))
    }

    /// Every shared socket with its address.
    #[cfg(test)]
    pub fn sockets(&self) -> impl Iterator<Item = &(SocketAddr, Arc<UdpSocket>)> {
        self.sockets.iter()
    }
}

fn reuse_port_socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A non-blocking socket on `local` (the shared port) connected to `remote`: the kernel gives
/// it every datagram from `remote` to `local`.
pub fn connected_socket(local: SocketAddr, remote: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = reuse_port_socket(local)?;
    socket.bind(&local.into())?;
    socket.connect(&remote.into())?;
    Ok(UdpSocket::from(socket))
}

fn instance_lock(port: u16) -> Result<UnixListener, MuxError> {
    let name = format!("castgate-udp-{port}");
    let addr =
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).map_err(|source| {
            MuxError::Bind {
                addr: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port),
                source,
            }
        })?;
    UnixListener::bind_addr(&addr).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => MuxError::HeldByCastgate { port },
        _ => MuxError::Bind {
            addr: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port),
            source: e,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn an_ephemeral_shared_port_is_the_same_on_every_address() {
        let ips = [LOOPBACK, "127.0.0.2".parse().unwrap()];
        let shared = SharedPort::bind(&ips, 0).unwrap();
        let ports: Vec<u16> = shared.sockets().map(|(a, _)| a.port()).collect();
        assert_eq!(ports.len(), 2);
        assert_ne!(ports[0], 0);
        assert_eq!(ports[0], ports[1]);
        assert_eq!(shared.port(), ports[0]);
    }

    #[test]
    fn a_second_castgate_on_the_same_port_is_refused_clearly() {
        // A port nobody else in this test binary uses: the ephemeral one of a fresh socket.
        let port = UdpSocket::bind((LOOPBACK, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let first = SharedPort::bind(&[LOOPBACK], port).unwrap();
        let second = SharedPort::bind(&[LOOPBACK], port);
        let Err(e) = second else {
            panic!("a second shared port on {port} was allowed");
        };
        assert!(matches!(e, MuxError::HeldByCastgate { .. }), "{e}");
        assert!(e.to_string().contains("another castgate"), "{e}");
        drop(first);
        // Once the first is gone, the port is free again.
        SharedPort::bind(&[LOOPBACK], port).unwrap();
    }

    #[test]
    fn a_port_held_by_another_program_is_refused() {
        let other = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        let port = other.local_addr().unwrap().port();
        let Err(e) = SharedPort::bind(&[LOOPBACK], port) else {
            panic!("bound a port another socket holds");
        };
        assert!(e.to_string().contains("another program"), "{e}");
    }

    #[test]
    fn a_connected_socket_takes_its_peers_datagrams_from_the_shared_one() {
        let shared = SharedPort::bind(&[LOOPBACK], 0).unwrap();
        let (local, listener) = shared.sockets().next().unwrap();
        let listener = listener.try_clone().unwrap();
        listener.set_nonblocking(false).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let peer_a = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        let peer_b = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        let own = connected_socket(*local, peer_a.local_addr().unwrap()).unwrap();
        own.set_nonblocking(false).unwrap();
        own.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        peer_a.send_to(b"from a", local).unwrap();
        peer_b.send_to(b"from b", local).unwrap();
        let mut buf = [0u8; 16];
        let n = own.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"from a");
        let (n, from) = listener.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"from b"[..], peer_b.local_addr().unwrap())
        );
        // And what it sends comes from the shared port.
        own.send(b"back").unwrap();
        let (n, from) = peer_a.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"back"[..], *local));
    }
}
