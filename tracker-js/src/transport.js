// What to do with a response, how long to wait before retrying, and how to cut
// a queue into request bodies small enough for sendBeacon / keepalive (64 KB).

import { byteLength } from './util.js';

export const DONE = 'done';
export const DROP = 'drop';
export const RETRY = 'retry';
export const CHUNK_BYTES = 60000; // under the 64 KiB keepalive budget, with room to spare
export const CHUNK_EVENTS = 100;
export const MAX_BACKOFF_MS = 60000;
export const MAX_RETRY_AFTER_MS = 300000;
const WRAPPER_BYTES = '{"events":[]}'.length;

// status 0 (or missing) means the request never got an answer: network error.
// 408 and 429 are the two 4xx that mean "later"; any other 4xx will fail again
// the same way, so it is dropped.
export function classify(status) {
  if (!status) return RETRY;
  if (status >= 200 && status < 300) return DONE;
  if (status >= 500 || status === 408 || status === 429) return RETRY;
  return DROP;
}

// Exponential backoff with jitter (1 s, 2 s, 4 s ... 60 s); a Retry-After in
// seconds is honoured as the least wait.
export function backoffMs(attempt, retryAfter, random = Math.random) {
  const base = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, Math.max(0, attempt - 1)));
  const wait = base / 2 + (random() * base) / 2;
  const told = Number(retryAfter) * 1000;
  return told > 0 ? Math.min(MAX_RETRY_AFTER_MS, Math.max(told, wait)) : wait;
}

export function body(events) {
  return JSON.stringify({ events });
}

// Splits events, in order, into groups whose body stays under maxBytes.
export function chunk(events, maxBytes = CHUNK_BYTES, maxCount = CHUNK_EVENTS) {
  const chunks = [];
  let current = [];
  let size = WRAPPER_BYTES;
  for (const event of events) {
    const bytes = byteLength(JSON.stringify(event)) + 1; // + the comma
    if (current.length && (size + bytes > maxBytes || current.length >= maxCount)) {
      chunks.push(current);
      current = [];
      size = WRAPPER_BYTES;
    }
    current.push(event);
    size += bytes;
  }
  if (current.length) chunks.push(current);
  return chunks;
}
