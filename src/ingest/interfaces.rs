//! The host's own addresses, for a gateway told to receive media on every interface: one
//! socket and one host candidate per address that is up and not loopback (IPv6 link-local
//! addresses are left out, since a candidate cannot carry their scope).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every usable address of every interface that is up, in the system's order, no repeats.
pub fn host_addresses() -> io::Result<Vec<IpAddr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below; checked for failure.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        let flags = entry.ifa_flags;
        if flags & libc::IFF_UP as u32 == 0 || flags & libc::IFF_LOOPBACK as u32 != 0 {
            continue;
        }
        if entry.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: a non-null `ifa_addr` points to a sockaddr whose family says its real type.
        let ip = unsafe {
            match i32::from((*entry.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sa = &*(entry.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)))
                }
                libc::AF_INET6 => {
                    let sa = &*(entry.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr))
                }
                _ => continue,
            }
        };
        if usable(ip) && !out.contains(&ip) {
            out.push(ip);
        }
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(out)
}

/// The addresses to receive media on: the configured ones, where a wildcard (`0.0.0.0`, `::`)
/// stands for the host's addresses of its family, and an empty list for all of them.
pub fn media_addresses(configured: &[IpAddr], host: &[IpAddr]) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = configured
        .iter()
        .filter(|ip| !ip.is_unspecified())
        .copied()
        .collect();
    for ip in host {
        let wanted = configured.is_empty()
            || configured
                .iter()
                .any(|c| c.is_unspecified() && c.is_ipv4() == ip.is_ipv4());
        if wanted && !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    ips
}

/// Not loopback, unspecified or multicast; for IPv6 not link-local (fe80::/10).
fn usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_unspecified() || v4.is_multicast()),
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_link_local_and_wildcards_are_not_candidates() {
        assert!(usable("10.213.0.1".parse().unwrap()));
        assert!(usable("2001:db8::1".parse().unwrap()));
        assert!(!usable("127.0.0.1".parse().unwrap()));
        assert!(!usable("0.0.0.0".parse().unwrap()));
        assert!(!usable("::1".parse().unwrap()));
        assert!(!usable("fe80::1".parse().unwrap()));
        assert!(!usable("ff02::1".parse().unwrap()));
    }

    #[test]
    fn wildcards_and_an_empty_list_stand_for_the_host_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let host = [ip("10.0.0.5"), ip("2001:db8::5"), ip("192.168.1.9")];
        assert_eq!(media_addresses(&[], &host), host.to_vec());
        assert_eq!(
            media_addresses(&[ip("0.0.0.0")], &host),
            vec![ip("10.0.0.5"), ip("192.168.1.9")]
        );
        assert_eq!(
            media_addresses(&[ip("127.0.0.1"), ip("::")], &host),
            vec![ip("127.0.0.1"), ip("2001:db8::5")]
        );
        assert_eq!(
            media_addresses(&[ip("10.0.0.5"), ip("0.0.0.0")], &host),
            vec![ip("10.0.0.5"), ip("192.168.1.9")],
            "no address twice"
        );
    }

    #[test]
    fn the_host_addresses_are_usable_and_distinct() {
        let ips = host_addresses().unwrap();
        assert!(ips.iter().all(|ip| usable(*ip)), "{ips:?}");
        let unique: std::collections::HashSet<_> = ips.iter().collect();
        assert_eq!(unique.len(), ips.len(), "{ips:?}");
    }
}
