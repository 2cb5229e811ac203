import test from 'node:test';
import assert from 'node:assert/strict';
import { fakeFetch, trackedPage, close, fire, storageSnapshot, makePage, FakeClock } from '../helpers.js';
import { createTracker } from '../../src/tracker.js';

const quiet = { autoPageView: false, pingSeconds: 1e6 }; // only the events a test makes

test('a batch goes out at 10 events, at once', async () => {
  const page = trackedPage(quiet);
  for (let n = 0; n < 9; n++) page.tracker.track('n', { n });
  await page.clock.advance(0);
  assert.equal(page.fetch.eventPosts().length, 0, '9 events wait');
  page.tracker.track('n', { n: 9 });
  await page.clock.advance(0);
  const posts = page.fetch.eventPosts();
  assert.equal(posts.length, 1);
  assert.equal(posts[0].url, 'https://cs.example/v1/events');
  assert.equal(posts[0].init.method, 'POST');
  assert.equal(posts[0].init.credentials, 'include');
  assert.deepEqual(posts[0].body.events.map((e) => e.props.n), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  await close(page);
});

test('fewer than 10 events go out after 5 seconds', async () => {
  const page = trackedPage(quiet);
  page.tracker.track('one');
  await page.clock.advance(4900);
  assert.equal(page.fetch.eventPosts().length, 0);
  await page.clock.advance(100);
  assert.equal(page.fetch.eventPosts().length, 1);
  assert.equal(storageSnapshot(page.win)['clickstream_q:' + 'x'], undefined);
  assert.ok(!Object.keys(storageSnapshot(page.win)).some((k) => k.startsWith('clickstream_q:')), 'sent: the queue is empty');
  await close(page);
});

test('every event has the contract fields and a uuid4 event_id', async () => {
  const page = trackedPage({ pingSeconds: 1e6 }, { url: 'https://shop.example/p/7?x=1', title: 'Red shoes' });
  const { tracker, clock, fetch } = page;
  tracker.productView({ id: 'p7', category: 'shoes', price: 59 });
  tracker.addToCart({ id: 'p7', price: 59 }, 2);
  tracker.removeFromCart({ id: 'p7' });
  tracker.purchase({ id: 'o1', revenue: 59, items: [{ id: 'p7', qty: 1, price: 59 }] });
  tracker.identify('u-1', { first_name: 'Ann' });
  tracker.track('newsletter signup', { list: 'weekly' });
  await clock.advance(5000);
  const events = fetch.events();
  assert.deepEqual(events.map((e) => e.type), ['page_view', 'product_view', 'add_to_cart', 'remove_from_cart',
    'purchase', 'identify', 'custom:newsletter_signup']);
  const uuid4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  for (const e of events) {
    assert.match(e.event_id, uuid4);
    assert.match(e.visitor_id, /^[0-9a-f]{32}$/);
    assert.equal(typeof e.session_id, 'string');
    assert.equal(e.ts, clock.t - 5000);
    assert.equal(e.url, 'https://shop.example/p/7?x=1');
  }
  assert.equal(new Set(events.map((e) => e.event_id)).size, events.length);
  assert.equal(events[0].title, 'Red shoes');
  assert.deepEqual(events[1].props, { product: { id: 'p7', category: 'shoes', price: 59 } });
  assert.deepEqual(events[2].props, { product: { id: 'p7', price: 59 }, qty: 2 });
  assert.deepEqual(events[4].props.order.items, [{ id: 'p7', qty: 1, price: 59 }]);
  assert.deepEqual(events[5].props, { traits: { first_name: 'Ann' } });
  assert.equal(events[4].user_id, undefined, 'before identify: anonymous');
  assert.equal(events[5].user_id, 'u-1');
  assert.equal(events[6].user_id, 'u-1');
  assert.match(page.win.document.cookie, new RegExp(`clickstream_vid=${events[0].visitor_id}`));
  await close(page);
});

test('identify with the back end\'s userHash sends props.user_hash; without it, none', async () => {
  const page = trackedPage(quiet);
  const hash = 'a3f1'.repeat(16); // hex HMAC-SHA256, as the shop renders it into the page
  page.tracker.identify('u-1', { first_name: 'Ann' }, { userHash: hash });
  page.tracker.identify('u-2', { first_name: 'Bob' });
  page.tracker.identify('u-3', null, {});
  page.tracker.track('after');
  await page.clock.advance(5000);
  const events = page.fetch.events();
  assert.deepEqual(events.map((e) => e.type), ['identify', 'identify', 'identify', 'custom:after']);
  assert.deepEqual(events[0].props, { traits: { first_name: 'Ann' }, user_hash: hash });
  assert.equal(events[0].user_id, 'u-1');
  assert.deepEqual(events[1].props, { traits: { first_name: 'Bob' } }, 'no third argument: no user_hash');
  assert.deepEqual(events[2].props, { traits: {} }, 'no userHash in it: none either');
  assert.deepEqual(events[3].props, {}, 'only identify carries it');
  await close(page);
});

test('the collector\'s cookie, when already set, is the visitor id', async () => {
  const page = trackedPage({}, { cookies: 'clickstream_vid=fromthecollector123' });
  await page.clock.advance(5000);
  assert.equal(page.fetch.events()[0].visitor_id, 'fromthecollector123');
  await close(page);
});

test('5xx and network errors are retried with backoff, with the same event ids', async () => {
  const answers = [
    { status: 503, headers: { 'Retry-After': '3' }, body: { error: 'broker unavailable' } },
    new TypeError('Failed to fetch'),
    { status: 500, body: { error: 'internal error' } },
  ];
  const fetch = fakeFetch(() => answers.shift() || { status: 202, body: { accepted: 3, rejected: [] } });
  const page = trackedPage(quiet, { fetch });
  page.tracker.track('a');
  page.tracker.track('b');
  page.tracker.track('c');
  await page.clock.advance(5000);
  assert.equal(fetch.eventPosts().length, 1);
  await page.clock.advance(2999);
  assert.equal(fetch.eventPosts().length, 1, 'Retry-After: 3 is respected');
  await page.clock.advance(1);
  assert.equal(fetch.eventPosts().length, 2);
  await page.clock.advance(10 * 60 * 1000);
  const posts = fetch.eventPosts();
  assert.equal(posts.length, 4, 'stops once delivered');
  const ids = posts.map((p) => p.body.events.map((e) => e.event_id).join());
  assert.equal(new Set(ids).size, 1, 'every retry carries the same event ids');
  assert.ok(!Object.keys(storageSnapshot(page.win)).some((k) => k.startsWith('clickstream_q:')));
  await close(page);
});

test('4xx is not retried: the batch is dropped', async () => {
  const fetch = fakeFetch(() => ({ status: 400, body: { error: 'events[0].type: unknown event type' } }));
  const page = trackedPage(quiet, { fetch });
  page.tracker.track('bad');
  await page.clock.advance(5000);
  await page.clock.advance(10 * 60 * 1000);
  assert.equal(fetch.eventPosts().length, 1);
  page.tracker.track('next');
  await page.clock.advance(5000);
  assert.equal(fetch.eventPosts().length, 2, 'the next batch is not blocked');
  assert.deepEqual(fetch.eventPosts()[1].body.events.map((e) => e.type), ['custom:next']);
  await close(page);
});

test('offline: nothing is tried until the browser is online again, then the queue goes out', async () => {
  const page = trackedPage(quiet);
  const { win, tracker, clock, fetch } = page;
  win.navigator.onLine = false;
  for (let n = 0; n < 12; n++) tracker.track('offline', { n });
  await clock.advance(60_000);
  assert.equal(fetch.eventPosts().length, 0);
  win.navigator.onLine = true;
  win.dispatchEvent(new win.Event('online'));
  await clock.advance(0);
  assert.equal(fetch.events().length, 12);
  await close(page);
});

test('the queue survives a reload and the next page sends it', async () => {
  const fetch = fakeFetch(() => new TypeError('offline'));
  const first = trackedPage(quiet, { fetch });
  first.win.navigator.sendBeacon = () => false; // and no beacon either
  first.win.navigator.onLine = false;
  first.tracker.track('before-reload');
  fire(first.win, first.win, 'pagehide');
  const saved = storageSnapshot(first.win);
  const vid = first.tracker.visitorId();
  await close(first);
  const second = trackedPage(quiet, { storage: saved, cookies: `clickstream_vid=${vid}` });
  second.tracker.track('after-reload');
  await second.clock.advance(5000);
  assert.deepEqual(second.fetch.events().map((e) => e.type), ['custom:before-reload', 'custom:after-reload']);
  await close(second);
});

test('pagehide hands the queue to sendBeacon in chunks under 64 KB', async () => {
  const page = trackedPage(quiet, { fetch: fakeFetch(() => new TypeError('down')) }); // so events stay queued
  for (let n = 0; n < 40; n++) page.tracker.track('big', { n, text: 'x'.repeat(9000) });
  await page.clock.advance(0);
  fire(page.win, page.win, 'pagehide');
  assert.ok(page.beacons.length >= 6, `beacons: ${page.beacons.length}`);
  for (const beacon of page.beacons) {
    assert.ok(beacon.bytes < 64 * 1024, `a beacon of ${beacon.bytes} bytes`);
    assert.equal(beacon.url, 'https://cs.example/v1/events');
  }
  const sent = page.beacons.flatMap((b) => b.body.events.map((e) => e.props.n));
  assert.deepEqual(sent, [...Array(40).keys()], 'every event once, in order');
  assert.ok(!Object.keys(storageSnapshot(page.win)).some((k) => k.startsWith('clickstream_q:')), 'handed over: not queued');
  await close(page);
});

test('a hidden tab flushes with sendBeacon too, and the engaged time goes with it', async () => {
  const page = trackedPage({ autoPageView: false });
  page.win.dispatchEvent(new page.win.Event('scroll'));
  await page.clock.advance(3000);
  Object.defineProperty(page.win.document, 'visibilityState', { value: 'hidden', configurable: true });
  fire(page.win, page.win.document, 'visibilitychange');
  const events = page.beacons.flatMap((b) => b.body.events);
  assert.deepEqual(events.map((e) => e.type), ['page_ping']);
  assert.ok(events[0].props.engaged_ms >= 3000, `engaged ${events[0].props.engaged_ms}`);
  await close(page);
});

test('when sendBeacon refuses, fetch with keepalive carries the events', async () => {
  const page = trackedPage(quiet);
  page.win.navigator.sendBeacon = () => false;
  page.tracker.track('leaving');
  fire(page.win, page.win, 'pagehide');
  await page.clock.advance(0);
  const [post] = page.fetch.eventPosts();
  assert.equal(post.init.keepalive, true);
  assert.equal(post.init.credentials, 'include');
  assert.deepEqual(post.body.events.map((e) => e.type), ['custom:leaving']);
  await close(page);
});

test('outbound links send link_click; links on the same site do not', async () => {
  const html = '<a id="out" href="https://elsewhere.example/x">Partner <b id="inner">shop</b></a><a id="in" href="/cart">Cart</a>';
  const page = trackedPage(quiet, { html });
  const doc = page.win.document;
  for (const id of ['inner', 'in']) {
    const el = doc.getElementById(id);
    el.closest('a').addEventListener('click', (e) => e.preventDefault());
    el.click();
  }
  await page.clock.advance(5000);
  const clicks = page.fetch.events().filter((e) => e.type === 'link_click');
  assert.equal(clicks.length, 1);
  assert.deepEqual(clicks[0].props, { href: 'https://elsewhere.example/x', text: 'Partner shop' });
  await close(page);
});

test('single-page apps: history changes send page_view with the previous page as referrer', async () => {
  const page = trackedPage({}, { url: 'https://shop.example/' });
  const { win, clock, fetch } = page;
  win.history.pushState({}, '', '/products/1');
  await clock.advance(0);
  win.history.replaceState({}, '', '/products/1#reviews'); // same page
  await clock.advance(0);
  win.history.pushState({}, '', '/cart?step=2');
  await clock.advance(5000);
  const views = fetch.events().filter((e) => e.type === 'page_view');
  assert.deepEqual(views.map((v) => v.url), ['https://shop.example/', 'https://shop.example/products/1', 'https://shop.example/cart?step=2']);
  assert.equal(views[2].referrer, 'https://shop.example/products/1');
  await close(page);
});

test('two trackers never share a queue key (one per page load)', async () => {
  const clock = new FakeClock();
  const page = makePage({ clock });
  const a = createTracker(page.win, { endpoint: 'https://cs.example', autoPageView: false }, clock.now);
  const b = createTracker(page.win, { endpoint: 'https://cs.example', autoPageView: false }, clock.now);
  page.win.navigator.onLine = false;
  a.track('a');
  b.track('b');
  const keys = Object.keys(storageSnapshot(page.win)).filter((k) => k.startsWith('clickstream_q:'));
  assert.equal(keys.length, 2);
  await close(page);
});
