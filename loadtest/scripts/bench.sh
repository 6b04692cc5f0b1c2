#!/usr/bin/env bash
# The BENCHMARKS.md runs, on this machine: Redis and the gateways pinned to CPU 0, the load tool
# to CPU 1 (taskset), release builds, loopback only. Raw JSON and text reports land in
# benchmarks/results/<name>.{json,txt}.
#
#   loadtest/scripts/bench.sh                 # every scenario
#   loadtest/scripts/bench.sh idle fanout     # some: idle fanout fanout-sweep cross-node-http
#                                             #   cross-node-xadd many-topics reconnect-storm slow-consumers
#                                             #   and, only when named: mercure-cpu mercure-sweep mercure-many-topics
#                                             #   mercure-redis-cpu
#
# Two gateway binaries against each other ("lean held streams": BEFORE_BIN is the gateway before
# a change, AFTER_BIN after it, by default this tree's build), each measurement run before then
# after, back to back; raw reports in benchmarks/results/lean-<what>-<before|after>[-<bus>][-<rate>],
# a markdown summary printed at the end and kept in benchmarks/results/lean-summary.md:
#
#   BEFORE_BIN=/work/bench/before/gateway AFTER_BIN=target/release/gateway loadtest/scripts/bench.sh lean-compare
#     lean-compare is, in order: lean-idle lean-fanout-sweep lean-cpu lean-cross-node (each may be
#     named alone); lean-summary only prints the summary of the lean-* reports there are.
#     lean-idle          LEAN_N (15000) idle streams, RSS per stream, on each bus of LEAN_BUSES
#                        ("embedded redis"; on Redis: a fresh redis-server per run)
#     lean-fanout-sweep  1,000 streams, 256 B events, LEAN_SECS (10) s at each rate of LEAN_RATES
#                        ("300 500 700 900 1100 1400 1800 2200"), each bus; a binary's sweep stops
#                        after LEAN_STOP_AFTER (1) failing rates (p99 >= 100 ms, loss, or the asked
#                        rate not reached)
#     lean-cpu           gateway CPU per delivery at 100 events/s for LEAN_CPU_SECS (20) s,
#                        1,000 streams, each bus
#     lean-cross-node    3 nodes + Redis, LEAN_CROSS_N (3000) streams, 100 events/s for
#                        LEAN_CROSS_SECS (30) s, published over HTTP on node 1
#   BEFORE_ENV / AFTER_ENV: extra gateway environment for one side ("NAME=value ...").
#   The streams_lean gauge (sse_gateway_streams_lean, where the binary has it) is read once the
#   streams are open, so the summary shows which path held them.
#
# Needs: redis-server, redis-cli, taskset (util-linux), curl, python3, a 20,000 open-file limit.
set -euo pipefail
# Binaries given relative to the caller's directory.
BEFORE_BIN=${BEFORE_BIN:+$(realpath -e -- "$BEFORE_BIN")}
AFTER_BIN=${AFTER_BIN:+$(realpath -e -- "$AFTER_BIN")}
cd "$(dirname "$0")/../.."
ALL=(idle fanout fanout-sweep cross-node-http cross-node-xadd many-topics reconnect-storm slow-consumers)
SCENARIOS=("${@:-${ALL[@]}}")
LEAN_ONLY=1 SUMMARY_ONLY=1 ANY_LEAN=
for s in "${SCENARIOS[@]}"; do
  case $s in
    lean-summary) ANY_LEAN=1 ;;
    lean-*) ANY_LEAN=1 SUMMARY_ONLY= ;;
    *) LEAN_ONLY= SUMMARY_ONLY= ;;
  esac
done
# Only lean-* scenarios with AFTER_BIN given: the gateway is not built; lean-summary alone builds nothing.
if [ -z "$SUMMARY_ONLY" ]; then
  if [ -n "$LEAN_ONLY" ] && [ -n "$AFTER_BIN" ]; then BUILD=(-p loadtest); else BUILD=(-p gateway -p loadtest); fi
  cargo build --release -q "${BUILD[@]}"
