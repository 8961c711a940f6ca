// Export job page: poll the job's JSON status every second while the package is built, move the progress bar,
// and reload the page when it is done (the page then offers the download, or says why it failed).
(function () {
  "use strict";

  var root = document.getElementById("export-job");
  if (!root || root.getAttribute("data-status") !== "running") {
    return;
  }
  var url = root.getAttribute("data-status-url");
  var progress = document.getElementById("export-progress");
  var bar = progress.querySelector(".progress-bar");

  function setField(name, value) {
    root.querySelectorAll('[data-field="' + name + '"]').forEach(function (element) {
      element.textContent = value;
    });
  }

  function poll() {
    fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (job) {
        if (job.status !== "running") {
          window.location.reload();
          return;
        }
        var percent = job.total ? Math.min(100, Math.round(100 * job.done / job.total)) : 0;
        progress.setAttribute("aria-valuenow", String(percent));
        bar.style.width = (job.total ? percent : 100) + "%";
        setField("done", String(job.done));
        setField("total", job.total ? String(job.total) : "…");
        window.setTimeout(poll, 1000);
      })
      .catch(function () {
        window.setTimeout(poll, 5000);  // a network hiccup: keep trying, more slowly
      });
  }

  window.setTimeout(poll, 1000);
}());
