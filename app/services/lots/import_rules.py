"""The import rule set: per-column cell parsers, the kinds of master data (products, suppliers, lots, genealogy,
inspections, stock, serials, customers, shipments) and how their rows are checked against the database in chunks
and written in bulk; every refused row keeps its line, column and reason in both page languages."""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from itertools import islice
from typing import Any, NamedTuple

from flask_babel import gettext
from sqlalchemy import bindparam, delete, insert, select, tuple_, update
from sqlalchemy.orm import Session

from app.exceptions import ImportRefused, NotFound
from app.models import (
    Customer,
    GenealogyEdge,
    Inspection,
    MaterialLot,
    Product,
    ProductLot,
    SerialNumber,
    Shipment,
    StockLevel,
    Supplier,
    User,
)
from app.models.lots import (
    CUSTOMER_KINDS,
    DEVICE_CLASSES,
    INSPECTION_RESULTS,
    INSPECTION_STAGES,
    LOT_STATUSES,
    SUPPLIER_STATUSES,
)
from app.models.types import INT_MAX
from app.services.lots import ledger, lots
from app.services.lots.identifiers import gtin_problem, normalize_gtin

CHUNK = 2000
MAX_STORED_ERRORS = 1000
EXTENSIONS = (".csv", ".xlsx")

# Reasons a row is refused, in both page languages; the stored error keeps the code and its values.
MESSAGES: dict[str, tuple[str, str]] = {
    "required": ("is required", "必填"),
    "too_long": ("is longer than {limit} characters", "超过 {limit} 个字符"),
    "bad_date": ("is not a date (YYYY-MM-DD)", "不是日期（YYYY-MM-DD）"),
    "bad_integer": ("is not a whole number", "不是整数"),
    "bad_number": ("is not a number", "不是数字"),
    "negative": ("must not be negative", "不能为负数"),
    "not_positive": ("must be greater than zero", "必须大于零"),
    "too_large": ("is larger than {limit}", "大于 {limit}"),
    "bad_choice": ("must be one of: {choices}", "必须是以下之一：{choices}"),
    "bad_boolean": ("must be yes or no", "必须为是或否"),
    "bad_gtin": ("{problem}", "GTIN 无效：{problem}"),
    "bad_email": ("is not an e-mail address", "不是有效的电子邮件地址"),
    "bad_country": ("must be a two-letter country code", "必须是两位国家代码"),
    "unknown_column": ("unknown column", "未知列"),
    "missing_column": ("column is missing", "缺少此列"),
    "duplicate_in_file": ("duplicate of line {other}", "与第 {other} 行重复"),
    "exists": ("{value} already exists", "{value} 已存在"),
    "unknown_product": ("unknown product {value}", "未知产品 {value}"),
    "unknown_supplier": ("unknown supplier {value}", "未知供应商 {value}"),
    "supplier_suspended": ("supplier {value} is suspended: no new lots accepted",
                           "供应商 {value} 已暂停：不接收新批次"),
    "supplier_suspended_pass": ("lot {value} comes from supplier {supplier}, which is suspended: a passing inspection "
                                "is not accepted (a failed one is recorded)",
                                "批次 {value} 来自已暂停的供应商 {supplier}："
                                "不接受合格的检验结论（不合格的检验可以记录）"),
    "unknown_lot": ("unknown lot {value}", "未知批号 {value}"),
    "ambiguous_lot": ("lot {value} exists for several materials; give the material",
                      "批号 {value} 对应多个物料，请填写物料"),
    "unknown_customer": ("unknown customer {value}", "未知客户 {value}"),
    "parent_not_distributor": ("parent {value} is not a distributor", "上级 {value} 不是经销商"),
    "date_order": ("{later} is before {earlier}", "{later} 早于 {earlier}"),
    "one_component": ("give either a material lot or a component lot", "请填写物料批号或组件批号（二选一）"),
    "one_lot": ("give either a product lot or a material lot", "请填写产品批号或物料批号（二选一）"),
    "self_component": ("a lot cannot be its own component", "批次不能是自身的组件"),
    "received_after_made": ("material lot {value} was received on {received}, after lot {lot} was made on {made}",
                            "物料批 {value} 的接收日期 {received} 晚于批次 {lot} 的生产日期 {made}"),
    "made_after_made": ("component lot {value} was made on {component_made}, after lot {lot} was made on {made}",
                        "组件批 {value} 的生产日期 {component_made} 晚于批次 {lot} 的生产日期 {made}"),
    "not_shippable": ("lot {value} is {status} and cannot be shipped", "批次 {value} 状态为 {status}，不能发货"),
    "expired_at_shipment": ("lot {value} expired on {expiry}", "批次 {value} 已于 {expiry} 过期"),
    "empty_file": ("the file has no data rows", "文件没有数据行"),
    "out_of_bounds": ("must be between {low} and {high}", "必须在 {low} 与 {high} 之间"),
    "unknown_sensor": ("unknown sensor {value}", "未知传感器 {value}"),
    "bad_timestamp": ("is not a date and time (e.g. 2026-12-01 08:05, with +08:00 or Z for a time zone)",
                      "不是日期时间（例如 2026-12-01 08:05，时区写作 +08:00 或 Z）"),
    "bad_unit": ("must be C, F or %RH", "必须是 C、F 或 %RH"),
    "unit_mismatch": ("{unit} does not fit sensor {sensor}, which measures {quantity}",
                      "{unit} 与传感器 {sensor} 不符（其测量{quantity}）"),
    "physical_bounds": ("{value} {unit} is outside the physical range {low} to {high}",
                        "{value} {unit} 超出物理范围 {low} 至 {high}"),
    "clock_order": ("is earlier than the reading of sensor {sensor} on line {other}",
                    "早于第 {other} 行传感器 {sensor} 的读数"),
    "conflicting_duplicate": ("sensor {sensor} already has {existing} at this time ({where}); this row says {value}",
                              "传感器 {sensor} 在此时刻已有读数 {existing}（{where}），本行为 {value}"),
    "shipment_required": ("a shipment sensor needs a shipment document no.", "随货传感器须填写发货单据号"),
    "location_required": ("a warehouse or vehicle sensor needs a location", "库位或车辆传感器须填写位置"),
    "unknown_shipment": ("unknown shipment document no. {value}", "未知发货单据号 {value}"),
    "too_many_rows": ("more than {limit} readings in one batch", "一批读数超过 {limit} 条"),
}


