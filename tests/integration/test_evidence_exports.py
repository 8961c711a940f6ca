"""Evidence packages of a lot or a search run as background jobs (app/jobs.py): the request answers with the job's
page at once, the progress and the result are on the job row (any worker shows them), the download re-checks the
file's SHA-256, the export is audited, and a job whose worker died is run again or failed with the reason."""
from __future__ import annotations

import hashlib
import io
import re
import socket
import time
import uuid
from datetime import timedelta

import pytest

from app import jobs
from app.extensions import db
from app.models import AuditEvent, ProductLot
from app.models.evidence import ExportJob
from app.models.types import utcnow
from app.services.evidence import exports, packages
from tests.conftest import login
from tests.integration.recall_steps import decide
from tests.integration.recalls.conftest import plant  # noqa: F401 - the recall's lots and consignees


@pytest.fixture
def queue(app, tmp_path, monkeypatch):
    """The in-process queue, its packages kept in this test's folder; stopped after the test."""
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    yield tmp_path / "exports"
    running = app.extensions.pop("qualiflow_jobs", None)
    if running is not None:
        running.stop(timeout_ms=2_000)


@pytest.fixture
def recall(plant, user):  # noqa: F811
    return decide(user, utcnow()).id


@pytest.fixture
def lot_id(recall) -> int:
    return db.session.scalar(db.select(ProductLot.id).where(ProductLot.lot_number == "L1"))


def _ask(client, path: str) -> int:
    response = client.post(path)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    db.session.remove()  # SQLite: the test's session (a server ends it with the request) holds no lock meanwhile
    return int(re.fullmatch(r"/audit/exports/(\d+)", response.headers["Location"])[1])


def _done(job_id: int) -> ExportJob:
    jobs.jobs().join()
    return db.session.get(ExportJob, job_id)


def _exported_events() -> list[AuditEvent]:
    return list(db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == "evidence.exported")))


def test_a_lot_package_is_built_in_the_background_and_downloaded_checked(client, queue, lot_id, recall):
    login(client, "auditor")
    dossier = client.get(f"/audit/lots/product/{lot_id}?lang=en").get_data(as_text=True)
    assert f'action="/audit/lots/product/{lot_id}/package"' in dossier

    job_id = _ask(client, f"/audit/lots/product/{lot_id}/package")
    job = _done(job_id)

    assert (job.status, job.done, job.total, job.kind) == ("succeeded", 1, 1, "product_lot")
    page = client.get(f"/audit/exports/{job_id}?lang=en").get_data(as_text=True)
    assert 'data-testid="export-succeeded"' in page and job.sha256 in page and "Arthur Auditor" in page
    download = client.get(f"/audit/exports/{job_id}/download")
    assert download.status_code == 200 and download.mimetype == "application/zip"
    assert hashlib.sha256(download.data).hexdigest() == job.sha256 == download.headers["X-Content-SHA256"]
    assert packages.verify_package(download.data).ok
    assert 'filename=evidence-lot-L1.zip' in download.headers["Content-Disposition"]
    (event,) = _exported_events()  # who exported what
    assert (event.actor_name, event.object_id) == ("Arthur Auditor", str(job_id))
    assert event.new["sha256"] == job.sha256 and event.new["scope"]["lot_number"] == "L1"
    listing = client.get("/audit/exports/?lang=en").get_data(as_text=True)
    assert f'href="/audit/exports/{job_id}"' in listing and "evidence-lot-L1.zip" in listing
    trail = client.get("/audit/trail?lang=en&action=evidence.exported").get_data(as_text=True)
    assert "Evidence package exported" in trail


def test_a_search_package_is_a_job_in_the_language_it_was_asked_in(client, queue, recall):
    login(client, "auditor")
    job_id = _ask(client, "/audit/package?process=recall&lang=zh_CN")
    job = _done(job_id)
    assert job.status == "succeeded" and job.language == "zh-CN" and job.scope["process"] == "recall"
    assert "证据包" in job.title
    assert packages.verify_package(client.get(f"/audit/exports/{job_id}/download").data).ok


def test_the_job_state_lives_in_the_database_so_any_worker_shows_it(client, queue, lot_id, user):
    login(client, "auditor")
    job = exports.start_export("product_lot", {"kind": "product_lot", "id": lot_id, "lot_number": "L1"},
                               "evidence-lot-L1.zip", user("auditor"), "en")
    job_id = job.id
    db.session.remove()  # SQLite: no lock held by this test's session
    exports._heartbeat(job_id, 1, 3)  # as a worker in another process writes it
    polled = client.get(f"/audit/exports/{job_id}.json").get_json()
    assert (polled["status"], polled["done"], polled["total"]) == ("running", 1, 3)
    page = client.get(f"/audit/exports/{job_id}?lang=en").get_data(as_text=True)
    assert 'aria-valuenow="33"' in page and "export_progress.js" in page


