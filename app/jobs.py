"""Background jobs on Dramatiq: lot file imports, evidence packages (and the outbox sender, when a queue is
configured).

With `QUALIFLOW_QUEUE_URL` (redis://...) the web processes only enqueue and `flask queue worker` processes run the
jobs: a message is acknowledged after its job finished, so a worker killed in the middle of one leaves it to be
delivered again to another worker (after `QUALIFLOW_QUEUE_HEARTBEAT_SECONDS`); a job that raises is retried with
backoff (`QUALIFLOW_QUEUE_MAX_RETRIES`). Without it, an in-process broker and a small worker pool inside the web
process run them (`make run` needs nothing more); a job lost with its process is then failed with its reason by the
scheduler's stale-import check instead of staying "running".
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from flask import Flask, current_app

log = logging.getLogger(__name__)

IMPORT_ACTOR = "lots.import_file"
OUTBOX_ACTOR = "outbox.send_due"
EXPORT_ACTOR = "evidence.export"
QUEUE_NAME = "qualiflow"
# How often (per million broker commands) a Redis worker looks for the unacknowledged messages of dead workers
# and puts them back in the queue; Dramatiq's default (1,000) can leave a killed worker's job waiting for an hour.
MAINTENANCE_CHANCE = 50_000


class Jobs:
    """One application's broker, its actors and (for the in-process broker) its worker pool."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.url = app.config.get("QUEUE_URL") or ""
        self.broker = self._broker()
        self.worker: dramatiq.Worker | None = None
        self._lock = threading.Lock()
        retries = {"max_retries": app.config.get("QUEUE_MAX_RETRIES", 3), "min_backoff": 1_000,
                   "max_backoff": 60_000}
        self.actors = {
            IMPORT_ACTOR: self._actor(_import_file, IMPORT_ACTOR, time_limit=6 * 3600 * 1000, **retries),
            OUTBOX_ACTOR: self._actor(_send_outbox, OUTBOX_ACTOR, time_limit=15 * 60 * 1000, max_retries=0,
                                       max_age=60_000),
            EXPORT_ACTOR: self._actor(_export_package, EXPORT_ACTOR, time_limit=6 * 3600 * 1000, **retries),
        }

    @property
    def embedded(self) -> bool:
        return not self.url

    def _broker(self) -> dramatiq.Broker:
        if self.embedded:
            return StubBroker()
        from dramatiq.brokers.redis import RedisBroker
        heartbeat = int(self.app.config.get("QUEUE_HEARTBEAT_SECONDS", 60)) * 1000
        return RedisBroker(url=self.url, namespace=self.app.config.get("QUEUE_NAMESPACE", "qualiflow"),
                           heartbeat_timeout=heartbeat, maintenance_chance=MAINTENANCE_CHANCE)

    def _actor(self, fn: Callable[..., None], name: str, **options: Any) -> dramatiq.Actor:
        app = self.app

        def run(*args: Any) -> None:
            with app.app_context():
                fn(*args)

        run.__name__ = run.__qualname__ = fn.__name__
        run.__module__ = fn.__module__
        return dramatiq.Actor(run, broker=self.broker, actor_name=name, queue_name=QUEUE_NAME, priority=0,
                              options=options)

    def enqueue(self, name: str, *args: Any) -> None:
        """Queue a job; in-process, start the worker pool on first use."""
        if self.embedded:
            self.start_worker(self.app.config.get("QUEUE_THREADS", 2))
        self.actors[name].send(*args)

    def start_worker(self, threads: int) -> dramatiq.Worker:
        with self._lock:
            if self.worker is None:
                self.worker = dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=200)
                self.worker.start()
            return self.worker

    def stop(self, timeout_ms: int = 50_000) -> None:
        """Stop taking jobs and wait up to timeout_ms for running ones (a job cut short is delivered again)."""
        with self._lock:
            worker, self.worker = self.worker, None
        if worker is not None:
            worker.stop(timeout=timeout_ms)
        self.broker.close()

    def join(self, timeout_ms: int = 120_000) -> None:
        """Wait until the in-process queue is empty and its jobs done (tests; a package with its PDF report takes
        tens of seconds on a loaded 2-core CI machine)."""
        if self.embedded and self.worker is not None:
            self.broker.join(QUEUE_NAME, timeout=timeout_ms, fail_fast=False)
            self.worker.join()


def jobs(app: Flask | None = None) -> Jobs:
    """The application's job queue, created on first use."""
    app = app or current_app._get_current_object()
    found = app.extensions.get("qualiflow_jobs")
    if found is None:
        found = app.extensions.setdefault("qualiflow_jobs", Jobs(app))
    return found


def enqueue_import(job_id: int) -> None:
    """Run an import job (imports.start_import made it) on the queue."""
    jobs().enqueue(IMPORT_ACTOR, job_id)


def enqueue_export(job_id: int) -> None:
    """Build an evidence package (exports.start_export made its job) on the queue."""
    jobs().enqueue(EXPORT_ACTOR, job_id)


# The web layer builds packages (it renders their pages); it registers its builder here when imported, so this
# module runs it without importing the web layer.
_export_builder: list[Callable[..., Any]] = []


def register_export_builder(build: Callable[..., Any]) -> None:
    _export_builder[:] = [build]


def queue_configured(app: Flask | None = None) -> bool:
    app = app or current_app
    return bool(app.config.get("QUEUE_URL"))


# --- the jobs --------------------------------------------------------------------------------------------------------

def _import_file(job_id: int) -> None:
    """Run a lot file import unless it is no longer running (a redelivered message of a job that finished, or
    that the stale check failed meanwhile); an exception (e.g. the database gone) lets the queue retry it."""
    from app.extensions import db
    from app.models import ImportJob
    from app.services.lots import imports

    job = db.session.get(ImportJob, job_id)
    try:
        if job is None or job.status != "running":
            log.info("import job %s: %s, nothing to run", job_id, "gone" if job is None else job.status)
            return
        if not imports.stored_file(job).exists():
            imports._finish_failed(job_id, "The uploaded file is no longer there (it was removed, or this worker "
                                   "does not share the upload directory). Upload the file again.", [], 0)
            return
        imports.run_import(job_id)
    finally:
        db.session.remove()


def _export_package(job_id: int) -> None:
    """Build an export job's evidence package unless it is no longer running; an exception (e.g. the database gone)
    lets the queue retry it, and the last try fails the job with the reason."""
    from app.extensions import db
    from app.services.evidence import exports

    try:
        exports.run_export(job_id, _export_builder[0], attempts=current_app.config.get("QUEUE_MAX_RETRIES", 3) + 1)
    finally:
        db.session.remove()


def _send_outbox() -> None:
    from app.extensions import db
    from app.services.workflow import notifications
    try:
        notifications.send_due()
    finally:
        db.session.remove()


def run_worker(queue: Jobs, threads: int) -> None:
    """Work on the queue in this process until SIGTERM or SIGINT, then let running jobs finish."""
    import signal

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    queue.start_worker(threads)
    log.warning("queue worker: %d threads on %s", threads, queue.url.split("@")[-1])
    stopping.wait()
    log.warning("queue worker: stopping, running jobs finish first")
    queue.stop()
