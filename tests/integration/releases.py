"""Controlled procedures in tests: a deployed version is pending until QA approves it. Tests that deploy a new
version and expect new instances to use it approve it here, through the real e-signature (a QA person other than
the author, with the demo password)."""
from __future__ import annotations

from datetime import date, datetime

from app.models import ProcessVersion
from app.services import demo, users
from app.services.workflow import procedure_control, processes
from app.services.workflow.processes import DeployResult
from tests.conftest import T0

NOTE = "test change"


def approve(version: ProcessVersion, approver: str | None = None, *, now: datetime = T0,
            effective_on: date | None = None) -> ProcessVersion:
    """Approve a pending version as QA (head, or releaser when head wrote it), effective from `now` by default.

    The default time is the tests' T0, so instances the test starts at T0 or later use it.
    """
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
    """Deploy a diagram as `actor` (by default the admin) and approve the new version as QA: in effect at T0."""
    actor = actor or users.get_by_username("admin")
    return approved(processes.deploy_file(data, filename, actor, note, **options))
