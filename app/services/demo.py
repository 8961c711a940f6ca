"""Demo users, groups and procedures so a fresh install has something to click (idempotent)."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from app.extensions import db
from app.models import ProcessInstance, ProductLot, Shipment
from app.models.types import utcnow
from app.services.lots import sterilization
from app.services.lots.demo_lots import demo_batches_to_release, load_demo_lots
from app.services.lots.lots import expire_lots
from app.services.procedures import recalls
from app.services.users import ensure_group, ensure_user, get_by_username
from app.services.workflow import calendars, plant_time, processes
from app.services.workflow.instances import start_instance
from app.services.workflow.transaction import atomic

DEMO_PASSWORD = "qualiflow-demo"

GROUPS = [
    ("qa", "Quality assurance", "质量保证"),
    ("production", "Production", "生产"),
    ("qa_management", "Head of QA", "质量负责人"),
    ("regulatory", "Regulatory affairs", "法规事务"),
    ("responsible_person", "Responsible person (management representative)", "管理者代表"),
]

USERS = [
    # username, printed name, roles, groups, language
    ("admin", "Ada Admin", ["admin"], ["qa", "production", "qa_management", "regulatory", "responsible_person"], "en"),
    ("owner", "Oliver Owner", ["process_owner", "staff"], ["qa"], "en"),
    ("qa", "Li Na", ["staff"], ["qa", "regulatory"], "zh-CN"),
    ("prod", "Wang Wei", ["staff"], ["production"], "zh-CN"),
    ("head", "Helen Head", ["staff"], ["qa_management", "qa", "regulatory"], "en"),
    ("releaser", "Rita Releaser", ["qa_releaser", "staff"], ["qa_management", "qa"], "en"),
    ("rp", "Zhang Min", ["staff"], ["responsible_person"], "zh-CN"),
    ("auditor", "Arthur Auditor", ["auditor"], [], "en"),
]


def seed_people() -> int:
    """Create missing demo groups and users in one transaction; return how many users were created."""
    with atomic():
        for name, label, label_zh in GROUPS:
            ensure_group(name, label, label_zh)
        created = 0
        for username, full_name, roles, groups, language in USERS:
            _, new = ensure_user(username, full_name=full_name, password=DEMO_PASSWORD,
                                 email=f"{username}@qualiflow.example", roles=roles, groups=groups,
                                 language=language)
            created += new
    return created


# Public holidays ("holiday") and make-up working days on weekends ("workday", 调休) for 2026: the State
# Council's notice for CN, the federal holidays (as observed) for US.
CALENDARS_2026 = [
    *(("CN", f"2026-01-0{d}", "holiday", "元旦 New Year's Day") for d in (1, 2, 3)),
    ("CN", "2026-01-04", "workday", "元旦调休 make-up working day"),
    *(("CN", f"2026-02-{d}", "holiday", "春节 Spring Festival") for d in range(15, 24)),
    ("CN", "2026-02-14", "workday", "春节调休 make-up working day"),
    ("CN", "2026-02-28", "workday", "春节调休 make-up working day"),
    *(("CN", f"2026-04-0{d}", "holiday", "清明节 Qingming Festival") for d in (4, 5, 6)),
    *(("CN", f"2026-05-0{d}", "holiday", "劳动节 Labour Day") for d in range(1, 6)),
    ("CN", "2026-05-09", "workday", "劳动节调休 make-up working day"),
    *(("CN", f"2026-06-{d}", "holiday", "端午节 Dragon Boat Festival") for d in (19, 20, 21)),
    *(("CN", f"2026-09-{d}", "holiday", "中秋节 Mid-Autumn Festival") for d in (25, 26, 27)),
    ("CN", "2026-09-20", "workday", "国庆节调休 make-up working day"),
    *(("CN", f"2026-10-0{d}", "holiday", "国庆节 National Day") for d in range(1, 8)),
    ("CN", "2026-10-10", "workday", "国庆节调休 make-up working day"),
    ("US", "2026-01-01", "holiday", "New Year's Day"),
    ("US", "2026-01-19", "holiday", "Birthday of Martin Luther King, Jr."),
    ("US", "2026-02-16", "holiday", "Washington's Birthday"),
    ("US", "2026-05-25", "holiday", "Memorial Day"),
    ("US", "2026-06-19", "holiday", "Juneteenth National Independence Day"),
    ("US", "2026-07-03", "holiday", "Independence Day (observed)"),
    ("US", "2026-09-07", "holiday", "Labor Day"),
    ("US", "2026-10-12", "holiday", "Columbus Day"),
    ("US", "2026-11-11", "holiday", "Veterans Day"),
    ("US", "2026-11-26", "holiday", "Thanksgiving Day"),
    ("US", "2026-12-25", "holiday", "Christmas Day"),
]


def seed_calendars() -> int:
    """Load the 2026 CN and US holiday calendars unless a jurisdiction already has days; return how many were set."""
    present = set(calendars.jurisdictions())
    rows = [{"jurisdiction": code, "date": day, "kind": kind, "name": name}
            for code, day, kind, name in CALENDARS_2026 if code not in present]
    return calendars.import_days(None, rows) if rows else 0


def _demo_capa(lot_id: int | None) -> dict:
    """The demo CAPA's problem description, prefilled from a complaint about a shipped lot."""
    lot = db.session.get(ProductLot, lot_id) if lot_id is not None else None
    return {"title": "CAPA: burr on catheter hub (demo)", "source": "complaint", "source_reference": "CMP-2026-118",
            "severity": "major", "reported_on": plant_time.local_date(utcnow(), plant_time.zone()).isoformat(),
            "lot_numbers": lot.lot_number if lot else "",
            "description": "A hospital reported a burr on an infusion catheter hub that cut a nurse's glove."}


INSTALLATION_RELEASE = "Initial release of the shipped procedures at installation (demo load)"


def load_demo(processes_dir: Path) -> str:
    """Create missing demo groups and users, deploy changed processes and start one CAPA if none exists."""
    created = seed_people()
    seed_calendars()
    # The shipped procedures' first versions are released at installation; a changed shipped procedure deployed on
    # an installation that already uses it waits for QA's approval like any other new version.
    deployed = [r for r in processes.deploy_directory(processes_dir, None, "demo load", release=INSTALLATION_RELEASE)
                if r.created]
    lot_rows = load_demo_lots(get_by_username("admin"), utcnow())
    if lot_rows and (batch_ids := demo_batches_to_release(utcnow().date())):
        # QA released the older sterilization batches, signing with the demo password as the releaser would.
        sterilization.decide_many(batch_ids, "release", "Demo: cycle, BI and load reviewed",
                                  get_by_username("releaser"), DEMO_PASSWORD)
    expire_lots()  # the demo plant has a few lots past their expiry: lock them as the hourly job would
    started = 0
    if not db.session.scalar(select(func.count(ProcessInstance.id))):
        qa = get_by_username("qa")
        shipped_lot = db.session.scalar(select(Shipment.product_lot_id).order_by(Shipment.id))
        start_instance("capa", qa, _demo_capa(shipped_lot), title="CAPA: burr on catheter hub (demo)")
        if shipped_lot is not None:  # a recall waiting at its trigger, with the lot filled in
            recalls.start_recall(qa, lot_id=shipped_lot)
        started = 1 + (shipped_lot is not None)
    return (f"demo: {created} user(s) created, {len(deployed)} process version(s) deployed, "
            f"{started} instance(s) started, {lot_rows} lot data row(s) loaded")