def test_a_job_whose_worker_died_is_failed_with_the_reason_never_left_running(client, queue, lot_id, user, app):
    login(client, "auditor")
    job = exports.start_export("product_lot", {"kind": "product_lot", "id": lot_id, "lot_number": "L1"},
                               "evidence-lot-L1.zip", user("auditor"), "en")
    job_id = job.id
    db.session.remove()
    exports._heartbeat(job_id, 1, 3)
    minutes = app.config["IMPORT_STALE_MINUTES"]
    db.session.execute(db.update(ExportJob).where(ExportJob.id == job_id)
                       .values(heartbeat_at=utcnow() - timedelta(minutes=minutes + 1)))
    db.session.commit()

    polled = client.get(f"/audit/exports/{job_id}.json").get_json()  # a look at the job, or the scheduler's check

    assert polled["status"] == "failed" and f"wrote no progress for {minutes} minutes" in polled["message"]
    page = client.get(f"/audit/exports/{job_id}?lang=en").get_data(as_text=True)
    assert 'data-testid="export-failed"' in page and "No package was made." in page
    assert client.get(f"/audit/exports/{job_id}/download").status_code == 404
    db.session.remove()
    with app.app_context():  # the dead worker's message delivered again later: the verdict stands
        jobs._export_package(job_id)
    assert db.session.get(ExportJob, job_id).status == "failed" and not _exported_events()


def test_a_job_cut_short_mid_build_is_run_again_from_the_start_once(app, queue, lot_id, user):
    """A worker died after packing one instance: its message is delivered again and the job completes once."""
    job = exports.start_export("product_lot", {"kind": "product_lot", "id": lot_id, "lot_number": "L1"},
                               "evidence-lot-L1.zip", user("auditor"), "en")
    job_id = job.id

    def dies_midway(job, progress):
        progress(1, 2)
        raise SystemExit("killed")  # what a dying worker thread sees; nothing is stored

    db.session.remove()
    with pytest.raises(SystemExit):
        exports.run_export(job_id, dies_midway, attempts=4)
    db.session.remove()
    cut = db.session.get(ExportJob, job_id)
    assert (cut.status, cut.done, cut.total, cut.attempts) == ("running", 1, 2, 1) and not list(queue.glob("*.zip"))
    db.session.remove()

    with app.app_context():
        jobs._export_package(job_id)  # delivered again
        jobs._export_package(job_id)  # and once more after it finished: nothing happens

    done = db.session.get(ExportJob, job_id)
    assert (done.status, done.attempts) == ("succeeded", 2)
    assert len(_exported_events()) == 1 and len(list(queue.glob("*.zip"))) == 1


def test_an_error_is_retried_and_the_last_try_fails_the_job_with_the_reason(app, queue, lot_id, user):
    job_id = exports.start_export("product_lot", {"kind": "product_lot", "id": lot_id, "lot_number": "L1"},
                                  "evidence-lot-L1.zip", user("auditor"), "en").id

    def broken(job, progress):
        raise OSError("disk full")

    db.session.remove()
    with pytest.raises(OSError):
        exports.run_export(job_id, broken, attempts=2)  # the queue retries it
    db.session.remove()
    failed = exports.run_export(job_id, broken, attempts=2)
    assert failed.status == "failed" and "could not be built: OSError: disk full" in failed.message


def test_a_package_over_the_limit_is_refused_at_once_or_fails_the_job(client, queue, lot_id, user, monkeypatch):
    login(client, "auditor")
    monkeypatch.setattr(packages, "MAX_INSTANCES", 0)
    refused = client.post("/audit/package?process=recall")
    assert refused.status_code == 400 and "one package holds at most 0" in refused.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count(ExportJob.id))) == 0
    job_id = exports.start_export("search", {"kind": "search", "process": "recall"}, "evidence.zip",
                                  user("auditor"), "en").id  # the period grew after it was asked for
    db.session.remove()
    failed = exports.run_export(job_id, jobs._export_builder[0])
    assert failed.status == "failed" and "one package holds at most 0" in failed.message


def test_a_changed_or_removed_file_is_not_handed_out(client, queue, lot_id):
    login(client, "auditor")
    job_id = _ask(client, f"/audit/lots/product/{lot_id}/package")
    job = _done(job_id)
    stored = queue / job.stored_name
    stored.write_bytes(stored.read_bytes() + b"x")

    changed = client.get(f"/audit/exports/{job_id}/download")

    assert changed.status_code == 409 and "changed after it was made" in changed.get_data(as_text=True)
    stored.unlink()
    gone = client.get(f"/audit/exports/{job_id}/download")
    assert gone.status_code == 410 and "no longer there" in gone.get_data(as_text=True)


def test_only_the_asker_and_admins_see_an_export(client, queue, lot_id, user):
    job_id = exports.start_export("product_lot", {"kind": "product_lot", "id": lot_id, "lot_number": "L1"},
                                  "evidence-lot-L1.zip", user("auditor"), "en").id
    login(client, "qa")  # QA may use the workspace, but this is the auditor's export
    for path in (f"/audit/exports/{job_id}", f"/audit/exports/{job_id}.json", f"/audit/exports/{job_id}/download"):
        assert client.get(path).status_code == 404, path
    assert f"/audit/exports/{job_id}" not in client.get("/audit/exports/").get_data(as_text=True)
    client.post("/logout")
    login(client, "admin")
    assert client.get(f"/audit/exports/{job_id}.json").status_code == 200
    client.post("/logout")
    login(client, "prod")  # not an auditor
    assert client.post(f"/audit/lots/product/{lot_id}/package").status_code == 403
    assert client.get("/audit/exports/").status_code == 403


