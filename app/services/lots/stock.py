"""Stock control (issue 23 section 2): stock by warehouse and location with status and expiry, shipments picked
first-expiry-first-out that refuse lots which are expired, on hold, recalled, in quarantine or below the customer's
minimum remaining shelf life (a refusal QA may override with a reason and an e-signature), near-expiry and expired
stock per warehouse for the dashboard, and the scrap / destruction of stock decided by the signed scrap procedure.

Refusals name the lot, the location and the reason in English and Chinese (`refusal_text`); the same rule serves the
page, the API and the file import (kind `fefo_shipments`), so no path can ship what another refuses. Every message is
a gettext msgid (its Chinese in messages.po); `in_language` says one in a given language whatever the request's, as
the API's message_en / message_zh and the import's two-language row errors need.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import case, func, or_, select

from app import engine
from app.exceptions import Conflict, FormInvalid, NotFound, PermissionDenied
from app.extensions import db
from app.models import (
    Customer,
    ProcessInstance,
    Product,
    ProductLot,
    ScrapRecord,
    Shipment,
    ShipmentOrder,
    StockLevel,
    StorageLocation,
    User,
    Warehouse,
)
from app.models.lots import LOT_STATUSES
from app.models.stock import SCRAP_METHODS
from app.models.types import utcnow
from app.services.evidence import audit, signatures
from app.services.lots import import_rules, ledger, lots
from app.services.lots.import_rules import Column, ImportState, Kind, Row, RowProblem, integer, parse_date, text
from app.services.workflow import instances, plant_time, registry, titles
from app.services.workflow.transaction import atomic

OVERRIDE_MEANING = "shipment override approved"
# Refusals QA may override: a customer's minimum remaining shelf life is an agreement with that customer, so QA may
# ship a shorter-dated lot with a reason (the customer agreed). Expired, held, recalled or quarantined goods are
# never shipped by an override: their status is changed by the procedure that set it (release, lifted hold).
OVERRIDABLE = ("shelf_life",)
OVERRIDE_GROUPS = ("qa", "qa_management")
OVERRIDE_ROLES = ("admin", "qa_releaser")
NO_WAREHOUSE = ""  # stock at a location not registered to a warehouse
EXPIRY_FILTERS = ("near", "expired")
# A shipment is recorded on its day: at most this many days back (entered late), at most a year ahead (planned).
BACKDATE_DAYS = 30
AHEAD_DAYS = 365

# Why a lot is not proposed; the values are filled from the refusal's params (the status in the message's language).
REFUSALS = {
    "expired": _l("Lot %(lot)s at %(location)s expired on %(expiry)s: expired stock is never shipped."),
    "hold": _l("Lot %(lot)s at %(location)s is on hold: it cannot be shipped until the hold is lifted."),
    "recalled": _l("Lot %(lot)s at %(location)s is recalled: it cannot be shipped."),
    "quarantine": _l("Lot %(lot)s at %(location)s is in quarantine: it is not released yet."),
    "not_shippable": _l("Lot %(lot)s at %(location)s is %(status)s: it cannot be shipped."),
    "shelf_life": _l("Lot %(lot)s at %(location)s has %(remaining)s days of shelf life left on %(shipped_on)s "
                     "(expires %(expiry)s); customer %(customer)s requires at least %(minimum)s days."),
}


def in_language(lang: str, message: Any, **params: Any) -> str:
    """A message (a lazy gettext msgid) in `lang` ("en" or "zh-CN"), whatever the request's language; a lot status
    given as `status` is said in that language too (the status's msgid, as lots.change_status says it)."""
    with force_locale("zh_CN" if str(lang).lower().replace("_", "-").startswith("zh") else "en"):
        if params.get("status"):
            params = {**params, "status": str(_l(params["status"]))}
        text = str(message)
    return text % params if params else text


def default_min_shelf_life_days() -> int:
    return int(current_app.config["FEFO_MIN_SHELF_LIFE_DAYS"])


def customer_min_days(customer: Customer) -> int:
    return customer.min_shelf_life_days if customer.min_shelf_life_days is not None else default_min_shelf_life_days()


# --- stock by warehouse and location -------------------------------------------------------------------------------

def _location_map(codes: set[str]) -> dict[str, StorageLocation]:
    if not codes:
        return {}
    return {location.code: location for location in db.session.scalars(
        select(StorageLocation).where(StorageLocation.code.in_(list(codes))))}


@dataclass
class StockRow:
    """One stock level with where it is (warehouse, location) and the lot's status and expiry."""

    level: StockLevel
    lot: ProductLot
    location: StorageLocation | None

    @property
    def warehouse(self) -> Warehouse | None:
        return self.location.warehouse if self.location else None

    def as_dict(self, today: date) -> dict[str, Any]:
        lot = self.lot
        return {"id": self.level.id, "warehouse": self.warehouse.code if self.warehouse else None,
                "warehouse_name": self.warehouse.name if self.warehouse else None, "location": self.level.location,
                "lot_number": lot.lot_number, "product_lot_id": lot.id, "product": lot.product.name,
                "gtin": lot.product.gtin, "status": lot.status, "quantity": self.level.quantity,
                "expiry_on": lot.expiry_on,
                "days_to_expiry": (lot.expiry_on - today).days if lot.expiry_on else None}


def _warehouse_of_location():
    """A scalar subquery: the warehouse code of a stock level's location ("" when the location is not registered)."""
    return func.coalesce(select(Warehouse.code).join(StorageLocation, StorageLocation.warehouse_id == Warehouse.id)
                         .where(StorageLocation.code == StockLevel.location).scalar_subquery(), NO_WAREHOUSE)


def _expiry_conditions(expiry: str, today: date, days: int) -> list:
    if expiry == "near":
        return [ProductLot.expiry_on >= today, ProductLot.expiry_on <= today + timedelta(days=days),
                ProductLot.status.notin_(("expired", "scrapped", "returned"))]
    if expiry == "expired":
        return [or_(ProductLot.status == "expired", ProductLot.expiry_on < today),
                ProductLot.status.notin_(("scrapped", "returned"))]
    return []


def list_stock(*, warehouse: str | None = None, location: str = "", expiry: str = "", status: str = "", q: str = "",
               today: date, days: int | None = None, page: int = 1, per_page: int = 50) -> Pagination:
    """A page (Flask-SQLAlchemy's, its items StockRows) of stock levels with a positive quantity, by warehouse and
    location, soonest expiry first; filtered by
    warehouse code ("" = locations without a warehouse), location, expiry (near / expired), lot status and a text
    (lot number, product, GTIN)."""
    days = current_app.config["LOT_NEAR_EXPIRY_DAYS"] if days is None else days
    conditions = [StockLevel.quantity > 0, *_expiry_conditions(expiry, today, days)]
    if warehouse is not None:
        conditions.append(_warehouse_of_location() == warehouse)
    if location.strip():
        conditions.append(StockLevel.location == location.strip())
    if status:
        conditions.append(ProductLot.status == status)
    if q.strip():
        pattern = f"%{q.strip()}%"
        conditions.append(or_(ProductLot.lot_number.ilike(pattern), Product.name.ilike(pattern),
                              Product.gtin.ilike(pattern)))
    base = (select(StockLevel).join(ProductLot, ProductLot.id == StockLevel.product_lot_id)
            .join(Product, Product.id == ProductLot.product_id).where(*conditions))
    result = db.paginate(base.order_by(
        case((ProductLot.expiry_on.is_(None), 1), else_=0), ProductLot.expiry_on, ProductLot.lot_number,
        StockLevel.location), page=max(page, 1), per_page=per_page, error_out=False)
    locations = _location_map({level.location for level in result.items})
    result.items = [StockRow(level, level.product_lot, locations.get(level.location)) for level in result.items]
    return result


@dataclass
class WarehouseExpiry:
    """Near-expiry and expired stock in one warehouse (code "" = locations not registered to a warehouse)."""

    code: str
    name: str
    near_lots: int = 0
    near_quantity: int = 0
    expired_lots: int = 0
    expired_quantity: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"warehouse": self.code or None, "name": self.name, "near_expiry_lots": self.near_lots,
                "near_expiry_quantity": self.near_quantity, "expired_lots": self.expired_lots,
                "expired_quantity": self.expired_quantity}


