// The copy-paste snippet, as sites put it in <head>. It defines a stub that
// queues calls until the library arrives, hides the personalized slots for at
// most `hideMs` (anti-flicker), and loads the library asynchronously.

import { READY_ATTR, SLOT_ATTR } from './personalize.js';

export const HIDE_CSS = `[${SLOT_ATTR}]:not([${READY_ATTR}]){visibility:hidden!important}`;

export function snippet({ src, endpoint = '', hideMs = 300, options = {} }) {
  const init = JSON.stringify(Object.assign({ endpoint }, options));
  return `<script>
(function(w,d,u,ms){var c=w.clickstream=w.clickstream||function(){(c.q=c.q||[]).push(arguments)};c.l=Date.now();c.h=ms;
var s=d.createElement('style');s.textContent='${HIDE_CSS}';d.head.appendChild(s);setTimeout(function(){s.remove()},ms);
var j=d.createElement('script');j.async=true;j.src=u;d.head.appendChild(j)})(window,document,${JSON.stringify(src)},${hideMs});
clickstream('init',${init});
</script>`;
}
