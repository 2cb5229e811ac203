// Takes over the snippet's `clickstream(...)` stub and replays the calls it
// queued while the library was loading, 'init' first.
//   clickstream('track', 'signup', {plan: 'pro'})
//   clickstream(function (tracker) { tracker.decide(['hero']).then(...) })

import { createTracker } from './tracker.js';

export function install(win, now) {
  const stub = win.clickstream || {};
  if (stub.loaded) return stub; // the file was included twice
  const waiting = [];
  let tracker = null;

  function call(method, ...args) {
    if (method === 'init' && !tracker) {
      // l and h: when the snippet hid the slots, and for how long at most.
      const options = Object.assign({ startedAt: stub.l }, stub.h && { antiFlickerMs: stub.h }, args[0]);
      tracker = createTracker(win, options, now);
      waiting.splice(0).forEach((pending) => call(...pending));
    }
    if (!tracker) return waiting.push([method, ...args]);
    if (typeof method === 'function') return method(tracker);
    if (method === 'init') return tracker;
    const fn = tracker[method];
    return fn ? fn(...args) : win.console.warn('clickstream: no method ' + method);
  }

  const queued = Array.from(stub.q || [], (args) => Array.from(args));
  const api = (...args) => call(...args);
  api.loaded = true;
  win.clickstream = api;
  queued.sort((a, b) => (b[0] === 'init') - (a[0] === 'init')); // stable: the rest keep their order
  queued.forEach((args) => call(...args));
  return api;
}
