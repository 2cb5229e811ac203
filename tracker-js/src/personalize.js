// In-page personalization helpers: the context sent to /v1/decide, and filling
// the elements marked data-clickstream-slot. The server renders and escapes the
// content's tokens, so the tracker inserts it as it comes and never templates.

export const SLOT_ATTR = 'data-clickstream-slot';
export const READY_ATTR = 'data-clickstream-ready';
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const CONTEXT_TEXT_MAX = 512; // the decide endpoint's limit per value

export function deviceType(userAgent, maxTouchPoints) {
  const ua = userAgent || '';
  // iPadOS says Macintosh, but has a touch screen.
  if (/iPad|Tablet|Android(?!.*Mobi)/i.test(ua) || (/Macintosh/.test(ua) && maxTouchPoints > 1)) return 'tablet';
  if (/Mobi|iPhone|Android/i.test(ua)) return 'mobile';
  return 'desktop';
}

const pad = (n) => (n < 10 ? '0' : '') + n;

export function pageContext(win, nowMs) {
  const nav = win.navigator || {};
  const at = new Date(nowMs);
  let timezone;
  try {
    timezone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) { /* old browser: the server falls back to UTC */ }
  return {
    url: win.location.href,
    referrer: win.document.referrer,
    language: nav.language,
    timezone,
    device: deviceType(nav.userAgent, nav.maxTouchPoints),
    local_time: pad(at.getHours()) + ':' + pad(at.getMinutes()),
    day_of_week: DAYS[at.getDay()],
  };
}

// Flat plain values only, long text cut: what the decide endpoint accepts.
export function cleanContext(context) {
  const out = {};
  for (const key of Object.keys(context)) {
    let value = context[key];
    if (value === undefined || value === null || value === '') continue;
    if (typeof value === 'string') value = value.slice(0, CONTEXT_TEXT_MAX);
    else if (typeof value !== 'number' && typeof value !== 'boolean') continue;
    out[key] = value;
  }
  return out;
}

export function slotElements(doc, names) {
  const all = Array.from(doc.querySelectorAll(`[${SLOT_ATTR}]`));
  return names && names.length ? all.filter((el) => names.indexOf(el.getAttribute(SLOT_ATTR)) >= 0) : all;
}

export function slotNames(elements) {
  return Array.from(new Set(elements.map((el) => el.getAttribute(SLOT_ATTR))));
}

export function reveal(elements) {
  for (const el of elements) el.setAttribute(READY_ATTR, '');
}

// The props of impression and content_click for one decision, or null when the
// decision has nothing to report (no such slot in the catalog).
export function decisionProps(slot, decision) {
  const content = decision.content_id || decision.variant;
  if (!content) return null;
  const props = { slot, content };
  if (decision.variant) props.variant = decision.variant;
  if (decision.decision_id) props.decision_id = decision.decision_id;
  return props;
}

// Puts each decision's content into its elements and reveals them; elements
// without a usable decision keep their default content. Returns [element, props].
export function fillSlots(elements, decisions) {
  const shown = [];
  for (const el of elements) {
    const slot = el.getAttribute(SLOT_ATTR);
    const decision = decisions && decisions[slot];
    if (decision && typeof decision.content === 'string') {
      el.innerHTML = decision.content;
      const props = decisionProps(slot, decision);
      if (props) shown.push([el, props]);
    }
  }
  reveal(elements);
  return shown;
}
