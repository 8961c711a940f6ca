#!/usr/bin/env python3
"""Readings benchmark: a logger file of a million readings through start_import + run_import (with excursion
detection), the storage it takes, and the time to read and draw one month of one sensor.

    python bench/readings.py [--rows N] [--sensors N] [--quick] [--json]

The app is created as bench/engine.py does (a fresh SQLite file in a temporary directory, WAL, the schema, the audit
triggers, the demo users and groups) and the shipped procedures are deployed (the deviation assessment starts from
an excursion). A refrigerated product (2-8 °C, 30 minutes tolerated) has one lot in stock at each of --sensors cold
rooms, each watched by one temperature logger reading every minute. The file is deterministic and streamed to a
temporary CSV: the sensors' readings interleaved minute by minute (as a gateway export of several loggers is), a
slow daily wave between 4 and 6 °C, and in each sensor's series one 45-minute excursion at 9.5 °C, on a different
day per sensor.

Timed: run_import as admin (the bytes go through start_import first, timed apart); it stores the readings, runs the
excursion detection for every sensor over its whole span, records one excursion per sensor, holds its lot and starts
one deviation assessment each - all checked afterwards. Then, seven times each, the median: reading one month of one
sensor (43,200 readings, the (sensor, time) key's range scan), reducing it to the chart's 600 min/max columns, and
GET of the sensor page with that month (query, reduction, SVG and the page), in wall-clock and CPU time. Storage:
the database file's growth per reading after a checkpoint (the table is WITHOUT ROWID: the key is the row).
Errors (a failed import, a wrong count of readings, excursions, holds or instances) exit 1.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/readings.py` puts bench/ first on the path, not the project

from bench.engine import BenchError, bench_app, bench_main  # noqa: E402 - needs the project on the path
from bench.imports import peak_rss_mb  # noqa: E402

QUICK_ROWS = 100_000
START = datetime(2026, 1, 1, tzinfo=UTC)
MONTH = timedelta(days=30)
EXCURSION_MINUTES = 45


def write_file(path: Path, rows: int, sensors: int) -> None:
    """Stream the readings: minute by minute, each sensor in turn; one 45-minute excursion per sensor."""
    per_sensor = rows // sensors
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["timestamp", "sensor", "value", "unit"])
        for minute in range(per_sensor):
            stamp = (START + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
            wave = 5.0 + math.sin(minute / 1440 * 2 * math.pi)
            for sensor in range(sensors):
                excursion_at = (sensor * 1440 + 600) % max(per_sensor - EXCURSION_MINUTES, 1)
                value = 9.5 if excursion_at <= minute < excursion_at + EXCURSION_MINUTES else round(wave, 2)
                writer.writerow([stamp, f"S{sensor:03d}", value, "C"])


def setup(sensors: int) -> None:
    from app.extensions import db
    from app.models import Product, ProductLot, Sensor, StockLevel

    product = Product(name="Insulin pen needles", gtin="06901234567892", storage_temp_min=2, storage_temp_max=8,
                      excursion_tolerance_minutes=30)
    db.session.add(product)
    for index in range(sensors):
        lot = ProductLot(product=product, lot_number=f"L{index:03d}", quantity=1000, status="released")
        db.session.add(lot)
        db.session.flush()
        db.session.add_all([StockLevel(product_lot_id=lot.id, location=f"Cold room {index:03d}", quantity=1000),
                            Sensor(code=f"S{index:03d}", location=f"Cold room {index:03d}", interval_seconds=60)])
    db.session.commit()


def median_ms(action, runs: int = 7) -> tuple[dict[str, float], Any]:
    """Median wall-clock and CPU milliseconds of `runs` calls (on a loaded machine the CPU time is what an idle
    one would wait), and the last call's result."""
    wall, cpu, result = [], [], None
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = action()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return {"wall": round(statistics.median(wall), 1), "cpu": round(statistics.median(cpu), 1)}, result


