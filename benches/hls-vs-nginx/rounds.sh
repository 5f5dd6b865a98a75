#!/bin/bash
# HLS serving: castgate vs nginx, alternating rounds (BENCHMARKS.md section 5), after start.sh
# and nginx are running. Usage: rounds.sh ROUNDS SECONDS LABEL
set -u
ROUNDS=${1:-4}; DUR=${2:-10}; LABEL=${3:-run}
CG=http://127.0.0.1:18380/hls/bench0
NX=http://127.0.0.1:18381/hls/bench0
WWW=/tmp/hlsbench/www/hls/bench0
OUT=/tmp/hlsbench/results-$LABEL.txt
: > $OUT
CGPID=$(cat /tmp/hlsbench/castgate.pid)
IDLE_TICKS_PER_S=${IDLE_TICKS_PER_S:-2.5}   # castgate's own ingest of the one publisher (25 ms/s)
ticks() { # CPU ticks (1/100 s) of castgate, or of nginx's workers
  if [ $1 = cg ]; then awk '{print $14+$15}' /proc/$CGPID/stat
  else for p in $(pgrep -f 'nginx: worker'); do awk '{print $14+$15}' /proc/$p/stat; done | awk '{s+=$1} END {print s}'; fi
}
rps() { # server-name url [extra wrk args]
  local name=$1 url=$2; shift 2
  local srv=${name%%-*}
  local t0; t0=$(ticks $srv)
  local o; o=$(taskset -c 1 wrk -t1 -c64 -d${DUR}s "$@" "$url")
  local t1; t1=$(ticks $srv)
  local r; r=$(echo "$o" | awk '/Requests\/sec/{print $2}')
  local bad; bad=$(echo "$o" | awk '/Non-2xx/{print $5}')
  local tr; tr=$(echo "$o" | awk '/Transfer\/sec/{print $2}')
  local reqs; reqs=$(echo "$o" | awk '/requests in/{print $1}')
  local us; us=$(awk -v a=$t0 -v b=$t1 -v n=$reqs -v srv=$srv -v idle=$IDLE_TICKS_PER_S -v d=$DUR 'BEGIN { t=b-a; if (srv=="cg") t-=idle*d; printf "%.1f", t*10000/n }')
  echo "$name req/s=$r non2xx=${bad:-0} $tr/s cpu=$((t1-t0))cs us/req=$us"
}
for round in $(seq 1 $ROUNDS); do
  mkdir -p $WWW
  curl -s -o $WWW/index.m3u8 $CG/index.m3u8
  seg=$(grep '\.m4s$' $WWW/index.m3u8 | tail -1)
  init=$(grep -o '[0-9a-f]*-init-[0-9]*\.mp4' $WWW/index.m3u8 | tail -1)
  curl -s -o $WWW/$seg $CG/$seg
  curl -s -o $WWW/$init $CG/$init
  cmp <(curl -s $CG/$seg) <(curl -s $NX/$seg) && cmp <(curl -s $CG/$init) <(curl -s $NX/$init) || echo "BODY MISMATCH" | tee -a $OUT
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "round $round seg=$seg ($(stat -c %s $WWW/$seg) B) playlist $(stat -c %s $WWW/index.m3u8) B load $load" | tee -a $OUT
  if [ $((round % 2)) = 1 ]; then order="cg nx"; else order="nx cg"; fi
  for what in seg pl plgz; do
    for s in $order; do
      if [ $s = cg ]; then base=$CG; else base=$NX; fi
      case $what in
        seg) line=$(rps "$s-seg" $base/$seg) ;;
        pl) line=$(rps "$s-pl" $base/index.m3u8) ;;
        plgz) line=$(rps "$s-plgz" $base/index.m3u8 -H 'Accept-Encoding: gzip') ;;
      esac
      echo "  $line" | tee -a $OUT
    done
  done
done
echo "end load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT
