//! The media playlist model and its M3U8 writer (RFC 8216 §4). fMP4 playlists use version 7
//! (EXT-X-MAP outside I-frame playlists needs at least 6, §7).
//!
//! Pure data in, text out. Low-Latency HLS (EXT-X-SERVER-CONTROL, EXT-X-PART-INF, EXT-X-PART,
//! EXT-X-PRELOAD-HINT) slots in later as more header fields, a `parts` list per segment and a
//! trailing hint; `render` already writes in that order (header, segments, tail).

use std::fmt::Write;

use super::datetime::write_rfc3339_ms;

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
        }
    }

    /// The playlist as M3U8 text.
    pub fn render(&self) -> String {
        let per_segment: usize = self
            .segments
            .iter()
            .map(|s| s.uri.len() + s.map_uri.as_ref().map_or(0, |m| m.len() + 20) + 96)
            .sum();
        let mut out = String::with_capacity(160 + per_segment);
        self.write_header(&mut out);
        let mut current_map: Option<&str> = None;
        for segment in &self.segments {
            write_segment(&mut out, segment, &mut current_map);
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }

    fn write_header(&self, out: &mut String) {
        out.push_str("#EXTM3U\n");
        let _ = writeln!(out, "#EXT-X-VERSION:{}", self.version);
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration);
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
    }
}

fn write_segment<'a>(out: &mut String, segment: &'a PlaylistSegment, map: &mut Option<&'a str>) {
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
    let duration = if segment.duration.is_finite() {
        segment.duration.max(0.0)
    } else {
        0.0
    };
    let _ = writeln!(out, "#EXTINF:{duration:.3},");
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
