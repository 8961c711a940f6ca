"""Demo users, groups and procedures so a fresh install has something to click (idempotent)."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from app.extensions import db
from app.models import ProcessInstance, ProductLot, Shipment
from app.models.types import utcnow
from app.services import processes, recalls
from app.services.demo_lots import load_demo_lots
from app.services.instances import start_instance
from app.services.lots import expire_lots
from app.services.transaction import atomic
from app.services.users import ensure_group, ensure_user, get_by_username

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


def _demo_capa(lot_id: int | None) -> dict:
    """The demo CAPA's problem description, prefilled from a complaint about a shipped lot."""
    lot = db.session.get(ProductLot, lot_id) if lot_id is not None else None
    return {"title": "CAPA: burr on catheter hub (demo)", "source": "complaint", "source_reference": "CMP-2026-118",
            "severity": "major", "reported_on": utcnow().date().isoformat(),
            "lot_numbers": lot.lot_number if lot else "",
            "description": "A hospital reported a burr on an infusion catheter hub that cut a nurse's glove."}


def load_demo(processes_dir: Path) -> str:
    """Create missing demo groups and users, deploy changed processes and start one CAPA if none exists."""
    created = seed_people()
    deployed = [r for r in processes.deploy_directory(processes_dir, None, "demo load") if r.created]
    lot_rows = load_demo_lots(get_by_username("admin"), utcnow())
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
