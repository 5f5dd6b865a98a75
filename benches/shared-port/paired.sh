#!/usr/bin/env bash
# CPU per publisher with the shared media port against a port per publisher (issue 12), both
# gateways measured AT THE SAME TIME: this machine's neighbours move a lone run by ±20 %, but
# they move two runs in the same window alike, so the ratio of each pair is what is compared.
# Each round starts one gateway per mode (same build), and one castgate-load per gateway that
# publishes N looped WHIP streams on loopback and reads that gateway's CPU from /proc.
#
#   benches/shared-port/paired.sh [ROUNDS] [PUBLISHERS]
set -euo pipefail
rounds=${1:-5}
publishers=${2:-10}
here=$(cd "$(dirname "$0")/../.." && pwd)
bin="$here/target/release/castgate"
load="$here/target/release/castgate-load"
work=$(mktemp -d)
trap 'rm -rf "$work"; pkill -P $$ castgate 2>/dev/null || true' EXIT

# shellcheck source=common.sh
. "$here/benches/shared-port/common.sh"

for r in $(seq "$rounds"); do
    "$bin" --config "$(gateway_config range 18481 "$work")" >"$work/range.log" 2>&1 &
    range_pid=$!
    "$bin" --config "$(gateway_config shared 18482 "$work")" >"$work/shared.log" 2>&1 &
    shared_pid=$!
    sleep 1
    "$load" --url http://127.0.0.1:18481 -n "$publishers" -m 0 -k 0 -d 25 --pid "$range_pid" \
        --prefix range --audio mono --fixture-dir "$here/target/load-fixtures" \
        --json "$work/range.json" >/dev/null 2>&1 &
    a=$!
    "$load" --url http://127.0.0.1:18482 -n "$publishers" -m 0 -k 0 -d 25 --pid "$shared_pid" \
        --prefix shared --audio mono --fixture-dir "$here/target/load-fixtures" \
        --json "$work/shared.json" >/dev/null 2>&1 &
    b=$!
    wait "$a" || true
    wait "$b" || true
    kill "$range_pid" "$shared_pid"
    wait "$range_pid" "$shared_pid" 2>/dev/null || true
    range=$(cpu_of "$work/range.json")
    shared=$(cpu_of "$work/shared.json")
    ratio=$(python3 -c "print('%.3f' % ($shared / $range))")
    echo "round=$r publishers=$publishers range=$range shared=$shared shared/range=$ratio load=$(cut -d' ' -f1 /proc/loadavg)"
done
