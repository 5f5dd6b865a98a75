#!/usr/bin/env bash
# Where the gateway's CPU goes with the shared media port and with a port per publisher
# (issue 12): for each mode, castgate-load publishes N looped WHIP streams on loopback for 25 s
# and `perf record` samples the gateway for 15 s of the steady window. Prints, per mode, the
# CPU-ms per stream-second and the samples per object (kernel, castgate, libc) and in the
# ingest code that routes datagrams; the perf.data files are kept in OUT_DIR.
#
#   benches/shared-port/profile.sh [PUBLISHERS] [OUT_DIR]
set -euo pipefail
publishers=${1:-10}
out=${2:-$(mktemp -d)}
here=$(cd "$(dirname "$0")/../.." && pwd)
command -v perf >/dev/null || { echo "profile.sh: perf is not installed (Debian: linux-perf)" >&2; exit 1; }
mkdir -p "$out"
trap 'pkill -P $$ castgate 2>/dev/null || true' EXIT
# shellcheck source=common.sh
. "$here/benches/shared-port/common.sh"

for mode in range shared; do
    cfg=$(gateway_config "$mode" 18481 "$out")
    "$here/target/release/castgate" --config "$cfg" >"$out/$mode.log" 2>&1 &
    pid=$!
    sleep 1
    "$here/target/release/castgate-load" --url http://127.0.0.1:18481 -n "$publishers" -m 0 -k 0 \
        -d 25 --pid "$pid" --audio mono --fixture-dir "$here/target/load-fixtures" \
        --json "$out/$mode.json" >"$out/$mode.load.log" 2>&1 &
    load=$!
    sleep 8
    perf record -F 999 -g -p "$pid" -o "$out/$mode.perf.data" -- sleep 15 >/dev/null 2>&1
    wait "$load" || true
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    cpu=$(cpu_of "$out/$mode.json")
    echo "== $mode: cpu_ms_per_stream_second=$cpu"
    perf report -i "$out/$mode.perf.data" --no-children --sort dso --stdio -g none \
        -F overhead,sample,dso 2>/dev/null | grep '%' | head -4
    echo "   routing and socket lookup (samples):"
    perf report -i "$out/$mode.perf.data" --no-children --sort sym --stdio -g none \
        -F overhead,sample,sym 2>/dev/null |
        grep -E 'router|udp_mux|source_of|udp4_lib_lookup|udp_lib_lookup|demux_lookup|compute_score|reuseport' || echo '      (none sampled)'
done
echo "perf data in $out"