def reason_text(error: dict, lang: str = "en") -> str:
    """Render a stored row error's reason in English or zh-CN."""
    en, zh = MESSAGES.get(error.get("code", ""), ("{code}", "{code}"))
    template = zh if lang.lower().startswith("zh") else en
    try:
        return template.format(code=error.get("code", ""), **error.get("params", {}))
    except (KeyError, IndexError):
        return error.get("reason", "")


class RowProblem(ValueError):
    """A cell value a column refuses."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


# --- cell parsers: str (or an API's JSON value) -> typed value, or RowProblem -------------------------------------

Parser = Callable[[Any], Any]


def text(limit: int) -> Parser:
    def parse(value: Any) -> str:
        value = str(value).strip()
        if len(value) > limit:
            raise RowProblem("too_long", limit=limit)
        return value
    parse.limit = limit  # read by the entry form to size its control
    return parse


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise RowProblem("bad_date") from None


def integer(minimum: int = 0) -> Parser:
    def parse(value: Any) -> int:
        try:
            number = float(value) if not isinstance(value, int) else value
        except (TypeError, ValueError):
            raise RowProblem("bad_integer") from None
        if isinstance(number, float) and not math.isfinite(number) or number != int(number):  # "nan", "inf"
            raise RowProblem("bad_integer")
        if number < minimum:
            raise RowProblem("negative" if minimum == 0 else "not_positive")
        if number > INT_MAX:  # what the integer column holds
            raise RowProblem("too_large", limit=INT_MAX)
        return int(number)
    parse.minimum = minimum
    return parse


def decimal_quantity(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RowProblem("bad_number") from None
    if not math.isfinite(number):
        raise RowProblem("bad_number")
    if number < 0:
        raise RowProblem("negative")
    return number


def number(lowest: float, highest: float) -> Parser:
    """A decimal number within physical bounds (a storage range in degrees Celsius or %RH)."""
    def parse(value: Any) -> float:
        try:
            result = float(str(value).strip().replace(",", ".")) if not isinstance(value, int | float) else value
        except (TypeError, ValueError):
            raise RowProblem("bad_number") from None
        if isinstance(value, bool) or not math.isfinite(result):
            raise RowProblem("bad_number")
        if not lowest <= result <= highest:
            raise RowProblem("out_of_bounds", low=lowest, high=highest)
        return float(result)
    parse.bounds = (lowest, highest)
    return parse


def choice(choices: tuple[str, ...]) -> Parser:
    def parse(value: Any) -> str:
        value = str(value).strip()
        if value not in choices:
            raise RowProblem("bad_choice", choices=", ".join(choices))
        return value
    parse.choices = choices
    return parse


_YES = {"1", "true", "yes", "y", "是", "x"}
_NO = {"0", "false", "no", "n", "否"}


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _YES or word in _NO:
        return word in _YES
    raise RowProblem("bad_boolean")


@lru_cache(maxsize=4096)
def _checked_gtin(value: str) -> tuple[str | None, str | None]:
    # A file names few distinct products in many rows: check each GTIN once (half an import's time otherwise).
    problem = gtin_problem(value)
    return (None, problem) if problem else (normalize_gtin(value), None)


def gtin(value: Any) -> str:
    normalized, problem = _checked_gtin(str(value).strip())
    if problem:
        raise RowProblem("bad_gtin", problem=problem)
    return normalized


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def email(value: Any) -> str:
    value = str(value).strip()
    if not _EMAIL.match(value) or len(value) > 254:
        raise RowProblem("bad_email")
    return value


def country(value: Any) -> str:
    value = str(value).strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", value):
        raise RowProblem("bad_country")
    return value


class Column(NamedTuple):
    name: str
    parse: Parser
    required: bool = False
    label: str = ""
    label_zh: str = ""
    default: Any = None


@dataclass
class Row:
    line: int
    values: dict[str, Any]


@dataclass
class ImportState:
    """One import in progress: where errors and counts accumulate, and what the kind's checks may look up."""

    session: Session
    actor: User
    now: datetime
    keep_objects: bool = False  # a single record: write it as an ORM object and keep its id
    errors: list[dict] = field(default_factory=list)
    error_count: int = 0
    written: int = 0
    created_ids: list[int] = field(default_factory=list)
    seen: dict[Any, int] = field(default_factory=dict)
    pending: list[Any] = field(default_factory=list)
    skipped: int = 0  # rows left out on purpose (a reading already stored, identical)
    context: dict[str, Any] = field(default_factory=dict)  # what a kind keeps across chunks (sensors, clocks)
    # How the stock ledger names a stock level this import writes: a file's job, a record entered alone, demo data.
    movement_kind: str = "import"
    import_job_id: int | None = None

    def refuse(self, line: int, column: str, code: str, **params: Any) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_STORED_ERRORS:
            error = {"line": line, "column": column, "code": code, "params": {k: str(v) for k, v in params.items()}}
            error["reason"] = reason_text(error)
            self.errors.append(error)

    def write(self, model: type, records: list[dict]) -> None:
        """Insert records (in bulk, or as objects when the caller needs the id)."""
        if not records or self.error_count:
            return
        if self.keep_objects:
            objects = [model(**record) for record in records]
            self.session.add_all(objects)
            self.session.flush()
            self.created_ids += [obj.id for obj in objects]
        else:
            self.session.execute(insert(model), records)
        self.written += len(records)


