//! A first look at a WHIP offer, before webrtc-rs sees it: is it SDP at all, and does it carry
//! something castgate can take (H.264 packetization-mode 1 video, optional Opus audio)?

use super::IngestError;

/// What the offer's media sections ask for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OfferSummary {
    pub video_sections: usize,
    pub audio_sections: usize,
    pub has_h264: bool,
    pub has_opus: bool,
    /// The audio section's fmtp asks for stereo (`stereo=1` or `sprop-stereo=1`, RFC 7587).
    /// Browsers send mono unless told otherwise.
    pub opus_stereo: bool,
}

/// Checks the offer's shape. Errors name what is wrong in words a publisher can act on.
pub fn inspect(sdp: &str) -> Result<OfferSummary, IngestError> {
    let mut lines = sdp.lines().map(|l| l.trim_end_matches('\r'));
    if lines.next() != Some("v=0") {
        return Err(IngestError::BadOffer("SDP must start with v=0".into()));
    }
    let mut summary = OfferSummary::default();
    let mut section: Option<&str> = None;
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() {
            continue;
        }
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
            return Err(IngestError::BadOffer(format!(
                "not an SDP line: {:?}",
                truncate(line)
            )));
        }
        if let Some(media) = line.strip_prefix("m=") {
            let kind = media.split(' ').next().unwrap_or("");
            section = Some(match kind {
                "video" => {
                    summary.video_sections += 1;
                    "video"
                }
                "audio" => {
                    summary.audio_sections += 1;
                    "audio"
                }
                _ => "other",
            });
        } else if let Some(fmtp) = line.strip_prefix("a=fmtp:") {
            if section == Some("audio")
                && fmtp
                    .split([';', ' '])
                    .any(|p| p.trim() == "stereo=1" || p.trim() == "sprop-stereo=1")
            {
                summary.opus_stereo = true;
            }
        } else if let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
            let encoding = rtpmap
                .split_once(' ')
                .map(|(_, e)| e.to_ascii_lowercase())
                .unwrap_or_default();
            match section {
                Some("video") if encoding.starts_with("h264/90000") => summary.has_h264 = true,
                Some("audio") if encoding.starts_with("opus/48000") => summary.has_opus = true,
                _ => {}
            }
        }
    }
    if summary.video_sections + summary.audio_sections == 0 {
        return Err(IngestError::BadOffer(
            "the offer has no audio or video section".into(),
        ));
    }
    if summary.video_sections > 1 || summary.audio_sections > 1 {
        return Err(IngestError::Unsupported(
            "at most one video and one audio track per publish".into(),
        ));
    }
    // Video must be H.264; an offer without video is an audio-only publish, which needs Opus.
    let video_ok = summary.video_sections == 0 || summary.has_h264;
    let audio_ok = summary.video_sections > 0 || summary.has_opus;
    if !video_ok || !audio_ok {
        return Err(IngestError::Unsupported(
            "no H.264 video in the offer; castgate takes H.264 video (packetization-mode=1) and Opus audio".into(),
        ));
    }
    Ok(summary)
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROMIUM_LIKE: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n";

    #[test]
    fn chromium_offer_with_vp8_first_still_has_h264() {
        let s = inspect(CHROMIUM_LIKE).unwrap();
        assert!(s.has_h264 && s.has_opus);
        assert_eq!((s.video_sections, s.audio_sections), (1, 1));
    }

    #[test]
    fn opus_is_mono_unless_the_fmtp_says_stereo() {
        assert!(!inspect(CHROMIUM_LIKE).unwrap().opus_stereo);
        let sdp = CHROMIUM_LIKE.replace(
            "a=rtpmap:111 opus/48000/2\r\n",
            "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1;stereo=1\r\n",
        );
        assert!(inspect(&sdp).unwrap().opus_stereo);
    }

    #[test]
    fn vp8_only_is_unsupported() {
        let sdp = CHROMIUM_LIKE.replace("a=rtpmap:102 H264/90000\r\n", "");
        assert!(matches!(inspect(&sdp), Err(IngestError::Unsupported(m)) if m.contains("H.264")));
    }

    #[test]
    fn garbage_is_a_bad_offer() {
        assert!(matches!(inspect("hello"), Err(IngestError::BadOffer(_))));
        assert!(matches!(
            inspect("v=0\r\nthis is not sdp\r\n"),
            Err(IngestError::BadOffer(_))
        ));
        assert!(matches!(
            inspect("v=0\r\ns=-\r\n"),
            Err(IngestError::BadOffer(_))
        ));
    }

    #[test]
    fn audio_only_offer_needs_opus() {
        let audio_only =
            "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        let s = inspect(audio_only).unwrap();
        assert_eq!((s.video_sections, s.has_opus), (0, true));
        let pcmu_only = "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n";
        assert!(matches!(
            inspect(pcmu_only),
            Err(IngestError::Unsupported(_))
        ));
    }

    #[test]
    fn two_video_tracks_are_refused() {
        let sdp = format!(
            "{CHROMIUM_LIKE}m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n"
        );
        assert!(matches!(inspect(&sdp), Err(IngestError::Unsupported(_))));
    }
}
