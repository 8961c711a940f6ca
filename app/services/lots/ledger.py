"""The stock movement ledger: every change of a stock level's quantity is written here, in the transaction of the
use case that changes the level (a shipment, a scrap, a stock import), so the changes of a lot at a location add up
to its level. The rows are never changed or removed (database triggers refuse it, as for the audit trail).

Writers call `write` with the level's new quantity; readers page through a lot's (and location's) movements, newest
first. Lower than the stock and import services, which both write here."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import insert, select
from sqlalchemy.orm import joinedload

from app.exceptions import NotFound
from app.extensions import db
from app.models import ProductLot, StockMovement, User
from app.models.stock import MOVEMENT_KINDS

PER_PAGE = 20


@dataclass
class Movement:
    """One change of a lot's quantity at a location, as a use case hands it to `write`."""

    product_lot_id: int
    location: str
    change: int
    balance: int  # the level's quantity after the change


def write(movements: list[Movement], kind: str, actor: User | None, at: datetime, *, order_id: int | None = None,
          instance_id: int | None = None, import_job_id: int | None = None, actor_name: str | None = None) -> int:
    """Append the movements (in the caller's transaction); changes of zero are left out. Return how many."""
    if kind not in MOVEMENT_KINDS:
        raise ValueError(f"unknown stock movement kind {kind!r}")
    name = actor_name if actor_name is not None else (actor.full_name if actor else "")
    rows = [{"product_lot_id": m.product_lot_id, "location": m.location, "change": m.change, "balance": m.balance,
             "kind": kind, "order_id": order_id, "instance_id": instance_id, "import_job_id": import_job_id,
             "actor_id": actor.id if actor else None, "actor_name": name, "at": at}
            for m in movements if m.change]
    if rows:
        db.session.execute(insert(StockMovement), rows)
    return len(rows)


def movements(*, lot_id: int | None = None, location: str = "", page: int = 1,
              per_page: int | None = None) -> Pagination:
    """A page of movements, newest first (the order they were written): of one lot (or all), at one location (or
    all)."""
    query = select(StockMovement).options(joinedload(StockMovement.product_lot))
    if lot_id is not None:
        query = query.where(StockMovement.product_lot_id == lot_id)
    if location:
        query = query.where(StockMovement.location == location)
    return db.paginate(query.order_by(StockMovement.id.desc()), page=max(page, 1), per_page=per_page or PER_PAGE,
                       error_out=False)


def lot_by_number(number: str) -> ProductLot:
    lot = db.session.scalar(select(ProductLot).where(ProductLot.lot_number == number))
    if lot is None:
        raise NotFound(gettext("No product lot %(id)s.", id=number))
    return lot


def as_dict(movement: StockMovement) -> dict[str, Any]:
    return {"id": movement.id, "lot_number": movement.product_lot.lot_number,
            "product_lot_id": movement.product_lot_id, "location": movement.location, "change": movement.change,
            "balance": movement.balance, "kind": movement.kind, "order_id": movement.order_id,
            "instance_id": movement.instance_id, "import_job_id": movement.import_job_id,
            "actor": movement.actor_name, "at": movement.at}
