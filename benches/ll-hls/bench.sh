#!/bin/bash
# LL-HLS benchmark (BENCHMARKS.md, "Issue 11: LL-HLS"): many LL-HLS viewers blocking on one
# stream, straight at castgate, through nginx as a caching edge (config/nginx-castgate.conf),
# and nginx serving a snapshot of the same playlist and part from disk to paced plain clients.
# Everything lives in /tmp/llbench; release builds are expected:
#   cargo build --release --bins --example ll-paced-get
# Usage:
#   bench.sh start                # castgate + one publisher (own process), stream ll0
#   bench.sh direct SECS N        # N LL-HLS viewers at castgate for SECS steady seconds
#                                 # (PERF=1: perf record castgate for 15 s of them)
#   bench.sh edge SECS N          # the same through nginx with config/nginx-castgate.conf
#   bench.sh disk SECS N [MS]     # nginx from disk: N clients GET playlist + part every MS (200)
#   bench.sh static SECS N [MS]   # the same clients at castgate, no blocking: the plain playlist
#                                 # and a part 2 s old (the next one at each tick)
#   bench.sh rounds R SECS N [MODES]  # R rounds of MODES ("direct disk edge"), order
#                                 # alternating
#   bench.sh stop
#   bench.sh session R SECS N [MODES]  # start, rounds, stop: run it under
#                                 # flock /tmp/castgate-heavy.lock (the lock is held by the
#                                 # gateway and publisher it starts, until they stop)
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
W=/tmp/llbench
CG=http://127.0.0.1:18580
LOAD="$ROOT/target/release/castgate-load"
PACED="$ROOT/target/release/examples/ll-paced-get"
mkdir -p $W/results

cg_pid() { cat $W/castgate.pid; }
ticks() { # CPU ticks (1/100 s) of the given pids together
  for p in "$@"; do awk '{print $14+$15}' /proc/$p/stat; done | awk '{s+=$1} END {print s+0}'
}
load_avg() { cut -d' ' -f1-3 /proc/loadavg; }
baseline() { # castgate's CPU with the publisher alone, ms/s over 5 s
  local a b; a=$(ticks "$(cg_pid)"); sleep 5; b=$(ticks "$(cg_pid)")
  echo $(( (b - a) * 10 / 5 ))
}

start() {
  stop_all
  cp "$HERE/gw.toml" $W/gw.toml
  (cd $W && exec "$ROOT/target/release/castgate" --config gw.toml > castgate.log 2>&1 < /dev/null) &
  echo $! > $W/castgate.pid
  sleep 1
  (cd "$ROOT" && exec "$LOAD" --url $CG -n 1 -m 0 -k 0 -d 100000 --prefix ll \
      --json $W/pub.json > $W/pub.log 2>&1 < /dev/null) &
  echo $! > $W/pub.pid
  for _ in $(seq 60); do
    curl -sf $CG/hls/ll0/index.m3u8 > /dev/null && break; sleep 0.5
  done
  sleep 10
  echo "castgate $(cg_pid), publisher $(cat $W/pub.pid); live: $(curl -s $CG/hls/ll0/index.m3u8 | grep -c EXT-X-PART:) parts listed"
}

stop_nginx() { # dir
  [ -f $1/nginx.pid ] && kill "$(cat $1/nginx.pid)" 2>/dev/null; sleep 1; rm -f $1/nginx.pid
}

stop_all() {
  stop_nginx $W/nginx-disk; stop_nginx $W/nginx-edge
  for f in pub castgate; do
    [ -f $W/$f.pid ] && kill "$(cat $W/$f.pid)" 2>/dev/null; rm -f $W/$f.pid
  done
  sleep 2
}

viewers() { # label url SECS N [extra castgate-load args]
  local label=$1 url=$2 secs=$3 n=$4; shift 4
  local base; base=$(baseline)
  local out=$W/results/$label-$n-$(date +%H%M%S)
  echo "== $label: $n LL-HLS viewers, $secs s; load $(load_avg); castgate with the publisher alone $base ms/s"
  # PERF=1: profile castgate for 15 s inside the steady window (perf report -i $out.perf).
  if [ -n "${PERF:-}" ]; then
    (sleep 12; perf record -F 499 -g -p "$(cg_pid)" -o "$out.perf" -- sleep 15 > /dev/null 2>&1) &
  fi
  (cd "$ROOT" && nice -n 10 "$LOAD" --url "$url" -n 1 --external-publishers --prefix ll \
      -m 0 -k 0 --ll-hls-viewers "$n" -d "$secs" --viewer-ramp 250 --pid "$(cg_pid)" "$@" \
      --max-stalls 1000000 --max-lost 1000000 --json "$out.json" > "$out.txt" 2>&1)
  echo "   publisher-only baseline $base ms/s; load after $(load_avg)" >> "$out.txt"
  grep -E "^LL-HLS|^gateway pid|RSS MiB|^gateway answered|^process|^load tool|^delivered|^stalls|^failure" "$out.txt"
  echo "   -> $out.txt"
}

direct() { viewers direct $CG "$@"; }

