// Sensor charts: Chart.js redraws the server's SVG chart (readings as min/max columns, the allowed band, the
// excursions) from the figure's JSON block, with hover read-outs; without JavaScript or Chart.js the SVG stays.
(function () {
  "use strict";
  window.qualiflowCharts("conditions-chart", (canvas, spec, lang) => {
    const when = new Intl.DateTimeFormat(lang, { timeZone: spec.zone, month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hour12: false });
    const line = (label, data, colour, extra) => ({ label, data, borderColor: colour, pointRadius: 0,
      borderWidth: 1.2, tension: 0, ...extra });
    const datasets = [
      line(spec.labels.max, spec.points.map((p) => ({ x: p[0], y: p[2] })), "#0d6efd",
        { fill: "+1", backgroundColor: "rgba(13, 110, 253, 0.3)" }),
      line(spec.labels.min, spec.points.map((p) => ({ x: p[0], y: p[1] })), "#0d6efd", { fill: false }),
    ];
    for (const band of spec.bands) {
      const low = band.low === null ? spec.low : band.low;
      const high = band.high === null ? spec.high : band.high;
      const edge = (y) => [{ x: spec.start, y }, { x: spec.end, y }];
      datasets.push(line(`${spec.labels.band}: ${band.label}`, edge(low), "#198754",
        { borderDash: [6, 3], fill: false }));
      datasets.push(line(`${spec.labels.band}: ${band.label}`, edge(high), "#198754",
        { borderDash: [6, 3], fill: "-1", backgroundColor: "rgba(25, 135, 84, 0.12)" }));
    }
    for (const excursion of spec.excursions) {
      datasets.push(line(excursion.label, [{ x: Math.max(excursion.start, spec.start), y: spec.high },
        { x: Math.min(excursion.end, spec.end), y: spec.high }], "rgba(220, 53, 69, 0.6)",
      { fill: "start", backgroundColor: "rgba(220, 53, 69, 0.15)" }));
    }
    new window.Chart(canvas, {
      type: "line",
      data: { datasets },
      options: {
        animation: false, // hundreds of points: drawn at once
        maintainAspectRatio: false,
        parsing: false,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: {
            title: (items) => (items.length ? when.format(new Date(items[0].parsed.x)) : ""),
            label: (item) => `${item.dataset.label}: ${item.parsed.y.toFixed(1)} ${spec.unit}`,
          } },
        },
        scales: {
          x: { type: "linear", min: spec.start, max: spec.end,
            ticks: { maxTicksLimit: 7, callback: (value) => when.format(new Date(value)) } },
          y: { min: spec.low, max: spec.high, title: { display: true, text: spec.unit } },
        },
      },
    });
    const figure = canvas.closest("figure");
    figure.querySelector("svg.conditions-svg").style.display = "none";
    canvas.parentElement.hidden = false;
    canvas.dataset.drawn = "1";
  });
})();
