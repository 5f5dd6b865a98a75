//! Settings: the TOML file (`config/castgate.toml` documents every key) and their built-in defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything castgate can be told. Every field has a default, so an empty file is valid.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub webrtc: WebRtcConfig,
    pub stream: StreamConfig,
    pub hls: HlsConfig,
    pub flv: FlvConfig,
    pub audio: AudioConfig,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioConfig {
    /// AAC bitrate in bits per second; unset gives 128 kb/s stereo, 64 kb/s mono.
    pub aac_bitrate: Option<u32>,
    /// Put the publisher's Opus into HLS untranscoded (fMP4 Opus): for operators who serve only
    /// modern browsers. iPhones and TS players need AAC, the default. FLV is AAC either way.
    pub hls_opus_passthrough: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Origins allowed by CORS. Empty means any origin (`*`).
    pub cors_allow_origins: Vec<String>,
    /// When set, WHIP requests (publish, DELETE, PATCH) need `Authorization: Bearer <token>`
    /// (RFC 9725 §4.5). Viewing stays open.
    pub publish_token: Option<String>,
    /// PEM certificate chain and private key: serve HTTPS (rustls) instead of plain HTTP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate made at start, for trying castgate on a LAN.
    pub tls_self_signed: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebRtcConfig {
    /// Local IPs to receive media on. Empty, or a wildcard in the list, means the host's
    /// addresses (`ingest::interfaces`).
    pub interfaces: Vec<IpAddr>,
    /// The one UDP port every publisher's media reaches (one socket per address, shared);
    /// 0 means one ephemeral port chosen at start. Not used when `udp_port_range` is set.
    pub udp_port: u16,
    /// UDP port range `[first, last]` for media; one port per peer connection is taken from it.
    /// Set, it replaces the shared `udp_port`.
    pub udp_port_range: Option<[u16; 2]>,
    /// ICE over TCP (RFC 6544): a passive TCP candidate in every answer, for publishers whose
    /// network blocks UDP. Comes with the shared `udp_port` (not with `udp_port_range`).
    pub ice_tcp: bool,
    /// The TCP port for ICE-TCP; unset, the same number as `udp_port` (0: an ephemeral one).
    pub tcp_port: Option<u16>,
    /// Public IPs to advertise instead of the local ones (1:1 NAT, cloud hosts).
    pub public_ips: Vec<IpAddr>,
    /// STUN/TURN servers, advertised to WHIP clients in `Link` headers.
    pub ice_servers: Vec<IceServer>,
}

/// The shared media port's default: the one many WebRTC servers use, easy to open in a firewall.
pub const DEFAULT_UDP_PORT: u16 = 8189;

impl WebRtcConfig {
    /// The ICE-TCP port number (0: ephemeral), when ICE-TCP is on.
    pub fn ice_tcp_port(&self) -> Option<u16> {
        (self.ice_tcp && self.udp_port_range.is_none())
            .then(|| self.tcp_port.unwrap_or(self.udp_port))
    }
}

impl Default for WebRtcConfig {
    fn default() -> WebRtcConfig {
        WebRtcConfig {
            interfaces: Vec::new(),
            udp_port: DEFAULT_UDP_PORT,
            udp_port_range: None,
            ice_tcp: true,
            tcp_port: None,
            public_ips: Vec::new(),
            ice_servers: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub credential: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// Ask the publisher for a keyframe (RTCP PLI) at least this often, in seconds.
    pub keyframe_interval_secs: f64,
    /// End a stream that has received no media for this long, in seconds.
    pub idle_timeout_secs: f64,
    /// A publisher lost without a WHIP DELETE (ICE/DTLS failure, no media for
    /// `idle_timeout_secs`) may publish the same name again within this many seconds and
    /// continue the same stream: viewers stay, HLS goes on behind a discontinuity. 0 ends the
    /// stream at once. (`reconnect_grace_s` is accepted too.)
    #[serde(alias = "reconnect_grace_s")]
    pub reconnect_grace_secs: f64,
    /// How long the reorder buffer waits for a missing RTP packet, in milliseconds.
    pub reorder_delay_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HlsConfig {
    /// Target segment length in seconds; segments are cut on the first keyframe after it.
    pub segment_duration_secs: f64,
    /// Segments listed in the live playlist.
    pub window: usize,
    /// Low-Latency HLS: partial segments, blocking playlist reload, preload hints and delta
    /// updates in the fMP4 playlist.
    pub low_latency: bool,
    /// Part target in milliseconds (low latency only).
    pub part_duration_ms: u64,
    /// An MPEG-TS rendition of the same segments at `ts.m3u8`, for legacy players.
    pub mpegts: bool,
}

/// A day: a name held longer than that is a stream nobody will come back to.
const MAX_RECONNECT_GRACE_SECS: f64 = 86_400.0;

/// Parts shorter than this cost more in requests than they save in latency.
const MIN_PART_MS: u64 = 100;

/// Past a second, held tags would stall players that start on a short buffer.
const MAX_MERGE_WRITE_MS: u32 = 1000;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlvConfig {
    /// Packets (a video frame with the audio since the last one) queued per viewer before a
    /// slow viewer skips ahead to the next keyframe.
    pub viewer_queue: usize,
    /// Merged writes: tags are held until they span this many ms of media and written together
    /// (fewer, larger writes: more viewers per core, for up to this much more latency). 0: each
    /// video frame is written to viewers at once, always.
    pub merge_write_ms: u32,
    /// Merged writes apply while a stream has at least this many FLV viewers; below, each
    /// video frame goes out at once. 0: always merge.
    pub merge_from_viewers: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            cors_allow_origins: Vec::new(),
            publish_token: None,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
        }
    }
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            keyframe_interval_secs: 2.0,
            idle_timeout_secs: 10.0,
            reconnect_grace_secs: 10.0,
            reorder_delay_ms: 150,
        }
    }
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            segment_duration_secs: 2.0,
            window: 6,
            low_latency: true,
            part_duration_ms: 200,
            mpegts: true,
        }
    }
}

