"""APScheduler jobs for timers, the outbox, lot expiry, audit checkpoints and imports whose worker died: in the web
process by default, or `flask scheduler run`. A tick that finds the database gone is skipped; the next one runs."""
from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

log = logging.getLogger(__name__)


def _job(app: Flask, name: str) -> None:
    from app import jobs
    from app.outage import database_unavailable
    from app.services import maintenance
    from app.services.evidence import audit_checkpoints, exports
    from app.services.lots import imports, lots
    from app.services.procedures import supplier_quality
    from app.services.workflow import notifications, timers

    with app.app_context():
        try:
            if name == "timers":
                timers.fire_due_timers()
            elif name == "expiry":
                lots.expire_lots()
            elif name == "checkpoint":
                audit_checkpoints.write_checkpoint()
            elif name == "analyze":
                maintenance.refresh_statistics()
            elif name == "suppliers":  # supplier quality scores (when SUPPLIER_SCORE_HOURS have passed)
                supplier_quality.scheduled_run()
            elif name == "imports":  # imports and evidence exports whose worker died
                imports.fail_stale_jobs()
                exports.fail_stale_exports()
                exports.remove_old_files()
            elif jobs.queue_configured(app):  # the queue workers send it; a tick they did not take in 60 s expires
                jobs.jobs(app).enqueue(jobs.OUTBOX_ACTOR)
            else:
                notifications.send_due()
        except Exception as err:  # a failing tick must not kill the scheduler; the next tick retries
            if database_unavailable(err):  # one line per tick while it is down, not a traceback
                log.warning("scheduled %s job skipped: the database cannot be reached (%s); the next tick retries",
                            name, str(err).splitlines()[0][:200])
            else:
                log.exception("scheduled %s job failed", name)


def start_scheduler(app: Flask) -> BackgroundScheduler:
    """Start the background jobs; correctness comes from row locks, so several schedulers are safe."""
    scheduler = BackgroundScheduler(timezone="UTC")
    seconds = app.config["SCHEDULER_TIMER_SECONDS"]
    scheduler.add_job(_job, "interval", seconds=seconds, args=[app, "timers"], id="timers",
                      max_instances=1, coalesce=True)
    scheduler.add_job(_job, "interval", seconds=seconds * 2, args=[app, "outbox"], id="outbox",
                      max_instances=1, coalesce=True)
    scheduler.add_job(_job, "interval", minutes=app.config["EXPIRY_CHECK_MINUTES"], args=[app, "expiry"],
                      id="expiry", max_instances=1, coalesce=True, next_run_time=datetime.now(UTC))
    scheduler.add_job(_job, "interval", minutes=app.config["AUDIT_CHECKPOINT_MINUTES"], args=[app, "checkpoint"],
                      id="checkpoint", max_instances=1, coalesce=True, next_run_time=datetime.now(UTC))
    scheduler.add_job(_job, "interval", minutes=1, args=[app, "imports"], id="imports", max_instances=1,
                      coalesce=True)
    # The planner's statistics (not at start: the migration that deployed this version has just gathered them).
    scheduler.add_job(_job, "interval", hours=app.config["ANALYZE_HOURS"], args=[app, "analyze"], id="analyze",
                      max_instances=1, coalesce=True)
    # Supplier scores: checked hourly, scored when the last scheduled scoring is SUPPLIER_SCORE_HOURS old.
    scheduler.add_job(_job, "interval", hours=1, args=[app, "suppliers"], id="suppliers", max_instances=1,
                      coalesce=True, next_run_time=datetime.now(UTC))
    scheduler.start()
    app.extensions["qualiflow_scheduler"] = scheduler
    return scheduler


def run_forever(app: Flask) -> None:
    scheduler = start_scheduler(app)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        scheduler.shutdown()
