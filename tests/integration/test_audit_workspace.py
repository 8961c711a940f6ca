"""The auditor's workspace through Flask's test client: search, an instance's timeline, a lot's dossier, the
signature report and read-only pages without any start, claim or complete control."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import text

from app.extensions import db
from app.models import AuditEvent, Document, ProductLot
from app.models.audit import DROP_APPEND_ONLY_SQL
from app.models.types import utcnow
from app.services.evidence import packages
from app.services.workflow import instances, tasks
from tests.conftest import login
from tests.integration import recall_steps
from tests.integration.capa_steps import VERIFICATION_PERIOD, ready_task, run_capa_to_approval
from tests.integration.recalls.conftest import plant  # noqa: F401 - the recall's lots and consignees
from tests.integration.services.scenarios import approve, close_capa
from tests.integration.test_evidence_exports import queue  # noqa: F401 - the in-process queue, its own folder


def _text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def _section(page: str, testid: str, end: str = "</section>") -> str:
    return page.split(f'data-testid="{testid}"', 1)[1].split(end, 1)[0]


def _post_forms(page: str) -> list[str]:
    """Return the actions of the page's POST forms, but signing out."""
    return [action for action in re.findall(r'<form[^>]*method="post"[^>]*action="([^"]*)"', page)
            if action != "/logout"]


@pytest.fixture
def closed_capa(seeded, user) -> int:
    return close_capa(user).id


def test_auditor_finds_a_closed_capa_and_reads_its_timeline(client, closed_capa):
    login(client, "auditor")
    inbox = _text(client.get("/?lang=en"))
    assert 'data-testid="nav-audit"' in inbox

    found = _text(client.get("/audit/?lang=en&process=capa&status=completed&signer=Helen"))
    assert f'href="/audit/instances/{closed_capa}"' in _section(found, "audit-instances", "</table>")
    assert 'data-testid="audit-empty"' in _text(client.get("/audit/?lang=en&signer=Nobody"))
    assert 'data-testid="audit-empty"' in _text(client.get("/audit/?lang=en&lot=NO-SUCH-LOT"))
    assert "is not a date" in _text(client.get("/audit/?lang=en&from=2026-13-45"))

    page = _text(client.get(f"/audit/instances/{closed_capa}?lang=en"))
    assert 'data-testid="read-only"' in page and not _post_forms(page)
    steps = _section(page, "audit-steps", "</table>")
    assert "Describe the problem" in steps and "QA approval" in steps or "Approv" in steps
    gate = _section(page, "gate", "</div>\n  </div>")
    assert "Helen Head" in gate and 'data-meaning="approved"' in gate and "Approved" in gate
    timeline = _section(page, "timeline", "</ol>")
    # Every step with who and what was entered, labelled by its form in words, never raw keys or JSON.
    assert "Root cause" in timeline and "Worn deburring tool at station 3" in timeline
    assert "Li Na" in timeline and "Wang Wei" in timeline and "Step completed" in timeline
    assert "root_cause" not in timeline and "\\u" not in timeline
    version = re.search(r'href="(/processes/capa/\d+)" data-testid="diagram-version"', page)
    assert version and client.get(version[1]).status_code == 200

    links = re.findall(r'href="/instances/documents/(\d+)" data-testid="document-link"', page)
    assert links
    download = client.get(f"/instances/documents/{links[0]}")
    assert download.status_code == 200
    assert hashlib.sha256(download.data).hexdigest() == db.session.get(Document, int(links[0])).sha256


def test_timeline_reads_in_chinese(client, closed_capa):
    login(client, "auditor")
    page = _text(client.get(f"/audit/instances/{closed_capa}?lang=zh_CN"))
    assert "安装时发布，无电子签名" in _section(page, "version-approval", "</dd>")
    timeline = _section(page, "timeline", "</ol>")
    assert "步骤已完成" in timeline and "根本原因" in timeline and "Worn deburring tool at station 3" in timeline
    assert "批准" in _section(page, "gate", "</div>\n  </div>")
    assert "Step completed" not in page and "Signed gates" not in page


