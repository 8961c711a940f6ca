"""Sterilization batch records: one sterilization cycle (ethylene oxide ISO 11135, gamma or electron beam ISO 11137,
moist heat ISO 17665) with its parameters judged against the method's validated limits, its load of product lots, the
biological indicator (EO, steam) or dosimeter (radiation) results, and QA's e-signed release or failure.

Records are entered as a one-row import (the *New* form, the API's POST) or as a file import of the kind
`sterilization_batches`, with the same rules. A batch whose parameters leave their limits or whose biological
indicator grows fails at once; QA may also fail a batch explicitly. A failed batch puts every lot of its load on hold
for a CAPA it starts (one CAPA per batch, however often it is told to fail) with the lots pre-filled as its
containment. A product lot names its batch by number (`product_lots.sterilization_batch`): recording a load sets it,
and trace and recalls keep searching by it. The lot release check reads the batch's status (`lots.release_checks`).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from flask import current_app
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import false, func, or_, select, union
from sqlalchemy.orm import joinedload

from app import engine
from app.exceptions import Conflict, FormInvalid, NotFound, PermissionDenied, ValidationFailed
from app.extensions import db
from app.models import ProcessInstance, ProductLot, User
from app.models.sterilization import (
    BATCH_STATUSES,
    BI_RESULTS,
    STERILIZATION_METHODS,
    SterilizationBatch,
    SterilizationLoad,
)
from app.models.types import INT_MAX, utcnow
from app.services.evidence import audit, signatures
from app.services.lots import import_rules, lots
from app.services.lots.import_rules import Column, ImportState, Kind, Row, RowProblem, choice, number, parse_date, text
from app.services.workflow import instances, plant_time, titles
from app.services.workflow.transaction import atomic, keep_loaded

__all__ = ["BATCH_STATUSES", "BI_RESULTS", "STERILIZATION_METHODS"]  # read by the pages and the API

CAPA_PROCESS = "capa"
HOLD_ROLE = "containment"  # the CAPA's containment: its closing decision lifts the hold (processes/capa.bpmn)
RELEASE_ROLES = ("qa_releaser",)  # who signs a sterilization batch's release or failure
DECISIONS = {"release": "released", "fail": "failed"}
REASON_MAX = 2000
CAPA_TITLE = titles.register("CAPA: sterilization batch {batch} failed", "CAPA：灭菌批 {batch} 不合格")


class Method(NamedTuple):
    code: str
    standard: str
    label: str
    label_zh: str
    parameters: tuple[str, ...]
    uses_bi: bool  # a biological indicator is read after the cycle (EO, steam); radiation relies on dosimeters


class Parameter(NamedTuple):
    label: str
    label_zh: str
    unit: str
    low: float  # physical bounds: a value beyond is a typo, refused (a value beyond the validated limits fails)
    high: float


METHODS: dict[str, Method] = {
    "eo": Method("eo", "ISO 11135", "Ethylene oxide (EO)", "环氧乙烷（EO）",
                 ("temperature_c", "humidity_rh", "gas_mg_l", "exposure_minutes"), True),
    "gamma": Method("gamma", "ISO 11137", "Gamma irradiation", "γ 射线辐照", ("dose_min_kgy", "dose_max_kgy"), False),
    "ebeam": Method("ebeam", "ISO 11137", "Electron beam", "电子束辐照", ("dose_min_kgy", "dose_max_kgy"), False),
    "steam": Method("steam", "ISO 17665", "Moist heat (steam)", "湿热（蒸汽）", ("temperature_c", "exposure_minutes"),
                    True),
}
PARAMETERS: dict[str, Parameter] = {
    "temperature_c": Parameter("Temperature", "温度", "°C", 0, 200),
    "humidity_rh": Parameter("Relative humidity", "相对湿度", "%RH", 0, 100),
    "gas_mg_l": Parameter("EO gas concentration", "环氧乙烷浓度", "mg/L", 0, 5000),
    "exposure_minutes": Parameter("Exposure time", "灭菌暴露时间", "min", 0, 100000),
    "dose_min_kgy": Parameter("Minimum dose (dosimeters)", "剂量计最低剂量", "kGy", 0, 200),
    "dose_max_kgy": Parameter("Maximum dose (dosimeters)", "剂量计最高剂量", "kGy", 0, 200),
}
UNITS_ZH = {"min": "分钟"}
# The validated cycle's limits per method, [minimum, maximum] (None: no limit that side). A plant sets its own
# validated limits in the config (STERILIZATION_LIMITS, merged per method over these); a batch keeps the limits
# it was judged against.
DEFAULT_LIMITS: dict[str, dict[str, list[float | None]]] = {
    "eo": {"temperature_c": [45, 60], "humidity_rh": [40, 80], "gas_mg_l": [400, 1000],
           "exposure_minutes": [240, None]},
    "gamma": {"dose_min_kgy": [25, None], "dose_max_kgy": [None, 40]},
    "ebeam": {"dose_min_kgy": [25, None], "dose_max_kgy": [None, 40]},
    "steam": {"temperature_c": [121, 124], "exposure_minutes": [15, None]},
}

# Why a batch failed, in both page languages; a batch keeps the code and its values.
FAILURES: dict[str, tuple[str, str]] = {
    "bi_positive": ("biological indicator positive (growth after incubation)", "生物指示物阳性（培养后有菌生长）"),
    "below_limit": ("{parameter} {value} {unit} is below the validated minimum {limit} {unit}",
                    "{parameter} {value} {unit} 低于确认的下限 {limit} {unit}"),
    "above_limit": ("{parameter} {value} {unit} is above the validated maximum {limit} {unit}",
                    "{parameter} {value} {unit} 高于确认的上限 {limit} {unit}"),
    "explicit": ("failed by QA: {reason}", "质量部判定不合格：{reason}"),
}

# Import row errors of this kind (merged into the rule set's messages).
import_rules.MESSAGES.update({
    "parameter_required": ("is required for {method}", "{method} 须填写此参数"),
    "parameter_not_used": ("is not a parameter of {method}", "不是 {method} 的参数"),
    "bi_not_used": ("{method} uses dosimeters, not biological indicators", "{method} 使用剂量计，不使用生物指示物"),
    "min_above_max": ("the minimum dose is above the maximum dose", "最低剂量高于最高剂量"),
    "bad_load": ("write lots as LOT or LOT:QUANTITY, separated by semicolons: {value}",
                 "批次请写作 批号 或 批号:数量，以分号分隔：{value}"),
    "load_quantity": ("{value}: {quantity} is more than the lot's {available} units",
                      "{value}：{quantity} 超过该批次的 {available} 件"),
    "lot_in_other_batch": ("lot {value} belongs to sterilization batch {other}, which has not failed",
                           "批次 {value} 属于灭菌批 {other}，该灭菌批未判定不合格"),
    "repeated_lot": ("lot {value} is named twice", "批次 {value} 重复"),
    "empty_load": ("name the lots in the load", "请填写装载的批次"),
})


def _page_lang() -> str:
    """The request's language for refusals that name a method (English outside a request)."""
    locale = get_locale()
    return "zh-CN" if locale is not None and str(locale).startswith("zh") else "en"


