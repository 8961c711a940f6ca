"""Command-line entry points (`flask ...`): deploy, demo data, tokens, audit verification, timers, outbox."""
from __future__ import annotations

import csv
import os
import sys
from datetime import datetime
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from flask_babel import force_locale
from flask_babel import gettext as _

from app.exceptions import QualiflowError


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"--now must be an ISO 8601 time such as 2026-11-23T09:00:00+00:00, not {value!r}")
    if moment.tzinfo is None:
        _fail("--now needs a time zone, e.g. 2026-11-23T09:00:00+00:00")
    return moment


processes_cli = AppGroup("processes", help="Deploy and list BPMN procedures.")
users_cli = AppGroup("users", help="Manage users and API tokens.")
audit_cli = AppGroup("audit", help="Check the audit trail.")
timers_cli = AppGroup("timers", help="Fire due BPMN timers.")
outbox_cli = AppGroup("outbox", help="Send queued e-mail, or send failed e-mail again.")
demo_cli = AppGroup("demo", help="Demo users and data.")
scheduler_cli = AppGroup("scheduler", help="Run the timer and outbox scheduler.")
lots_cli = AppGroup("lots", help="Import lot data and apply the expiry rule.")
instances_cli = AppGroup("instances", help="Look after running procedure instances.")
holidays_cli = AppGroup("holidays", help="Holiday calendars (holidays and make-up working days) per jurisdiction.")
evidence_cli = AppGroup("evidence", help="Export and check evidence packages.")
queue_cli = AppGroup("queue", help="Run background jobs (lot imports, the outbox) from the job queue.")
backup_cli = AppGroup("backup", help="Back up, check and restore the database and the audit checkpoint files.")


def _terminal_locale() -> str:
    """The command line speaks the terminal's language (LANGUAGE, LC_ALL, LC_MESSAGES, LANG): Chinese or English."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        if os.environ.get(name):
            return "zh_CN" if os.environ[name].lower().startswith("zh") else "en"
    return "en"


@processes_cli.command("deploy")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--note", default="", help="Change note recorded with new versions.")
@click.option("--replace", is_flag=True,
              help="Confirm that a diagram replaces the different procedure that already has its process id.")
@click.option("--initial-release", "release", default=None, metavar="REASON",
              help="Initial release at installation: a procedure with no approved version yet is released at once "
                   "by the system, with this reason (audited). Versions of procedures already in effect stay "
                   "pending until QA approves them.")
def deploy_command(paths: tuple[Path, ...], note: str, replace: bool, release: str | None) -> None:
    """Deploy a .bpmn file with the .dmn files it uses (PATHS: x.bpmn [y.dmn ...]), or every .bpmn file of a
    directory with the directory's .dmn files, as versions pending QA approval. Unchanged files are skipped."""
    from app.services.workflow import processes
    with force_locale(_terminal_locale()):
        diagrams = [path for path in paths if path.suffix == ".bpmn"]
        decisions = {path.name: path.read_bytes() for path in paths if path.suffix == ".dmn"}
        directory = len(paths) == 1 and paths[0].is_dir()
        if not directory and (len(diagrams) != 1 or len(diagrams) + len(decisions) != len(paths)):
            _fail(_("give one .bpmn file and the .dmn files it uses, or one directory"))
        try:
            if directory:
                results = processes.deploy_directory(paths[0], None, note, replace=replace, release=release)
            else:
                results = [processes.deploy_file(diagrams[0].read_bytes(), diagrams[0].name, None, note,
                                                 decisions=decisions or None, replace=replace, release=release)]
        except QualiflowError as err:
            problems = getattr(err, "problems", [])
            for problem in problems:
                click.echo(f"  {problem.severity}: {problem}", err=True)
            _fail(err.message)
    for result in results:
        state = "deployed as" if result.created else "unchanged,"
        status = {"approved": "effective, released at installation" if result.created else "approved",
                  "pending": "pending QA approval"}.get(result.version.status, result.version.status)
        click.echo(f"{result.version.definition.key}: {state} version {result.version.version} ({status})")


@processes_cli.command("list")
def list_command() -> None:
    """List processes and their versions."""
    from app.services.workflow import processes
    for definition in processes.list_definitions():
        versions = ", ".join(f"v{v.version}" + ("" if v.status == "approved" else f" ({v.status})")
                             for v in definition.versions)
        click.echo(f"{definition.key}\t{definition.name}\t{versions}")


@users_cli.command("token")
@click.argument("username")
@click.option("--days", type=int, default=None,
              help="Days until the token expires, 1 to QUALIFLOW_API_TOKEN_DAYS (the default).")
