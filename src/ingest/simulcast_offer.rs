//! Simulcast offers (RFC 8853 `a=simulcast`, RFC 8851 `a=rid`): which layer castgate takes, and
//! the offer rewritten so the answer accepts that one layer alone. Until the HLS ladder lands, a
//! publish has one video rendition; RFC 8853 §5.3 lets the answerer accept a subset of the
//! offered streams, and a browser then sends only what the answer lists. Also reads from the
//! offer what the receive side needs to tell the layers apart (`rtp::LayerDemux`): the header
//! extension ids of RID and repaired RID, and the video payload types.

use crate::rtp::LayerDemuxConfig;

const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
const REPAIRED_RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";

/// One `a=rid:<id> send` line of the offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferedLayer {
    pub rid: String,
    /// `max-width` × `max-height` from the rid's restrictions (RFC 8851 §5), when both are given.
    pub max_pixels: Option<u64>,
    /// Marked `~` (paused) in the `a=simulcast` list.
    pub paused: bool,
}

/// What a simulcast offer holds, and the layer castgate receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulcastPlan {
    /// In the offer's order of preference (the `a=simulcast` send list, RFC 8853 §5.2).
    pub offered: Vec<OfferedLayer>,
    /// The rid received: the highest layer (see [`choose_layer`]).
    pub chosen: String,
    /// The offer with the other layers left out, for webrtc-rs to answer.
    pub offer_for_answer: String,
    /// How the receive side tells the chosen layer from the others.
    pub demux: LayerDemuxConfig,
}

/// `None` when the offer's video section sends no rid-identified layers (an ordinary publish).
pub fn plan(offer: &str) -> Option<SimulcastPlan> {
    let video = video_section(offer)?;
    let offered = offered_layers(&offer[video.clone()]);
    if offered.is_empty() {
        return None;
    }
    let chosen = choose_layer(&offered)?.rid.clone();
    let demux = demux_config(&offer[video.clone()], &chosen);
    let offer_for_answer = format!(
        "{}{}{}",
        &offer[..video.start],
        keep_one_layer(&offer[video.clone()], &chosen),
        &offer[video.end..]
    );
    Some(SimulcastPlan {
        offered,
        chosen,
        offer_for_answer,
        demux,
    })
}

/// The byte range of the first `m=video` section (from its `m=` line to the next `m=` line).
fn video_section(sdp: &str) -> Option<std::ops::Range<usize>> {
    let mut start = None;
    let mut offset = 0;
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            if let Some(s) = start {
                return Some(s..offset);
            }
            if line.starts_with("m=video ") {
                start = Some(offset);
            }
        }
        offset += line.len();
    }
    start.map(|s| s..sdp.len())
}

fn attribute<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.trim_end_matches(['\r', '\n'])
        .strip_prefix("a=")?
        .strip_prefix(name)?
        .strip_prefix(':')
}

/// An `a=rid` value that sends a layer (`<id> send [restrictions]`, RFC 8851 §4): its id, and
/// the words after the direction.
fn send_rid(value: &str) -> Option<(&str, std::str::SplitWhitespace<'_>)> {
    let mut parts = value.split_whitespace();
    let (Some(id), Some("send")) = (parts.next(), parts.next()) else {
        return None;
    };
    Some((id, parts))
}

/// The (direction, stream list) pairs of an `a=simulcast` value (RFC 8853 §5.1).
fn simulcast_lists(value: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut words = value.split_whitespace();
    std::iter::from_fn(move || Some((words.next()?, words.next()?)))
}

/// A simulcast stream id as written in the list: `~` marks it paused; the pre-RFC syntax
/// `rid=` prefix of older browsers is tolerated.
fn list_entry(entry: &str) -> (&str, bool) {
    let (entry, paused) = match entry.strip_prefix('~') {
        Some(e) => (e, true),
        None => (entry, false),
    };
    (entry.strip_prefix("rid=").unwrap_or(entry), paused)
}

