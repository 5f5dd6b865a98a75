//! What a Low-Latency HLS player does next, from the playlist it has (sans-IO): where it
//! starts (PART-HOLD-BACK from the newest part, back to an independent one), which blocking
//! reload it sends (hls.js's rule for `_HLS_msn`/`_HLS_part`/`_HLS_skip`), and which parts an
//! answer lists that it did not know yet. Works on the strict reader's [`StrictPlaylist`].

use crate::mux::hls::strict::{StrictPart, StrictPlaylist};

/// Where a part sits: the media sequence number of its segment and its index in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartPos {
    pub msn: u64,
    pub index: u64,
}

/// A blocking playlist reload's delivery directives (RFC 8216bis §6.2.5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Directive {
    pub msn: u64,
    pub part: Option<u64>,
    /// `_HLS_skip=YES`: the playlist offers delta updates (CAN-SKIP-UNTIL).
    pub skip: bool,
}

impl Directive {
    /// The query string, in the order hls.js writes it.
    pub fn query(&self) -> String {
        let mut q = format!("_HLS_msn={}", self.msn);
        if let Some(p) = self.part {
            q.push_str(&format!("&_HLS_part={p}"));
        }
        if self.skip {
            q.push_str("&_HLS_skip=YES");
        }
        q
    }
}

/// Every listed part with its place, oldest first.
pub fn parts(p: &StrictPlaylist) -> impl DoubleEndedIterator<Item = (PartPos, &StrictPart)> {
    p.segments.iter().flat_map(|s| {
        s.parts.iter().enumerate().map(move |(i, part)| {
            let pos = PartPos {
                msn: s.msn,
                index: i as u64,
            };
            (pos, part)
        })
    })
}

/// The newest listed part.
pub fn newest_part(p: &StrictPlaylist) -> Option<PartPos> {
    parts(p).next_back().map(|(pos, _)| pos)
}

/// The next blocking reload, as hls.js computes it (`base-playlist-controller`, low-latency
/// mode): the part after the newest listed one; when that newest part ends a complete segment
/// (no part of the next one yet), part 0 of the next segment; without parts, the next segment.
/// `None` when the playlist does not say CAN-BLOCK-RELOAD=YES.
pub fn next_directive(p: &StrictPlaylist) -> Option<Directive> {
    if p.server_control.get("CAN-BLOCK-RELOAD").map(String::as_str) != Some("YES") {
        return None;
    }
    let skip = p.server_control.contains_key("CAN-SKIP-UNTIL");
    let end_msn = p
        .segments
        .iter()
        .rev()
        .find(|s| s.uri.is_some())
        .map(|s| s.msn);
    let newest = newest_part(p);
    let (msn, part) = match (newest, end_msn) {
        (Some(n), Some(end)) if n.msn == end => (end + 1, Some(0)),
        (Some(n), _) => (n.msn, Some(n.index + 1)),
        (None, Some(end)) => (end + 1, None),
        (None, None) => (p.media_sequence + p.skipped_segments, None),
    };
    Some(Directive { msn, part, skip })
}

/// The parts a player joining with this playlist fetches first: back from the newest part
/// until they hold PART-HOLD-BACK of media (three part targets if unsaid), then further back
/// to the nearest INDEPENDENT part, so that playback can start there. Oldest first.
pub fn start_parts(p: &StrictPlaylist) -> Vec<(PartPos, &StrictPart)> {
    let listed: Vec<_> = parts(p).collect();
    let hold_back = p
        .server_control
        .get("PART-HOLD-BACK")
        .and_then(|v| v.parse::<f64>().ok())
        .or(p.part_target.map(|t| 3.0 * t))
        .unwrap_or(0.0);
    let mut from = listed.len();
    let mut held = 0.0;
    // A millisecond of slack: durations are written rounded.
    while from > 0 && held + 0.001 < hold_back {
        from -= 1;
        held += listed[from].1.duration;
    }
    while from > 0 && !listed[from].1.independent {
        from -= 1;
    }
    listed.into_iter().skip(from).collect()
}

/// The init segment (EXT-X-MAP) that applies to segment `msn`.
pub fn init_for(p: &StrictPlaylist, msn: u64) -> Option<&str> {
    p.segments
        .iter()
        .filter(|s| s.msn <= msn)
        .rev()
        .find_map(|s| s.map.as_deref())
}

/// What an answer brings a player whose newest known part is `known`.
#[derive(Debug, PartialEq)]
pub struct Update<'a> {
    /// Parts newer than `known`, oldest first.
    pub new: Vec<(PartPos, &'a StrictPart)>,
    /// `known` is no longer listed though newer parts are: parts in between may have gone
    /// by unlisted (the player fell behind the playlist's part horizon).
    pub missed: bool,
    /// The newest part the player now knows.
    pub newest: PartPos,
}

