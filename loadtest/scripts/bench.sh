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
# Needs: redis-server, redis-cli, taskset (util-linux), a 20,000 open-file limit.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p gateway -p loadtest
# The build's directory (CARGO_TARGET_DIR, if set).
BIN=${CARGO_TARGET_DIR:-target}/release
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

gateway_up() { # port [redis-url]; sets GW_PID
  ( ulimit -n 20000
    exec env ${GW_ENV:-} GATEWAY_LISTEN_ADDR=127.0.0.1:$1 GATEWAY_JWT_SECRET=$SECRET GATEWAY_CLOCK_INTERVAL=0s RUST_LOG=warn \
      ${2:+GATEWAY_REDIS_URL=$2} taskset -c "$GW_CPU" "$BIN/gateway" ) >"${TMPDIR:-/tmp}/bench-gateway-$1.log" 2>&1 &
  GW_PID=$!
  PIDS+=($GW_PID)
  until (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; do sleep 0.05; done
}

down() { cleanup; PIDS=(); sleep 0.5; }

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

three_nodes() { redis_up 16500; NODE_PIDS=(); for p in 18101 18102 18103; do gateway_up $p redis://127.0.0.1:16500; NODE_PIDS+=("$GW_PID"); done; }
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

ALL=(idle fanout fanout-sweep cross-node-http cross-node-xadd many-topics reconnect-storm slow-consumers)
for s in "${@:-${ALL[@]}}"; do
  "run_${s//-/_}"
done
