"""Returns and destruction per consignee and lot, the effectiveness-check sample (levels A-E), the checks'
results, and the form checks of the effectiveness, disposition and final approval steps."""
from __future__ import annotations

import csv
import math
import random
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from flask_babel import gettext
from sqlalchemy import select

from app.exceptions import FormInvalid, ImportRefused, NotFound, ValidationFailed
from app.extensions import db
from app.models import (
    Customer,
    ProcessInstance,
    ProductLot,
    RecallConsignee,
    RecallLine,
    User,
)
from app.models.types import INT_MAX, utcnow
from app.services.evidence import audit
from app.services.lots import imports
from app.services.procedures.recalls.base import (
    CHECK_METHODS,
    LEVEL_SHARE,
    LEVELS,
    _above_lot,
    _msg,
    _recall_instance,
    _require_open,
    _require_qa,
    _text,
)
from app.services.procedures.recalls.status import meet_notice_deadline, recall_view
from app.services.workflow.transaction import atomic


def _line(instance_id: int, customer_code: str, lot_number: str) -> RecallLine | None:
    return db.session.scalar(
        select(RecallLine).join(RecallConsignee).join(Customer, Customer.id == RecallConsignee.customer_id)
        .join(ProductLot, ProductLot.id == RecallLine.product_lot_id)
        .where(RecallLine.instance_id == instance_id, Customer.code == customer_code,
               ProductLot.lot_number == lot_number))


def _set_return(line: RecallLine, returned: int, destroyed: int, lang: str = "en") -> str | None:
    if returned < 0 or destroyed < 0:
        return _msg(lang, "negative")
    if returned + destroyed > line.quantity_shipped:
        return _msg(lang, "above_shipped_to", total=returned + destroyed, shipped=line.quantity_shipped,
                    customer=line.consignee.customer.code, lot=line.product_lot.lot_number)
    if problem := _above_lot(line, returned + destroyed, lang):
        return problem
    line.quantity_returned, line.quantity_destroyed = returned, destroyed
    return None


def record_return(instance_id: int, customer_code: str, lot_number: str, returned: int, destroyed: int,
                  actor: User, now: datetime | None = None, lang: str = "en") -> RecallLine:
    """Set the quantity returned and destroyed of one lot at one consignee (totals so far, not increments)."""
    now = now or utcnow()
    with atomic():
        _require_qa(actor, lang)
        _require_open(_recall_instance(instance_id, lock=True), lang)
        line = _line(instance_id, customer_code, lot_number)
        if line is None:
            raise FormInvalid({"lot": [_msg(lang, "not_shipped", lot=lot_number, customer=customer_code)]})
        old = {"returned": line.quantity_returned, "destroyed": line.quantity_destroyed}
        if problem := _set_return(line, returned, destroyed, lang):
            raise FormInvalid({"returned": [problem]})
        audit.record(actor, "recall.return_recorded", "recall_line", line.id, instance_id=instance_id, at=now,
                     old=old, new={"customer": customer_code, "lot": lot_number, "returned": returned,
                                   "destroyed": destroyed})
    return line


RETURN_COLUMNS = ("customer", "lot", "returned", "destroyed")


@contextmanager
def _readable_table(path: Path, lang: str = "en") -> Iterator[tuple[list[str], Iterator[tuple[int, dict]]]]:
    """Read a CSV or XLSX file like imports.read_table; a file that cannot be read is refused, not a server error."""
    try:
        with imports.read_table(path) as table:
            yield table
    except (UnicodeDecodeError, zipfile.BadZipFile, csv.Error) as err:
        raise ValidationFailed(_msg(lang, "unreadable", kind=err.__class__.__name__)) from err


def import_returns(instance_id: int, path: Path, actor: User, now: datetime | None = None, lang: str = "en") -> int:
    """Import returned/destroyed quantities (columns customer, lot, returned, destroyed): all rows or none."""
    now = now or utcnow()
    with atomic():
        _require_qa(actor, lang)
        _require_open(_recall_instance(instance_id, lock=True), lang)
        errors: list[dict[str, Any]] = []
        count = 0
        with _readable_table(path, lang) as (header, rows):
            if missing := [c for c in RETURN_COLUMNS[:3] if c not in header]:
                raise ValidationFailed(_msg(lang, "missing_columns", items=", ".join(missing),
                                            expected=", ".join(RETURN_COLUMNS)))
            for line_no, row in rows:
                def refuse(column: str, message: str, line_no: int = line_no) -> None:
                    errors.append({"line": line_no, "column": column, "message": message})

                numbers = {}
                for column in ("returned", "destroyed"):
                    raw = str(row.get(column) or "0").strip()
                    whole = raw.isascii() and raw.isdigit() and int(raw) <= INT_MAX  # what the column holds
                    if not whole:
                        refuse(column, _msg(lang, "not_whole", value=repr(raw)))
                    numbers[column] = int(raw) if whole else 0
                line = _line(instance_id, str(row.get("customer") or "").strip(), str(row.get("lot") or "").strip())
                if line is None:
                    refuse("lot", _msg(lang, "not_shipped", lot=repr(row.get("lot")),
                                       customer=repr(row.get("customer"))))
                    continue
                old = {"returned": line.quantity_returned, "destroyed": line.quantity_destroyed}
                if problem := _set_return(line, numbers["returned"], numbers["destroyed"], lang):
                    refuse("returned", problem)
                    continue
                audit.record(actor, "recall.return_recorded", "recall_line", line.id, instance_id=instance_id,
                             at=now, old=old, new={"customer": line.consignee.customer.code,
                                                   "lot": line.product_lot.lot_number, **numbers},
                             reason=f"import {path.name}")
                count += 1
        if errors:
            raise ImportRefused(errors[:200], len(errors))
        if not count:
            raise ValidationFailed(_msg(lang, "no_rows"))
    return count


