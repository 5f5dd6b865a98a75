//! The publisher's side of simulcast (RFC 8853): which offered layers the answer accepted, and
//! the MID and RID header extensions (RFC 8843 §15, RFC 8852) that tell a receiver which
//! transceiver and layer a packet belongs to before it knows the SSRCs. As browsers do, the
//! extensions ride on a layer's first packets only, until the receiver has surely bound them.

use bytes::Bytes;
use rtc::rtp::extension::HeaderExtension;
use rtc::sdp::extmap::{SDES_MID_URI, SDES_RTP_STREAM_ID_URI};
use rtc::shared::marshal::{Marshal, MarshalSize};

use super::source::VideoLayer;

/// Frames of each layer sent with MID and RID: a second's worth at 30 fps. Browsers stop once
/// an RTCP receiver report names the SSRC; a fixed count keeps the client simple.
pub(super) const IDENTIFIED_FRAMES: u64 = 30;

/// A video track's simulcast layers as they go out, tagged with the video section's MID.
pub(in crate::client) struct SimulcastOut {
    pub mid: String,
    pub layers: Vec<LayerOut>,
}

/// One layer as it goes out: the source's layer, on the SSRC of its encoding.
pub(in crate::client) struct LayerOut {
    pub ssrc: u32,
    pub layer: VideoLayer,
}

/// The rids of the video section's `a=simulcast` recv list in an answer, without paused ones
/// (`~`). `None` when the answer has no simulcast attribute: simulcast was declined.
pub fn accepted_layers(answer_sdp: &str) -> Option<Vec<String>> {
    let mut in_video = false;
    for line in answer_sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("m=") {
            in_video = line.starts_with("m=video ");
        } else if let Some(value) = line.strip_prefix("a=simulcast:").filter(|_| in_video) {
            let mut words = value.split_whitespace();
            let mut accepted = Vec::new();
            while let (Some(direction), Some(list)) = (words.next(), words.next()) {
                if direction == "recv" {
                    accepted.extend(
                        list.split([';', ','])
                            .filter(|rid| !rid.starts_with('~'))
                            .map(str::to_string),
                    );
                }
            }
            return Some(accepted);
        }
    }
    None
}

/// The `a=mid` of the first video section.
pub(super) fn video_mid(sdp: &str) -> Option<String> {
    let mut in_video = false;
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("m=") {
            in_video = line.starts_with("m=video ");
        } else if let Some(mid) = line.strip_prefix("a=mid:").filter(|_| in_video) {
            return Some(mid.to_string());
        }
    }
    None
}

/// An SDES item carried as a header extension: its value is the bare text (RFC 8852 §3).
#[derive(Clone, Debug)]
struct SdesItem(Bytes);

impl MarshalSize for SdesItem {
    fn marshal_size(&self) -> usize {
        self.0.len()
    }
}

impl Marshal for SdesItem {
    fn marshal_to(&self, buf: &mut [u8]) -> rtc::shared::error::Result<usize> {
        let n = self.0.len();
        if buf.len() < n {
            return Err(rtc::shared::error::Error::ErrBufferShort);
        }
        buf[..n].copy_from_slice(&self.0);
        Ok(n)
    }
}

/// The MID and RID extensions for a layer's packet.
pub(super) fn identifying_extensions(mid: &str, rid: &str) -> [HeaderExtension; 2] {
    let item = |uri: &'static str, value: &str| HeaderExtension::Custom {
        uri: uri.into(),
        extension: Box::new(SdesItem(Bytes::copy_from_slice(value.as_bytes()))),
    };
    [item(SDES_MID_URI, mid), item(SDES_RTP_STREAM_ID_URI, rid)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_layers_come_from_the_video_recv_list() {
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=simulcast:recv x\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:1\r\na=rid:f recv\r\na=simulcast:recv f;~h\r\n";
        assert_eq!(accepted_layers(answer), Some(vec!["f".to_string()]));
        assert_eq!(video_mid(answer).as_deref(), Some("1"));
        assert_eq!(accepted_layers("v=0\r\nm=video 9 X 102\r\n"), None);
    }

    #[test]
    fn sdes_items_marshal_as_their_text() {
        let [mid, rid] = identifying_extensions("1", "f");
        assert_eq!(mid.uri(), SDES_MID_URI);
        assert_eq!(rid.uri(), SDES_RTP_STREAM_ID_URI);
        let mut buf = [0u8; 1];
        assert_eq!(rid.marshal_to(&mut buf).unwrap(), 1);
        assert_eq!(&buf, b"f");
        assert!(identifying_extensions("1", "fff")[1]
            .marshal_to(&mut buf)
            .is_err());
    }
}
