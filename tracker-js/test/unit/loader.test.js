import test from 'node:test';
import assert from 'node:assert/strict';
import { makePage, close, settle } from '../helpers.js';
import { install } from '../../src/loader.js';
import { snippet, HIDE_CSS } from '../../src/snippet.js';

// Runs the copy-paste snippet in the page, as the browser would from <head>.
function runSnippet(win, options) {
  const html = snippet(Object.assign({ src: '/static/clickstream.min.js', endpoint: 'https://cs.example' }, options));
  const code = html.replace(/^<script>\n?/, '').replace(/<\/script>$/, '');
  const script = win.document.createElement('script');
  script.textContent = code;
  win.document.head.appendChild(script);
}

test('the snippet queues calls made before the library arrives, and the library replays them', async () => {
  const page = makePage({ evaluate: true, html: '<div data-clickstream-slot="hero">Default</div>' });
  const { win, clock, fetch } = page;
  runSnippet(win, { options: { pingSeconds: 1e6 } });
  assert.equal(typeof win.clickstream, 'function');
  win.clickstream('track', 'early', { n: 1 });
  win.clickstream('productView', { id: 'p1', category: 'shoes', price: 10 });
  assert.equal(win.clickstream.q.length, 3, 'init + two calls waiting');
  assert.equal(fetch.calls.length, 0, 'nothing sent by the snippet itself');
  const loader = win.document.querySelector('script[src]');
  assert.equal(loader.getAttribute('src'), '/static/clickstream.min.js');
  assert.equal(loader.async, true);
  const style = [...win.document.querySelectorAll('style')].find((s) => s.textContent === HIDE_CSS);
  assert.ok(style, 'the anti-flicker style is in the page');

  let fromCallback = null;
  win.clickstream((tracker) => (fromCallback = tracker.visitorId()));
  install(win, clock.now); // the library arrives
  win.clickstream('track', 'late', { n: 2 });
  await clock.advance(5000);
  const types = fetch.events().map((e) => e.type);
  assert.deepEqual(types, ['page_view', 'custom:early', 'product_view', 'custom:late']);
  assert.equal(fetch.events()[1].props.n, 1);
  assert.equal(fromCallback, fetch.events()[0].visitor_id, 'callbacks get the tracker');
  assert.ok(fetch.calls.some((c) => c.url === 'https://cs.example/v1/decide'), 'init came first: the endpoint was used');
  assert.equal(win.clickstream('init', {}), win.clickstream('init', {}), 'a second init is a no-op');
  await close(page);
});

test('the snippet\'s own timer shows the slots after 300 ms even if the library never loads', async () => {
  const page = makePage({ evaluate: true });
  runSnippet(page.win, { hideMs: 300 });
  const hidden = () => [...page.win.document.querySelectorAll('style')].some((s) => s.textContent === HIDE_CSS);
  assert.ok(hidden());
  await page.clock.advance(299);
  assert.ok(hidden());
  await page.clock.advance(1);
  assert.ok(!hidden(), 'style removed');
  await close(page);
});

test('calls before init wait for it; a library included twice keeps the first', async () => {
  const page = makePage({});
  const { win, clock, fetch } = page;
  const queue = [];
  win.clickstream = function () { queue.push(arguments); };
  win.clickstream.q = queue;
  win.clickstream('track', 'first');
  const api = install(win, clock.now);
  win.clickstream('track', 'second');
  assert.equal(fetch.calls.length, 0, 'no init yet: nothing happens');
  win.clickstream('init', { endpoint: 'https://cs.example', autoPageView: false, pingSeconds: 1e6 });
  assert.equal(install(win, clock.now), api);
  await clock.advance(5000);
  assert.deepEqual(fetch.events().map((e) => e.type), ['custom:first', 'custom:second']);
  await settle();
  await close(page);
});
