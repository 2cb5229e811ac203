// buildEvent is pure: state, input and clock in, the event out; no DOM here.

import test from 'node:test';
import assert from 'node:assert/strict';
import { EVENT_MAX_BYTES, buildEvent, customType, fits } from '../../src/event.js';

const state = {
  visitorId: '0123456789abcdef0123456789abcdef',
  session: { id: 's-1', index: 3, last: 5 },
  url: 'https://shop.example/p/7',
  referrer: 'https://search.example/',
  title: 'Red shoes',
};
const clock = () => 1_767_000_000_000;

test('an event has the contract fields, from the state, the input and the clock', () => {
  const event = buildEvent(state, { id: 'e-1', type: 'product_view', props: { product: { id: 'p7' } } }, clock);
  assert.deepEqual(event, {
    event_id: 'e-1',
    type: 'product_view',
    visitor_id: state.visitorId,
    session_id: 's-1',
    ts: 1_767_000_000_000,
    url: 'https://shop.example/p/7',
    props: { product: { id: 'p7' } },
  });
  assert.deepEqual(Object.keys(event), ['event_id', 'type', 'visitor_id', 'session_id', 'ts', 'url', 'props'],
    'the order on the wire stays as it was');
});

test('a page view also has the referrer, the title and the session index', () => {
  const event = buildEvent(state, { id: 'e-2', type: 'page_view', props: { list: 'sale' } }, clock);
  assert.equal(event.referrer, 'https://search.example/');
  assert.equal(event.title, 'Red shoes');
  assert.deepEqual(event.props, { list: 'sale', session_index: 3 });
  const other = buildEvent(state, { id: 'e-3', type: 'custom:x' }, clock);
  assert.equal('referrer' in other || 'title' in other || 'session_index' in other.props, false);
});

test('user_id only once the state has one', () => {
  assert.equal('user_id' in buildEvent(state, { id: 'a', type: 'custom:x' }, clock), false);
  assert.equal(buildEvent(Object.assign({ userId: 'u-1' }, state), { id: 'b', type: 'custom:x' }, clock).user_id, 'u-1');
});

test('the props are copied: the caller\'s object is not changed, nor kept', () => {
  const props = { n: 1 };
  const event = buildEvent(state, { id: 'c', type: 'page_view', props }, clock);
  assert.deepEqual(props, { n: 1 });
  event.props.n = 2;
  assert.equal(props.n, 1);
  assert.deepEqual(buildEvent(state, { id: 'd', type: 'custom:x' }, clock).props, {}, 'no props: an empty object');
});

test('the same input twice is the same event (the id comes in, the time from the clock)', () => {
  const input = { id: 'e-9', type: 'add_to_cart', props: { qty: 1 } };
  assert.deepEqual(buildEvent(state, input, clock), buildEvent(state, input, clock));
  let t = 0;
  const ticking = () => ++t;
  assert.equal(buildEvent(state, input, ticking).ts, 1);
  assert.equal(buildEvent(state, input, ticking).ts, 2);
});

test('custom event names become what the collector accepts', () => {
  assert.equal(customType('newsletter signup'), 'custom:newsletter_signup');
  assert.equal(customType('a.b-c_d'), 'custom:a.b-c_d');
  assert.equal(customType('x'.repeat(100)), 'custom:' + 'x'.repeat(64));
});

test('an event over 32 KB does not fit', () => {
  const event = (chars) => buildEvent(state, { id: 'f', type: 'custom:big', props: { text: 'x'.repeat(chars) } }, clock);
  assert.equal(fits(event(1000)), true);
  assert.equal(fits(event(EVENT_MAX_BYTES)), false);
  assert.equal(fits(event(EVENT_MAX_BYTES / 2)), true);
  assert.equal(fits(buildEvent(state, { id: 'f', type: 'custom:big', props: { text: 'ø'.repeat(EVENT_MAX_BYTES / 2) } }, clock)), false,
    'counted in UTF-8 bytes, not characters');
});
