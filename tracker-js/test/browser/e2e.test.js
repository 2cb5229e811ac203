// End to end in real headless Chromium against the real engine (`clickstream up`).
// One engine and one browser for the file; a fresh browser context per test.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { API_KEY, startEngine, waitFor } from './engine.js';
import { snippet } from '../../src/snippet.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// Headless Chromium says "HeadlessChrome", which the collector counts as a bot (kept out of
// every profile): the pages here speak as the desktop browser they stand for. The context
// option covers the pages' requests; the launch flag also the beacons sent as a page goes.
const DESKTOP_UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';
const LAUNCH = {
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    `--user-agent=${DESKTOP_UA}`],
};

let engine;
let browser;
const newContext = (options = {}) => browser.newContext({ userAgent: DESKTOP_UA, ...options });

before(async () => {
  engine = await startEngine();
  browser = await chromium.launch(LAUNCH);
});

after(async () => {
  if (browser) await browser.close();
  if (engine) await engine.stop();
});

async function profile(id) {
  const res = await fetch(`${engine.base}/v1/profiles/${encodeURIComponent(id)}`, { headers: { Authorization: `Bearer ${API_KEY}` } });
  if (res.status === 404) return null;
  assert.equal(res.status, 200, `GET /v1/profiles: ${res.status}`);
  return res.json();
}

const count = (p, type) => (p && p.counts && p.counts[type]) || 0;

async function visitorCookie(context) {
  const cookie = (await context.cookies()).find((c) => c.name === 'clickstream_vid');
  return cookie ? cookie.value : null;
}

async function loaded(page) {
  await page.waitForFunction(() => window.clickstream && window.clickstream.loaded);
}

const flush = (page) => page.evaluate(() => new Promise((done) => window.clickstream((t) => t.flush().then(done))));

// Events the collector has taken in so far (accepted or rejected), from /metrics:
// this also sees beacons sent while a page unloads, which no page request event shows.
async function collected() {
  const text = await (await fetch(`${engine.base}/metrics`)).text();
  let total = 0;
  for (const name of ['clickstream_events_accepted_total', 'clickstream_events_rejected_total']) {
    const line = text.split('\n').find((l) => l.startsWith(name + ' '));
    total += line ? Number(line.split(' ')[1]) : 0;
  }
  return total;
}

// Requests the pages of a context make to the engine's /v1 API (beacons included).
function watchApi(context) {
  const seen = [];
  context.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname.startsWith('/v1/')) seen.push({ path: url.pathname, method: request.method(), body: request.postData() || '' });
  });
  return seen;
}

// A same-origin test page with the snippet and the given options, served by the route.
async function testPage(context, name, options, hideMs = 300) {
  const url = `${engine.base}/e2e/${name}.html`;
  const html = `<!doctype html><html><head><title>${name}</title>
${snippet({ src: '/static/clickstream.min.js', endpoint: '', options, hideMs })}
</head><body><div data-clickstream-slot="hero"><h2>Default hero</h2></div><a href="/demo/">shop</a></body></html>`;
  await context.route(url, (route) => route.fulfill({ contentType: 'text/html', body: html }));
  return url;
}