def expiry_by_warehouse(today: date, days: int) -> list[WarehouseExpiry]:
    """Per warehouse: the lots (and quantity) in stock that expire within `days` days, and those expired - one
    grouped query each, with the same conditions as the stock list the dashboard's tiles link to."""
    found: dict[str, WarehouseExpiry] = {}
    names = dict(db.session.execute(select(Warehouse.code, Warehouse.name)).all())
    for which in EXPIRY_FILTERS:
        keyed = (select(_warehouse_of_location().label("warehouse"), StockLevel.product_lot_id,
                        StockLevel.quantity)
                 .join(ProductLot, ProductLot.id == StockLevel.product_lot_id)
                 .where(StockLevel.quantity > 0, *_expiry_conditions(which, today, days)).subquery())
        for code, lot_count, quantity in db.session.execute(
                select(keyed.c.warehouse, func.count(func.distinct(keyed.c.product_lot_id)), func.sum(keyed.c.quantity))
                .group_by(keyed.c.warehouse)):
            row = found.setdefault(code, WarehouseExpiry(code, names.get(code, "")))
            if which == "near":
                row.near_lots, row.near_quantity = lot_count, int(quantity or 0)
            else:
                row.expired_lots, row.expired_quantity = lot_count, int(quantity or 0)
    return sorted(found.values(), key=lambda row: (row.code == NO_WAREHOUSE, row.code))


def list_warehouses() -> list[tuple[Warehouse, int, int]]:
    """Every warehouse with its number of locations and the quantity in stock there."""
    location_counts = dict(db.session.execute(select(StorageLocation.warehouse_id, func.count())
                                              .group_by(StorageLocation.warehouse_id)).all())
    quantities = dict(db.session.execute(
        select(StorageLocation.warehouse_id, func.sum(StockLevel.quantity))
        .join(StockLevel, StockLevel.location == StorageLocation.code).group_by(StorageLocation.warehouse_id)).all())
    return [(warehouse, location_counts.get(warehouse.id, 0), int(quantities.get(warehouse.id) or 0))
            for warehouse in db.session.scalars(select(Warehouse).order_by(Warehouse.code))]


