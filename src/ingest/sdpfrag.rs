//! WHIP PATCH bodies (RFC 9725 §4.3, RFC 8840 §4.4): the `application/trickle-ice-sdpfrag`
//! parser, and the rules that decide what a PATCH is (more candidates, or an ICE restart) and
//! whether its `If-Match` lets it through. Sans-IO: text and the session's state in, a decision
//! out; nothing is applied to a connection here, so a bad fragment changes nothing.

/// Most candidates one PATCH may carry (a browser gathers a handful per interface).
pub const MAX_CANDIDATES: usize = 64;

/// One media section of a fragment: its `a=mid` and the candidates under it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FragSection {
    pub mid: Option<String>,
    /// `a=candidate:` values, without the `a=` (RFC 8839 §5.1 `candidate-attribute`).
    pub candidates: Vec<String>,
    pub end_of_candidates: bool,
}

/// A parsed `application/trickle-ice-sdpfrag` body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SdpFrag {
    pub ice_ufrag: Option<String>,
    pub ice_pwd: Option<String>,
    pub sections: Vec<FragSection>,
}

/// Why a fragment is refused (400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FragError {
    #[error("not an SDP fragment line: {0:?}")]
    NotSdp(String),
    #[error("malformed candidate: {0:?}")]
    BadCandidate(String),
    #[error("a candidate before any m= section")]
    CandidateOutsideSection,
    #[error("more than {MAX_CANDIDATES} candidates in one PATCH")]
    TooManyCandidates,
    #[error(
        "a fragment with a new ice-ufrag must have a new ice-pwd too, and the other way round"
    )]
    HalfCredentials,
}

impl SdpFrag {
    pub fn parse(body: &str) -> Result<SdpFrag, FragError> {
        let mut frag = SdpFrag::default();
        let mut count = 0;
        for line in body.lines().map(|l| l.trim_end_matches('\r')) {
            if line.is_empty() {
                continue;
            }
            let b = line.as_bytes();
            if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_lowercase() {
                return Err(FragError::NotSdp(short(line)));
            }
            if line.starts_with("m=") {
                frag.sections.push(FragSection::default());
            } else if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
                frag.ice_ufrag = Some(ice_chars(v).ok_or_else(|| FragError::NotSdp(short(line)))?);
            } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
                frag.ice_pwd = Some(ice_chars(v).ok_or_else(|| FragError::NotSdp(short(line)))?);
            } else if let Some(v) = line.strip_prefix("a=mid:") {
                if let Some(s) = frag.sections.last_mut() {
                    s.mid = Some(v.trim().to_string());
                }
            } else if line.starts_with("a=candidate:") {
                let value = &line[2..];
                check_candidate(value)?;
                count += 1;
                if count > MAX_CANDIDATES {
                    return Err(FragError::TooManyCandidates);
                }
                frag.sections
                    .last_mut()
                    .ok_or(FragError::CandidateOutsideSection)?
                    .candidates
                    .push(value.to_string());
            } else if line == "a=end-of-candidates" {
                if let Some(s) = frag.sections.last_mut() {
                    s.end_of_candidates = true;
                }
            }
            // Other lines (a=ice-options, a=group:BUNDLE, c=) say nothing we act on.
        }
        if frag.ice_ufrag.is_some() != frag.ice_pwd.is_some() {
            return Err(FragError::HalfCredentials);
        }
        Ok(frag)
    }

    /// Every candidate with its section's mid.
    pub fn candidates(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.sections.iter().flat_map(|s| {
            s.candidates
                .iter()
                .map(move |c| (c.as_str(), s.mid.as_deref()))
        })
    }
}

/// An ICE ufrag or pwd (RFC 8839 §5.4: `ice-char` = ALPHA / DIGIT / "+" / "/").
fn ice_chars(v: &str) -> Option<String> {
    let v = v.trim();
    let ok = !v.is_empty()
        && v.len() <= 256
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/');
    ok.then(|| v.to_string())
}

