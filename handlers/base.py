"""What every handler receives and returns; handlers never import Flask and never commit."""
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