test('the demo shop: page views, product views, cart, purchase and login arrive in the profile', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(`${engine.base}/demo/`);
  await loaded(page);
  await page.click('a[href="/demo/product.html?id=sneaker-trail"]'); // pagehide sends the home page's events
  await page.waitForURL(/product\.html/);
  await loaded(page);
  await page.click('#add');
  await page.click('a[href="/demo/cart.html"]');
  await loaded(page);
  await page.click('#checkout');
  await page.waitForSelector('text=Thank you!');
  await page.click('#login-link');
  await loaded(page);
  await page.fill('#email', 'ann@example.com');
  await page.fill('#first-name', 'Ann');
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Logged in as ann@example.com'); // the demo's back end signed the login
  await flush(page);
  const vid = await visitorCookie(context);
  assert.match(vid, /^[0-9a-f]{32}$/);
  const person = await waitFor('the visit in the profile', async () => {
    const p = await profile(vid);
    return count(p, 'page_view') >= 4 && count(p, 'product_view') === 1 && count(p, 'add_to_cart') === 1 &&
      count(p, 'purchase') === 1 && count(p, 'identify') === 1 && p;
  });
  assert.ok(person.viewed.some((v) => v.id === 'sneaker-trail'), 'the product is in "viewed"');
  assert.equal(person.commerce.orders, 1);
  assert.equal(person.commerce.revenue, 89);
  assert.equal(person.user_id, 'ann@example.com');
  assert.equal(person.traits.first_name, 'Ann');

  // The home page shows the visitor what the engine knows about them, live.
  await page.goto(`${engine.base}/demo/`);
  await loaded(page);
  const panel = page.locator('#you');
  await waitFor('the profile panel', async () => {
    const text = await panel.innerText().catch(() => '');
    return /known as\s*Ann/.test(text) && /orders\s*1/.test(text);
  });
  await context.close();

  // Another visitor on a product nobody has bought: its also-bought list falls back to
  // the best seller of its category, the order above.
  const other = await newContext();
  const shopper = await other.newPage();
  // (Reloading: the engine caches popularity for a few seconds.)
  await waitFor('also-bought on the product page', async () => {
    await shopper.goto(`${engine.base}/demo/product.html?id=sneaker-city`);
    await loaded(shopper);
    await shopper.waitForTimeout(500);
    return (await shopper.locator('#also-bought li a').allInnerTexts()).includes('Trail sneakers');
  }, { everyMs: 1000 });
  await other.close();
});

test('the hero slot is filled by /v1/decide and its impression is recorded', async () => {
  const context = await newContext();
  // A generous anti-flicker time: a slow first decide on a busy machine must not fail the test.
  const url = await testPage(context, 'slots', {}, 10_000);
  const page = await context.newPage();
  await page.goto(url);
  await loaded(page);
  const hero = page.locator('[data-clickstream-slot="hero"]');
  await waitFor('the hero to be filled', async () => /Welcome, there!/.test(await hero.innerHTML()));
  assert.equal(await hero.getAttribute('data-clickstream-ready'), '');
  await flush(page);
  const vid = await visitorCookie(context);
  await waitFor('an impression in the profile', async () => count(await profile(vid), 'impression') >= 1);
  await context.close();
});

test('events queued offline are sent when the page is back online', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(`${engine.base}/demo/`);
  await loaded(page);
  await flush(page);
  const seen = watchApi(context);
  await context.setOffline(true);
  await page.evaluate(() => {
    window.clickstream('track', 'offline_one');
    window.clickstream('track', 'offline_two');
  });
  await flush(page);
  const queued = await page.evaluate(() => Object.keys(localStorage)
    .filter((k) => k.startsWith('clickstream_q:'))
    .flatMap((k) => JSON.parse(localStorage.getItem(k)).e.map((e) => e.type)));
  assert.deepEqual(queued.filter((t) => t.startsWith('custom:')), ['custom:offline_one', 'custom:offline_two'], 'kept in localStorage');
  assert.equal(seen.filter((r) => r.path === '/v1/events').length, 0, 'nothing tried while offline');
  const delivered = page.waitForResponse((r) => r.url().endsWith('/v1/events') && r.status() === 202);
  await context.setOffline(false);
  await delivered;
  const vid = await visitorCookie(context);
  await waitFor('the offline events in the profile', async () => {
    const p = await profile(vid);
    return count(p, 'custom:offline_one') === 1 && count(p, 'custom:offline_two') === 1;
  });
  await context.close();
});

test('the pagehide flush delivers what was still queued', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(`${engine.base}/demo/`);
  await loaded(page);
  await flush(page);
  const seen = watchApi(context);
  await page.evaluate(() => window.clickstream('track', 'before_leaving'));
  const vid = await visitorCookie(context);
  await page.goto('about:blank'); // leaves the site: no later page could send it
  await waitFor('the event in the profile', async () => count(await profile(vid), 'custom:before_leaving') === 1);
  assert.ok(!seen.some((r) => r.body.includes('custom:before_leaving')), 'not by fetch while the page was open');
  await context.close();
});

