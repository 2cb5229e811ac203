// Engaged time: the page is visible and the visitor did something (scroll, key,
// pointer, touch) in the last `idleMs`. Overlapping windows count once.

export class Engagement {
  constructor(idleMs = 5000) {
    this._idleMs = idleMs;
    this._total = 0;
    this._start = null; // start of the open window, null when idle
    this._until = 0;
  }

  activity(t) {
    if (this._start === null || t > this._until) {
      this._close();
      this._start = t;
    }
    this._until = t + this._idleMs;
  }

  hide(t) {
    if (this._start !== null) this._until = Math.min(this._until, t);
    this._close();
  }

  // Engaged ms up to t since the last take.
  take(t) {
    let ms = this._total;
    this._total = 0;
    if (this._start !== null) {
      const end = Math.min(t, this._until);
      ms += Math.max(0, end - this._start);
      this._start = t >= this._until ? null : t;
    }
    return ms;
  }

  _close() {
    if (this._start !== null) this._total += Math.max(0, this._until - this._start);
    this._start = null;
  }
}