def warehouse_locations(warehouse_id: int) -> tuple[Warehouse, list[tuple[StorageLocation, int]]]:
    warehouse = db.session.get(Warehouse, warehouse_id)
    if warehouse is None:
        raise NotFound(f"No warehouse {warehouse_id}.")
    quantities = dict(db.session.execute(
        select(StockLevel.location, func.sum(StockLevel.quantity)).join(
            StorageLocation, StorageLocation.code == StockLevel.location)
        .where(StorageLocation.warehouse_id == warehouse_id).group_by(StockLevel.location)).all())
    return warehouse, [(location, int(quantities.get(location.code) or 0)) for location in db.session.scalars(
        select(StorageLocation).where(StorageLocation.warehouse_id == warehouse_id).order_by(StorageLocation.code))]


# --- first-expiry-first-out ----------------------------------------------------------------------------------------

@dataclass
class Pick:
    level: StockLevel
    lot: ProductLot
    quantity: int
    overridden: str | None = None  # the refusal code QA overrode

    def as_dict(self, today: date | None = None) -> dict[str, Any]:
        return {"lot_number": self.lot.lot_number, "location": self.level.location, "quantity": self.quantity,
                "expiry_on": self.lot.expiry_on.isoformat() if self.lot.expiry_on else None,
                "status": self.lot.status, "overridden": self.overridden}


@dataclass
class Refusal:
    lot: ProductLot
    location: str
    quantity: int
    code: str
    params: dict[str, Any]

    def text(self, lang: str = "en") -> str:
        return refusal_text(self.code, self.params, lang)

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        return {"lot_number": self.lot.lot_number, "location": self.location, "quantity": self.quantity,
                "code": self.code, "overridable": self.code in OVERRIDABLE, "message": self.text(lang),
                "message_en": self.text("en"), "message_zh": self.text("zh-CN")}


def refusal_text(code: str, params: dict[str, Any], lang: str = "en") -> str:
    try:
        return in_language(lang, REFUSALS.get(code, _l("%(lot)s: %(code)s")), **{"code": code, **params})
    except (KeyError, ValueError, TypeError):
        return f"{params.get('lot', '')}: {code}"


@dataclass
class Proposal:
    """What a shipment would pick, soonest expiry first, and what it refuses and why."""

    product: Product
    customer: Customer
    quantity: int
    shipped_on: date
    min_days: int
    warehouse: Warehouse | None = None
    picks: list[Pick] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)

    @property
    def picked(self) -> int:
        return sum(pick.quantity for pick in self.picks)

    @property
    def short(self) -> int:
        return self.quantity - self.picked

    def short_text(self, lang: str = "en") -> str:
        return in_language(lang, _l("%(short)s of %(quantity)s cannot be shipped: only %(available)s of product "
                                    "%(product)s can be picked first-expiry-first-out for customer %(customer)s."),
                           short=self.short, quantity=self.quantity, available=self.picked,
                           product=self.product.gtin or self.product.name, customer=self.customer.code)

    def problem(self, lang: str = "en") -> str:
        """The refusal as one message: what is short, then each refused lot and why."""
        return " ".join([self.short_text(lang), *dict.fromkeys(r.text(lang) for r in self.refused)])

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        return {"product": self.product.gtin, "product_name": self.product.name, "customer": self.customer.code,
                "quantity": self.quantity, "shipped_on": self.shipped_on.isoformat(),
                "warehouse": self.warehouse.code if self.warehouse else None,
                "min_shelf_life_days": self.min_days, "picked": self.picked, "short": self.short,
                "complete": self.short == 0, "picks": [pick.as_dict() for pick in self.picks],
                "refused": [refusal.as_dict(lang) for refusal in self.refused],
                "message": self.problem(lang) if self.short else ""}


def refusal_for(lot: ProductLot, location: str, shipped_on: date, min_days: int,
                customer: Customer, today: date | None = None) -> tuple[str, dict[str, Any]] | None:
    """Why goods of this lot at this location cannot go to this customer on this day (None when they can). Goods
    that expired before today leave no more, whatever day a late-entered shipment names."""
    params: dict[str, Any] = {"lot": lot.lot_number, "location": location, "status": lot.status,
                              "customer": customer.code,
                              "expiry": lot.expiry_on.isoformat() if lot.expiry_on else "",
                              "shipped_on": shipped_on.isoformat(), "minimum": min_days}
    if lot.status == "expired" or (lot.expiry_on is not None and lot.expiry_on < max(shipped_on, today or shipped_on)):
        return "expired", params
    if lot.status in ("hold", "recalled", "quarantine"):
        return lot.status, params
    if lot.status not in lots.SHIPPABLE:
        return "not_shippable", params
    if lot.expiry_on is not None:
        remaining = (lot.expiry_on - shipped_on).days
        if remaining < min_days:  # exactly the minimum is enough
            return "shelf_life", {**params, "remaining": remaining}
    return None


