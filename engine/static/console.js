// The console's live parts: an element with data-poll="URL" gets that URL's HTML every
// data-every ms (the server renders it; no build step, no framework). Paused while
// the tab is hidden; a failed poll keeps what is shown and tries again; a part that
// holds an element marked data-poll-done (a finished backtest) is not asked again.
(function () {
  'use strict';
  function poll(el) {
    var every = Number(el.getAttribute('data-every')) || 3000;
    function tick() {
      if (document.hidden) return setTimeout(tick, every);
      fetch(el.getAttribute('data-poll'), { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
        .then(function (res) { return res.ok ? res.text() : null; })
        .then(function (html) {
          if (html !== null && !el.contains(document.activeElement)) el.innerHTML = html;
        })
        .catch(function () {})
        .then(function () { if (!el.querySelector('[data-poll-done]')) setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }
  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('[data-poll]').forEach(poll);
    document.querySelectorAll('form.erase').forEach(function (form) {
      form.addEventListener('submit', function (e) {
        if (!window.confirm('Erase every trace of this person? This cannot be undone.')) e.preventDefault();
      });
    });
  });
})();
