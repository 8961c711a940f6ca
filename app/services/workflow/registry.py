"""The registries the platform dispatches through, filled by registration from above: service-task handlers
(BPMN `serviceTaskOperator` ids -> functions with their parameter schemas; `handlers/` registers them) and
server-side form checks (names a form lists in `x-checks`; the procedure and lot modules register theirs).
Nothing here imports the code that registers, so imports point one way: handlers and procedures -> platform."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from marshmallow import Schema
from sqlalchemy.orm import Session

from app.models import ProcessInstance


class HandlerError(Exception):
    """A handler refused its input or failed; the message is shown to users on the incident."""


@dataclass(frozen=True)
class HandlerContext:
    """Where a handler runs: the session (inside the caller's transaction), instance, task and clock."""

    session: Session
    instance: ProcessInstance
    element_id: str
    spiff_id: str
    data: dict[str, Any]
    now: datetime
    templates_dir: Path
    base_url: str
    company: dict[str, str] = field(default_factory=dict)  # the manufacturer, as documents print it

    @property
    def idempotency_key(self) -> str:
        """Identify this task's run, so a retry after an incident never repeats a side effect."""
        return f"{self.instance.id}:{self.spiff_id}"


class Handler(NamedTuple):
    function: Callable[[HandlerContext, dict[str, Any]], dict[str, Any]]
    schema: type[Schema]
    description: str


Check = Callable[[ProcessInstance | None, dict[str, Any], str], dict[str, list[str]]]
ClockedCheck = Callable[[ProcessInstance | None, dict[str, Any], str, datetime], dict[str, list[str]]]

HANDLERS: dict[str, Handler] = {}
# Called with each outbox message the SMTP server accepted, inside the sender's transaction (a recall marks
# its consignee's notice delivered).
DELIVERY_LISTENERS: list[Callable[[Any, datetime], None]] = []
FORM_CHECKS: dict[str, Check] = {}
# Checks that judge dates against the use case's clock (tests and `--now` run at an explicit time).
CLOCKED_FORM_CHECKS: dict[str, ClockedCheck] = {}


def _claim(registry: dict, name: str, value: Any, what: str) -> None:
    if registry.get(name, value) is not value:
        raise ValueError(f"{what} {name!r} is registered twice")
    registry[name] = value


def register_handlers(handlers: dict[str, Handler]) -> None:
    """Register service-task handlers under their operator ids (registering the same one again is a no-op)."""
    for operator, handler in handlers.items():
        _claim(HANDLERS, operator, handler, "handler")


def register_form_checks(checks: dict[str, Check] | None = None, *,
                         clocked: dict[str, ClockedCheck] | None = None) -> None:
    """Register form checks by the name forms use in `x-checks`; `clocked` ones also receive the use case's time."""
    for name, check in (checks or {}).items():
        _claim(FORM_CHECKS, name, check, "form check")
    for name, check in (clocked or {}).items():
        _claim(CLOCKED_FORM_CHECKS, name, check, "form check")


def on_delivery(listener: Callable[[Any, datetime], None]) -> None:
    """Register a function the outbox sender calls with (message, now) after SMTP accepted the message."""
    if listener not in DELIVERY_LISTENERS:
        DELIVERY_LISTENERS.append(listener)
