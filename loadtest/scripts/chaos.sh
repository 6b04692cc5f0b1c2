#!/usr/bin/env bash
# The long chaos run, on this machine: release builds, loopback only. The tool starts Redis and
# three gateway nodes itself, opens the streams over them, publishes at a steady rate, and
# injects every fault in turn (a node killed, Redis restarted, clients stalled until cut, a
# rolling restart). Raw JSON and the text report land in benchmarks/results/chaos-long.{json,txt}.
#
#   loadtest/scripts/chaos.sh                  # 3,000 streams, 200 events/s
#   loadtest/scripts/chaos.sh -n 1000 -r 100   # extra arguments go to `loadtest chaos`
#
# Needs: redis-server, a 20,000 open-file limit. Exit status: the tool's (0 clean, 1 an event
# lost or duplicated, 3 the run could not do all it was asked).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p gateway -p loadtest
OUT=benchmarks/results
mkdir -p "$OUT"
ulimit -n 20000
machine="machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr); commit $(git rev-parse --short HEAD)"
echo "$machine" > "$OUT/chaos-long.txt"
set +e
target/release/loadtest chaos -n 3000 --ramp 1000 -r 200 --topics 10 --payload 512 --pause 15s \
  --source-ip 127.0.0.2 --source-ip 127.0.0.3 --drain 30s --json "$OUT/chaos-long.json" "$@" 2>&1 | tee -a "$OUT/chaos-long.txt"
status=${PIPESTATUS[0]}
echo "(exit $status)" | tee -a "$OUT/chaos-long.txt"
exit "$status"