/// The send layers, in the order of the `a=simulcast` send list (the offerer's preference),
/// then any `a=rid` send line the list does not name.
fn offered_layers(section: &str) -> Vec<OfferedLayer> {
    let mut layers: Vec<OfferedLayer> = Vec::new();
    let mut order: Vec<(String, bool)> = Vec::new();
    for line in section.lines() {
        if let Some(rid) = attribute(line, "rid") {
            let Some((id, parts)) = send_rid(rid) else {
                continue;
            };
            let restrictions = parts.collect::<Vec<_>>().join(" ");
            if !layers.iter().any(|l| l.rid == id) {
                layers.push(OfferedLayer {
                    rid: id.to_string(),
                    max_pixels: max_pixels(&restrictions),
                    paused: false,
                });
            }
        } else if let Some(simulcast) = attribute(line, "simulcast") {
            for (_, list) in simulcast_lists(simulcast).filter(|(d, _)| *d == "send") {
                for entry in list.split([';', ',']) {
                    let (id, paused) = list_entry(entry);
                    order.push((id.to_string(), paused));
                }
            }
        }
    }
    let position = |rid: &str| order.iter().position(|(id, _)| id == rid);
    for layer in layers.iter_mut() {
        layer.paused = position(&layer.rid).is_some_and(|i| order[i].1);
    }
    layers.sort_by_key(|l| position(&l.rid).unwrap_or(usize::MAX));
    layers
}

