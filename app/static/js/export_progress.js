// Export job page: while the package is built, move the progress bar (job_poller.js polls the job's status), and
// reload the page when it is done (the page then offers the download, or says why it failed).
(function () {
  "use strict";

  var poller = window.QualiflowJobPoller;
  var root = document.getElementById("export-job");
  var progress = document.getElementById("export-progress");

  poller.start(root, function (job) {
    poller.showProgress(progress, job.done, job.total);
    poller.setField(root, "done", String(job.done));
    poller.setField(root, "total", job.total ? String(job.total) : "…");
  }, function () {
    window.location.reload();
  });
}());
