//! The media playlist model and its M3U8 writer (RFC 8216 §4; Low-Latency HLS from RFC 8216bis
//! §4.4.3.7-4.4.5.3). fMP4 playlists use version 7 (EXT-X-MAP outside I-frame playlists needs
//! at least 6, §7); playlists that can be delta-updated use 9 (EXT-X-SKIP).
//!
//! Pure data in, text out. Low-latency playlists add EXT-X-SERVER-CONTROL and EXT-X-PART-INF
//! to the header, EXT-X-PART lines before each recent segment's EXTINF, the parts of the
//! segment still being written after the last complete one, and EXT-X-PRELOAD-HINT last.

use std::fmt::Write;

use super::datetime::write_rfc3339_ms;

/// One partial segment (EXT-X-PART).
#[derive(Clone, Debug, PartialEq)]
pub struct PlaylistPart {
    pub uri: String,
    /// Seconds; written with three decimals.
    pub duration: f64,
    /// INDEPENDENT=YES: the part starts with a keyframe.
    pub independent: bool,
}

/// One media segment line group of a media playlist.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaylistSegment {
    pub uri: String,
    /// Seconds; written with three decimals in EXTINF.
    pub duration: f64,
    /// Wall-clock time of the first sample (Unix milliseconds), for EXT-X-PROGRAM-DATE-TIME.
    pub program_date_time_ms: Option<i64>,
    /// EXT-X-DISCONTINUITY before this segment (codec parameters or timeline changed).
    pub discontinuity: bool,
    /// The init segment this segment needs; EXT-X-MAP is written whenever it differs from the
    /// previous segment's (and for the first listed segment).
    pub map_uri: Option<String>,
    /// The segment's partial segments, listed before its EXTINF (low latency, recent segments).
    pub parts: Vec<PlaylistPart>,
}

/// The EXT-X-SERVER-CONTROL and EXT-X-PART-INF values of a low-latency playlist (seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LowLatency {
    /// PART-TARGET: no part is longer.
    pub part_target: f64,
    /// PART-HOLD-BACK: how far from the live edge low-latency players start (≥ 3 part targets).
    pub part_hold_back: f64,
    /// HOLD-BACK: the same for players that ignore parts (≥ 3 target durations).
    pub hold_back: f64,
    /// CAN-SKIP-UNTIL: delta updates (`_HLS_skip=YES`) leave out segments older than this from
    /// the end of the playlist (at least 6 target durations). `None`: no delta updates.
    pub can_skip_until: Option<f64>,
}

/// A media playlist (RFC 8216 §4.3.3).
#[derive(Clone, Debug, PartialEq)]
pub struct MediaPlaylist {
    /// EXT-X-VERSION.
    pub version: u8,
    /// EXT-X-TARGETDURATION in whole seconds; must not change during a live stream.
    pub target_duration: u32,
    /// EXT-X-MEDIA-SEQUENCE: the sequence number of the first listed segment.
    pub media_sequence: u64,
    /// EXT-X-DISCONTINUITY-SEQUENCE: discontinuities that slid out of the window (written when
    /// non-zero).
    pub discontinuity_sequence: u64,
    pub segments: Vec<PlaylistSegment>,
    /// EXT-X-ENDLIST: the stream is over.
    pub ended: bool,
    /// EXT-X-INDEPENDENT-SEGMENTS: every segment starts with a keyframe.
    pub independent_segments: bool,
    /// Low-Latency HLS: server control and part information.
    pub low_latency: Option<LowLatency>,
    /// The segment being written (low latency): its tags and parts are listed after the last
    /// complete segment, without EXTINF or URI (its `uri` and `duration` are not written).
    pub open: Option<PlaylistSegment>,
    /// EXT-X-PRELOAD-HINT:TYPE=PART: the URI the next part will have.
    pub preload_hint: Option<String>,
}

impl MediaPlaylist {
    /// An empty live fMP4 playlist (version 7, independent segments).
    pub fn new(target_duration: u32) -> Self {
        Self {
            version: 7,
            target_duration,
            media_sequence: 0,
            discontinuity_sequence: 0,
            segments: Vec::new(),
            ended: false,
            independent_segments: true,
            low_latency: None,
            open: None,
            preload_hint: None,
        }
    }

    /// The playlist as M3U8 text.
    pub fn render(&self) -> String {
        self.render_skipping(0)
    }

