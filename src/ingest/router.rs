//! Which publisher a datagram on the shared media port belongs to (sans-IO). Every publisher's
//! ICE checks name it: a STUN request's USERNAME is `our-ufrag:their-ufrag` (RFC 8445 §7.2.2),
//! and our ufrag is unique per connection. Everything else (DTLS, SRTP, STUN responses and
//! indications) is routed by the remote address, once that address has been verified for the
//! connection (we answered its check or sent it our DTLS); the answers to our own checks find
//! their connection by their transaction id. A datagram that names no known ufrag
//! from an address nobody verified is dropped: a stranger cannot reach a connection by guessing
//! its port, and a forged ufrag only reaches the stack, which checks the message integrity.

use std::collections::HashMap;
use std::net::SocketAddr;

/// A connection: its loop thread and its id there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteKey {
    pub loop_index: usize,
    pub id: u64,
}

/// The 4-tuple of a datagram as the shared socket sees it: (our address, theirs).
pub type Path = (SocketAddr, SocketAddr);

/// Why a datagram went nowhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unrouted {
    /// A STUN request naming a ufrag no connection has.
    UnknownUfrag,
    /// Not a STUN request, from an address no connection verified.
    UnknownAddress,
}

#[derive(Default)]
struct Routes {
    ufrag: String,
    paths: Vec<Path>,
    /// Transaction ids of the connection's own checks still awaiting an answer, oldest first.
    transactions: std::collections::VecDeque<TransactionId>,
}

/// A STUN transaction id (RFC 5389 §6).
pub type TransactionId = [u8; 12];

/// How many of a connection's checks may await their response at once (ICE paces its checks:
/// a few per candidate pair and retransmission).
pub const MAX_TRANSACTIONS: usize = 64;

/// The routing tables of one shared port (every interface address on it).
#[derive(Default)]
pub struct DatagramRouter {
    by_ufrag: HashMap<String, RouteKey>,
    by_transaction: HashMap<TransactionId, RouteKey>,
    by_path: HashMap<Path, RouteKey>,
    of_key: HashMap<RouteKey, Routes>,
}

/// How many remote addresses one connection may have verified (its candidate pairs).
pub const MAX_PATHS: usize = 16;

impl DatagramRouter {
    /// A new connection answered with local ufrag `ufrag`. False if the ufrag is taken (it is
    /// random, so only by a bug): the connection must not be opened.
    pub fn add_connection(&mut self, key: RouteKey, ufrag: &str) -> bool {
        if ufrag.is_empty() || self.by_ufrag.contains_key(ufrag) {
            return false;
        }
        self.by_ufrag.insert(ufrag.to_string(), key);
        self.of_key.entry(key).or_default().ufrag = ufrag.to_string();
        true
    }

    /// The connection restarted ICE with local ufrag `ufrag`: checks naming it reach the
    /// connection, checks naming its old one no longer do. False (nothing changes) if another
    /// connection has `ufrag` or `key` is unknown.
    pub fn set_ufrag(&mut self, key: RouteKey, ufrag: &str) -> bool {
        if ufrag.is_empty() || self.by_ufrag.get(ufrag).is_some_and(|k| *k != key) {
            return false;
        }
        let Some(routes) = self.of_key.get_mut(&key) else {
            return false;
        };
        let old = std::mem::replace(&mut routes.ufrag, ufrag.to_string());
        if self.by_ufrag.get(&old) == Some(&key) {
            self.by_ufrag.remove(&old);
        }
        self.by_ufrag.insert(ufrag.to_string(), key);
        true
    }