fi
# The build's directory (CARGO_TARGET_DIR, if set).
BIN=${CARGO_TARGET_DIR:-target}/release
AFTER_BIN=${AFTER_BIN:-$BIN/gateway}
OUT=benchmarks/results
mkdir -p "$OUT"
SECRET=bench-secret-0123456789abcdef0123456789
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

redis_up() { # port
  taskset -c "$GW_CPU" redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning &
  PIDS+=($!)
  until redis-cli -p "$1" ping >/dev/null 2>&1; do sleep 0.05; done
}

gateway_up() { # port [redis-url, may be ""] [binary, default this build's]; sets GW_PID
  local gw=${3:-$BIN/gateway} log=${TMPDIR:-/tmp}/bench-gateway-$1.log
  ( ulimit -n 20000
    exec env ${GW_ENV:-} GATEWAY_LISTEN_ADDR=127.0.0.1:$1 GATEWAY_JWT_SECRET=$SECRET GATEWAY_CLOCK_INTERVAL=0s RUST_LOG=warn \
      ${2:+GATEWAY_REDIS_URL=$2} taskset -c "$GW_CPU" "$gw" ) >"$log" 2>&1 &
  GW_PID=$!
  PIDS+=($GW_PID)
  until (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; do
    if ! kill -0 "$GW_PID" 2>/dev/null; then echo "gateway $gw on port $1 exited:" >&2; cat "$log" >&2; exit 1; fi
    sleep 0.05
  done
}

# Kills what runs and waits until every process is gone: a gateway holding 15,000 sockets takes
# a while to exit, and the next one cannot listen on its port before.
down() {
  cleanup
  for p in "${PIDS[@]}"; do
    while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
  done
  PIDS=()
  sleep 0.5
}

# Per-CPU busy share over a window, from /proc/stat: `cpu_busy SECONDS > file`.
cpu_busy() {
  local a b
  a=$(awk '/^cpu[0-9] /{print $1, $5+$6, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat); sleep "$1"
  b=$(awk '/^cpu[0-9] /{print $1, $5+$6, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
  paste <(echo "$a") <(echo "$b") | awk '{printf "%s busy %.0f%%\n", $1, 100*(1-($5-$2)/($6-$3))}'
}

lt() { # name args...
  local name=$1; shift
  echo "== $name: loadtest $*"
  ( ulimit -n 20000; taskset -c "$LOAD_CPU" "$BIN/loadtest" "$@" --secret "$SECRET" --json "$OUT/$name.json" --quiet ) \
    | tee "$OUT/$name.txt" || echo "(exit $?)" | tee -a "$OUT/$name.txt"
}

SRC=(--source-ip 127.0.0.2 --source-ip 127.0.0.3 --source-ip 127.0.0.4 --source-ip 127.0.0.5)

run_idle() {
  gateway_up 18100
  lt idle idle --target http://127.0.0.1:18100 -n 15000 --ramp 3000 --workers 2 "${SRC[@]}" --hold 5s --gateway-pid "$GW_PID"
  down
}

run_fanout() {
  gateway_up 18100
  ( sleep 6; cpu_busy 5 > "$OUT/fanout-cpu.txt" ) &
  lt fanout fanout --target http://127.0.0.1:18100 -n 1000 -m 3000 -r 200 --payload 256 "${SRC[@]}"
  down
}

run_fanout_sweep() {
  for rate in 100 200 300 400 500 700 1000; do
    gateway_up 18100
    lt "fanout-$rate" fanout --target http://127.0.0.1:18100 -n 1000 -m $((rate * 10)) -r "$rate" --payload 256 "${SRC[@]}"
    down
  done
}

three_nodes() { # [binary]
  redis_up 16500; NODE_PIDS=()
  for p in 18101 18102 18103; do gateway_up $p redis://127.0.0.1:16500 "${1:-}"; NODE_PIDS+=("$GW_PID"); done
}
TARGETS=(--target http://127.0.0.1:18101 --target http://127.0.0.1:18102 --target http://127.0.0.1:18103)

run_cross_node_http() {
  three_nodes
  # CPU use in the middle of the publishing window (the streams open in about 2 s).
  ( sleep 12; cpu_busy 10 > "$OUT/cross-node-http-cpu.txt" ) &
  lt cross-node-http cross-node "${TARGETS[@]}" -n 3000 -m 3000 -r 100 --via http "${SRC[@]}"
  down
}

run_cross_node_xadd() {
  three_nodes
  lt cross-node-xadd cross-node "${TARGETS[@]}" -n 3000 -m 3000 -r 100 --via xadd --redis-url redis://127.0.0.1:16500 "${SRC[@]}"
  down
}

run_many_topics() {
  redis_up 16500
  gateway_up 18101 redis://127.0.0.1:16500
  # Redis's command counts from the first publish on (the streams' set-up is not counted).
  lt many-topics many-topics --target http://127.0.0.1:18101 -n 10000 --ramp 2000 -m 20000 -r 2000 --via xadd \
    --redis-url redis://127.0.0.1:16500 --before-publish "redis-cli -p 16500 CONFIG RESETSTAT" "${SRC[@]}"
  redis-cli -p 16500 INFO commandstats | tr -d '\r' | grep -E "cmdstat_(xread|xadd|eval|subscribe|ssubscribe|ping)" | tee "$OUT/many-topics-redis.txt"
  down
}

run_reconnect_storm() {
  three_nodes
  # 10 events/s to the one topic all 10,000 streams follow: 100,000 deliveries/s before the kill.
  lt reconnect-storm reconnect-storm "${TARGETS[@]}" -n 10000 --ramp 3000 --workers 2 -m 300 -r 10 \
    --kill-target 0 --kill-pid "${NODE_PIDS[0]}" --publish-target 1 --drain 30s "${SRC[@]}"
  down
}

run_slow_consumers() {
  gateway_up 18100
  lt slow-consumers slow-consumers --target http://127.0.0.1:18100 -n 1000 -m 2000 -r 200 --payload 256 --slow-fraction 0.1 "${SRC[@]}"
  down
}

# Mercure against native fan-out: the same 1,000 streams on one topic, following it natively or
# through the hub (GATEWAY_MERCURE=0.x, on in every run) with 1 or 8 selectors, the matching one
# last: the topic itself or (-template) the URI template …/books/{id}. The gateway's CPU time is
# taken over the publish window (--gateway-pid).
mercure_args() {
  case $1 in
    native) ;;
    m1) echo --mercure 0.x ;;
    m1-template) echo --mercure 0.x --match-template ;;
    m8) echo --mercure 0.x --selectors 8 ;;
    m8-template) echo --mercure 0.x --selectors 8 --match-template ;;
  esac
}

