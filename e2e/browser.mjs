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

async function close() {
  await browser.close().catch(() => {});
  process.exit(0);
}

await page.goto(pageUrl, { waitUntil: 'load', timeout: 30_000 });
reply({ kind: 'ready' });

const lines = createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  switch (line.trim()) {
    case 'events':
      reply({ kind: 'events', ...(await snapshot()) });
      break;
    case 'requests':
      reply({ kind: 'requests', requests });
      break;
    case 'quit':
      await close();
      break;
    default:
      console.error(`browser.mjs: unknown command ${JSON.stringify(line)}`);
  }
});
lines.on('close', close);
