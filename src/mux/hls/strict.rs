//! A strict reader of media playlists, Low-Latency HLS included, for the tests and the load
//! tool: where players forgive, this refuses. Every line must be a known tag with a well-formed
//! value or a URI after EXTINF; attribute lists (RFC 8216 §4.2) must be `NAME=value` pairs with
//! no name twice. [`StrictPlaylist::violations`] then checks the rules of RFC 8216bis and
//! Apple's authoring specification that hold across lines (part durations against
//! PART-TARGET, hold-backs, skip boundary, the version EXT-X-SKIP needs, ...).
//!
//! m3u8-rs (used by the unit tests for plain playlists) reads none of the low-latency tags.

use std::collections::BTreeMap;

/// One EXT-X-PART.
#[derive(Clone, Debug, PartialEq)]
pub struct StrictPart {
    pub uri: String,
    pub duration: f64,
    pub independent: bool,
}

/// A media segment, or (no `uri`) the open segment whose parts end the playlist.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct StrictSegment {
    pub msn: u64,
    pub uri: Option<String>,
    pub duration: Option<f64>,
    pub discontinuity: bool,
    pub map: Option<String>,
    pub program_date_time: Option<String>,
    pub parts: Vec<StrictPart>,
}

/// A media playlist as read by [`parse_strict`].
#[derive(Clone, Debug, PartialEq, Default)]
pub struct StrictPlaylist {
    pub version: Option<u64>,
    pub target_duration: Option<u64>,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub independent_segments: bool,
    /// EXT-X-SERVER-CONTROL attributes.
    pub server_control: BTreeMap<String, String>,
    pub part_target: Option<f64>,
    /// EXT-X-SKIP:SKIPPED-SEGMENTS.
    pub skipped_segments: u64,
    pub segments: Vec<StrictSegment>,
    /// EXT-X-PRELOAD-HINT (TYPE=PART) URI.
    pub preload_hint: Option<String>,
    pub ended: bool,
}

/// Reads an attribute list (RFC 8216 §4.2): `NAME=value` pairs, values quoted strings or
/// unquoted tokens; no name twice.
pub fn attributes(list: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = list;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("attribute without '=' in {list:?}"))?;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!("bad attribute name {name:?} in {list:?}"));
        }
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| format!("unterminated string in {list:?}"))?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            let v = &after[..end];
            if v.is_empty() || v.contains('"') {
                return Err(format!("bad value of {name} in {list:?}"));
            }
            (v, &after[end..])
        };
        rest = match next.strip_prefix(',') {
            Some(r) if !r.is_empty() => r,
            Some(_) => return Err(format!("trailing comma in {list:?}")),
            None if next.is_empty() => "",
            None => return Err(format!("junk after {name} in {list:?}")),
        };
        if out.insert(name.to_string(), value.to_string()).is_some() {
            return Err(format!("{name} given twice in {list:?}"));
        }
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(v: &str, what: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("bad {what}: {v:?}"))
}

