"""Supplier quality: a score per supplier over a rolling window from its incoming inspections, SCARs, returns and
late SCAR responses; thresholds that start the supplier review procedure (one open review per supplier, once per
crossing); the signed outcome of a review (the approved-supplier status, optionally a supplier return / SCAR); the
approved-supplier list, its export, a supplier's score history, and the dashboard's counts.

The rule (docs/suppliers.md):

    score = 100 - w_nc x nonconforming% - w_scar x SCARs - w_return x lots returned - w_late x late responses

clamped to 0..100, over the last `window` plant days (today included). No score ("not enough data") when the window
holds fewer than `min_inspections` incoming inspections and no SCAR, return or late response. Bands: *good* at or
above the alert threshold, *alert* below it, *limit* below the limit.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import and_, func, or_, select

from app.exceptions import Conflict, FormInvalid, NotFound, PermissionDenied, ValidationFailed
from app.extensions import db
from app.models import (
    Group,
    Inspection,
    MaterialLot,
    ProcessInstance,
    ScarRequest,
    Signature,
    Supplier,
    SupplierEvaluation,
    SupplierReturn,
    SupplierReview,
    Task,
    User,
)
from app.models.instances import OPEN_STATES
from app.models.lots import SUPPLIER_STATUSES
from app.models.supplier_quality import SCORE_BANDS
from app.models.types import utcnow
from app.models.users import WORKER_ROLES
from app.services.evidence import audit
from app.services.lots import lots
from app.services.procedures import supplier_returns
from app.services.workflow import instances, plant_time, processes, registry, titles
from app.services.workflow.transaction import atomic

log = logging.getLogger(__name__)

PROCESS_KEY = "supplier_review"
QA_GROUPS = ("qa", "qa_management")
BAD_BANDS = ("alert", "limit")
WEIGHT_KEYS = ("nonconforming_pct", "scar", "return", "late_response")
REVIEW_TITLE = titles.register("Supplier review: {code} {name} (score {score})",
                               "供应商评审：{code} {name}（得分 {score}）")
TREND_DAYS = 30  # the trend compares the latest score with the one at least this many days before it


# --- the rule, free of the database ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    window_days: int
    min_inspections: int
    alert: float
    limit: float
    weights: dict[str, float]


def settings() -> Settings:
    """The scoring settings from the app config (QUALIFLOW_SUPPLIER_*; docs/operating.md)."""
    config = current_app.config
    weights = {key: float(config["SUPPLIER_SCORE_WEIGHTS"].get(key, 0)) for key in WEIGHT_KEYS}
    alert, limit = float(config["SUPPLIER_ALERT_SCORE"]), float(config["SUPPLIER_LIMIT_SCORE"])
    if not 0 <= limit <= alert <= 100:
        raise ValidationFailed(f"Supplier score thresholds must satisfy 0 <= limit ({limit:g}) <= alert ({alert:g}) "
                               "<= 100.")
    return Settings(max(int(config["SUPPLIER_SCORE_WINDOW_DAYS"]), 1),
                    max(int(config["SUPPLIER_SCORE_MIN_INSPECTIONS"]), 0), alert, limit, weights)


@dataclass
class Figures:
    """What a supplier did in the window."""

    inspections: int = 0  # incoming inspections of its material lots
    failed: int = 0  # of which failed
    scars: int = 0  # corrective action requests sent (first rounds)
    late_responses: int = 0  # SCAR rounds due in the window answered after the due time or not answered by now
    returns: int = 0  # material lots returned to it
    window_start: str = ""
    window_end: str = ""

    @property
    def nonconforming_pct(self) -> float | None:
        return 100 * self.failed / self.inspections if self.inspections else None

    def as_dict(self) -> dict[str, Any]:
        return {"inspections": self.inspections, "failed": self.failed, "scars": self.scars,
                "late_responses": self.late_responses, "returns": self.returns,
                "nonconforming_pct": None if self.nonconforming_pct is None else round(self.nonconforming_pct, 2),
                "window_start": self.window_start, "window_end": self.window_end}


def score(figures: Figures, rule: Settings) -> tuple[float | None, str, dict[str, float]]:
    """The score, its band and the points each figure cost; (None, "no_data", {}) without enough data."""
    events = figures.scars + figures.returns + figures.late_responses
    if figures.inspections < max(rule.min_inspections, 1) and not events:
        return None, "no_data", {}
    w = rule.weights
    deductions = {"nonconforming_pct": w["nonconforming_pct"] * (figures.nonconforming_pct or 0.0),
                  "scar": w["scar"] * figures.scars, "return": w["return"] * figures.returns,
                  "late_response": w["late_response"] * figures.late_responses}
    value = round(min(max(100.0 - sum(deductions.values()), 0.0), 100.0), 1)
    return value, band_of(value, rule), {k: round(v, 2) for k, v in deductions.items()}


def band_of(value: float | None, rule: Settings) -> str:
    if value is None:
        return "no_data"
    return "limit" if value < rule.limit else "alert" if value < rule.alert else "good"


# --- the figures from the database ---------------------------------------------------------------------------------

def window(now: datetime, days: int) -> tuple[date, date]:
    """The window's first and last plant day, both included: the last `days` days, today included."""
    today = plant_time.local_date(now, plant_time.zone())
    return today - timedelta(days=days - 1), today


