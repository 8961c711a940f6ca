"""Lot imports on the job queue (app/jobs.py): the in-process default, Redis when it answers, and a worker that
dies with a job: the job is delivered again to another worker and runs once, or is failed with its reason."""
from __future__ import annotations

import socket
import sqlite3
import time
import uuid
from contextlib import closing

import pytest

from app import jobs
from app.extensions import db
from app.models import Customer, ImportJob
from app.services.lots import imports
from tests.integration.services.scenarios import count

CUSTOMERS = b"code,name,kind\nH1,City Hospital,hospital\nD1,North Trade,distributor\n"
REDIS = ("127.0.0.1", 6379)


@pytest.fixture
def uploads(app, tmp_path, monkeypatch):
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    yield tmp_path / "imports"
    queue = app.extensions.pop("qualiflow_jobs", None)
    if queue is not None:
        queue.stop(timeout_ms=2_000)


def _redis_answers() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=0.5):
            return True
    except OSError:
        return False


def _status(job_id: int) -> str:
    """The job's status, read without taking SQLite's write lock: the app begins every transaction IMMEDIATE, and a
    poll through the session would hold that lock between polls and keep the worker's own BEGIN waiting."""
    if db.engine.dialect.name == "sqlite":
        with closing(sqlite3.connect(db.engine.url.database, timeout=30)) as connection:
            return connection.execute("SELECT status FROM import_jobs WHERE id = ?", (job_id,)).fetchone()[0]
    with db.engine.connect() as connection:
        return connection.execute(db.text("SELECT status FROM import_jobs WHERE id = :id"), {"id": job_id}).scalar_one()


def _wait(job_id: int, timeout: float = 20) -> ImportJob:
    deadline = time.monotonic() + timeout
    while _status(job_id) == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    db.session.remove()
    job = db.session.get(ImportJob, job_id)
    db.session.expunge(job)  # read, then let go of the transaction: holding it would keep the worker waiting
    db.session.rollback()
    return job


def test_without_a_queue_url_the_web_process_runs_the_import(app, uploads, user):
    job_id = imports.start_import("customers", "customers.csv", CUSTOMERS, user("qa")).id
    queue = jobs.jobs(app)
    assert queue.embedded
    db.session.remove()  # SQLite: this test's session holds no lock while the pool imports
    jobs.enqueue_import(job_id)
    queue.join()
    done = _wait(job_id, timeout=0)
    assert (done.status, done.imported_rows) == ("succeeded", 2)
    assert count(Customer) == 2 and not list(uploads.iterdir())


def test_a_job_delivered_again_after_it_finished_does_nothing(app, uploads, user):
    job_id = imports.start_import("customers", "customers.csv", CUSTOMERS, user("qa")).id
    imports.run_import(job_id)
    db.session.remove()  # SQLite: no lock held by this test's session
    with app.app_context():  # as the queue worker runs it
        jobs._import_file(job_id)  # the message of a worker that died after the commit, before its ack
        jobs._import_file(10_000)  # and of a job that is gone
    assert count(Customer) == 2
    assert db.session.get(ImportJob, job_id).status == "succeeded"


def test_a_job_whose_file_this_worker_cannot_see_fails_with_the_reason(app, uploads, user):
    job = imports.start_import("customers", "customers.csv", CUSTOMERS, user("qa"))
    job_id = job.id
    imports.stored_file(job).unlink()
    db.session.remove()
    with app.app_context():
        jobs._import_file(job_id)
    failed = db.session.get(ImportJob, job_id)
    assert failed.status == "failed" and "no longer there" in failed.message


@pytest.fixture
def redis_queue(app, uploads):
    if not _redis_answers():
        pytest.skip("Redis does not answer on 127.0.0.1:6379")
    namespace = f"qualiflow-test-{uuid.uuid4().hex[:8]}"
    app.config.update(QUEUE_URL="redis://127.0.0.1:6379/15", QUEUE_NAMESPACE=namespace, QUEUE_HEARTBEAT_SECONDS=1)
    app.extensions.pop("qualiflow_jobs", None)
    yield jobs.jobs(app)
    import redis
    client = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    for key in client.scan_iter(f"{namespace}*"):
        client.delete(key)


def test_with_redis_the_web_process_enqueues_and_a_queue_worker_runs_it(app, redis_queue, user):
    job_id = imports.start_import("customers", "customers.csv", CUSTOMERS, user("qa")).id
    db.session.remove()
    jobs.enqueue_import(job_id)
    time.sleep(0.3)
    assert _wait(job_id, timeout=0).status == "running"  # enqueued only: no worker yet
    redis_queue.start_worker(2)
    job = _wait(job_id, timeout=90)
    assert (job.status, job.message, job.errors) == ("succeeded", job.message, []) and count(Customer) == 2


def test_a_job_of_a_worker_killed_before_its_ack_is_run_by_another_worker(app, redis_queue, user):
    from dramatiq.brokers.redis import RedisBroker

    job_id = imports.start_import("customers", "customers.csv", CUSTOMERS, user("qa")).id
    db.session.remove()
    jobs.enqueue_import(job_id)
    # A worker takes the message and dies with it: fetched, never acknowledged, its heartbeat stops.
    doomed = RedisBroker(url=redis_queue.url, namespace=app.config["QUEUE_NAMESPACE"], heartbeat_timeout=1000)
    consumer = doomed.consume(jobs.QUEUE_NAME, prefetch=1, timeout=1000)
    taken = next(message for message in consumer if message is not None)
    assert taken.args == (job_id,)
    doomed.client.connection_pool.disconnect()
    time.sleep(1.5)  # longer than the heartbeat timeout
    assert _wait(job_id, timeout=0).status == "running"
    redis_queue.broker.maintenance_chance = 1_000_000  # look for dead workers' messages at once
    redis_queue.start_worker(1)
    # Generous: on a loaded machine (the CI runs two suites at once) the new worker's first fetches can be slow.
    job = _wait(job_id, timeout=90)
    assert (job.status, job.message, job.errors) == ("succeeded", job.message, []) and count(Customer) == 2