def test_read_only_accounts_see_no_start_claim_or_complete_control(client, seeded, user):
    instance = run_capa_to_approval(user)
    approval = ready_task(instance.id, "qa_approval")
    login(client, "auditor")
    for path in ("/?lang=en", "/instances/?lang=en", "/processes/?lang=en", f"/instances/{instance.id}?lang=en",
                 f"/tasks/{approval.id}?lang=en", "/lots/?lang=en"):
        page = _text(client.get(path))
        assert not _post_forms(page), path
        assert "/instances/start" not in page and "Claim<" not in page and 'data-testid="task-form"' not in page
        assert "belongs to a group you are not in" not in page
    task_page = _text(client.get(f"/tasks/{approval.id}?lang=en"))
    assert 'data-testid="read-only"' in task_page and "read-only" in task_page
    assert 'data-testid="read-only"' in _text(client.get("/?lang=en"))


def test_workspace_is_closed_to_production_staff(client, seeded):
    login(client, "prod")
    assert client.get("/audit/").status_code == 403
    assert 'data-testid="nav-audit"' not in _text(client.get("/?lang=en"))
    client.post("/logout")
    login(client, "head")  # QA may use it
    assert client.get("/audit/signatures").status_code == 200


@pytest.fixture
def recall(plant, user) -> int:  # noqa: F811
    """A class I recall of L1 and L2, decided and signed twice: lots recalled, deadlines running."""
    return recall_steps.decide(user, utcnow()).id


def test_lot_dossier_and_recall_timeline_deadlines(client, recall):
    lot = db.session.scalar(db.select(ProductLot).where(ProductLot.lot_number == "L1"))
    login(client, "auditor")
    found = _text(client.get("/audit/lots?lang=en&q=L"))
    assert f'href="/audit/lots/product/{lot.id}"' in found
    assert 'data-testid="audit-empty"' in _text(client.get("/audit/lots?lang=en&q=ZZZ"))

    dossier = _text(client.get(f"/audit/lots/product/{lot.id}?lang=en"))
    assert f'href="/audit/instances/{recall}"' in _section(dossier, "lot-procedures", "</table>")
    changes = _section(dossier, "lot-status-changes", "</table>")
    assert "released" in changes and "recalled" in changes and f"#{recall}" in changes
    assert "Li Na" in _section(dossier, "lot-signatures", "</ul>") or "Zhang Min" in dossier
    assert 'data-testid="document-link"' in _section(dossier, "lot-documents", "</table>")

    page = _text(client.get(f"/audit/instances/{recall}?lang=en"))
    deadlines = _section(page, "audit-deadlines", "</table>")
    assert "working days" in deadlines or "P" in deadlines
    assert 'data-status="pending"' in deadlines
    assert len(re.findall(r'data-testid="gate"', page)) == 2


def test_signature_report_by_signer_and_meaning_with_csv(client, seeded, user):
    first = run_capa_to_approval(user)
    approve(first.id, user, utcnow())
    login(client, "auditor")
    today = utcnow().date().isoformat()
    page = _text(client.get(f"/audit/signatures?lang=en&from={today}&to={today}"))
    counts = _section(page, "signature-counts", "</table>")
    assert "Helen Head" in counts and "Approved" in counts
    assert f'href="/audit/instances/{first.id}#gates-h"' in _section(page, "signature-report", "</table>")
    assert 'data-testid="audit-empty"' in _text(client.get("/audit/signatures?lang=en&from=2020-01-01&to=2020-01-02"))
    assert 'data-testid="audit-empty"' in _text(client.get("/audit/signatures?lang=en&meaning=released"))

    export = client.get(f"/audit/signatures.csv?lang=en&from={today}&signer=Helen")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(export.data.decode("utf-8-sig"))))
    assert rows[0][:4] == ["Signed at", "Printed name", "User name", "Meaning"]
    assert len(rows) == 2 and rows[1][1] == "Helen Head" and rows[1][4] == "approved"
    assert rows[1][5] == str(first.id)