def figures_for(supplier_id: int, now: datetime, days: int) -> Figures:
    first, last = window(now, days)
    zone = plant_time.zone()
    begin = datetime.combine(first, datetime.min.time(), tzinfo=zone)
    end = min(datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=zone), now)
    inspected = db.session.execute(
        select(func.count(), func.count().filter(Inspection.result == "fail"))
        .select_from(Inspection).join(MaterialLot, MaterialLot.id == Inspection.material_lot_id)
        .where(MaterialLot.supplier_id == supplier_id, Inspection.stage == "incoming",
               Inspection.inspected_on >= first, Inspection.inspected_on <= last)).one()
    scars = db.session.scalar(select(func.count()).select_from(ScarRequest).where(
        ScarRequest.supplier_id == supplier_id, ScarRequest.round == 1, ScarRequest.sent_at >= begin,
        ScarRequest.sent_at < end)) or 0
    late = db.session.scalar(select(func.count()).select_from(ScarRequest).where(
        ScarRequest.supplier_id == supplier_id, ScarRequest.response_due_at >= begin,
        ScarRequest.response_due_at < end,
        or_(ScarRequest.responded_at > ScarRequest.response_due_at,
            and_(ScarRequest.responded_at.is_(None), ScarRequest.response_due_at < now)))) or 0
    returned = db.session.scalar(select(func.count()).select_from(SupplierReturn).where(
        SupplierReturn.supplier_id == supplier_id, SupplierReturn.returned_on >= first,
        SupplierReturn.returned_on <= last)) or 0
    return Figures(inspections=inspected[0], failed=inspected[1] or 0, scars=scars, late_responses=late,
                   returns=returned, window_start=first.isoformat(), window_end=last.isoformat())


# --- evaluating: scores, reviews started or fed --------------------------------------------------------------------

def _open_review(supplier_id: int) -> SupplierReview | None:
    return db.session.scalar(select(SupplierReview)
                             .join(ProcessInstance, ProcessInstance.id == SupplierReview.instance_id)
                             .where(SupplierReview.supplier_id == supplier_id, SupplierReview.closed_at.is_(None),
                                    ProcessInstance.status.in_(OPEN_STATES))
                             .order_by(SupplierReview.id.desc()).limit(1))


def open_review(supplier_id: int) -> SupplierReview | None:
    return _open_review(supplier_id)


