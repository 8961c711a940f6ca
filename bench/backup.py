#!/usr/bin/env python3
"""Backup and restore benchmark: `flask backup create`, `verify` and `restore` (with the audit verification the
restore runs) on a database of --instances instances (default 20,000, each with a 3.5 KB saved engine state and two
tasks, seeded as bench/inbox.py seeds) and --events audit events (default 20,000, chained), on SQLite and, when it
answers, PostgreSQL.

    python bench/backup.py [--instances N] [--events N] [--postgres-only | --sqlite-only] [--pg-url URL] [--fresh]

The seeded database is kept for the next run (SQLite: a file under /tmp/qualiflow-bench-scale; PostgreSQL: the
database qualiflow_bench_backup created next to --pg-url's). Each run writes a backup into a temporary folder,
verifies it, restores it into an empty database (SQLite: a new file; PostgreSQL: qualiflow_bench_backup_restore) and
checks that the restored trail verifies against the checkpoint copied with it. Prints seconds per step and the
backup's size; exits 1 when a step fails.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.scale import BenchError, _postgres_database, bench_database, postgres_answers, progress  # noqa: E402

SEED_VERSION = 1


def seed(instances: int, events: int) -> None:
    from app.extensions import db
    from app.services.evidence import audit
    from app.services.workflow.transaction import atomic
    from bench.inbox import seed as seed_instances

    seed_instances(instances)
    chunk = 2_000
    for start in range(0, events, chunk):
        with atomic():
            for number in range(start, min(start + chunk, events)):
                audit.record(None, "task.completed", "task", number, actor_name="bench",
                             new={"n": number, "note": "x" * 100})
        progress(f"  {min(start + chunk, events):,} / {events:,} audit events")
    db.session.remove()


def _run(app, restore_uri: str, checkpoints: Path) -> dict:
    from app import create_app
    from app.extensions import db
    from app.services import backups
    from app.services.evidence import audit_checkpoints

    folder = Path(tempfile.mkdtemp(prefix="qualiflow-bench-backup."))
    figures: dict = {}
    try:
        with app.app_context():
            audit_checkpoints.write_checkpoint()
            started = time.perf_counter()
            report = backups.create_backup(folder / "backup")
            figures["create_s"] = time.perf_counter() - started
            figures["size_mb"] = report.size / 1e6
            started = time.perf_counter()
            verified = backups.verify_backup(folder / "backup")
            figures["verify_s"] = time.perf_counter() - started
            if not verified.ok:
                raise BenchError(f"the backup does not verify: {verified.problems}")
            db.session.remove()
        other = create_app("testing", {"SQLALCHEMY_DATABASE_URI": restore_uri, "SMTP_PORT": 1,
                                       "AUDIT_CHECKPOINT_DIR": folder / "restored-checkpoints",
                                       "SECRET_KEY": app.config["SECRET_KEY"]})
        with other.app_context():
            started = time.perf_counter()
            backups.restore_backup(folder / "backup", force=True)
            figures["restore_s"] = time.perf_counter() - started
            started = time.perf_counter()
            trail, found = audit_checkpoints.verify_trail()
            figures["audit_verify_s"] = time.perf_counter() - started
            if not trail.ok or not found:
                raise BenchError(f"the restored trail does not verify: {trail.problem}")
            figures["audit_rows"] = trail.checked
            db.session.remove()
            db.engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return figures


def run(backend: str, args: argparse.Namespace) -> dict:
    marker = f"backup v{SEED_VERSION} instances={args.instances} events={args.events}"
    name = "qualiflow_bench_backup"
    checkpoints = Path(tempfile.mkdtemp(prefix="qualiflow-bench-checkpoints."))
    config = {"RATELIMIT_ENABLED": False, "AUDIT_CHECKPOINT_DIR": checkpoints}
    try:
        with bench_database(backend, name, marker, lambda: seed(args.instances, args.events), fresh=args.fresh,
                            pg_url=args.pg_url, config=config) as app:
            if backend == "sqlite":
                target = Path(tempfile.mkdtemp(prefix="qualiflow-bench-restore.")) / "restored.sqlite"
                restore_uri = f"sqlite:///{target}"
            else:
                restore_uri = _postgres_database(args.pg_url, f"{name}_restore", fresh=True)
            figures = _run(app, restore_uri, checkpoints)
            if backend == "sqlite":
                shutil.rmtree(target.parent, ignore_errors=True)
    finally:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return {"backend": backend, **figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="a database on the server to create the benchmark's databases from")
    parser.add_argument("--fresh", action="store_true", help="seed again")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--sqlite-only", action="store_true")
    only.add_argument("--postgres-only", action="store_true")
    args = parser.parse_args(argv)
    backends = [] if args.postgres_only else ["sqlite"]
    if not args.sqlite_only:
        if postgres_answers(args.pg_url) and shutil.which("pg_dump"):
            backends.append("postgresql")
        else:
            progress("PostgreSQL (or pg_dump) not available: skipped")
    print(f"{'backend':<11} {'instances':>9} {'events':>8} {'size MB':>8} {'create s':>9} {'verify s':>9} "
          f"{'restore s':>10} {'audit verify s':>15}")
    try:
        for backend in backends:
            result = run(backend, args)
            print(f"{backend:<11} {args.instances:>9,} {result['audit_rows']:>8,} {result['size_mb']:>8.1f} "
                  f"{result['create_s']:>9.2f} {result['verify_s']:>9.2f} {result['restore_s']:>10.2f} "
                  f"{result['audit_verify_s']:>15.2f}")
    except BenchError as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
