import test from 'node:test';
import assert from 'node:assert/strict';
import { backoffMs, body, chunk, classify, DONE, DROP, MAX_BACKOFF_MS, RETRY } from '../../src/transport.js';

test('network errors and 5xx are retried, 2xx is done, other 4xx are dropped', () => {
  assert.equal(classify(0), RETRY, 'no answer at all');
  assert.equal(classify(undefined), RETRY);
  for (const status of [500, 502, 503, 504]) assert.equal(classify(status), RETRY, String(status));
  for (const status of [200, 202, 204]) assert.equal(classify(status), DONE, String(status));
  for (const status of [400, 401, 403, 404, 413, 422]) assert.equal(classify(status), DROP, String(status));
  assert.equal(classify(429), RETRY, 'too many requests means later');
  assert.equal(classify(408), RETRY, 'request timeout means later');
});

test('backoff doubles up to a minute, with jitter in the upper half', () => {
  const low = (attempt) => backoffMs(attempt, null, () => 0);
  const high = (attempt) => backoffMs(attempt, null, () => 1);
  assert.deepEqual([1, 2, 3, 4].map(high), [1000, 2000, 4000, 8000]);
  assert.deepEqual([1, 2, 3].map(low), [500, 1000, 2000]);
  assert.equal(high(30), MAX_BACKOFF_MS);
  assert.equal(low(30), MAX_BACKOFF_MS / 2);
});

test('Retry-After (seconds) is the least wait, within five minutes', () => {
  assert.equal(backoffMs(1, '7', () => 1), 7000);
  assert.equal(backoffMs(6, '1', () => 1), 32000, 'our own backoff when it is longer');
  assert.equal(backoffMs(1, '99999', () => 1), 300000);
  assert.equal(backoffMs(1, 'Wed, 21 Oct 2015 07:28:00 GMT', () => 1), 1000, 'dates are ignored');
});

test('chunks stay under 64 KB, keep every event once and in order', () => {
  const events = [];
  for (let n = 0; n < 300; n++) {
    events.push({ event_id: `id-${n}`, type: 'custom:big', props: { text: 'ø'.repeat(500 + (n % 7) * 900) } });
  }
  const chunks = chunk(events);
  assert.ok(chunks.length > 5);
  for (const group of chunks) {
    const bytes = Buffer.byteLength(body(group));
    assert.ok(bytes < 64 * 1024, `a chunk of ${bytes} bytes`);
  }
  assert.deepEqual(chunks.flat().map((e) => e.event_id), events.map((e) => e.event_id));
});

test('chunks hold at most 100 events and a small queue is one chunk', () => {
  const events = Array.from({ length: 250 }, (_, n) => ({ event_id: String(n) }));
  assert.deepEqual(chunk(events).map((c) => c.length), [100, 100, 50]);
  assert.deepEqual(chunk(events.slice(0, 3)).map((c) => c.length), [3]);
  assert.deepEqual(chunk([]), []);
});
