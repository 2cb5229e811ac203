import test from 'node:test';
import assert from 'node:assert/strict';
import { Outbox, QUEUE_PREFIX, STALE_MS } from '../../src/queue.js';
import { safeStorage } from '../../src/util.js';

// A localStorage with a quota, shared by the "tabs" of one test.
function sharedLocalStorage(quotaChars = Infinity) {
  const map = new Map();
  const used = () => [...map].reduce((n, [k, v]) => n + k.length + v.length, 0);
  return {
    map,
    getItem: (k) => (map.has(k) ? map.get(k) : null),
    setItem(k, v) {
      const before = map.get(k);
      map.set(k, String(v));
      if (used() > quotaChars) {
        if (before === undefined) map.delete(k);
        else map.set(k, before);
        throw new Error('QuotaExceededError');
      }
    },
    removeItem: (k) => map.delete(k),
    key: (i) => [...map.keys()][i] ?? null,
    get length() {
      return map.size;
    },
  };
}

const event = (n, ts = 1000 + n) => ({ event_id: `e${n}`, type: 'page_view', ts, props: {} });

test('the outbox keeps at most 1,000 events and drops the oldest first', () => {
  const storage = safeStorage({ localStorage: sharedLocalStorage() });
  const box = new Outbox(storage, 'tab1');
  for (let n = 0; n < 1005; n++) box.push(event(n));
  assert.equal(box.size, 1000);
  assert.equal(box.events[0].event_id, 'e5');
  assert.equal(box.events.at(-1).event_id, 'e1004');
  const saved = storage.json(QUEUE_PREFIX + 'tab1');
  assert.equal(saved.e.length, 1000, 'the stored copy is bounded too');
});

test('a reload finds the events of the closed page and takes them over', () => {
  const ls = sharedLocalStorage();
  let now = 50_000;
  const before = new Outbox(safeStorage({ localStorage: ls }), 'old', { now: () => now });
  for (let n = 0; n < 5; n++) before.push(event(n));
  before.remove(['e0']);
  before.save(true); // pagehide
  const after = new Outbox(safeStorage({ localStorage: ls }), 'new', { now: () => now });
  assert.equal(after.adopt(null), 4);
  assert.deepEqual(after.events.map((e) => e.event_id), ['e1', 'e2', 'e3', 'e4']);
  assert.equal(ls.getItem(QUEUE_PREFIX + 'old'), null, 'the old key is gone');
  assert.ok(ls.getItem(QUEUE_PREFIX + 'new'), 'and the events are persisted under the new tab');
});

test('tabs never write each other\'s keys, and a live tab keeps its queue', () => {
  const ls = sharedLocalStorage();
  let now = 100_000;
  const a = new Outbox(safeStorage({ localStorage: ls }), 'a', { now: () => now });
  const b = new Outbox(safeStorage({ localStorage: ls }), 'b', { now: () => now });
  a.push(event(1));
  b.push(event(2));
  a.push(event(3));
  assert.deepEqual(JSON.parse(ls.getItem(QUEUE_PREFIX + 'a')).e.map((e) => e.event_id), ['e1', 'e3']);
  assert.deepEqual(JSON.parse(ls.getItem(QUEUE_PREFIX + 'b')).e.map((e) => e.event_id), ['e2']);
  now += STALE_MS - 1;
  assert.equal(b.adopt(null), 0, 'recently touched: alive');
  now += 2;
  assert.equal(b.adopt(null), 2, 'untouched for 10 minutes: adopted (without Web Locks)');
  assert.deepEqual(b.events.map((e) => e.event_id), ['e1', 'e2', 'e3'], 'merged in time order');
});

test('with Web Locks a queue is adopted exactly when its tab no longer holds its lock', () => {
  const ls = sharedLocalStorage();
  const a = new Outbox(safeStorage({ localStorage: ls }), 'a');
  const b = new Outbox(safeStorage({ localStorage: ls }), 'b');
  a.push(event(1));
  assert.equal(b.adopt(new Set(['a', 'b'])), 0);
  assert.equal(b.adopt(new Set(['b'])), 1);
});

test('adopting never duplicates an event id and keeps the bound', () => {
  const ls = sharedLocalStorage();
  const a = new Outbox(safeStorage({ localStorage: ls }), 'a');
  const b = new Outbox(safeStorage({ localStorage: ls }), 'b');
  for (let n = 0; n < 800; n++) a.push(event(n, 2 * n)); // even timestamps
  for (let n = 0; n < 800; n++) b.push(event(n + 1000, 2 * n + 1)); // odd ones
  b.push(event(5, 10)); // the same event in both queues (sent twice by a retry)
  a.save(true);
  b.adopt(null);
  assert.equal(b.size, 1000);
  assert.equal(new Set(b.events.map((e) => e.event_id)).size, 1000, 'no id twice');
  const times = b.events.map((e) => e.ts);
  assert.deepEqual(times, [...times].sort((x, y) => x - y), 'in time order');
  assert.equal(times[0], 1600 - 1000, 'the 600 oldest of 1,600 were dropped');
});

test('over the storage quota the newer half is kept rather than nothing', () => {
  const ls = sharedLocalStorage(20_000);
  const box = new Outbox(safeStorage({ localStorage: ls }), 't');
  for (let n = 0; n < 400; n++) box.push(Object.assign(event(n), { props: { pad: 'x'.repeat(100) } }));
  const stored = JSON.parse(ls.getItem(QUEUE_PREFIX + 't'));
  assert.ok(stored.e.length > 0 && stored.e.length < 400);
  assert.equal(stored.e.at(-1).event_id, 'e399', 'the newest survive');
});

test('removing the last event removes the key; broken keys of other tabs are cleaned up', () => {
  const ls = sharedLocalStorage();
  ls.setItem(QUEUE_PREFIX + 'broken', '{not json');
  const box = new Outbox(safeStorage({ localStorage: ls }), 't');
  box.push(event(1));
  box.remove(['e1']);
  assert.equal(ls.getItem(QUEUE_PREFIX + 't'), null);
  assert.equal(box.adopt(null), 0);
  assert.equal(ls.getItem(QUEUE_PREFIX + 'broken'), null);
});

test('storage that throws (private mode) falls back to memory', () => {
  const throwing = { get localStorage() { throw new Error('SecurityError'); } };
  const storage = safeStorage(throwing);
  assert.equal(storage.set('k', 'v'), true);
  assert.equal(storage.get('k'), 'v');
  assert.deepEqual(storage.keys(), ['k']);
  storage.del('k');
  assert.equal(storage.get('k'), null);
});
