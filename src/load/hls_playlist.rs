//! The little of an HLS media playlist (RFC 8216 §4.3) a load-test player needs: the media
//! sequence number, the init segment (`EXT-X-MAP`), each segment's URI and duration, and
//! whether the list has ended. Lenient: unknown tags are ignored, as a player would.

/// One media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub sequence: u64,
    pub uri: String,
    pub duration_secs: f64,
}

/// A parsed media playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaPlaylist {
    pub target_duration_secs: f64,
    pub init_uri: Option<String>,
    pub segments: Vec<Segment>,
    pub ended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaylistError {
    #[error("playlist does not start with #EXTM3U")]
    NotM3u,
    #[error("playlist is not UTF-8")]
    NotUtf8,
}

/// Parses a media playlist. Segment sequence numbers count from `EXT-X-MEDIA-SEQUENCE`
/// (§4.3.3.2, default 0).
pub fn parse_media_playlist(body: &[u8]) -> Result<MediaPlaylist, PlaylistError> {
    let text = std::str::from_utf8(body).map_err(|_| PlaylistError::NotUtf8)?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("#EXTM3U") {
        return Err(PlaylistError::NotM3u);
    }
    let mut playlist = MediaPlaylist::default();
    let mut sequence = 0u64;
    let mut duration = 0.0f64;
    for line in lines {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            sequence = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            playlist.target_duration_secs = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            duration = v
                .split(',')
                .next()
                .and_then(|d| d.trim().parse().ok())
                .unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
            playlist.init_uri = quoted_attribute(v, "URI");
        } else if line == "#EXT-X-ENDLIST" {
            playlist.ended = true;
        } else if !line.starts_with('#') {
            playlist.segments.push(Segment {
                sequence,
                uri: line.to_string(),
                duration_secs: duration,
            });
            sequence = sequence.saturating_add(1);
            duration = 0.0;
        }
    }
    Ok(playlist)
}

/// The value of `NAME="..."` in an attribute list (§4.2).
fn quoted_attribute(list: &str, name: &str) -> Option<String> {
    let mut rest = list;
    while let Some(at) = rest.find(name) {
        let before_ok = at == 0 || rest[..at].ends_with(',');
        let after = &rest[at + name.len()..];
        if before_ok {
            if let Some(value) = after.strip_prefix("=\"") {
                return value.split('"').next().map(str::to_string);
            }
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_fmp4_playlist_gives_sequence_numbers_durations_and_map() {
        let body = b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n\
#EXT-X-MEDIA-SEQUENCE:41\n#EXT-X-MAP:URI=\"init-ab12.mp4\"\n\
#EXTINF:2.000,\nseg-ab12-41.m4s\n#EXTINF:1.967,\nseg-ab12-42.m4s\n";
        let p = parse_media_playlist(body).unwrap();
        assert_eq!(p.target_duration_secs, 2.0);
        assert_eq!(p.init_uri.as_deref(), Some("init-ab12.mp4"));
        assert!(!p.ended);
        assert_eq!(
            p.segments,
            vec![
                Segment {
                    sequence: 41,
                    uri: "seg-ab12-41.m4s".into(),
                    duration_secs: 2.0
                },
                Segment {
                    sequence: 42,
                    uri: "seg-ab12-42.m4s".into(),
                    duration_secs: 1.967
                },
            ]
        );
    }

    #[test]
    fn crlf_endlist_and_map_with_byterange_after_uri() {
        let body = b"#EXTM3U\r\n#EXT-X-MAP:URI=\"i.mp4\",BYTERANGE=\"720@0\"\r\n\
#EXTINF:1.0,title\r\ns0.m4s\r\n#EXT-X-ENDLIST\r\n";
        let p = parse_media_playlist(body).unwrap();
        assert_eq!(p.init_uri.as_deref(), Some("i.mp4"));
        assert_eq!(p.segments.len(), 1);
        assert_eq!(p.segments[0].sequence, 0);
        assert!(p.ended);
    }

    #[test]
    fn json_error_body_is_not_a_playlist() {
        assert_eq!(
            parse_media_playlist(b"{\"error\":\"no such stream\"}"),
            Err(PlaylistError::NotM3u)
        );
        assert_eq!(
            parse_media_playlist(&[b'#', 0xff, 0xfe]),
            Err(PlaylistError::NotUtf8)
        );
    }

    #[test]
    fn attribute_name_inside_another_name_is_not_matched() {
        assert_eq!(
            quoted_attribute("XURI=\"no\",URI=\"yes\"", "URI").as_deref(),
            Some("yes")
        );
        assert_eq!(quoted_attribute("URI=unquoted", "URI"), None);
    }
}
