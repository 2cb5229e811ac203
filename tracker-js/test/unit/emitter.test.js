// The emitter with fakes: a fake clock and timers, a scripted fetch, a recording
// sendBeacon and an outbox in memory. No window, no DOM.

import test from 'node:test';
import assert from 'node:assert/strict';
import { newEmitter } from '../../src/emitter.js';
import { Outbox, QUEUE_PREFIX } from '../../src/queue.js';
import { safeStorage } from '../../src/util.js';
import { FakeClock, fakeFetch, settle } from '../fakes.js';

const URL = 'https://cs.example/v1/events';

// An emitter and its fakes; options override the defaults (batches of 10 or 5 s).
function setup(options = {}) {
  const time = new FakeClock(); // its now() is the clock, and it holds the timers
  const storage = safeStorage({}); // no localStorage: the in-memory fallback
  const outbox = new Outbox(storage, 'tab', { now: time.now });
  const beacons = [];
  const sendBeacon = (url, data) => {
    beacons.push({ url, body: JSON.parse(data), bytes: Buffer.byteLength(data) });
    return true;
  };
  const parts = Object.assign({ url: URL, fetch: fakeFetch(), sendBeacon, outbox, clock: time.now, timers: time,
    canSend: () => true, batchSize: 10, batchMs: 5000, random: () => 1 }, options);
  return Object.assign({ emitter: newEmitter(parts), time, storage, beacons }, parts);
}

let seq = 0;
const event = (props = {}) => ({ event_id: `e${++seq}`, type: 'custom:x', ts: seq, props });
const sentIds = (fetch) => fetch.eventPosts().map((p) => p.body.events.map((e) => e.event_id));

test('a full batch goes at once, a smaller one after batchMs', async () => {
  const { emitter, fetch, time, outbox } = setup();
  for (let n = 0; n < 9; n++) emitter.add(event());
  await time.advance(0);
  assert.equal(fetch.eventPosts().length, 0, '9 of 10: waiting');
  emitter.add(event());
  await time.advance(0);
  const [post] = fetch.eventPosts();
  assert.equal(post.url, URL);
  assert.equal(post.init.method, 'POST');
  assert.equal(post.init.credentials, 'include');
  assert.equal(post.init.keepalive, false);
  assert.equal(post.body.events.length, 10);
  assert.equal(outbox.size, 0, 'delivered: out of the outbox');

  emitter.add(event());
  await time.advance(4999);
  assert.equal(fetch.eventPosts().length, 1);
  await time.advance(1);
  assert.equal(fetch.eventPosts().length, 2);
  assert.equal(time.timers.size, 0, 'nothing left to do: no timer');
});

test('more events than one batch while sending: the rest follow at once', async () => {
  const { emitter, fetch, time } = setup();
  for (let n = 0; n < 25; n++) emitter.add(event());
  await time.advance(0);
  assert.deepEqual(fetch.eventPosts().map((p) => p.body.events.length), [10, 15],
    'the first round sends what was there; the next one the rest');
});

test('5xx and network errors are retried with backoff and the same ids; Retry-After is the least wait', async () => {
  const answers = [
    { status: 503, headers: { 'Retry-After': '3' } },
    new TypeError('Failed to fetch'),
    { status: 500 },
    { status: 502 },
  ];
  const fetch = fakeFetch(() => answers.shift() || { status: 202 });
  const { emitter, time, outbox } = setup({ fetch });
  emitter.add(event());
  emitter.add(event());
  await time.advance(5000);
  assert.equal(fetch.eventPosts().length, 1);
  await time.advance(2999);
  assert.equal(fetch.eventPosts().length, 1, 'Retry-After: 3 s');
  await time.advance(1);
  assert.equal(fetch.eventPosts().length, 2);
  await time.advance(1999);
  assert.equal(fetch.eventPosts().length, 2, 'second failure: 2 s (random = 1)');
  await time.advance(1);
  assert.equal(fetch.eventPosts().length, 3);
  await time.advance(4000);
  assert.equal(fetch.eventPosts().length, 4, 'third: 4 s');
  await time.advance(8000);
  assert.equal(fetch.eventPosts().length, 5, 'fourth: 8 s, then delivered');
  await time.advance(10 * 60 * 1000);
  assert.equal(fetch.eventPosts().length, 5, 'stops once delivered');
  assert.equal(new Set(sentIds(fetch).map(String)).size, 1, 'every retry carries the same event ids');
  assert.equal(outbox.size, 0);
});

test('while waiting to retry, new events and flush() wait too', async () => {
  const answers = [{ status: 500 }];
  const fetch = fakeFetch(() => answers.shift() || { status: 202 });
  const { emitter, time } = setup({ fetch, batchSize: 2 });
  emitter.add(event());
  emitter.add(event());
  await time.advance(0);
  assert.equal(fetch.eventPosts().length, 1);
  emitter.add(event());
  emitter.add(event());
  await emitter.flush();
  await time.advance(999);
  assert.equal(fetch.eventPosts().length, 1, 'the backoff (1 s) holds');
  await time.advance(1);
  assert.deepEqual(fetch.eventPosts().map((p) => p.body.events.length), [2, 4], 'then everything in one round');
});

test('after a success the backoff starts again from 1 s', async () => {
  const answers = [{ status: 500 }, { status: 500 }, { status: 202 }, { status: 500 }];
  const fetch = fakeFetch(() => answers.shift() || { status: 202 });
  const { emitter, time } = setup({ fetch, batchSize: 1 });
  emitter.add(event());
  await time.advance(0); // fails: 1 s
  await time.advance(1000); // fails: 2 s
  await time.advance(2000); // delivered
  assert.equal(fetch.eventPosts().length, 3);
  emitter.add(event());
  await time.advance(0); // fails: 1 s again, not 4 s
  await time.advance(1000);
  assert.equal(fetch.eventPosts().length, 5);
});

test('a 4xx other than 408 and 429 is dropped, not retried; 408 and 429 are retried', async () => {
  for (const [status, posts] of [[400, 1], [413, 1], [422, 1], [408, 2], [429, 2]]) {
    const answers = [{ status }];
    const fetch = fakeFetch(() => answers.shift() || { status: 202 });
    const { emitter, time, outbox } = setup({ fetch, batchSize: 1 });
    emitter.add(event());
    await time.advance(10 * 60 * 1000);
    assert.equal(fetch.eventPosts().length, posts, `${status}`);
    assert.equal(outbox.size, 0, `${status}: out of the outbox either way`);
  }
});

test('while canSend() is false nothing is tried; resume() sends at once, whatever the backoff said', async () => {
  let online = true;
  const answers = [new TypeError('offline')];
  const fetch = fakeFetch(() => answers.shift() || { status: 202 });
  const { emitter, time, outbox } = setup({ fetch, canSend: () => online });
  emitter.add(event());
  await time.advance(5000); // fails: backoff of 1 s
  online = false;
  for (let n = 0; n < 12; n++) emitter.add(event());
  await time.advance(60_000);
  emitter.leave(true);
  assert.equal(fetch.eventPosts().length, 1, 'offline: not even tried');
  assert.equal(outbox.size, 13, 'kept');
  online = true;
  emitter.resume();
  await settle();
  assert.equal(fetch.eventPosts().length, 2);
  assert.equal(fetch.eventPosts()[1].body.events.length, 13);
  assert.equal(outbox.size, 0);
});

test('leave hands the queue to sendBeacon in chunks under 64 KB, every event once and in order', async () => {
  const { emitter, beacons, outbox, storage, fetch } = setup({ canSend: () => true });
  for (let n = 0; n < 40; n++) outbox.push(event({ n, text: 'x'.repeat(9000) }));
  emitter.leave(false);
  assert.ok(beacons.length >= 6, `beacons: ${beacons.length}`);
  for (const beacon of beacons) {
    assert.ok(beacon.bytes < 64 * 1024, `a beacon of ${beacon.bytes} bytes`);
    assert.equal(beacon.url, URL);
  }
  assert.deepEqual(beacons.flatMap((b) => b.body.events.map((e) => e.props.n)), [...Array(40).keys()]);
  assert.equal(outbox.size, 0, 'handed over: not queued');
  assert.equal(storage.get(QUEUE_PREFIX + 'tab'), null);
  assert.equal(fetch.calls.length, 0);
});

test('where sendBeacon refuses, throws or is missing, fetch with keepalive carries the chunk', async () => {
  const refusals = [() => false, () => { throw new TypeError('not allowed'); }, undefined];
  for (const sendBeacon of refusals) {
    const { emitter, outbox, fetch, time } = setup({ sendBeacon });
    outbox.push(event());
    emitter.leave(false);
    await time.advance(0);
    const [post] = fetch.eventPosts();
    assert.equal(post.init.keepalive, true);
    assert.equal(post.init.credentials, 'include');
    assert.equal(post.body.events.length, 1);
    assert.equal(outbox.size, 0, 'answered: out of the outbox');
  }
});

test('a keepalive fetch that fails keeps its events; closing marks the queue for the next page', async () => {
  const fetch = fakeFetch(() => new TypeError('down'));
  const { emitter, outbox, storage, time } = setup({ fetch, sendBeacon: () => false });
  outbox.push(event());
  outbox.push(event());
  emitter.leave(true);
  await time.advance(0);
  assert.equal(outbox.size, 2, 'kept for a retry');
  const saved = storage.json(QUEUE_PREFIX + 'tab');
  assert.equal(saved.t, 0, 'closing: any tab may adopt it at once');
  assert.equal(saved.e.length, 2);
});

test('post sends any events once and tells what became of them', async () => {
  const answers = [{ status: 202 }, { status: 400 }, { status: 503, headers: { 'Retry-After': '9' } }, new TypeError('x')];
  const fetch = fakeFetch(() => answers.shift());
  const { emitter, outbox } = setup({ fetch });
  const outcomes = [];
  for (let n = 0; n < 4; n++) outcomes.push(await emitter.post([event()], n === 0));
  assert.deepEqual(outcomes, [
    { verdict: 'done', retryAfter: null },
    { verdict: 'drop', retryAfter: null },
    { verdict: 'retry', retryAfter: '9' },
    { verdict: 'retry' },
  ]);
  assert.equal(fetch.eventPosts()[0].init.keepalive, true);
  assert.equal(outbox.size, 0, 'the outbox is not involved');
});