STATUS_WORDS = {"pending": ("pending", "待定"), "released": ("released", "已放行"), "failed": ("failed", "不合格")}


def _status_word(status: str) -> str:
    return STATUS_WORDS[status][_lang(_page_lang())] if status in STATUS_WORDS else status


def limits_for(method: str) -> dict[str, list[float | None]]:
    """The validated limits a batch of this method is judged against now (shipped defaults, config overrides)."""
    configured = (current_app.config.get("STERILIZATION_LIMITS") or {}).get(method) or {}
    merged = {name: list(bounds) for name, bounds in DEFAULT_LIMITS[method].items()}
    merged.update({name: list(bounds) for name, bounds in configured.items() if name in PARAMETERS})
    return merged


def _lang(lang: str) -> int:
    return 1 if lang.replace("_", "-").lower().startswith("zh") else 0


def method_label(method: str, lang: str = "en") -> str:
    found = METHODS.get(method)
    return (found.label_zh if _lang(lang) else found.label) if found else method


def parameter_label(name: str, lang: str = "en") -> str:
    found = PARAMETERS.get(name)
    return (found.label_zh if _lang(lang) else found.label) if found else name


def unit_label(unit: str, lang: str = "en") -> str:
    return UNITS_ZH.get(unit, unit) if _lang(lang) else unit


