#!/usr/bin/env python3
"""Import benchmark: a million-row product-lot CSV through start_import + run_import, and a refused file.

    python bench/imports.py [--rows N] [--refused-rows N] [--quick] [--json] [--profile [SORT]]

The app is created as bench/engine.py does (bench_app: a fresh SQLite file in a temporary directory, WAL, the
schema, the audit trail's triggers, the demo users and groups); its instance folder, where uploads are stored,
is moved into the same temporary directory. Five products are imported first (the products kind). The lot file
is deterministic and streamed to a temporary file row by row: lot numbers B0000000.., one of the five GTINs in
turn, varying quantities, manufacture dates over a year and an expiry three years later, sterilization batches
of 500 lots, a status and two yes/no flags.

Timed: run_import on that file as admin, as `flask lots import` runs it (the file's bytes go through
start_import first; that step is timed apart). Then a refused run: a file of --refused-rows new lots (1% of
--rows by default) whose last row names a product that does not exist; the job must fail with exactly that one
error and the product-lot count must not change. Comparing rows/s shows what a refusal costs.

Peak RSS is the process's high-water mark (resource.getrusage), taken before the import and at the end.
Errors (a failed good import, a refusal that wrote rows or reported anything but the one bad row) exit 1.
"""
from __future__ import annotations

