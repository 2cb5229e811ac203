// happy-dom pages to run the tracker in, with the fake clock driving the
// window's timers and a fake fetch (see fakes.js).

import { Window } from 'happy-dom';
import { createTracker } from '../src/tracker.js';
import { FakeClock, fakeFetch } from './fakes.js';

export { FakeClock, START, fakeFetch, settle } from './fakes.js';

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