def failure_text(reason: dict, lang: str = "en") -> str:
    """One stored failure reason in English or Chinese."""
    template = FAILURES.get(reason.get("code", ""), ("{code}", "{code}"))[_lang(lang)]
    params = dict(reason.get("params") or {})
    if "parameter" in params:
        params["unit"] = unit_label(PARAMETERS[params["parameter"]].unit, lang) if params["parameter"] in PARAMETERS \
            else ""
        params["parameter"] = parameter_label(params["parameter"], lang)
    try:
        return template.format(code=reason.get("code", ""), **params)
    except (KeyError, IndexError):
        return reason.get("code", "")


def _shown(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def evaluate(method: str, parameters: dict[str, float], limits: dict[str, list], bi_result: str | None) -> list[dict]:
    """Why a batch fails on its figures: each parameter outside its validated limits, a positive BI."""
    reasons = []
    for name in METHODS[method].parameters:
        value = parameters.get(name)
        low, high = (limits.get(name) or [None, None])[:2]
        if value is None:
            continue
        if low is not None and value < low:
            reasons.append({"code": "below_limit", "params": {"parameter": name, "value": _shown(value),
                                                              "limit": _shown(low)}})
        elif high is not None and value > high:
            reasons.append({"code": "above_limit", "params": {"parameter": name, "value": _shown(value),
                                                              "limit": _shown(high)}})
    if bi_result == "fail":
        reasons.append({"code": "bi_positive", "params": {}})
    return reasons


# --- the import kind -------------------------------------------------------------------------------------------------

_LOAD_ITEM = re.compile(r"^(?P<lot>[^:]+?)\s*(?::\s*(?P<quantity>\S+))?$")


def parse_load(value: Any) -> list[tuple[str, int | None]]:
    """The load cell: lot numbers with an optional quantity each, `L1:500; L2` (a list of {lot, quantity} from
    the API too). Repeats are refused by the checks, with the lot named."""
    if isinstance(value, list):
        items = []
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("lot"), str):
                items.append(f"{item['lot']}:{item['quantity']}" if item.get("quantity") is not None
                             else item["lot"])
            else:
                raise RowProblem("bad_load", value=str(item)[:80])
        value = ";".join(items)
    found: list[tuple[str, int | None]] = []
    for part in re.split(r"[;\n]", str(value)):
        part = part.strip()
        if not part:
            continue
        match = _LOAD_ITEM.match(part)
        if not match or len(match["lot"].strip()) > 60:
            raise RowProblem("bad_load", value=part[:80])
        quantity = None
        if match["quantity"] is not None:
            try:
                quantity = int(match["quantity"])
            except ValueError:
                raise RowProblem("bad_load", value=part[:80]) from None
            if not 1 <= quantity <= INT_MAX:
                raise RowProblem("bad_load", value=part[:80])
        found.append((match["lot"].strip(), quantity))
    if len(found) > 1000:
        raise RowProblem("too_long", limit=1000)
    return found


parse_load.limit = 20000  # the entry form's text box


