// Small browser helpers with no state: ids, cookies, storage that never throws.

// randomUUID needs a secure context; getRandomValues is everywhere.
export function uuid4(cryptoObj = globalThis.crypto) {
  if (cryptoObj.randomUUID) return cryptoObj.randomUUID();
  const b = cryptoObj.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 15) | 64; // version 4
  b[8] = (b[8] & 63) | 128; // RFC 4122 variant
  const h = Array.from(b, (x) => (x + 256).toString(16).slice(1)).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function readCookie(doc, name) {
  const found = ('; ' + doc.cookie).split('; ' + name + '=')[1];
  return found === undefined ? null : decodeURIComponent(found.split(';')[0]);
}

export function writeCookie(doc, name, value, maxAgeSeconds, domain) {
  const secure = doc.location && doc.location.protocol === 'https:' ? '; Secure' : '';
  doc.cookie = `${name}=${encodeURIComponent(value)}; Max-Age=${maxAgeSeconds}; Path=/; SameSite=Lax` +
    (domain ? `; Domain=${domain}` : '') + secure;
}

// Removes the cookie both host-only (as the collector sets it) and on the configured domain.
export function deleteCookie(doc, name, domain) {
  writeCookie(doc, name, '', -1);
  if (domain) writeCookie(doc, name, '', -1, domain);
}

// localStorage when it works (it throws in some private modes and sandboxed
// frames and when full), else a Map: callers never see an exception.
export function safeStorage(win) {
  let ls;
  try {
    ls = win.localStorage;
    ls.setItem('clickstream_t', '1');
    ls.removeItem('clickstream_t');
  } catch (e) {
    ls = null;
  }
  const mem = Object.create(null);
  const safely = (fn, fallback) => {
    try {
      return fn();
    } catch (e) {
      return fallback;
    }
  };
  const get = (key) => safely(() => (ls ? ls.getItem(key) : key in mem ? mem[key] : null), null);
  return {
    get,
    set: (key, value) => safely(() => (ls ? ls.setItem(key, value) : (mem[key] = value), true), false),
    del: (key) => safely(() => (ls ? ls.removeItem(key) : delete mem[key])),
    keys: () => safely(() => (ls ? Array.from({ length: ls.length }, (_, i) => ls.key(i)) : Object.keys(mem)), []),
    json: (key) => safely(() => JSON.parse(get(key)), null),
  };
}

const encoder = new TextEncoder();

export function byteLength(text) {
  return encoder.encode(text).length;
}
