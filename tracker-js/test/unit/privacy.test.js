import test from 'node:test';
import assert from 'node:assert/strict';
import { permissions } from '../../src/privacy.js';
import { trackedPage, close, storageSnapshot } from '../helpers.js';

const quiet = { pingSeconds: 1e6 };

test('permissions: opt-out beats consent, consent beats the browser signal', () => {
  const p = (args) => permissions(Object.assign({ optedOut: false, consent: null, consentFirst: false, browserNo: false }, args));
  assert.deepEqual(p({}), { analytics: true, personalization: true, waiting: false });
  assert.deepEqual(p({ browserNo: true }), { analytics: false, personalization: false, waiting: false });
  assert.deepEqual(p({ browserNo: true, consent: { analytics: true } }), { analytics: true, personalization: false, waiting: false });
  assert.deepEqual(p({ consentFirst: true }), { analytics: false, personalization: false, waiting: true });
  assert.deepEqual(p({ consentFirst: true, consent: { analytics: false } }), { analytics: false, personalization: false, waiting: false });
  assert.deepEqual(p({ optedOut: true, consent: { analytics: true, personalization: true } }), { analytics: false, personalization: false, waiting: false });
});

for (const [name, navigator] of [['Do-Not-Track', { doNotTrack: '1' }], ['Global Privacy Control', { globalPrivacyControl: true }]]) {
  test(`${name}: nothing is sent, no cookie, no storage`, async () => {
    const page = trackedPage(quiet, { navigator });
    page.tracker.track('x');
    page.tracker.productView({ id: 'p1' });
    await page.clock.advance(60_000);
    page.win.dispatchEvent(new page.win.Event('pagehide'));
    assert.equal(page.fetch.calls.length, 0);
    assert.equal(page.beacons.length, 0);
    assert.doesNotMatch(page.win.document.cookie, /clickstream_vid/);
    assert.deepEqual(Object.keys(storageSnapshot(page.win)), []);
    await close(page);
  });
}

test('respectDoNotTrack: false tracks despite DNT', async () => {
  const page = trackedPage(Object.assign({ respectDoNotTrack: false }, quiet), { navigator: { doNotTrack: '1' } });
  await page.clock.advance(5000);
  assert.deepEqual(page.fetch.events().map((e) => e.type), ['page_view']);
  await close(page);
});

test('consent-first: nothing leaves the browser until analytics consent, then the held events go', async () => {
  const page = trackedPage(Object.assign({ consentFirst: true }, quiet));
  page.tracker.track('before-consent');
  await page.clock.advance(60_000);
  page.win.dispatchEvent(new page.win.Event('pagehide'));
  assert.equal(page.fetch.calls.length, 0);
  assert.equal(page.beacons.length, 0);
  assert.doesNotMatch(page.win.document.cookie, /clickstream_vid/, 'no cookie before consent');
  assert.deepEqual(Object.keys(storageSnapshot(page.win)), [], 'no storage before consent');
  page.tracker.consent({ analytics: true, personalization: false });
  await page.clock.advance(0);
  const events = page.fetch.events().filter((e) => e.type !== 'page_ping');
  assert.deepEqual(events.map((e) => e.type), ['page_view', 'custom:before-consent', 'consent']);
  assert.deepEqual(events[2].props, { consent: { analytics: true, personalization: false } });
  assert.match(page.win.document.cookie, new RegExp('clickstream_vid=' + events[0].visitor_id));
  await close(page);
});

test('consent-first and refused: the held events are dropped and nothing is sent', async () => {
  const page = trackedPage(Object.assign({ consentFirst: true }, quiet));
  page.tracker.track('held');
  page.tracker.consent({ analytics: false, personalization: false });
  page.tracker.track('after');
  await page.clock.advance(60_000);
  assert.equal(page.fetch.calls.length, 0);
  await close(page);
});

test('withdrawing consent sends one consent event, then nothing', async () => {
  const page = trackedPage(quiet);
  await page.clock.advance(5000);
  page.tracker.track('queued-not-sent');
  page.tracker.consent({ analytics: false });
  page.tracker.track('after');
  await page.clock.advance(60_000);
  const types = page.fetch.events().map((e) => e.type);
  assert.deepEqual(types, ['page_view', 'consent']);
  assert.deepEqual(page.fetch.events()[1].props, { consent: { analytics: false } });
  await close(page);
});

test('optOut sets clickstream_optout=1 (the collector\'s cookie name) and stops sending', async () => {
  const page = trackedPage(quiet);
  page.tracker.track('queued');
  page.tracker.optOut();
  assert.match(page.win.document.cookie, /(^|; )clickstream_optout=1(;|$)/);
  page.tracker.track('after');
  await page.clock.advance(60_000);
  page.win.dispatchEvent(new page.win.Event('pagehide'));
  assert.equal(page.fetch.calls.length, 0, 'neither the queued nor later events');
  assert.equal(page.beacons.length, 0);
  page.tracker.optIn();
  page.tracker.track('opted-in');
  await page.clock.advance(5000);
  assert.deepEqual(page.fetch.events().map((e) => e.type), ['custom:opted-in']);
  await close(page);
});

test('an opt-out cookie set elsewhere (another tab, the server) is respected', async () => {
  const page = trackedPage(quiet, { cookies: 'clickstream_optout=1' });
  page.tracker.track('x');
  await page.clock.advance(60_000);
  assert.equal(page.fetch.calls.length, 0);
  await close(page);
});

test('forget erases on the server with the visitor\'s cookie, then clears the ids here', async () => {
  const page = trackedPage(quiet);
  page.tracker.identify('user-9');
  const vid = page.tracker.visitorId();
  page.fetch.calls.length = 0;
  const answer = await page.tracker.forget();
  const [request] = page.fetch.calls;
  assert.equal(request.method, 'DELETE');
  assert.equal(request.url, `https://cs.example/v1/profiles/${vid}`);
  assert.equal(request.init.credentials, 'include');
  assert.ok(answer);
  assert.doesNotMatch(page.win.document.cookie, /clickstream_vid/);
  assert.equal(page.win.localStorage.getItem('clickstream_uid'), null);
  page.tracker.track('fresh');
  await page.clock.advance(5000);
  const fresh = page.fetch.events().filter((e) => e.type === 'custom:fresh');
  assert.equal(fresh.length, 1, 'the queued identify was dropped, not sent after the erasure');
  assert.notEqual(fresh[0].visitor_id, vid);
  assert.equal(fresh[0].user_id, undefined);
  await close(page);
});