def test_the_signature_report_lists_procedure_approvals_as_records_signed(client, seeded, user, queue):  # noqa: F811
    """QA's e-signed approval of a procedure version is a signature like a gate's: counted, listed with a link to the
    version, in the CSV and in a period's evidence package (and in the version.json of the instances that ran it)."""
    from app.services import demo, users
    from app.services.workflow import procedure_control, processes
    from tests.integration.diagrams import LONGER_DUE_IN, capa_variant

    now = utcnow()
    approved_at = now - VERIFICATION_PERIOD - timedelta(minutes=5)  # before the CAPA starts
    processes.deploy_file(capa_variant(LONGER_DUE_IN).encode(), "capa.bpmn", users.get_by_username("owner"),
                          "Describe the problem within 9 days")
    version = procedure_control.approve(user("head"), "capa", 2, demo.DEMO_PASSWORD, now=approved_at)
    signed_hash, content_hash, effective_on = version.signed_hash, version.content_hash, version.effective_on
    capa = run_capa_to_approval(user, now=now)  # runs on the approved version 2
    approve(capa.id, user, now)
    capa_id = capa.id
    login(client, "auditor")
    first, day = plant_day(approved_at), plant_day(now)

    page = _text(client.get(f"/audit/signatures?lang=en&from={first}&to={day}"))
    assert _section(page, "signature-total", "</td>").endswith(">2")
    listed = _section(page, "signed-procedure", "</tr>")
    assert "Helen Head" in listed and 'data-meaning="approved"' in listed
    assert 'href="/processes/capa/2/review"' in listed and "Procedure version approved" in listed
    assert f"Effective from {effective_on.isoformat()}" in listed and signed_hash[:12] in listed
    assert f'href="/audit/instances/{capa_id}#gates-h"' in _section(page, "signed-step", "</tr>")
    zh_page = _text(client.get(f"/audit/signatures?lang=zh_CN&from={first}&to={day}"))
    assert "已批准的程序版本" in _section(zh_page, "signed-procedure", "</tr>")
    by_li = _text(client.get(f"/audit/signatures?lang=en&signer=Li&from={first}"))
    assert 'data-testid="signed-procedure"' not in by_li
    assert 'data-testid="audit-empty"' in _text(client.get("/audit/signatures?lang=en&from=2020-01-01&to=2020-01-02"))

    rows = list(csv.reader(io.StringIO(client.get(f"/audit/signatures.csv?lang=en&from={first}&to={day}")
                                       .data.decode("utf-8-sig"))))
    assert rows[0][-2:] == ["Record signed", "Link"] and len(rows) == 3
    approval = next(row for row in rows[1:] if row[12] == "Procedure version approved")
    assert approval[1] == "Helen Head" and approval[2] == "head" and approval[4] == "approved"
    assert approval[5] == "" and approval[8] == "2" and approval[10] == signed_hash
    assert approval[11] == f"capa.bpmn {content_hash}" and approval[13].endswith("/processes/capa/2/review")
    timeline = _text(client.get(f"/audit/instances/{capa_id}?lang=en"))
    approval_shown = _section(timeline, "version-approval", "</dd>")
    assert "Helen Head" in approval_shown and 'href="/processes/capa/2/review"' in approval_shown
    assert signed_hash[:16] in approval_shown
    step = next(row for row in rows[1:] if row[12] == "Step signed")
    assert step[5] == str(capa_id) and step[13].endswith(f"/audit/instances/{capa_id}")

    package = _export(client, f"/audit/package?lang=en&from={first}&to={day}&process=capa")
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        [listed_approval] = json.loads(archive.read("procedure_approvals.json"))
        assert listed_approval["version"] == 2 and listed_approval["printed_name"] == "Helen Head"
        assert listed_approval["signed_hash"] == signed_hash and listed_approval["user"] == "head"
        assert "Procedure versions approved in the period" in archive.read("index.html").decode()
        assert f"instances/{capa_id}/process/version.json" in archive.namelist(), archive.namelist()
        ran = json.loads(archive.read(f"instances/{capa_id}/process/version.json"))
        assert ran["version"] == 2 and ran["approval"]["signed_hash"] == signed_hash
    assert packages.verify_package(package).ok
    with zipfile.ZipFile(io.BytesIO(_export(client, "/audit/package?lang=en&process=capa"))) as archive:
        assert "procedure_approvals.json" not in archive.namelist()  # not a period's package