class Kind(NamedTuple):
    """One importable kind of master data: its columns, its duplicate key and its checks-and-write step."""

    name: str
    label: str
    label_zh: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # columns no two rows may share (checked in the file; the checks look at the database)
    check_and_write: Callable[[ImportState, list[Row]], None]
    finish: Callable[[ImportState], None] | None = None


def _lookup(session: Session, column, keys: Iterable[str], *extra) -> dict[str, Any]:
    """Map natural keys to rows (id and extra columns) with one IN query for a chunk."""
    keys = list({k for k in keys if k})
    if not keys:
        return {}
    model_id = column.class_.id
    rows = session.execute(select(column, model_id, *extra).where(column.in_(keys)))
    return {row[0]: row for row in rows}


def _existing(session: Session, column, keys: Iterable[str]) -> set[str]:
    keys = list({k for k in keys if k})
    return set(session.scalars(select(column).where(column.in_(keys)))) if keys else set()


def _date_order(state: ImportState, row: Row, earlier: str, later: str) -> bool:
    first, second = row.values.get(earlier), row.values.get(later)
    if first and second and second < first:
        state.refuse(row.line, later, "date_order", later=later, earlier=earlier)
        return False
    return True


# --- the kinds -------------------------------------------------------------------------------------------------------

def _not_taken(state: ImportState, rows: list[Row], column, name: str) -> Iterator[Row]:
    """Yield the rows whose `name` value is not in the database yet; refuse the others as existing."""
    taken = _existing(state.session, column, (r.values[name] for r in rows))
    for row in rows:
        if row.values[name] in taken:
            state.refuse(row.line, name, "exists", value=row.values[name])
        else:
            yield row


