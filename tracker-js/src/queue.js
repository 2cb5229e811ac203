// The outbox: events waiting to be sent, kept in localStorage so they survive
// reloads and offline periods.
//
// Tabs never write the same key: each page load owns `clickstream_q:<tabId>`, so
// two tabs cannot overwrite each other's events (localStorage has no
// read-modify-write lock across tabs). A queue whose tab is gone is "adopted" by
// the next live tab: merged into its own queue and the old key removed. A tab is
// gone when its page hid for good (it marks its queue t=0), when it no longer holds
// its Web Lock (navigator.locks, where available), or, without Web Locks, when it
// has not touched its queue for 10 minutes. Adopting a live tab's queue by mistake
// only sends some events twice, which the collector de-duplicates by event_id:
// the design may duplicate, never lose.

export const QUEUE_PREFIX = 'clickstream_q:';
export const MAX_EVENTS = 1000;
export const STALE_MS = 10 * 60 * 1000;

export class Outbox {
  constructor(storage, tabId, { max = MAX_EVENTS, now = Date.now, staleMs = STALE_MS } = {}) {
    this._storage = storage;
    this._key = QUEUE_PREFIX + tabId;
    this._max = max;
    this._now = now;
    this._staleMs = staleMs;
    this.events = [];
  }

  get size() {
    return this.events.length;
  }

  push(event) {
    this.events.push(event);
    this._trim();
    this.save();
  }

  remove(ids) {
    if (!ids.length) return;
    const gone = new Set(ids);
    this.events = this.events.filter((e) => !gone.has(e.event_id));
    this.save();
  }

  clear() {
    this.events = [];
    this.save();
  }

  // closing: the page is going away, so any tab may adopt this queue at once.
  save(closing) {
    if (!this.events.length) return this._storage.del(this._key);
    const write = () => this._storage.set(this._key, JSON.stringify({ t: closing ? 0 : this._now(), e: this.events }));
    // Over the storage quota: keep the newer half rather than nothing.
    while (!write() && this.events.length > 1) this.events = this.events.slice(this.events.length >> 1);
  }

  // alive: Set of tab ids holding their lock, or null when Web Locks are unavailable.
  // Returns how many events were taken over.
  adopt(alive) {
    let taken = 0;
    const known = new Set(this.events.map((e) => e.event_id));
    for (const key of this._storage.keys()) {
      if (!key || key.indexOf(QUEUE_PREFIX) !== 0 || key === this._key) continue;
      const queue = this._storage.json(key);
      const events = queue && Array.isArray(queue.e) ? queue.e : null;
      const orphan = !events || queue.t === 0 ||
        (alive ? !alive.has(key.slice(QUEUE_PREFIX.length)) : this._now() - queue.t > this._staleMs);
      if (!orphan) continue;
      for (const event of events || []) {
        if (event && event.event_id && !known.has(event.event_id)) {
          known.add(event.event_id);
          this.events.push(event);
          taken++;
        }
      }
      this._storage.del(key);
    }
    if (taken) {
      this.events.sort((a, b) => (a.ts || 0) - (b.ts || 0)); // stable: oldest first
      this._trim();
      this.save();
    }
    return taken;
  }

  _trim() {
    const extra = this.events.length - this._max;
    if (extra > 0) this.events.splice(0, extra); // the oldest go first
  }
}