def _episode_reviews(supplier_id: int, before: datetime) -> list[SupplierReview]:
    """The reviews started (and not cancelled) since the supplier's score was last good (or not scored): this
    stretch below the alert threshold has had them already."""
    calm = db.session.scalar(select(func.max(SupplierEvaluation.evaluated_at)).where(
        SupplierEvaluation.supplier_id == supplier_id, SupplierEvaluation.band.in_(("good", "no_data")),
        SupplierEvaluation.evaluated_at <= before))
    # A cancelled review reviewed nothing: the crossing is still to be reviewed.
    query = select(SupplierReview).join(ProcessInstance, ProcessInstance.id == SupplierReview.instance_id).where(
        SupplierReview.supplier_id == supplier_id, ProcessInstance.status != "cancelled")
    if calm is not None:
        query = query.where(SupplierReview.started_at > calm)
    return list(db.session.scalars(query))


def review_starter() -> User | None:
    """Who a review the scheduled job starts is started in the name of: QUALIFLOW_SUPPLIER_REVIEW_STARTER, or else
    the first active member of the head-of-QA group."""
    username = current_app.config.get("SUPPLIER_REVIEW_STARTER") or ""
    if username:
        user = db.session.scalar(select(User).where(User.username == username, User.active.is_(True)))
        if user is not None:
            return user
    for user in db.session.scalars(select(User).join(User.groups).where(Group.name == "qa_management",
                                                                        User.active.is_(True)).order_by(User.id)):
        if user.has_role(*WORKER_ROLES):
            return user
    return None


def proposed_status(current: str, band: str) -> str:
    """What a review proposes: below the limit, suspension; below the alert threshold, an approved supplier
    becomes conditional; otherwise the status stays."""
    if band == "limit":
        return "suspended"
    if band == "alert" and current == "approved":
        return "conditional"
    return current


def _start_review(supplier: Supplier, trigger: str, value: float | None, band: str, figures: dict[str, Any],
                  actor: User, now: datetime, reason: str = "", proposed: str | None = None) -> SupplierReview:
    proposal = proposed or proposed_status(supplier.status, band)
    shown = "—" if value is None else f"{value:g}"
    title = REVIEW_TITLE.format(code=supplier.code, name=supplier.name, score=shown)[:300]
    rule = settings()
    data = {"title": title, "supplier_id": supplier.id, "supplier_code": supplier.code,
            "supplier_name": supplier.name, "current_status": supplier.status, "trigger": trigger,
            "score": value, "score_text": shown, "band": band, "alert_threshold": rule.alert,
            "limit_threshold": rule.limit, "figures": figures, "proposed_status": proposal,
            "supplier_status": proposal, "request_reason": reason}
    instance = instances.start_instance(PROCESS_KEY, actor, data, title=title, now=now)
    review = SupplierReview(supplier_id=supplier.id, instance_id=instance.id, trigger=trigger, score=value,
                            band=band if band in BAD_BANDS else "", proposed_status=proposal,
                            status_before=supplier.status, started_at=now)
    db.session.add(review)
    db.session.flush()
    audit.record(actor, "supplier_review.started", "supplier", supplier.id, instance_id=instance.id, at=now,
                 new={"code": supplier.code, "trigger": trigger, "score": value, "band": band,
                      "proposed_status": proposal}, reason=reason or None)
    return review


@dataclass
class Outcome:
    evaluation: SupplierEvaluation
    review: SupplierReview | None = None
    started: bool = False  # the evaluation started this review (else it fed an open one, or none)
    note: str = ""


