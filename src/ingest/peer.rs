//! Building the server side of a WebRTC peer connection for one WHIP publisher: which codecs we
//! accept, which interceptors see its packets, and the UDP sockets it is reached on
//! (interfaces, port range). 1:1 NAT addresses are written into the answer by `nat`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use rtc::interceptor::{ReceiverReportBuilder, Registry, Slot};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};

use super::layer_tap::{LayerTap, LAYER_TAP_SLOT};
use super::read_tap::ReadTap;
use super::rtcp_tap::{SenderReportTap, SENDER_REPORT_TAP_SLOT};
use super::IngestError;

/// The H.264 profiles we answer (all packetization-mode 1: FU-A and STAP-A). Browsers offer
/// constrained baseline (42e0), baseline (4200), main (4d00) and high (6400).
const H264_PROFILES: [(u8, &str); 5] = [
    (102, "42e01f"),
    (106, "42001f"),
    (108, "4d001f"),
    (112, "640032"),
    (114, "64001f"),
];

fn media_engine() -> Result<MediaEngine, IngestError> {
    let mut engine = MediaEngine::default();
    let feedback = vec![
        RTCPFeedback {
            typ: "nack".into(),
            parameter: String::new(),
        },
        RTCPFeedback {
            typ: "nack".into(),
            parameter: "pli".into(),
        },
        RTCPFeedback {
            typ: "ccm".into(),
            parameter: "fir".into(),
        },
        RTCPFeedback {
            typ: "goog-remb".into(),
            parameter: String::new(),
        },
    ];
    for (pt, profile) in H264_PROFILES {
        let h264 = RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: "video/H264".into(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: format!(
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}"
                ),
                rtcp_feedback: feedback.clone(),
            },
            payload_type: pt,
        };
        // Retransmissions (RFC 4588) repair loss before it reaches the depacketizer.
        let rtx = RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: "video/rtx".into(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: format!("apt={pt}"),
                rtcp_feedback: vec![],
            },
            payload_type: pt + 1,
        };
        engine
            .register_codec(h264, RtpCodecKind::Video)
            .map_err(internal)?;
        engine
            .register_codec(rtx, RtpCodecKind::Video)
            .map_err(internal)?;
    }
    let opus = RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "audio/opus".into(),
            clock_rate: 48_000,
            channels: 2,
            // webrtc-rs answers with the offer's own Opus fmtp, so a browser that offers
            // `stereo=1` gets it back and sends stereo (tests/gateway/network.rs).
            sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
            rtcp_feedback: vec![],
        },
        payload_type: 111,
    };
    engine
        .register_codec(opus, RtpCodecKind::Audio)
        .map_err(internal)?;
    Ok(engine)
}

/// The RTP/RTCP interceptors of a receive-only peer; every incoming packet walks all of them.
/// webrtc-rs's default set also has a NACK responder and a sender-report generator, which
/// only act on media we send: a publisher's connection sends none, so they would cost a step
/// per packet for nothing. Nor its NACK generator: it asks only on a fixed tick (100 ms by
/// default, too late for round trips over ~50 ms given the reorder wait; a faster tick costs a
/// wake-up per tick per publisher, loss or not), and it sits before webrtc-rs unwraps RTX
/// (RFC 4588), so it never sees a packet repaired that way and asks again for it. Lost video
/// is asked for by the track pipeline instead (`rtp::nack`), from the reorder buffer's gaps:
/// at once, then every 50 ms while open. What a receiver needs here:
/// - receiver reports: loss and jitter for the publisher's rate control, and its RTT;
/// - transport-wide congestion control feedback (transport-cc), which Chrome's bandwidth
///   estimator is driven by;
/// - our tap of the publisher's sender reports, which map RTP time to wall time;
/// - for a simulcast offer, the layer filter (`layer_tap`), which keeps the one layer received.
fn receive_interceptors(
    engine: &mut MediaEngine,
    layers: Option<LayerTap>,
) -> Result<Registry, IngestError> {
    // The `mid`/`rid` header extensions let the receiver match packets to transceivers.
    configure_simulcast_extension_headers(engine).map_err(internal)?;
    let registry = configure_twcc_receiver_only(Registry::new(), engine).map_err(internal)?;
    let registry = registry
        .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
        .with(
            Slot::from(SENDER_REPORT_TAP_SLOT),
            ReadTap::new(SenderReportTap),
        );
    Ok(match layers {
        Some(tap) => registry.with(Slot::from(LAYER_TAP_SLOT), ReadTap::new(tap)),
        None => registry,
    })
}

/// A failure of castgate's own (500), with the cause kept for the log.
pub(super) fn internal(e: impl std::fmt::Display) -> IngestError {
    IngestError::Internal(e.to_string())
}

