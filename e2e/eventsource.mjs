// Follows a gateway stream with the `eventsource` package (a WHATWG EventSource for Node, with
// its own parser and reconnection), for gateway/tests/api/clients.rs.
//
// Input: EVENTS_URL (the /events URL, through the balancer) and TOKEN (sent as a bearer token,
// as a server-side client would, through the package's `fetch` hook).
// Output, one JSON object per line: {"kind":"open"} on each (re)connection, {"kind":"event",
// "event","id","data"} for each event, {"kind":"error","readyState","message"} when the
// connection drops (the package then reconnects with Last-Event-ID after the server's `retry:`).
// The end of stdin closes the stream and exits.

import { EventSource } from 'eventsource';

const url = process.env.EVENTS_URL;
const token = process.env.TOKEN;
if (!url || !token) {
  console.error('eventsource.mjs: EVENTS_URL and TOKEN must be set');
  process.exit(2);
}

function report(value) {
  process.stdout.write(JSON.stringify(value) + '\n');
}

const es = new EventSource(url, {
  fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, Authorization: `Bearer ${token}` } }),
});
es.onopen = () => report({ kind: 'open' });
es.onerror = (err) => report({ kind: 'error', readyState: es.readyState, message: err.message ?? null, code: err.code ?? null });
// Named events reach only their own listeners: a `gateway.lost` would say history was trimmed.
for (const name of ['message', 'gateway.lost']) {
  es.addEventListener(name, (ev) => report({ kind: 'event', event: ev.type, id: ev.lastEventId, data: ev.data }));
}

process.stdin.on('data', () => {});
process.stdin.on('end', () => {
  es.close();
  process.exit(0);
});
