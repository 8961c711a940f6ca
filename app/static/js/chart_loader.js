// Shared by the pages that draw Chart.js figures from a JSON block (no inline script, so the content security
// policy holds): finds each canvas carrying data-<name>, reads the JSON block its value names, and hands the parsed
// figure with the page language to the page's drawing function. Nothing is drawn without Chart.js, a block or points.
(function () {
  "use strict";
  window.qualiflowCharts = function (attribute, draw) {
    if (typeof window.Chart === "undefined") {
      return;
    }
    const key = attribute.replace(/-([a-z])/g, (_match, letter) => letter.toUpperCase());
    for (const canvas of document.querySelectorAll(`canvas[data-${attribute}]`)) {
      const block = document.getElementById(canvas.dataset[key]);
      if (!block) {
        continue;
      }
      const spec = JSON.parse(block.textContent);
      if (!spec.points.length) {
        continue;
      }
      draw(canvas, spec, document.documentElement.lang || "en");
    }
  };
})();
