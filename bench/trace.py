#!/usr/bin/env python3
"""Trace benchmark: forward and backward lot trace (recursive CTEs) on a synthetic plant of a million lots.

    python bench/trace.py [--seed N] [--db PATH] [--fresh] [--repeats N] [--postgres] [--naive-full] [--quick] [--json]

The plant (deterministic for a seed, random.Random(seed)): 300 products, 200 suppliers, 200,000 material lots,
1,000,000 product lots (200,000 first-level sub-assemblies, 100,000 second-level sub-assemblies made from them,
700,000 finished lots), 3,000,000 genealogy edges (three per product lot), 50,000 customers (500 national
distributors, 4,500 regional distributors under them, 40,000 hospitals under a distributor, 5,000 end users)
and 5,000,000 shipments of finished lots (exactly 7 or 8 per lot), a distributor's receipt usually followed by
onward shipments (shipments.from_customer_id) to its regional distributors and hospitals, two levels deep.
Material use is skewed as in a plant: 10% "bulk" material lots take 60% of the material edges (forward trace
of one reaches ~170 lots); the other 90% are used by a handful of lots each (~12 lots forward).

One designated material lot (id 1) goes into exactly 1,050 product lots through three levels with diamonds:
50 first-level sub-assemblies, 200 second-level ones (each made of two of those 50) and 800 finished lots.
No other lot uses it or those 1,050 lots, so its forward trace must return exactly 1,050 lots (checked).
--quick builds the plant at 1/100 scale with the same 1,050-lot designated tree.

Loading: the schema comes from db.create_all() (the app's models, so the indexes are the app's); the secondary
indexes are dropped before the load and recreated from the model metadata after it. Rows stream from
generators in chunks into the raw DBAPI cursor (SQLite: executemany with journal_mode=OFF, synchronous=OFF and
foreign_keys=OFF during the load only; PostgreSQL: COPY with session_replication_role=replica, then ANALYZE).
Columns the generators do not set get their model's Python-side default, or NULL. The SQLite file
(default /tmp/qualiflow-bench-trace/trace-<scale>-seed<seed>.sqlite) is reused when its marker (generator
version, scale, seed and a hash of the lot tables' DDL) matches; --fresh rebuilds it. --postgres also runs on
PostgreSQL at 127.0.0.1:5432 (database test, user postgres) in schema qualiflow_bench_trace_<scale>.

Timed (p50/p95 over --repeats runs after one untimed warm-up, each with a fresh session, as a request would):
trace.forward([designated]); trace.forward([sample]); the backward trace of one shipment (look up its
product_lot_id, then trace.backward); and trace.find_affected(material_lot_ids=[designated]) if it exists.

Naive: the same forward trace done the spreadsheet way - one SELECT per lot for the lots made from it, level by
level, one SELECT per lot for its shipments, one per shipment for the consignee's onward shipments, one per lot
and per consignee to load it - run on a 1% SAMPLE material lot (one whose forward trace reaches ~1% of the
designated lot's 1,050 lots, ~10) and checked to give the same lot, shipment and consignee sets as the CTE.
Its time is extrapolated linearly in SELECTs to the designated lot: (sample time / sample SELECTs) x the SELECTs
the naive algorithm would issue there (1 + 3 x lots + shipments + consignees, from the CTE result). The ratio is
that extrapolation / the CTE's forward p50. --naive-full also runs the naive algorithm on the designated lot.

Goal (from the issue): forward trace p50 < 1 s; aim 100 ms. A miss prints MISS and still exits 0; errors (the
naive and CTE sets differ, the designated trace is not 1,050 lots, a query fails) exit 1.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import json
import os
import platform
import random
import socket
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, is_dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/trace.py` puts bench/ first on the path, not the project

from bench.engine import BenchError, bench_main  # noqa: E402 - needs the project on the path

GENERATOR_VERSION = 1  # bump when the generated data changes, so old files are rebuilt
FORWARD_GOAL_MS = 1000.0
FORWARD_AIM_MS = 100.0
DEFAULT_DB_DIR = Path("/tmp/qualiflow-bench-trace")
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LOT_TABLES = ("products", "suppliers", "material_lots", "product_lots", "genealogy_edges", "customers", "shipments")
MARKER_TABLE = "bench_trace_marker"
CHUNK = 50_000
DESIGNATED = 1  # material lot id
BLOCK_L1, BLOCK_L2, BLOCK_FIN = 50, 200, 800  # the designated lot's tree: 1,050 product lots
BULK_SHARE = 0.6  # share of material edges that go to the 10% bulk material lots
DAY0 = date(2016, 1, 1)
DATES = [(DAY0 + timedelta(days=i)).isoformat() for i in range(4600)]
MATERIALS = ("PVC resin", "Polyurethane tubing", "Stainless wire 304", "Silicone LSR", "Polycarbonate",
             "Medical adhesive", "Tyvek lid", "PE pouch film", "Nitinol wire", "Latex-free balloon")
REGIONS = ("North", "East", "South", "West", "Central", "Northeast", "Northwest", "Southwest")


@dataclass(frozen=True)
class Scale:
    """How big the plant is; product lot ids run L1 sub-assemblies, then L2 sub-assemblies, then finished lots."""

    name: str
    material_lots: int
    l1: int
    l2: int
    fin: int
    national: int
    regional: int
    hospitals: int
    end_users: int
    shipments: int
    products: int = 300
    suppliers: int = 200

    @property
    def product_lots(self) -> int:
        return self.l1 + self.l2 + self.fin

    @property
    def edges(self) -> int:
        return 3 * self.product_lots

    @property
    def distributors(self) -> int:
        return self.national + self.regional

    @property
    def customers(self) -> int:
        return self.distributors + self.hospitals + self.end_users

    @property
    def bulk(self) -> int:
        return self.material_lots // 10


FULL = Scale("full", material_lots=200_000, l1=200_000, l2=100_000, fin=700_000,
             national=500, regional=4_500, hospitals=40_000, end_users=5_000, shipments=5_000_000)
QUICK = Scale("quick", material_lots=2_000, l1=2_000, l2=1_000, fin=7_000,
              national=5, regional=45, hospitals=400, end_users=50, shipments=50_000)


# --- the synthetic plant: generators of row tuples ------------------------------------------------------------


def _mfg_day(s: Scale, lot: int) -> int:
    return (lot * 3000) // s.product_lots


def product_rows(s: Scale, rng: random.Random) -> tuple[list[str], Iterator[tuple]]:
    columns = ["id", "name", "model", "specification", "gtin", "registration_no", "registration_expiry",
               "device_class"]

    def rows() -> Iterator[tuple]:
        for pid in range(1, s.products + 1):
            finished = pid > 100  # 1-60 first-level, 61-100 second-level sub-assemblies, the rest finished
            yield (pid, f"{'Catheter' if finished else 'Sub-assembly'} {pid}", f"M-{pid:04d}",
                   f"{1 + pid % 9}Fr x {50 + pid % 7 * 10} cm", f"{6901234000000 + pid:014d}",
                   f"REG-{pid:05d}" if finished else "", DATES[3650 + pid] if finished else None,
                   ("I", "II", "III")[pid % 3] if finished else "")
    return columns, rows()


def supplier_rows(s: Scale, rng: random.Random) -> tuple[list[str], Iterator[tuple]]:
    statuses = ("approved",) * 8 + ("conditional", "suspended")
    return ["id", "code", "name", "status"], (
        (sid, f"SUP{sid:04d}", f"Supplier {sid}", statuses[rng.randrange(10)]) for sid in range(1, s.suppliers + 1))


def material_lot_rows(s: Scale, rng: random.Random) -> tuple[list[str], Iterator[tuple]]:
    columns = ["id", "supplier_id", "material", "lot_number", "received_on", "expiry_on", "status"]

    def rows() -> Iterator[tuple]:
        rand = rng.random
        for mid in range(1, s.material_lots + 1):
            day = (mid * 2900) // s.material_lots
            status = "released" if rand() < 0.97 else "quarantine"
            yield (mid, 1 + mid % s.suppliers, MATERIALS[mid % len(MATERIALS)], f"ML{mid:07d}", DATES[day],
                   DATES[day + 730], status)
    return columns, rows()


def product_lot_rows(s: Scale, rng: random.Random) -> tuple[list[str], Iterator[tuple]]:
    columns = ["id", "product_id", "lot_number", "quantity", "manufactured_on", "expiry_on", "sterilization_batch",
               "status"]
    fin_first = s.l1 + s.l2 + 1

    def rows() -> Iterator[tuple]:
        rand = rng.random
        for lot in range(1, s.product_lots + 1):
            if lot <= s.l1:
                product, batch = 1 + lot % 60, None
            elif lot < fin_first:
                product, batch = 61 + lot % 40, None
            else:
                product, batch = 101 + lot % (s.products - 100), f"ST{(lot - fin_first) // 40:06d}"
            u = rand()
            status = "released" if u < 0.95 else "hold" if u < 0.97 else "quarantine" if u < 0.99 else "recalled"
            day = _mfg_day(s, lot)
            yield (lot, product, f"PL{lot:08d}", 100 + int(rand() * 4900), DATES[day], DATES[day + 1095], batch,
                   status)
    return columns, rows()


def edge_rows(s: Scale, rng: random.Random) -> tuple[list[str], Iterator[tuple]]:
    """Three edges per product lot; the designated material lot and its 1,050-lot tree are used by nothing else."""
    columns = ["id", "product_lot_id", "material_lot_id", "component_lot_id", "quantity"]
    n_bulk, n_rest = s.bulk, s.material_lots - 1 - s.bulk
    l2_first, fin_first = s.l1 + 1, s.l1 + s.l2 + 1

    def rows() -> Iterator[tuple]:
        rand = rng.random

        def material() -> int:  # never the designated lot; 60% of picks go to the bulk lots 2..n_bulk+1
            u = rand()
            if u < BULK_SHARE:
                return 2 + int(u / BULK_SHARE * n_bulk)
            return 2 + n_bulk + int((u - BULK_SHARE) / (1 - BULK_SHARE) * n_rest)

        def two_materials() -> tuple[int, int]:
            first, second = material(), material()
            return first, (second if second != first else 2 + (second - 1) % (s.material_lots - 1))

        def l1() -> int:  # a first-level sub-assembly outside the designated tree
            return BLOCK_L1 + 1 + int(rand() * (s.l1 - BLOCK_L1))

        def l2() -> int:
            return l2_first + BLOCK_L2 + int(rand() * (s.l2 - BLOCK_L2))

        edge = 0
        for lot in range(1, s.product_lots + 1):
            if lot <= s.l1:  # first level: three material lots
                if lot <= BLOCK_L1:
                    parts = [(DESIGNATED, None), *((m, None) for m in two_materials())]
                else:
                    first, second = two_materials()
                    third = material()
                    parts = [(first, None), (second, None), (third if third not in (first, second) else
                                                             2 + third % (s.material_lots - 1), None)]
            elif lot < fin_first:  # second level: a first-level sub-assembly and two materials
                k = lot - l2_first
                if k < BLOCK_L2:  # two of the designated tree's first-level lots (a diamond) and one material
                    parts = [(None, 1 + k // 4), (None, 1 + (k // 4 + 1) % BLOCK_L1), (material(), None)]
                else:
                    parts = [(None, l1()), *((m, None) for m in two_materials())]
            else:  # finished: a sub-assembly (70% second level) and two materials
                k = lot - fin_first
                if k < BLOCK_FIN:
                    component = l2_first + k // 4
                else:
                    component = l2() if rand() < 0.7 else l1()
                parts = [(None, component), *((m, None) for m in two_materials())]
            for material_lot, component_lot in parts:
                edge += 1
                yield edge, lot, material_lot, component_lot, float(1 + edge % 5)
    return columns, rows()


def customer_rows(s: Scale, rng: random.Random) -> tuple[list[str], Iterator[tuple]]:
    """Nationals, regionals (parent: a national), hospitals (parent: a distributor), end users (no parent)."""
    columns = ["id", "code", "name", "kind", "region", "contact", "email", "parent_id"]

    def rows() -> Iterator[tuple]:
        for cid in range(1, s.customers + 1):
            if cid <= s.national:
                kind, parent, name = "distributor", None, f"National distributor {cid}"
            elif cid <= s.distributors:
                kind, parent, name = "distributor", (cid - s.national - 1) % s.national + 1, f"Distributor {cid}"
            elif cid <= s.distributors + s.hospitals:
                kind, parent, name = "hospital", (cid - s.distributors - 1) % s.distributors + 1, f"Hospital {cid}"
            else:
                kind, parent, name = "end_user", None, f"Clinic {cid}"
            yield (cid, f"C{cid:06d}", name, kind, REGIONS[cid % len(REGIONS)], f"Contact {cid}",
                   f"c{cid}@example.test", parent)
    return columns, rows()


def shipment_rows(s: Scale, rng: random.Random) -> tuple[list[str], Iterator[tuple]]:
    """Exactly 7 or 8 shipments per finished lot (5,000,000 in all), onward shipments included."""
    columns = ["id", "product_lot_id", "customer_id", "from_customer_id", "quantity", "shipped_on", "document_no"]
    fin_first = s.l1 + s.l2 + 1
    base, extra = divmod(s.shipments, s.fin)
    regionals_each, hospitals_each = s.regional // s.national, s.hospitals // s.distributors
    n_nat, n_dist = s.national, s.distributors

    def rows() -> Iterator[tuple]:
        rand = rng.random
        sid = 0
        for k in range(s.fin):
            lot = fin_first + k
            quota = base + (1 if k < extra else 0)
            day = _mfg_day(s, lot) + 1
            while quota:
                u = rand()
                if u < 0.10:
                    customer = 1 + int(u / 0.10 * n_nat)
                elif u < 0.35:
                    customer = n_nat + 1 + int((u - 0.10) / 0.25 * s.regional)
                elif u < 0.90:
                    customer = n_dist + 1 + int((u - 0.35) / 0.55 * s.hospitals)
                else:
                    customer = n_dist + s.hospitals + 1 + int((u - 0.90) / 0.10 * s.end_users)
                sid += 1
                quota -= 1
                yield (sid, lot, customer, None, 10 + int(rand() * 190), DATES[day + sid % 30], f"DN{sid:09d}")
                stack = [customer] if customer <= n_dist and rand() < 0.8 else []
                while stack and quota:  # onward: a distributor ships on to its regionals and hospitals
                    distributor = stack.pop()
                    for _ in range(1 + int(rand() * 2)):
                        if not quota:
                            break
                        if distributor <= n_nat and rand() < 0.5:
                            child = n_nat + distributor + n_nat * int(rand() * regionals_each)
                            stack.append(child)
                        else:
                            child = n_dist + distributor + n_dist * int(rand() * hospitals_each)
                        sid += 1
                        quota -= 1
                        yield (sid, lot, child, distributor, 1 + int(rand() * 50), DATES[day + 30 + sid % 60],
                               f"DN{sid:09d}")
    return columns, rows()


GENERATORS: tuple[tuple[str, Callable[[Scale, random.Random], tuple[list[str], Iterator[tuple]]]], ...] = (
    ("products", product_rows), ("suppliers", supplier_rows), ("material_lots", material_lot_rows),
    ("product_lots", product_lot_rows), ("genealogy_edges", edge_rows), ("customers", customer_rows),
    ("shipments", shipment_rows))


# --- loading --------------------------------------------------------------------------------------------------


def _unset_columns(table, given: list[str], dialect) -> tuple[list[str], tuple]:
    """Columns a generator does not set: their model's Python-side default (bound as the app would), else NULL.

    A NOT NULL column without any default is an error, so a column another change adds cannot load silently wrong.
    """
    names, values = [], []
    for column in table.columns:
        if column.name in given:
            continue
        default = column.default
        if default is not None and getattr(default, "is_scalar", False):
            value = default.arg
        elif default is not None and getattr(default, "is_callable", False):
            value = default.arg(None)
        elif column.server_default is not None or column.nullable:
            continue
        else:
            raise BenchError(f"{table.name}.{column.name} is NOT NULL without a default: teach bench/trace.py "
                             "to generate it")
        processor = column.type.bind_processor(dialect)
        names.append(column.name)
        values.append(processor(value) if processor else value)
    return names, tuple(values)


def _chunks(rows: Iterable[tuple], size: int = CHUNK) -> Iterator[list[tuple]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _progress(message: str) -> None:
    print(f"[trace bench] {message}", file=sys.stderr, flush=True)


def _load_table(driver_connection, dialect, table, columns: list[str], rows: Iterator[tuple]) -> int:
    """Stream the rows into the table in chunks; return how many."""
    extra_names, extra_values = _unset_columns(table, columns, dialect)
    names = columns + extra_names
    if extra_values:
        rows = (row + extra_values for row in rows)
    count = 0
    cursor = driver_connection.cursor()
    if dialect.name == "sqlite":
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        for chunk in _chunks(rows):
            cursor.executemany(sql, chunk)
            count += len(chunk)
    else:  # PostgreSQL: COPY, the bulk path (executemany of 10 million rows takes many minutes)
        with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    cursor.close()
    return count


def _ddl(element, dialect) -> str:
    return str(element.compile(dialect=dialect))


def schema_hash(dialect) -> str:
    """A fingerprint of the lot tables as the models define them now (columns, constraints, indexes)."""
    from sqlalchemy.schema import CreateIndex, CreateTable

    from app.extensions import db

    parts = []
    for name in LOT_TABLES:
        table = db.metadata.tables[name]
        parts.append(_ddl(CreateTable(table), dialect))
        parts += sorted(_ddl(CreateIndex(index), dialect) for index in table.indexes)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def generate(s: Scale, seed: int) -> dict[str, Any]:
    """Create the schema and load the plant into the app's (empty) database; return the marker to store."""
    from sqlalchemy.schema import CreateIndex, DropIndex

    from app.extensions import db
    from app.models.audit import install_append_only

    started = time.perf_counter()
    dialect = db.engine.dialect
    db.create_all()
    with db.engine.begin() as connection:
        install_append_only(connection)
    write_marker({"incomplete": True})  # marks the file as the benchmark's while it loads (see _check_ours)
    tables = [db.metadata.tables[name] for name in LOT_TABLES]
    indexes = [index for table in tables for index in sorted(table.indexes, key=lambda i: i.name)]
    db.engine.dispose()  # one connection only, so SQLite can leave WAL for the load
    raw = db.engine.raw_connection()
    try:
        driver = raw.driver_connection
        cursor = driver.cursor()
        if dialect.name == "sqlite":  # for the load only: the app's connections set WAL and foreign keys again
            mode = cursor.execute("PRAGMA journal_mode=OFF").fetchone()[0]
            if mode != "off":
                _progress(f"SQLite kept journal_mode={mode} for the load (another connection is open): slower")
            for pragma in ("synchronous=OFF", "foreign_keys=OFF", "cache_size=-200000"):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.execute("BEGIN")
        else:
            cursor.execute("SET session_replication_role = replica")  # no FK triggers per row during COPY
            cursor.execute("SET maintenance_work_mem = '512MB'")
        for index in indexes:
            cursor.execute(_ddl(DropIndex(index), dialect))
        counts = {}
        for name, make_rows in GENERATORS:
            table_started = time.perf_counter()
            columns, rows = make_rows(s, random.Random(f"{seed}:{name}"))
            counts[name] = _load_table(driver, dialect, db.metadata.tables[name], columns, rows)
            _progress(f"{name}: {counts[name]:,} rows in {time.perf_counter() - table_started:.1f} s")
        load_s = time.perf_counter() - started
        for index in indexes:
            cursor.execute(_ddl(CreateIndex(index), dialect))
        index_s = time.perf_counter() - started - load_s
        _progress(f"indexes: {len(indexes)} rebuilt in {index_s:.1f} s")
        if dialect.name == "sqlite":
            cursor.execute("COMMIT")
        else:
            cursor.execute("SET session_replication_role = DEFAULT")
            driver.commit()
            driver.autocommit = True
            cursor.execute("ANALYZE")  # autovacuum would do this soon after a real bulk load too
            driver.autocommit = False
        cursor.close()
    finally:
        raw.close()
    db.engine.dispose()  # drop the loading connection and its pragmas
    return {"version": GENERATOR_VERSION, "scale": s.name, "seed": seed, "schema": schema_hash(dialect),
            "generation_s": round(time.perf_counter() - started, 1), "load_s": round(load_s, 1),
            "index_s": round(index_s, 1), "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "rows": counts}


def read_marker() -> dict[str, Any] | None:
    from sqlalchemy import inspect, text

    from app.extensions import db

    if not inspect(db.engine).has_table(MARKER_TABLE):
        return None
    with db.engine.connect() as connection:
        value = connection.execute(text(f"SELECT value FROM {MARKER_TABLE} WHERE key = 'marker'")).scalar()
    return json.loads(value) if value else None


def write_marker(marker: dict[str, Any]) -> None:
    from sqlalchemy import text

    from app.extensions import db

    with db.engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (key VARCHAR(40) PRIMARY KEY, "
                                "value TEXT NOT NULL)"))
        connection.execute(text(f"DELETE FROM {MARKER_TABLE}"))
        connection.execute(text(f"INSERT INTO {MARKER_TABLE} (key, value) VALUES ('marker', :value)"),
                           {"value": json.dumps(marker)})


