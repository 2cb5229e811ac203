import test from 'node:test';
import assert from 'node:assert/strict';
import { fakeFetch, trackedPage, close } from '../helpers.js';
import { deviceType, READY_ATTR } from '../../src/personalize.js';

const SLOTS = `
  <div id="hero" data-clickstream-slot="hero"><h2>Default hero</h2></div>
  <div id="promo" data-clickstream-slot="promo"><p>Default promo</p></div>`;

const DECISIONS = {
  hero: {
    content: '<h2>Welcome, Ann &amp; co! {not_a_token} &lt;b&gt;</h2><a id="cta" href="/sale">Shop</a>',
    variant: 'hero-welcome', content_id: 'hero-welcome', source: 'default', reason: 'default content', decision_id: 'd-hero',
  },
  promo: { content: null, variant: null, source: 'default', reason: 'no such slot in the catalog', decision_id: 'd-promo' },
};

// A fetch whose decide answer waits until release() (or answers at once).
function decideFetch({ decisions = DECISIONS, status = 200, hold = false } = {}) {
  let release = () => {};
  const fetch = fakeFetch((request) => {
    if (!request.url.endsWith('/v1/decide')) return { status: 202, body: { accepted: 1, rejected: [] } };
    const answer = { status, body: status === 200 ? { visitor_id: 'v', decisions } : { error: 'internal error' } };
    return hold ? new Promise((resolve) => (release = () => resolve(answer))) : answer;
  });
  fetch.release = () => release();
  return fetch;
}

const quiet = { pingSeconds: 1e6 };

test('decide fills the slots with the server\'s content as it is (no templating here)', async () => {
  const fetch = decideFetch();
  const page = trackedPage(quiet, { html: SLOTS, fetch, url: 'https://shop.example/p/1' });
  await page.clock.advance(0);
  const doc = page.win.document;
  const hero = doc.getElementById('hero');
  assert.equal(hero.querySelector('h2').textContent, 'Welcome, Ann & co! {not_a_token} <b>', 'escaped by the server, inserted as HTML');
  assert.equal(hero.querySelector('b'), null, 'escaped markup stays text');
  assert.equal(doc.getElementById('promo').innerHTML, '<p>Default promo</p>', 'no content: the default stays');
  assert.ok(hero.hasAttribute(READY_ATTR) && doc.getElementById('promo').hasAttribute(READY_ATTR), 'both revealed');

  const request = fetch.calls.find((c) => c.url === 'https://cs.example/v1/decide');
  assert.equal(request.init.credentials, 'include');
  assert.deepEqual(request.body.slots, ['hero', 'promo']);
  assert.equal(request.body.visitor_id, page.tracker.visitorId());
  assert.equal(request.body.user_id, undefined, 'the server takes the person from the cookie');
  const ctx = request.body.context;
  assert.equal(ctx.url, 'https://shop.example/p/1');
  assert.match(ctx.local_time, /^\d\d:\d\d$/);
  assert.ok(['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'].includes(ctx.day_of_week));
  assert.ok(['mobile', 'tablet', 'desktop'].includes(ctx.device));
  assert.equal(typeof ctx.language, 'string');
  assert.equal(typeof ctx.timezone, 'string');
  await close(page);
});

test('an impression when shown and a content_click on clicks inside the slot', async () => {
  const page = trackedPage(quiet, { html: SLOTS, fetch: decideFetch() });
  await page.clock.advance(0);
  const cta = page.win.document.getElementById('cta');
  cta.addEventListener('click', (e) => e.preventDefault());
  cta.click();
  page.win.document.querySelector('#promo p').click(); // default content: no decision to credit
  await page.clock.advance(5000);
  const props = { slot: 'hero', content: 'hero-welcome', variant: 'hero-welcome', decision_id: 'd-hero' };
  const events = page.fetch.events();
  assert.deepEqual(events.filter((e) => e.type === 'impression').map((e) => e.props), [props]);
  assert.deepEqual(events.filter((e) => e.type === 'content_click').map((e) => e.props), [props]);
  await close(page);
});

test('with IntersectionObserver the impression waits until the slot is on screen', async () => {
  const observers = [];
  class FakeObserver {
    constructor(callback) {
      this.callback = callback;
      observers.push(this);
    }
    observe(el) { this.el = el; }
    disconnect() { this.gone = true; }
  }
  const page = trackedPage(quiet, { html: SLOTS, fetch: decideFetch(), intersection: FakeObserver });
  await page.clock.advance(5000);
  assert.equal(page.fetch.events().filter((e) => e.type === 'impression').length, 0);
  assert.equal(observers.length, 1);
  observers[0].callback([{ isIntersecting: false }]);
  observers[0].callback([{ isIntersecting: true }]);
  await page.clock.advance(5000);
  assert.equal(page.fetch.events().filter((e) => e.type === 'impression').length, 1);
  assert.ok(observers[0].gone, 'one impression per decision');
  await close(page);
});