def _evaluate(supplier: Supplier, now: datetime, trigger: str, actor: User | None, rule: Settings) -> Outcome:
    figures = figures_for(supplier.id, now, rule.window_days)
    value, band, deductions = score(figures, rule)
    evaluation = SupplierEvaluation(supplier_id=supplier.id, evaluated_at=now, window_days=rule.window_days,
                                    score=value, band=band, figures={**figures.as_dict(), "deductions": deductions},
                                    trigger=trigger)
    db.session.add(evaluation)
    db.session.flush()
    outcome = Outcome(evaluation)
    if band not in BAD_BANDS:
        return outcome
    review = _open_review(supplier.id)
    if review is not None:  # feed the open review: linked, and escalated when the limit is crossed meanwhile
        evaluation.review_id, outcome.review = review.id, review
        if band == "limit" and review.band != "limit":
            review.band = "limit"
            audit.record(None, "supplier_review.escalated", "supplier", supplier.id, instance_id=review.instance_id,
                         at=now, new={"code": supplier.code, "score": value, "band": band})
        return outcome
    earlier = _episode_reviews(supplier.id, now)
    if earlier and (band != "limit" or any(r.band == "limit" for r in earlier)):
        outcome.note = "reviewed"  # this crossing was reviewed already
        return outcome
    if not processes.is_deployed(PROCESS_KEY, now):
        outcome.note = "not_deployed"
        return outcome
    starter = actor if actor is not None else review_starter()
    if starter is None:
        outcome.note = "no_starter"
        log.warning("supplier %s scored %s (%s) but no one can start the review: set QUALIFLOW_SUPPLIER_REVIEW_"
                    "STARTER or add an active user to the qa_management group", supplier.code, value, band)
        return outcome
    review = _start_review(supplier, band, value, band, evaluation.figures, starter, now)
    evaluation.review_id, outcome.review, outcome.started = review.id, review, True
    return outcome


def _require_qa(actor: User) -> None:
    instances.require_worker(actor)
    if not (actor.has_role("admin") or actor.group_names & set(QA_GROUPS)):
        raise PermissionDenied("Only quality assurance can evaluate suppliers or start a supplier review.")


def evaluate_supplier(supplier_id: int, actor: User | None = None, now: datetime | None = None,
                      trigger: str = "on_demand", once_per_period: bool = False) -> Outcome:
    """Score one supplier now (on demand: by QA), and start or feed its review when the score calls for one."""
    now = now or utcnow()
    with atomic():
        if actor is not None:
            _require_qa(actor)
        rule = settings()
        supplier = db.session.scalar(select(Supplier).where(Supplier.id == supplier_id).with_for_update())
        if supplier is None:
            raise NotFound(f"No supplier {supplier_id}.")
        if once_per_period and (done := _scheduled_since(supplier.id, now)) is not None:
            return Outcome(done, note="already_scored")  # another scheduler scored it this period (row locked)
        return _evaluate(supplier, now, trigger, actor, rule)


def _scheduled_since(supplier_id: int, now: datetime) -> SupplierEvaluation | None:
    """A scheduled evaluation of the supplier within the current scoring period (SUPPLIER_SCORE_HOURS)."""
    since = now - timedelta(hours=float(current_app.config["SUPPLIER_SCORE_HOURS"])) + timedelta(minutes=1)
    return db.session.scalar(select(SupplierEvaluation).where(
        SupplierEvaluation.supplier_id == supplier_id, SupplierEvaluation.trigger == "scheduled",
        SupplierEvaluation.evaluated_at >= since, SupplierEvaluation.evaluated_at <= now)
        .order_by(SupplierEvaluation.id.desc()).limit(1))


def evaluate_all(now: datetime | None = None, actor: User | None = None, trigger: str = "scheduled",
                 once_per_period: bool = False) -> list[Outcome]:
    """Score every supplier (the scheduled job, or QA on demand), one transaction per supplier; once_per_period
    skips a supplier another scheduler scored in this period meanwhile."""
    now = now or utcnow()
    if actor is not None:
        with atomic():
            _require_qa(actor)
    ids = list(db.session.scalars(select(Supplier.id).order_by(Supplier.id)))
    db.session.rollback()  # no read transaction held between the suppliers
    return [evaluate_supplier(supplier_id, actor, now, trigger, once_per_period) for supplier_id in ids]


def due_for_evaluation(now: datetime) -> bool:
    """Whether the scheduled job should score again: the last scheduled run is older than SUPPLIER_SCORE_HOURS."""
    hours = float(current_app.config["SUPPLIER_SCORE_HOURS"])
    last = db.session.scalar(select(func.max(SupplierEvaluation.evaluated_at)).where(
        SupplierEvaluation.trigger == "scheduled"))
    return last is None or now - last >= timedelta(hours=hours) - timedelta(minutes=1)