@click.option("--name", default="", help="What the token is for, shown on the API tokens page.")
def token_command(username: str, days: int | None, name: str) -> None:
    """Print a new API token for USERNAME (only its hash is stored); list and revoke tokens on the API tokens page
    or with GET/DELETE /api/v1/tokens."""
    from app.services import users
    try:
        click.echo(users.issue_token(username, name=name, days=days))
    except QualiflowError as err:
        _fail(err.message)


@audit_cli.command("verify")
def verify_command() -> None:
    """Recompute the hash chain against the signed checkpoints, re-hash every document and check every
    signature against its audit event; exit 1 when anything was tampered with."""
    from app.services.evidence import audit_checkpoints
    from app.services.evidence import verification as evidence
    try:
        report, checkpoints = audit_checkpoints.verify_trail()
    except QualiflowError as err:
        _fail(err.message)
    problems = [] if report.ok else [f"audit trail broken at row {report.broken_id}: {report.problem} "
                                     f"({report.checked} rows before it OK)"]
    problems += evidence.record_problems()
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    if problems:
        sys.exit(1)
    anchored = (f"matches {len(checkpoints)} checkpoint(s), the last at row {checkpoints[-1].last_id}"
                if checkpoints else "no checkpoint yet (write one with `flask audit checkpoint`)")
    click.echo(f"OK: {report.checked} audit events, chain intact, {anchored}; documents, signatures, completed "
               "steps and stock match.")


@audit_cli.command("checkpoint")
def checkpoint_command() -> None:
    """Verify the rows appended since the last checkpoint and sign the chain's head into a checkpoint file."""
    from app.services.evidence import audit_checkpoints
    try:
        checkpoint = audit_checkpoints.write_checkpoint()
    except QualiflowError as err:
        _fail(err.message)
    if checkpoint is None:
        click.echo("Nothing appended since the last checkpoint; none written.")
    else:
        click.echo(f"Checkpoint written: row {checkpoint.last_id}, hash {checkpoint.head_hash}.")


@timers_cli.command("tick")
@click.option("--now", "now_text", help="Pretend it is this time (ISO 8601 with zone); default: now.")
def tick_command(now_text: str | None) -> None:
    """Fire every timer due now (for cron or tests)."""
    from app.services.workflow import timers
    report = timers.tick(_parse_now(now_text))
    click.echo(f"{report.fired} instance(s) advanced by timers.")
    for instance_id in report.failed:  # each in incident; the others fired regardless
        click.echo(f"instance {instance_id}: the timer step failed; see its incident.", err=True)


@instances_cli.command("check")
def check_instances_command() -> None:
    """Find running instances that nothing can move on (stalled) and put each in incident; exit 1 if any."""
    from app.services.workflow import instances
    checked, stalled = instances.check_running()
    for item in stalled:
        click.echo(f"instance {item.instance_id} ({item.process_key}, {item.title!r}): stalled at "
                   f"{item.element_id or '-'}", err=True)
    click.echo(f"Checked {checked} running instance(s): {len(stalled)} stalled.")
    if stalled:
        sys.exit(1)


@outbox_cli.command("send")
@click.option("--now", "now_text", help="Pretend it is this time (ISO 8601 with zone).")
def send_command(now_text: str | None) -> None:
    """Send queued e-mail that is due."""
    from app.services.workflow import notifications
    report = notifications.send_due(_parse_now(now_text))
    click.echo(f"sent {report.sent}, will retry {report.retried}, failed {report.failed}")


@outbox_cli.command("retry")
@click.option("--id", "ids", type=int, multiple=True, help="A failed or queued message to send again (repeatable).")
@click.option("--all-failed", is_flag=True, help="Every failed message.")
def retry_command(ids: tuple[int, ...], all_failed: bool) -> None:
    """Queue failed (or waiting) messages again: the sender sends them on its next pass (or `flask outbox send`)."""
    from app.services.workflow import notifications
    if bool(ids) == all_failed:
        _fail("Give --id N (one or more) or --all-failed.")
    try:
        queued = notifications.resend(list(ids), all_failed=all_failed)
    except QualiflowError as err:
        _fail(err.message)
    click.echo(f"{len(queued)} message(s) queued again" + (f": {', '.join(map(str, queued))}" if queued else "."))


@demo_cli.command("load")
def demo_command() -> None:
    """Create demo users and groups and deploy the shipped processes (idempotent)."""
    from app.services import demo
    try:
        summary = demo.load_demo(current_app.config["PROCESSES_DIR"])
    except QualiflowError as err:
        _fail(err.message)
    click.echo(summary)


