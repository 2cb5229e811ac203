// The tracker: identity, sessions, events, the outbox and its sending, privacy,
// and in-page personalization. Everything the browser provides comes from `win`,
// so tests run it in a happy-dom window with fake timers and fetch.

import { body, backoffMs, chunk, classify, RETRY } from './transport.js';
import { Engagement } from './engagement.js';
import { Outbox } from './queue.js';
import { browserSaysNo, permissions } from './privacy.js';
import { nextSession } from './session.js';
import { byteLength, deleteCookie, readCookie, safeStorage, uuid4, writeCookie } from './util.js';
import {
  SLOT_ATTR, cleanContext, fillSlots, pageContext, reveal, slotElements, slotNames,
} from './personalize.js';

export const VISITOR_COOKIE = 'clickstream_vid'; // the collector's name (engine/api/http.py)
export const OPTOUT_COOKIE = 'clickstream_optout'; // the collector drops requests carrying it
export const COOKIE_MAX_AGE = 2 * 365 * 86400;
export const SESSION_KEY = 'clickstream_session';
export const USER_KEY = 'clickstream_uid';
export const CONSENT_KEY = 'clickstream_consent';
export const LOCK_PREFIX = 'clickstream_tab:';
const VISITOR_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const EVENT_MAX_BYTES = 32 * 1024; // one event must fit a beacon with room for others
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
  const later = (fn, ms) => win.setTimeout(fn, ms);
  const newId = () => uuid4(win.crypto);
  const anonymousId = () => newId().replace(/-/g, ''); // the collector's form: 32 hex digits
  const storage = safeStorage(win);
  const base = String(config.endpoint || '').replace(/\/+$/, '');
  const eventsUrl = base + '/v1/events';
  const tabId = newId();
  const outbox = new Outbox(storage, tabId, { max: config.maxQueue, now });
  const engagement = new Engagement();
  const shown = new WeakMap(); // slot element -> impression props
  const watching = new WeakMap(); // slot element -> its IntersectionObserver
  const locks = nav.locks;
  let held = []; // consent-first: events kept in memory until the answer
  let memVid = null;
  let memSession = null;
  let lastPage = null;
  let userId = storage.get(USER_KEY);
  let timer = null;
  let dueAt = 0;
  let sending = false;
  let attempt = 0;
  let retryAt = 0;

  function perms() {
    return permissions({
      optedOut: readCookie(doc, OPTOUT_COOKIE) === '1',
      consent: storage.json(CONSENT_KEY),
      consentFirst: config.consentFirst,
      browserNo: config.respectDoNotTrack && browserSaysNo(win),
    });
  }

  // The collector's cookie when there is one, so both sides agree on the visitor.
  function visitorId(persist) {
    const cookie = readCookie(doc, VISITOR_COOKIE);
    if (cookie && VISITOR_ID.test(cookie)) return (memVid = cookie);
    if (!memVid) memVid = anonymousId();
    if (persist) writeCookie(doc, VISITOR_COOKIE, memVid, COOKIE_MAX_AGE, config.cookieDomain);
    return memVid;
  }

  // Shared by the tabs through localStorage: the newest activity wins.
  function session(persist) {
    const stored = storage.json(SESSION_KEY);
    const prev = stored && stored.id && (!memSession || stored.last >= memSession.last) ? stored : memSession;
    memSession = nextSession(prev, now(), newId, config.sessionMinutes * 60000);
    if (persist) storage.set(SESSION_KEY, JSON.stringify(memSession));
    return memSession;
  }

  function build(type, props, extra, persist) {
    const current = session(persist);
    const event = Object.assign({
      event_id: newId(),
      type,
      visitor_id: visitorId(persist),
      session_id: current.id,
      ts: now(),
      url: win.location.href,
    }, extra);
    event.props = Object.assign({}, props);
    if (type === 'page_view') event.props.session_index = current.index;
    if (userId) event.user_id = userId;
    return event;
  }

  // Returns the event id, or null when the event may not be recorded.
  function emit(type, props, extra) {
    const allowed = perms();
    if (!allowed.analytics && !allowed.waiting) return null;
    const event = build(type, props, extra, allowed.analytics);
    if (byteLength(JSON.stringify(event)) > EVENT_MAX_BYTES) return null;
    if (!allowed.analytics) {
      if (held.push(event) > config.maxQueue) held.shift();
    } else {
      outbox.push(event);
      if (outbox.size >= config.batchSize) flush();
      else schedule(config.batchSeconds * 1000);
    }
    return event.event_id;
  }

  function schedule(ms) {
    const at = now() + ms;
    if (timer !== null) {
      if (dueAt <= at) return;
      win.clearTimeout(timer);
    }
    dueAt = at;
    timer = later(() => {
      timer = null;
      flush();
    }, ms);
  }

  function post(events, keepalive) {
    return win.fetch(eventsUrl, { method: 'POST', body: body(events), credentials: 'include', keepalive: !!keepalive })
      .then(
        (res) => ({ verdict: classify(res.status), retryAfter: res.headers && res.headers.get('Retry-After') }),
        () => ({ verdict: RETRY }), // network error, CORS refusal, offline
      );
  }

  // Sends the outbox in chunks. A retryable failure stops the round and waits;
  // the events keep their event_id, so a retry can never count one twice.
  async function flush() {
    if (sending || !outbox.size || !perms().analytics || nav.onLine === false) return;
    const wait = retryAt - now();
    if (wait > 0) return schedule(wait);
    sending = true;
    try {
      for (const batch of chunk(outbox.events)) {
        const outcome = await post(batch);
        if (outcome.verdict === RETRY) {
          attempt++;
          retryAt = now() + backoffMs(attempt, outcome.retryAfter);
          schedule(retryAt - now());
          return;
        }
        attempt = 0;
        retryAt = 0;
        outbox.remove(batch.map((e) => e.event_id)); // delivered, or refused for good (4xx)
      }
    } finally {
      sending = false;
    }
    if (outbox.size >= config.batchSize) flush();
    else if (outbox.size) schedule(config.batchSeconds * 1000);
  }

  // The page is hidden or going away: hand the outbox to sendBeacon, which
  // delivers after unload. Chunks stay under 64 KB, the browsers' beacon budget.
  function leave(closing) {
    ping();
    engagement.hide(now());
    if (perms().analytics && outbox.size && nav.onLine !== false) {
      const handedOver = [];
      for (const batch of chunk(outbox.events)) {
        const ids = batch.map((e) => e.event_id);
        let queued = false;
        try {
          queued = !!(nav.sendBeacon && nav.sendBeacon(eventsUrl, body(batch)));
        } catch (e) { /* falls back to fetch */ }
        if (queued) handedOver.push(...ids);
        else post(batch, true).then((o) => o.verdict !== RETRY && outbox.remove(ids));
      }
      outbox.remove(handedOver);
    }
    if (closing) outbox.save(true); // what is left goes with the next page of this site
  }

  function ping() {
    const ms = engagement.take(now());
    if (ms >= 1000) emit('page_ping', { engaged_ms: Math.round(ms) });
  }

  // Takes over the queues of tabs that are gone (see queue.js).
  function adopt() {
    if (!perms().analytics) return;
    const take = (alive) => outbox.adopt(alive) && flush();
    if (locks && locks.query) {
      locks.query().then((state) => take(new Set((state.held || [])
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
    return win.fetch(base + path, init).then((res) => res.json().catch(() => null).then((answer) => {
      if (res.ok) return answer;
      throw Object.assign(new Error((answer && answer.error) || 'HTTP ' + res.status), { status: res.status, detail: answer });
    }));
  }

  function pageView(props) {
    const referrer = lastPage || doc.referrer;
    lastPage = win.location.href;
    return emit('page_view', props, { referrer, title: doc.title });
  }

  const withoutHash = (href) => String(href || '').split('#')[0];

  // Single-page apps: a page_view per history change of path or query.
  function watchHistory() {
    const history = win.history;
    const changed = () => later(() => {
      if (withoutHash(win.location.href) !== withoutHash(lastPage)) pageView();
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
    const slot = target.closest(`[${SLOT_ATTR}]`);
    if (slot && shown.has(slot)) emit('content_click', shown.get(slot));
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

  // An impression when the content is on screen, not merely in the page.
  function watchImpression(el, props) {
    const IO = win.IntersectionObserver;
    const previous = watching.get(el);
    if (previous) previous.disconnect();
    if (typeof IO !== 'function') return emit('impression', props);
    const observer = new IO((entries) => {
      if (!entries.some((entry) => entry.isIntersecting)) return;
      observer.disconnect();
      emit('impression', props);
    });
    watching.set(el, observer);
    observer.observe(el);
  }

  // Fills the slots in time, or leaves their default content: the slots are
  // hidden (by the snippet's style) until filled, at most `timeout` ms after `since`.
  function decide(slots, opts) {
    opts = opts || {};
    const asked = typeof slots === 'string' ? [slots] : slots;
    const elements = slotElements(doc, asked);
    const names = asked && asked.length ? asked : slotNames(elements);
    if (!names.length) return Promise.resolve({});
    let settled = false;
    let guard = null;
    const giveUp = () => {
      if (!settled) reveal(elements);
      settled = true;
    };
    if (!perms().personalization) giveUp();
    const timeout = opts.timeout === undefined ? config.antiFlickerMs : opts.timeout;
    if (timeout > 0) {
      const left = (opts.since || now()) + timeout - now();
      if (left <= 0) giveUp();
      else if (!settled) guard = later(giveUp, left);
    }
    if (settled) return Promise.resolve({});
    let siteContext = config.context;
    try {
      if (typeof siteContext === 'function') siteContext = siteContext();
    } catch (e) {
      siteContext = null;
    }
    const context = cleanContext(Object.assign(pageContext(win, now()), siteContext, opts.context));
    // No user_id: without an API key the server takes the person from the cookie.
    return request('POST', '/v1/decide', { visitor_id: visitorId(true), slots: names, context }).then((answer) => {
      const decisions = (answer && answer.decisions) || {};
      if (!settled) {
        settled = true;
        if (guard !== null) win.clearTimeout(guard);
        for (const [el, props] of fillSlots(elements, decisions)) {
          shown.set(el, props);
          watchImpression(el, props);
        }
      }
      return decisions;
    }, () => {
      giveUp();
      return {};
    });
  }

  function consent(choice) {
    const before = perms();
    const given = Object.assign({}, storage.json(CONSENT_KEY));
    const said = {};
    for (const key of ['analytics', 'personalization']) {
      if (choice && typeof choice[key] === 'boolean') said[key] = given[key] = choice[key];
    }
    if (!Object.keys(said).length) return null;
    storage.set(CONSENT_KEY, JSON.stringify(given)); // the answer itself is strictly necessary
    const after = perms();
    if (after.analytics) {
      visitorId(true);
      const waiting = held;
      held = [];
      for (const event of waiting) outbox.push(event);
      const id = emit('consent', { consent: said });
      flush();
      return id;
    }
    held = [];
    if (!before.analytics) return null;
    // Withdrawn: tell the server once, then send nothing more.
    outbox.clear();
    const event = build('consent', { consent: said }, null, false);
    post([event], true);
    return event.event_id;
  }

  function optOut() {
    writeCookie(doc, OPTOUT_COOKIE, '1', COOKIE_MAX_AGE, config.cookieDomain);
    held = [];
    outbox.clear();
  }

  function optIn() {
    deleteCookie(doc, OPTOUT_COOKIE, config.cookieDomain);
  }

  // Erases the visitor on the server (with their own cookie), then forgets them here.
  function forget() {
    const id = readCookie(doc, VISITOR_COOKIE) || memVid;
    held = [];
    outbox.clear();
    const clear = () => {
      deleteCookie(doc, VISITOR_COOKIE, config.cookieDomain);
      storage.del(USER_KEY);
      storage.del(SESSION_KEY);
      memVid = memSession = userId = lastPage = null;
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

  function identify(id, traits) {
    if (id === null || id === undefined || id === '') {
      userId = null;
      storage.del(USER_KEY);
      return null;
    }
    userId = String(id).slice(0, 128);
    if (perms().analytics) storage.set(USER_KEY, userId);
    return emit('identify', { traits: traits || {} });
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
      attempt = 0;
      retryAt = 0;
      adopt();
      flush();
    });
    win.setInterval(ping, config.pingSeconds * 1000);
    win.setInterval(() => {
      outbox.save();
      adopt();
    }, HEARTBEAT_MS);
    watchHistory();
    if (config.autoPageView) pageView();
    if (config.autoDecide) {
      whenReady(() => slotElements(doc).length && decide(null, { since: config.startedAt || now() }));
    }
  }

  start();

  return {
    // custom:NAME, with NAME as the collector accepts it ('add to list' -> 'add_to_list')
    track: (name, props) => emit('custom:' + String(name).replace(/[^\w.-]/g, '_').slice(0, 64), props),
    pageView,
    productView: (product) => emit('product_view', { product }),
    addToCart: (product, qty) => emit('add_to_cart', { product, qty: qty || 1 }),
    removeFromCart: (product, qty) => emit('remove_from_cart', { product, qty: qty || 1 }),
    purchase: (order) => emit('purchase', { order }),
    identify,
    consent,
    optOut,
    optIn,
    forget,
    decide,
    setPreference,
    recommendations,
    flush,
    visitorId: () => visitorId(false),
    sessionId: () => memSession && memSession.id,
    permissions: perms,
  };
}
