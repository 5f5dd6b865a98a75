//! 1:1 NAT: advertising public IPs in the SDP answer instead of the local ones (cloud hosts
//! whose public address is forwarded to a private one). webrtc-rs 0.21 keeps a NAT 1:1 setting
//! but does not apply it, so the answer's host candidates are rewritten here. Connectivity
//! checks sent to the public address arrive, through the NAT, at the private socket.

use std::net::IpAddr;

/// Replaces the address of every host candidate (and a `c=` line naming a local address) with
/// the first public IP of the same family. Candidates of a family with no public IP are kept.
pub fn advertise_public_ips(sdp: &str, public: &[IpAddr]) -> String {
    if public.is_empty() {
        return sdp.to_string();
    }
    let public_for = |addr: &str| -> Option<IpAddr> {
        let local: IpAddr = addr.parse().ok()?;
        public
            .iter()
            .find(|p| p.is_ipv4() == local.is_ipv4())
            .copied()
    };
    let mut out = String::with_capacity(sdp.len() + 64);
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        out.push_str(&rewrite_line(body, &public_for).unwrap_or_else(|| body.to_string()));
        out.push_str(ending);
    }
    out
}

fn rewrite_line(line: &str, public_for: &impl Fn(&str) -> Option<IpAddr>) -> Option<String> {
    if let Some(candidate) = line.strip_prefix("a=candidate:") {
        // foundation component transport priority address port "typ" type ...
        let mut fields: Vec<&str> = candidate.split(' ').collect();
        if fields.len() < 8 || fields[6] != "typ" || fields[7] != "host" {
            return None;
        }
        let public = public_for(fields[4])?.to_string();
        fields[4] = &public;
        return Some(format!("a=candidate:{}", fields.join(" ")));
    }
    if let Some(rest) = line.strip_prefix("c=IN ") {
        let (family, addr) = rest.split_once(' ')?;
        let public = public_for(addr)?;
        if addr.parse::<IpAddr>().ok()?.is_unspecified() {
            return None;
        }
        return Some(format!("c=IN {family} {public}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 10.0.1.5\r\n\
a=candidate:1 1 udp 2130706431 10.0.1.5 20000 typ host\r\n\
a=candidate:2 1 udp 2130706431 fd00::5 20000 typ host\r\n\
a=candidate:3 1 udp 1694498815 198.51.100.1 20000 typ srflx raddr 10.0.1.5 rport 20000\r\n";

    #[test]
    fn host_candidates_take_the_public_ip_of_their_family() {
        let out = advertise_public_ips(ANSWER, &["203.0.113.7".parse().unwrap()]);
        assert!(out.contains("a=candidate:1 1 udp 2130706431 203.0.113.7 20000 typ host\r\n"));
        assert!(out.contains("c=IN IP4 203.0.113.7\r\n"));
        // No IPv6 public address: the IPv6 candidate is left alone; srflx is never touched.
        assert!(out.contains("a=candidate:2 1 udp 2130706431 fd00::5 20000 typ host\r\n"));
        assert!(out.contains("198.51.100.1 20000 typ srflx raddr 10.0.1.5"));
        assert!(!out.contains("10.0.1.5 20000 typ host"));
    }

    #[test]
    fn nothing_changes_without_public_ips() {
        assert_eq!(advertise_public_ips(ANSWER, &[]), ANSWER);
    }

    #[test]
    fn unspecified_connection_address_stays() {
        let sdp = "c=IN IP4 0.0.0.0\r\n";
        assert_eq!(
            advertise_public_ips(sdp, &["203.0.113.7".parse().unwrap()]),
            sdp
        );
    }
}