def _present(values: dict, *without: str) -> dict:
    return {k: v for k, v in values.items() if v is not None and k not in without}


def _storage_ranges(state: ImportState, rows: list[Row]) -> Iterator[Row]:
    """Yield the rows whose storage ranges have their minimum at or below their maximum."""
    for row in rows:
        if _date_order(state, row, "storage_temp_min", "storage_temp_max") and \
                _date_order(state, row, "storage_rh_min", "storage_rh_max"):
            yield row


def _products(state: ImportState, rows: list[Row]) -> None:
    state.write(Product, [_present(row.values) for row in _not_taken(
        state, list(_storage_ranges(state, rows)), Product.gtin, "gtin")])


def _suppliers(state: ImportState, rows: list[Row]) -> None:
    state.write(Supplier, [row.values for row in _not_taken(state, rows, Supplier.code, "code")])


def _material_lots(state: ImportState, rows: list[Row]) -> None:
    suppliers = _lookup(state.session, Supplier.code, (r.values["supplier_code"] for r in rows), Supplier.status,
                        Supplier.name)
    pairs = {(r.values["material"], r.values["lot_number"]) for r in rows}
    taken = set(state.session.execute(select(MaterialLot.material, MaterialLot.lot_number).where(
        tuple_(MaterialLot.material, MaterialLot.lot_number).in_(pairs)))) if pairs else set()
    records = []
    for row in rows:
        values = row.values
        supplier = _known(state, row, suppliers, "supplier_code", "unknown_supplier")
        if supplier is None:
            continue
        if supplier.status == "suspended":
            state.refuse(row.line, "supplier_code", "supplier_suspended", value=values["supplier_code"],
                         name=supplier.name)
            continue
        if (values["material"], values["lot_number"]) in taken:
            state.refuse(row.line, "lot_number", "exists", value=values["lot_number"])
            continue
        if not _date_order(state, row, "received_on", "expiry_on"):
            continue
        record = {k: v for k, v in values.items() if k != "supplier_code" and v is not None}
        records.append({**record, "supplier_id": supplier.id})
    state.write(MaterialLot, records)


def _product_lots(state: ImportState, rows: list[Row]) -> None:
    products = _lookup(state.session, Product.gtin, (r.values["gtin"] for r in rows))
    records = []
    for row in _not_taken(state, rows, ProductLot.lot_number, "lot_number"):
        product = products.get(row.values["gtin"])
        if product is None:
            state.refuse(row.line, "gtin", "unknown_product", value=row.values["gtin"])
        elif _date_order(state, row, "manufactured_on", "expiry_on"):
            records.append({**_present(row.values, "gtin"), "product_id": product.id})
    state.write(ProductLot, records)


def _product_lot_map(state: ImportState, rows: list[Row], *names: str, extra=()) -> dict[str, Any]:
    return _lookup(state.session, ProductLot.lot_number,
                   (r.values.get(name) for r in rows for name in names), *extra)


def _known(state: ImportState, row: Row, found: dict[str, Any], column: str, code: str = "unknown_lot") -> Any:
    """Return the looked-up row a column names, or refuse the row (unknown lot, customer, ...) and return None."""
    match = found.get(row.values[column])
    if match is None:
        state.refuse(row.line, column, code, value=row.values[column])
    return match


def _material_lot_map(state: ImportState, rows: list[Row]) -> dict[str, list]:
    found: dict[str, list] = {}
    numbers = list({r.values.get("material_lot") for r in rows if r.values.get("material_lot")})
    if numbers:
        for row in state.session.execute(select(MaterialLot.lot_number, MaterialLot.id, MaterialLot.material,
                                                MaterialLot.received_on, Supplier.code.label("supplier_code"),
                                                Supplier.name.label("supplier_name"),
                                                Supplier.status.label("supplier_status"))
                                         .join(Supplier, Supplier.id == MaterialLot.supplier_id)
                                         .where(MaterialLot.lot_number.in_(numbers))):
            found.setdefault(row.lot_number, []).append(row)
    return found