def _candidates(product_id: int, warehouse: Warehouse | None, lock: bool) -> list[tuple[StockLevel, ProductLot]]:
    query = (select(StockLevel, ProductLot).join(ProductLot, ProductLot.id == StockLevel.product_lot_id)
             .where(ProductLot.product_id == product_id, StockLevel.quantity > 0))
    if warehouse is not None:
        query = query.join(StorageLocation, StorageLocation.code == StockLevel.location).where(
            StorageLocation.warehouse_id == warehouse.id)
    query = query.order_by(case((ProductLot.expiry_on.is_(None), 1), else_=0), ProductLot.expiry_on,
                           ProductLot.lot_number, StockLevel.location)
    if lock:
        query = query.with_for_update(of=StockLevel)
    return [(level, lot) for level, lot in db.session.execute(query)]


def propose_for(product: Product, customer: Customer, quantity: int, shipped_on: date,
                warehouse: Warehouse | None = None, overrides: set[str] | frozenset = frozenset(),
                lock: bool = False, today: date | None = None) -> Proposal:
    """Pick `quantity` of a product first-expiry-first-out (lots without an expiry date last); a lot the rules
    refuse is skipped and listed with its reason, unless it is in `overrides` and its refusal is overridable."""
    proposal = Proposal(product, customer, quantity, shipped_on, customer_min_days(customer), warehouse)
    needed = quantity
    for level, lot in _candidates(product.id, warehouse, lock):
        refused = refusal_for(lot, level.location, shipped_on, proposal.min_days, customer, today)
        overridden = None
        if refused is not None:
            code, params = refused
            if code in OVERRIDABLE and lot.lot_number in overrides:
                overridden = code
            else:
                proposal.refused.append(Refusal(lot, level.location, level.quantity, code, params))
                continue
        if needed <= 0:
            continue  # later lots are listed only when refused (the page says why they were passed over)
        take = min(needed, level.quantity)
        proposal.picks.append(Pick(level, lot, take, overridden))
        needed -= take
    # Refused lots that expire after the last lot picked were never needed: the refusals that matter come first.
    return proposal


@dataclass
class ShipmentRequest:
    product: Product
    customer: Customer
    quantity: int
    shipped_on: date
    warehouse: Warehouse | None
    document_no: str
    today: date  # the plant's date when the shipment is entered


def parse_request(data: dict[str, Any], lang: str = "en", now: datetime | None = None) -> ShipmentRequest:
    """Check a shipment request's values (from a form or the API): 422 with a message per field when refused."""
    errors: dict[str, list[str]] = {}
    data = data if isinstance(data, dict) else {}
    values: dict[str, Any] = {}
    parsers = {"product": import_rules.gtin, "customer": text(60), "quantity": integer(1), "shipped_on": parse_date,
               "warehouse": text(60), "document_no": text(60)}
    for name, parse in parsers.items():
        raw = data.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if name in ("product", "customer", "quantity"):
                errors[name] = [import_rules.reason_text({"code": "required"}, lang)]
            values[name] = None
            continue
        if isinstance(raw, dict | list | bool):  # JSON a form never sends
            code = {"quantity": "bad_integer", "shipped_on": "bad_date", "product": "bad_gtin"}.get(name, "too_long")
            errors[name] = [import_rules.reason_text({"code": code, "params": {"limit": 60, "problem": "not a text"}},
                                                     lang)]
            continue
        try:
            values[name] = parse(raw)
        except RowProblem as problem:
            errors[name] = [import_rules.reason_text({"code": problem.code, "params": problem.params}, lang)]
    today = plant_time.local_date(now or utcnow(), plant_time.zone())
    first, last = today - timedelta(days=BACKDATE_DAYS), today + timedelta(days=AHEAD_DAYS)
    if values.get("shipped_on") and values["shipped_on"] < first:
        errors["shipped_on"] = [in_language(lang, _l("A shipment can be recorded at most %(days)s days back (from "
                                                     "%(first)s)."), days=BACKDATE_DAYS, first=first.isoformat())]
    elif values.get("shipped_on") and values["shipped_on"] > last:
        errors["shipped_on"] = [in_language(lang, _l("A shipment can be planned at most %(days)s days ahead (until "
                                                     "%(last)s)."), days=AHEAD_DAYS, last=last.isoformat())]
    product = customer = warehouse = None
    if values.get("product"):
        product = db.session.scalar(select(Product).where(Product.gtin == values["product"]))
        if product is None:
            errors["product"] = [in_language(lang, _l("There is no product with this UDI-DI (GTIN)."))]
    if values.get("customer"):
        customer = db.session.scalar(select(Customer).where(Customer.code == values["customer"]))
        if customer is None:
            errors["customer"] = [in_language(lang, _l("There is no customer with this code."))]
    if values.get("warehouse"):
        warehouse = db.session.scalar(select(Warehouse).where(Warehouse.code == values["warehouse"]))
        if warehouse is None:
            errors["warehouse"] = [in_language(lang, _l("There is no warehouse with this code."))]
    if errors:
        raise FormInvalid(errors, in_language(lang, _l("The shipment has errors; nothing was shipped.")))
    return ShipmentRequest(product, customer, values["quantity"], values.get("shipped_on") or today, warehouse,
                           values.get("document_no") or "", today)


def propose(data: dict[str, Any], lang: str = "en", overrides: list[str] | None = None,
            now: datetime | None = None) -> Proposal:
    """Propose the lots for a shipment request without shipping (read only)."""
    request = parse_request(data, lang, now)
    return propose_for(request.product, request.customer, request.quantity, request.shipped_on, request.warehouse,
                       frozenset(lots.split_list(overrides)), today=request.today)


def may_override(actor: User) -> bool:
    return actor.has_role(*OVERRIDE_ROLES) or bool(actor.group_names & set(OVERRIDE_GROUPS))


def _write_shipment(proposal: Proposal, request: ShipmentRequest, actor: User | None, now: datetime) -> ShipmentOrder:
    """Record the order and one shipment per lot, and take the goods off the stock levels (caller's transaction)."""
    order = ShipmentOrder(document_no=request.document_no, product_id=proposal.product.id,
                          customer_id=proposal.customer.id, warehouse_id=request.warehouse.id if request.warehouse
                          else None, quantity=proposal.quantity, shipped_on=proposal.shipped_on,
                          min_shelf_life_days=proposal.min_days, lines=[p.as_dict() for p in proposal.picks],
                          refused=[r.as_dict() for r in proposal.refused], created_by_id=actor.id if actor else None,
                          created_at=now, override_lots=[])
    db.session.add(order)
    db.session.flush()
    by_lot: dict[int, int] = defaultdict(int)
    for pick in proposal.picks:
        pick.level.quantity -= pick.quantity
        by_lot[pick.lot.id] += pick.quantity
    ledger.write([ledger.Movement(pick.lot.id, pick.level.location, -pick.quantity, pick.level.quantity)
                  for pick in proposal.picks], "shipment", actor, now, order_id=order.id)
    for lot_id, quantity in by_lot.items():
        db.session.add(Shipment(product_lot_id=lot_id, customer_id=proposal.customer.id, quantity=quantity,
                                shipped_on=proposal.shipped_on, document_no=request.document_no, order_id=order.id))
    db.session.flush()
    return order


NOT_REFUSED = _l("Lot %(lot)s is not refused for this shipment: there is nothing to override.")


def ship(data: dict[str, Any], actor: User, *, overrides: list[str] | None = None, reason: str | None = None,
         password: str | None = None, lang: str = "en", now: datetime | None = None) -> ShipmentOrder:
    """Ship a product to a customer first-expiry-first-out in one transaction: the stock rows are locked, picked,
    decremented and the shipments recorded, or nothing is written.

    Refused: bad values (422, per field), not enough acceptable stock (409, naming each refused lot and why), an
    override by someone not in QA (403), of a lot not refused or not overridable (422), without a reason (422) or
    with a wrong password (401; the failed attempt is counted like one at a gate).
    """
    now = now or utcnow()
    override_lots = lots.split_list(overrides)
    with atomic():
        instances.require_worker(actor)
        request = parse_request(data, lang, now)
        if override_lots:
            if not may_override(actor):
                raise PermissionDenied(in_language(lang, _l("Only quality assurance can override a refused lot.")))
            problems = []
            plain = propose_for(request.product, request.customer, request.quantity, request.shipped_on,
                                request.warehouse, lock=True, today=request.today)
            refused = {r.lot.lot_number: r for r in plain.refused}
            for number in override_lots:
                refusal = refused.get(number)
                if refusal is None:
                    problems.append(in_language(lang, NOT_REFUSED, lot=number))
                elif refusal.code not in OVERRIDABLE:
                    problems.append(in_language(lang, _l("Lot %(lot)s cannot be shipped by an override: %(reason)s"),
                                                lot=number, reason=refusal.text(lang)))
            errors: dict[str, list[str]] = {"overrides": problems} if problems else {}
            if not (reason or "").strip():
                errors["reason"] = [in_language(lang, _l("An override needs a reason."))]
            if not password:
                errors["password"] = [in_language(lang, _l("Sign the override with your password."))]
            if errors:
                raise FormInvalid(errors, in_language(lang, _l("The override has errors; nothing was shipped.")))
            signatures.authenticate_signer(actor, password, now,
                                           in_language(lang, _l("The password is wrong; nothing was shipped.")))
        proposal = propose_for(request.product, request.customer, request.quantity, request.shipped_on,
                               request.warehouse, frozenset(override_lots), lock=True, today=request.today)
        if proposal.short:
            raise Conflict(proposal.problem(lang))
        used = {pick.lot.lot_number for pick in proposal.picks if pick.overridden}
        unused = [number for number in override_lots if number not in used]
        if unused:
            raise FormInvalid({"overrides": [in_language(lang, NOT_REFUSED, lot=n) for n in unused]},
                              in_language(lang, _l("The override names lots this shipment does not need; nothing "
                                                   "was shipped.")))
        order = _write_shipment(proposal, request, actor, now)
        audit.record(actor, "shipment.shipped", "shipment_order", order.id, at=now,
                     new={"document_no": order.document_no, "product": proposal.product.gtin,
                          "customer": proposal.customer.code, "quantity": order.quantity,
                          "shipped_on": order.shipped_on.isoformat(), "lines": order.lines,
                          "refused": [{"lot_number": r["lot_number"], "location": r["location"], "code": r["code"]}
                                      for r in order.refused]})
        if override_lots:
            signed_hash = engine.data_hash({"order": order.id, "lots": override_lots, "reason": reason.strip(),
                                            "lines": order.lines, "meaning": OVERRIDE_MEANING,
                                            "user": actor.username, "printed_name": actor.full_name,
                                            "at": now.isoformat()})
            order.override_lots, order.override_reason = override_lots, reason.strip()
            order.override_user_id, order.override_printed_name = actor.id, actor.full_name
            order.override_meaning, order.override_signed_at, order.override_hash = OVERRIDE_MEANING, now, signed_hash
            audit.record(actor, "shipment.override_signed", "shipment_order", order.id, at=now, reason=reason.strip(),
                         new={"lots": override_lots, "refusals": [r.as_dict()["message_en"] for r in plain.refused
                                                                  if r.lot.lot_number in override_lots],
                              "printed_name": actor.full_name, "meaning": OVERRIDE_MEANING, "hash": signed_hash})
    return order


