import test from 'node:test';
import assert from 'node:assert/strict';
import { nextSession, SESSION_TIMEOUT_MS } from '../../src/session.js';
import { Engagement } from '../../src/engagement.js';
import { trackedPage, close } from '../helpers.js';

let counter = 0;
const newId = () => `s${++counter}`;

test('a session continues while active and rotates after 30 minutes without activity', () => {
  const first = nextSession(null, 1000, newId);
  assert.equal(first.index, 1);
  const later = nextSession(first, 1000 + SESSION_TIMEOUT_MS - 1, newId);
  assert.equal(later.id, first.id);
  const rotated = nextSession(later, later.last + SESSION_TIMEOUT_MS, newId);
  assert.notEqual(rotated.id, first.id);
  assert.equal(rotated.index, 2);
});

test('a clock that jumps back a long way starts a new session rather than reusing one', () => {
  const s = nextSession(null, 10 * SESSION_TIMEOUT_MS, newId);
  assert.notEqual(nextSession(s, 0, newId).id, s.id);
});

test('the tracker rotates the session id after 30 idle minutes and counts sessions up', async () => {
  const page = trackedPage();
  const { tracker, clock, fetch } = page;
  tracker.track('a');
  await clock.advance(20 * 60 * 1000);
  tracker.track('b');
  await clock.advance(31 * 60 * 1000);
  tracker.pageView();
  await clock.advance(6000);
  const events = fetch.events();
  const byType = (type) => events.filter((e) => e.type === type);
  const [a, b] = [byType('custom:a')[0], byType('custom:b')[0]];
  const views = byType('page_view');
  assert.equal(a.session_id, b.session_id, '20 minutes apart: same session');
  assert.notEqual(views[1].session_id, b.session_id, '31 minutes idle: new session');
  assert.deepEqual(views.map((v) => v.props.session_index), [1, 2]);
  const stored = JSON.parse(page.win.localStorage.getItem('clickstream_session'));
  assert.equal(stored.id, views[1].session_id, 'shared with other tabs through localStorage');
  await close(page);
});

test('engaged time counts visible, active seconds once, and stops when idle or hidden', () => {
  const e = new Engagement(5000);
  e.activity(0);
  e.activity(2000); // overlapping windows count once
  assert.equal(e.take(3000), 3000);
  assert.equal(e.take(20000), 4000, 'the window ends 5 s after the last activity');
  assert.equal(e.take(30000), 0, 'idle');
  e.activity(40000);
  e.hide(41000);
  assert.equal(e.take(60000), 1000, 'hidden: no more engaged time');
});

test('page_ping reports engaged time while the visitor is active', async () => {
  const page = trackedPage({ pingSeconds: 15 });
  const { win, clock, fetch } = page;
  for (let s = 0; s < 15; s += 2) {
    win.dispatchEvent(new win.Event('scroll'));
    await clock.advance(2000);
  }
  await clock.advance(60_000); // idle: no more pings
  const pings = fetch.events().filter((e) => e.type === 'page_ping');
  assert.ok(pings.length >= 1 && pings.length <= 2, `pings: ${pings.length}`);
  const engaged = pings.reduce((n, p) => n + p.props.engaged_ms, 0);
  assert.ok(engaged >= 15000 && engaged <= 21000, `engaged ${engaged} ms`);
  await close(page);
});
