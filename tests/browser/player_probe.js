// castgate browser test: registered to run before castgate's watch page loads (DevTools
// Page.addScriptToEvaluateOnNewDocument, tests/browser/glass.rs), it notes what the page does not
// keep, for the glass-to-glass report: hls.js's non-fatal errors by kind (bufferStalledError,
// bufferSeekOverHole, ...) and how often the <video> waited for data, in window.castgateProbe.
// It wraps window.Hls as the page's vendor script defines it; the player behaves the same.
'use strict';

(() => {
  const probe = (window.castgateProbe = { hlsErrors: {}, waiting: 0 });
  let wrapped;
  Object.defineProperty(window, 'Hls', {
    configurable: true,
    get() {
      return wrapped;
    },
    set(Hls) {
      wrapped = class extends Hls {
        constructor(config) {
          super(config);
          this.on(Hls.Events.ERROR, (event, data) => {
            probe.hlsErrors[data.details] = (probe.hlsErrors[data.details] || 0) + 1;
          });
        }
      };
    },
  });
  document.addEventListener('DOMContentLoaded', () => {
    const video = document.getElementById('video');
    if (video) video.addEventListener('waiting', () => { probe.waiting += 1; });
  });
})();