def scheduled_run(now: datetime | None = None) -> int:
    """The scheduler's tick: score every supplier when due; return how many were scored."""
    now = now or utcnow()
    if not due_for_evaluation(now):
        db.session.rollback()
        return 0
    return sum(1 for o in evaluate_all(now, once_per_period=True) if o.note != "already_scored")


def request_review(supplier_id: int, actor: User, proposed: str, reason: str, now: datetime | None = None,
                   ) -> SupplierReview:
    """Start a supplier review by hand (a status change QA wants, an audit finding): with a proposed status and a
    reason; the status changes only when the review's decision is e-signed."""
    now = now or utcnow()
    reason = (reason or "").strip()
    errors: dict[str, list[str]] = {}
    if proposed not in SUPPLIER_STATUSES:
        errors["proposed_status"] = [f"Choose one of {', '.join(SUPPLIER_STATUSES)}."]
    if len(reason) < 5 or len(reason) > 2000:
        errors["reason"] = ["Give a reason of 5 to 2,000 characters."]
    if errors:
        raise FormInvalid(errors)
    with atomic():
        _require_qa(actor)
        supplier = db.session.scalar(select(Supplier).where(Supplier.id == supplier_id).with_for_update())
        if supplier is None:
            raise NotFound(f"No supplier {supplier_id}.")
        existing = _open_review(supplier.id)
        if existing is not None:
            raise Conflict(f"Supplier {supplier.code} is already under review (instance #{existing.instance_id}); "
                           "decide that one first.")
        latest = latest_evaluation(supplier.id)
        value = latest.score if latest else None
        band = latest.band if latest else "no_data"
        return _start_review(supplier, "manual", value, band, latest.figures if latest else {}, actor, now,
                             reason=reason, proposed=proposed)


# --- the review's outcome (handlers) -------------------------------------------------------------------------------

def review_of(instance_id: int) -> SupplierReview:
    review = db.session.scalar(select(SupplierReview).where(SupplierReview.instance_id == instance_id))
    if review is None:
        raise NotFound(f"Instance {instance_id} reviews no supplier.")
    return review


def _signer(instance_id: int, element_id: str) -> User | None:
    signature = db.session.scalar(select(Signature).join(Task, Task.id == Signature.task_id).where(
        Signature.instance_id == instance_id, Task.element_id == element_id, Signature.meaning != "rejected")
        .order_by(Signature.id.desc()).limit(1))
    return signature.user if signature is not None else None


def scar_lot_problems(supplier_id: int, lot_number: str, lang: str = "en") -> list[str]:
    """Why a lot cannot be returned through the review (empty when it can)."""
    zh = lang == "zh-CN"
    lot = db.session.scalar(select(MaterialLot).where(MaterialLot.lot_number == lot_number.strip(),
                                                      MaterialLot.supplier_id == supplier_id).limit(1))
    if lot is None:
        return [f"批次 {lot_number} 不是该供应商的物料批次。" if zh else
                f"Lot {lot_number} is not a material lot of this supplier."]
    if lot.status in ("scrapped", "returned"):
        return [f"物料批次 {lot_number} 已{'报废' if lot.status == 'scrapped' else '退货'}。" if zh else
                f"Material lot {lot_number} is {lot.status}."]
    return []


def check_decision(instance: ProcessInstance | None, data: dict, lang: str) -> dict[str, list[str]]:
    """Form check `supplier_review_decision`: the lot to return (with a SCAR) is one of the supplier's."""
    if instance is None or not data.get("start_scar"):
        return {}
    review = db.session.scalar(select(SupplierReview).where(SupplierReview.instance_id == instance.id))
    if review is None:
        return {}
    problems = scar_lot_problems(review.supplier_id, str(data.get("scar_lot") or ""), lang)
    return {"scar_lot": problems} if problems else {}


