// The console in real headless Chromium against the real engine (`clickstream up`): sign-in,
// refusals, every page with real data, a shopper's own events appearing live, a rule file
// edit, a backtest, a pasted profile, a segment's download, erasure. Screenshots of each
// page go to test-results/console/ (not committed).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomUUID } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { API_KEY, startEngine, waitFor } from './engine.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SHOTS = resolve(HERE, '..', '..', 'test-results', 'console');
const DEMO_RULES = resolve(HERE, '..', '..', '..', 'engine', 'defaults', 'rules', 'demo.yaml');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const DESKTOP_UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';
const LAUNCH = {
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    `--user-agent=${DESKTOP_UA}`],
};

let engine;
let browser;
let rulesDir;
const newContext = (options = {}) => browser.newContext({ userAgent: DESKTOP_UA, viewport: { width: 1280, height: 900 }, ...options });

before(async () => {
  rulesDir = mkdtempSync(join(tmpdir(), 'clickstream-console-rules-'));
  cpSync(DEMO_RULES, join(rulesDir, 'demo.yaml'));
  engine = await startEngine({ env: { CLICKSTREAM_RULES: rulesDir } });
  browser = await chromium.launch(LAUNCH);
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (engine) await engine.stop();
  if (rulesDir) rmSync(rulesDir, { recursive: true, force: true });
});

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

// Requests that leave the engine: the console makes none (fonts and scripts are its own).
function outsideRequests(context) {
  const outside = [];
  context.on('request', (r) => { if (!r.url().startsWith(engine.base) && !r.url().startsWith('data:')) outside.push(r.url()); });
  return outside;
}

async function signIn(page, key = API_KEY) {
  await page.goto(`${engine.base}/console/`);
  await page.waitForURL(/\/console\/signin$/);
  await page.fill('#key', key);
  await page.click('button[type=submit]');
}

test('a wrong key is refused and nothing of the console shows', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await signIn(page, 'not-the-key');
  await page.waitForSelector('text=not one of this engine');
  assert.match(page.url(), /\/console\/signin$/);
  assert.equal(await page.locator('nav').count(), 0);
  await shot(page, 'signin-refused');
  const cookie = (await context.cookies()).find((c) => c.name === 'clickstream_console');
  assert.ok(cookie.httpOnly && cookie.sameSite === 'Strict', JSON.stringify(cookie));
  assert.equal(await page.evaluate(() => document.cookie.includes('clickstream_console')), false);
  await context.close();
});

test('a POST without the session CSRF token is refused, even signed in', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await signIn(page);
  await page.waitForSelector('h1:text("Overview")');
  const refused = await page.request.post(`${engine.base}/console/people/erase`, { form: { id: 'anyone' } });
  assert.equal(refused.status(), 403);
  assert.match(await refused.text(), /csrf/);
  const forged = await page.request.post(`${engine.base}/console/signout`, { form: { csrf: 'guessed' } });
  assert.equal(forged.status(), 403);
  await page.goto(`${engine.base}/console/segments`); // still signed in
  await page.waitForSelector('h1:text("Segments")');
  await context.close();
});