/// The parts of `p` the player has not seen, given the newest one it knows.
pub fn new_parts(known: PartPos, p: &StrictPlaylist) -> Update<'_> {
    let mut still_listed = false;
    let mut new = Vec::new();
    for (pos, part) in parts(p) {
        if pos == known {
            still_listed = true;
        } else if pos > known {
            new.push((pos, part));
        }
    }
    let newest = new.last().map_or(known, |(pos, _)| *pos);
    Update {
        missed: !still_listed && !new.is_empty(),
        new,
        newest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::hls::strict::parse_strict;

    /// Segment 4 complete (2 parts), segment 5 open with `open_parts` parts; part i is
    /// independent when i is even.
    fn playlist(open_parts: usize, skip_until: bool) -> StrictPlaylist {
        let mut t = String::from(
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,",
        );
        if skip_until {
            t.push_str("CAN-SKIP-UNTIL=12.000,");
        }
        t.push_str(
            "PART-HOLD-BACK=0.600,HOLD-BACK=6.000\n#EXT-X-PART-INF:PART-TARGET=0.200\n\
#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF:0.400,\ns3.m4s\n\
#EXT-X-PART:DURATION=0.200,URI=\"p40.m4s\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.200,URI=\"p41.m4s\"\n\
#EXTINF:0.400,\ns4.m4s\n",
        );
        for i in 0..open_parts {
            let ind = if i % 2 == 0 { ",INDEPENDENT=YES" } else { "" };
            t.push_str(&format!(
                "#EXT-X-PART:DURATION=0.200,URI=\"p5{i}.m4s\"{ind}\n"
            ));
        }
        t.push_str(&format!(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p5{open_parts}.m4s\"\n"
        ));
        parse_strict(&t).unwrap()
    }

    fn pos(msn: u64, index: u64) -> PartPos {
        PartPos { msn, index }
    }

    #[test]
    fn the_next_reload_asks_for_the_part_after_the_newest() {
        let p = playlist(3, false);
        assert_eq!(newest_part(&p), Some(pos(5, 2)));
        let d = next_directive(&p).unwrap();
        assert_eq!(
            d,
            Directive {
                msn: 5,
                part: Some(3),
                skip: false
            }
        );
        assert_eq!(d.query(), "_HLS_msn=5&_HLS_part=3");
    }

    #[test]
    fn after_a_complete_segment_the_reload_asks_for_part_zero_of_the_next() {
        let p = playlist(0, true);
        assert_eq!(newest_part(&p), Some(pos(4, 1)));
        let d = next_directive(&p).unwrap();
        assert_eq!((d.msn, d.part, d.skip), (5, Some(0), true));
        assert_eq!(d.query(), "_HLS_msn=5&_HLS_part=0&_HLS_skip=YES");
    }

    #[test]
    fn without_parts_or_blocking_there_is_no_part_directive() {
        let plain = parse_strict(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n\
#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.0,\ns7.m4s\n",
        )
        .unwrap();
        assert_eq!(
            next_directive(&plain),
            Some(Directive {
                msn: 8,
                part: None,
                skip: false
            })
        );
        assert_eq!(next_directive(&plain).unwrap().query(), "_HLS_msn=8");
        let no_block =
            parse_strict("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\ns0.m4s\n").unwrap();
        assert_eq!(next_directive(&no_block), None);
    }

    #[test]
    fn a_joining_player_holds_back_three_parts_from_an_independent_one() {
        // Newest 5/2 (independent); three parts back is 5/0, independent: 5/0..=5/2.
        let p = playlist(3, false);
        let uris: Vec<_> = start_parts(&p).iter().map(|(_, x)| x.uri.clone()).collect();
        assert_eq!(uris, ["p50.m4s", "p51.m4s", "p52.m4s"]);
        // Newest 5/3; three back is 5/1, not independent: back to 5/0.
        let p = playlist(4, false);
        let start = start_parts(&p);
        assert_eq!(start.first().map(|(pos, _)| *pos), Some(pos(5, 0)));
        assert_eq!(start.len(), 4);
        // Segment 4's two parts and one more hold 0.6 s: from 4/0.
        let p = playlist(1, false);
        let start = start_parts(&p);
        assert_eq!(start.first().map(|(pos, _)| *pos), Some(pos(4, 0)));
        assert_eq!(init_for(&p, 4), Some("i.mp4"));
        assert_eq!(init_for(&p, 2), None);
    }

    #[test]
    fn an_answer_brings_the_parts_after_the_newest_known() {
        let p = playlist(3, false);
        let u = new_parts(pos(5, 0), &p);
        let uris: Vec<_> = u.new.iter().map(|(_, x)| x.uri.as_str()).collect();
        assert_eq!(uris, ["p51.m4s", "p52.m4s"]);
        assert_eq!((u.missed, u.newest), (false, pos(5, 2)));
        // Across a segment boundary: 4/1 known, 5/0 new.
        let one_open = playlist(1, false);
        let u = new_parts(pos(4, 1), &one_open);
        assert_eq!(u.new.len(), 1);
        assert_eq!((u.missed, u.newest), (false, pos(5, 0)));
        // Nothing newer: no part, nothing missed, the known part stays the newest.
        let u = new_parts(pos(5, 2), &p);
        assert!(u.new.is_empty() && !u.missed);
        assert_eq!(u.newest, pos(5, 2));
        // An answer older than what the player knows brings nothing either.
        let u = new_parts(pos(9, 0), &p);
        assert!(u.new.is_empty() && !u.missed);
        assert_eq!(u.newest, pos(9, 0));
    }

    #[test]
    fn a_known_part_that_left_the_list_means_parts_were_missed() {
        let p = playlist(3, false);
        let u = new_parts(pos(2, 3), &p);
        assert!(u.missed);
        assert_eq!(u.new.len(), 5);
        assert_eq!(u.newest, pos(5, 2));
    }
}
