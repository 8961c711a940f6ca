"""Server-side checks a form names in `x-checks`, for rules JSON Schema cannot express (lots exist,
an effectiveness level is met); each returns error messages per field, in the page's language."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.exceptions import FormInvalid
from app.models import ProcessInstance
from app.services import lots, recalls

Check = Callable[[ProcessInstance | None, dict[str, Any], str], dict[str, list[str]]]

CHECKS: dict[str, Check] = {
    "recall_trigger": recalls.check_trigger,
    "recall_effectiveness": recalls.check_effectiveness,
    "recall_disposition": recalls.check_disposition,
    "lot_release_request": lots.check_release_request,
    "change_lots": lots.check_lot_numbers,
}


def unknown_checks(schema: dict) -> list[str]:
    """Return the names in the schema's x-checks that no check is registered under."""
    return [name for name in schema.get("x-checks", []) if name not in CHECKS]


def run_checks(schema: dict, instance: ProcessInstance | None, data: dict[str, Any], lang: str) -> None:
    """Run the form's named checks; raise FormInvalid with every message."""
    errors: dict[str, list[str]] = {}
    for name in schema.get("x-checks", []):
        if name not in CHECKS:
            raise FormInvalid({"": [f"The form names an unknown check {name!r}."]})
        for path, messages in CHECKS[name](instance, data, lang).items():
            errors.setdefault(path, []).extend(messages)
    if errors:
        raise FormInvalid(errors)
