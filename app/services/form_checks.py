"""Server-side checks a form names in `x-checks`, for rules JSON Schema cannot express (lots exist,
an effectiveness level is met); each returns error messages per field, in the page's language."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from app.exceptions import FormInvalid
from app.models import ProcessInstance
from app.models.types import utcnow
from app.services import capa, lots, recalls, supplier_returns

Check = Callable[[ProcessInstance | None, dict[str, Any], str], dict[str, list[str]]]
ClockedCheck = Callable[[ProcessInstance | None, dict[str, Any], str, datetime], dict[str, list[str]]]

CHECKS: dict[str, Check] = {
    "recall_trigger": recalls.check_trigger,
    "recall_effectiveness": recalls.check_effectiveness,
    "recall_disposition": recalls.check_disposition,
    "recall_final_approval": recalls.check_final_approval,
    "lot_release_request": lots.check_release_request,
    "change_lots": lots.check_lot_numbers,
    "supplier_return_lots": supplier_returns.check_lots,
    "supplier_return_lines": supplier_returns.check_lines,
    "scar_response_received": supplier_returns.check_response_received,
    "capa_source": capa.check_source,
    "capa_containment": capa.check_containment,
    "capa_approval": capa.check_approval,
}
# Checks that judge dates against the use case's clock (tests and `--now` run at an explicit time).
CLOCKED_CHECKS: dict[str, ClockedCheck] = {
    "capa_action_plan": capa.check_action_plan,
}


def unknown_checks(schema: dict) -> list[str]:
    """Return the names in the schema's x-checks that no check is registered under."""
    return [name for name in schema.get("x-checks", []) if name not in CHECKS and name not in CLOCKED_CHECKS]


def run_checks(schema: dict, instance: ProcessInstance | None, data: dict[str, Any], lang: str,
               now: datetime | None = None) -> None:
    """Run the form's named checks (clocked ones at `now`, by default the current time); raise FormInvalid."""
    errors: dict[str, list[str]] = {}
    for name in schema.get("x-checks", []):
        if name in CLOCKED_CHECKS:
            found = CLOCKED_CHECKS[name](instance, data, lang, now or utcnow())
        elif name in CHECKS:
            found = CHECKS[name](instance, data, lang)
        else:
            raise FormInvalid({"": [f"The form names an unknown check {name!r}."]})
        for path, messages in found.items():
            errors.setdefault(path, []).extend(messages)
    if errors:
        raise FormInvalid(errors)