def test_asking_for_an_unknown_lot_or_kind_makes_no_job(client, queue, seeded):
    login(client, "auditor")
    assert client.post("/audit/lots/product/999999/package").status_code == 404
    assert client.post("/audit/lots/widget/1/package").status_code == 404
    assert client.get("/audit/lots/product/1/package").status_code == 405  # asking for a package changes state
    assert db.session.scalar(db.select(db.func.count(ExportJob.id))) == 0


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def test_with_redis_a_job_of_a_worker_killed_before_its_ack_is_built_by_another(app, queue, lot_id, user):
    if not _redis_answers():
        pytest.skip("Redis does not answer on 127.0.0.1:6379")
    from dramatiq.brokers.redis import RedisBroker

    namespace = f"qualiflow-test-{uuid.uuid4().hex[:8]}"
    app.config.update(QUEUE_URL="redis://127.0.0.1:6379/15", QUEUE_NAMESPACE=namespace, QUEUE_HEARTBEAT_SECONDS=1)
    app.extensions.pop("qualiflow_jobs", None)
    redis_queue = jobs.jobs(app)
    try:
        job_id = exports.start_export("product_lot", {"kind": "product_lot", "id": lot_id, "lot_number": "L1"},
                                      "evidence-lot-L1.zip", user("auditor"), "en").id
        db.session.remove()
        jobs.enqueue_export(job_id)
        doomed = RedisBroker(url=redis_queue.url, namespace=namespace, heartbeat_timeout=1000)
        consumer = doomed.consume(jobs.QUEUE_NAME, prefetch=1, timeout=1000)
        taken = next(message for message in consumer if message is not None)
        assert taken.args == (job_id,)
        doomed.client.connection_pool.disconnect()  # the worker dies with the message, never acknowledged
        time.sleep(1.5)
        redis_queue.broker.maintenance_chance = 1_000_000
        redis_queue.start_worker(1)
        deadline = time.monotonic() + 20
        while db.session.get(ExportJob, job_id).status == "running" and time.monotonic() < deadline:
            db.session.rollback()
            time.sleep(0.1)
        assert db.session.get(ExportJob, job_id).status == "succeeded" and len(_exported_events()) == 1
    finally:
        import redis
        client = redis.Redis.from_url("redis://127.0.0.1:6379/15")
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)


def test_a_made_package_is_kept_for_the_configured_days_then_its_file_is_removed(client, queue, lot_id, app):
    login(client, "auditor")
    job_id = _ask(client, f"/audit/lots/product/{lot_id}/package")
    job = _done(job_id)
    stored, finished = queue / job.stored_name, job.finished_at
    db.session.remove()
    assert exports.remove_old_files(now=finished + timedelta(days=6)) == [] and stored.exists()

    assert exports.remove_old_files(now=finished + timedelta(days=7, seconds=1)) == [job_id]

    assert not stored.exists()
    gone = client.get(f"/audit/exports/{job_id}/download")
    assert gone.status_code == 410 and "removed 7 day(s) after it was made" in gone.get_data(as_text=True)
    page = client.get(f"/audit/exports/{job_id}?lang=en").get_data(as_text=True)
    assert 'data-testid="export-expired"' in page and "export again" in page
    assert len(_exported_events()) == 1  # who exported what stays in the trail


def test_the_audit_trail_as_xlsx_is_a_job_with_its_rows_counted(client, queue, recall):
    from openpyxl import load_workbook
    login(client, "auditor")
    trail_page = client.get("/audit/trail?lang=en&action=task.completed").get_data(as_text=True)
    assert 'action="/audit/trail.xlsx?lang=en&amp;action=task.completed"' in trail_page

    job_id = _ask(client, "/audit/trail.xlsx?lang=en&action=task.completed")
    job = _done(job_id)

    expected = db.session.scalar(db.select(db.func.count(AuditEvent.id)).where(AuditEvent.action == "task.completed"))
    assert (job.status, job.kind, job.done, job.total) == ("succeeded", "trail_xlsx", expected, expected)
    page = client.get(f"/audit/exports/{job_id}?lang=en").get_data(as_text=True)
    assert f"{expected} row(s)" in page and "Download the audit trail (XLSX)" in page
    download = client.get(f"/audit/exports/{job_id}/download")
    assert download.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(download.data)).worksheets[0]
    assert sheet.max_row == 1 + expected and {row[4] for row in sheet.iter_rows(min_row=2, values_only=True)} == {
        "task.completed"}
    (event,) = _exported_events()
    assert event.new["rows"] == expected and event.new["scope"]["action"] == "task.completed"
    assert client.get("/audit/trail.xlsx?action=task.completed").status_code == 405  # asking changes state