/// `candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...`
/// (RFC 8839 §5.1). The address may be an IP or a name (an mDNS `.local` one from a browser).
fn check_candidate(value: &str) -> Result<(), FragError> {
    let bad = || FragError::BadCandidate(short(value));
    let fields: Vec<&str> = value
        .strip_prefix("candidate:")
        .ok_or_else(bad)?
        .split_ascii_whitespace()
        .collect();
    if fields.len() < 8 || fields[6] != "typ" {
        return Err(bad());
    }
    let component_ok = fields[1].parse::<u8>().is_ok_and(|c| (1..=2).contains(&c));
    let transport_ok = ["udp", "tcp"]
        .iter()
        .any(|t| fields[2].eq_ignore_ascii_case(t));
    let priority_ok = fields[3].parse::<u32>().is_ok();
    let address_ok = fields[4].parse::<std::net::IpAddr>().is_ok()
        || (fields[4].len() <= 253
            && fields[4]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.'));
    let port_ok = fields[5].parse::<u16>().is_ok();
    let type_ok = ["host", "srflx", "prflx", "relay"].contains(&fields[7]);
    if component_ok && transport_ok && priority_ok && address_ok && port_ok && type_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

fn short(line: &str) -> String {
    line.chars().take(80).collect()
}

/// The first `a=ice-ufrag` of an SDP (a BUNDLE offer or answer has one for all its sections).
pub fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .map(str::trim)
        .filter(|u| !u.is_empty())
}

/// What a PATCH asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// More remote candidates (or their end) for the current ICE session.
    Trickle,
    /// New remote credentials: an ICE restart (RFC 8840 §4.4.1).
    Restart,
}

impl PatchKind {
    /// A fragment with a ufrag other than the one the session's offer had asks for a restart.
    pub fn of(frag: &SdpFrag, remote_ufrag: &str) -> PatchKind {
        match frag.ice_ufrag.as_deref() {
            Some(u) if u != remote_ufrag => PatchKind::Restart,
            _ => PatchKind::Trickle,
        }
    }
}

/// Why `If-Match` stops a PATCH.
#[derive(Debug, PartialEq, Eq)]
pub enum Precondition {
    /// 428: the PATCH must name the session's entity-tag (trickle) or `*` (restart).
    Required,
    /// 412: it names another (stale) entity-tag.
    Failed,
}

