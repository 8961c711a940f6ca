// Supplier score chart: the score over time (Chart.js, from the figure's JSON block, no inline script) on the
// threshold bands - green from the alert threshold up, amber between the limit and the alert threshold, red below
// the limit; an evaluation without a score (not enough data) leaves a gap. The same figures are in the table below.
(function () {
  "use strict";
  window.qualiflowCharts("supplier-chart", (canvas, spec, lang) => {
    const when = new Intl.DateTimeFormat(lang, { timeZone: spec.zone, year: "numeric", month: "2-digit",
      day: "2-digit" });
    const first = spec.points[0][0];
    const last = spec.points[spec.points.length - 1][0];
    const start = first === last ? first - 86400000 : first;
    const end = first === last ? last + 86400000 : last;
    const edge = (y) => [{ x: start, y }, { x: end, y }];
    const band = (label, y, colour, fill) => ({ label, data: edge(y), borderColor: colour, borderWidth: 1,
      borderDash: [6, 3], pointRadius: 0, fill, backgroundColor: colour.replace("1)", "0.12)") });
    const datasets = [
      band(spec.labels.limit, 0, "rgba(220, 53, 69, 1)", false),
      band(spec.labels.limit, spec.limit, "rgba(220, 53, 69, 1)", "-1"),
      band(spec.labels.alert, spec.alert, "rgba(255, 193, 7, 1)", "-1"),
      band(spec.labels.good, 100, "rgba(25, 135, 84, 1)", "-1"),
      { label: spec.labels.score, data: spec.points.map((p) => ({ x: p[0], y: p[1] })), borderColor: "#0d6efd",
        backgroundColor: "#0d6efd", pointRadius: 2, borderWidth: 2, tension: 0, fill: false, spanGaps: false },
    ];
    new window.Chart(canvas, {
      type: "line",
      data: { datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        plugins: {
          legend: { display: false },
          tooltip: {
            filter: (item) => item.datasetIndex === datasets.length - 1,
            callbacks: {
              title: (items) => (items.length ? when.format(new Date(items[0].parsed.x)) : ""),
              label: (item) => `${item.dataset.label}: ${item.parsed.y}`,
            },
          },
        },
        scales: {
          x: { type: "linear", min: start, max: end,
            ticks: { maxTicksLimit: 7, callback: (value) => when.format(new Date(value)) } },
          y: { min: 0, max: 100 },
        },
      },
    });
    canvas.dataset.drawn = "1";
  });
})();