def _material_lot(state: ImportState, row: Row, found: dict[str, list]) -> Any:
    number, material = row.values["material_lot"], row.values.get("material")
    candidates = [c for c in found.get(number, []) if not material or c.material == material]
    if not candidates:
        state.refuse(row.line, "material_lot", "unknown_lot", value=number)
        return None
    if len(candidates) > 1:
        state.refuse(row.line, "material", "ambiguous_lot", value=number)
        return None
    return candidates[0]


def _genealogy(state: ImportState, rows: list[Row]) -> None:
    """Link product lots to their material and component lots; an input that came in (or was made) after
    the lot it went into was made is impossible and refused."""
    lots_by_number = _product_lot_map(state, rows, "product_lot", "component_lot",
                                      extra=(ProductLot.manufactured_on,))
    materials = _material_lot_map(state, rows)
    records = []
    for row in rows:
        values = row.values
        if bool(values.get("material_lot")) == bool(values.get("component_lot")):
            state.refuse(row.line, "material_lot", "one_component")
            continue
        lot = _known(state, row, lots_by_number, "product_lot")
        if lot is None:
            continue
        record = {"product_lot_id": lot.id, "quantity": values.get("quantity") or 0}
        if values.get("component_lot"):
            component = _known(state, row, lots_by_number, "component_lot")
            if component is None:
                continue
            if component.id == lot.id:
                state.refuse(row.line, "component_lot", "self_component")
                continue
            if lot.manufactured_on and component.manufactured_on and component.manufactured_on > lot.manufactured_on:
                state.refuse(row.line, "component_lot", "made_after_made", value=values["component_lot"],
                             component_made=component.manufactured_on, lot=values["product_lot"],
                             made=lot.manufactured_on)
                continue
            record["component_lot_id"] = component.id
        else:
            material = _material_lot(state, row, materials)
            if material is None:
                continue
            if lot.manufactured_on and material.received_on and material.received_on > lot.manufactured_on:
                state.refuse(row.line, "material_lot", "received_after_made", value=values["material_lot"],
                             received=material.received_on, lot=values["product_lot"], made=lot.manufactured_on)
                continue
            record["material_lot_id"] = material.id
        records.append(record)
    state.write(GenealogyEdge, records)


def _inspections(state: ImportState, rows: list[Row]) -> None:
    lots_by_number = _product_lot_map(state, rows, "product_lot")
    materials = _material_lot_map(state, rows)
    records, failed_finals = [], []
    for row in rows:
        values = row.values
        if bool(values.get("product_lot")) == bool(values.get("material_lot")):
            state.refuse(row.line, "product_lot", "one_lot")
            continue
        record = {k: values[k] for k in ("stage", "result", "results", "inspected_on", "inspector")
                  if values.get(k) is not None}
        if values.get("product_lot"):
            lot = _known(state, row, lots_by_number, "product_lot")
            if lot is None:
                continue
            record["product_lot_id"] = lot.id
        else:
            material = _material_lot(state, row, materials)
            if material is None:
                continue
            if material.supplier_status == "suspended" and values["result"] == "pass":
                # Passing it would accept the material; a failed inspection is evidence and is kept.
                state.refuse(row.line, "result", "supplier_suspended_pass", value=values["material_lot"],
                             supplier=material.supplier_code, name=material.supplier_name)
                continue
            record["material_lot_id"] = material.id
        if record.get("product_lot_id") and values["stage"] == "final" and values["result"] == "fail":
            failed_finals.append(record)
        else:
            records.append(record)
    state.write(Inspection, records)
    if failed_finals and not state.error_count:
        objects = [Inspection(**record) for record in failed_finals]
        state.session.add_all(objects)
        state.session.flush()
        state.created_ids += [obj.id for obj in objects] if state.keep_objects else []
        state.written += len(objects)
        state.pending += objects


def _open_capas(state: ImportState) -> None:
    for inspection in state.pending:
        lots.open_capa_for_inspection(inspection, state.actor, state.now)