mercure_run() { # name scenario variant rate seconds [more loadtest args]; MERCURE_REDIS=1: on a fresh Redis
  local name=$1 scenario=$2 variant=$3 rate=$4 secs=$5 redis=; shift 5
  if [ -n "${MERCURE_REDIS:-}" ]; then redis_up 16540; redis=redis://127.0.0.1:16540; fi
  GW_ENV=GATEWAY_MERCURE=0.x gateway_up 18140 $redis
  # Both cores' busy share while publishing (the streams open and settle in about 3 s).
  ( sleep 5; cpu_busy 4 > "$OUT/$name-cpu.txt" ) &
  # shellcheck disable=SC2046
  lt "$name" "$scenario" --target http://127.0.0.1:18140 -n 1000 -m $((rate * secs)) -r "$rate" --payload 256 \
    --gateway-pid "$GW_PID" $(mercure_args "$variant") "${SRC[@]}" "$@"
  down
}

run_mercure_cpu() { # 100 events/s for 20 s, every variant, twice in turn
  for round in 1 2; do
    for v in native m1 m1-template m8 m8-template; do mercure_run "mercure-cpu-$v-$round" fanout "$v" 100 20; done
  done
}

run_mercure_sweep() { # 10 s at each rate; Mercure updates over 4 publishing connections
  for rate in ${MERCURE_RATES:-300 400 500 600 700 1000}; do
    for v in native m1 m8; do mercure_run "mercure-sweep-$v-$rate" fanout "$v" "$rate" 10 --publishers 4; done
  done
}