def sample_size(level: str, population: int, b_percent: int = 50) -> int:
    """How many consignees an effectiveness check at level A-E contacts (at least one unless E)."""
    if level not in LEVELS:
        raise ValidationFailed(gettext("Unknown effectiveness level %(level)s; use one of %(levels)s.",
                                       level=repr(level), levels=", ".join(LEVELS)))
    share = b_percent / 100 if level == "B" else LEVEL_SHARE[level]
    if not population or share == 0:
        return 0
    return min(population, max(1, math.ceil(population * share)))


def draw_sample(instance_id: int, level: str, b_percent: int, now: datetime) -> list[RecallConsignee]:
    """Draw the check sample from the consignee list (seeded by the instance, so a retry draws the same)."""
    consignees = recall_view(instance_id).consignees
    if any(c.in_sample for c in consignees):
        return [c for c in consignees if c.in_sample]
    size = sample_size(level, len(consignees), b_percent)
    chosen = random.Random(instance_id).sample(consignees, size)
    for consignee in chosen:
        consignee.in_sample = True
    audit.record(None, "recall.sample_drawn", "instance", instance_id, instance_id=instance_id, at=now,
                 new={"level": level, "population": len(consignees), "sample": sorted(c.customer.code for c in chosen)})
    return chosen


def record_check(instance_id: int, consignee_id: int, *, method: str, effective: bool, note: str, actor: User,
                 now: datetime | None = None, lang: str = "en") -> RecallConsignee:
    """Record the effectiveness check of one consignee (contacted how, did it act on the notice)."""
    now = now or utcnow()
    with atomic():
        _require_qa(actor, lang)
        _require_open(_recall_instance(instance_id, lock=True), lang)
        consignee = db.session.get(RecallConsignee, consignee_id)
        if consignee is None or consignee.instance_id != instance_id:
            raise NotFound(_msg(lang, "no_consignee", consignee=consignee_id, recall=instance_id))
        if method not in CHECK_METHODS:
            raise FormInvalid({"method": [_msg(lang, "choose_method", items=", ".join(CHECK_METHODS))]})
        if not effective and not note.strip():
            raise FormInvalid({"note": [_msg(lang, "say_not_done")]})
        old = {"method": consignee.check_method or None, "effective": consignee.check_effective}
        consignee.checked_at, consignee.check_method, consignee.check_effective = now, method, effective
        consignee.check_note, consignee.checked_by_id = note.strip()[:4000], actor.id
        audit.record(actor, "recall.check_recorded", "recall_consignee", consignee.id, instance_id=instance_id,
                     at=now, old=old, new={"customer": consignee.customer.code, "method": method,
                                           "effective": effective, "in_sample": consignee.in_sample})
        meet_notice_deadline(instance_id, now)
    return consignee


def check_effectiveness(instance: ProcessInstance | None, data: dict[str, Any], lang: str) -> dict[str, list[str]]:
    """Form check for the effectiveness gate: "met" needs every sampled consignee verified; an exception a reason."""
    if instance is None:
        return {}
    if data.get("outcome") == "exception":
        return {} if str(data.get("justification") or "").strip() else {"justification": [_msg(lang, "justification")]}
    result = recall_view(instance.id).effectiveness
    if result.met:
        return {}
    return {"outcome": [_msg(lang, "sample_unchecked", level=result.level or "?", size=result.sample_size,
                             missing=result.sample_size - result.effective)]}


def check_disposition(instance: ProcessInstance | None, data: dict[str, Any], lang: str) -> dict[str, list[str]]:
    """Form check for the disposition: only affected lots, and no more per lot than was returned to us."""
    if instance is None:
        return {}
    returned = {row.lot.lot_number: row.quantity_returned for row in recall_view(instance.id).lots}
    errors: dict[str, list[str]] = {}
    totals: dict[str, int] = {}
    for index, row in enumerate(data.get("disposition") or []):
        number = str(row.get("lot_number") or "")
        if number not in returned:
            errors[f"disposition.{index}.lot_number"] = [_msg(lang, "not_affected", lot=number)]
            continue
        totals[number] = totals.get(number, 0) + int(row.get("quantity") or 0)
        if totals[number] > returned[number]:
            errors[f"disposition.{index}.quantity"] = [_msg(lang, "above_returned", lot=number,
                                                             returned=returned[number])]
    return errors


def check_final_approval(instance: ProcessInstance | None, data: dict[str, Any], lang: str) -> dict[str, list[str]]:
    """Form check for the final approval: closing below the class's effectiveness thresholds needs a justification."""
    if instance is None or data.get("decision") != "approve":
        return {}
    unmet = [t for t in recall_view(instance.id).thresholds if not t.met]
    if not unmet or str(data.get("closing_justification") or "").strip():
        return {}
    items = "; ".join(f"{_text(lang, f'threshold_{t.name}')} {t.actual} < {t.required}" for t in unmet)
    return {"closing_justification": [_msg(lang, "below_thresholds", items=items,
                                           recall_class=(instance.data or {}).get("recall_class", ""))]}
