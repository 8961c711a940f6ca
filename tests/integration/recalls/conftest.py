"""A small plant for recall tests: two affected lots shipped to distributors and hospitals in CN and the US."""
from __future__ import annotations

from datetime import date

import pytest

from app.extensions import db
from app.models import Customer, GenealogyEdge, MaterialLot, Product, ProductLot, SerialNumber, Shipment, Supplier


@pytest.fixture
def plant(seeded):
    """L1, L2 share material lot M1 (L3 does not); L1 -> D1 (distributor) -> H1 onward, L2 -> H2 (no e-mail), US1."""
    supplier = Supplier(code="S1", name="Resin Co")
    product = Product(name="Infusion set", model="IS-20", gtin="06901234567892", registration_no="国械注准20263140001",
                      device_class="II", sterile=True)
    db.session.add_all([supplier, product])
    db.session.flush()
    material = MaterialLot(supplier=supplier, material="PVC resin", lot_number="M1")
    lots = {name: ProductLot(product=product, lot_number=name, quantity=500, status="released",
                             manufactured_on=date(2026, 6, 1), expiry_on=date(2029, 5, 31),
                             sterilization_batch=f"ST-{name}") for name in ("L1", "L2", "L3")}
    db.session.add_all([material, *lots.values()])
    db.session.flush()
    db.session.add_all(GenealogyEdge(product_lot_id=lots[name].id, material_lot_id=material.id, quantity=1)
                       for name in ("L1", "L2"))
    db.session.add_all(SerialNumber(serial=f"SN{n:04d}", product_lot_id=lots["L2"].id) for n in range(1, 11))
    customers = {
        "D1": Customer(code="D1", name="Jiangsu Medical Distribution", kind="distributor", region="Jiangsu",
                       contact="Chen Jie", email="d1@example.com"),
        "H1": Customer(code="H1", name="Suzhou City Hospital", kind="hospital", region="Jiangsu",
                       contact="Dr Wu", email="h1@example.com"),
        "H2": Customer(code="H2", name="Hangzhou Clinic", kind="hospital", region="Zhejiang", contact="Ms Lin"),
        "US1": Customer(code="US1", name="Boston Medical Supply", kind="distributor", region="Massachusetts",
                        country="US", contact="Pat Doe", email="us1@example.com"),
    }
    db.session.add_all(customers.values())
    db.session.flush()
    shipped = [("L1", "D1", None, 100), ("L1", "H1", "D1", 20), ("L2", "H2", None, 50), ("L2", "US1", None, 30),
               ("L3", "H1", None, 10)]
    db.session.add_all(Shipment(product_lot_id=lots[lot].id, customer_id=customers[to].id, quantity=qty,
                                from_customer_id=customers[via].id if via else None, shipped_on=date(2026, 7, 1),
                                document_no=f"DN-{lot}-{to}") for lot, to, via, qty in shipped)
    db.session.commit()
    return lots


# lot, consignee, shipped by (None: by us), quantity - 340 units left the plant; the rest are onward shipments
CHAIN = [("C1", "DA", None, 300), ("C1", "SD", "DA", 200), ("C1", "HA", "SD", 120), ("C1", "HB", "SD", 50),
         ("C1", "HC", "DA", 60), ("C1", "HD", None, 40)]


@pytest.fixture
def chain(seeded):
    """Lot C1 made from material lot MC: 300 to distributor DA, which passes 200 to sub-distributor SD (120 on to
    hospital HA, 50 to HB) and 60 to hospital HC; 40 straight to hospital HD. 340 units shipped in all."""
    supplier = Supplier(code="SC", name="Tube Co")
    product = Product(name="Catheter", model="CT-1", gtin="06901234567908", registration_no="国械注准20263140002",
                      device_class="II", sterile=True)
    material = MaterialLot(supplier=supplier, material="PVC tubing", lot_number="MC", received_on=date(2026, 5, 1))
    lot = ProductLot(product=product, lot_number="C1", quantity=400, status="released",
                     manufactured_on=date(2026, 6, 1), expiry_on=date(2029, 5, 31), sterilization_batch="ST-C1")
    db.session.add_all([supplier, product, material, lot])
    db.session.flush()
    db.session.add(GenealogyEdge(product_lot_id=lot.id, material_lot_id=material.id, quantity=1))
    customers = {code: Customer(code=code, name=name, kind=kind, region=region, contact="QA desk",
                                email=f"{code.lower()}@example.com")
                 for code, name, kind, region in [("DA", "Anhui Medical Distribution", "distributor", "Anhui"),
                                                  ("SD", "Hefei Sub-distribution", "distributor", "Anhui"),
                                                  ("HA", "Hefei First Hospital", "hospital", "Anhui"),
                                                  ("HB", "Hefei Second Hospital", "hospital", "Anhui"),
                                                  ("HC", "Wuhu Hospital", "hospital", "Anhui"),
                                                  ("HD", "Nanjing Drum Tower Hospital", "hospital", "Jiangsu")]}
    db.session.add_all(customers.values())
    db.session.flush()
    db.session.add_all(Shipment(product_lot_id=lot.id, customer_id=customers[to].id, quantity=quantity,
                                from_customer_id=customers[via].id if via else None, shipped_on=date(2026, 7, 1),
                                document_no=f"DN-{to}") for _, to, via, quantity in CHAIN)
    db.session.commit()
    return lot