run_mercure_redis_cpu() { # mercure-cpu's first round, on Redis
  for v in native m1 m8; do MERCURE_REDIS=1 mercure_run "mercure-redis-cpu-$v" fanout "$v" 100 20; done
}

run_mercure_many_topics() { # 1,000 streams on a topic each: every update wakes every Mercure stream
  for rate in 100 500; do
    for v in native m1; do mercure_run "mercure-many-topics-$v-$rate" many-topics "$v" "$rate" 20; done
  done
}


# --- Lean held streams: BEFORE_BIN against AFTER_BIN (see the top) ---
LEAN_BUSES=${LEAN_BUSES:-embedded redis}
LEAN_N=${LEAN_N:-15000}
LEAN_RATES=${LEAN_RATES:-300 500 700 900 1100 1400 1800 2200}
LEAN_SECS=${LEAN_SECS:-10}
LEAN_STOP_AFTER=${LEAN_STOP_AFTER:-1}
LEAN_CPU_SECS=${LEAN_CPU_SECS:-20}
LEAN_CROSS_N=${LEAN_CROSS_N:-3000}
LEAN_CROSS_SECS=${LEAN_CROSS_SECS:-30}
LEAN_PORT=18150
LEAN_SUMMARY=
LEAN=loadtest/scripts/lean-summary.py

lean_check() {
  LEAN_SUMMARY=1
  [ -x "${BEFORE_BIN:-}" ] || { echo "lean-*: set BEFORE_BIN to the gateway binary before the change" >&2; exit 2; }
  [ -x "$AFTER_BIN" ] || { echo "lean-*: AFTER_BIN $AFTER_BIN is not an executable" >&2; exit 2; }
}

lean_bin() { if [ "$1" = before ]; then echo "$BEFORE_BIN"; else echo "$AFTER_BIN"; fi; }
lean_env() { if [ "$1" = before ]; then echo "${BEFORE_ENV:-}"; else echo "${AFTER_ENV:-}"; fi; }

# A --before-publish command: the stream gauges of the nodes on these ports, into a file.
lean_probe() { # file port...
  local f=$1 cmd=": > $1"; shift
  for p in "$@"; do
    cmd+="; curl -s -m 5 http://127.0.0.1:$p/metrics | grep -E '^sse_gateway_(connections_open|streams_lean) ' >> $f"
  done
  echo "$cmd; true"
}

lean_gateway() { # before|after bus: one gateway on LEAN_PORT (and, on the redis bus, a fresh Redis); sets GW_PID
  local redis=
  if [ "$2" = redis ]; then redis_up 16550; redis=redis://127.0.0.1:16550; fi
  GW_ENV=$(lean_env "$1") gateway_up "$LEAN_PORT" "$redis" "$(lean_bin "$1")"
}

lean_fanout() { # name before|after bus rate seconds: 1,000 streams, 256 B events, gateway CPU time
  local name=$1 which=$2 bus=$3 rate=$4 secs=$5 sampler
  rm -f "$OUT/$name".* "$OUT/$name"-*.txt
  lean_gateway "$which" "$bus"
  # Both cores' busy share inside the publish window (streams open and settle in about 3 s).
  ( sleep 4; cpu_busy $((secs > 4 ? secs - 2 : 2)) > "$OUT/$name-cpu.txt" ) &
  sampler=$!
  lt "$name" fanout --target http://127.0.0.1:$LEAN_PORT -n 1000 -m $((rate * secs)) -r "$rate" --payload 256 \
    --gateway-pid "$GW_PID" --before-publish "$(lean_probe "$OUT/$name-gauges.txt" $LEAN_PORT)" "${SRC[@]}"
  wait "$sampler" || true
  down
}