def _stock(state: ImportState, rows: list[Row]) -> None:
    lots_by_number = _product_lot_map(state, rows, "product_lot")
    records = []
    for row in rows:
        lot = _known(state, row, lots_by_number, "product_lot")
        if lot is None:
            continue
        records.append({"product_lot_id": lot.id, "location": row.values["location"],
                        "quantity": row.values["quantity"]})
    if not records or state.error_count:
        return
    # A stock count replaces the level held at that location; the ledger gets the difference (rows locked first).
    keys = [(r["product_lot_id"], r["location"]) for r in records]
    held = {(lot_id, location): quantity for lot_id, location, quantity in state.session.execute(
        select(StockLevel.product_lot_id, StockLevel.location, StockLevel.quantity).where(
            tuple_(StockLevel.product_lot_id, StockLevel.location).in_(keys)).with_for_update())}
    state.session.execute(delete(StockLevel).where(tuple_(StockLevel.product_lot_id, StockLevel.location).in_(keys)))
    state.write(StockLevel, records)
    ledger.write([ledger.Movement(r["product_lot_id"], r["location"],
                                  r["quantity"] - held.get((r["product_lot_id"], r["location"]), 0), r["quantity"])
                  for r in records], state.movement_kind, state.actor, state.now,
                 import_job_id=state.import_job_id)


def _serials(state: ImportState, rows: list[Row]) -> None:
    lots_by_number = _product_lot_map(state, rows, "product_lot")
    pairs = {(r.values["serial"], lots_by_number[r.values["product_lot"]].id)
             for r in rows if r.values["product_lot"] in lots_by_number}
    taken = set(state.session.execute(select(SerialNumber.serial, SerialNumber.product_lot_id).where(
        tuple_(SerialNumber.serial, SerialNumber.product_lot_id).in_(pairs)))) if pairs else set()
    records = []
    for row in rows:
        lot = _known(state, row, lots_by_number, "product_lot")
        if lot is None:
            continue
        if (row.values["serial"], lot.id) in taken:
            state.refuse(row.line, "serial", "exists", value=row.values["serial"])
            continue
        records.append({"serial": row.values["serial"], "product_lot_id": lot.id})
    state.write(SerialNumber, records)


def _customers(state: ImportState, rows: list[Row]) -> None:
    records = []
    for row in _not_taken(state, rows, Customer.code, "code"):
        if row.values.get("parent_code"):
            state.pending.append((row.line, row.values["code"], row.values["parent_code"]))
        records.append(_present(row.values, "parent_code"))
    state.write(Customer, records)


def _link_parents(state: ImportState) -> None:
    """Set parent distributors once every customer of the file exists (a parent may come later in the file)."""
    if not state.pending:
        return
    parents = {}
    for start in range(0, len(state.pending), CHUNK):
        part = state.pending[start:start + CHUNK]
        parents.update(_lookup(state.session, Customer.code, (p for _, _, p in part), Customer.kind))
    links = []
    for line, code, parent_code in state.pending:
        parent = parents.get(parent_code)
        if parent is None:
            state.refuse(line, "parent_code", "unknown_customer", value=parent_code)
        elif parent.kind != "distributor":
            state.refuse(line, "parent_code", "parent_not_distributor", value=parent_code)
        else:
            links.append({"b_code": code, "b_parent": parent.id})
    if links and not state.error_count:
        state.session.execute(update(Customer.__table__).where(Customer.__table__.c.code == bindparam("b_code"))
                              .values(parent_id=bindparam("b_parent")), links)