def get_order(order_id: int) -> ShipmentOrder:
    order = db.session.get(ShipmentOrder, order_id)
    if order is None:
        raise NotFound(f"No shipment order {order_id}.")
    return order


def list_orders(page: int = 1, per_page: int = 20):
    return db.paginate(select(ShipmentOrder).order_by(ShipmentOrder.id.desc()), page=max(page, 1), per_page=per_page,
                       error_out=False)


# --- import kinds: warehouses, storage locations, FEFO shipments ----------------------------------------------------

def _warehouses(state: ImportState, rows: list[Row]) -> None:
    taken = set(state.session.scalars(select(Warehouse.code).where(
        Warehouse.code.in_([r.values["code"] for r in rows]))))
    records = []
    for row in rows:
        if row.values["code"] in taken:
            state.refuse(row.line, "code", "exists", value=row.values["code"])
            continue
        records.append({k: v for k, v in row.values.items() if v is not None})
    state.write(Warehouse, records)


def _locations(state: ImportState, rows: list[Row]) -> None:
    warehouses = dict(state.session.execute(select(Warehouse.code, Warehouse.id).where(
        Warehouse.code.in_({r.values["warehouse"] for r in rows}))).all())
    taken = set(state.session.scalars(select(StorageLocation.code).where(
        StorageLocation.code.in_([r.values["code"] for r in rows]))))
    records = []
    for row in rows:
        if row.values["code"] in taken:
            state.refuse(row.line, "code", "exists", value=row.values["code"])
            continue
        if row.values["warehouse"] not in warehouses:
            state.refuse(row.line, "warehouse", "unknown_warehouse", value=row.values["warehouse"])
            continue
        records.append({"code": row.values["code"], "name": row.values.get("name") or "",
                        "warehouse_id": warehouses[row.values["warehouse"]]})
    state.write(StorageLocation, records)


def _fefo_shipments(state: ImportState, rows: list[Row]) -> None:
    """Each row ships its quantity first-expiry-first-out as the page does; rows draw on the stock the rows before
    them left. A row that cannot be picked whole is refused with every lot passed over and why."""
    for row in rows:
        values = {"product": row.values["gtin"], "customer": row.values["customer_code"],
                  "quantity": row.values["quantity"], "shipped_on": row.values.get("shipped_on"),
                  "warehouse": row.values.get("warehouse"), "document_no": row.values.get("document_no")}
        try:
            request = parse_request(values, now=state.now)
        except FormInvalid as invalid:  # each value's problem on its column, in both languages
            try:
                parse_request(values, "zh-CN", now=state.now)
                chinese: dict[str, list[str]] = {}
            except FormInvalid as zh:
                chinese = zh.errors
            for name, messages in invalid.errors.items():
                state.refuse(row.line, IMPORT_COLUMNS.get(name, name), "fefo_value", text=" ".join(messages),
                             text_zh=" ".join(chinese.get(name, messages)))
            continue
        proposal = propose_for(request.product, request.customer, request.quantity, request.shipped_on,
                               request.warehouse, lock=True, today=request.today)
        if proposal.short:
            state.refuse(row.line, "quantity", "fefo_short", short=proposal.short, quantity=proposal.quantity,
                         available=proposal.picked, reasons=" ".join(r.text("en") for r in proposal.refused),
                         reasons_zh=" ".join(r.text("zh-CN") for r in proposal.refused))
            continue
        if state.error_count:
            continue
        order = _write_shipment(proposal, request, state.actor, state.now)
        state.created_ids.append(order.id)
        state.written += 1
        audit.record(state.actor, "shipment.shipped", "shipment_order", order.id, at=state.now,
                     new={"document_no": order.document_no, "product": proposal.product.gtin,
                          "customer": proposal.customer.code, "quantity": order.quantity,
                          "shipped_on": order.shipped_on.isoformat(), "lines": order.lines, "line": row.line})


IMPORT_COLUMNS = {"product": "gtin", "customer": "customer_code"}  # a request's field -> the import's column
import_rules.MESSAGES.setdefault("unknown_warehouse", ("unknown warehouse {value}", "未知仓库 {value}"))
import_rules.MESSAGES.setdefault("fefo_value", ("{text}", "{text_zh}"))
import_rules.MESSAGES.setdefault("fefo_short", (
    "{short} of {quantity} cannot be picked first-expiry-first-out (available {available}). {reasons}",
    "按近效期先出无法拣选 {short}（共需 {quantity}，可拣 {available}）。{reasons_zh}"))