def _matches(marker: dict[str, Any] | None, s: Scale, seed: int, dialect) -> bool:
    return bool(marker) and (marker.get("version"), marker.get("scale"), marker.get("seed"),
                             marker.get("schema")) == (GENERATOR_VERSION, s.name, seed, schema_hash(dialect))


# --- the databases --------------------------------------------------------------------------------------------


def _check_ours(path: Path) -> None:
    """Refuse to delete a SQLite file that is not one of this benchmark's (say, --db pointing at the demo)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as err:
        raise BenchError(f"{path} is not a SQLite file ({err}); pick another --db") from err
    if tables and MARKER_TABLE not in tables:
        raise BenchError(f"{path} exists and is not a trace benchmark file (no {MARKER_TABLE} table); "
                         "refusing to replace it - pick another --db")


def _remove_sqlite(path: Path) -> None:
    _check_ours(path)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextmanager
def plant_app(backend: str, s: Scale, seed: int, fresh: bool, db_path: Path, pg_url: str) -> Iterator[dict]:
    """Yield (inside an app context) where the plant lives and whether it was reused; build it if needed."""
    from app import create_app
    from app.extensions import db

    schema = f"qualiflow_bench_trace_{s.name}"
    if backend == "sqlite":
        db_path.parent.mkdir(parents=True, exist_ok=True)
        overrides = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}"}
    else:
        overrides = {"SQLALCHEMY_DATABASE_URI": pg_url,
                     "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": f"-c search_path={schema}"}}}
    if backend == "sqlite" and fresh:
        _remove_sqlite(db_path)
    app = create_app("testing", {**overrides, "SMTP_PORT": 1})
    with app.app_context():
        try:
            if backend == "postgresql":
                with db.engine.begin() as connection:
                    if fresh:
                        connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                    connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            marker = read_marker()
            reused = _matches(marker, s, seed, db.engine.dialect)
            if not reused:
                _progress(f"{backend}: generating the {s.name} plant (seed {seed}) - a few minutes at full scale")
                db.engine.dispose()
                if backend == "sqlite":
                    _remove_sqlite(db_path)
                else:
                    with db.engine.begin() as connection:
                        connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
                marker = generate(s, seed)
                write_marker(marker)
            else:
                db.create_all()  # tables other changes added since (the lot tables match the marker's hash)
            where = str(db_path) if backend == "sqlite" else f"{pg_url.split('@')[-1]} schema {schema}"
            yield {"backend": backend, "where": where, "reused": reused, "marker": marker, "schema": schema}
        finally:
            db.session.remove()
            db.engine.dispose()


def _postgres_answers(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _size_bytes(backend: str, db_path: Path, schema: str) -> int:
    from sqlalchemy import text

    from app.extensions import db

    if backend == "sqlite":
        return sum(os.path.getsize(f"{db_path}{suffix}") for suffix in ("", "-wal")
                   if os.path.exists(f"{db_path}{suffix}"))
    return int(db.session.scalar(text(
        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :schema AND c.relkind = 'r'"), {"schema": schema}) or 0)


def _row_counts() -> dict[str, int]:
    from sqlalchemy import text

    from app.extensions import db

    counts = {name: db.session.scalar(text(f"SELECT count(*) FROM {name}")) for name in LOT_TABLES}
    db.session.remove()
    return counts


# --- measuring ------------------------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[dict[str, Any], Any]:
    """Run fn once untimed, then `repeats` times, each in a fresh session; return p50/p95 and the last result."""
    from app.extensions import db

    result = fn()
    db.session.remove()
    latencies = []
    for _ in range(repeats):
        result = None  # as in a web worker, the previous request's objects are gone before the next one starts
        gc.collect()
        started = time.perf_counter()
        result = fn()
        latencies.append(time.perf_counter() - started)
        db.session.remove()
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
    return {"p50_ms": _ms(statistics.median(latencies)), "p95_ms": _ms(p95), "repeats": repeats}, result


def _ids(rows: Iterable[Any]) -> set[int]:
    return {row.id for row in rows}


def forward_sets(result: Any) -> dict[str, set[int]]:
    return {"product_lots": _ids(result.product_lots), "shipments": _ids(result.shipments),
            "consignees": _ids(result.consignees)}


def naive_forward(material_lot_id: int) -> tuple[dict[str, set[int]], int]:
    """The forward trace without recursive SQL: one SELECT per lot, per shipment and per level, in Python loops.

    Return the lot, shipment and consignee ids (each loaded as an ORM object, as the CTE version returns them)
    and how many SELECTs it took.
    """
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Customer, GenealogyEdge, ProductLot, Shipment

    session = db.session
    queries = 1
    level = list(session.scalars(select(GenealogyEdge.product_lot_id).where(
        GenealogyEdge.material_lot_id == material_lot_id)))
    lots: dict[int, Any] = {}
    while level:  # level by level up the genealogy: for each lot, the lots it went into
        next_level = []
        for lot_id in level:
            if lot_id in lots:
                continue
            lots[lot_id] = session.get(ProductLot, lot_id)
            next_level += session.scalars(select(GenealogyEdge.product_lot_id).where(
                GenealogyEdge.component_lot_id == lot_id))
            queries += 2
        level = next_level
    shipments: dict[int, Any] = {}
    pending = []
    for lot_id in lots:  # for each lot, its shipments from the plant
        queries += 1
        for shipment in session.scalars(select(Shipment).where(Shipment.product_lot_id == lot_id,
                                                               Shipment.from_customer_id.is_(None))):
            shipments[shipment.id] = shipment
            pending.append(shipment)
    while pending:  # for each shipment, the consignee's onward shipments of the same lot
        shipment = pending.pop()
        queries += 1
        for onward in session.scalars(select(Shipment).where(Shipment.from_customer_id == shipment.customer_id,
                                                             Shipment.product_lot_id == shipment.product_lot_id)):
            if onward.id not in shipments:
                shipments[onward.id] = onward
                pending.append(onward)
    consignees: dict[int, Any] = {}
    for shipment in shipments.values():
        if shipment.customer_id not in consignees:
            consignees[shipment.customer_id] = session.get(Customer, shipment.customer_id)
            queries += 1
    return {"product_lots": set(lots), "shipments": set(shipments), "consignees": set(consignees)}, queries


def naive_queries_for(sets: dict[str, set[int]]) -> int:
    """The SELECTs naive_forward issues for a trace of this size: 1 + 3 per lot + 1 per shipment + 1 per consignee."""
    return 1 + 3 * len(sets["product_lots"]) + len(sets["shipments"]) + len(sets["consignees"])


def _forward_lot_count(material_lot_id: int) -> int:
    from app.extensions import db
    from app.services.lots import trace

    count = len(trace.forward([material_lot_id]).product_lots)
    db.session.remove()
    return count


def pick_sample(s: Scale, seed: int, target: int) -> tuple[int, int]:
    """A non-bulk material lot whose forward trace reaches about `target` lots (deterministic for the seed)."""
    rng = random.Random(f"{seed}:sample")
    best: tuple[int, int, int] | None = None
    for _ in range(400):
        candidate = 2 + s.bulk + rng.randrange(s.material_lots - 1 - s.bulk)
        lots = _forward_lot_count(candidate)
        if best is None or abs(lots - target) < best[0]:
            best = (abs(lots - target), candidate, lots)
        if best[0] == 0:
            break
    assert best is not None
    return best[1], best[2]


def _describe(result: Any) -> Any:
    """Sizes of whatever find_affected returns (a dataclass of lists, a list, ...), for the report."""
    if is_dataclass(result):
        return {f.name: len(value) if isinstance(value, list | tuple | set | dict) else value
                for f in fields(result) for value in [getattr(result, f.name)]}
    if isinstance(result, list | tuple | set | dict):
        return {"items": len(result)}
    return {"type": type(result).__name__}


def measure(s: Scale, seed: int, repeats: int, naive_repeats: int, naive_full: bool) -> dict[str, Any]:
    """Time the traces on the plant in the current app context."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Shipment
    from app.services.lots import trace

    queries: dict[str, Any] = {}
    stats, result = timed(lambda: trace.forward([DESIGNATED]), repeats)
    designated = forward_sets(result)
    expected = BLOCK_L1 + BLOCK_L2 + BLOCK_FIN
    if len(designated["product_lots"]) != expected:
        raise BenchError(f"forward trace of the designated lot found {len(designated['product_lots'])} lots, "
                         f"expected {expected}")
    queries["forward"] = {**stats, "material_lot_id": DESIGNATED,
                          **{name: len(ids) for name, ids in designated.items()}}

    sample_id, sample_lots = pick_sample(s, seed, round(expected / 100))
    stats, result = timed(lambda: trace.forward([sample_id]), repeats)
    sample = forward_sets(result)
    queries["forward_sample"] = {**stats, "material_lot_id": sample_id,
                                 **{name: len(ids) for name, ids in sample.items()}}

    shipment_id = random.Random(f"{seed}:backward").randrange(1, s.shipments + 1)

    def backward() -> Any:
        lot_id = db.session.scalar(select(Shipment.product_lot_id).where(Shipment.id == shipment_id))
        return lot_id, trace.backward(lot_id)

    stats, (lot_id, result) = timed(backward, repeats)
    queries["backward"] = {**stats, "shipment_id": shipment_id, "product_lot_id": lot_id,
                           "product_lots": len(result.product_lots), "material_lots": len(result.material_lots),
                           "suppliers": len(result.suppliers)}

    find_affected = getattr(trace, "find_affected", None)
    if find_affected is None:
        queries["find_affected"] = {"skipped": "app.services.trace has no find_affected yet"}
    else:
        try:
            stats, result = timed(lambda: find_affected(material_lot_ids=[DESIGNATED]), repeats)
        except Exception as err:  # someone else's function: report what failed, as an error
            raise BenchError(f"trace.find_affected(material_lot_ids=[{DESIGNATED}]) failed: {err!r}") from err
        queries["find_affected"] = {**stats, "material_lot_id": DESIGNATED, "result": _describe(result)}

    naive_stats, (naive_sets, naive_selects) = timed(lambda: naive_forward(sample_id), naive_repeats)
    same = naive_sets == sample
    if not same:
        diff = {name: {"naive_only": sorted(naive_sets[name] - sample[name])[:10],
                       "cte_only": sorted(sample[name] - naive_sets[name])[:10]} for name in sample}
        raise BenchError(f"naive and CTE forward traces of material lot {sample_id} differ: {diff}")
    designated_selects = naive_queries_for(designated)
    per_select_ms = naive_stats["p50_ms"] / naive_selects
    extrapolated_ms = per_select_ms * designated_selects
    naive: dict[str, Any] = {
        "method": ("naive run on a 1% sample material lot (forward trace ~1% of the designated lot's lots), "
                   "extrapolated linearly in SELECTs to the designated lot"),
        "sample_material_lot_id": sample_id, "sample_lots": sample_lots,
        "sample_shipments": len(sample["shipments"]), "sample_consignees": len(sample["consignees"]),
        "sample_p50_ms": naive_stats["p50_ms"], "sample_p95_ms": naive_stats["p95_ms"],
        "repeats": naive_repeats, "sample_selects": naive_selects, "ms_per_select": round(per_select_ms, 4),
        "sample_cte_p50_ms": queries["forward_sample"]["p50_ms"],
        "designated_selects": designated_selects, "extrapolated_ms": round(extrapolated_ms, 1),
        "ratio_naive_over_cte": round(extrapolated_ms / queries["forward"]["p50_ms"], 2),
        "same_sets_on_sample": same,
    }
    if naive_full:
        started = time.perf_counter()
        full_sets, full_selects = naive_forward(DESIGNATED)
        elapsed_ms = _ms(time.perf_counter() - started)
        db.session.remove()
        if full_sets != designated:
            raise BenchError("naive and CTE forward traces of the designated lot differ")
        naive["full"] = {"ms": elapsed_ms, "selects": full_selects, "same_sets": True,
                         "ratio_naive_over_cte": round(elapsed_ms / queries["forward"]["p50_ms"], 2)}
    p50 = queries["forward"]["p50_ms"]
    goal = {"value_ms": p50, "target": f"< {FORWARD_GOAL_MS:.0f} ms", "status": "PASS" if p50 < FORWARD_GOAL_MS
            else "MISS", "aim": f"< {FORWARD_AIM_MS:.0f} ms", "aim_met": p50 < FORWARD_AIM_MS}
    return {"queries": queries, "naive": naive, "goal": goal}