def _shipments(state: ImportState, rows: list[Row]) -> None:
    lots_by_number = _product_lot_map(state, rows, "product_lot", extra=(
        ProductLot.status, ProductLot.expiry_on, ProductLot.manufactured_on))
    customers = _lookup(state.session, Customer.code,
                        (r.values.get(name) for r in rows for name in ("customer_code", "from_customer_code")))
    records = []
    for row in rows:
        values = row.values
        lot = _known(state, row, lots_by_number, "product_lot")
        if lot is None:
            continue
        customer = _known(state, row, customers, "customer_code", "unknown_customer")
        if customer is None:
            continue
        sender = customers.get(values.get("from_customer_code") or "")
        if values.get("from_customer_code") and sender is None:
            state.refuse(row.line, "from_customer_code", "unknown_customer", value=values["from_customer_code"])
            continue
        if lot.manufactured_on and values["shipped_on"] < lot.manufactured_on:
            state.refuse(row.line, "shipped_on", "date_order", later="shipped_on", earlier="manufactured_on")
            continue
        # Our own shipments obey the lot's status; a distributor's onward shipment is a record of what
        # already happened downstream and is kept for traceability whatever the lot's status is now.
        if sender is None and lot.status not in lots.SHIPPABLE:
            state.refuse(row.line, "product_lot", "not_shippable", value=values["product_lot"], status=lot.status)
            continue
        if sender is None and lot.expiry_on and values["shipped_on"] > lot.expiry_on:
            state.refuse(row.line, "shipped_on", "expired_at_shipment", value=values["product_lot"],
                         expiry=lot.expiry_on.isoformat())
            continue
        records.append({"product_lot_id": lot.id, "customer_id": customer.id,
                        "from_customer_id": sender.id if sender else None, "quantity": values["quantity"],
                        "shipped_on": values["shipped_on"], "document_no": values.get("document_no") or ""})
    state.write(Shipment, records)


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("products", "Products", "产品", (
        Column("gtin", gtin, True, "UDI-DI (GTIN)", "UDI-DI（GTIN）"),
        Column("name", text(200), True, "Name", "名称"),
        Column("model", text(120), False, "Model", "型号", ""),
        Column("specification", text(200), False, "Specification", "规格", ""),
        Column("registration_no", text(120), False, "Registration certificate no.", "注册证编号", ""),
        Column("registration_expiry", parse_date, False, "Registration expiry", "注册证有效期至"),
        Column("device_class", choice(DEVICE_CLASSES), False, "Device class", "管理类别", ""),
        Column("sterile", boolean, False, "Sterile", "无菌", False),
        Column("storage_temp_min", number(-200, 200), False, "Storage temperature min (°C)", "储存温度下限（°C）"),
        Column("storage_temp_max", number(-200, 200), False, "Storage temperature max (°C)", "储存温度上限（°C）"),
        Column("storage_rh_min", number(0, 100), False, "Storage humidity min (%RH)", "储存湿度下限（%RH）"),
        Column("storage_rh_max", number(0, 100), False, "Storage humidity max (%RH)", "储存湿度上限（%RH）"),
        Column("excursion_tolerance_minutes", integer(0), False, "Excursion tolerance (minutes out of range)",
               "偏离容许时间（超出范围的累计分钟）", 30),
    ), ("gtin",), _products),
    Kind("suppliers", "Suppliers", "供应商", (
        Column("code", text(60), True, "Code", "编码"),
        Column("name", text(200), True, "Name", "名称"),
        Column("status", choice(SUPPLIER_STATUSES), False, "Status", "状态", "approved"),
        Column("contact_name", text(200), False, "Contact", "联系人", ""),
        Column("email", email, False, "E-mail (corrective action requests)", "电子邮件（纠正措施要求）", ""),
        Column("language", choice(("zh-CN", "en")), False, "Language", "语言", "zh-CN"),
    ), ("code",), _suppliers),
    Kind("material_lots", "Material lots", "物料批次", (
        Column("supplier_code", text(60), True, "Supplier code", "供应商编码"),
        Column("material", text(200), True, "Material", "物料"),
        Column("lot_number", text(60), True, "Lot number", "批号"),
        Column("received_on", parse_date, False, "Received on", "接收日期"),
        Column("expiry_on", parse_date, False, "Expiry date", "有效期至"),
        Column("status", choice(LOT_STATUSES), False, "Status", "状态", "quarantine"),
    ), ("material", "lot_number",), _material_lots),
    Kind("product_lots", "Product lots", "产品批次", (
        Column("gtin", gtin, True, "Product UDI-DI (GTIN)", "产品 UDI-DI（GTIN）"),
        Column("lot_number", text(60), True, "Lot number", "批号"),
        Column("quantity", integer(0), True, "Quantity", "数量"),
        Column("manufactured_on", parse_date, False, "Manufactured on", "生产日期"),
        Column("expiry_on", parse_date, False, "Expiry date", "有效期至"),
        Column("sterilization_batch", text(60), False, "Sterilization batch", "灭菌批号"),
        Column("status", choice(LOT_STATUSES), False, "Status", "状态", "quarantine"),
        Column("batch_record_complete", boolean, False, "Batch record complete", "批记录完整", False),
        Column("labels_checked", boolean, False, "Labels / UDI checked", "标签/UDI 已核对", False),
    ), ("lot_number",), _product_lots),
    Kind("genealogy", "Genealogy", "批次谱系", (
        Column("product_lot", text(60), True, "Product lot", "产品批号"),
        Column("material", text(200), False, "Material", "物料"),
        Column("material_lot", text(60), False, "Material lot", "物料批号"),
        Column("component_lot", text(60), False, "Component (sub-assembly) lot", "组件批号"),
        Column("quantity", decimal_quantity, False, "Quantity used", "用量", 0),
    ), ("product_lot", "material", "material_lot", "component_lot",), _genealogy),
    Kind("inspections", "Inspections", "检验", (
        Column("stage", choice(INSPECTION_STAGES), True, "Stage", "检验阶段"),
        Column("product_lot", text(60), False, "Product lot", "产品批号"),
        Column("material", text(200), False, "Material", "物料"),
        Column("material_lot", text(60), False, "Material lot", "物料批号"),
        Column("result", choice(INSPECTION_RESULTS), True, "Result", "结论"),
        Column("results", text(4000), False, "Results", "检验结果", ""),
        Column("inspected_on", parse_date, True, "Inspected on", "检验日期"),
        Column("inspector", text(200), False, "Inspector", "检验员", ""),
    ), (), _inspections, _open_capas),
    Kind("stock", "Stock by location", "库存", (
        Column("product_lot", text(60), True, "Product lot", "产品批号"),
        Column("location", text(120), True, "Location", "库位"),
        Column("quantity", integer(0), True, "Quantity", "数量"),
    ), ("product_lot", "location",), _stock),
    Kind("serials", "Serial numbers", "序列号", (
        Column("product_lot", text(60), True, "Product lot", "产品批号"),
        Column("serial", text(20), True, "Serial number", "序列号"),
    ), ("product_lot", "serial",), _serials),
    Kind("customers", "Customers", "客户", (
        Column("code", text(60), True, "Code", "编码"),
        Column("name", text(200), True, "Name", "名称"),
        Column("kind", choice(CUSTOMER_KINDS), True, "Type", "类型"),
        Column("region", text(120), False, "Region / province", "地区/省份", ""),
        Column("country", country, False, "Country", "国家", "CN"),
        Column("contact", text(200), False, "Contact", "联系人", ""),
        Column("email", email, False, "E-mail", "电子邮件", ""),
        Column("parent_code", text(60), False, "Parent distributor code", "上级经销商编码"),
        Column("min_shelf_life_days", integer(0), False, "Minimum remaining shelf life at shipment (days)",
               "发货时最短剩余效期（天）"),
    ), ("code",), _customers, _link_parents),
    Kind("shipments", "Shipments", "发货", (
        Column("product_lot", text(60), True, "Product lot", "产品批号"),
        Column("customer_code", text(60), True, "Consignee code", "收货单位编码"),
        Column("quantity", integer(1), True, "Quantity", "数量"),
        Column("shipped_on", parse_date, True, "Shipped on", "发货日期"),
        Column("document_no", text(60), False, "Document no.", "单据号", ""),
        Column("from_customer_code", text(60), False, "Shipped by distributor (onward shipment)",
               "发货经销商编码（转发）"),
    ), (), _shipments),
)}