import argparse
import cProfile
import csv
import os
import platform
import pstats
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/imports.py` puts bench/ first on the path, not the project

from bench.engine import BenchError, bench_app, bench_main  # noqa: E402 - needs the project on the path

QUICK_ROWS = 20_000
GTIN_BODIES = ("0690123456001", "0690123456002", "0690123456003", "0690123456004", "0690123456005")
UNKNOWN_GTIN_BODY = "0690123456999"
STATUSES = ("quarantine", "released", "released", "released", "hold")
FIRST_MADE = date(2025, 1, 1)
HEADER = ["gtin", "lot_number", "quantity", "manufactured_on", "expiry_on", "sterilization_batch", "status",
          "batch_record_complete", "labels_checked"]


def with_check_digit(body: str) -> str:
    from biip.checksums import gs1_standard_check_digit

    return body + str(gs1_standard_check_digit(body))


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, in MB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def write_lot_file(path: Path, rows: int, prefix: str, gtins: list[str], bad_last: bool = False) -> None:
    """Stream a deterministic product-lot CSV of `rows` data rows; with bad_last the last names an unknown product."""
    unknown = with_check_digit(UNKNOWN_GTIN_BODY)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for i in range(rows):
            made = FIRST_MADE + timedelta(days=i % 365)
            gtin = unknown if bad_last and i == rows - 1 else gtins[i % len(gtins)]
            writer.writerow([gtin, f"{prefix}{i:07d}", (i * 7919) % 5000, made.isoformat(),
                             (made + timedelta(days=1095)).isoformat(), f"ST-{i // 500:05d}",
                             STATUSES[i % len(STATUSES)], "yes" if i % 3 else "no", "yes" if i % 2 else "no"])


def import_file(kind: str, path: Path, admin_id: int, profiler: cProfile.Profile | None = None) -> dict[str, Any]:
    """Stage a file as the CLI does and time run_import; return the job's outcome and the timings."""
    from app.extensions import db
    from app.models import User
    from app.services.lots import imports

    started = time.perf_counter()
    job = imports.start_import(kind, path.name, path.read_bytes(), db.session.get(User, admin_id))
    staged = time.perf_counter()
    rss_before = peak_rss_mb()
    if profiler:
        profiler.enable()
    job = imports.run_import(job.id)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - staged
    outcome = {"status": job.status, "imported_rows": job.imported_rows, "message": job.message,
               "errors": [(e["line"], e["column"], e["code"]) for e in job.errors],
               "stage_s": round(staged - started, 2), "import_s": seconds,
               "peak_rss_before_import_mb": rss_before}
    db.session.remove()
    return outcome


def product_lot_count() -> int:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import ProductLot

    count = db.session.scalar(select(func.count()).select_from(ProductLot))
    db.session.remove()
    return count


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Import the big file, then the refused one; check what each wrote; return the figures."""
    from app.services import users

    load_before = os.getloadavg()[0]
    gtins = [with_check_digit(body) for body in GTIN_BODIES]
    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="qualiflow-bench-imports-") as tmp:
        workdir = Path(tmp)
        with bench_app(workdir) as app:
            app.instance_path = str(workdir)  # uploads are staged under instance/imports: keep them here
            admin_id = users.get_by_username("admin").id
            products = workdir / "products.csv"
            products.write_text("gtin,name,sterile\n" + "".join(f"{g},Catheter {i},yes\n" for i, g in enumerate(gtins)))
            if import_file("products", products, admin_id)["status"] != "succeeded":
                raise BenchError("the products could not be imported")

            lots_file = workdir / "product_lots.csv"
            started = time.perf_counter()
            write_lot_file(lots_file, args.rows, "B", gtins)
            generated_s = time.perf_counter() - started
            size_mb = lots_file.stat().st_size / 1e6
            good = import_file("product_lots", lots_file, admin_id, profiler)
            lots_file.unlink()
            written = product_lot_count()
            if good["status"] != "succeeded" or written != args.rows:
                raise BenchError(f"the import ended {good['status']} with {written} of {args.rows} lots: "
                                 f"{good['message']} {good['errors'][:5]}")

            refused_file = workdir / "refused_lots.csv"
            write_lot_file(refused_file, args.refused_rows, "R", gtins, bad_last=True)
            refused = import_file("product_lots", refused_file, admin_id)
            expected = [(args.refused_rows + 1, "gtin", "unknown_product")]
            if refused["status"] != "failed" or refused["errors"] != expected:
                raise BenchError(f"the refused file ended {refused['status']} with {refused['errors'][:5]}, "
                                 f"expected {expected}")
            if product_lot_count() != written:
                raise BenchError("the refused import changed the product lots")
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).strip_dirs().sort_stats(args.profile).print_stats(30)
    return {
        "kind": "product_lots",
        "good": {"rows": args.rows, "csv_mb": round(size_mb, 1), "generate_s": round(generated_s, 2),
                 "stage_s": good["stage_s"], "import_s": round(good["import_s"], 2),
                 "rows_per_s": round(args.rows / good["import_s"]), "rows_written": written},
        "refused": {"rows": args.refused_rows, "bad_line": args.refused_rows + 1,
                    "import_s": round(refused["import_s"], 2),
                    "rows_per_s": round(args.refused_rows / refused["import_s"]), "rows_written": 0},
        "peak_rss_mb": {"before_lot_import": good["peak_rss_before_import_mb"], "end": peak_rss_mb()},
        "environment": {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
                        "machine": f"{platform.system()} {platform.machine()}", "cpus": str(os.cpu_count()),
                        "load_average_1m": f"{load_before:.2f} -> {os.getloadavg()[0]:.2f}"},
    }


def print_table(result: dict[str, Any]) -> None:
    """Print the result for people."""
    good, refused, rss, env = result["good"], result["refused"], result["peak_rss_mb"], result["environment"]
    print(f"Import benchmark - {result['kind']}, SQLite file (WAL), one transaction per file")
    print(f"  good file      {good['rows']:>11,} rows ({good['csv_mb']} MB CSV, generated in {good['generate_s']} s)")
    print(f"    run_import   {good['import_s']:>11} s   {good['rows_per_s']:>9,} rows/s   "
          f"{good['rows_written']:,} lots written   (start_import: {good['stage_s']} s)")
    print(f"  refused file   {refused['rows']:>11,} rows, the last (line {refused['bad_line']:,}) names an unknown "
          "product")
    print(f"    run_import   {refused['import_s']:>11} s   {refused['rows_per_s']:>9,} rows/s   nothing written")
    print(f"  peak RSS       {rss['end']} MB (before run_import of the good file: {rss['before_lot_import']} MB)")
    print(f"\nPython {env['python']}, SQLite {env['sqlite']}, {env['machine']}, {env['cpus']} CPUs, "
          f"load {env['load_average_1m']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="product lots in the good file (default 1M)")
    parser.add_argument("--refused-rows", type=int, help="rows of the refused file (default 1%% of --rows)")
    parser.add_argument("--quick", action="store_true", help=f"a fast smoke: {QUICK_ROWS:,} rows")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", metavar="SORT", nargs="?", const="cumulative",
                        help="cProfile the good run_import and print the top functions to stderr (sort key)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = QUICK_ROWS
    if args.refused_rows is None:
        args.refused_rows = max(args.rows // 100, 1)
    if args.rows < 1 or args.refused_rows < 1:
        parser.error("need --rows and --refused-rows >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    return bench_main(parse_args, run, print_table, argv)


if __name__ == "__main__":
    sys.exit(main())