WAREHOUSE_KIND = Kind("warehouses", "Warehouses", "仓库", (
    Column("code", text(60), True, "Code", "编码"),
    Column("name", text(200), True, "Name", "名称"),
    Column("address", text(300), False, "Address", "地址", ""),
), ("code",), _warehouses)

LOCATION_KIND = Kind("locations", "Storage locations", "库位", (
    Column("code", text(120), True, "Location (as in stock and sensors)", "库位（同库存和传感器）"),
    Column("warehouse", text(60), True, "Warehouse code", "仓库编码"),
    Column("name", text(200), False, "Description", "说明", ""),
), ("code",), _locations)

FEFO_KIND = Kind("fefo_shipments", "Shipments picked first-expiry-first-out", "按近效期先出发货", (
    Column("gtin", text(20), True, "Product UDI-DI (GTIN)", "产品 UDI-DI（GTIN）"),
    Column("customer_code", text(60), True, "Customer code", "客户编码"),
    Column("quantity", integer(1), True, "Quantity", "数量"),
    Column("shipped_on", parse_date, False, "Shipped on (default today)", "发货日期（默认今天）"),
    Column("warehouse", text(60), False, "From warehouse (code)", "发货仓库编码"),
    Column("document_no", text(60), False, "Document no.", "单据号", ""),
), (), _fefo_shipments)

for _kind in (WAREHOUSE_KIND, LOCATION_KIND, FEFO_KIND):
    import_rules.KINDS.setdefault(_kind.name, _kind)


# --- the scheduled expiry lock ---------------------------------------------------------------------------------------

def stock_of(lot_id: int) -> list[dict[str, Any]]:
    """Where a lot's stock is: location, warehouse and quantity (for the audit of an expiry or a scrap)."""
    levels = list(db.session.scalars(select(StockLevel).where(StockLevel.product_lot_id == lot_id,
                                                              StockLevel.quantity > 0).order_by(StockLevel.location)))
    locations = _location_map({level.location for level in levels})
    return [{"location": level.location, "quantity": level.quantity,
             "warehouse": locations[level.location].warehouse.code if level.location in locations else None}
            for level in levels]


# --- scrap / destruction ---------------------------------------------------------------------------------------------

NO_STOCK = _l("Lot %(lot)s has no stock at %(location)s.")


def scrap_problems(data: dict[str, Any], lang: str = "en") -> dict[str, list[str]]:
    """What is wrong with a scrap request: the lot exists and is not already gone (returned to its supplier), and
    its location holds the quantity. A lot already decided *scrapped* (a deviation's decision) may be destroyed:
    its stock is still there until a destruction record takes it off."""
    number = str(data.get("lot_number") or "").strip()
    location = str(data.get("location") or "").strip()
    quantity = data.get("quantity")
    if not number or not location or not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        return {}  # the form's schema reports missing and malformed values
    lot = db.session.scalar(select(ProductLot).where(ProductLot.lot_number == number))
    if lot is None:
        return {"lot_number": [in_language(lang, _l("There is no product lot %(lot)s."), lot=number)]}
    if lot.status == "returned":
        return {"lot_number": [in_language(lang, _l("Lot %(lot)s is %(status)s: its goods are no longer in stock."),
                                           lot=number, status=lot.status)]}
    available = db.session.scalar(select(StockLevel.quantity).where(StockLevel.product_lot_id == lot.id,
                                                                    StockLevel.location == location)) or 0
    if available <= 0:
        return {"location": [in_language(lang, NO_STOCK, lot=number, location=location)]}
    if quantity > available:
        return {"quantity": [in_language(lang, _l("Only %(available)s of lot %(lot)s are at %(location)s; "
                                                  "%(quantity)s cannot be scrapped."),
                                         lot=number, location=location, available=available, quantity=quantity)]}
    return {}


def check_scrap_request(instance: ProcessInstance | None, data: dict, lang: str) -> dict[str, list[str]]:
    """Form check `scrap_request`."""
    return scrap_problems(data, lang)