def run_backend(backend: str, args: argparse.Namespace, s: Scale) -> dict[str, Any]:
    db_path = Path(args.db) if args.db else DEFAULT_DB_DIR / f"trace-{s.name}-seed{args.seed}.sqlite"
    with plant_app(backend, s, args.seed, args.fresh, db_path, args.pg_url) as plant:
        marker = plant["marker"]
        rows = _row_counts()
        expected = {"products": s.products, "suppliers": s.suppliers, "material_lots": s.material_lots,
                    "product_lots": s.product_lots, "genealogy_edges": s.edges, "customers": s.customers,
                    "shipments": s.shipments}
        if rows != expected:
            raise BenchError(f"row counts {rows} differ from the plan {expected}; rerun with --fresh")
        result = {"backend": backend, "where": plant["where"], "reused": plant["reused"],
                  "size_bytes": _size_bytes(backend, db_path, plant["schema"]),
                  "generation": {key: marker[key] for key in ("generation_s", "load_s", "index_s", "generated_at")},
                  "rows": rows}
        result.update(measure(s, args.seed, args.repeats, args.naive_repeats, args.naive_full))
        return result


def _environment(load_before: float) -> dict[str, str]:
    return {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "sqlalchemy": metadata.version("SQLAlchemy"), "machine": f"{platform.system()} {platform.machine()}",
            "cpus": str(os.cpu_count()), "load_average_1m": f"{load_before:.2f} -> {os.getloadavg()[0]:.2f}"}