/// Reads a media playlist strictly (see the module comment).
pub fn parse_strict(text: &str) -> Result<StrictPlaylist, String> {
    let mut lines = text.split('\n');
    if lines.next() != Some("#EXTM3U") {
        return Err("the first line is not #EXTM3U".into());
    }
    if !text.ends_with('\n') {
        return Err("the last line has no line end".into());
    }
    let mut p = StrictPlaylist::default();
    let mut current = StrictSegment::default();
    let mut pending_extinf: Option<f64> = None;
    let mut media_started = false;
    let mut msn_set = false;
    for line in lines.filter(|l| !l.is_empty()) {
        if line.contains('\r') {
            return Err(format!("CR in {line:?}"));
        }
        if p.preload_hint.is_some() && line != "#EXT-X-ENDLIST" {
            return Err(format!("{line:?} after EXT-X-PRELOAD-HINT"));
        }
        if p.ended {
            return Err(format!("{line:?} after EXT-X-ENDLIST"));
        }
        if let Some(d) = pending_extinf.take() {
            if line.starts_with('#') {
                return Err(format!("EXTINF not followed by a URI but {line:?}"));
            }
            current.uri = Some(line.to_string());
            current.duration = Some(d);
            let next_msn = current.msn + 1;
            p.segments.push(std::mem::take(&mut current));
            current.msn = next_msn;
            continue;
        }
        let (tag, value) = line.split_once(':').unwrap_or((line, ""));
        let header = || {
            if media_started {
                Err(format!("{tag} after the first media segment tag"))
            } else {
                Ok(())
            }
        };
        match tag {
            "#EXT-X-VERSION" => p.version = Some(number(value, tag)?),
            "#EXT-X-TARGETDURATION" => {
                header()?;
                p.target_duration = Some(number(value, tag)?);
            }
            "#EXT-X-MEDIA-SEQUENCE" => {
                header()?;
                p.media_sequence = number(value, tag)?;
                current.msn = p.media_sequence;
                msn_set = true;
            }
            "#EXT-X-DISCONTINUITY-SEQUENCE" => {
                header()?;
                p.discontinuity_sequence = number(value, tag)?;
            }
            "#EXT-X-INDEPENDENT-SEGMENTS" if value.is_empty() => p.independent_segments = true,
            "#EXT-X-SERVER-CONTROL" => {
                header()?;
                p.server_control = attributes(value)?;
            }
            "#EXT-X-PART-INF" => {
                header()?;
                let a = attributes(value)?;
                let t = a.get("PART-TARGET").ok_or("PART-INF without PART-TARGET")?;
                p.part_target = Some(number(t, "PART-TARGET")?);
            }
            "#EXT-X-SKIP" => {
                if media_started {
                    return Err("EXT-X-SKIP after a media segment tag".into());
                }
                let a = attributes(value)?;
                let n = a.get("SKIPPED-SEGMENTS").ok_or("SKIP without a count")?;
                p.skipped_segments = number(n, "SKIPPED-SEGMENTS")?;
                current.msn = p.media_sequence + p.skipped_segments;
            }
            "#EXT-X-DISCONTINUITY" if value.is_empty() => {
                media_started = true;
                current.discontinuity = true;
            }
            "#EXT-X-MAP" => {
                media_started = true;
                let a = attributes(value)?;
                current.map = Some(a.get("URI").ok_or("EXT-X-MAP without URI")?.clone());
            }
            "#EXT-X-PROGRAM-DATE-TIME" => {
                media_started = true;
                let ok = value.len() == 24 && value.ends_with('Z') && value.as_bytes()[10] == b'T';
                if !ok {
                    return Err(format!("bad PROGRAM-DATE-TIME {value:?}"));
                }
                current.program_date_time = Some(value.to_string());
            }
            "#EXT-X-PART" => {
                media_started = true;
                let a = attributes(value)?;
                let uri = a.get("URI").ok_or("EXT-X-PART without URI")?.clone();
                let d = a.get("DURATION").ok_or("EXT-X-PART without DURATION")?;
                let independent = match a.get("INDEPENDENT").map(String::as_str) {
                    None => false,
                    Some("YES") => true,
                    Some(other) => return Err(format!("INDEPENDENT={other}")),
                };
                if let Some(other) = a
                    .keys()
                    .find(|k| !matches!(k.as_str(), "URI" | "DURATION" | "INDEPENDENT"))
                {
                    return Err(format!("unexpected EXT-X-PART attribute {other}"));
                }
                current.parts.push(StrictPart {
                    uri,
                    duration: number(d, "part DURATION")?,
                    independent,
                });
            }
            "#EXTINF" => {
                media_started = true;
                let (d, _title) = value.split_once(',').ok_or("EXTINF without ','")?;
                pending_extinf = Some(number(d, "EXTINF")?);
            }
            "#EXT-X-PRELOAD-HINT" => {
                let a = attributes(value)?;
                if a.get("TYPE").map(String::as_str) != Some("PART") {
                    return Err("PRELOAD-HINT TYPE is not PART".into());
                }
                p.preload_hint = Some(a.get("URI").ok_or("PRELOAD-HINT without URI")?.clone());
            }
            "#EXT-X-ENDLIST" if value.is_empty() => p.ended = true,
            _ if !line.starts_with('#') => return Err(format!("URI {line:?} without EXTINF")),
            _ => return Err(format!("unknown or malformed tag line {line:?}")),
        }
    }
    if pending_extinf.is_some() {
        return Err("the last EXTINF has no URI".into());
    }
    if !msn_set && p.segments.is_empty() && current.parts.is_empty() {
        return Err("no media".into());
    }
    if !current.parts.is_empty() {
        p.segments.push(current);
    } else if current.discontinuity || current.map.is_some() {
        return Err("segment tags with no segment after them".into());
    }
    Ok(p)
}

