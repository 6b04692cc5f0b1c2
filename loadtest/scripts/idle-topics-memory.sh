#!/usr/bin/env bash
# What idle topics cost Redis, before and after streams expire (docs/redis.md, "Keys and their
# lifetimes"). Runs the gateway's own publish script (`PUBLISH` in
# gateway/src/bus/redis/scripts.rs) against a redis-server of its own on a free loopback port:
# "before" is the script at BEFORE_REV (streams without an expiry), "after" the one in the work
# tree. Prints, for each:
#   - MEMORY USAGE of one stream: 1 event, 1,000 events, and once the history's age has passed;
#   - INFO memory used_memory: empty, right after one event to each of N topics (pipelined with
#     redis-cli --pipe), and once the age has passed (and the 10 s publish receipts have expired).
# Usage: idle-topics-memory.sh [N topics, default 1000000] [age ms for "after", default 20000]
# Needs redis-server, redis-cli, git, awk, sha1sum. Events carry 256 bytes of data.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
AGE_MS=${2:-20000}
BEFORE_REV=${BEFORE_REV:-1e5c6f8}
HOUR_MS=3600000
RECEIPT_MS=10000
SCRIPTS=gateway/src/bus/redis/scripts.rs
PAYLOAD=$(head -c 256 /dev/zero | tr '\0' 'x')
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log" --dir "$WORK"
trap 'kill "$(cat "$WORK/redis.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT
cli() { redis-cli -p "$PORT" "$@"; }
until cli PING > /dev/null 2>&1; do sleep 0.1; done

publish_script() { awk '/pub const PUBLISH: &str = r#"/{f=1; next} f && /^"#;/{exit} f'; }
used() { cli INFO memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r'; }
usage() { local u; u=$(cli MEMORY USAGE "$1" SAMPLES 0); echo "${u:-0 (no key)}"; }
wait_dbsize() { until [ "$(cli DBSIZE)" -le "$1" ]; do sleep 1; done; }

# The RESP of `EVALSHA sha 2 stream receipt 0 age receipt_ttl 1 data <payload> via gateway` for
# topics user.0 .. user.(N-1), one event each.
commands() {
  awk -v n="$N" -v sha="$1" -v age="$2" -v ttl="$RECEIPT_MS" -v data="$PAYLOAD" 'BEGIN {
    for (i = 0; i < n; i++) {
      s = "sse:stream:{user." i "}"; r = "sse:receipt:{user." i "}:" i
      split("EVALSHA|" sha "|2|" s "|" r "|0|" age "|" ttl "|3|data|" data "|via|gateway", a, "|")
      printf "*13\r\n"; for (j = 1; j <= 13; j++) printf "$%d\r\n%s\r\n", length(a[j]), a[j]
    }
  }'
}

measure() { # label, script file, age ms
  local label=$1 file=$2 age=$3 sha
  cli FLUSHALL > /dev/null
  sha=$(cli SCRIPT LOAD "$(cat "$file")")
  cli EVALSHA "$sha" 2 'one:stream:{t}' 'one:receipt:{t}:1' 0 "$age" $RECEIPT_MS 1 data "$PAYLOAD" > /dev/null
  echo "$label: MEMORY USAGE, 1 event of 256 B: $(usage 'one:stream:{t}') bytes"
  for i in $(seq 1000); do
    printf 'EVALSHA %s 2 one:stream:{k} one:receipt:{k}:%d 0 %s %d 1 data %s\r\n' "$sha" "$i" "$age" $RECEIPT_MS "$PAYLOAD"
  done | cli --pipe > /dev/null
  echo "$label: MEMORY USAGE, 1,000 events of 256 B: $(usage 'one:stream:{k}') bytes"
  cli FLUSHALL > /dev/null
  echo "$label: used_memory empty: $(used)"
  local start=$SECONDS
  commands "$sha" "$age" | cli --pipe | tail -1
  echo "$label: $N topics written in $((SECONDS - start)) s; DBSIZE $(cli DBSIZE); used_memory $(used)"
  # Receipts expire after 10 s; streams with an expiry after the age.
  local expect=$N
  [ "$age" -lt "$HOUR_MS" ] && expect=0
  wait_dbsize "$expect"
  echo "$label: after the receipts (and any expiry): DBSIZE $(cli DBSIZE); used_memory $(used)"
  echo "$label: MEMORY USAGE of sse:stream:{user.0} now: $(usage 'sse:stream:{user.0}')"
}

echo "machine: $(nproc) CPU ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/Mem:/{print $2}') GiB;" \
  "$(redis-server --version | cut -d' ' -f1-3); commit $(git rev-parse --short HEAD)"
git show "$BEFORE_REV:$SCRIPTS" | publish_script > "$WORK/before.lua"
publish_script < "$SCRIPTS" > "$WORK/after.lua"
# Before, the age (1 h, the default) only trimmed: the streams stay whatever it is.
measure "before ($BEFORE_REV, age 1 h)" "$WORK/before.lua" $HOUR_MS
measure "after (age $((AGE_MS / 1000)) s)" "$WORK/after.lua" "$AGE_MS"