run_lean_idle() {
  lean_check
  rm -f "$OUT"/lean-idle-*
  local base=$LEAN_PORT
  for bus in $LEAN_BUSES; do
    for which in before after; do
      local name=lean-idle-$which-$bus
      # A port of its own per run: the previous run's 15,000 closed connections linger in
      # TIME_WAIT on the same addresses, and reusing their tuples makes handshakes fail.
      LEAN_PORT=$((LEAN_PORT + 1))
      lean_gateway "$which" "$bus"
      lt "$name" idle --target http://127.0.0.1:$LEAN_PORT -n "$LEAN_N" --ramp 3000 --workers 2 "${SRC[@]}" --hold 5s \
        --gateway-pid "$GW_PID" --before-publish "$(lean_probe "$OUT/$name-gauges.txt" $LEAN_PORT)"
      down
    done
  done
  LEAN_PORT=$base
}

run_lean_fanout_sweep() {
  lean_check
  rm -f "$OUT"/lean-fanout-*
  for bus in $LEAN_BUSES; do
    local fails_before=0 fails_after=0
    for rate in $LEAN_RATES; do
      for which in before after; do
        local fails=fails_$which
        [ "${!fails}" -lt "$LEAN_STOP_AFTER" ] || continue
        local name=lean-fanout-$which-$bus-$rate
        lean_fanout "$name" "$which" "$bus" "$rate" "$LEAN_SECS"
        if python3 "$LEAN" pass "$OUT/$name.json" "$rate" "$LEAN_SECS"; then
          printf -v "$fails" 0
        else
          printf -v "$fails" %d $((${!fails} + 1))
          echo "-- $which on $bus fails at $rate events/s"
        fi
      done
    done
  done
}

run_lean_cpu() {
  lean_check
  rm -f "$OUT"/lean-cpu-*
  for bus in $LEAN_BUSES; do
    for which in before after; do lean_fanout "lean-cpu-$which-$bus" "$which" "$bus" 100 "$LEAN_CPU_SECS"; done
  done
}

run_lean_cross_node() {
  lean_check
  rm -f "$OUT"/lean-cross-node-*
  for which in before after; do
    local name=lean-cross-node-$which sampler
    GW_ENV=$(lean_env "$which") three_nodes "$(lean_bin "$which")"
    # Both cores' busy share in the middle of the publish window (the streams open in about 2 s,
    # then 2 s for the RSS reading): 14 s to 24 s of a 30 s run.
    local third=$((LEAN_CROSS_SECS / 3))
    ( sleep $((4 + third)); cpu_busy $((third > 10 ? 10 : third > 2 ? third : 2)) > "$OUT/$name-cpu.txt" ) &
    sampler=$!
    lt "$name" cross-node "${TARGETS[@]}" -n "$LEAN_CROSS_N" -m $((100 * LEAN_CROSS_SECS)) -r 100 --via http \
      --gateway-pid "${NODE_PIDS[0]}" --gateway-pid "${NODE_PIDS[1]}" --gateway-pid "${NODE_PIDS[2]}" \
      --before-publish "$(lean_probe "$OUT/$name-gauges.txt" 18101 18102 18103)" "${SRC[@]}"
    wait "$sampler" || true
    down
  done
}

run_lean_compare() { run_lean_idle; run_lean_fanout_sweep; run_lean_cpu; run_lean_cross_node; }

run_lean_summary() { LEAN_SUMMARY=1; }

# Every 5 s, the other processes that used more than 3 % of a CPU, into lean-watch.txt (the
# summary names them): a compile on the side moves these figures a lot.
WATCH_PID=
if [ -n "$ANY_LEAN" ] && [ -z "$SUMMARY_ONLY" ]; then
  echo "# $(date '+%F %T') bench.sh ${SCENARIOS[*]}" >> "$OUT/lean-watch.txt"
  python3 "$LEAN" watch "$OUT/lean-watch.txt" $$ &
  WATCH_PID=$!
  trap 'cleanup; kill "$WATCH_PID" 2>/dev/null || true' EXIT
fi

for s in "${SCENARIOS[@]}"; do
  "run_${s//-/_}"
done

if [ -n "$LEAN_SUMMARY" ]; then
  echo
  python3 "$LEAN" summary "$OUT" | tee "$OUT/lean-summary.md"
fi
