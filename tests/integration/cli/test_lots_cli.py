"""`flask lots import|expire|kinds`: the same rules as the pages, with line-level errors and exit codes."""
from __future__ import annotations

from app.extensions import db
from app.models import AuditEvent, ProductLot
from app.services.lots import imports
from tests.conftest import T0

LOTS = "gtin,lot_number,quantity,manufactured_on,expiry_on\n"


def _product(user):
    imports.create_record("products", {"gtin": "06901234567892", "name": "Catheter"}, user("admin"), T0)


def _lots() -> set[str]:
    return set(db.session.scalars(db.select(ProductLot.lot_number)))


def test_import_writes_every_row_and_reports_the_count(runner, seeded, user, tmp_path):
    _product(user)
    path = tmp_path / "lots.csv"
    path.write_text(LOTS + "06901234567892,L1,10,2026-01-01,2028-01-01\n06901234567892,L2,5,,\n")
    result = runner.invoke(args=["lots", "import", "product_lots", str(path), "--user", "qa"])
    assert result.exit_code == 0, result.output
    assert "Imported 2 product_lots row(s)" in result.output
    assert _lots() == {"L1", "L2"}
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "import.completed"))
    assert event.actor_name == "Li Na"


def test_a_bad_row_fails_the_whole_import_with_line_and_column(runner, seeded, user, tmp_path):
    _product(user)
    path = tmp_path / "lots.csv"
    path.write_text(LOTS + "06901234567892,L1,10,2026-01-01,2028-01-01\n06901234567892,L2,-5,,\n"
                    "06901234567892,L3,5,2026-01-01,2025-01-01\n")
    result = runner.invoke(args=["lots", "import", "product_lots", str(path)])
    assert result.exit_code == 1
    assert "line 3, quantity: must not be negative" in result.output
    assert "line 4, expiry_on: expiry_on is before manufactured_on" in result.output
    assert _lots() == set()


def test_unknown_kind_and_user_are_refused(runner, seeded, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a\n1\n")
    assert "Unknown kind 'widgets'" in runner.invoke(args=["lots", "import", "widgets", str(path)]).output
    result = runner.invoke(args=["lots", "import", "products", str(path), "--user", "nobody"])
    assert result.exit_code == 1 and "No user named 'nobody'" in result.output


def test_expire_locks_lots_past_their_expiry(runner, seeded, user):
    _product(user)
    for number, expiry in (("OLD", "2026-11-01"), ("NEW", "2027-11-01")):
        imports.create_record("product_lots", {"gtin": "06901234567892", "lot_number": number, "quantity": 1,
                                               "expiry_on": expiry, "status": "released"}, user("admin"), T0)
    result = runner.invoke(args=["lots", "expire", "--now", "2026-11-23T09:00:00+00:00"])
    assert result.exit_code == 0 and "1 lot(s) expired." in result.output
    statuses = dict(db.session.execute(db.select(ProductLot.lot_number, ProductLot.status)).all())
    assert statuses == {"OLD": "expired", "NEW": "released"}


def test_kinds_lists_columns_with_required_marks(runner, app):
    output = runner.invoke(args=["lots", "kinds"]).output
    assert "product_lots: gtin*, lot_number*, quantity*" in output


def test_demo_load_fills_the_lot_pages_once(runner, app):
    from app.models import Customer, GenealogyEdge, MaterialLot, Shipment
    from app.services.evidence import audit
    from app.services.lots import trace
    first = runner.invoke(args=["demo", "load"])
    assert first.exit_code == 0 and "lot data row(s) loaded" in first.output
    lots = db.session.scalar(db.select(db.func.count(ProductLot.id)))
    assert lots == 200
    provinces = set(db.session.scalars(db.select(Customer.region).where(Customer.kind == "hospital")))
    assert len(provinces) >= 5
    onward = db.session.scalar(db.select(db.func.count(Shipment.id)).where(Shipment.from_customer_id.is_not(None)))
    assert onward > 0
    impossible = db.session.scalar(db.select(db.func.count(GenealogyEdge.id))
                                   .join(ProductLot, ProductLot.id == GenealogyEdge.product_lot_id)
                                   .join(MaterialLot, MaterialLot.id == GenealogyEdge.material_lot_id)
                                   .where(MaterialLot.received_on > ProductLot.manufactured_on))
    assert impossible == 0  # no material lot went into a product lot made before it came in
    report = trace.trace_report("ML-PP-202500")  # the first resin lot went into syringes and infusion sets
    assert len(report.forward.product_lots) > 1 and report.consignees
    assert audit.verify().ok
    second = runner.invoke(args=["demo", "load"])
    assert "0 lot data row(s) loaded" in second.output
    assert db.session.scalar(db.select(db.func.count(ProductLot.id))) == lots
