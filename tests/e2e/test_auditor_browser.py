"""An auditor's walk-through in Chromium: QA closes a class I recall through the pages first; then the auditor finds
the closed recall in the workspace's search, reads its timeline (steps, signed gates, documents), sees no start, claim
or complete control but the read-only notice, downloads the evidence package, verifies it with `flask evidence verify`
against the server's own settings, alters one file in the zip and sees the verification fail naming that file."""
from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .accounts import open_from_inbox, sign_in, sign_out
from .conftest import BIN, ROOT, flask_command
from .test_recall_browser import (  # noqa: F401 - recall_server and server_url: this module's own server
    Server,
    acknowledge,
    assess,
    check_every_sampled_consignee,
    decide,
    dispose,
    effectiveness_gate,
    final_approval,
    mail_text,
    monitor,
    open_lot,
    optional_reports,
    plan,
    prepare_notices,
    recall_server,
    received_notices,
    server_url,
    submit_event_report,
    trigger,
)

pytestmark = pytest.mark.e2e

TAMPERED = "instances/{id}/signatures.json"


def close_recall(page: Page, browser, server: Server, mailbox) -> None:
    """Run a class I recall of the server's lot from trigger to its signed close, as QA (head) and the RP."""
    lot, returned = server.lot, 10
    sign_in(page, "head")
    open_lot(page, lot.number)
    trigger(page, lot)
    assess(page)
    sign_out(page)
    sign_in(page, "rp")
    decide(page, lot)
    sign_out(page)
    sign_in(page, "head")
    open_from_inbox(page, lot.number, "Prepare the consignee notices")
    page.get_by_role("link", name=re.compile(rf"^#\d+ Recall: lot {lot.number}$")).click()  # its instance page
    prepare_notices(page)
    flask_command(server.env, "outbox", "send")
    notices = received_notices(mailbox, lot)
    first = next(c for c in lot.consignees if c.kind == "distributor")
    links = re.findall(rf"{re.escape(server.url)}/ack/[\w-]+", mail_text(notices[first.email]))
    acknowledge(browser, server.url, links[0], lot, returned)
    page.reload()
    submit_event_report(page)
    plan(page)
    optional_reports(page)
    monitor(page)
    check_every_sampled_consignee(page, lot)
    effectiveness_gate(page)
    dispose(page, lot, returned)
    final_approval(page)
    expect(page.get_by_test_id("instance-status")).to_have_text("completed")
    sign_out(page)


def verify(env: dict[str, str], package: Path) -> subprocess.CompletedProcess:
    """`flask evidence verify ZIP` with the server's settings (its database and AUDIT_CHECKPOINT_KEY)."""
    return subprocess.run([str(BIN / "flask"), "--app", "wsgi", "evidence", "verify", str(package)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def expect_no_work_controls(page: Page) -> None:
    """A read-only account sees the notice and no start, claim, complete or cancel control."""
    expect(page.get_by_test_id("read-only").first).to_be_visible()
    for name in ("Start", "Claim", "Complete", "Sign and complete", "Cancel the instance"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    expect(page.locator('form[method="post"]:not([action="/logout"])')).to_have_count(0)


def test_auditor_reads_a_closed_recall_and_verifies_its_evidence_package(
        page: Page, browser, recall_server: Server, smtp_sink, tmp_path: Path):  # noqa: F811
    _, mailbox = smtp_sink
    lot = recall_server.lot
    close_recall(page, browser, recall_server, mailbox)

    sign_in(page, "auditor")
    expect_no_work_controls(page)
    page.get_by_test_id("nav-audit").click()
    search = page.get_by_role("search", name="Search instances")
    search.get_by_label("Title or number").fill(f"Recall: lot {lot.number}")
    search.get_by_label("Procedure").select_option("recall")
    search.get_by_label("Status").select_option("completed")
    search.get_by_role("button", name="Search", exact=True).click()
    results = page.get_by_test_id("audit-instances")
    expect(results.locator("tbody tr")).to_have_count(1)
    expect(results).to_contain_text("completed")
    results.get_by_role("link", name=re.compile(rf"Recall: lot {lot.number}")).first.click()

    expect(page).to_have_url(re.compile(r"/audit/instances/\d+"))
    instance_id = int(re.search(r"/audit/instances/(\d+)", page.url)[1])
    expect(page.get_by_test_id("instance-status")).to_contain_text("completed")
    expect_no_work_controls(page)
    steps = page.get_by_test_id("audit-steps")
    for step in ("Recall trigger", "Health hazard assessment", "Recall decision (e-signature)",
                 "Final QA approval (e-signature)"):
        row = steps.get_by_role("row").filter(has_text=step).first
        expect(row).to_contain_text("completed")
    gates = page.get_by_test_id("gate")
    expect(gates).to_have_count(5)
    expect(gates.get_by_test_id("signature-name")).to_have_text(["Helen Head", "Zhang Min", "Helen Head",
                                                                 "Helen Head", "Helen Head"])
    expect(gates.first.get_by_test_id("signature-meaning")).to_have_text("Authored")
    documents = page.get_by_test_id("audit-documents")
    for kind in ("health_hazard_evaluation", "recall_plan", "recall_summary"):
        expect(documents.get_by_role("link", name=re.compile(rf"^{kind}-\d+-r\d+\..+\.docx$")).first).to_be_visible()
    expect(page.get_by_test_id("timeline").locator("li").first).to_be_visible()

    with page.expect_download(timeout=90_000) as download:  # built while the download waits: PDF reports too
        page.get_by_test_id("package-link").click()
    package = tmp_path / download.value.suggested_filename
    download.value.save_as(package)
    assert package.name == f"evidence-instance-{instance_id}.zip"

    checked = verify(recall_server.env, package)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("OK"), checked.stdout

    tampered_path = TAMPERED.format(id=instance_id)
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(package) as original, zipfile.ZipFile(tampered, "w", zipfile.ZIP_DEFLATED) as copy:
        for item in original.infolist():
            content = original.read(item.filename)
            if item.filename == tampered_path:
                content = content.replace(b"Helen Head", b"Helen Hand", 1)
                assert b"Helen Hand" in content
            copy.writestr(item, content)
    refused = verify(recall_server.env, tampered)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert f"altered file: {tampered_path}" in output, output
    assert output.count("altered file:") == 1, output  # that file alone
    assert not refused.stdout.startswith("OK")