def _batches(state: ImportState, rows: list[Row]) -> None:
    """Check a chunk of batch records (number free, parameters fit the method, load lots known and free) and write
    them with their loads; batches failing on their figures are failed once every row has passed."""
    numbers = [r.values["batch_number"] for r in rows]
    taken = set(state.session.scalars(select(SterilizationBatch.batch_number).where(
        SterilizationBatch.batch_number.in_(numbers)))) if numbers else set()
    named = {lot for r in rows for lot, _q in r.values.get("load") or []}
    found = {lot.lot_number: lot for lot in state.session.scalars(
        select(ProductLot).where(ProductLot.lot_number.in_(list(named))))} if named else {}
    others = {lot.sterilization_batch for lot in found.values() if lot.sterilization_batch}
    other_status = dict(state.session.execute(select(SterilizationBatch.batch_number, SterilizationBatch.status).where(
        SterilizationBatch.batch_number.in_(list(others)))).all()) if others else {}
    assigned: dict[str, str] = state.context.setdefault("assigned", {})  # lot -> batch, earlier rows of the file
    naming = dict(state.session.execute(select(ProductLot.sterilization_batch, func.count()).where(
        ProductLot.sterilization_batch.in_(numbers)).group_by(ProductLot.sterilization_batch)).all()) if numbers else {}
    checked = []
    for row in rows:
        values = row.values
        method = METHODS[values["method"]]
        ok = True
        if values["batch_number"] in taken:
            state.refuse(row.line, "batch_number", "exists", value=values["batch_number"])
            ok = False
        for name in PARAMETERS:
            if name in method.parameters and values.get(name) is None:
                state.refuse(row.line, name, "parameter_required", method=method.label)
                ok = False
            elif name not in method.parameters and values.get(name) is not None:
                state.refuse(row.line, name, "parameter_not_used", method=method.label)
                ok = False
        if not method.uses_bi and values.get("bi_result"):
            state.refuse(row.line, "bi_result", "bi_not_used", method=method.label)
            ok = False
        if values.get("dose_min_kgy") is not None and values.get("dose_max_kgy") is not None \
                and values["dose_min_kgy"] > values["dose_max_kgy"]:
            state.refuse(row.line, "dose_max_kgy", "min_above_max")
            ok = False
        load, seen = [], set()
        for lot_number, quantity in values.get("load") or []:
            lot = found.get(lot_number)
            if lot_number in seen:
                state.refuse(row.line, "load", "repeated_lot", value=lot_number)
                ok = False
                continue
            seen.add(lot_number)
            if lot is None:
                state.refuse(row.line, "load", "unknown_lot", value=lot_number)
                ok = False
                continue
            other = assigned.get(lot_number) or lot.sterilization_batch
            if other and other != values["batch_number"] and other_status.get(other) != "failed":
                state.refuse(row.line, "load", "lot_in_other_batch", value=lot_number, other=other)
                ok = False
                continue
            if quantity is not None and quantity > lot.quantity:
                state.refuse(row.line, "load", "load_quantity", value=lot_number, quantity=quantity,
                             available=lot.quantity)
                ok = False
                continue
            load.append((lot, quantity if quantity is not None else lot.quantity))
        if not values.get("load") and not naming.get(values["batch_number"]):
            state.refuse(row.line, "load", "empty_load")
            ok = False
        if ok:
            for lot, _q in load:
                assigned[lot.lot_number] = values["batch_number"]
            checked.append((row, load))
    if state.error_count or not checked:
        return
    for row, load in checked:
        batch = _write_batch(state, row.values, load)
        if batch.failure_reasons:
            state.pending.append(batch)


def _write_batch(state: ImportState, values: dict, load: list[tuple[ProductLot, int]]) -> SterilizationBatch:
    method = METHODS[values["method"]]
    parameters = {name: values[name] for name in method.parameters if values.get(name) is not None}
    limits = limits_for(method.code)
    bi_result = (values.get("bi_result") or "pending") if method.uses_bi else None
    batch = SterilizationBatch(batch_number=values["batch_number"], method=method.code,
                               sterilizer=values.get("sterilizer") or "", processed_on=values["processed_on"],
                               parameters=parameters, limits=limits, bi_result=bi_result, status="pending",
                               failure_reasons=evaluate(method.code, parameters, limits, bi_result),
                               note=values.get("note") or "", created_by_id=state.actor.id if state.actor else None,
                               created_at=state.now)
    state.session.add(batch)
    state.session.flush()
    for lot, quantity in load:
        batch.load.append(SterilizationLoad(product_lot_id=lot.id, quantity=quantity))
        if lot.sterilization_batch != batch.batch_number:
            audit.record(state.actor, "lot.sterilization_batch_set", "product_lot", lot.id, at=state.now,
                         old={"sterilization_batch": lot.sterilization_batch},
                         new={"sterilization_batch": batch.batch_number, "lot_number": lot.lot_number},
                         reason=(f"resterilized in batch {batch.batch_number}" if lot.sterilization_batch
                                 else f"loaded in sterilization batch {batch.batch_number}"))
            lot.sterilization_batch = batch.batch_number
    audit.record(state.actor, "sterilization.recorded", "sterilization_batch", batch.id, at=state.now,
                 new=_summary(batch, [(lot.lot_number, quantity) for lot, quantity in load]))
    state.written += 1
    if state.keep_objects:
        state.created_ids.append(batch.id)
    return batch


def _fail_after_import(state: ImportState) -> None:
    for batch in state.pending:
        _fail(batch, batch.failure_reasons, state.actor, state.now)


