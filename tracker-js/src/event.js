// Event building, pure: what the tracker knows comes in as values, the event
// goes out. No cookie, storage, location or clock is read here.

import { byteLength } from './util.js';

export const EVENT_MAX_BYTES = 32 * 1024; // one event must fit a beacon with room for others

// state: {visitorId, session: {id, index}, userId?, url, referrer?, title?}
// input: {id, type, props?}; the id is made once by the caller, so a retry of
// the event is the same event. clock() -> ms since epoch.
// Page views also carry the referrer, the title and the session's index.
export function buildEvent(state, input, clock) {
  const view = input.type === 'page_view';
  const event = {
    event_id: input.id,
    type: input.type,
    visitor_id: state.visitorId,
    session_id: state.session.id,
    ts: clock(),
    url: state.url,
  };
  if (view) {
    event.referrer = state.referrer;
    event.title = state.title;
  }
  event.props = Object.assign({}, input.props);
  if (view) event.props.session_index = state.session.index;
  if (state.userId) event.user_id = state.userId;
  return event;
}

// custom:NAME, with NAME as the collector accepts it ('add to list' -> 'add_to_list').
export const customType = (name) => 'custom:' + String(name).replace(/[^\w.-]/g, '_').slice(0, 64);

export const fits = (event) => byteLength(JSON.stringify(event)) <= EVENT_MAX_BYTES;