    /// `path` is verified for `key`: later datagrams on it go there. A path already verified
    /// for another connection moves (a publisher's NAT binding was reused). A connection keeps
    /// its latest `MAX_PATHS` paths: a new one beyond them replaces its oldest. False only for
    /// an unknown connection.
    pub fn add_path(&mut self, key: RouteKey, path: Path) -> bool {
        let Some(routes) = self.of_key.get(&key) else {
            return false;
        };
        if routes.paths.contains(&path) {
            return true;
        }
        if routes.paths.len() >= MAX_PATHS {
            // A publisher that moved often (ICE restarts): its oldest path goes.
            if let Some(r) = self.of_key.get_mut(&key) {
                let oldest = r.paths.remove(0);
                if self.by_path.get(&oldest) == Some(&key) {
                    self.by_path.remove(&oldest);
                }
            }
        }
        if let Some(previous) = self.by_path.insert(path, key) {
            if let Some(r) = self.of_key.get_mut(&previous) {
                r.paths.retain(|p| *p != path);
            }
        }
        if let Some(r) = self.of_key.get_mut(&key) {
            r.paths.push(path);
        }
        true
    }

    /// The connection sent a check (a STUN request) with `transaction`: its answer comes back
    /// to it, whatever address it comes from (the check's target is not verified yet).
    pub fn expect_response(&mut self, key: RouteKey, transaction: TransactionId) {
        let Some(routes) = self.of_key.get_mut(&key) else {
            return;
        };
        if routes.transactions.contains(&transaction) {
            return;
        }
        if routes.transactions.len() >= MAX_TRANSACTIONS {
            if let Some(old) = routes.transactions.pop_front() {
                if self.by_transaction.get(&old) == Some(&key) {
                    self.by_transaction.remove(&old);
                }
            }
        }
        routes.transactions.push_back(transaction);
        self.by_transaction.insert(transaction, key);
    }

    /// The connection ended: forget its ufrag, paths and checks.
    pub fn remove_connection(&mut self, key: RouteKey) {
        if let Some(routes) = self.of_key.remove(&key) {
            for t in routes.transactions {
                if self.by_transaction.get(&t) == Some(&key) {
                    self.by_transaction.remove(&t);
                }
            }
            if self.by_ufrag.get(&routes.ufrag) == Some(&key) {
                self.by_ufrag.remove(&routes.ufrag);
            }
            for path in routes.paths {
                if self.by_path.get(&path) == Some(&key) {
                    self.by_path.remove(&path);
                }
            }
        }
    }

    /// Where `datagram`, received on `path`, goes.
    pub fn route(&self, path: Path, datagram: &[u8]) -> Result<RouteKey, Unrouted> {
        if let Some(ufrag) = stun_request_ufrag(datagram) {
            return self
                .by_ufrag
                .get(ufrag)
                .copied()
                .ok_or(Unrouted::UnknownUfrag);
        }
        if let Some(key) =
            stun_response_transaction(datagram).and_then(|t| self.by_transaction.get(&t))
        {
            return Ok(*key);
        }
        self.by_path
            .get(&path)
            .copied()
            .ok_or(Unrouted::UnknownAddress)
    }

    #[cfg(test)]
    pub fn connections(&self) -> usize {
        self.of_key.len()
    }
}

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const USERNAME: u16 = 0x0006;

/// The STUN message type of `datagram`, if it is a STUN message (RFC 5389 §6: two zero bits,
/// the magic cookie, a length that is a multiple of 4 and fits).
fn stun_type(datagram: &[u8]) -> Option<u16> {
    if datagram.len() < 20 || datagram[0] & 0xC0 != 0 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if length % 4 != 0 || 20 + length > datagram.len() {
        return None;
    }
    Some(u16::from_be_bytes([datagram[0], datagram[1]]))
}

/// Whether the message class is a request (C1 C0 = 00).
fn is_request(message_type: u16) -> bool {
    message_type & 0x0110 == 0
}

/// Whether our stack sending `datagram` to an address proves that the address belongs to the
/// connection: a STUN success response (to a check whose integrity the stack verified), DTLS
/// or SRTP do; our own checks (sent to every candidate the offer lists, true or not) and error
/// responses (sent to addresses that failed) and indications do not.
pub fn sending_proves_path(datagram: &[u8]) -> bool {
    match stun_type(datagram) {
        Some(t) => t & 0x0110 == 0x0100,
        None => true,
    }
}