def _summary(batch: SterilizationBatch, load: list[tuple[str, int]] | None = None) -> dict[str, Any]:
    summary = {"batch_number": batch.batch_number, "method": batch.method, "sterilizer": batch.sterilizer,
               "processed_on": batch.processed_on.isoformat(), "parameters": batch.parameters, "limits": batch.limits,
               "bi_result": batch.bi_result, "status": batch.status}
    if load is not None:
        summary["load"] = [{"lot": number, "quantity": quantity} for number, quantity in load]
    if batch.failure_reasons:
        summary["failure_reasons"] = [failure_text(reason) for reason in batch.failure_reasons]
    return summary


def _parameter_column(name: str) -> Column:
    parameter = PARAMETERS[name]
    return Column(name, number(parameter.low, parameter.high), False, f"{parameter.label} ({parameter.unit})",
                  f"{parameter.label_zh}（{UNITS_ZH.get(parameter.unit, parameter.unit)}）")


BATCH_KIND = Kind("sterilization_batches", "Sterilization batches", "灭菌批", (
    Column("batch_number", text(60), True, "Sterilization batch", "灭菌批号"),
    Column("method", choice(STERILIZATION_METHODS), True, "Method (eo, gamma, ebeam, steam)", "灭菌方式"),
    Column("processed_on", parse_date, True, "Processed on", "灭菌日期"),
    Column("sterilizer", text(120), False, "Sterilizer / irradiator", "灭菌柜/辐照装置", ""),
    *(_parameter_column(name) for name in PARAMETERS),
    Column("bi_result", choice(BI_RESULTS), False, "Biological indicator (pending, pass, fail)", "生物指示物结果"),
    Column("load", parse_load, False, "Load: lots (LOT:QUANTITY; ...)", "装载批次（批号:数量；…）"),
    Column("note", text(2000), False, "Note", "备注", ""),
), ("batch_number",), _batches, _fail_after_import)

import_rules.KINDS.setdefault(BATCH_KIND.name, BATCH_KIND)


# --- failure: hold the lots, open one CAPA ---------------------------------------------------------------------------

def batch_lots(batch: SterilizationBatch) -> list[tuple[ProductLot, int | None]]:
    """The lots of a batch: its load (with quantities) and any other lot that names the batch."""
    loaded = {row.product_lot_id: row.quantity for row in batch.load}
    found = db.session.scalars(select(ProductLot).options(joinedload(ProductLot.product)).where(or_(
        ProductLot.id.in_(list(loaded)) if loaded else false(),
        ProductLot.sterilization_batch == batch.batch_number)).order_by(ProductLot.lot_number))
    return [(lot, loaded.get(lot.id)) for lot in found]


def _holdable(lot: ProductLot) -> bool:
    return lot.status == "hold" or "hold" in lots.TRANSITIONS[lot.status]


def _fail(batch: SterilizationBatch, reasons: list[dict], actor: User | None, now: datetime) -> ProcessInstance:
    """Fail a batch inside the caller's transaction: record why, start its CAPA (once) and hold its lots for it."""
    batch.status, batch.failure_reasons = "failed", reasons
    found = batch_lots(batch)
    # Only the lots still sterilized by this batch: a lot resterilized in a later batch is not held for this one.
    current = [lot for lot, _q in found if lot.sterilization_batch in (None, batch.batch_number)]
    held = [lot for lot in current if _holdable(lot)]
    text_reasons = "; ".join(failure_text(reason) for reason in reasons)
    if batch.capa_instance_id is None:
        if actor is None:
            raise Conflict(_("A failed sterilization batch opens a CAPA in someone's name; none was given."))
        numbers = [lot.lot_number for lot in current]
        title = CAPA_TITLE.format(batch=batch.batch_number)
        data = {"title": f"Sterilization batch {batch.batch_number} failed",
                "source": "lot", "source_reference": numbers[0] if numbers else "",
                "lot_numbers": ", ".join(numbers), "containment_lots": ", ".join(lot.lot_number for lot in held),
                "description": (f"Sterilization batch {batch.batch_number} ({method_label(batch.method)}, "
                                f"{METHODS[batch.method].standard}, processed on {batch.processed_on.isoformat()}"
                                f"{', ' + batch.sterilizer if batch.sterilizer else ''}) failed: {text_reasons}. "
                                f"Lots: {', '.join(numbers) or 'none'}."),
                "severity": "critical", "reported_on": plant_time.local_date(now, plant_time.zone()).isoformat(),
                "sterilization_batch_id": batch.id, "sterilization_batch": batch.batch_number}
        try:
            capa = instances.start_instance(CAPA_PROCESS, actor, data, title=title, now=now)
        except NotFound as err:
            raise Conflict(_("A failed sterilization batch opens a CAPA, but the CAPA procedure is not deployed.")) \
                from err
        batch.capa_instance_id = capa.id
        lots.link_lots(capa.id, [lot.id for lot in current], "subject")
    capa = db.session.get(ProcessInstance, batch.capa_instance_id)
    reason = f"Sterilization batch {batch.batch_number} failed: {text_reasons}"
    for lot in db.session.scalars(select(ProductLot).where(ProductLot.id.in_([lot.id for lot in held]))
                                  .order_by(ProductLot.lot_number).with_for_update()):
        lots.hold_lot(capa.id, lot, reason, HOLD_ROLE, now)
    audit.record(actor, "sterilization.failed", "sterilization_batch", batch.id, instance_id=capa.id, at=now,
                 new={**_summary(batch), "capa": capa.id, "held": [lot.lot_number for lot in held]},
                 reason=text_reasons)
    return capa


