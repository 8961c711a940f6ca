// The quality dashboard's charts: Chart.js draws each tile's figures from the page's JSON block (no inline script);
// the table under each chart holds the same figures for readers without JavaScript or a screen.
(function () {
  "use strict";
  const block = document.getElementById("dashboard-charts");
  if (!block || typeof window.Chart === "undefined") {
    return;
  }
  const charts = JSON.parse(block.textContent);
  const reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  for (const spec of charts) {
    const canvas = document.querySelector(`canvas[data-chart="${spec.id}"]`);
    if (!canvas) {
      continue;
    }
    const doughnut = spec.type === "doughnut";
    const datasets = doughnut
      ? spec.datasets.map((set) => ({ ...set, backgroundColor: Array.isArray(set.backgroundColor)
        ? set.backgroundColor : palette(set.data.length) })) // a tile may colour its slices (supplier bands)
      : spec.datasets.map((set) => ({ ...set, maxBarThickness: 48 }));
    new window.Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets },
      options: {
        animation: reduceMotion ? false : undefined,
        maintainAspectRatio: false,
        plugins: { legend: { display: doughnut || datasets.length > 1, position: "bottom" } },
        scales: doughnut ? {} : {
          x: { stacked: spec.stacked },
          y: { stacked: spec.stacked, beginAtZero: true, ticks: { precision: 0 } },
        },
      },
    });
    canvas.dataset.drawn = "1";
  }

  function palette(count) {
    const colours = ["#0d6efd", "#dc3545", "#ffc107", "#198754", "#6f42c1", "#fd7e14", "#20c997", "#6c757d"];
    return Array.from({ length: count }, (_, i) => colours[i % colours.length]);
  }
})();