test('anti-flicker: after 300 ms the defaults show, and a late answer is not applied', async () => {
  const fetch = decideFetch({ hold: true });
  const page = trackedPage(quiet, { html: SLOTS, fetch });
  const hero = page.win.document.getElementById('hero');
  await page.clock.advance(299);
  assert.equal(hero.hasAttribute(READY_ATTR), false, 'hidden while waiting');
  await page.clock.advance(1);
  assert.equal(hero.hasAttribute(READY_ATTR), true, 'shown at 300 ms');
  fetch.release();
  await page.clock.advance(5000);
  assert.equal(hero.innerHTML, '<h2>Default hero</h2>', 'no flicker to new content');
  assert.equal(page.fetch.events().filter((e) => e.type === 'impression').length, 0);
  await close(page);
});

test('anti-flicker is configurable and counts from when the snippet hid the slots', async () => {
  const fetch = decideFetch({ hold: true });
  const page = trackedPage(Object.assign({ antiFlickerMs: 1000 }, quiet), { html: SLOTS, fetch });
  await page.clock.advance(999);
  fetch.release();
  await page.clock.advance(0);
  assert.match(page.win.document.getElementById('hero').innerHTML, /Welcome, Ann/);

  const late = trackedPage(Object.assign({ startedAt: Date.UTC(2026, 0, 15, 11, 59, 59) }, quiet), { html: SLOTS, fetch: decideFetch() });
  await late.clock.advance(0);
  assert.equal(late.fetch.calls.filter((c) => c.url.endsWith('/v1/decide')).length, 0, 'too late: not even asked');
  assert.ok(late.win.document.getElementById('hero').hasAttribute(READY_ATTR));
  await close(page, late);
});

test('on an error the defaults show at once', async () => {
  const page = trackedPage(quiet, { html: SLOTS, fetch: decideFetch({ status: 500 }) });
  await page.clock.advance(0);
  const hero = page.win.document.getElementById('hero');
  assert.ok(hero.hasAttribute(READY_ATTR));
  assert.equal(hero.innerHTML, '<h2>Default hero</h2>');
  await close(page);
});

test('without personalization consent (here: DNT) decide does not call the server', async () => {
  const page = trackedPage(quiet, { html: SLOTS, fetch: decideFetch(), navigator: { doNotTrack: '1' } });
  const decisions = await page.tracker.decide(['hero']);
  assert.deepEqual(decisions, {});
  assert.equal(page.fetch.calls.length, 0);
  assert.ok(page.win.document.getElementById('hero').hasAttribute(READY_ATTR));
  await close(page);
});

test('decide passes site context (weather, country) from config and call', async () => {
  const fetch = decideFetch();
  const page = trackedPage(Object.assign({ autoDecide: false, context: () => ({ weather: 'rain', nested: { no: 1 } }) }, quiet), { html: SLOTS, fetch });
  const decisions = await page.tracker.decide(['hero'], { context: { country: 'NO', city: 'x'.repeat(600) } });
  assert.equal(decisions.hero.variant, 'hero-welcome');
  const { context, slots } = fetch.calls.find((c) => c.url.endsWith('/v1/decide')).body;
  assert.deepEqual(slots, ['hero']);
  assert.equal(context.weather, 'rain');
  assert.equal(context.country, 'NO');
  assert.equal(context.city.length, 512, 'cut to what the server accepts');
  assert.equal(context.nested, undefined, 'flat values only');
  await close(page);
});

test('setPreference PUTs to the visitor\'s own profile; recommendations follow the contract', async () => {
  const fetch = fakeFetch((request) => ({ status: 200, body: { ok: true, url: request.url } }));
  const page = trackedPage(Object.assign({ autoPageView: false }, quiet), { fetch });
  const vid = page.tracker.visitorId();
  await page.tracker.setPreference('hide', ['shoes']);
  await page.tracker.setPreference({ do_not_personalize: true });
  await page.tracker.recommendations('also-bought', { item: 'p1', k: 4 });
  await page.tracker.recommendations('for-you', { k: 3 });
  const [put1, put2, also, forYou] = fetch.calls;
  assert.equal(put1.method, 'PUT');
  assert.equal(put1.url, `https://cs.example/v1/profiles/${vid}/preferences`);
  assert.equal(put1.init.credentials, 'include');
  assert.deepEqual(put1.body, { hide: ['shoes'] });
  assert.deepEqual(put2.body, { do_not_personalize: true });
  assert.equal(also.url, `https://cs.example/v1/recommendations/also-bought?k=4&item=p1&visitor_id=${vid}`);
  assert.equal(forYou.url, `https://cs.example/v1/recommendations/for-you?k=3&visitor_id=${vid}`);
  await close(page);
});

test('HTTP errors of the API calls reject with the server\'s message', async () => {
  const fetch = fakeFetch(() => ({ status: 400, body: { error: 'hide: expected a list of up to 50 topic names', detail: null } }));
  const page = trackedPage(Object.assign({ autoPageView: false }, quiet), { fetch });
  await assert.rejects(page.tracker.setPreference('hide', 'shoes'), (err) => err.status === 400 && /hide: expected/.test(err.message));
  await close(page);
});

test('device type from the user agent', () => {
  assert.equal(deviceType('Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148'), 'mobile');
  assert.equal(deviceType('Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile Safari/537.36'), 'mobile');
  assert.equal(deviceType('Mozilla/5.0 (Linux; Android 13; SM-X200) Safari/537.36'), 'tablet');
  assert.equal(deviceType('Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X)'), 'tablet');
  assert.equal(deviceType('Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15', 5), 'tablet');
  assert.equal(deviceType('Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36', 0), 'desktop');
});