@scheduler_cli.command("run")
def scheduler_command() -> None:
    """Run timers and the outbox sender in this process until interrupted."""
    from app.scheduler import run_forever
    run_forever(current_app._get_current_object())


@lots_cli.command("import")
@click.argument("kind")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--user", "username", default="admin", show_default=True,
              help="The user the import is recorded as (audit trail, CAPAs opened by failed inspections).")
def import_command(kind: str, path: Path, username: str) -> None:
    """Import a CSV or XLSX file of KIND (all rows or none); KIND is one of the master-data kinds."""
    from app.services import users
    from app.services.lots import imports
    try:
        actor = users.get_by_username(username)
        if not actor.active:
            _fail(f"the account {username!r} is disabled")
        job = imports.start_import(kind, path.name, path.read_bytes(), actor)
        with click.progressbar(length=max(imports.count_rows(imports.stored_file(job)), 1),
                               label=f"Importing {path.name}", file=sys.stderr) as bar:
            done = [0]

            def advance(read: int, _expected: int) -> None:
                bar.update(read - done[0])
                done[0] = read
            job = imports.run_import(job.id, progress=advance)
    except QualiflowError as err:
        _fail(err.message)
    if job.status != "succeeded":
        for error in job.errors:
            click.echo(f"  line {error['line']}, {error['column'] or '-'}: {error['reason']}", err=True)
        _fail(f"{job.message} ({path.name})")
    click.echo(f"Imported {job.imported_rows} {kind} row(s) from {path.name}.")


@lots_cli.command("expire")
@click.option("--now", "now_text", help="Pretend it is this time (ISO 8601 with zone); default: now.")
def expire_command(now_text: str | None) -> None:
    """Lock every lot whose expiry date has passed (status expired, audited)."""
    from app.services.lots import lots
    click.echo(f"{lots.expire_lots(_parse_now(now_text))} lot(s) expired.")


@lots_cli.command("kinds")
def kinds_command() -> None:
    """List the importable kinds and their columns (* = required)."""
    from app.services.lots import import_rules
    for kind in import_rules.KINDS.values():
        columns = ", ".join(f"{c.name}{'*' if c.required else ''}" for c in kind.columns)
        click.echo(f"{kind.name}: {columns}")


@holidays_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--user", "username", default="admin", show_default=True,
              help="The administrator the change is recorded as in the audit trail.")
def holidays_import_command(path: Path, username: str) -> None:
    """Set the days of a CSV file with columns jurisdiction, date, kind (holiday or workday), name (all or none)."""
    from app.services import users
    from app.services.workflow import calendars
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            count = calendars.import_days(users.get_by_username(username), list(csv.DictReader(file)))
    except QualiflowError as err:
        _fail(f"{err.message} {getattr(err, 'errors', '')}".strip())
    click.echo(f"Set {count} calendar day(s) from {path.name}.")


@holidays_cli.command("list")
@click.option("--jurisdiction", help="Only this calendar: CN, US, EU ...")
@click.option("--year", type=int, help="Only this year.")
def holidays_list_command(jurisdiction: str | None, year: int | None) -> None:
    """List the holidays and make-up working days."""
    from app.services.workflow import calendars
    for day in calendars.list_days(jurisdiction, year):
        click.echo(f"{day.jurisdiction}\t{day.day.isoformat()}\t{day.kind}\t{day.name}")


@evidence_cli.command("verify")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def evidence_verify_command(path: Path) -> None:
    """Check an evidence package offline: every file against the manifest and the manifest's signature, every
    audit row's hash, every signature's documents; exit 1 naming each altered, missing or unexpected file."""
    from app.services.evidence import packages
    report = packages.verify_package(path.read_bytes())
    for problem in report.problems:
        click.echo(f"Error: {problem}", err=True)
    if not report.ok:
        sys.exit(1)
    click.echo(f"OK: {report.files} files match the signed manifest; {report.audit_rows} audit rows and "
               f"{report.signatures} signatures check.")
    if report.pdf and report.pdf != "produced":
        click.echo(f"Note: the package's PDF reports were {report.pdf} (its HTML reports are complete).")


@evidence_cli.command("package")
@click.argument("instance_id", type=int)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the zip.")
def evidence_package_command(instance_id: int, output: Path) -> None:
    """Write the evidence package of one instance, as the auditor's workspace downloads it (in the terminal's
    language)."""
    from app.web import audit_workspace
    try:
        with current_app.test_request_context(), force_locale(_terminal_locale()):
            content = audit_workspace.instance_package(instance_id)
    except QualiflowError as err:
        _fail(err.message)
    output.write_bytes(content)
    click.echo(f"Wrote {output} ({len(content)} bytes).")


