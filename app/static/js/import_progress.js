// Import job page: poll the job's JSON status every second while it runs, move the progress bar,
// then show the result (rows imported, or the table of refused rows) without reloading the page.
(function () {
  "use strict";

  var root = document.getElementById("import-job");
  if (!root || root.getAttribute("data-status") !== "running") {
    return;
  }
  var url = root.getAttribute("data-status-url");
  var progress = document.getElementById("import-progress");
  var bar = progress.querySelector(".progress-bar");

  function setField(container, name, value) {
    container.querySelectorAll('[data-field="' + name + '"]').forEach(function (element) {
      element.textContent = value;
    });
  }

  function showProgress(job) {
    var percent = job.expected ? Math.min(100, Math.round(100 * job.read / job.expected)) : 0;
    progress.setAttribute("aria-valuenow", String(percent));
    bar.style.width = (job.expected ? percent : 100) + "%";
    setField(root, "read", String(job.read));
    setField(root, "expected", job.expected ? String(job.expected) : "…");
  }

  function showErrors(job) {
    var table = document.getElementById("import-errors");
    var body = table.tBodies[0];
    body.textContent = "";
    job.errors.forEach(function (error) {
      var row = body.insertRow();
      var line = row.insertCell();
      line.className = "text-end";
      line.textContent = String(error.line);
      var column = row.insertCell();
      var code = document.createElement("code");
      code.textContent = error.column;
      column.appendChild(code);
      if (error.column_label) {
        column.appendChild(document.createTextNode(" " + error.column_label));
      }
      row.insertCell().textContent = error.reason;
    });
    table.hidden = job.errors.length === 0;
  }

  function showResult(job) {
    root.setAttribute("data-status", job.status);
    progress.setAttribute("aria-valuenow", "100");
    bar.style.width = "100%";
    bar.classList.remove("progress-bar-striped", "progress-bar-animated");
    bar.classList.add(job.status === "succeeded" ? "bg-success" : "bg-danger");
    document.getElementById("import-progress-text").textContent = "";
    var badge = document.querySelector("#import-status .badge");
    if (badge) {
      badge.textContent = root.getAttribute("data-label-" + job.status) || job.status;
      badge.className = "badge " + (job.status === "succeeded" ? "text-bg-success" : "text-bg-danger");
    }
    var result;
    if (job.status === "succeeded") {
      result = document.getElementById("import-succeeded");
      setField(result, "imported_rows", String(job.imported_rows));
    } else {
      result = document.getElementById("import-failed");
      setField(result, "error_count", String(job.error_count));
      setField(result, "message", job.errors.length ? "" : job.message);
      showErrors(job);
    }
    result.hidden = false;
    result.focus();
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
        if (job.status === "running") {
          showProgress(job);
          window.setTimeout(poll, 1000);
        } else {
          showResult(job);
        }
      })
      .catch(function () {
        window.setTimeout(poll, 5000);  // a network hiccup: keep trying, more slowly
      });
  }

  window.setTimeout(poll, 1000);
}());
