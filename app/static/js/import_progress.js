// Import job page: while it runs, move the progress bar (job_poller.js polls the job's status), then show the
// result (rows imported, or the table of refused rows) without reloading the page.
(function () {
  "use strict";

  var poller = window.QualiflowJobPoller;
  var setField = poller.setField;
  var root = document.getElementById("import-job");
  var progress = document.getElementById("import-progress");
  var bar = progress && progress.querySelector(".progress-bar");

  function showProgress(job) {
    poller.showProgress(progress, job.read, job.expected);
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

  poller.start(root, showProgress, showResult);
}());
