// The page's personalized slots: filled from /v1/decide in time, or left with
// their default content (anti-flicker: the snippet's style hides them until
// then); what was shown is reported once on screen (impression) and when clicked
// (content_click). The DOM helpers without state are in personalize.js.
//   request(method, path, data) -> Promise of the answer; emit(type, props)
//   allowed() -> personalization consent; visitorId() -> the id, persisted
//   antiFlickerMs, context: the options of the same names

import { SLOT_ATTR, cleanContext, fillSlots, pageContext, reveal, slotElements, slotNames } from './personalize.js';

export function newSlots({ win, clock, request, emit, allowed, visitorId, antiFlickerMs, context }) {
  const shown = new WeakMap(); // slot element -> impression props
  const watching = new WeakMap(); // slot element -> its IntersectionObserver

  // An impression when the content is on screen, not merely in the page.
  function watchImpression(el, props) {
    const IO = win.IntersectionObserver;
    const previous = watching.get(el);
    if (previous) previous.disconnect();
    if (typeof IO !== 'function') return emit('impression', props);
    const observer = new IO((entries) => {
      if (!entries.some((entry) => entry.isIntersecting)) return;
      observer.disconnect();
      emit('impression', props);
    });
    watching.set(el, observer);
    observer.observe(el);
  }

  // Fills the slots in time, or leaves their default content: at most
  // `timeout` ms after `since` (when the snippet hid them).
  function decide(slots, opts) {
    opts = opts || {};
    const asked = typeof slots === 'string' ? [slots] : slots;
    const elements = slotElements(win.document, asked);
    const names = asked && asked.length ? asked : slotNames(elements);
    if (!names.length) return Promise.resolve({});
    let settled = false;
    let guard = null;
    const giveUp = () => {
      if (!settled) reveal(elements);
      settled = true;
    };
    if (!allowed()) giveUp();
    const timeout = opts.timeout === undefined ? antiFlickerMs : opts.timeout;
    if (timeout > 0) {
      const left = (opts.since || clock()) + timeout - clock();
      if (left <= 0) giveUp();
      else if (!settled) guard = win.setTimeout(giveUp, left);
    }
    if (settled) return Promise.resolve({});
    let siteContext = context;
    try {
      if (typeof siteContext === 'function') siteContext = siteContext();
    } catch (e) {
      siteContext = null;
    }
    const asking = cleanContext(Object.assign(pageContext(win, clock()), siteContext, opts.context));
    // No user_id: without an API key the server takes the person from the cookie.
    return request('POST', '/v1/decide', { visitor_id: visitorId(), slots: names, context: asking }).then((answer) => {
      const decisions = (answer && answer.decisions) || {};
      if (!settled) {
        settled = true;
        if (guard !== null) win.clearTimeout(guard);
        for (const [el, props] of fillSlots(elements, decisions)) {
          shown.set(el, props);
          watchImpression(el, props);
        }
      }
      return decisions;
    }, () => {
      giveUp();
      return {};
    });
  }

  return {
    decide,
    // A click inside a filled slot credits its decision.
    clicked(target) {
      const slot = target.closest(`[${SLOT_ATTR}]`);
      if (slot && shown.has(slot)) emit('content_click', shown.get(slot));
    },
  };
}