/// Hands out media ports from the configured range, round robin, so consecutive publishers
/// don't all probe the same busy port first.
#[derive(Debug, Default)]
pub struct PortPicker {
    next: AtomicU32,
}

impl PortPicker {
    /// The ports to try for one connection: the whole range starting at the next one, or
    /// just `0` (ephemeral) when no range is configured.
    pub fn candidates(&self, range: Option<[u16; 2]>) -> Vec<u16> {
        match range {
            None => vec![0],
            Some([first, last]) => {
                let len = u32::from(last - first) + 1;
                let start = self.next.fetch_add(1, Ordering::Relaxed) % len;
                (0..len)
                    .map(|i| first + ((start + i) % len) as u16)
                    .collect()
            }
        }
    }
}

/// A sans-IO peer connection with castgate's codecs and receive interceptors. It reaches the
/// network only through the loop that drives it (`rtc_loop`). `layers`: the simulcast layer
/// filter, for an offer that sends several layers.
pub fn build(now: Instant, layers: Option<LayerTap>) -> Result<RTCPeerConnection, IngestError> {
    let mut engine = media_engine()?;
    let registry = receive_interceptors(&mut engine, layers)?;
    // Server side, mDNS is useless, and it fails on hosts without a multicast route.
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled);
    // STUN/TURN servers are advertised to clients (Link headers); the server itself only needs
    // its host candidates (or the configured public IPs), so it does not query them.
    RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine)
        .with_setting_engine(settings.build())
        .with_interceptor_registry(registry)
        .build(now)
        .map_err(internal)
}

/// Binds one non-blocking UDP socket per address in `ips`, all on the same port: the next port
/// of the configured range that is free on every one of them, or an ephemeral port.
pub fn bind_sockets(
    ips: &[IpAddr],
    range: Option<[u16; 2]>,
    ports: &PortPicker,
) -> Result<Vec<UdpSocket>, IngestError> {
    if ips.is_empty() {
        return Err(IngestError::Internal(
            "no network interface to receive media on".into(),
        ));
    }
    let mut last_err = None;
    for port in ports.candidates(range) {
        match bind_all(ips, port) {
            Ok(sockets) => return Ok(sockets),
            Err(e) => {
                tracing::debug!(port, error = %e, "cannot bind the media sockets on this port");
                last_err = Some(e);
            }
        }
    }
    match last_err {
        // The range is full: a capacity limit, not a fault.
        Some(e) if range.is_some() && e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(IngestError::NoMediaPort)
        }
        e => Err(IngestError::Internal(format!(
            "no usable media port: {}",
            e.map(|e| e.to_string()).unwrap_or_default()
        ))),
    }
}

fn bind_all(ips: &[IpAddr], port: u16) -> std::io::Result<Vec<UdpSocket>> {
    let mut sockets = Vec::with_capacity(ips.len());
    // An ephemeral port is picked by the first bind; the others take the same one.
    let mut port = port;
    for ip in ips {
        let socket = UdpSocket::bind(SocketAddr::new(*ip, port))?;
        socket.set_nonblocking(true)?;
        port = socket.local_addr()?.port();
        sockets.push(socket);
    }
    Ok(sockets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_rotate_through_the_range() {
        let p = PortPicker::default();
        assert_eq!(p.candidates(None), vec![0]);
        assert_eq!(p.candidates(Some([5000, 5002])), vec![5000, 5001, 5002]);
        assert_eq!(p.candidates(Some([5000, 5002])), vec![5001, 5002, 5000]);
        assert_eq!(p.candidates(Some([7000, 7000])), vec![7000]);
    }

    #[test]
    fn media_engine_registers_h264_and_opus() {
        assert!(media_engine().is_ok());
    }

    #[test]
    fn sockets_share_one_port_from_the_range() {
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
        let picker = PortPicker::default();
        let sockets = bind_sockets(&ips, None, &picker).unwrap();
        let ports: Vec<u16> = sockets
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        assert_ne!(ports[0], 0);
        assert_eq!(ports[0], ports[1], "one port on every interface");
        // A port taken on one address makes the next one of the range be used.
        let busy = ports[0];
        let range = Some([busy, busy.saturating_add(1)]);
        let picker = PortPicker::default();
        let again = bind_sockets(&ips, range, &picker).unwrap();
        assert_eq!(again[0].local_addr().unwrap().port(), busy + 1);
        // Every port of the range taken: the range is full.
        assert!(matches!(
            bind_sockets(&ips, Some([busy, busy]), &picker),
            Err(IngestError::NoMediaPort)
        ));
        assert!(matches!(
            bind_sockets(&[], None, &picker),
            Err(IngestError::Internal(_))
        ));
    }
}