/// RFC 9725 §4.3.1: a trickle PATCH carries `If-Match` with the session's current ETag (or
/// `*`); a restart carries `If-Match: *` (or the current ETag, which is as good a proof).
/// Entity-tags are strong and compared byte for byte; a list matches if any member does.
pub fn check_if_match(if_match: Option<&str>, etag: &str) -> Result<(), Precondition> {
    let Some(value) = if_match.map(str::trim).filter(|v| !v.is_empty()) else {
        return Err(Precondition::Required);
    };
    let matches = value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag);
    if matches {
        Ok(())
    } else {
        Err(Precondition::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Chromium's trickle sends through a WHIP client: one section, a host and a srflx
    /// candidate, CRLF line ends.
    const TRICKLE: &str = "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
        a=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
        a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n\
        a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ srflx raddr 10.0.0.2 rport 61765\r\n\
        a=end-of-candidates\r\n";

    #[test]
    fn a_browser_fragment_parses_into_its_section_and_candidates() {
        let frag = SdpFrag::parse(TRICKLE).unwrap();
        assert_eq!(frag.ice_ufrag.as_deref(), Some("EsAw"));
        assert_eq!(frag.ice_pwd.as_deref(), Some("P2uYro0UCOQ4zxjKXaWCBui1"));
        assert_eq!(frag.sections.len(), 1);
        assert_eq!(frag.sections[0].mid.as_deref(), Some("0"));
        assert!(frag.sections[0].end_of_candidates);
        let cands: Vec<_> = frag.candidates().collect();
        assert_eq!(cands.len(), 2);
        assert!(cands[0].0.starts_with("candidate:1387637174 1 udp"));
        assert_eq!(cands[1].1, Some("0"));
    }

    #[test]
    fn an_mdns_candidate_and_an_end_only_fragment_are_fine() {
        let frag = SdpFrag::parse(
            "m=audio 9 UDP/TLS/RTP/SAVPF 0\na=mid:0\n\
             a=candidate:1 1 UDP 2113937151 3c1b7f5e-1f2d.local 50000 typ host\n",
        )
        .unwrap();
        assert_eq!(frag.candidates().count(), 1);
        let end = SdpFrag::parse("m=audio 9 UDP/TLS/RTP/SAVPF 0\na=mid:0\na=end-of-candidates\n")
            .unwrap();
        assert!(end.sections[0].end_of_candidates);
        assert_eq!(end.candidates().count(), 0);
    }

    #[test]
    fn bad_fragments_are_refused_whole() {
        for (body, want) in [
            ("hello", FragError::NotSdp("hello".into())),
            (
                "a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\n",
                FragError::CandidateOutsideSection,
            ),
            (
                "m=audio 9 X 0\na=candidate:1 1 udp 1 192.0.2.1 99999 typ host\n",
                FragError::BadCandidate("candidate:1 1 udp 1 192.0.2.1 99999 typ host".into()),
            ),
            (
                "m=audio 9 X 0\na=candidate:1 1 sctp 1 192.0.2.1 5000 typ host\n",
                FragError::BadCandidate("candidate:1 1 sctp 1 192.0.2.1 5000 typ host".into()),
            ),
            (
                "m=audio 9 X 0\na=candidate:1 1 udp 1 192.0.2.1 5000 host\n",
                FragError::BadCandidate("candidate:1 1 udp 1 192.0.2.1 5000 host".into()),
            ),
            (
                "m=audio 9 X 0\na=candidate:1 1 udp 1 bad;name 5000 typ host\n",
                FragError::BadCandidate("candidate:1 1 udp 1 bad;name 5000 typ host".into()),
            ),
            ("a=ice-ufrag:abcd\n", FragError::HalfCredentials),
            (
                "a=ice-ufrag:ab cd!\na=ice-pwd:x\n",
                FragError::NotSdp("a=ice-ufrag:ab cd!".into()),
            ),
        ] {
            assert_eq!(SdpFrag::parse(body), Err(want), "{body:?}");
        }
        let mut flood = String::from("m=audio 9 X 0\n");
        for i in 0..=MAX_CANDIDATES {
            flood.push_str(&format!(
                "a=candidate:{i} 1 udp 1 192.0.2.1 {} typ host\n",
                1000 + i
            ));
        }
        assert_eq!(SdpFrag::parse(&flood), Err(FragError::TooManyCandidates));
    }

    #[test]
    fn a_new_ufrag_is_a_restart_and_the_same_or_none_is_trickle() {
        let frag = SdpFrag::parse(TRICKLE).unwrap();
        assert_eq!(PatchKind::of(&frag, "EsAw"), PatchKind::Trickle);
        assert_eq!(PatchKind::of(&frag, "old1"), PatchKind::Restart);
        let bare = SdpFrag::parse("m=audio 9 X 0\na=mid:0\na=end-of-candidates\n").unwrap();
        assert_eq!(PatchKind::of(&bare, "old1"), PatchKind::Trickle);
    }

    #[test]
    fn if_match_rules() {
        let etag = "\"a1b2\"";
        assert_eq!(check_if_match(Some("\"a1b2\""), etag), Ok(()));
        assert_eq!(check_if_match(Some("*"), etag), Ok(()));
        assert_eq!(check_if_match(Some("\"x\", \"a1b2\""), etag), Ok(()));
        assert_eq!(check_if_match(None, etag), Err(Precondition::Required));
        assert_eq!(
            check_if_match(Some("  "), etag),
            Err(Precondition::Required)
        );
        assert_eq!(
            check_if_match(Some("\"zz\""), etag),
            Err(Precondition::Failed)
        );
        // Strong comparison: a weak tag or the bare value is not the same entity-tag.
        assert_eq!(
            check_if_match(Some("W/\"a1b2\""), etag),
            Err(Precondition::Failed)
        );
        assert_eq!(
            check_if_match(Some("a1b2"), etag),
            Err(Precondition::Failed)
        );
    }
}
