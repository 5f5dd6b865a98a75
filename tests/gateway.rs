//! castgate end to end over loopback: a real WHIP publisher (webrtc-rs) into the gateway,
//! HLS and HTTP-FLV out, checked with ffprobe (and live with ffmpeg across a resolution change);
//! plus hostile requests against the HTTP API.
//!
//! One integration-test crate (one link); the modules live under `tests/gateway/`.

#[path = "gateway/support.rs"]
mod support;

#[path = "common/shared.rs"]
mod shared;

#[path = "common/live_read.rs"]
mod live_read;

#[path = "common/nginx.rs"]
mod nginx;

#[path = "gateway/e2e.rs"]
mod e2e;

#[path = "gateway/hostile.rs"]
mod hostile;

#[path = "gateway/client_loopback.rs"]
mod client_loopback;

#[path = "gateway/network.rs"]
mod network;

#[path = "gateway/sync.rs"]
mod sync;

#[path = "gateway/lifecycle.rs"]
mod lifecycle;

#[path = "gateway/reconnect.rs"]
mod reconnect;

#[path = "gateway/load.rs"]
mod load;

#[path = "gateway/loss.rs"]
mod loss;

#[path = "gateway/datagrams.rs"]
mod datagrams;

#[path = "gateway/audio_only.rs"]
mod audio_only;

#[path = "gateway/simulcast.rs"]
mod simulcast;

#[path = "gateway/flv_timeline.rs"]
mod flv_timeline;

#[path = "gateway/resolution_change.rs"]
mod resolution_change;

#[path = "gateway/ll_hls.rs"]
mod ll_hls;

#[path = "gateway/nginx_cache.rs"]
mod nginx_cache;

#[path = "gateway/ts_rendition.rs"]
mod ts_rendition;

#[path = "gateway/shared_port.rs"]
mod shared_port;

#[path = "gateway/trickle.rs"]
mod trickle;

#[path = "gateway/ice_restart.rs"]
mod ice_restart;

#[path = "gateway/ice_tcp.rs"]
mod ice_tcp;

#[path = "gateway/turn.rs"]
mod turn;

#[path = "gateway/whip_interop.rs"]
mod whip_interop;