# --- use cases: the BI result, QA's signed decision ------------------------------------------------------------------

def _locked(batch_id: int) -> SterilizationBatch:
    batch = db.session.scalar(select(SterilizationBatch).where(SterilizationBatch.id == batch_id).with_for_update())
    if batch is None:
        raise NotFound(_("No sterilization batch %(id)s.", id=batch_id))
    return batch


def record_bi_result(batch_id: int, result: str, actor: User, now: datetime | None = None,
                     note: str = "") -> SterilizationBatch:
    """Record the biological indicator's result after incubation; a positive one fails the batch (CAPA, holds)."""
    now = now or utcnow()
    with atomic():
        instances.require_worker(actor)
        if result not in ("pass", "fail"):
            raise ValidationFailed(_("The biological indicator result is pass or fail."))
        if len(note) > REASON_MAX:
            raise ValidationFailed(_("The note is longer than %(limit)s characters.", limit=REASON_MAX))
        batch = _locked(batch_id)
        if not METHODS[batch.method].uses_bi:
            raise Conflict(_("%(method)s uses dosimeters, not biological indicators.",
                             method=method_label(batch.method, _page_lang())))
        if batch.status != "pending":
            raise Conflict(_("Sterilization batch %(batch)s is %(status)s: its record is closed.",
                             batch=batch.batch_number, status=_status_word(batch.status)))
        old = batch.bi_result
        batch.bi_result = result
        audit.record(actor, "sterilization.bi_recorded", "sterilization_batch", batch.id, at=now,
                     old={"bi_result": old}, new={"bi_result": result, "batch_number": batch.batch_number},
                     reason=note.strip())
        if result == "fail":
            _fail(batch, evaluate(batch.method, batch.parameters, batch.limits, "fail"), actor, now)
        keep_loaded(batch)
    return batch


def release_problems(batch: SterilizationBatch) -> list[str]:
    """What keeps a pending batch from release (English; the pages say it in their language)."""
    problems = []
    if METHODS[batch.method].uses_bi and batch.bi_result != "pass":
        problems.append("the biological indicator result is still pending")
    if not batch_lots(batch):
        problems.append("the batch has no lots")
    return problems


def decide(batch_id: int, decision: str, reason: str, actor: User, password: str | None,
           now: datetime | None = None) -> SterilizationBatch:
    """QA's e-signed decision on a pending batch: release it (its lots may then pass their sterilization release
    check) or fail it (holds and a CAPA). The signer re-enters their password; a wrong one is counted like a wrong
    password at a gate and nothing else changes. Refused: not a QA releaser (403), not pending (409), a release
    while the BI is pending (409), a failure without a reason (400)."""
    return decide_many([batch_id], decision, reason, actor, password, now)[0]