def get_kind(name: str) -> Kind:
    kind = KINDS.get(name)
    if kind is None:
        raise NotFound(gettext("Unknown kind %(kind)s; use one of %(kinds)s.", kind=repr(name), kinds=", ".join(KINDS)))
    return kind



def _parse_row(state: ImportState, kind: Kind, line: int, raw: dict[str, Any]) -> Row | None:
    values, ok = {}, True
    for column in kind.columns:
        value = raw.get(column.name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if column.required:
                state.refuse(line, column.name, "required")
                ok = False
            values[column.name] = column.default
            continue
        try:
            values[column.name] = column.parse(value)
        except RowProblem as problem:
            state.refuse(line, column.name, problem.code, **problem.params)
            ok = False
    return Row(line, values) if ok else None


def import_rows(kind: Kind, rows: Iterable[tuple[int, dict]], state: ImportState,
                progress: Callable[[int], None] | None = None) -> None:
    """Check and write rows chunk by chunk inside the caller's transaction; refuse all when any row is bad."""
    iterator = iter(rows)
    read = 0
    while chunk := list(islice(iterator, CHUNK)):
        read += len(chunk)
        good = []
        for line, raw in chunk:
            row = _parse_row(state, kind, line, raw)
            if row is None:
                continue
            if kind.key:
                key = tuple(row.values.get(name) for name in kind.key)
                if key in state.seen:
                    state.refuse(line, kind.key[-1], "duplicate_in_file", other=state.seen[key])
                    continue
                state.seen[key] = line
            good.append(row)
        kind.check_and_write(state, good)
        if progress:
            progress(read)
    if not read:
        state.refuse(1, "", "empty_file")
    if kind.finish and not state.error_count:
        kind.finish(state)
    if state.error_count:
        state.errors.sort(key=lambda error: error["line"])
        raise ImportRefused(state.errors, state.error_count)
