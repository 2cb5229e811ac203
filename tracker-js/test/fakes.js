// Test doubles without a DOM: a fake clock that runs timers in order as time
// moves, and a fake fetch that records requests and answers from a script.

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