def apply_decision(instance: ProcessInstance, status: str, reason: str, scar_lot: str, now: datetime,
                   ) -> dict[str, Any]:
    """Carry out the e-signed review decision in the step's transaction: the supplier's status (audited, in the
    name of the signer), a supplier return with SCAR for the lot named, and the review closed. A retried step
    does nothing twice."""
    if status not in SUPPLIER_STATUSES:
        raise ValidationFailed(f"Unknown supplier status {status!r}; use one of {', '.join(SUPPLIER_STATUSES)}.")
    review = review_of(instance.id)
    signer = _signer(instance.id, "approve")
    if signer is None:
        raise Conflict("The review decision has no e-signature: it cannot be carried out.")
    supplier = db.session.get(Supplier, review.supplier_id)
    result: dict[str, Any] = {"supplier": supplier.code, "old_status": supplier.status, "status": status,
                              "signed_by": signer.full_name, "return_instance_id": None}
    if review.closed_at is not None:
        return {**result, "old_status": review.status_before, "status": review.decided_status}
    if supplier.status != status:
        lots.set_supplier_status(supplier.id, status, f"{reason.strip()} (supplier review #{instance.id}, "
                                 f"e-signed by {signer.full_name})", signer, now)
    lot_number = (scar_lot or "").strip()
    if lot_number:
        if problems := scar_lot_problems(supplier.id, lot_number):
            raise Conflict(" ".join(problems))
        lot = db.session.scalar(select(MaterialLot).where(MaterialLot.lot_number == lot_number,
                                                          MaterialLot.supplier_id == supplier.id).limit(1))
        started = supplier_returns.start_return(signer, lot.id, now=now)
        result["return_instance_id"] = started.id
    review.decided_status, review.decision_note, review.closed_at = status, reason.strip()[:4000], now
    audit.record(signer, "supplier_review.closed", "supplier", supplier.id, instance_id=instance.id, at=now,
                 old={"status": result["old_status"]},
                 new={"status": status, "code": supplier.code, "return_instance_id": result["return_instance_id"]},
                 reason=reason.strip() or None)
    return result


registry.register_form_checks({"supplier_review_decision": check_decision})


# --- what pages, the API and exports show --------------------------------------------------------------------------

def latest_evaluation(supplier_id: int) -> SupplierEvaluation | None:
    return db.session.scalar(select(SupplierEvaluation).where(SupplierEvaluation.supplier_id == supplier_id)
                             .order_by(SupplierEvaluation.evaluated_at.desc(), SupplierEvaluation.id.desc()).limit(1))


def _trend_base(latest: SupplierEvaluation) -> SupplierEvaluation | None:
    """The scored evaluation TREND_DAYS or more before the latest one (or the oldest scored one)."""
    scored = select(SupplierEvaluation).where(SupplierEvaluation.supplier_id == latest.supplier_id,
                                              SupplierEvaluation.score.is_not(None), SupplierEvaluation.id != latest.id,
                                              SupplierEvaluation.evaluated_at <= latest.evaluated_at)
    base = db.session.scalar(scored.where(SupplierEvaluation.evaluated_at <= latest.evaluated_at
                                          - timedelta(days=TREND_DAYS))
                             .order_by(SupplierEvaluation.evaluated_at.desc()).limit(1))
    return base or db.session.scalar(scored.order_by(SupplierEvaluation.evaluated_at).limit(1))


@dataclass
class SupplierRow:
    """One line of the approved-supplier list."""

    supplier: Supplier
    evaluation: SupplierEvaluation | None
    trend: float | None = None  # score change against the trend base; None: nothing to compare
    review: SupplierReview | None = None

    @property
    def score(self) -> float | None:
        return self.evaluation.score if self.evaluation else None

    @property
    def band(self) -> str:
        return self.evaluation.band if self.evaluation else "no_data"

    @property
    def evaluated_at(self) -> datetime | None:
        return self.evaluation.evaluated_at if self.evaluation else None

    @property
    def figures(self) -> dict[str, Any]:
        return self.evaluation.figures if self.evaluation else {}

    @property
    def trend_direction(self) -> str:
        if self.trend is None:
            return ""
        return "up" if self.trend > 0 else "down" if self.trend < 0 else "flat"


