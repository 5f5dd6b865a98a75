#!/usr/bin/env bash
# The one test command (see README): installs what the tests need, idempotently, then runs
# the unit, integration and browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
[ -x /usr/bin/chromium ] || need+=(chromium)
# The caching edge of tests/gateway/nginx_cache.rs (config/nginx-castgate.conf).
[ -x /usr/sbin/nginx ] || need+=(nginx)
# The firewall of the ICE-TCP browser test (a UDP-dropping rule in its own namespace).
command -v nft >/dev/null 2>&1 || need+=(nftables)
# The TURN relay of tests/gateway/turn.rs.
[ -x /usr/bin/turnserver ] || need+=(coturn)
# The foreign WHIP publisher of tests/gateway/whip_interop.rs: GStreamer's webrtcbin (libnice),
# x264enc, opusenc, driven from Python through GObject introspection.
[ -x /usr/bin/gst-inspect-1.0 ] || need+=(gstreamer1.0-tools)
/usr/bin/python3 -c 'import gi' 2>/dev/null || need+=(python3-gi)
for pkg in gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
  gstreamer1.0-plugins-ugly gstreamer1.0-nice gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 \
  gir1.2-gst-plugins-bad-1.0; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "test.sh: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# One test at a time: the integration tests publish real-time media, and two of them at once on
# a 2-core machine can starve each other into packet loss.
RUST_TEST_THREADS=1 cargo test --all-targets --locked

# Browser test (tests/browser.rs): headless Chromium publishes its fake camera over WHIP.
# Chromium offers no loopback ICE candidates, so it runs inside a private network namespace
# made by netns-run (needs root), where the gateway gathers only on the namespace's veth
# addresses; the run above lists it as ignored.
NETNS_RUN="$(git rev-parse --show-toplevel 2>/dev/null || pwd)/../shared/tools/netns-run"
if [ ! -x "$NETNS_RUN" ]; then
  echo "test.sh: $NETNS_RUN is missing: cannot run the browser test" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo env PATH=$PATH HOME=$HOME CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}"
$SUDO "$NETNS_RUN" env CASTGATE_REQUIRE_BROWSER=1 cargo test --locked --test browser -- --ignored --nocapture