@queue_cli.command("worker")
@click.option("--threads", default=4, show_default=True, help="Jobs run at once by this process.")
def queue_worker_command(threads: int) -> None:
    """Run jobs from the queue QUALIFLOW_QUEUE_URL names until stopped (SIGTERM or Ctrl-C lets running jobs finish;
    a job cut short is delivered again to another worker)."""
    from app.jobs import jobs, run_worker
    queue = jobs()
    if queue.embedded:
        _fail("QUALIFLOW_QUEUE_URL is not set: the web process runs the jobs itself, there is no queue to work on.")
    run_worker(queue, threads)


@backup_cli.command("create")
@click.argument("path", type=click.Path(path_type=Path))
def backup_create_command(path: Path) -> None:
    """Write a backup folder at PATH (new or empty) while the server runs: the database (SQLite's online backup, or
    pg_dump --format=custom), the audit checkpoint files, and a signed manifest with every file's SHA-256."""
    from app.services import backups
    try:
        report = backups.create_backup(path)
    except QualiflowError as err:
        _fail(err.message)
    click.echo(f"Backup written to {report.path}: {report.dialect} database (schema {report.revision or 'unknown'}), "
               f"{report.audit_last_id} audit events, {report.checkpoints} checkpoint file(s); {report.files} files, "
               f"{report.size} bytes.")


@backup_cli.command("verify")
@click.argument("path", type=click.Path(path_type=Path))
def backup_verify_command(path: Path) -> None:
    """Check a backup folder without the database: the manifest's signature and every file's SHA-256; exit 1 naming
    each altered, missing or unexpected file."""
    from app.services import backups
    report = backups.verify_backup(path)
    for problem in report.problems:
        click.echo(f"Error: {problem}", err=True)
    if not report.ok:
        sys.exit(1)
    click.echo(f"OK: {report.files} files match the signed manifest ({report.dialect} database made "
               f"{report.created_at}, {report.audit_last_id} audit events, {report.checkpoints} checkpoint file(s)).")


@backup_cli.command("restore")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database that holds data (and move its checkpoints aside).")
def backup_restore_command(path: Path, force: bool) -> None:
    """Restore a verified backup into the database DATABASE_URL names and AUDIT_CHECKPOINT_DIR, then verify the
    audit trail as `flask audit verify` does. Stop the web, scheduler and queue worker processes first."""
    from app.services import backups
    from app.services.evidence import audit_checkpoints
    from app.services.evidence import verification as evidence
    try:
        report = backups.restore_backup(path, force=force)
    except QualiflowError as err:
        _fail(err.message)
    click.echo(f"Restored {report.path} ({report.dialect} database made {report.created_at}, {report.audit_last_id} "
               f"audit events, {report.checkpoints} checkpoint file(s)).")
    try:
        trail, checkpoints = audit_checkpoints.verify_trail()
    except QualiflowError as err:
        _fail(f"the restored audit trail does not verify: {err.message}")
    problems = [] if trail.ok else [f"audit trail broken at row {trail.broken_id}: {trail.problem}"]
    problems += evidence.record_problems()
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"OK: {trail.checked} audit events, chain intact, matches {len(checkpoints)} checkpoint(s); documents, "
               "signatures, completed steps and stock match.")
    note = backups.upgrade_note(report.revision)
    if note:
        click.echo(note)


suppliers_cli = AppGroup("suppliers", help="Supplier quality scores.")


@suppliers_cli.command("score")
@click.option("--now", "now_text", help="Pretend it is this time (ISO 8601 with zone); default: now.")
def score_suppliers_command(now_text: str | None) -> None:
    """Score every supplier now (as the scheduled job does) and start the reviews the scores call for."""
    from app.services.procedures import supplier_quality
    outcomes = supplier_quality.evaluate_all(_parse_now(now_text))
    started = [o.review.instance_id for o in outcomes if o.started]
    click.echo(f"{len(outcomes)} supplier(s) scored; {len(started)} review(s) started"
               + (f": {', '.join(f'#{i}' for i in started)}" if started else "") + ".")
    for outcome in outcomes:
        if outcome.note == "no_starter":
            click.echo(f"supplier {outcome.evaluation.supplier_id}: no one to start the review in the name of "
                       "(set QUALIFLOW_SUPPLIER_REVIEW_STARTER)", err=True)


def register(app: Flask) -> None:
    for group in (processes_cli, users_cli, audit_cli, timers_cli, outbox_cli, demo_cli, scheduler_cli, lots_cli,
                  instances_cli, holidays_cli, evidence_cli, queue_cli, backup_cli):
        app.cli.add_command(group)
    app.cli.add_command(suppliers_cli)