def decide_many(batch_ids: list[int], decision: str, reason: str, actor: User, password: str | None,
                now: datetime | None = None) -> list[SterilizationBatch]:
    """One signer's decision on several pending batches with one re-authentication (each batch gets its own signed
    hash and audit event); all or none."""
    now = now or utcnow()
    reason = (reason or "").strip()
    with atomic():
        instances.require_worker(actor)
        if decision not in DECISIONS:
            raise ValidationFailed(_("Decide release or fail."))
        if decision == "fail" and not reason:
            raise FormInvalid({"reason": [_("Say why the batch fails; it goes into the record and the CAPA.")]},
                              _("Say why the batch fails."))
        if len(reason) > REASON_MAX:
            raise FormInvalid({"reason": [_("At most %(limit)s characters.", limit=REASON_MAX)]},
                              _("The reason is too long."))
        if not actor.has_role(*RELEASE_ROLES):
            raise PermissionDenied(_("Only an authorised releaser (QA releaser role) can sign a sterilization "
                                     "batch's release or failure."))
        batches = [_locked(batch_id) for batch_id in dict.fromkeys(batch_ids)]
        for batch in batches:
            if batch.status != "pending":
                raise Conflict(_("Sterilization batch %(batch)s is already %(status)s.", batch=batch.batch_number,
                                 status=_status_word(batch.status)))
            if decision == "release" and (problems := release_problems(batch)):
                raise Conflict(_("Sterilization batch %(batch)s cannot be released: %(problems)s.",
                                 batch=batch.batch_number, problems="; ".join(_(problem) for problem in problems)))
        signatures.authenticate_signer(actor, password, now,
                                       _("The password is wrong; the sterilization batch was not signed."))
        for batch in batches:
            _sign(batch, decision, reason, actor, now)
        keep_loaded(*batches)
    return batches


def _sign(batch: SterilizationBatch, decision: str, reason: str, actor: User, now: datetime) -> None:
    meaning = DECISIONS[decision]
    lot_numbers = [(lot.lot_number, quantity) for lot, quantity in batch_lots(batch)]
    batch.signed_hash = engine.data_hash({
        "sterilization_batch": batch.batch_number, "method": batch.method, "parameters": batch.parameters,
        "limits": batch.limits, "bi_result": batch.bi_result, "lots": lot_numbers, "meaning": meaning,
        "reason": reason, "user": actor.username, "printed_name": actor.full_name, "at": now.isoformat()})
    batch.decided_by_id, batch.decided_at, batch.decision_reason = actor.id, now, reason
    batch.signed_name, batch.signed_meaning = actor.full_name, meaning
    audit.record(actor, "sterilization.released" if decision == "release" else "sterilization.fail_signed",
                 "sterilization_batch", batch.id, at=now, reason=reason, old={"status": "pending"},
                 new={"batch_number": batch.batch_number, "status": meaning, "printed_name": actor.full_name,
                      "meaning": meaning, "hash": batch.signed_hash, "lots": [number for number, _q in lot_numbers]})
    if decision == "release":
        batch.status = "released"
    else:
        _fail(batch, [*batch.failure_reasons, {"code": "explicit", "params": {"reason": reason}}], actor, now)


def pending_batch_ids(processed_before: date | None = None, bi_result: str | None = None) -> list[int]:
    """The pending batches (processed before a day, with a BI result), oldest first."""
    query = select(SterilizationBatch.id).where(SterilizationBatch.status == "pending")
    if processed_before is not None:
        query = query.where(SterilizationBatch.processed_on < processed_before)
    if bi_result is not None:
        query = query.where(SterilizationBatch.bi_result == bi_result)
    return list(db.session.scalars(query.order_by(SterilizationBatch.processed_on, SterilizationBatch.id)))


# --- reading ---------------------------------------------------------------------------------------------------------

def list_batches(*, q: str = "", status: str = "", method: str = "", page: int = 1, per_page: int = 20):
    """One page of sterilization batches, newest first, filtered by a search (batch, sterilizer, a lot of its
    load), a status and a method."""
    query = select(SterilizationBatch)
    if q.strip():
        pattern = f"%{q.strip()[:100]}%"
        in_load = select(SterilizationLoad.batch_id).join(
            ProductLot, ProductLot.id == SterilizationLoad.product_lot_id).where(ProductLot.lot_number.ilike(pattern))
        query = query.where(or_(SterilizationBatch.batch_number.ilike(pattern),
                                SterilizationBatch.sterilizer.ilike(pattern), SterilizationBatch.id.in_(in_load)))
    if status:
        query = query.where(SterilizationBatch.status == status)
    if method:
        query = query.where(SterilizationBatch.method == method)
    query = query.order_by(SterilizationBatch.processed_on.desc(), SterilizationBatch.id.desc())
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


def lot_counts(batch_ids: list[int]) -> dict[int, int]:
    """How many lots each batch's load holds (for the list)."""
    if not batch_ids:
        return {}
    return dict(db.session.execute(select(SterilizationLoad.batch_id, func.count()).where(
        SterilizationLoad.batch_id.in_(batch_ids)).group_by(SterilizationLoad.batch_id)).all())