def run(args: argparse.Namespace) -> dict[str, Any]:
    s = QUICK if args.quick else FULL
    load_before = os.getloadavg()[0]
    runs: dict[str, Any] = {"sqlite": run_backend("sqlite", args, s)}
    if args.postgres:
        if _postgres_answers():
            runs["postgresql"] = run_backend("postgresql", args, s)
        else:
            runs["postgresql"] = {"skipped": "PostgreSQL does not answer on 127.0.0.1:5432"}
    return {"scale": asdict(s) | {"product_lots": s.product_lots, "edges": s.edges, "customers": s.customers},
            "seed": args.seed, "runs": runs, "environment": _environment(load_before)}


# --- output ---------------------------------------------------------------------------------------------------


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def print_table(result: dict[str, Any]) -> None:
    """Print the result for people."""
    print(f"Trace benchmark - {result['scale']['name']} scale, seed {result['seed']}")
    for backend, r in result["runs"].items():
        print()
        if "skipped" in r:
            print(f"{backend}: skipped ({r['skipped']})")
            continue
        gen = r["generation"]
        how = (f"reused (generated {gen['generated_at']} in {gen['generation_s']} s)" if r["reused"]
               else f"generated in {gen['generation_s']} s")
        print(f"{backend}: {r['where']}, {_size(r['size_bytes'])}, {how}: "
              f"load {gen['load_s']} s + indexes {gen['index_s']} s")
        print("  rows: " + ", ".join(f"{name} {count:,}" for name, count in r["rows"].items()))
        q = r["queries"]
        print(f"  {'query':44}{'p50 ms':>10}{'p95 ms':>10}{'runs':>6}  result")
        f, fs, b = q["forward"], q["forward_sample"], q["backward"]
        print(f"  {'forward trace, designated material lot ' + str(f['material_lot_id']):44}{f['p50_ms']:>10}"
              f"{f['p95_ms']:>10}{f['repeats']:>6}  {f['product_lots']:,} lots, {f['shipments']:,} shipments, "
              f"{f['consignees']:,} consignees")
        print(f"  {'forward trace, sample material lot ' + str(fs['material_lot_id']):44}{fs['p50_ms']:>10}"
              f"{fs['p95_ms']:>10}{fs['repeats']:>6}  {fs['product_lots']:,} lots, {fs['shipments']:,} shipments, "
              f"{fs['consignees']:,} consignees")
        print(f"  {'backward trace of shipment ' + str(b['shipment_id']):44}{b['p50_ms']:>10}{b['p95_ms']:>10}"
              f"{b['repeats']:>6}  lot {b['product_lot_id']}: {b['product_lots']} lots, {b['material_lots']} "
              f"material lots, {b['suppliers']} suppliers")
        fa = q["find_affected"]
        if "skipped" in fa:
            print(f"  {'find_affected, designated material lot':44}{'-':>10}{'-':>10}{'-':>6}  skipped: "
                  f"{fa['skipped']}")
        else:
            print(f"  {'find_affected, designated material lot':44}{fa['p50_ms']:>10}{fa['p95_ms']:>10}"
                  f"{fa['repeats']:>6}  {fa['result']}")
        n = r["naive"]
        print(f"  naive forward trace (one SELECT per lot / shipment / level): {n['method']}")
        print(f"    sample material lot {n['sample_material_lot_id']}: {n['sample_lots']} lots, "
              f"{n['sample_shipments']} shipments, {n['sample_consignees']} consignees; p50 {n['sample_p50_ms']} ms "
              f"(CTE {n['sample_cte_p50_ms']} ms) over {n['repeats']} runs, {n['sample_selects']} SELECTs = "
              f"{n['ms_per_select']} ms per SELECT; same sets as the CTE: "
              f"{'yes' if n['same_sets_on_sample'] else 'NO'}")
        print(f"    extrapolated to the designated lot: {n['designated_selects']:,} SELECTs = "
              f"{n['extrapolated_ms']:,} ms; ratio naive / CTE = {n['ratio_naive_over_cte']} x")
        if "full" in n:
            print(f"    naive run on the designated lot itself: {n['full']['ms']:,} ms, {n['full']['selects']:,} "
                  f"SELECTs, same sets; ratio {n['full']['ratio_naive_over_cte']} x")
        g = r["goal"]
        print(f"  Goal forward p50 {g['target']}: {g['value_ms']} ms {g['status']} "
              f"(aim {g['aim']}: {'met' if g['aim_met'] else 'not met'})")
    env = result["environment"]
    print(f"\nPython {env['python']}, SQLite {env['sqlite']}, SQLAlchemy {env['sqlalchemy']}, {env['machine']}, "
          f"{env['cpus']} CPUs, load {env['load_average_1m']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42, help="random seed of the plant (default 42)")
    parser.add_argument("--db", help=f"SQLite file (default {DEFAULT_DB_DIR}/trace-<scale>-seed<seed>.sqlite)")
    parser.add_argument("--fresh", action="store_true", help="regenerate the plant even if the marker matches")
    parser.add_argument("--repeats", type=int, help="timed runs per query (default 20, 5 with --quick)")
    parser.add_argument("--naive-repeats", type=int, help="timed runs of the naive sample (default 10, 5 with --quick)")
    parser.add_argument("--naive-full", action="store_true",
                        help="also run the naive algorithm once on the designated lot (checks the extrapolation)")
    parser.add_argument("--postgres", action="store_true",
                        help="also run on PostgreSQL at 127.0.0.1:5432 if it answers (slow to generate)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help=f"PostgreSQL URL (default {DEFAULT_PG_URL})")
    parser.add_argument("--quick", action="store_true", help="a fast smoke: the plant at 1/100 scale, 5 runs each")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (5 if args.quick else 20)
    args.naive_repeats = args.naive_repeats or (5 if args.quick else 10)
    if args.repeats < 2 or args.naive_repeats < 2:
        parser.error("need --repeats and --naive-repeats >= 2")
    return args


def main(argv: list[str] | None = None) -> int:
    return bench_main(parse_args, run, print_table, argv)


if __name__ == "__main__":
    sys.exit(main())
