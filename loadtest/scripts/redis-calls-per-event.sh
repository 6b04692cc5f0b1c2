#!/usr/bin/env bash
# Measures what a node following 10,000 topics costs Redis: one gateway (release build) on a
# local redis-server, 10 SSE connections of 1,000 topics each, 2,000 raw XADDs spread over the
# topics; prints Redis command counts (INFO commandstats), deliveries and the gateway's RSS.
# Loopback only; needs redis-server, redis-cli, curl and python3. The loadtest tool will take
# this over as its many-topics scenario.
set -u
cd "$(dirname "$0")/../.."
cargo build --release -q -p gateway
PORT=16401; GW=18090
redis-server --port $PORT --bind 127.0.0.1 --save "" --daemonize yes --loglevel warning
sleep 0.3
SECRET=measure-secret-0123456789abcdef0123
GATEWAY_LISTEN_ADDR=127.0.0.1:$GW GATEWAY_JWT_SECRET=$SECRET GATEWAY_MAX_TOPICS=1024 GATEWAY_CLOCK_INTERVAL=0s \
  GATEWAY_REDIS_URL=redis://127.0.0.1:$PORT RUST_LOG=warn target/release/gateway > ${TMPDIR:-/tmp}/m-gw.log 2>&1 &
GWPID=$!
sleep 1
TOKEN=$(python3 - "$SECRET" <<'PY'
import sys, json, hmac, hashlib, base64, time
b=lambda x: base64.urlsafe_b64encode(x).rstrip(b'=').decode()
h=b(json.dumps({"alg":"HS256","typ":"JWT"}).encode()); p=b(json.dumps({"exp":int(time.time())+3600,"subscribe":["*"]}).encode())
s=b(hmac.new(sys.argv[1].encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()); print(f"{h}.{p}.{s}")
PY
)
for c in $(seq 0 9); do
  Q=$(python3 -c "print('&'.join(f'topic=m{$c*1000+i}' for i in range(1000)))")
  curl -sN "http://127.0.0.1:$GW/events?$Q" -H "Authorization: Bearer $TOKEN" > ${TMPDIR:-/tmp}/m-client-$c.out &
done
sleep 4
redis-cli -p $PORT CONFIG RESETSTAT > /dev/null
START=$(date +%s.%N)
python3 -c "
import random
random.seed(1)
for i in range(2000):
    print(f'XADD sse:stream:{{m{random.randrange(10000)}}} * data e{i}')
" | redis-cli -p $PORT > /dev/null
END=$(date +%s.%N)
sleep 7   # one reconcile pass (5 s) lands in the window too
redis-cli -p $PORT INFO commandstats | grep -E "cmdstat_(xread|xadd|eval|evalsha|subscribe|ping)" | tr -d '\r'
echo "publish window: $(python3 -c "print(round($END-$START,2))") s"
echo "events received by clients: $(cat ${TMPDIR:-/tmp}/m-client-*.out | grep -c '^data: e')"
echo "gateway RSS kB: $(ps -o rss= -p $GWPID)"
redis-cli -p $PORT PUBSUB NUMSUB | head -0; echo "pubsub channels: $(redis-cli -p $PORT PUBSUB CHANNELS '*' | wc -l)"
kill $GWPID; pkill -f "curl -sN http://127.0.0.1:$GW" ; redis-cli -p $PORT shutdown nosave
