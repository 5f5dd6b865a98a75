//! The SDP side of a WHIP ICE restart (RFC 9725 §4.3.2, RFC 8840 §4.4), sans-IO, for both
//! ends: [`fragment_of`] cuts the ICE part out of a description (what a PATCH or its 200 carries),
//! and [`restarted`] puts a fragment's new credentials and candidates into the description they
//! replace (the server's next offer from the publisher's old one; a client's next answer from the
//! server's old one). Nothing else of the description changes: the media, the DTLS fingerprint
//! and the setup role stay, so DTLS and SRTP carry on over the new ICE session.

use super::sdpfrag::SdpFrag;

/// The ICE part of `sdp` as an `application/trickle-ice-sdpfrag` body: its credentials (and
/// `ice-options`/`ice-lite`, if any), then each media section's `m=` line, `a=mid` and
/// candidates, each section ended by `a=end-of-candidates` when the description says gathering
/// is complete there. Lines end in CRLF.
pub fn fragment_of(sdp: &str) -> String {
    let lines: Vec<&str> = sdp.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut out = String::new();
    let mut push = |line: &str| {
        out.push_str(line);
        out.push_str("\r\n");
    };
    // Session-level attributes first (a description may put the credentials at either level;
    // they are the same in every bundled section, so the first of each is the fragment's).
    for prefix in ["a=ice-lite", "a=ice-options:", "a=ice-ufrag:", "a=ice-pwd:"] {
        if let Some(line) = lines.iter().find(|l| l.starts_with(prefix)) {
            push(line);
        }
    }
    for line in &lines {
        if line.starts_with("m=")
            || line.starts_with("a=mid:")
            || line.starts_with("a=candidate:")
            || *line == "a=end-of-candidates"
        {
            push(line);
        }
    }
    out
}

/// `sdp` with `frag`'s credentials in place of its own and `frag`'s candidates in place of all
/// of its (each under the section of its mid; under the first section when the mid is unknown
/// or absent), and its session version (`o=`) one higher, as a changed description must have
/// (RFC 3264 §8). A section the fragment ended keeps `a=end-of-candidates`. Returns `None`
/// when `frag` has no credentials (it is then no restart).
pub fn restarted(sdp: &str, frag: &SdpFrag) -> Option<String> {
    let (ufrag, pwd) = (frag.ice_ufrag.as_deref()?, frag.ice_pwd.as_deref()?);
    let lines: Vec<&str> = sdp.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mids: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("a=mid:"))
        .map(str::trim)
        .collect();
    // Which section (by index) each of the fragment's sections lands in.
    let home = |mid: Option<&str>| {
        mid.and_then(|m| mids.iter().position(|known| *known == m))
            .unwrap_or(0)
    };
    let mut additions: Vec<Vec<String>> = vec![Vec::new(); mids.len().max(1)];
    let mut ended = vec![false; mids.len().max(1)];
    for section in &frag.sections {
        let at = home(section.mid.as_deref());
        additions[at].extend(section.candidates.iter().map(|c| format!("a={c}")));
        ended[at] |= section.end_of_candidates;
    }
    let mut out = String::with_capacity(sdp.len());
    let mut push = |line: &str| {
        out.push_str(line);
        out.push_str("\r\n");
    };
    // `None` before the first m= line; then the index of the current section.
    let mut section: Option<usize> = None;
    let mut flush_section = |section: Option<usize>, push: &mut dyn FnMut(&str)| {
        if let Some(at) = section.filter(|at| *at < additions.len()) {
            for c in additions[at].drain(..) {
                push(&c);
            }
            if ended[at] {
                push("a=end-of-candidates");
            }
        }
    };
    for line in lines.iter().filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            flush_section(section, &mut push);
            section = Some(section.map_or(0, |s| s + 1));
            push(line);
        } else if line.starts_with("a=ice-ufrag:") {
            push(&format!("a=ice-ufrag:{ufrag}"));
        } else if line.starts_with("a=ice-pwd:") {
            push(&format!("a=ice-pwd:{pwd}"));
        } else if line.starts_with("a=candidate:") || *line == "a=end-of-candidates" {
            // Replaced by the fragment's, at the section's end.
        } else if let Some(origin) = line.strip_prefix("o=") {
            push(&format!("o={}", next_version(origin)));
        } else {
            push(line);
        }
    }
    flush_section(section, &mut push);
    Some(out)
}

