// Opens the gateway's demo page in Debian's headless Chromium (driven by playwright-core, which
// never downloads a browser) and reports what the page shows, for gateway/tests/api/browser.rs.
//
// Input: PAGE_URL (the demo page, through the balancer); CHROMIUM (default /usr/bin/chromium).
// Protocol, one JSON object per line: after the page has loaded it prints {"kind":"ready"}; then
// each line "events" on stdin is answered with {"kind":"events","state":…,"count":…,"refreshes":…,"events":[…]},
// the page's event list in arrival order ({id, event, data} from each item's data-id and
// data-event hooks and its text); each line "requests" with {"kind":"requests","requests":[…]},
// every HTTP request the page made so far ({method, url}, in order, as they left the browser);
// "quit" or the end of stdin closes the browser.
// A line holding a JSON object {"kind":"mercure","streams":[url…],"publish":{url,token,bodies:[…]},
// "settleMs":…,"openMs":…} drives a Mercure hub from the page itself, for
// gateway/tests/api/mercure_browser.rs: it opens an EventSource at each of `streams`, waits (up to
// openMs) until all are open, POSTs each form-encoded body in turn with fetch and the bearer token,
// waits settleMs more, closes the streams and answers {"kind":"mercure","responses":[{status,
// contentType,body,sentAt}],"streams":[{events:[{type,data,lastEventId,at}],errors}]} (times from
// the page's performance.now(), in ms), or {"kind":"mercure","error":…}.
// Diagnostics (the page's console, its errors) go to stderr.

import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const pageUrl = process.env.PAGE_URL;
if (!pageUrl) {
  console.error('browser.mjs: PAGE_URL is not set');
  process.exit(2);
}

// Flags for a closed-network machine: no GPU, no QUIC, nothing fetched in the background, no
// proxy. `launch` runs with a fresh temporary profile (--user-data-dir) of its own, removed at close.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  timeout: 30_000,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-proxy-server',
  ],
});

const page = await browser.newPage();
page.on('console', (msg) => console.error(`[page console ${msg.type()}] ${msg.text()}`));
page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
page.on('requestfailed', (req) => console.error(`[request failed] ${req.url().split('?')[0]} ${req.failure()?.errorText}`));
// What the page sends, for the test to check that no token travels in a URL.
const requests = [];
page.on('request', (req) => requests.push({ method: req.method(), url: req.url() }));

function reply(value) {
  process.stdout.write(JSON.stringify(value) + '\n');
}

async function snapshot() {
  return page.evaluate(() => ({
    state: document.getElementById('state').textContent,
    count: Number(document.getElementById('count').textContent),
    refreshes: Number(document.getElementById('refreshes').textContent),
    // The page lists the newest first.
    events: [...document.querySelectorAll('#events li')].reverse().map((li) => ({
      id: li.dataset.id,
      event: li.dataset.event,
      data: li.querySelector('pre').textContent,
    })),
  }));
}

// Runs in the page: same-origin URLs, so the streams and the publications go through the balancer.
async function mercure({ streams, publish, settleMs, openMs }) {
  const sources = streams.map((url) => {
    const source = new EventSource(url);
    const stream = { source, events: [], errors: 0 };
    source.onmessage = (e) => stream.events.push({ type: e.type, data: e.data, lastEventId: e.lastEventId, at: performance.now() });
    stream.open = new Promise((resolve, reject) => {
      source.onopen = resolve;
      source.onerror = () => {
        stream.errors += 1;
        reject(new Error(`the stream ${url} failed before it opened (readyState ${source.readyState})`));
      };
    });
    return stream;
  });
  try {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the streams were not all open after ${openMs} ms`)), openMs);
    });
    await Promise.race([Promise.all(sources.map((s) => s.open)), late]).finally(() => clearTimeout(timer));
    const responses = [];
    for (const body of publish.bodies) {
      const sentAt = performance.now();
      const r = await fetch(publish.url, {
        method: 'POST',
        headers: { Authorization: `Bearer ${publish.token}`, 'Content-Type': 'application/x-www-form-urlencoded' },
        body,
        signal: AbortSignal.timeout(openMs),
      });
      responses.push({ status: r.status, contentType: r.headers.get('content-type'), body: await r.text(), sentAt });
    }
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    return { responses, streams: sources.map(({ events, errors }) => ({ events, errors })) };
  } catch (e) {
    return { error: String(e) };
  } finally {
    sources.forEach((s) => s.source.close());
  }
}

async function close() {
  await browser.close().catch(() => {});
  process.exit(0);
}

await page.goto(pageUrl, { waitUntil: 'load', timeout: 30_000 });
reply({ kind: 'ready' });

const lines = createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  const command = line.trim().startsWith('{') ? JSON.parse(line) : { kind: line.trim() };
  switch (command.kind) {
    case 'events':
      reply({ kind: 'events', ...(await snapshot()) });
      break;
    case 'requests':
      reply({ kind: 'requests', requests });
      break;
    case 'mercure':
      reply({ kind: 'mercure', ...(await page.evaluate(mercure, command)) });
      break;
    case 'quit':
      await close();
      break;
    default:
      console.error(`browser.mjs: unknown command ${JSON.stringify(line)}`);
  }
});
lines.on('close', close);
