"""Controlled procedures in tests: a deployed version is pending until QA approves it. Tests that deploy a new
version and expect new instances to use it approve it here, through the real e-signature (a QA person other than
the author, with the demo password)."""
from __future__ import annotations

from datetime import UTC, date, datetime

from app.models import ProcessVersion
from app.services import demo, users
from app.services.workflow import procedure_control, processes
from app.services.workflow.processes import DeployResult

NOTE = "test change"
# Approvals made by the helper date from long before any test's clock (T0 and the real time alike), so the
# version is in effect whenever the test starts its instances.
APPROVED_AT = datetime(2020, 1, 1, tzinfo=UTC)


def approve(version: ProcessVersion, approver: str | None = None, *, now: datetime = APPROVED_AT,
            effective_on: date | None = None) -> ProcessVersion:
    """Approve a pending version as QA (head, or releaser when head wrote it), effective from `now` by default."""
    if approver is None:
        head = users.get_by_username("head")
        approver = "releaser" if version.author_id == head.id else "head"
    return procedure_control.approve(users.get_by_username(approver), version.definition.key, version.version,
                                     demo.DEMO_PASSWORD, effective_on, now=now)


def approved(result: DeployResult) -> DeployResult:
    """Approve the version a deploy created (a pending one); an unchanged deploy stays as it was."""
    if result.version.status == "pending":
        approve(result.version)
    return result


def deploy_effective(data: bytes, filename: str, actor=None, note: str = NOTE, **options) -> DeployResult:
    """Deploy a diagram as `actor` (by default the admin) and approve the new version as QA: in effect at once."""
    actor = actor or users.get_by_username("admin")
    return approved(processes.deploy_file(data, filename, actor, note, **options))