def _latest(column):
    """The latest evaluation's `column` of the supplier of the enclosing query (a correlated subquery: one backward
    step on the (supplier, evaluated_at) index per supplier, however long the history)."""
    return (select(column).where(SupplierEvaluation.supplier_id == Supplier.id)
            .order_by(SupplierEvaluation.evaluated_at.desc(), SupplierEvaluation.id.desc()).limit(1)
            .correlate(Supplier).scalar_subquery())


def _asl_query(q: str = "", status: str = "", band: str = ""):
    query = select(Supplier)
    if q:
        pattern = f"%{q.strip()}%"
        query = query.where(or_(Supplier.code.ilike(pattern), Supplier.name.ilike(pattern)))
    if status:
        query = query.where(Supplier.status == status)
    if band:
        latest_band = _latest(SupplierEvaluation.band)
        query = query.where(or_(latest_band.is_(None), latest_band == "no_data") if band == "no_data"
                            else latest_band == band)
    return query.order_by(Supplier.code)


def _with_latest(suppliers: list[Supplier]) -> list[tuple[Supplier, SupplierEvaluation | None]]:
    """Each supplier with its latest evaluation (two queries)."""
    ids = [s.id for s in suppliers]
    latest_ids = dict(db.session.execute(select(Supplier.id, _latest(SupplierEvaluation.id))
                                         .where(Supplier.id.in_(ids))).all()) if ids else {}
    wanted = [i for i in latest_ids.values() if i is not None]
    evaluations = {e.id: e for e in db.session.scalars(select(SupplierEvaluation).where(
        SupplierEvaluation.id.in_(wanted)))} if wanted else {}
    return [(s, evaluations.get(latest_ids.get(s.id))) for s in suppliers]


def check_filters(status: str, band: str) -> None:
    if status and status not in SUPPLIER_STATUSES:
        raise ValidationFailed(f"Unknown supplier status {status[:40]!r}; use one of {', '.join(SUPPLIER_STATUSES)}.")
    if band and band not in SCORE_BANDS:
        raise ValidationFailed(f"Unknown score band {band[:40]!r}; use one of {', '.join(SCORE_BANDS)}.")


def _open_reviews(supplier_ids: list[int]) -> dict[int, SupplierReview]:
    """The open review of each of these suppliers (one query)."""
    found: dict[int, SupplierReview] = {}
    for chunk in range(0, len(supplier_ids), 500):
        for review in db.session.scalars(select(SupplierReview).join(
                ProcessInstance, ProcessInstance.id == SupplierReview.instance_id).where(
                SupplierReview.supplier_id.in_(supplier_ids[chunk:chunk + 500]), SupplierReview.closed_at.is_(None),
                ProcessInstance.status.in_(OPEN_STATES)).order_by(SupplierReview.id)):
            found[review.supplier_id] = review
    return found


def _rows(pairs) -> list[SupplierRow]:
    pairs = list(pairs)
    reviews = _open_reviews([supplier.id for supplier, _evaluation in pairs])
    rows = []
    for supplier, evaluation in pairs:
        row = SupplierRow(supplier, evaluation, review=reviews.get(supplier.id))
        if evaluation is not None and evaluation.score is not None:
            base = _trend_base(evaluation)
            row.trend = round(evaluation.score - base.score, 1) if base is not None else None
        rows.append(row)
    return rows


def approved_supplier_list(q: str = "", status: str = "", band: str = "", page: int = 1,
                           per_page: int = 20) -> Pagination:
    """A page of the approved-supplier list (Flask-SQLAlchemy's, its items SupplierRows): status, latest score and
    band, trend, last evaluation, open review."""
    check_filters(status, band)
    result = db.paginate(_asl_query(q, status, band), page=max(page, 1), per_page=per_page, error_out=False)
    result.items = _rows(_with_latest(list(result.items)))
    return result