impl StrictPlaylist {
    /// The rules that hold across lines; empty when the playlist keeps them all.
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let Some(target) = self.target_duration else {
            return vec!["no EXT-X-TARGETDURATION".into()];
        };
        let target = target as f64;
        let has_parts = self.segments.iter().any(|s| !s.parts.is_empty());
        let sc = |k: &str| {
            self.server_control
                .get(k)
                .and_then(|x| x.parse::<f64>().ok())
        };
        for s in &self.segments {
            if let Some(d) = s.duration {
                if d.round() > target {
                    v.push(format!("segment {} lasts {d} s > TARGETDURATION", s.msn));
                }
                if !s.parts.is_empty() {
                    let sum: f64 = s.parts.iter().map(|p| p.duration).sum();
                    if (sum - d).abs() > 0.001 * s.parts.len() as f64 + 0.001 {
                        v.push(format!("segment {}: parts sum to {sum}, EXTINF {d}", s.msn));
                    }
                }
            }
            if let Some(pt) = self.part_target {
                for part in &s.parts {
                    if part.duration > pt + 0.0015 {
                        v.push(format!(
                            "part {} lasts {} > PART-TARGET",
                            part.uri, part.duration
                        ));
                    }
                }
            }
        }
        if has_parts || self.part_target.is_some() {
            let Some(pt) = self.part_target else {
                v.push("EXT-X-PART without EXT-X-PART-INF".into());
                return v;
            };
            match sc("PART-HOLD-BACK") {
                Some(h) if h >= 3.0 * pt - 1e-9 => {}
                other => v.push(format!("PART-HOLD-BACK {other:?} < 3 x PART-TARGET")),
            }
            if self
                .server_control
                .get("CAN-BLOCK-RELOAD")
                .map(String::as_str)
                != Some("YES")
            {
                v.push("parts without CAN-BLOCK-RELOAD=YES".into());
            }
            if self.preload_hint.is_none() && !self.ended {
                v.push("a live low-latency playlist without EXT-X-PRELOAD-HINT".into());
            }
        }
        if let Some(h) = sc("HOLD-BACK") {
            if h < 3.0 * target {
                v.push(format!("HOLD-BACK {h} < 3 x TARGETDURATION"));
            }
        }
        if let Some(s) = sc("CAN-SKIP-UNTIL") {
            if s < 6.0 * target {
                v.push(format!("CAN-SKIP-UNTIL {s} < 6 x TARGETDURATION"));
            }
        }
        if self.skipped_segments > 0 {
            if self.version.unwrap_or(1) < 9 {
                v.push("EXT-X-SKIP needs version 9".into());
            }
            if sc("CAN-SKIP-UNTIL").is_none() {
                v.push("EXT-X-SKIP without CAN-SKIP-UNTIL".into());
            }
        }
        let mut uris: Vec<&str> = self
            .segments
            .iter()
            .flat_map(|s| {
                s.uri
                    .iter()
                    .map(String::as_str)
                    .chain(s.parts.iter().map(|p| p.uri.as_str()))
            })
            .collect();
        let n = uris.len();
        uris.sort_unstable();
        uris.dedup();
        if uris.len() != n {
            v.push("a URI is listed twice".into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LL: &str = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.000,PART-HOLD-BACK=0.600,HOLD-BACK=6.000\n\
#EXT-X-PART-INF:PART-TARGET=0.200\n#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-MAP:URI=\"i.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.123Z\n\
#EXT-X-PART:DURATION=0.200,URI=\"p0.m4s\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.100,URI=\"p1.m4s\"\n\
#EXTINF:0.300,\ns4.m4s\n#EXT-X-PART:DURATION=0.200,URI=\"p2.m4s\",INDEPENDENT=YES\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p3.m4s\"\n";

    #[test]
    fn a_low_latency_playlist_reads_back_whole() {
        let p = parse_strict(LL).unwrap();
        assert_eq!(p.violations(), Vec::<String>::new());
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.segments[0].msn, 4);
        assert_eq!(p.segments[0].parts.len(), 2);
        assert!(p.segments[0].parts[0].independent && !p.segments[0].parts[1].independent);
        assert_eq!(p.segments[1].uri, None, "the open segment");
        assert_eq!(p.segments[1].msn, 5);
        assert_eq!(p.preload_hint.as_deref(), Some("p3.m4s"));
        assert_eq!(p.part_target, Some(0.2));
        assert_eq!(p.server_control["CAN-SKIP-UNTIL"], "12.000");
    }

    #[test]
    fn malformed_lines_are_refused() {
        for (from, to) in [
            ("#EXT-X-VERSION:9\n", "#EXT-X-VERSION:9\n#EXT-X-FOO\n"),
            ("URI=\"p1.m4s\"", "URI=\"p1.m4s"),
            ("URI=\"p1.m4s\"", "URI=\"p1.m4s\",URI=\"x\""),
            (
                "INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.100",
                "INDEPENDENT=NO\n#EXT-X-PART:DURATION=0.100",
            ),
            ("#EXTINF:0.300,\ns4.m4s\n", "#EXTINF:0.300,\n"),
            ("s4.m4s\n", "s4.m4s\nloose.m4s\n"),
            ("TYPE=PART", "TYPE=MAP"),
            ("#EXT-X-PART-INF:PART-TARGET=0.200\n", ""),
        ] {
            let bad = LL.replacen(from, to, 1);
            let result = parse_strict(&bad).map(|p| p.violations());
            assert!(
                result.is_err() || matches!(&result, Ok(v) if !v.is_empty()),
                "accepted after {to:?}"
            );
        }
        assert!(
            parse_strict("#EXTM3U\n#EXT-X-TARGETDURATION:2").is_err(),
            "no final newline"
        );
        assert!(parse_strict(&format!("{LL}#EXT-X-PART:DURATION=0.1,URI=\"late\"\n")).is_err());
    }

    #[test]
    fn cross_line_rules_are_checked() {
        let check = |from: &str, to: &str| {
            let p = parse_strict(&LL.replacen(from, to, 1)).unwrap();
            assert!(!p.violations().is_empty(), "no violation after {to:?}");
        };
        check("PART-HOLD-BACK=0.600", "PART-HOLD-BACK=0.500");
        check("HOLD-BACK=6.000", "HOLD-BACK=5.000");
        check("CAN-SKIP-UNTIL=12.000", "CAN-SKIP-UNTIL=11.000");
        check("DURATION=0.100", "DURATION=0.250");
        check("#EXTINF:0.300", "#EXTINF:0.500");
        check("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p3.m4s\"\n", "");
        check("URI=\"p1.m4s\"", "URI=\"p0.m4s\"");
    }

    #[test]
    fn skip_needs_version_nine() {
        let delta = LL
            .replacen("#EXT-X-VERSION:9", "#EXT-X-VERSION:7", 1)
            .replacen(
                "#EXT-X-INDEPENDENT-SEGMENTS\n",
                "#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n",
                1,
            );
        let p = parse_strict(&delta).unwrap();
        assert_eq!(p.skipped_segments, 3);
        assert_eq!(p.segments[0].msn, 7);
        assert!(p.violations().iter().any(|v| v.contains("version 9")));
    }
}