test('a shopper in another tab watches their own events, profile, segment and the hero decision appear', async () => {
  const consoleContext = await newContext();
  const outside = outsideRequests(consoleContext);
  const admin = await consoleContext.newPage();
  await signIn(admin);
  await admin.waitForSelector('h1:text("Overview")');

  const shopContext = await newContext();
  const shop = await shopContext.newPage();
  await shop.goto(`${engine.base}/demo/`);
  await shop.waitForFunction(() => window.clickstream && window.clickstream.loaded);
  for (const id of ['sneaker-trail', 'sneaker-city', 'sneaker-trail']) {
    await shop.goto(`${engine.base}/demo/product.html?id=${id}`);
    await shop.waitForFunction(() => window.clickstream && window.clickstream.loaded);
  }
  await shop.click('#add');
  await shop.goto(`${engine.base}/demo/`); // pagehide sends the product page's events; the home page asks for its hero
  await shop.waitForFunction(() => window.clickstream && window.clickstream.loaded);
  await shop.evaluate(() => new Promise((done) => window.clickstream((t) => t.flush().then(done))));
  const vid = (await shopContext.cookies()).find((c) => c.name === 'clickstream_vid').value;

  // People: the profile page refreshes itself; no reload needed for the events to show.
  await admin.goto(`${engine.base}/console/people`);
  await admin.fill('#q', vid);
  await admin.click('form.search button');
  await admin.waitForSelector('#recent');
  await admin.waitForSelector('#recent >> text=sneaker-city (shoes)', { timeout: 30_000 });
  await admin.waitForSelector('#recent >> text=add_to_cart', { timeout: 30_000 });
  await admin.waitForSelector('#segments >> text=shoe-lovers', { timeout: 30_000 });
  const hero = admin.locator('#decisions tr', { hasText: 'hero' });
  await waitFor('the hero decision of shoe-fans', async () => (await hero.textContent()).includes('shoe-fans'));
  assert.match(await hero.textContent(), /hero-shoes/);
  assert.match(await admin.locator('.facts').textContent(), /product_view 3/);
  await shot(admin, 'people');

  // Live: with the people page left open, the shopper's next page view appears without a reload.
  const rowsBefore = await admin.locator('#recent tbody tr').count();
  await shop.goto(`${engine.base}/demo/product.html?id=sneaker-city`);
  await shop.waitForFunction(() => window.clickstream && window.clickstream.loaded);
  await shop.evaluate(() => new Promise((done) => window.clickstream((t) => t.flush().then(done))));
  await waitFor('the next page view on the open people page', async () => (await admin.locator('#recent tbody tr').count()) > rowsBefore,
    { timeoutMs: 20_000 });

  // The shopper's home page got the same hero the console shows.
  await waitFor('the shoes hero in the shop', async () => {
    await shop.goto(`${engine.base}/demo/`);
    await shop.waitForFunction(() => window.clickstream && window.clickstream.loaded);
    return (await shop.locator('[data-clickstream-slot=hero]').textContent()).includes('Fresh sneakers');
  }, { timeoutMs: 30_000, everyMs: 1000 });
  await shot(shop, 'shop-hero');

  // Overview: the flow counts the shopper's events, live.
  await admin.goto(`${engine.base}/console/`);
  await waitFor('accepted events on the overview', async () => Number((await admin.locator('#accepted').textContent()).replace(/,/g, '')) >= 5,
    { timeoutMs: 15_000 });
  assert.match(await admin.locator('.health').textContent(), /broker: ok[\s\S]*redis: ok[\s\S]*worker: ok/);
  assert.ok(await admin.locator('svg.chart rect.accepted').count() >= 60);
  await shot(admin, 'overview');

  // A customer the shop's back end identified, with marketing consent, who viewed shoes: in the download.
  const member = `console-member-${randomUUID().slice(0, 8)}`;
  const memberVid = randomUUID().replace(/-/g, '');
  const sent = await fetch(`${engine.base}/v1/events`, {
    method: 'POST', headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ events: [
      { type: 'consent', visitor_id: memberVid, props: { consent: { marketing: true } } },
      { type: 'identify', visitor_id: memberVid, user_id: member,
        props: { traits: { email: `${member}@example.com`, first_name: 'Ada', language: 'en' } } },
      ...['sneaker-trail', 'sneaker-city', 'sneaker-trail'].map((id) => ({ type: 'product_view', visitor_id: memberVid,
        props: { product: { id, category: 'shoes', price: 80 } } })),
    ] }),
  });
  assert.equal(sent.status, 202, await sent.text());

  // Segments: shoe-lovers has the shopper among its members.
  await admin.click('nav >> text=Segments');
  await admin.waitForSelector('#segment-list >> text=shoe-lovers');
  assert.match(await admin.locator('#segment-list').textContent(), /demo\.yaml:\d+/);
  await shot(admin, 'segments');
  await admin.click('#segment-list >> text=shoe-lovers');
  await admin.waitForSelector(`#members >> text=${vid}`);
  await waitFor('the identified customer among the members', async () => {
    await admin.reload();
    return (await admin.locator('#members').textContent()).includes(member);
  }, { timeoutMs: 20_000, everyMs: 500 });
  await shot(admin, 'segment');

  // The download button: every page of the segment's export, as a CSV file.
  const [download] = await Promise.all([admin.waitForEvent('download'), admin.click('#download')]);
  assert.equal(download.suggestedFilename(), 'segment-shoe-lovers.csv');
  const csv = readFileSync(await download.path(), 'utf8').split(/\r?\n/);
  assert.equal(csv[0], 'id,email,first_name,language,score');
  assert.ok(csv.some((line) => line.startsWith(`${member},${member}@example.com,Ada,en,`)), csv.join('\n'));
  assert.ok(!csv.some((line) => line.startsWith(vid)), 'an anonymous shopper is not in the download');

  // Rules: the demo file live; shoe-fans has served the shopper's hero.
  await admin.click('nav >> text=Rules');
  await admin.waitForSelector('#files >> text=demo.yaml');
  assert.match(await admin.locator('#files').textContent(), /live/);
  const shoeFans = admin.locator('#rules tr', { hasText: 'shoe-fans' });
  await waitFor('served counts of shoe-fans', async () => /hero-shoes\s*[1-9]/.test(await shoeFans.textContent()), { timeoutMs: 15_000 });
  assert.match(await shoeFans.textContent(), /segment/);
  await shot(admin, 'rules');

  // Rules preview: the same decision as POST /v1/decide for the same person and context.
  for (const context of [{ country: 'NO', weather: 'rain', device: 'desktop' }, { country: 'SE', weather: 'sun', device: 'mobile' }]) {
    await admin.goto(`${engine.base}/console/rules`);
    await admin.fill('#profile', vid);
    for (const [name, value] of Object.entries(context)) await admin.fill(`#${name}`, value);
    await admin.click('#preview-form button');
    await admin.waitForSelector('#preview');
    const res = await fetch(`${engine.base}/v1/decide`, {
      method: 'POST', headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ visitor_id: vid, slots: ['hero'], context }),
    });
    const hero = (await res.json()).decisions.hero;
    const row = admin.locator('#preview tr[data-slot=hero]');
    assert.equal(await row.locator('.content-id').textContent(), hero.content_id);
    assert.equal(await row.locator('.reason').textContent(), hero.reason);
    if (context.weather === 'rain') await shot(admin, 'rules-preview');
  }

  // Rules preview with a pasted profile: the shopper's profile as the API gives it decides as decide does.
  const profile = await (await fetch(`${engine.base}/v1/profiles/${vid}`, { headers: { Authorization: `Bearer ${API_KEY}` } })).json();
  const sunny = { country: 'SE', weather: 'sun', device: 'mobile' };
  await admin.goto(`${engine.base}/console/rules`);
  await admin.fill('#profile_json', JSON.stringify(profile, null, 2));
  for (const [name, value] of Object.entries(sunny)) await admin.fill(`#${name}`, value);
  await admin.click('#preview-form button');
  await admin.waitForSelector('#preview');
  assert.match(await admin.locator('main h2 >> nth=1').textContent(), new RegExp(`the pasted profile ${vid}`));
  const sunnyHero = (await (await fetch(`${engine.base}/v1/decide`, {
    method: 'POST', headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ visitor_id: vid, slots: ['hero'], context: sunny }),
  })).json()).decisions.hero;
  const pastedRow = admin.locator('#preview tr[data-slot=hero]');
  assert.equal(await pastedRow.locator('.content-id').textContent(), sunnyHero.content_id);
  assert.equal(await pastedRow.locator('.reason').textContent(), sunnyHero.reason);
  assert.match(sunnyHero.reason, /shoe-fans/);
  await shot(admin, 'rules-preview-pasted');
  const wrong = '{"id": "someone", "commerce": {"orders": "many"}}';
  await admin.fill('#profile_json', wrong);
  await admin.click('#preview-form button');
  await admin.waitForSelector('#preview-error');
  assert.match(await admin.locator('#preview-error').textContent(), /profile_json: commerce\.orders: expected a whole number/);
  assert.equal(await admin.locator('#profile_json').inputValue(), wrong);
  assert.equal(await admin.locator('#preview').count(), 0);
  await shot(admin, 'rules-preview-error');

  // Rules backtest: the button replays the last hour of the log in the background; its bar fills on the
  // page (which polls the run, no reload), then the table shows the shopper's home page decided by shoe-fans.
  await admin.goto(`${engine.base}/console/rules`);
  await admin.selectOption('#hours', '1');
  await admin.click('#backtest-form button');
  await admin.waitForURL(/\/console\/rules#backtest$/);
  await admin.waitForSelector('#backtest-progress');
  await admin.waitForSelector('#backtest-report', { timeout: 60_000 });
  assert.equal(await admin.locator('#backtest-progress').getAttribute('value'), '1');
  assert.match(await admin.locator('#backtest-status').textContent(), /Done: the last 1 h, [\d,]+ events/);
  const fans = admin.locator('#backtest-report tr[data-rule=shoe-fans]');
  assert.ok(Number((await fans.locator('.decided').textContent()).replace(/,/g, '')) >= 1, await fans.textContent());
  await shot(admin, 'rules-backtest');

  // Experiments: the demo's split rule is listed, and its report shows its arms.
  await admin.click('nav >> text=Experiments');
  await admin.waitForSelector('#experiment-list');
  assert.match(await admin.locator('#experiment-list').textContent(), /rule:umbrella-when-raining:hero/);
  await admin.click('#experiment-list >> text=rule:umbrella-when-raining:hero');
  await admin.waitForSelector('#experiment-arms');
  assert.match(await admin.locator('#experiment-arms').textContent(), /control/);
  await shot(admin, 'experiments');

  // Recommendations: two back-end orders holding both sneakers make each the other's also-bought.
  for (const n of [1, 2]) {
    const res = await fetch(`${engine.base}/v1/events`, {
      method: 'POST', headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'purchase', visitor_id: randomUUID().replace(/-/g, ''), props: { order: {
        id: `console-order-${n}`, revenue: 164,
        items: [{ id: 'sneaker-trail', qty: 1, price: 89, category: 'shoes' }, { id: 'sneaker-city', qty: 1, price: 75, category: 'shoes' }],
      } } }),
    });
    assert.equal(res.status, 202, await res.text());
  }
  await admin.click('nav >> text=Recommendations');
  await admin.fill('#item', 'sneaker-trail');
  await admin.click('form.search button');
  await admin.waitForSelector('#also-bought');
  assert.match(await admin.locator('section:has(#also-bought) h2').textContent(), /sneaker-trail/);
  await waitFor('sneaker-city bought together with sneaker-trail', async () => {
    await admin.reload();
    return /sneaker-city[\s\S]*bought together in 2 orders/.test(await admin.locator('#also-bought').textContent());
  }, { timeoutMs: 30_000, everyMs: 1000 });
  assert.match(await admin.locator('#model').textContent(), /No model trained yet/);
  await shot(admin, 'recommendations');
  await admin.fill('#visitor', vid);
  await admin.click('text=Show for-you');
  await admin.waitForSelector('#for-you');
  assert.match(await admin.locator('main').textContent(), new RegExp(`For ${vid}`));

  // Phone width: the pages still read (no horizontal scroll of the page itself).
  await admin.setViewportSize({ width: 390, height: 844 });
  await admin.goto(`${engine.base}/console/`);
  assert.ok(await admin.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1));
  await shot(admin, 'overview-phone');
  await admin.goto(`${engine.base}/console/people?q=${vid}`);
  assert.ok(await admin.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1));
  await shot(admin, 'people-phone');
  await admin.setViewportSize({ width: 1280, height: 900 });

  // Erase from the people page: the person is gone.
  admin.once('dialog', (dialog) => dialog.accept());
  await admin.click('text=Erase this person');
  await admin.waitForSelector('h1:text("Erased")');
  assert.match(await admin.locator('main').textContent(), new RegExp(vid));
  await admin.goto(`${engine.base}/console/people?q=${vid}`);
  await admin.waitForSelector('text=No profile for');
  const gone = await fetch(`${engine.base}/v1/profiles/${vid}`, { headers: { Authorization: `Bearer ${API_KEY}` } });
  assert.equal(gone.status, 404);

  assert.deepEqual(outside, [], 'the console made requests outside the engine');
  await shopContext.close();
  await consoleContext.close();
});

test('a rule file edit shows on the rules page within 2 s, refused with its file, line and rule id', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await signIn(page);
  await page.goto(`${engine.base}/console/rules`);
  await page.waitForSelector('#files >> text=demo.yaml');
  const file = join(rulesDir, 'broken.yaml');
  writeFileSync(file, 'rules:\n  - id: typo-rule\n    when: {segmnt: {name: shoe-lovers}}\n    then: {hero: hero-shoes}\n');
  const written = Date.now();
  await page.waitForSelector('#files tr.errors >> text=broken.yaml', { timeout: 2_000 });
  const seenMs = Date.now() - written;
  const row = await page.locator('#files tr.errors').textContent();
  assert.match(row, /broken\.yaml:3/);
  assert.match(row, /typo-rule/);
  assert.match(await page.locator('main').textContent(), /last edit was refused/);
  await shot(page, 'rules-refused');
  rmSync(file);
  await page.waitForSelector('#files tr.errors', { state: 'detached', timeout: 2_000 });
  console.log(`# the refused edit showed after ${seenMs} ms`);
  await context.close();
});