def get_batch(batch_id: int) -> SterilizationBatch:
    batch = db.session.get(SterilizationBatch, batch_id)
    if batch is None:
        raise NotFound(_("No sterilization batch %(id)s.", id=batch_id))
    return batch


def batch_by_number(batch_number: str | None) -> SterilizationBatch | None:
    if not batch_number:
        return None
    return db.session.scalar(select(SterilizationBatch).where(SterilizationBatch.batch_number == batch_number))


@dataclass
class LotBatch:
    """A sterilization batch record a product lot was in."""

    batch: SterilizationBatch
    current: bool  # the batch the lot names now; otherwise it was resterilized in a later one


LOT_BATCH_CHUNK = 2000  # lots per query (a bound parameter each)


def batches_for_lots(product_lots: Iterable[ProductLot]) -> dict[int, list[LotBatch]]:
    """The sterilization batch records each lot was in - the loads it was part of and the batch it names - oldest
    cycle first, read in one query for all the lots (per 2,000 lots naming a batch), never one per lot. A lot that
    was ever in a load names a batch (recording a load sets it), so lots naming none are not looked up."""
    named = {lot.id: lot.sterilization_batch for lot in product_lots if lot.sterilization_batch}
    found: dict[int, list[LotBatch]] = {}
    ids = list(named)
    for start in range(0, len(ids), LOT_BATCH_CHUNK):
        part = ids[start:start + LOT_BATCH_CHUNK]
        pairs = union(
            select(SterilizationLoad.product_lot_id.label("lot_id"), SterilizationLoad.batch_id.label("batch_id"))
            .where(SterilizationLoad.product_lot_id.in_(part)),
            select(ProductLot.id.label("lot_id"), SterilizationBatch.id.label("batch_id"))
            .join(SterilizationBatch, SterilizationBatch.batch_number == ProductLot.sterilization_batch)
            .where(ProductLot.id.in_(part))).subquery()
        rows = db.session.execute(select(pairs.c.lot_id, SterilizationBatch)
                                  .join(SterilizationBatch, SterilizationBatch.id == pairs.c.batch_id)
                                  .order_by(SterilizationBatch.processed_on, SterilizationBatch.id))
        for lot_id, batch in rows:
            found.setdefault(lot_id, []).append(LotBatch(batch, batch.batch_number == named[lot_id]))
    return found


def lot_batch_dict(lot: ProductLot, record: LotBatch) -> dict[str, Any]:
    """A lot's batch record as plain data (the trace API and its exports)."""
    batch = record.batch
    return {"lot_id": lot.id, "lot_number": lot.lot_number, "batch_id": batch.id, "batch_number": batch.batch_number,
            "method": batch.method, "processed_on": batch.processed_on.isoformat(), "sterilizer": batch.sterilizer,
            "bi_result": batch.bi_result, "status": batch.status, "current": record.current}


@dataclass
class BatchLot:
    lot: ProductLot
    quantity: int | None
    current: bool  # the lot still names this batch (not resterilized since)


@dataclass
class BatchPage:
    """Everything a batch's page and the API show."""

    batch: SterilizationBatch
    method: Method
    lots: list[BatchLot]
    capa: ProcessInstance | None
    release_problems: list[str]

    @property
    def parameters(self) -> list[dict[str, Any]]:
        rows = []
        for name in self.method.parameters:
            low, high = (self.batch.limits.get(name) or [None, None])[:2]
            value = self.batch.parameters.get(name)
            within = value is not None and (low is None or value >= low) and (high is None or value <= high)
            rows.append({"name": name, "unit": PARAMETERS[name].unit, "value": value, "min": low, "max": high,
                         "within": within})
        return rows


def batch_page(batch_id: int) -> BatchPage:
    batch = get_batch(batch_id)
    return BatchPage(batch, METHODS[batch.method],
                     [BatchLot(lot, quantity, lot.sterilization_batch == batch.batch_number)
                      for lot, quantity in batch_lots(batch)],
                     db.session.get(ProcessInstance, batch.capa_instance_id) if batch.capa_instance_id else None,
                     release_problems(batch) if batch.status == "pending" else [])


def signer_may_decide(actor: User) -> bool:
    return actor.has_role(*RELEASE_ROLES)