def scrap_stock(instance: ProcessInstance, data: dict[str, Any], approved_by: str, now: datetime,
                approver: User | None = None) -> dict[str, Any]:
    """Carry out a signed scrap decision inside the step's transaction: take the quantity off the location's stock
    (a ledger movement in the approver's name), record the destruction (method, witness, approver) and, when none of
    the lot is left in stock, set the lot scrapped. Refused (Conflict) when the stock is no longer there."""
    if problems := scrap_problems(data):
        raise Conflict(" ".join(message for messages in problems.values() for message in messages))
    method = str(data.get("method") or "")
    if method not in SCRAP_METHODS:
        raise Conflict(f"Unknown scrap method {method!r}.")
    lot = db.session.scalar(select(ProductLot).where(ProductLot.lot_number == str(data["lot_number"]).strip())
                            .with_for_update())
    level = db.session.scalar(select(StockLevel).where(
        StockLevel.product_lot_id == lot.id, StockLevel.location == str(data["location"]).strip()).with_for_update())
    quantity = int(data["quantity"])
    if level.quantity < quantity:  # taken meanwhile (locked now)
        raise Conflict(f"Only {level.quantity} of lot {lot.lot_number} are at {level.location}.")
    level.quantity -= quantity
    ledger.write([ledger.Movement(lot.id, level.location, -quantity, level.quantity)], "scrap", approver, now,
                 instance_id=instance.id, actor_name=approved_by)
    remaining = db.session.scalar(select(func.coalesce(func.sum(StockLevel.quantity), 0)).where(
        StockLevel.product_lot_id == lot.id)) or 0
    reason = str(data.get("reason") or "").strip()
    record = ScrapRecord(instance_id=instance.id, product_lot_id=lot.id, location=level.location, quantity=quantity,
                         method=method, witness=str(data.get("witness") or "").strip(), reason=reason,
                         scrapped_at=now, approved_by=approved_by, lot_scrapped=remaining == 0)
    db.session.add(record)
    db.session.flush()
    audit.record(None, "stock.scrapped", "product_lot", lot.id, instance_id=instance.id, at=now, reason=reason,
                 old={"quantity": level.quantity + quantity, "location": level.location},
                 new={"quantity": level.quantity, "scrapped": quantity, "method": method, "witness": record.witness,
                      "lot_number": lot.lot_number, "record": record.id, "approved_by": approved_by})
    if remaining == 0 and lot.status != "scrapped":
        lots.change_status(lot, "scrapped", f"all stock destroyed (scrap record #{record.id}): {reason}"[:2000],
                           None, now, instance_id=instance.id)
    lots.link_lots(instance.id, [lot.id], "subject")
    return {"record_id": record.id, "lot_number": lot.lot_number, "location": level.location, "scrapped": quantity,
            "left_at_location": level.quantity, "left_in_stock": int(remaining), "lot_status": lot.status,
            "lot_scrapped": remaining == 0}


SCRAP_PROCESS = "scrap"
SCRAP_TITLE = titles.register("Scrap of lot {lot} at {location}", "批次 {lot}（{location}）报废")


def start_scraps_for(lot: ProductLot, actor: User, now: datetime, reason: str) -> list[ProcessInstance]:
    """Inside the caller's transaction: start the scrap / destruction procedure for every location still holding
    stock of a lot decided scrapped, each request filled in with the whole quantity there and the reason."""
    started = []
    for level in db.session.scalars(select(StockLevel).where(StockLevel.product_lot_id == lot.id,
                                                             StockLevel.quantity > 0).order_by(StockLevel.location)):
        title = SCRAP_TITLE.format(lot=lot.lot_number, location=level.location)
        instance = instances.start_instance(SCRAP_PROCESS, actor, {
            "title": title, "lot_number": lot.lot_number, "location": level.location, "quantity": level.quantity,
            "reason": reason[:2000]}, title=title, now=now)
        lots.link_lots(instance.id, [lot.id], "subject")
        started.append(instance)
    return started


def start_scrap(lot_id: int, location: str, actor: User, now: datetime | None = None) -> ProcessInstance:
    """Start the scrap / destruction procedure for a lot's stock at one location, its request filled in with the
    lot, the location and the whole quantity there (the requester may lower it); 409 when nothing is there."""
    now = now or utcnow()
    with atomic():
        instances.require_worker(actor)
        lot = db.session.get(ProductLot, lot_id)
        if lot is None:
            raise NotFound(f"No product lot {lot_id}.")
        quantity = db.session.scalar(select(StockLevel.quantity).where(
            StockLevel.product_lot_id == lot_id, StockLevel.location == location)) or 0
        if quantity <= 0 or lot.status == "returned":
            raise Conflict(str(NO_STOCK) % {"lot": lot.lot_number, "location": location})
        title = SCRAP_TITLE.format(lot=lot.lot_number, location=location)
        instance = instances.start_instance(SCRAP_PROCESS, actor, {"title": title, "lot_number": lot.lot_number,
                                                                    "location": location, "quantity": quantity},
                                            title=title, now=now)
        lots.link_lots(instance.id, [lot.id], "subject")
    return instance


def lot_stock(lot_id: int) -> list[StockRow]:
    """A lot's stock levels with their warehouse, by location."""
    levels = list(db.session.scalars(select(StockLevel).where(StockLevel.product_lot_id == lot_id)
                                     .order_by(StockLevel.location)))
    locations = _location_map({level.location for level in levels})
    return [StockRow(level, level.product_lot, locations.get(level.location)) for level in levels]


def scrap_records_for_lot(lot_id: int) -> list[ScrapRecord]:
    return list(db.session.scalars(select(ScrapRecord).where(ScrapRecord.product_lot_id == lot_id)
                                   .order_by(ScrapRecord.id.desc())))


def orders_for_lot(lot_number: str) -> list[ShipmentOrder]:
    # An IN subquery, not DISTINCT: PostgreSQL cannot compare the JSON columns DISTINCT would.
    ids = select(Shipment.order_id).join(ProductLot, ProductLot.id == Shipment.product_lot_id).where(
        ProductLot.lot_number == lot_number, Shipment.order_id.is_not(None))
    return list(db.session.scalars(select(ShipmentOrder).where(ShipmentOrder.id.in_(ids))
                                   .order_by(ShipmentOrder.id.desc())))


registry.register_form_checks({"scrap_request": check_scrap_request})

__all__ = ["LOT_STATUSES", "SCRAP_METHODS"]  # read by the pages