    /// How many leading segments a delta update leaves out: those that start more than
    /// CAN-SKIP-UNTIL before the end of the playlist (RFC 8216bis §6.2.5.1). 0 without delta
    /// updates.
    pub fn skippable_segments(&self) -> usize {
        let Some(until) = self.low_latency.and_then(|ll| ll.can_skip_until) else {
            return 0;
        };
        let open: f64 = self
            .open
            .iter()
            .flat_map(|o| o.parts.iter())
            .map(|p| p.duration)
            .sum();
        // Walk back from the end: a segment is kept while its start is within the boundary.
        let mut from_end = open;
        let mut kept = 0;
        for segment in self.segments.iter().rev() {
            from_end += finite_duration(segment.duration);
            if from_end > until {
                break;
            }
            kept += 1;
        }
        self.segments.len() - kept
    }

    /// The delta update (`_HLS_skip=YES`): EXT-X-SKIP in place of the segments a client that
    /// has the playlist already knows. The full playlist when nothing can be skipped.
    pub fn render_delta(&self) -> String {
        self.render_skipping(self.skippable_segments())
    }

    /// The playlist with its first `skipped` segments left out behind EXT-X-SKIP (0: the full
    /// playlist); `skipped` as [`MediaPlaylist::skippable_segments`] counts them.
    pub(super) fn render_skipping(&self, skipped: usize) -> String {
        let parts: usize = self
            .segments
            .iter()
            .chain(self.open.iter())
            .map(|s| s.parts.len())
            .sum();
        let per_segment: usize = self
            .segments
            .iter()
            .skip(skipped)
            .map(|s| s.uri.len() + s.map_uri.as_ref().map_or(0, |m| m.len() + 20) + 96)
            .sum();
        let per_part = self.segments.last().map_or(32, |s| s.uri.len() + 16) + 48;
        let mut out = String::with_capacity(320 + per_segment + parts * per_part);
        self.write_header(&mut out, skipped);
        let mut current_map: Option<&str> = None;
        for segment in &self.segments[skipped.min(self.segments.len())..] {
            write_segment_head(&mut out, segment, &mut current_map);
            write_parts(&mut out, &segment.parts);
            write_extinf(&mut out, segment);
        }
        if let Some(open) = &self.open {
            if !open.parts.is_empty() {
                write_segment_head(&mut out, open, &mut current_map);
                write_parts(&mut out, &open.parts);
            }
        }
        if let Some(uri) = &self.preload_hint {
            let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{uri}\"");
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }

    fn write_header(&self, out: &mut String, skipped: usize) {
        out.push_str("#EXTM3U\n");
        let _ = writeln!(out, "#EXT-X-VERSION:{}", self.version);
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        if let Some(ll) = &self.low_latency {
            out.push_str("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES");
            if let Some(until) = ll.can_skip_until {
                let _ = write!(out, ",CAN-SKIP-UNTIL={until:.3}");
            }
            let _ = writeln!(
                out,
                ",PART-HOLD-BACK={:.3},HOLD-BACK={:.3}",
                ll.part_hold_back, ll.hold_back
            );
            let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={:.3}", ll.part_target);
        }
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        if skipped > 0 {
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
    }
}

fn finite_duration(d: f64) -> f64 {
    if d.is_finite() {
        d.max(0.0)
    } else {
        0.0
    }
}

/// The tags that apply from a segment on: discontinuity, init segment, wall-clock time.
fn write_segment_head<'a>(
    out: &mut String,
    segment: &'a PlaylistSegment,
    map: &mut Option<&'a str>,
) {
    if segment.discontinuity {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if let Some(uri) = segment.map_uri.as_deref() {
        if *map != Some(uri) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{uri}\"");
            *map = Some(uri);
        }
    }
    if let Some(ms) = segment.program_date_time_ms {
        out.push_str("#EXT-X-PROGRAM-DATE-TIME:");
        write_rfc3339_ms(out, ms);
        out.push('\n');
    }
}

fn write_parts(out: &mut String, parts: &[PlaylistPart]) {
    for part in parts {
        let _ = write!(
            out,
            "#EXT-X-PART:DURATION={:.3},URI=\"{}\"",
            finite_duration(part.duration),
            part.uri
        );
        if part.independent {
            out.push_str(",INDEPENDENT=YES");
        }
        out.push('\n');
    }
}

