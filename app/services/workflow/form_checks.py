"""Server-side checks a form names in `x-checks`, for rules JSON Schema cannot express (lots exist,
an effectiveness level is met); each returns error messages per field, in the page's language.
The checks themselves are registered by the procedure and lot modules (see `registry`)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from app.exceptions import FormInvalid
from app.models import ProcessInstance
from app.models.types import utcnow
from app.services.workflow.registry import CLOCKED_FORM_CHECKS, FORM_CHECKS


def unknown_checks(schema: dict) -> list[str]:
    """Return the names in the schema's x-checks that no check is registered under."""
    return [name for name in schema.get("x-checks", [])
            if name not in FORM_CHECKS and name not in CLOCKED_FORM_CHECKS]


def run_checks(schema: dict, instance: ProcessInstance | None, data: dict[str, Any], lang: str,
               now: datetime | None = None) -> None:
    """Run the form's named checks (clocked ones at `now`, by default the current time); raise FormInvalid."""
    errors: dict[str, list[str]] = {}
    for name in schema.get("x-checks", []):
        if name in CLOCKED_FORM_CHECKS:
            found = CLOCKED_FORM_CHECKS[name](instance, data, lang, now or utcnow())
        elif name in FORM_CHECKS:
            found = FORM_CHECKS[name](instance, data, lang)
        else:
            raise FormInvalid({"": [f"The form names an unknown check {name!r}."]})
        for path, messages in found.items():
            errors.setdefault(path, []).extend(messages)
    if errors:
        raise FormInvalid(errors)
