#!/bin/bash
# HLS serving benchmark (BENCHMARKS.md section 5): starts castgate (BINARY, default the release
# build) on CPU 0 with gw.toml, and one castgate-load publisher on CPU 1, in /tmp/hlsbench.
# Then start nginx (see nginx.conf) and run rounds.sh.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN=${1:-$ROOT/target/release/castgate}
mkdir -p /tmp/hlsbench/nginx/logs /tmp/hlsbench/www/hls
cp "$HERE/gw.toml" /tmp/hlsbench/gw.toml
cd /tmp/hlsbench
kill $(cat pub.pid 2>/dev/null) $(cat castgate.pid 2>/dev/null) 2>/dev/null; sleep 2
(taskset -c 0 "$BIN" --config gw.toml > castgate.log 2>&1 & echo $! > castgate.pid); sleep 1
(cd "$ROOT" && exec taskset -c 1 ./target/release/castgate-load --url http://127.0.0.1:18380 \
    -n 1 -m 0 -k 0 -d 3000 --prefix bench --json /tmp/hlsbench/pub.json \
    > /tmp/hlsbench/pub.log 2>&1 & echo $! > /tmp/hlsbench/pub.pid)
sleep 24
echo "segments in the live playlist: $(curl -s http://127.0.0.1:18380/hls/bench0/index.m3u8 | grep -c m4s)"