impl Default for FlvConfig {
    fn default() -> Self {
        FlvConfig {
            viewer_queue: 256,
            merge_write_ms: 70,
            merge_from_viewers: 100,
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("invalid setting: {0}")]
    Invalid(String),
}

impl Config {
    /// Parses TOML text and checks the values.
    pub fn from_toml(text: &str, path: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_string(),
            source: Box::new(e),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Rejects values that would make the gateway misbehave.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |v: f64, name: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(ConfigError::Invalid(format!("{name} must be > 0")))
            }
        };
        positive(
            self.stream.keyframe_interval_secs,
            "stream.keyframe_interval_secs",
        )?;
        positive(self.stream.idle_timeout_secs, "stream.idle_timeout_secs")?;
        let grace = self.stream.reconnect_grace_secs;
        if !(grace.is_finite() && (0.0..=MAX_RECONNECT_GRACE_SECS).contains(&grace)) {
            return Err(ConfigError::Invalid(format!(
                "stream.reconnect_grace_secs must be between 0 and {MAX_RECONNECT_GRACE_SECS}"
            )));
        }
        positive(self.hls.segment_duration_secs, "hls.segment_duration_secs")?;
        if self.hls.window < 3 {
            return Err(ConfigError::Invalid("hls.window must be at least 3".into()));
        }
        if self.hls.low_latency {
            let segment_ms = self.hls.segment_duration_secs * 1000.0;
            let part = self.hls.part_duration_ms;
            if part < MIN_PART_MS || part as f64 > segment_ms {
                return Err(ConfigError::Invalid(format!(
                    "hls.part_duration_ms must be between {MIN_PART_MS} and the segment duration"
                )));
            }
        }
        if self.http.publish_token.as_deref() == Some("") {
            return Err(ConfigError::Invalid(
                "http.publish_token must not be empty (leave it out to disable)".into(),
            ));
        }
        if let Some(b) = self.audio.aac_bitrate {
            if !(16_000..=320_000).contains(&b) {
                return Err(ConfigError::Invalid(
                    "audio.aac_bitrate must be between 16000 and 320000".into(),
                ));
            }
        }
        if self.flv.viewer_queue == 0 {
            return Err(ConfigError::Invalid("flv.viewer_queue must be > 0".into()));
        }
        if self.flv.merge_write_ms > MAX_MERGE_WRITE_MS {
            return Err(ConfigError::Invalid(format!(
                "flv.merge_write_ms must be at most {MAX_MERGE_WRITE_MS}"
            )));
        }
        if let Some([first, last]) = self.webrtc.udp_port_range {
            if first == 0 || first > last {
                return Err(ConfigError::Invalid(
                    "webrtc.udp_port_range must be [first, last] with 0 < first <= last".into(),
                ));
            }
        }
        Ok(())
    }

    pub fn keyframe_interval(&self) -> Duration {
        Duration::from_secs_f64(self.stream.keyframe_interval_secs)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.stream.idle_timeout_secs)
    }

    /// How long a lost publisher's stream waits for it to publish again (zero: not at all).
    pub fn reconnect_grace(&self) -> Duration {
        Duration::from_secs_f64(self.stream.reconnect_grace_secs)
    }

    pub fn segment_duration(&self) -> Duration {
        Duration::from_secs_f64(self.hls.segment_duration_secs)
    }

    /// The LL-HLS part target, when low latency is on.
    pub fn part_target(&self) -> Option<Duration> {
        self.hls
            .low_latency
            .then(|| Duration::from_millis(self.hls.part_duration_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("", "x").unwrap();
        assert_eq!(
            c.http.listen,
            "0.0.0.0:8080".parse::<std::net::SocketAddr>().unwrap()
        );
        assert_eq!(c.hls.window, 6);
        assert_eq!(c.segment_duration(), Duration::from_secs(2));
        assert_eq!(c.webrtc.udp_port, 8189, "one shared media port by default");
        assert_eq!(c.webrtc.udp_port_range, None);
        assert_eq!(
            c.webrtc.ice_tcp_port(),
            Some(8189),
            "ICE-TCP on the UDP port's number by default"
        );
    }

    #[test]
    fn the_shipped_config_parses_and_matches_the_defaults_on_the_media_port() {
        let shipped = Config::from_toml(include_str!("../config/castgate.toml"), "castgate.toml")
            .expect("config/castgate.toml parses");
        assert_eq!(shipped.webrtc.udp_port, Config::default().webrtc.udp_port);
        assert_eq!(shipped.webrtc.udp_port_range, None);
        assert_eq!(
            shipped.webrtc.ice_tcp_port(),
            Config::default().webrtc.ice_tcp_port()
        );
    }

    #[test]
    fn reconnect_grace_parses_under_either_name_and_is_bounded() {
        let c = Config::from_toml("", "x").unwrap();
        assert_eq!(c.reconnect_grace(), Duration::from_secs(10));
        let c = Config::from_toml("[stream]\nreconnect_grace_secs = 2.5\n", "x").unwrap();
        assert_eq!(c.reconnect_grace(), Duration::from_millis(2500));
        let c = Config::from_toml("[stream]\nreconnect_grace_s = 0\n", "x").unwrap();
        assert_eq!(c.reconnect_grace(), Duration::ZERO, "0 turns it off");
        for bad in ["-1", "100000", "nan"] {
            let text = format!("[stream]\nreconnect_grace_secs = {bad}\n");
            assert!(
                matches!(Config::from_toml(&text, "x"), Err(ConfigError::Invalid(_))),
                "{bad}"
            );
        }
        let shipped = Config::from_toml(include_str!("../config/castgate.toml"), "castgate.toml")
            .expect("config/castgate.toml parses");
        assert_eq!(shipped.reconnect_grace(), Duration::from_secs(10));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Config::from_toml("[hls]\nwindoww = 3\n", "x").unwrap_err();
        assert!(err.to_string().contains("windoww"), "{err}");
    }

    #[test]
    fn bad_port_range_is_rejected() {
        let err = Config::from_toml("[webrtc]\nudp_port_range = [5000, 4000]\n", "x");
        assert!(matches!(err, Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn ice_servers_parse() {
        let c = Config::from_toml(
            "[[webrtc.ice_servers]]\nurls = [\"turn:turn.example:3478\"]\nusername = \"u\"\ncredential = \"p\"\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.webrtc.ice_servers[0].username.as_deref(), Some("u"));
    }
}