/// `max-width=1280;max-height=720` → 921 600 (RFC 8851 §5 restrictions, `;`-separated).
fn max_pixels(restrictions: &str) -> Option<u64> {
    let mut width = None;
    let mut height = None;
    for pair in restrictions.split(';') {
        match pair.trim().split_once('=') {
            Some(("max-width", v)) => width = v.parse::<u64>().ok(),
            Some(("max-height", v)) => height = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    Some(width? * height?)
}

/// Rid names in common use, lowest layer first. Web apps follow the WebRTC samples (`q`, `h`,
/// `f`: quarter, half, full) or the SFU conventions (`l`, `m`, `h`: low, mid, high).
const NAMING_SCHEMES: [&[&str]; 6] = [
    &["q", "h", "f"],
    &["l", "m", "h"],
    &["low", "mid", "high"],
    &["low", "medium", "high"],
    &["lo", "mid", "hi"],
    &["quarter", "half", "full"],
];

/// The layer to receive: the highest. SDP does not carry resolutions (browsers send no
/// restrictions), so, in this order:
/// 1. the largest `max-width` × `max-height`, when every unpaused layer has them;
/// 2. the top name, when all names belong to one of the [`NAMING_SCHEMES`];
/// 3. the first of the `a=simulcast` list, the offerer's most preferred (RFC 8853 §5.2).
///
/// Paused layers are taken only when every layer is paused.
pub fn choose_layer(offered: &[OfferedLayer]) -> Option<&OfferedLayer> {
    let active: Vec<&OfferedLayer> = offered.iter().filter(|l| !l.paused).collect();
    let candidates: Vec<&OfferedLayer> = if active.is_empty() {
        offered.iter().collect()
    } else {
        active
    };
    if candidates.iter().all(|l| l.max_pixels.is_some()) {
        // `max_by_key` keeps the last of equals: prefer the earlier (preferred) one instead.
        return candidates
            .iter()
            .rev()
            .max_by_key(|l| l.max_pixels)
            .copied();
    }
    for scheme in NAMING_SCHEMES {
        let rank = |l: &OfferedLayer| {
            scheme
                .iter()
                .position(|name| name.eq_ignore_ascii_case(&l.rid))
        };
        if candidates.iter().all(|l| rank(l).is_some()) {
            return candidates.iter().max_by_key(|l| rank(l)).copied();
        }
    }
    candidates.first().copied()
}

/// The video section with only `chosen` left in its `a=rid` send lines and `a=simulcast` list.
fn keep_one_layer(section: &str, chosen: &str) -> String {
    let mut out = String::with_capacity(section.len());
    for line in section.split_inclusive('\n') {
        let ending = &line[line.trim_end_matches(['\r', '\n']).len()..];
        if let Some(rid) = attribute(line, "rid") {
            if send_rid(rid).is_some_and(|(id, _)| id != chosen) {
                continue;
            }
        } else if let Some(simulcast) = attribute(line, "simulcast") {
            let mut lists = Vec::new();
            for (direction, list) in simulcast_lists(simulcast) {
                if direction == "send" {
                    let entry = list
                        .split([';', ','])
                        .find(|e| list_entry(e).0 == chosen)
                        .unwrap_or(chosen);
                    lists.push(format!("send {entry}"));
                } else {
                    lists.push(format!("{direction} {list}"));
                }
            }
            out.push_str(&format!("a=simulcast:{}{ending}", lists.join(" ")));
            continue;
        }
        out.push_str(line);
    }
    out
}

/// Extension ids and payload types of the video section.
fn demux_config(section: &str, chosen: &str) -> LayerDemuxConfig {
    let mut config = LayerDemuxConfig {
        wanted_rid: chosen.to_string(),
        ..Default::default()
    };
    let mut rtx_types = Vec::new();
    for line in section.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=video ") {
            config.video_payload_types = m
                .split_whitespace()
                .skip(2)
                .filter_map(|pt| pt.parse().ok())
                .collect();
        } else if let Some(extmap) = attribute(line, "extmap") {
            let mut parts = extmap.split_whitespace();
            let (Some(id), Some(uri)) = (parts.next(), parts.next()) else {
                continue;
            };
            // `id/direction` is allowed (RFC 8285 §8).
            let Ok(id) = id.split('/').next().unwrap_or(id).parse::<u8>() else {
                continue;
            };
            match uri {
                RID_URI => config.rid_extension = Some(id),
                REPAIRED_RID_URI => config.repaired_rid_extension = Some(id),
                _ => {}
            }
        } else if let Some(rtpmap) = attribute(line, "rtpmap") {
            if let Some((pt, codec)) = rtpmap.split_once(' ') {
                if codec.to_ascii_lowercase().starts_with("rtx/") {
                    if let Ok(pt) = pt.parse::<u8>() {
                        rtx_types.push(pt);
                    }
                }
            }
        } else if let Some(fmtp) = attribute(line, "fmtp") {
            let Some((pt, params)) = fmtp.split_once(' ') else {
                continue;
            };
            let apt = params
                .split(';')
                .find_map(|p| p.trim().strip_prefix("apt="))
                .and_then(|v| v.parse::<u8>().ok());
            if let (Ok(pt), Some(apt)) = (pt.parse::<u8>(), apt) {
                config.rtx_payload_types.push((pt, apt));
            }
        }
    }
    config
        .rtx_payload_types
        .retain(|(pt, _)| rtx_types.contains(pt));
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The video section of a Chromium 156 offer with `sendEncodings` `q`, `h`, `f`
    /// (scaleResolutionDownBy 4, 2, 1), trimmed to H.264 and VP8.
    const CHROMIUM_SIMULCAST: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\na=mid:1\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n\
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n\
a=sendonly\r\na=msid:- 5c1e\r\n\
a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n\
a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;f\r\n";

    fn layer(rid: &str) -> OfferedLayer {
        OfferedLayer {
            rid: rid.into(),
            max_pixels: None,
            paused: false,
        }
    }

    fn layers(rids: &[&str]) -> Vec<OfferedLayer> {
        rids.iter().map(|r| layer(r)).collect()
    }

    #[test]
    fn chromium_offer_keeps_only_the_full_layer() {
        let plan = plan(CHROMIUM_SIMULCAST).expect("a simulcast offer");
        assert_eq!(plan.offered, layers(&["q", "h", "f"]));
        assert_eq!(plan.chosen, "f");
        let offer = &plan.offer_for_answer;
        assert!(offer.contains("a=rid:f send\r\n"));
        assert!(!offer.contains("a=rid:q") && !offer.contains("a=rid:h"));
        assert!(offer.contains("a=simulcast:send f\r\n"), "{offer}");
        // Everything else is untouched.
        fn without(s: &str) -> Vec<&str> {
            s.lines()
                .filter(|l| !l.starts_with("a=rid") && !l.starts_with("a=simulcast"))
                .collect()
        }
        assert_eq!(without(offer), without(CHROMIUM_SIMULCAST));
    }

    #[test]
    fn demux_config_comes_from_the_video_section() {
        let demux = plan(CHROMIUM_SIMULCAST).unwrap().demux;
        assert_eq!(demux.wanted_rid, "f");
        assert_eq!(demux.rid_extension, Some(10));
        assert_eq!(demux.repaired_rid_extension, Some(11));
        assert_eq!(demux.video_payload_types, vec![96, 97, 102, 103]);
        assert_eq!(demux.rtx_payload_types, vec![(97, 96), (103, 102)]);
    }

    #[test]
    fn an_offer_without_rids_is_not_simulcast() {
        let plain = CHROMIUM_SIMULCAST
            .replace("a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\n", "")
            .replace("a=simulcast:send q;h;f\r\n", "");
        assert_eq!(plan(&plain), None);
        assert_eq!(plan("v=0\r\ns=-\r\n"), None);
    }

    #[test]
    fn sfu_style_names_take_h_as_the_top() {
        assert_eq!(choose_layer(&layers(&["h", "m", "l"])).unwrap().rid, "h");
        assert_eq!(choose_layer(&layers(&["q", "h"])).unwrap().rid, "h");
        assert_eq!(choose_layer(&layers(&["f", "h", "q"])).unwrap().rid, "f");
        assert_eq!(
            choose_layer(&layers(&["LOW", "high", "mid"])).unwrap().rid,
            "high"
        );
    }

    #[test]
    fn unknown_names_take_the_most_preferred() {
        assert_eq!(choose_layer(&layers(&["2", "0", "1"])).unwrap().rid, "2");
        assert_eq!(choose_layer(&layers(&["a", "f"])).unwrap().rid, "a");
        assert_eq!(choose_layer(&[]), None);
    }

    #[test]
    fn restrictions_beat_names() {
        let sdp = CHROMIUM_SIMULCAST
            .replace(
                "a=rid:q send",
                "a=rid:q send max-width=1920;max-height=1080",
            )
            .replace("a=rid:h send", "a=rid:h send max-width=960;max-height=540")
            .replace(
                "a=rid:f send",
                "a=rid:f send pt=102;max-width=480;max-height=270",
            );
        let plan = plan(&sdp).unwrap();
        assert_eq!(plan.offered[0].max_pixels, Some(1920 * 1080));
        assert_eq!(plan.chosen, "q");
        assert!(plan
            .offer_for_answer
            .contains("a=rid:q send max-width=1920;max-height=1080\r\n"));
    }

    #[test]
    fn paused_layers_are_skipped() {
        let sdp = CHROMIUM_SIMULCAST.replace("send q;h;f", "send q;h;~f");
        let plan = plan(&sdp).unwrap();
        assert!(plan.offered[2].paused);
        assert_eq!(plan.chosen, "h");
        assert!(plan.offer_for_answer.contains("a=simulcast:send h\r\n"));
        // All paused: the top one still.
        let all = [
            OfferedLayer {
                paused: true,
                ..layer("q")
            },
            OfferedLayer {
                paused: true,
                ..layer("f")
            },
        ];
        assert_eq!(choose_layer(&all).unwrap().rid, "f");
    }

    #[test]
    fn alternatives_and_old_syntax_are_read() {
        // Pre-RFC browsers wrote `a=simulcast: send rid=q;h;f`; RFC 8853 allows `,` alternatives.
        let sdp =
            CHROMIUM_SIMULCAST.replace("a=simulcast:send q;h;f", "a=simulcast:send rid=q,h;f");
        let plan = plan(&sdp).unwrap();
        assert_eq!(plan.chosen, "f");
        assert_eq!(plan.offered.len(), 3);
    }

    #[test]
    fn a_recv_list_is_kept() {
        let sdp = CHROMIUM_SIMULCAST.replace("send q;h;f", "send q;h;f recv r");
        let plan = plan(&sdp).unwrap();
        assert!(plan
            .offer_for_answer
            .contains("a=simulcast:send f recv r\r\n"));
    }

    #[test]
    fn only_the_video_section_is_rewritten() {
        // A rid line in the audio section (odd, but possible) stays.
        let sdp = CHROMIUM_SIMULCAST.replace(
            "a=rtpmap:111 opus/48000/2\r\n",
            "a=rtpmap:111 opus/48000/2\r\na=rid:q send\r\n",
        );
        let plan = plan(&sdp).unwrap();
        let audio_end = plan.offer_for_answer.find("m=video").unwrap();
        assert!(plan.offer_for_answer[..audio_end].contains("a=rid:q send"));
    }
}
