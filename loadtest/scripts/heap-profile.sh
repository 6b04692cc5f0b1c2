#!/usr/bin/env bash
# Heap profile of idle streams: where a held stream's bytes go (BENCHMARKS.md, "The misses").
# One release gateway (embedded bus) under valgrind --tool=massif, pinned to CPU 0 like bench.sh,
# the load tool on CPU 1; N idle streams (loadtest idle) held while massif takes a detailed
# snapshot (vgdb), then the tool closes them and the gateway stops on SIGTERM, which writes the
# profile. Prints the peak snapshot's top allocation sites in bytes per stream (peak minus a
# snapshot taken before the streams opened, over N); writes
#   benchmarks/results/lean-heap-<label>.out       massif's profile, the peak's tree only (ms_print reads it)
#   benchmarks/results/lean-heap-<label>-base.out  the detailed snapshot before the streams
#   benchmarks/results/lean-heap-<label>.txt       the summary
#
#   loadtest/scripts/heap-profile.sh [BINARY [LABEL]]     # or BIN=... LABEL=...
#   BIN=/work/bench/before/gateway LABEL=before loadtest/scripts/heap-profile.sh
#   N=1000 (streams), RAMP=100 (streams/s), HOLD=10s; default binary: this tree's release build,
#   label "after". GW_ENV="GATEWAY_REDIS_URL=redis://127.0.0.1:6379" profiles it on Redis (a Redis
#   of your own on that address).
#
# Needs: valgrind (massif, vgdb), taskset, python3, ms_print. Massif slows the gateway several
# times over, hence the slow ramp and the long start and stop timeouts; the whole run takes about
# 35 s on the 2-core VM of BENCHMARKS.md.
set -euo pipefail
GW=${1:-${BIN:-}}
GW=${GW:+$(realpath -e -- "$GW")}
LABEL=${2:-${LABEL:-after}}
cd "$(dirname "$0")/../.."
if [ -n "$GW" ]; then cargo build --release -q -p loadtest; else cargo build --release -q -p gateway -p loadtest; fi
TB=${CARGO_TARGET_DIR:-target}/release
GW=${GW:-$(realpath "$TB/gateway")}
N=${N:-1000}
RAMP=${RAMP:-100}
HOLD=${HOLD:-10s}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT=${PORT:-18190}
SECRET=bench-secret-0123456789abcdef0123456789
OUT=benchmarks/results
mkdir -p "$OUT"
PROFILE=$OUT/lean-heap-$LABEL.out
BASE=$OUT/lean-heap-$LABEL-base.out
SUMMARY=$OUT/lean-heap-$LABEL.txt
WORK=$(mktemp -d)
rm -f "$PROFILE" "$BASE"
GW_PID=
cleanup() { [ -z "$GW_PID" ] || kill -9 "$GW_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

wait_gone() { # pid seconds: whether the process ended in time
  local i
  for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

started=$(date +%s)
( ulimit -n 20000
  exec env ${GW_ENV:-} GATEWAY_LISTEN_ADDR=127.0.0.1:$PORT GATEWAY_JWT_SECRET=$SECRET GATEWAY_CLOCK_INTERVAL=0s RUST_LOG=warn \
    taskset -c "$GW_CPU" valgrind --tool=massif --vgdb=yes --threshold=0.1 --peak-inaccuracy=0.5 --time-unit=ms \
    --depth=20 \
    --massif-out-file="$PROFILE" "$GW" ) >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
echo "== $GW under massif (pid $GW_PID), $N idle streams"
for ((i = 0; ; i++)); do
  (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
  if ! kill -0 "$GW_PID" 2>/dev/null || [ "$i" -gt 3000 ]; then
    echo "the gateway did not start:" >&2; cat "$WORK/gateway.log" >&2; exit 1
  fi
  sleep 0.1
done
echo "   listening after $(($(date +%s) - started)) s"
sleep 3
vgdb --pid="$GW_PID" detailed_snapshot "$BASE" >/dev/null 2>&1
[ -s "$BASE" ] || { echo "vgdb could not take the base snapshot" >&2; exit 1; }
# The held snapshot: once every stream is open, after a few seconds for their first writes.
( ulimit -n 20000
  taskset -c "$LOAD_CPU" "$TB/loadtest" idle --target "http://127.0.0.1:$PORT" -n "$N" --ramp "$RAMP" --hold "$HOLD" \
    --source-ip 127.0.0.2 --source-ip 127.0.0.3 --secret "$SECRET" --json "$WORK/idle.json" --quiet \
    --before-publish "sleep 5; vgdb --pid=$GW_PID detailed_snapshot $WORK/held.massif >/dev/null 2>&1" ) | tee "$WORK/idle.txt"
STREAMS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["connections_established"])' "$WORK/idle.json")
[ "$STREAMS" -gt 0 ] || { echo "no stream opened" >&2; exit 1; }
kill -TERM "$GW_PID"
if ! wait_gone "$GW_PID" 300; then echo "the gateway did not stop within 300 s of SIGTERM" >&2; exit 1; fi
GW_PID=
echo "   done after $(($(date +%s) - started)) s"
# Keep the peak's tree only (the other detailed snapshots make the file some 15 MB); ms_print still
# reads it.
python3 -c '
import sys
lines, skip = [], False
for line in open(sys.argv[1]):
    if line.startswith("heap_tree="):
        skip = line.strip() == "heap_tree=detailed"
        lines.append("heap_tree=empty\n" if skip else line)
    elif not (skip and line.startswith(("n", " "))):
        lines.append(line)
open(sys.argv[1], "w").writelines(lines)
' "$PROFILE"

{
  echo "Heap profile: $STREAMS idle streams on one gateway (${GW_ENV:-embedded bus}), valgrind massif, at the peak."
  echo "binary: $GW ($LABEL; sha256 $(sha256sum "$GW" | cut -c1-12)), $(valgrind --version)"
  echo "loadtest idle -n $N --ramp $RAMP --hold $HOLD (2 source addresses); gateway on CPU $GW_CPU, tool on CPU $LOAD_CPU"
  echo "raw: $PROFILE (only the peak snapshot's tree kept; stacks 20 deep, sites under 0.1 % of the heap merged),"
  echo "     $BASE (detailed snapshot before the streams opened)"
  echo
  python3 loadtest/scripts/massif-sites.py "$PROFILE" --streams "$STREAMS" --base "$BASE" --held "$WORK/held.massif" --top 15
  echo
  echo "ms_print's graph of the run (heap over time):"
  ms_print "$PROFILE" 2>/dev/null | sed -n '/^    [KMG]*B$/,/^Number of snapshots/p'
} | tee "$SUMMARY"
