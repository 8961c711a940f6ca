// Shared by the background job pages (imports, evidence exports): poll a job's JSON status every second while it
// runs, move its progress bar, and hand the finished job to the page. Loaded before the page's own script.
window.QualiflowJobPoller = (function () {
  "use strict";

  function setField(container, name, value) {
    container.querySelectorAll('[data-field="' + name + '"]').forEach(function (element) {
      element.textContent = value;
    });
  }

  // Move the bar to done/total; with no total yet the bar is full and striped (an indeterminate state).
  function showProgress(progress, done, total) {
    var percent = total ? Math.min(100, Math.round(100 * done / total)) : 0;
    progress.setAttribute("aria-valuenow", String(percent));
    progress.querySelector(".progress-bar").style.width = (total ? percent : 100) + "%";
  }

  // Poll root's data-status-url while root's data-status is "running": onRunning(job) after every answer that
  // is still running, onFinished(job) once when it is not. A network hiccup retries more slowly.
  function start(root, onRunning, onFinished) {
    if (!root || root.getAttribute("data-status") !== "running") {
      return;
    }
    var url = root.getAttribute("data-status-url");

    function poll() {
      fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"})
        .then(function (response) {
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.json();
        })
        .then(function (job) {
          if (job.status === "running") {
            onRunning(job);
            window.setTimeout(poll, 1000);
          } else {
            onFinished(job);
          }
        })
        .catch(function () {
          window.setTimeout(poll, 5000);
        });
    }

    window.setTimeout(poll, 1000);
  }

  return {setField: setField, showProgress: showProgress, start: start};
}());
