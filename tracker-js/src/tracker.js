// The tracker: one window's composition of who the visitor is (the cookie and
// the session, here), what they do (event.js), the outbox (queue.js) and its
// sending (emitter.js), what they allow (privacy.js) and the page's
// personalized slots (slots.js).
// Everything the browser provides comes from `win`, so tests run it in a
// happy-dom window with fake timers and fetch.

import { newEmitter } from './emitter.js';
import { Engagement } from './engagement.js';
import { buildEvent, customType, fits } from './event.js';
import { slotElements } from './personalize.js';
import { browserSaysNo, permissions } from './privacy.js';
import { Outbox } from './queue.js';
import { nextSession } from './session.js';
import { newSlots } from './slots.js';
import { deleteCookie, readCookie, safeStorage, uuid4, writeCookie } from './util.js';

export const VISITOR_COOKIE = 'clickstream_vid'; // the collector's name (engine/api/http.py)
export const OPTOUT_COOKIE = 'clickstream_optout'; // the collector drops requests carrying it
export const COOKIE_MAX_AGE = 2 * 365 * 86400;
export const SESSION_KEY = 'clickstream_session';
export const USER_KEY = 'clickstream_uid';
export const CONSENT_KEY = 'clickstream_consent';
export const LOCK_PREFIX = 'clickstream_tab:';
const VISITOR_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const HEARTBEAT_MS = 60000;
const ACTIVITY = ['mousemove', 'mousedown', 'keydown', 'scroll', 'wheel', 'touchstart'];
const on = (target, type, listener, options) => target.addEventListener(type, listener, options);

export const DEFAULTS = {
  endpoint: '', // the collector and API, e.g. https://cs.shop.example ('' = this origin)
  // cookieDomain: e.g. 'shop.example' so subdomains share one visitor
  respectDoNotTrack: true, // DNT / GPC mean no tracking unless the visitor consents
  // consentFirst: true: nothing leaves the browser before consent({analytics: true})
  sessionMinutes: 30,
  batchSize: 10,
  batchSeconds: 5,
  maxQueue: 1000,
  pingSeconds: 15,
  antiFlickerMs: 300,
  autoPageView: true,
  autoDecide: true, // fill the page's slots at start
  trackLinks: true,
  // context: object or function, extra decide context (weather, country...)
  // startedAt: when the snippet hid the slots (ms since epoch)
};

