#!/usr/bin/env bash
# CPU per publisher with the shared media port against a port per publisher (issue 12), runs
# interleaved: castgate-load publishes N looped WHIP streams on loopback and reads the gateway's
# CPU from /proc. Each build named on the command line is run in each mode it supports.
#
#   benches/shared-port/run.sh [ROUNDS] [PUBLISHERS] [OLD_BUILD_DIR] [reverse]
#
# `reverse` runs each round's builds in the opposite order (to see any effect of going first).
# OLD_BUILD_DIR (optional): a checkout with target/release/castgate built from an earlier commit
# (its own config has only the port-range mode). Results: one line per run on stdout.
set -euo pipefail
rounds=${1:-2}
publishers=${2:-10}
old=${3:-}
order=${4:-forward}
here=$(cd "$(dirname "$0")/../.." && pwd)
load="$here/target/release/castgate-load"
work=$(mktemp -d)
trap 'rm -rf "$work"; pkill -P $$ castgate 2>/dev/null || true' EXIT
# shellcheck source=common.sh
. "$here/benches/shared-port/common.sh"

run() { # label binary mode
    local label=$1 bin=$2 mode=$3
    "$bin" --config "$(gateway_config "$mode" 18481 "$work")" >"$work/$label.log" 2>&1 &
    local pid=$!
    sleep 1
    "$load" --url http://127.0.0.1:18481 -n "$publishers" -m 0 -k 0 -d 25 --pid "$pid" \
        --audio mono --json "$work/$label.json" >/dev/null 2>&1 || true
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local cpu
    cpu=$(cpu_of "$work/$label.json")
    echo "$label publishers=$publishers cpu_ms_per_stream_second=$cpu load=$(cut -d' ' -f1 /proc/loadavg)"
}

for r in $(seq "$rounds"); do
    if [ "$order" = reverse ]; then
        run "shared-$r" "$here/target/release/castgate" shared
        run "range-$r" "$here/target/release/castgate" range
        if [ -n "$old" ]; then run "old-range-$r" "$old/target/release/castgate" old; fi
    else
        if [ -n "$old" ]; then run "old-range-$r" "$old/target/release/castgate" old; fi
        run "range-$r" "$here/target/release/castgate" range
        run "shared-$r" "$here/target/release/castgate" shared
    fi
done