test('consent-first: nothing is sent before consent, everything after', async () => {
  const context = await newContext();
  const seen = watchApi(context);
  const url = await testPage(context, 'consent-first', { consentFirst: true });
  const page = await context.newPage();
  const before = await collected();
  await page.goto(url);
  await loaded(page);
  await page.evaluate(() => window.clickstream('track', 'waiting_for_consent'));
  await flush(page);
  await page.reload(); // pagehide: the moment a beacon would go
  await loaded(page);
  await page.evaluate(() => window.clickstream('productView', { id: 'p1', category: 'shoes', price: 10 }));
  await flush(page);
  await page.waitForTimeout(500);
  assert.deepEqual(seen.filter((r) => r.path === '/v1/events' || r.path === '/v1/decide'), [], 'no event, no decide');
  assert.equal(await collected(), before, 'the collector got nothing, beacons included');
  assert.equal(await visitorCookie(context), null, 'no visitor cookie before consent');
  assert.deepEqual(await page.evaluate(() => Object.keys(localStorage)), [], 'nothing stored before consent');

  const delivered = page.waitForResponse((r) => r.url().endsWith('/v1/events') && r.status() === 202);
  await page.evaluate(() => window.clickstream('consent', { analytics: true, personalization: true }));
  await delivered;
  const vid = await visitorCookie(context);
  assert.ok(vid, 'the cookie once consented');
  await waitFor('the consent and the held events in the profile', async () => {
    const p = await profile(vid);
    return count(p, 'page_view') >= 1 && count(p, 'product_view') === 1 && p.consent && p.consent.analytics === true;
  });
  await context.close();
});

for (const [signal, script] of [
  ['Do-Not-Track', "Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' })"],
  ['Global Privacy Control', "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true })"],
]) {
  test(`${signal} is respected: no events, no decide, no cookie`, async () => {
    const context = await newContext();
    await context.addInitScript(script);
    const seen = watchApi(context);
    const page = await context.newPage();
    const before = await collected();
    await page.goto(`${engine.base}/demo/product.html?id=boots-rain`);
    await loaded(page);
    await page.click('#add');
    await flush(page);
    const hero = await page.goto(`${engine.base}/demo/`);
    assert.ok(hero.ok());
    await loaded(page);
    assert.equal(await page.locator('[data-clickstream-slot="hero"]').getAttribute('data-clickstream-ready'), '', 'the default content shows');
    await page.goto('about:blank');
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(seen.filter((r) => r.path === '/v1/events' || r.path === '/v1/decide'), []);
    assert.equal(await collected(), before, 'the collector got nothing, beacons included');
    assert.equal(await visitorCookie(context), null);
    await context.close();
  });
}

test('a preference set in the preference center changes the next decision', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(`${engine.base}/demo/preferences.html`);
  await loaded(page);
  const hero = page.locator('[data-clickstream-slot="hero"]');
  // Filled or (decide slower than 300 ms) left as it was: either way not the shoe banner yet.
  await page.waitForSelector('[data-clickstream-slot="hero"][data-clickstream-ready]');
  assert.doesNotMatch(await hero.innerHTML(), /sneakers/);
  await page.check('input[name="show"][value="shoes"]');
  const decided = page.waitForResponse((r) => r.url().endsWith('/v1/decide'));
  await page.click('#save');
  const answer = await (await decided).json();
  assert.equal(answer.decisions.hero.source, 'preference');
  assert.equal(answer.decisions.hero.content_id, 'hero-shoes');
  await waitFor('the new hero', async () => /Fresh sneakers picked for you/.test(await hero.innerHTML()));
  await context.close();
});

test('"Erase me" in the preference center erases the visitor on the server and forgets the ids', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(`${engine.base}/demo/preferences.html`);
  await loaded(page);
  await flush(page);
  const vid = await visitorCookie(context);
  await waitFor('the profile', async () => count(await profile(vid), 'page_view') >= 1);
  const erased = page.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().endsWith(`/v1/profiles/${vid}`));
  await page.click('#forget');
  assert.equal((await erased).status(), 200);
  await page.waitForSelector('text=Everything we knew about you is erased.');
  await waitFor('the profile to be gone', async () => (await profile(vid)) === null);
  assert.equal(await visitorCookie(context), null, 'the cookie is gone too');
  await context.close();
});