// now: the clock, injectable for tests (timers, fetch and storage come from `win`).
export function createTracker(win, options, now = () => Date.now()) {
  const config = Object.assign({}, DEFAULTS, options);
  const doc = win.document;
  const nav = win.navigator || {};
  const newId = () => uuid4(win.crypto);
  const anonymousId = () => newId().replace(/-/g, ''); // the collector's form: 32 hex digits
  const storage = safeStorage(win);
  const base = String(config.endpoint || '').replace(/\/+$/, '');
  const fetch = (url, init) => win.fetch(url, init); // called on the window, as browsers require
  const tabId = newId();
  const locks = nav.locks;
  // All this tracker remembers between calls. The ids are kept here too while
  // they may not be written (no consent yet); held: consent-first, the events
  // waiting for the answer; lastPage: the referrer of the next page view.
  const state = { _visitorId: null, _session: null, _userId: storage.get(USER_KEY), _held: [], _lastPage: null };
  const perms = () => permissions({
    optedOut: readCookie(doc, OPTOUT_COOKIE) === '1',
    consent: storage.json(CONSENT_KEY),
    consentFirst: config.consentFirst,
    browserNo: config.respectDoNotTrack && browserSaysNo(win),
  });
  const outbox = new Outbox(storage, tabId, { max: config.maxQueue, now });
  const emitter = newEmitter({
    url: base + '/v1/events',
    fetch,
    sendBeacon: (url, data) => nav.sendBeacon(url, data), // looked up when leaving: pages may replace it
    outbox,
    clock: now,
    timers: win,
    canSend: () => perms().analytics && nav.onLine !== false,
    batchSize: config.batchSize,
    batchMs: config.batchSeconds * 1000,
  });
  const engagement = new Engagement();
  const slots = newSlots({
    win,
    clock: now,
    request,
    emit,
    allowed: () => perms().personalization,
    visitorId: () => visitorId(true),
    antiFlickerMs: config.antiFlickerMs,
    context: config.context,
  });

  // The collector's cookie when there is one, so both sides agree on the visitor.
  function visitorId(persist) {
    const cookie = readCookie(doc, VISITOR_COOKIE);
    if (cookie && VISITOR_ID.test(cookie)) return (state._visitorId = cookie);
    if (!state._visitorId) state._visitorId = anonymousId();
    if (persist) writeCookie(doc, VISITOR_COOKIE, state._visitorId, COOKIE_MAX_AGE, config.cookieDomain);
    return state._visitorId;
  }

  // Shared by the tabs through localStorage: the newest activity wins.
  function session(persist) {
    const stored = storage.json(SESSION_KEY);
    const mine = state._session;
    const prev = stored && stored.id && (!mine || stored.last >= mine.last) ? stored : mine;
    state._session = nextSession(prev, now(), newId, config.sessionMinutes * 60000);
    if (persist) storage.set(SESSION_KEY, JSON.stringify(state._session));
    return state._session;
  }

  // page: {referrer, title} of a page view. persist: may write the cookie and storage.
  function build(type, props, page, persist) {
    const known = { session: session(persist), visitorId: visitorId(persist), userId: state._userId, url: win.location.href };
    return buildEvent(Object.assign(known, page), { id: newId(), type, props }, now);
  }

  // Returns the event id, or null when the event may not be recorded.
  function emit(type, props, page) {
    const allowed = perms();
    if (!allowed.analytics && !allowed.waiting) return null;
    const event = build(type, props, page, allowed.analytics);
    if (!fits(event)) return null;
    if (allowed.analytics) emitter.add(event);
    else if (state._held.push(event) > config.maxQueue) state._held.shift();
    return event.event_id;
  }

  // Hidden or going away: the engaged time so far, then the queue by beacon.
  function leave(closing) {
    ping();
    engagement.hide(now());
    emitter.leave(closing);
  }

  function ping() {
    const ms = engagement.take(now());
    if (ms >= 1000) emit('page_ping', { engaged_ms: Math.round(ms) });
  }

  // Takes over the queues of tabs that are gone (see queue.js).
  function adopt() {
    if (!perms().analytics) return;
    const take = (alive) => outbox.adopt(alive) && emitter.flush();
    if (locks && locks.query) {
      locks.query().then((info) => take(new Set((info.held || [])
        .filter((lock) => lock.name && lock.name.indexOf(LOCK_PREFIX) === 0)
        .map((lock) => lock.name.slice(LOCK_PREFIX.length)))), () => take(null));
    } else take(null);
  }

  function request(method, path, data) {
    const init = { method, credentials: 'include', headers: {} };
    if (data !== undefined) {
      init.body = JSON.stringify(data);
      init.headers['Content-Type'] = 'application/json';
    }
    return fetch(base + path, init).then((res) => res.json().catch(() => null).then((answer) => {
      if (res.ok) return answer;
      throw Object.assign(new Error((answer && answer.error) || 'HTTP ' + res.status), { status: res.status, detail: answer });
    }));
  }

  function pageView(props) {
    const referrer = state._lastPage || doc.referrer;
    state._lastPage = win.location.href;
    return emit('page_view', props, { referrer, title: doc.title });
  }

  const withoutHash = (href) => String(href || '').split('#')[0];

  // Single-page apps: a page_view per history change of path or query.
  function watchHistory() {
    const history = win.history;
    const changed = () => win.setTimeout(() => {
      if (withoutHash(win.location.href) !== withoutHash(state._lastPage)) pageView();
    }, 0); // after the app has set the new title
    for (const name of ['pushState', 'replaceState']) {
      const original = history && history[name];
      if (typeof original !== 'function') continue;
      history[name] = function () {
        const result = original.apply(this, arguments);
        changed();
        return result;
      };
    }
    on(win, 'popstate', changed);
  }

  function onClick(e) {
    let target = e.target;
    if (target && !target.closest) target = target.parentElement;
    if (!target) return;
    slots.clicked(target);
    const link = config.trackLinks && target.closest('a[href]');
    if (!link) return;
    let to;
    try {
      to = new URL(link.href, win.location.href);
    } catch (err) {
      return;
    }
    if (/^https?:$/.test(to.protocol) && to.hostname !== win.location.hostname) {
      emit('link_click', { href: to.href.slice(0, 2048), text: (link.textContent || '').trim().slice(0, 100) });
    }
  }

  function consent(choice) {
    const before = perms();
    const given = Object.assign({}, storage.json(CONSENT_KEY));
    const said = {};
    for (const key of ['analytics', 'personalization', 'marketing']) {
      if (choice && typeof choice[key] === 'boolean') said[key] = given[key] = choice[key];
    }
    if (!Object.keys(said).length) return null;
    storage.set(CONSENT_KEY, JSON.stringify(given)); // the answer itself is strictly necessary
    const after = perms();
    if (after.analytics) {
      visitorId(true);
      for (const event of state._held.splice(0)) outbox.push(event);
      const id = emit('consent', { consent: said });
      emitter.flush();
      return id;
    }
    state._held = [];
    if (!before.analytics) return null;
    // Withdrawn: tell the server once, then send nothing more.
    outbox.clear();
    const event = build('consent', { consent: said }, null, false);
    emitter.post([event], true);
    return event.event_id;
  }

  function optOut() {
    writeCookie(doc, OPTOUT_COOKIE, '1', COOKIE_MAX_AGE, config.cookieDomain);
    state._held = [];
    outbox.clear();
  }

  function optIn() {
    deleteCookie(doc, OPTOUT_COOKIE, config.cookieDomain);
  }

  // Erases the visitor on the server (with their own cookie), then forgets them here.
  function forget() {
    const id = readCookie(doc, VISITOR_COOKIE) || state._visitorId;
    state._held = [];
    outbox.clear();
    const clear = () => {
      deleteCookie(doc, VISITOR_COOKIE, config.cookieDomain);
      storage.del(USER_KEY);
      storage.del(SESSION_KEY);
      state._visitorId = state._session = state._userId = state._lastPage = null;
    };
    const erase = id ? request('DELETE', '/v1/profiles/' + encodeURIComponent(id)) : Promise.resolve(null);
    return erase.then((answer) => {
      clear();
      return answer;
    }, (error) => {
      clear();
      throw error;
    });
  }

  // proof.userHash: hex HMAC-SHA256 of the user id by the shop's secret, made by
  // the shop's back end at login; the engine links the visitor to the person only with it.
  function identify(id, traits, proof) {
    if (id === null || id === undefined || id === '') {
      state._userId = null;
      storage.del(USER_KEY);
      return null;
    }
    state._userId = String(id).slice(0, 128);
    if (perms().analytics) storage.set(USER_KEY, state._userId);
    const props = { traits: traits || {} };
    if (proof && proof.userHash) props.user_hash = String(proof.userHash);
    return emit('identify', props);
  }

  // key and value, or one object of preferences.
  function setPreference(key, value) {
    const preferences = key && typeof key === 'object' ? key : { [key]: value };
    return request('PUT', `/v1/profiles/${encodeURIComponent(visitorId(true))}/preferences`, preferences);
  }

  // kind: 'also-bought' (options.item) or 'for-you'; options.k = how many.
  function recommendations(kind, opts) {
    opts = opts || {};
    const query = { k: opts.k || 10 };
    if (kind === 'also-bought') query.item = opts.item;
    // Without personalization consent, an id nobody knows: the popular items.
    const known = perms().personalization;
    if (kind !== 'also-bought' || (known && opts.visitor !== false)) {
      query.visitor_id = known ? visitorId(true) : anonymousId();
    }
    return request('GET', `/v1/recommendations/${encodeURIComponent(kind)}?` + new URLSearchParams(query));
  }

  function whenReady(fn) {
    if (doc.readyState === 'loading') on(doc, 'DOMContentLoaded', fn);
    else fn();
  }

  function start() {
    if (locks && locks.request) {
      try {
        locks.request(LOCK_PREFIX + tabId, () => new Promise(() => {})).catch(() => {});
      } catch (e) { /* no locks here (opaque origin): stale queues are adopted by age */ }
    }
    if (perms().analytics) visitorId(true);
    adopt();
    const active = () => {
      if (doc.visibilityState !== 'hidden') engagement.activity(now());
    };
    for (const type of ACTIVITY) on(win, type, active, { passive: true, capture: true });
    active();
    on(doc, 'click', onClick, true);
    on(doc, 'auxclick', onClick, true);
    on(doc, 'visibilitychange', () => (doc.visibilityState === 'hidden' ? leave(false) : active()));
    on(win, 'pagehide', () => leave(true));
    on(win, 'pageshow', (e) => e.persisted && outbox.save()); // back from the bfcache
    on(win, 'online', () => {
      adopt();
      emitter.resume();
    });
    win.setInterval(ping, config.pingSeconds * 1000);
    win.setInterval(() => {
      outbox.save();
      adopt();
    }, HEARTBEAT_MS);
    watchHistory();
    if (config.autoPageView) pageView();
    if (config.autoDecide) {
      whenReady(() => slotElements(doc).length && slots.decide(null, { since: config.startedAt || now() }));
    }
  }

  start();

  return {
    track: (name, props) => emit(customType(name), props),
    pageView,
    productView: (product) => emit('product_view', { product }),
    addToCart: (product, qty) => emit('add_to_cart', { product, qty: qty || 1 }),
    removeFromCart: (product, qty) => emit('remove_from_cart', { product, qty: qty || 1 }),
    addToWishlist: (product) => emit('add_to_wishlist', { product }),
    removeFromWishlist: (product) => emit('remove_from_wishlist', { product }),
    purchase: (order) => emit('purchase', { order }),
    identify,
    consent,
    optOut,
    optIn,
    forget,
    decide: slots.decide,
    setPreference,
    recommendations,
    flush: emitter.flush,
    visitorId: () => visitorId(false),
    sessionId: () => state._session && state._session.id,
    permissions: perms,
  };
}