/// An `o=` value (`username sess-id sess-version nettype addrtype address`) with its version
/// one higher; unchanged if it does not parse.
fn next_version(origin: &str) -> String {
    let fields: Vec<&str> = origin.split(' ').collect();
    match fields.get(2).and_then(|v| v.parse::<u64>().ok()) {
        Some(version) if fields.len() == 6 => {
            let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
            fields[2] = version.wrapping_add(1).to_string();
            fields.join(" ")
        }
        _ => origin.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\n\
        o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=group:BUNDLE 0 1\r\n\
        a=ice-options:trickle\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=ice-ufrag:old1\r\n\
        a=ice-pwd:oldpasswordoldpasswordxx\r\n\
        a=fingerprint:sha-256 AA:BB\r\n\
        a=setup:actpass\r\n\
        a=mid:0\r\n\
        a=sendonly\r\n\
        a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n\
        a=end-of-candidates\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=ice-ufrag:old1\r\n\
        a=ice-pwd:oldpasswordoldpasswordxx\r\n\
        a=mid:1\r\n\
        a=sendonly\r\n";

    #[test]
    fn the_fragment_of_a_description_has_its_ice_lines_only() {
        let frag = fragment_of(OFFER);
        assert_eq!(
            frag,
            "a=ice-options:trickle\r\n\
             a=ice-ufrag:old1\r\n\
             a=ice-pwd:oldpasswordoldpasswordxx\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
             a=mid:0\r\n\
             a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n\
             a=end-of-candidates\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
             a=mid:1\r\n"
        );
        // And it is a fragment our own PATCH parser takes.
        let parsed = SdpFrag::parse(&frag).unwrap();
        assert_eq!(parsed.ice_ufrag.as_deref(), Some("old1"));
        assert_eq!(parsed.candidates().count(), 1);
    }

    #[test]
    fn a_restart_swaps_credentials_and_candidates_and_nothing_else() {
        let frag = SdpFrag::parse(
            "a=ice-ufrag:new2\r\na=ice-pwd:newpasswordnewpasswordyy\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n\
             a=candidate:7 1 udp 2130706431 127.0.0.1 50002 typ host\r\n\
             a=end-of-candidates\r\n",
        )
        .unwrap();
        let next = restarted(OFFER, &frag).unwrap();
        assert!(!next.contains("old1") && !next.contains("oldpassword"));
        assert_eq!(next.matches("a=ice-ufrag:new2\r\n").count(), 2);
        assert_eq!(
            next.matches("a=ice-pwd:newpasswordnewpasswordyy").count(),
            2
        );
        // The old candidate is gone; the new one sits in its mid's section, which is ended.
        assert!(!next.contains("50000"));
        let audio = next.split("m=audio").nth(1).unwrap();
        assert!(audio.contains("a=candidate:7 1 udp 2130706431 127.0.0.1 50002 typ host\r\n"));
        assert!(audio.ends_with("a=end-of-candidates\r\n"));
        let video = next.split("m=audio").next().unwrap();
        assert!(!video.contains("a=candidate") && !video.contains("end-of-candidates"));
        // One version higher, the rest of the description unchanged.
        assert!(next.contains("o=- 4611731400430051336 3 IN IP4 127.0.0.1\r\n"));
        for kept in [
            "a=fingerprint:sha-256 AA:BB",
            "a=setup:actpass",
            "a=group:BUNDLE 0 1",
        ] {
            assert!(next.contains(kept), "{kept}");
        }
        assert_eq!(next.lines().count(), OFFER.lines().count() - 2 + 2);
    }

    #[test]
    fn candidates_of_an_unknown_or_absent_mid_go_to_the_first_section() {
        let frag = SdpFrag::parse(
            "a=ice-ufrag:new2\na=ice-pwd:newpasswordnewpasswordyy\n\
             m=audio 9 X 0\na=mid:9\na=candidate:7 1 udp 1 127.0.0.1 50002 typ host\n",
        )
        .unwrap();
        let next = restarted(OFFER, &frag).unwrap();
        let video = next.split("m=audio").next().unwrap();
        assert!(video.contains("50002"));
    }

    #[test]
    fn a_fragment_without_credentials_is_no_restart() {
        let frag = SdpFrag::parse("m=audio 9 X 0\na=mid:0\na=end-of-candidates\n").unwrap();
        assert_eq!(restarted(OFFER, &frag), None);
        assert_eq!(next_version("- 1 x IN IP4 0"), "- 1 x IN IP4 0");
    }
}