def database_bytes(path: Path) -> int:
    """The database file's size once the write-ahead log is checkpointed into it."""
    from app.extensions import db

    db.session.remove()
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return path.stat().st_size


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Excursion, ProcessInstance, ProductLot, Reading, User
    from app.services import users
    from app.services.lots import conditions, imports
    from app.services.workflow import processes
    from tests.conftest import login

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="qualiflow-bench-readings-") as tmp:
        workdir = Path(tmp)
        with bench_app(workdir) as app:
            app.instance_path = str(workdir)
            processes.deploy_directory(ROOT / "processes", None, "benchmark", release="benchmark")
            setup(args.sensors)
            admin_id = users.get_by_username("admin").id
            database = workdir / "bench.sqlite"
            size_before = database_bytes(database)

            path = workdir / "readings.csv"
            started = time.perf_counter()
            write_file(path, args.rows, args.sensors)
            generated_s = time.perf_counter() - started
            size_mb = path.stat().st_size / 1e6
            started = time.perf_counter()
            job = imports.start_import("readings", path.name, path.read_bytes(), db.session.get(User, admin_id))
            staged = time.perf_counter()
            staged_cpu = time.process_time()
            job = imports.run_import(job.id)
            import_s = time.perf_counter() - staged
            import_cpu_s = time.process_time() - staged_cpu
            path.unlink()
            rows = (args.rows // args.sensors) * args.sensors
            if job.status != "succeeded" or job.imported_rows != rows:
                raise BenchError(f"the import ended {job.status} with {job.imported_rows} of {rows}: "
                                 f"{job.message} {job.errors[:5]}")
            db.session.remove()
            stored = db.session.scalar(select(func.count()).select_from(Reading))
            excursions = list(db.session.scalars(select(Excursion)))
            held = db.session.scalar(select(func.count()).select_from(ProductLot).where(ProductLot.status == "hold"))
            started_instances = db.session.scalar(select(func.count()).select_from(ProcessInstance))
            if stored != rows or len(excursions) != args.sensors or held != args.sensors \
                    or started_instances != args.sensors:
                raise BenchError(f"{stored} readings, {len(excursions)} excursions, {held} lots held, "
                                 f"{started_instances} instances; expected {rows}, then {args.sensors} each")
            if any(e.minutes_out != EXCURSION_MINUTES for e in excursions):
                raise BenchError(f"minutes out: {sorted({e.minutes_out for e in excursions})}")
            size_after = database_bytes(database)

            sensor = conditions.get_sensor(excursions[0].sensor_id)
            first = conditions.to_seconds(START)
            last = conditions.to_seconds(START + MONTH) - 1
            read_ms, (times, _values) = median_ms(lambda: conditions.series(sensor.id, first, last))
            chart_ms, chart = median_ms(lambda: conditions.chart(sensor, START, START + MONTH))
            db.session.remove()
            client = app.test_client()
            login(client, "admin")
            end_day = (START + MONTH - timedelta(days=1)).date().isoformat()
            page_ms, page = median_ms(lambda: client.get(f"/conditions/sensors/{sensor.id}?days=30&end={end_day}"))
            if page.status_code != 200 or b"allowed-band" not in page.data:
                raise BenchError(f"the sensor page answered {page.status_code}")
    return {
        "rows": rows, "sensors": args.sensors, "csv_mb": round(size_mb, 1), "generate_s": round(generated_s, 2),
        "stage_s": round(staged - started, 2), "import_s": round(import_s, 2), "rows_per_s": round(rows / import_s),
        "import_cpu_s": round(import_cpu_s, 2), "rows_per_cpu_s": round(rows / import_cpu_s),
        "excursions": len(excursions), "lots_held": held, "instances_started": started_instances,
        "bytes_per_reading": round((size_after - size_before) / rows, 1),
        "month": {"readings": len(times), "read_ms": read_ms, "chart_ms": chart_ms, "columns": len(chart.buckets),
                  "page_ms": page_ms},
        "peak_rss_mb": peak_rss_mb(),
        "environment": {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
                        "machine": f"{platform.system()} {platform.machine()}", "cpus": str(os.cpu_count()),
                        "load_average_1m": f"{load_before:.2f} -> {os.getloadavg()[0]:.2f}"},
    }


def print_table(result: dict[str, Any]) -> None:
    month, env = result["month"], result["environment"]
    print("Readings benchmark - SQLite file (WAL), one transaction per file, excursion detection included")
    print(f"  file           {result['rows']:>11,} readings of {result['sensors']} sensors ({result['csv_mb']} MB CSV, "
          f"generated in {result['generate_s']} s)")
    print(f"    run_import   {result['import_s']:>11} s   {result['rows_per_s']:>9,} rows/s   "
          f"(CPU {result['import_cpu_s']} s: {result['rows_per_cpu_s']:,} rows per CPU second; "
          f"start_import: {result['stage_s']} s)")
    print(f"    detected     {result['excursions']} excursions, {result['lots_held']} lots held, "
          f"{result['instances_started']} deviation assessments started")
    print(f"  storage        {result['bytes_per_reading']} bytes per reading (database file growth)")
    print(f"  one month      {month['readings']:,} readings of one sensor, medians of 7, wall (CPU) ms:")
    print(f"    read         {month['read_ms']['wall']:>8} ({month['read_ms']['cpu']})")
    print(f"    chart        {month['chart_ms']['wall']:>8} ({month['chart_ms']['cpu']})   read + {month['columns']} "
          "min/max columns")
    print(f"    sensor page  {month['page_ms']['wall']:>8} ({month['page_ms']['cpu']})   GET with the SVG chart")
    print(f"  peak RSS       {result['peak_rss_mb']} MB")
    print(f"\nPython {env['python']}, SQLite {env['sqlite']}, {env['machine']}, {env['cpus']} CPUs, "
          f"load {env['load_average_1m']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="readings in the file (default 1M)")
    parser.add_argument("--sensors", type=int, default=10, help="sensors, one cold room each (default 10)")
    parser.add_argument("--quick", action="store_true", help=f"a fast smoke: {QUICK_ROWS:,} readings")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = QUICK_ROWS
    if args.sensors < 1 or args.rows < args.sensors * 24 * 60:
        parser.error("need at least one sensor and a day of readings (1,440) per sensor")
    return args


def main(argv: list[str] | None = None) -> int:
    return bench_main(parse_args, run, print_table, argv)


if __name__ == "__main__":
    sys.exit(main())
