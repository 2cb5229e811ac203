// The emitter: sends the outbox to the collector in batches (batchSize events or
// batchMs after the first), retries with backoff what may succeed later (network
// errors, 5xx, 408, 429; see transport.js), drops what never will (other 4xx),
// and hands the queue to sendBeacon when the page goes away. It is made with
// everything it touches, so tests drive it with fakes:
//   url                    the collector's /v1/events
//   fetch(url, init)       as the browser's; sendBeacon(url, data) -> true when queued
//   outbox                 see queue.js
//   clock() -> ms; timers  {setTimeout, clearTimeout}
//   canSend() -> false     while the visitor has not agreed, or the browser is offline
//   random                 the backoff's jitter (Math.random)

import { backoffMs, body, chunk, classify, RETRY } from './transport.js';

const ids = (events) => events.map((e) => e.event_id);

export function newEmitter({ url, fetch, sendBeacon, outbox, clock, timers, canSend, batchSize, batchMs, random }) {
  let timer = null;
  let dueAt = 0;
  let sending = false;
  let attempt = 0;
  let retryAt = 0;

  // One timer: an earlier deadline replaces a later one, never the reverse.
  function schedule(ms) {
    const at = clock() + ms;
    if (timer !== null) {
      if (dueAt <= at) return;
      timers.clearTimeout(timer);
    }
    dueAt = at;
    timer = timers.setTimeout(() => {
      timer = null;
      flush();
    }, ms);
  }

  function post(events, keepalive) {
    return fetch(url, { method: 'POST', body: body(events), credentials: 'include', keepalive: !!keepalive })
      .then(
        (res) => ({ verdict: classify(res.status), retryAfter: res.headers && res.headers.get('Retry-After') }),
        () => ({ verdict: RETRY }), // network error, CORS refusal, offline
      );
  }

  // Sends the outbox in chunks. A retryable failure stops the round and waits;
  // the events keep their event_id, so a retry can never count one twice.
  async function flush() {
    if (sending || !outbox.size || !canSend()) return;
    const wait = retryAt - clock();
    if (wait > 0) return schedule(wait);
    sending = true;
    try {
      for (const batch of chunk(outbox.events)) {
        const outcome = await post(batch);
        if (outcome.verdict === RETRY) {
          retryAt = clock() + backoffMs(++attempt, outcome.retryAfter, random);
          schedule(retryAt - clock());
          return;
        }
        attempt = retryAt = 0;
        outbox.remove(ids(batch)); // delivered, or refused for good (4xx)
      }
    } finally {
      sending = false;
    }
    added();
  }

  // A full batch goes at once, a smaller one after batchMs.
  function added() {
    if (outbox.size >= batchSize) flush();
    else if (outbox.size) schedule(batchMs);
  }

  return {
    add(event) {
      outbox.push(event);
      added();
    },
    flush,
    post,
    // Back online: try at once, whatever the backoff said.
    resume() {
      attempt = retryAt = 0;
      flush();
    },
    // The page is hidden or going away: sendBeacon delivers after unload, in
    // chunks under 64 KB (the browsers' budget); where it is missing or refuses,
    // fetch with keepalive. closing: what is left goes with the next page of this site.
    leave(closing) {
      if (outbox.size && canSend()) {
        const handedOver = [];
        for (const batch of chunk(outbox.events)) {
          let queued = false;
          try {
            queued = !!sendBeacon(url, body(batch));
          } catch (e) { /* missing or refused: fetch instead */ }
          if (queued) handedOver.push(...batch);
          else post(batch, true).then((o) => o.verdict !== RETRY && outbox.remove(ids(batch)));
        }
        outbox.remove(ids(handedOver));
      }
      if (closing) outbox.save(true);
    },
  };
}