def plant_day(moment) -> str:
    from app.services.workflow import plant_time
    return plant_time.local_date(moment, plant_time.zone()).isoformat()


# --- audit trail explorer --------------------------------------------------------------------------------------------

@pytest.fixture
def chinese_capa(seeded, user) -> int:
    """A CAPA whose problem was described in Chinese."""
    instance = instances.start_instance("capa", user("qa"), title="针头毛刺")
    tasks.complete_task(ready_task(instance.id, "describe_problem").id, {
        "title": "针头毛刺", "source": "complaint", "source_reference": "CMP-1", "severity": "major",
        "description": "医院反馈输液器针头有毛刺", "reported_on": "2026-11-20"}, user("qa"))
    return instance.id


def test_trail_explorer_filters_translates_and_exports(client, chinese_capa, queue):  # noqa: F811
    login(client, "auditor")
    page = _text(client.get("/audit/trail?lang=zh_CN&user=Li&action=task.completed"))
    table = _section(page, "trail-table", "</table>")
    assert table.count('data-action="task.completed"') == 1 and 'data-action="instance.started"' not in table
    assert "步骤已完成" in table and "医院反馈输液器针头有毛刺" in table and "\\u" not in table
    assert ">步骤已完成</option>" in page  # the action filter in words
    assert 'data-testid="audit-empty"' in _text(client.get("/audit/trail?lang=en&user=Nobody"))
    started = _text(client.get(f"/audit/trail?lang=en&object_type=instance&object_id={chinese_capa}"))
    assert 'data-action="instance.started"' in started and 'data-action="task.completed"' not in started

    export = client.get("/audit/trail.csv?lang=en&action=task.completed")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(export.data.decode("utf-8-sig"))))
    assert rows[0][:5] == ["#", "When", "Who", "Action", "Action code"]
    assert [row[4] for row in rows[1:]] == ["task.completed"] and rows[1][3] == "Step completed"
    assert "医院反馈输液器针头有毛刺" in rows[1][9] and "\\u" not in rows[1][9]

    workbook = load_workbook(io.BytesIO(_export(client, "/audit/trail.xlsx?lang=zh_CN&user=Li")))
    sheet = workbook.worksheets[0]
    assert [cell.value for cell in sheet[1]][:5] == ["#", "时间", "操作人", "操作", "操作代码"]
    assert sheet.max_row == 1 + _count(AuditEvent, AuditEvent.actor_name == "Li Na")


def _count(model, *where) -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(model).where(*where))


def test_chain_verification_from_the_page_names_the_altered_row(client, chinese_capa):
    login(client, "auditor")
    page = _text(client.get("/audit/trail/verify?lang=en"))
    assert 'data-ok="true"' in page and "Intact." in page

    target = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "task.completed"))
    dialect = db.engine.dialect.name
    for statement in DROP_APPEND_ONLY_SQL[dialect]:
        db.session.execute(text(statement))
    db.session.execute(text("UPDATE audit_events SET reason = 'edited' WHERE id = :id"), {"id": target.id})
    db.session.commit()
    page = _text(client.get("/audit/trail/verify?lang=en"))
    assert 'data-ok="false"' in page
    assert f"broken at row {target.id}" in _section(page, "chain-problem", "</p>")


# --- evidence packages -----------------------------------------------------------------------------------------------

