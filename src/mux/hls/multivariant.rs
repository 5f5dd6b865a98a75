//! The multivariant playlist (RFC 8216 §4.3.4.2, `master.m3u8`): one EXT-X-STREAM-INF per
//! rendition, with what a player needs to choose among them before it loads any: peak and
//! average bit rate, codecs, resolution and frame rate.
//!
//! A stream has one rendition today; a simulcast ladder adds one variant per layer, which is
//! why this takes a list. Pure data in, text out.

use std::fmt::Write;

/// One variant stream: a media playlist and its properties.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// The media playlist, relative to the multivariant playlist.
    pub uri: String,
    /// BANDWIDTH: peak segment bit rate (bits/s).
    pub bandwidth: u64,
    /// AVERAGE-BANDWIDTH (bits/s).
    pub average_bandwidth: Option<u64>,
    /// CODECS (RFC 6381), e.g. `avc1.42e01f,mp4a.40.2`.
    pub codecs: String,
    /// RESOLUTION (video only).
    pub resolution: Option<(u32, u32)>,
    /// FRAME-RATE (video only), written with three decimals.
    pub frame_rate: Option<f64>,
}

/// Renders the multivariant playlist of `variants`, highest bandwidth first (players start
/// with the first listed; callers order them as they want players to start).
pub fn render_multivariant(variants: &[Variant]) -> String {
    let mut out = String::with_capacity(64 + variants.len() * 160);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth.max(1));
        if let Some(avg) = v.average_bandwidth {
            let _ = write!(out, ",AVERAGE-BANDWIDTH={}", avg.max(1));
        }
        let _ = write!(out, ",CODECS=\"{}\"", v.codecs);
        if let Some((w, h)) = v.resolution {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some(fps) = v.frame_rate.filter(|f| f.is_finite() && *f > 0.0) {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
        out.push('\n');
        out.push_str(&v.uri);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant() -> Variant {
        Variant {
            uri: "index.m3u8".into(),
            bandwidth: 1_650_000,
            average_bandwidth: Some(1_400_000),
            codecs: "avc1.42e01f,mp4a.40.2".into(),
            resolution: Some((1280, 720)),
            frame_rate: Some(30.0),
        }
    }

    #[test]
    fn every_attribute_parses_back_with_m3u8_rs() {
        let text = render_multivariant(&[variant()]);
        let parsed = match m3u8_rs::parse_playlist_res(text.as_bytes()) {
            Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => m,
            other => panic!("not a multivariant playlist: {other:?}\n{text}"),
        };
        assert!(parsed.independent_segments);
        assert_eq!(parsed.variants.len(), 1);
        let v = &parsed.variants[0];
        assert_eq!(v.uri, "index.m3u8");
        assert_eq!(v.bandwidth, 1_650_000);
        assert_eq!(v.average_bandwidth, Some(1_400_000));
        assert_eq!(v.codecs.as_deref(), Some("avc1.42e01f,mp4a.40.2"));
        let r = v.resolution.expect("resolution");
        assert_eq!((r.width, r.height), (1280, 720));
        assert_eq!(v.frame_rate, Some(30.0));
    }

    #[test]
    fn audio_only_variants_have_no_resolution_or_frame_rate() {
        let v = Variant {
            resolution: None,
            frame_rate: None,
            codecs: "mp4a.40.2".into(),
            average_bandwidth: None,
            ..variant()
        };
        let text = render_multivariant(&[v]);
        assert!(
            !text.contains("RESOLUTION") && !text.contains("FRAME-RATE"),
            "{text}"
        );
        assert!(!text.contains("AVERAGE-BANDWIDTH"), "{text}");
        assert!(text.contains("CODECS=\"mp4a.40.2\"\n"), "{text}");
    }

    #[test]
    fn a_ladder_lists_each_variant_in_order() {
        let low = Variant {
            uri: "low.m3u8".into(),
            bandwidth: 300_000,
            resolution: Some((320, 180)),
            ..variant()
        };
        let text = render_multivariant(&[variant(), low]);
        let uris: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(uris, ["index.m3u8", "low.m3u8"]);
        assert_eq!(text.matches("#EXT-X-STREAM-INF:").count(), 2);
    }

    #[test]
    fn zero_and_odd_values_stay_valid() {
        let v = Variant {
            bandwidth: 0,
            frame_rate: Some(f64::NAN),
            ..variant()
        };
        let text = render_multivariant(&[v]);
        assert!(text.contains("BANDWIDTH=1,"), "{text}");
        assert!(!text.contains("FRAME-RATE"), "{text}");
    }
}
