// Test doubles: a fake clock that drives the window's timers, a fake fetch that
// records requests and answers from a script, and happy-dom pages to run in.

import { Window } from 'happy-dom';
import { createTracker } from '../src/tracker.js';

export const START = Date.UTC(2026, 0, 15, 12, 0, 0);

// Flushes pending promise callbacks (fetch answers, .then chains).
export async function settle(rounds = 5) {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

export class FakeClock {
  constructor(start = START) {
    this.t = start;
    this.seq = 0;
    this.timers = new Map();
    this.now = () => this.t;
    this.setTimeout = (fn, ms) => this._add(fn, ms, 0);
    this.setInterval = (fn, ms) => this._add(fn, ms, ms);
    this.clearTimeout = this.clearInterval = (id) => this.timers.delete(id);
  }

  _add(fn, ms, every) {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms || 0), fn, every });
    return id;
  }

  // Moves time forward, running every timer due on the way, in order.
  async advance(ms) {
    const end = this.t + ms;
    await settle();
    for (;;) {
      let next = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && (!next || timer.at < next[1].at)) next = [id, timer];
      }
      if (!next) break;
      const [id, timer] = next;
      this.t = Math.max(this.t, timer.at);
      if (timer.every) timer.at += timer.every;
      else this.timers.delete(id);
      timer.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

// answer(request) -> {status, body, headers} or an Error (network failure); default 202.
export function fakeFetch(answer = () => ({ status: 202, body: { accepted: 1, rejected: [] } })) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const request = { url: String(url), init, method: init.method || 'GET', body: init.body ? JSON.parse(init.body) : undefined };
    calls.push(request);
    const reply = await answer(request, calls);
    if (reply instanceof Error) throw reply;
    const headers = new Map(Object.entries(reply.headers || {}).map(([k, v]) => [k.toLowerCase(), String(v)]));
    return {
      status: reply.status,
      ok: reply.status >= 200 && reply.status < 300,
      headers: { get: (name) => (headers.has(name.toLowerCase()) ? headers.get(name.toLowerCase()) : null) },
      json: async () => reply.body === undefined ? Promise.reject(new Error('no body')) : reply.body,
    };
  };
  fetch.calls = calls;
  fetch.events = () => calls.filter((c) => c.url.endsWith('/v1/events')).flatMap((c) => c.body.events);
  fetch.eventPosts = () => calls.filter((c) => c.url.endsWith('/v1/events'));
  return fetch;
}

function setNavigator(win, name, value) {
  Object.defineProperty(win.navigator, name, { value, configurable: true, writable: true });
}

// A happy-dom page whose timers are the fake clock's and whose fetch is fake.
export function makePage({
  url = 'https://shop.example/products/42', html = '', clock = new FakeClock(), fetch = fakeFetch(),
  navigator = {}, storage = null, cookies = '', intersection = null, evaluate = false, title = '',
} = {}) {
  const win = new Window({
    url,
    settings: {
      disableJavaScriptFileLoading: true,
      disableCSSFileLoading: true,
      enableJavaScriptEvaluation: evaluate, // only the snippet test runs page scripts
      suppressInsecureJavaScriptEnvironmentWarning: true,
      handleDisabledFileLoadingAsSuccess: true,
    },
  });
  win.setTimeout = clock.setTimeout;
  win.clearTimeout = clock.clearTimeout;
  win.setInterval = clock.setInterval;
  win.clearInterval = clock.clearInterval;
  win.fetch = fetch;
  win.IntersectionObserver = intersection || undefined;
  const beacons = [];
  setNavigator(win, 'sendBeacon', (to, data) => {
    beacons.push({ url: to, body: JSON.parse(data), bytes: Buffer.byteLength(data) });
    return true;
  });
  setNavigator(win, 'locks', undefined);
  setNavigator(win, 'onLine', true);
  for (const [name, value] of Object.entries(navigator)) setNavigator(win, name, value);
  if (storage) for (const [key, value] of Object.entries(storage)) win.localStorage.setItem(key, value);
  for (const cookie of cookies.split(';').map((c) => c.trim()).filter(Boolean)) win.document.cookie = cookie + '; Path=/';
  if (html) win.document.body.innerHTML = html;
  if (title) win.document.title = title;
  return { win, clock, fetch, beacons };
}

// A page with a tracker started on it.
export function trackedPage(options = {}, pageOptions = {}) {
  const page = makePage(pageOptions);
  const tracker = createTracker(page.win, Object.assign({ endpoint: 'https://cs.example' }, options), page.clock.now);
  return Object.assign(page, { tracker });
}

export function storageSnapshot(win) {
  const out = {};
  for (let i = 0; i < win.localStorage.length; i++) {
    const key = win.localStorage.key(i);
    out[key] = win.localStorage.getItem(key);
  }
  return out;
}

export function fire(win, target, type, init = {}) {
  const event = new win.Event(type, Object.assign({ bubbles: true }, init));
  Object.assign(event, init.props || {});
  target.dispatchEvent(event);
  return event;
}

export async function close(...pages) {
  for (const page of pages) await page.win.happyDOM.abort().catch(() => {});
}