def _rezip(data: bytes, change) -> bytes:
    """Return the zip with change(name, content) applied to every member (None drops it)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            content = change(name, source.read(name))
            if content is not None:
                target.writestr(name, content)
    return out.getvalue()


def test_evidence_package_verifies_offline_and_names_an_altered_file(client, runner, closed_capa, tmp_path):
    login(client, "auditor")
    page = _text(client.get(f"/audit/instances/{closed_capa}?lang=en"))
    link = re.search(r'href="([^"]+package\.zip)" data-testid="package-link"', page)[1]
    response = client.get(link)
    assert response.status_code == 200 and response.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        names = archive.namelist()
        report = archive.read(f"instances/{closed_capa}/report.html").decode()
        manifest = json.loads(archive.read("manifest.json"))
    root = f"instances/{closed_capa}/"
    documents = [name for name in names if name.startswith(root + "documents/")]
    assert documents and {"index.html", "manifest.json", root + "signatures.json", root + "audit.jsonl"} <= set(names)
    assert any(name.startswith(root + "process/") and name.endswith(".bpmn") for name in names)
    assert "Worn deburring tool at station 3" in report and "Helen Head" in report and "<script" not in report
    assert manifest["chain"]["last_id"] > 0 and len(manifest["files"]) == len(names) - 1

    package = tmp_path / "package.zip"
    package.write_bytes(response.data)
    verified = runner.invoke(args=["evidence", "verify", str(package)])
    assert verified.exit_code == 0 and verified.output.startswith("OK:"), verified.output
    written = tmp_path / "cli.zip"
    assert runner.invoke(args=["evidence", "package", str(closed_capa), "-o", str(written)]).exit_code == 0
    assert runner.invoke(args=["evidence", "verify", str(written)]).exit_code == 0

    altered = tmp_path / "altered.zip"
    altered.write_bytes(_rezip(response.data, lambda name, content: content + b"x" if name == documents[0] else
                               None if name == root + "signatures.json" else content))
    result = runner.invoke(args=["evidence", "verify", str(altered)])
    assert result.exit_code == 1
    assert f"altered file: {documents[0]}" in result.output and f"missing file: {root}signatures.json" in result.output

    # Recomputing a file's hash in the manifest does not help: the manifest is signed, and the audit rows chain.
    def forge(name, content):
        if name == root + "audit.jsonl":
            return content.replace(b"Worn deburring tool", b"New deburring tool")
        return content
    forged = _rezip(response.data, forge)
    with zipfile.ZipFile(io.BytesIO(forged)) as archive:
        body = json.loads(archive.read("manifest.json"))
        rows = archive.read(root + "audit.jsonl")
    for item in body["files"]:
        if item["path"] == root + "audit.jsonl":
            item["sha256"], item["size"] = hashlib.sha256(rows).hexdigest(), len(rows)
    forged = _rezip(forged, lambda name, content: json.dumps(body).encode() if name == "manifest.json" else content)
    problems = packages.verify_package(forged).problems
    assert any("manifest.json: its signature does not match" in p for p in problems)
    assert any(p.startswith(f"{root}audit.jsonl: audit row") for p in problems)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _export(client, path: str) -> bytes:
    """Ask for a package (a background job), wait for the in-process queue, download it from the job page."""
    from app import jobs
    response = client.post(path)
    assert response.status_code == 303, response.status_code
    db.session.remove()  # SQLite: the test's session (a server ends it with the request) holds no lock meanwhile
    jobs.jobs().join()
    page = _text(client.get(response.headers["Location"]))
    link = re.search(r'href="([^"]+/download)" data-testid="export-download"', page)[1]
    download = client.get(link)
    assert download.status_code == 200 and download.mimetype in ("application/zip", XLSX)
    return download.data


def test_lot_and_search_packages(client, recall, queue):  # noqa: F811
    lot = db.session.scalar(db.select(ProductLot).where(ProductLot.lot_number == "L1"))
    login(client, "auditor")
    data = _export(client, f"/audit/lots/product/{lot.id}/package?lang=zh_CN")
    assert packages.verify_package(data).ok
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        index = archive.read("index.html").decode()
        assert "lot/status_changes.jsonl" in archive.namelist() and f"instances/{recall}/report.html" in index
    assert "批次 L1 的证据包" in index
    found = _export(client, "/audit/package?process=recall&lang=en")
    with zipfile.ZipFile(io.BytesIO(found)) as archive:
        assert json.loads(archive.read("manifest.json"))["scope"]["process"] == "recall"
        assert f"instances/{recall}/report.html" in archive.namelist()
