// Sessions: a new id after `timeoutMs` without activity, and a count that goes up.

export const SESSION_TIMEOUT_MS = 30 * 60 * 1000;

// prev: {id, index, last} or null. Pure: returns the session for an activity at `now`.
export function nextSession(prev, now, newId, timeoutMs = SESSION_TIMEOUT_MS) {
  if (prev && prev.id && now - prev.last < timeoutMs && now >= prev.last - timeoutMs) {
    return { id: prev.id, index: prev.index || 1, last: Math.max(now, prev.last) };
  }
  return { id: newId(), index: ((prev && prev.index) || 0) + 1, last: now };
}