edge() { # SECS N
  local d=$W/nginx-edge
  stop_nginx $d
  mkdir -p $d/cache
  sed -e "s|listen 8081;|listen 127.0.0.1:18582;|" \
      -e "s|server 127.0.0.1:8080;|server 127.0.0.1:18580;|" \
      -e "s|/var/cache/nginx/castgate|$d/cache|" "$ROOT/config/nginx-castgate.conf" > $d/castgate.conf
  cat > $d/nginx.conf <<EOF
daemon off;
worker_processes 2;
worker_rlimit_nofile 20000;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  include $d/castgate.conf;
}
EOF
  /usr/sbin/nginx -p $d/ -c $d/nginx.conf < /dev/null &
  sleep 1
  local pids=""; for p in $(pgrep -P "$(cat $d/nginx.pid)"); do pids="$pids --also-pid $p"; done
  # shellcheck disable=SC2086
  viewers edge http://127.0.0.1:18582 "$@" $pids
  stop_nginx $d
}

snapshot() { # the playlist and a part of median size, into nginx's root
  local www=$W/www/hls/ll0
  rm -rf $W/www; mkdir -p $www
  curl -s -o $www/index.m3u8 $CG/hls/ll0/index.m3u8
  for u in $(grep -o 'URI="[^"]*-p[^"]*\.m4s"' $www/index.m3u8 | cut -d'"' -f2); do
    curl -s -o $www/$u $CG/hls/ll0/$u
  done
  PART=$(cd $www && ls -S *.m4s | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  for f in $www/*.m4s; do [ "$(basename $f)" = "$PART" ] || rm -f "$f"; done
  cmp <(curl -s $CG/hls/ll0/$PART) $www/$PART || echo "PART MISMATCH"
  echo "snapshot: playlist $(stat -c %s $www/index.m3u8) B, part $PART $(stat -c %s $www/$PART) B"
}

disk() { # SECS N [MS]
  local secs=$1 n=$2 ms=${3:-200}
  local d=$W/nginx-disk
  stop_nginx $d
  mkdir -p $d
  snapshot
  /usr/sbin/nginx -p $d/ -c "$HERE/nginx-disk.conf" < /dev/null &
  sleep 1
  local pids=""; for p in $(pgrep -P "$(cat $d/nginx.pid)"); do pids="$pids --pid $p"; done
  local out=$W/results/disk-$n-$(date +%H%M%S).txt
  echo "== disk: nginx, $n clients x (playlist + part) every $ms ms, $secs s; load $(load_avg)"
  cmp <(curl -s http://127.0.0.1:18581/hls/ll0/$PART) $W/www/hls/ll0/$PART || echo "NGINX BODY MISMATCH"
  # shellcheck disable=SC2086
  nice -n 10 "$PACED" --clients "$n" --interval-ms "$ms" --duration "$secs" $pids \
      http://127.0.0.1:18581/hls/ll0/index.m3u8 http://127.0.0.1:18581/hls/ll0/$PART > "$out" 2>&1
  echo "   load after $(load_avg)" >> "$out"
  cat "$out"
  echo "   -> $out"
  stop_nginx $d
}

static() { # SECS N [MS]
  local secs=$1 n=$2 ms=${3:-200}
  local base; base=$(baseline)
  local newest; newest=$(curl -s $CG/hls/ll0/index.m3u8 | grep '^#EXT-X-PART:' | tail -1 | grep -o '[^"]*-p[0-9]*\.m4s')
  local prefix=${newest%-p*} num=${newest##*-p}; num=${num%.m4s}
  # The first tick comes 5 s from now (ramp + 1 s), 25 parts on: ask for parts 10 behind.
  local out=$W/results/static-$n-$(date +%H%M%S).txt
  echo "== static: castgate, $n clients x (playlist + part) every $ms ms, $secs s; load $(load_avg); castgate with the publisher alone $base ms/s"
  nice -n 10 "$PACED" --clients "$n" --interval-ms "$ms" --duration "$secs" --pid "$(cg_pid)" \
      --counter-start $((num + 5 * 1000 / ms - 10)) \
      $CG/hls/ll0/index.m3u8 "$CG/hls/ll0/$prefix-p{n}.m4s" > "$out" 2>&1
  echo "   publisher-only baseline $base ms/s; load after $(load_avg)" >> "$out"
  cat "$out"
  echo "   -> $out"
}

rounds() { # R SECS N [MODES]
  local r=$1 secs=$2 n=$3 modes=${4:-direct disk edge}
  local reversed; reversed=$(echo "$modes" | tr ' ' '\n' | tac | tr '\n' ' ')
  for i in $(seq 1 "$r"); do
    echo "#### round $i"
    if [ $((i % 2)) = 1 ]; then order=$modes; else order=$reversed; fi
    for m in $order; do $m "$secs" "$n"; done
  done
}

session() { # R SECS N [MODES]
  trap stop_all EXIT
  start
  rounds "$@"
}

cmd=${1:-}; shift || true
case $cmd in
  start) start ;;
  stop) stop_all ;;
  direct|edge|disk|static|rounds|session) $cmd "$@" ;;
  *) sed -n 2,18p "$0"; exit 2 ;;
esac