/// The transaction id of a STUN request (`datagram` as we send it), for its answer's routing.
pub fn stun_request_transaction(datagram: &[u8]) -> Option<TransactionId> {
    let t = stun_type(datagram)?;
    is_request(t).then(|| transaction_of(datagram))
}

/// The transaction id of a STUN success or error response.
fn stun_response_transaction(datagram: &[u8]) -> Option<TransactionId> {
    let t = stun_type(datagram)?;
    (t & 0x0100 != 0).then(|| transaction_of(datagram))
}

fn transaction_of(datagram: &[u8]) -> TransactionId {
    let mut id = [0u8; 12];
    id.copy_from_slice(&datagram[8..20]);
    id
}

/// The local (our) ufrag a STUN request names in its USERNAME: the part before the colon.
pub fn stun_request_ufrag(datagram: &[u8]) -> Option<&str> {
    let message_type = stun_type(datagram)?;
    if !is_request(message_type) {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let mut attrs = &datagram[20..20 + length];
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let value = attrs.get(4..4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split_once(':').map(|(ours, _)| ours);
        }
        let padded = 4 + len.div_ceil(4) * 4;
        attrs = attrs.get(padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A STUN message of `message_type` with the given attributes (type, value).
    fn stun(message_type: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attrs {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut m = Vec::new();
        m.extend_from_slice(&message_type.to_be_bytes());
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m
    }

    fn binding_request(username: &str) -> Vec<u8> {
        // PRIORITY first, as Chromium sends it, so the parser must step over an attribute.
        stun(
            0x0001,
            &[(0x0024, &[0, 0, 0, 1]), (USERNAME, username.as_bytes())],
        )
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const LOCAL: &str = "10.0.0.1:8189";
    const A: RouteKey = RouteKey {
        loop_index: 0,
        id: 1,
    };
    const B: RouteKey = RouteKey {
        loop_index: 1,
        id: 2,
    };

    fn router() -> DatagramRouter {
        let mut r = DatagramRouter::default();
        assert!(r.add_connection(A, "aaaa"));
        assert!(r.add_connection(B, "bbbb"));
        r
    }

    #[test]
    fn an_ice_restart_moves_a_connection_to_its_new_ufrag() {
        let mut r = router();
        let from = (addr(LOCAL), addr("192.0.2.7:50000"));
        assert!(r.set_ufrag(A, "aaa2"));
        assert_eq!(r.route(from, &binding_request("aaa2:new1")), Ok(A));
        assert_eq!(
            r.route(from, &binding_request("aaaa:old1")),
            Err(Unrouted::UnknownUfrag)
        );
        // Another connection's ufrag, an unknown connection, or none: nothing changes.
        assert!(!r.set_ufrag(A, "bbbb"));
        assert!(!r.set_ufrag(
            RouteKey {
                loop_index: 9,
                id: 9
            },
            "cccc"
        ));
        assert!(!r.set_ufrag(A, ""));
        assert_eq!(r.route(from, &binding_request("aaa2:new1")), Ok(A));
        assert_eq!(r.route(from, &binding_request("bbbb:x")), Ok(B));
        // Its new ufrag goes with it when it ends.
        r.remove_connection(A);
        assert_eq!(
            r.route(from, &binding_request("aaa2:new1")),
            Err(Unrouted::UnknownUfrag)
        );
        assert!(r.add_connection(A, "aaaa"));
    }

    #[test]
    fn checks_go_by_the_ufrag_they_name() {
        let r = router();
        let from = (addr(LOCAL), addr("192.0.2.7:50000"));
        assert_eq!(r.route(from, &binding_request("aaaa:xyz1")), Ok(A));
        assert_eq!(r.route(from, &binding_request("bbbb:xyz1")), Ok(B));
        assert_eq!(
            r.route(from, &binding_request("cccc:xyz1")),
            Err(Unrouted::UnknownUfrag)
        );
    }

    #[test]
    fn media_goes_by_the_verified_address_only() {
        let mut r = router();
        let a_path = (addr(LOCAL), addr("192.0.2.7:50000"));
        let dtls = [22u8, 254, 253, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0];
        assert_eq!(r.route(a_path, &dtls), Err(Unrouted::UnknownAddress));
        assert!(r.add_path(A, a_path));
        assert_eq!(r.route(a_path, &dtls), Ok(A));
        // The same remote on another of our addresses is another path.
        let other_local = (addr("10.0.0.2:8189"), addr("192.0.2.7:50000"));
        assert_eq!(r.route(other_local, &dtls), Err(Unrouted::UnknownAddress));
        // A STUN response (not a request) goes by address too.
        let response = stun(0x0101, &[]);
        assert_eq!(r.route(a_path, &response), Ok(A));
    }

    #[test]
    fn a_spoofed_ufrag_reaches_only_that_connection_and_teaches_nothing() {
        let mut r = router();
        let a_path = (addr(LOCAL), addr("192.0.2.7:50000"));
        assert!(r.add_path(A, a_path));
        // From A's verified address, a request naming B goes to B (whose stack checks its
        // integrity), and A's address still routes A's media.
        assert_eq!(r.route(a_path, &binding_request("bbbb:evil")), Ok(B));
        assert_eq!(r.route(a_path, &[0x80, 0x60, 0, 1]), Ok(A));
        // An attacker's address with a valid ufrag: only the request is routed.
        let attacker = (addr(LOCAL), addr("198.51.100.9:4000"));
        assert_eq!(r.route(attacker, &binding_request("aaaa:evil")), Ok(A));
        assert_eq!(
            r.route(attacker, &[0x80, 0x60, 0, 1]),
            Err(Unrouted::UnknownAddress)
        );
    }

    #[test]
    fn ended_connections_are_forgotten_and_paths_can_move() {
        let mut r = router();
        let path = (addr(LOCAL), addr("192.0.2.7:50000"));
        assert!(r.add_path(A, path));
        // The same NAT binding reused by a new publish moves to it.
        assert!(r.add_path(B, path));
        assert_eq!(r.route(path, &[0x80]), Ok(B));
        r.remove_connection(A);
        assert_eq!(r.route(path, &[0x80]), Ok(B));
        r.remove_connection(B);
        assert_eq!(r.route(path, &[0x80]), Err(Unrouted::UnknownAddress));
        assert_eq!(
            r.route(path, &binding_request("bbbb:x")),
            Err(Unrouted::UnknownUfrag)
        );
        assert_eq!(r.connections(), 0);
        // A removed connection cannot gain paths; its ufrag can be reused.
        assert!(!r.add_path(A, path));
        assert!(r.add_connection(A, "bbbb"));
    }

    #[test]
    fn duplicate_ufrags_are_refused_and_path_floods_bounded() {
        let mut r = router();
        assert!(!r.add_connection(
            RouteKey {
                loop_index: 0,
                id: 9
            },
            "aaaa"
        ));
        assert!(!r.add_connection(
            RouteKey {
                loop_index: 0,
                id: 9
            },
            ""
        ));
        for port in 0..MAX_PATHS as u16 {
            assert!(r.add_path(
                A,
                (
                    addr(LOCAL),
                    SocketAddr::new("192.0.2.1".parse().unwrap(), 1000 + port)
                )
            ));
        }
        // One more replaces the oldest: the flood cannot grow the tables.
        let from = |port: u16| {
            (
                addr(LOCAL),
                SocketAddr::new("192.0.2.1".parse().unwrap(), port),
            )
        };
        assert!(r.add_path(A, from(9999)));
        assert_eq!(r.route(from(9999), b"\x80srtp"), Ok(A));
        assert_eq!(
            r.route(from(1000), b"\x80srtp"),
            Err(Unrouted::UnknownAddress)
        );
        assert_eq!(r.route(from(1001), b"\x80srtp"), Ok(A));
        assert_eq!(r.by_path.len(), MAX_PATHS);
    }

    #[test]
    fn stun_parsing_rejects_what_is_not_a_well_formed_request() {
        assert_eq!(stun_request_ufrag(&binding_request("ab:cd")), Some("ab"));
        // No colon, no USERNAME, a response, a truncated message, RTP, DTLS.
        assert_eq!(stun_request_ufrag(&binding_request("abcd")), None);
        assert_eq!(stun_request_ufrag(&stun(0x0001, &[])), None);
        assert_eq!(
            stun_request_ufrag(&stun(0x0101, &[(USERNAME, b"ab:cd")])),
            None
        );
        let mut cut = binding_request("ab:cd");
        cut.truncate(cut.len() - 4);
        assert_eq!(stun_request_ufrag(&cut), None);
        // An attribute length running past the message.
        let mut long = binding_request("ab:cd");
        let n = long.len();
        long[n - 10..n - 8].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(stun_request_ufrag(&long), None);
        assert_eq!(stun_request_ufrag(&[0x80, 0x60, 0, 1, 0, 0, 0, 0]), None);
        assert_eq!(stun_request_ufrag(&[22, 254, 253]), None);
    }

    #[test]
    fn answers_to_our_checks_come_back_by_transaction_from_any_address() {
        let mut r = router();
        let check = binding_request("theirs:aaaa");
        let txid = stun_request_transaction(&check).unwrap();
        r.expect_response(A, txid);
        let from = (addr(LOCAL), addr("192.0.2.7:50000"));
        let mut success = stun(0x0101, &[]);
        success[8..20].copy_from_slice(&txid);
        assert_eq!(r.route(from, &success), Ok(A));
        let mut error = stun(0x0111, &[]);
        error[8..20].copy_from_slice(&txid);
        assert_eq!(r.route(from, &error), Ok(A));
        // Another transaction from that address is unknown, and so is media from it.
        let mut other = stun(0x0101, &[]);
        other[8..20].copy_from_slice(&[9; 12]);
        assert_eq!(r.route(from, &other), Err(Unrouted::UnknownAddress));
        assert_eq!(r.route(from, &[0x80, 0x60]), Err(Unrouted::UnknownAddress));
        assert_eq!(
            stun_request_transaction(&success),
            None,
            "a response is no check"
        );
        // Old checks make way for new ones, and all go with the connection.
        for i in 0..MAX_TRANSACTIONS as u8 {
            r.expect_response(A, [100 + i; 12]);
        }
        assert_eq!(
            r.route(from, &success),
            Err(Unrouted::UnknownAddress),
            "evicted"
        );
        let mut latest = stun(0x0101, &[]);
        latest[8..20].copy_from_slice(&[100 + MAX_TRANSACTIONS as u8 - 1; 12]);
        assert_eq!(r.route(from, &latest), Ok(A));
        r.remove_connection(A);
        assert_eq!(r.route(from, &latest), Err(Unrouted::UnknownAddress));
        assert!(r.by_transaction.is_empty());
    }

    #[test]
    fn only_answers_and_media_we_send_prove_an_address() {
        assert!(sending_proves_path(&stun(0x0101, &[])), "binding success");
        assert!(sending_proves_path(&[22, 254, 253, 0, 0]), "DTLS");
        assert!(sending_proves_path(&[0x80, 0xc9, 0, 1]), "SRTCP");
        assert!(!sending_proves_path(&binding_request("x:y")), "our check");
        assert!(!sending_proves_path(&stun(0x0111, &[])), "error response");
        assert!(!sending_proves_path(&stun(0x0011, &[])), "indication");
    }
}