fn write_extinf(out: &mut String, segment: &PlaylistSegment) {
    let _ = writeln!(out, "#EXTINF:{:.3},", finite_duration(segment.duration));
    out.push_str(&segment.uri);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(uri: &str, duration: f64, map: Option<&str>) -> PlaylistSegment {
        PlaylistSegment {
            uri: uri.to_string(),
            duration,
            program_date_time_ms: None,
            discontinuity: false,
            map_uri: map.map(str::to_string),
            parts: Vec::new(),
        }
    }

    fn parse(text: &str) -> m3u8_rs::MediaPlaylist {
        match m3u8_rs::parse_media_playlist(text.as_bytes()) {
            Ok((_, p)) => p,
            Err(e) => panic!("m3u8-rs rejected the playlist: {e:?}\n{text}"),
        }
    }

    #[test]
    fn live_playlist_header_and_segments_parse_with_m3u8_rs() {
        let mut p = MediaPlaylist::new(3);
        p.media_sequence = 42;
        p.segments = vec![
            PlaylistSegment {
                program_date_time_ms: Some(1_700_000_000_123),
                ..seg("a-42.m4s", 2.0, Some("a-init-0.mp4"))
            },
            seg("a-43.m4s", 2.04, Some("a-init-0.mp4")),
        ];
        let text = p.render();
        let parsed = parse(&text);
        assert_eq!(parsed.version, Some(7));
        assert_eq!(parsed.target_duration, 3);
        assert_eq!(parsed.media_sequence, 42);
        assert!(parsed.independent_segments);
        assert!(!parsed.end_list);
        assert_eq!(parsed.segments.len(), 2);
        assert_eq!(parsed.segments[0].uri, "a-42.m4s");
        assert_eq!(parsed.segments[1].duration, 2.04);
        assert_eq!(
            parsed.segments[0].map.as_ref().map(|m| m.uri.as_str()),
            Some("a-init-0.mp4")
        );
        let pdt = parsed.segments[0].program_date_time.expect("PDT parsed");
        assert_eq!(pdt.timestamp_millis(), 1_700_000_000_123);
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.123Z\n"));
    }

    #[test]
    fn extinf_has_three_decimals() {
        let mut p = MediaPlaylist::new(2);
        p.segments = vec![seg("x.m4s", 1.0 / 3.0, None), seg("y.m4s", 2.0, None)];
        let text = p.render();
        assert!(text.contains("#EXTINF:0.333,\nx.m4s\n"), "{text}");
        assert!(text.contains("#EXTINF:2.000,\ny.m4s\n"), "{text}");
    }

    #[test]
    fn ext_x_map_is_written_only_when_the_init_changes() {
        let mut p = MediaPlaylist::new(2);
        p.segments = vec![
            seg("1.m4s", 2.0, Some("init-0.mp4")),
            seg("2.m4s", 2.0, Some("init-0.mp4")),
            PlaylistSegment {
                discontinuity: true,
                ..seg("3.m4s", 2.0, Some("init-1.mp4"))
            },
        ];
        let text = p.render();
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 2, "{text}");
        let parsed = parse(&text);
        assert!(parsed.segments[1].map.is_none());
        assert!(parsed.segments[2].discontinuity);
        assert_eq!(
            parsed.segments[2].map.as_ref().map(|m| m.uri.as_str()),
            Some("init-1.mp4")
        );
        // The discontinuity comes before the map it introduces.
        let disc = text.find("#EXT-X-DISCONTINUITY\n").unwrap();
        let map = text.find("#EXT-X-MAP:URI=\"init-1.mp4\"").unwrap();
        assert!(disc < map);
    }

    #[test]
    fn discontinuity_sequence_is_written_only_when_non_zero() {
        let mut p = MediaPlaylist::new(2);
        p.segments = vec![seg("1.m4s", 2.0, None)];
        assert!(!p.render().contains("DISCONTINUITY-SEQUENCE"));
        p.discontinuity_sequence = 2;
        let parsed = parse(&p.render());
        assert_eq!(parsed.discontinuity_sequence, 2);
    }

    #[test]
    fn ended_playlist_carries_endlist_last() {
        let mut p = MediaPlaylist::new(2);
        p.segments = vec![seg("1.m4s", 1.5, None)];
        p.ended = true;
        let text = p.render();
        assert!(text.ends_with("1.m4s\n#EXT-X-ENDLIST\n"), "{text}");
        assert!(parse(&text).end_list);
    }

    #[test]
    fn non_finite_or_negative_durations_are_written_as_zero() {
        let mut p = MediaPlaylist::new(2);
        p.segments = vec![seg("n.m4s", f64::NAN, None), seg("m.m4s", -1.0, None)];
        assert_eq!(p.render().matches("#EXTINF:0.000,").count(), 2);
    }
}
