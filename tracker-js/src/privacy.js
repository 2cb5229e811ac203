// Who may be tracked or personalized: the opt-out cookie, the visitor's explicit
// consent, the browser's Do-Not-Track / Global Privacy Control, consent-first mode.

export function browserSaysNo(win) {
  const nav = win.navigator || {};
  const dnt = nav.doNotTrack || win.doNotTrack || nav.msDoNotTrack;
  return dnt === '1' || dnt === 'yes' || nav.globalPrivacyControl === true;
}

// consent: the visitor's explicit choices {analytics?, personalization?}.
// An explicit choice beats the browser signal; the opt-out cookie beats everything.
export function permissions({ optedOut, consent, consentFirst, browserNo }) {
  const byDefault = !consentFirst && !browserNo;
  const pick = (choice) => !optedOut && (typeof choice === 'boolean' ? choice : byDefault);
  const given = consent || {};
  return {
    analytics: pick(given.analytics),
    personalization: pick(given.personalization),
    // Consent-first and not yet asked: keep events in memory until the answer.
    waiting: !optedOut && consentFirst && !browserNo && typeof given.analytics !== 'boolean',
  };
}