def export_rows(q: str = "", status: str = "", band: str = "") -> list[SupplierRow]:
    """Every line of the approved-supplier list the filters select (for CSV and XLSX)."""
    check_filters(status, band)
    suppliers = list(db.session.scalars(_asl_query(q, status, band)))
    rows: list[SupplierRow] = []
    for chunk in range(0, len(suppliers), 500):
        rows += _rows(_with_latest(suppliers[chunk:chunk + 500]))
    return rows


def get_supplier(supplier_id: int) -> Supplier:
    supplier = db.session.get(Supplier, supplier_id)
    if supplier is None:
        raise NotFound(f"No supplier {supplier_id}.")
    return supplier


def supplier_row(supplier_id: int) -> SupplierRow:
    supplier = get_supplier(supplier_id)
    return _rows([(supplier, latest_evaluation(supplier.id))])[0]


def history(supplier_id: int, days: int = 365, now: datetime | None = None) -> list[SupplierEvaluation]:
    """A supplier's evaluations of the last `days` days, oldest first (the score chart)."""
    if not 1 <= days <= 3660:
        raise ValidationFailed("Give a period of 1 to 3,660 days.")
    get_supplier(supplier_id)
    since = (now or utcnow()) - timedelta(days=days)
    return list(db.session.scalars(select(SupplierEvaluation).where(
        SupplierEvaluation.supplier_id == supplier_id, SupplierEvaluation.evaluated_at >= since)
        .order_by(SupplierEvaluation.evaluated_at, SupplierEvaluation.id)))


def evaluations_page(supplier_id: int, page: int = 1, per_page: int = 20):
    get_supplier(supplier_id)
    return db.paginate(select(SupplierEvaluation).where(SupplierEvaluation.supplier_id == supplier_id)
                       .order_by(SupplierEvaluation.evaluated_at.desc(), SupplierEvaluation.id.desc()),
                       page=max(page, 1), per_page=per_page, error_out=False)


def reviews(supplier_id: int) -> list[tuple[SupplierReview, ProcessInstance]]:
    return list(db.session.execute(select(SupplierReview, ProcessInstance).join(
        ProcessInstance, ProcessInstance.id == SupplierReview.instance_id)
        .where(SupplierReview.supplier_id == supplier_id).order_by(SupplierReview.id.desc())).all())


def material_lots(supplier_id: int, limit: int = 20) -> list[MaterialLot]:
    return list(db.session.scalars(select(MaterialLot).where(MaterialLot.supplier_id == supplier_id)
                                   .order_by(MaterialLot.received_on.desc().nulls_last(), MaterialLot.id.desc())
                                   .limit(limit)))


def band_counts() -> dict[str, int]:
    """Suppliers by the band of their latest evaluation (never evaluated: no_data) - the dashboard tile."""
    # Grouped by the subquery's column by name: PostgreSQL does not see that the correlated subquery in the select
    # list and in GROUP BY are one expression when each has its own bound parameters.
    latest = select(_latest(SupplierEvaluation.band).label("band")).select_from(Supplier).subquery()
    counts: dict[str, int] = {}
    for band, count in db.session.execute(select(latest.c.band, func.count()).group_by(latest.c.band)).all():
        counts[band or "no_data"] = counts.get(band or "no_data", 0) + count
    return counts


def status_counts() -> dict[str, int]:
    return dict(db.session.execute(select(Supplier.status, func.count()).group_by(Supplier.status)).all())


def open_reviews_count() -> int:
    return db.session.scalar(select(func.count()).select_from(SupplierReview).join(
        ProcessInstance, ProcessInstance.id == SupplierReview.instance_id).where(
        SupplierReview.closed_at.is_(None), ProcessInstance.status.in_(OPEN_STATES))) or 0


__all__ = ["SCORE_BANDS", "SUPPLIER_STATUSES"]  # read by the pages and the API


def review_instance_id(review_id: int | None) -> int | None:
    """The instance of a review (an evaluation names its review by id)."""
    if review_id is None:
        return None
    review = db.session.get(SupplierReview, review_id)
    return review.instance_id if review else None
