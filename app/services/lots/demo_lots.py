"""Demo lot data: products, suppliers, material and product lots with genealogy, inspections, stock,
serials, distributors and hospitals across provinces, and shipments - loaded through the import rules."""
from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta

from biip.checksums import gs1_standard_check_digit
from sqlalchemy import func, select

from app.extensions import db
from app.models import Product, Supplier, User
from app.services.lots import import_rules, lots, sterilization
from app.services.workflow.transaction import atomic

SEED = 20261123

# name, model, specification, GTIN without its check digit, class, sterile, shelf life in days
PRODUCTS = [
    ("一次性使用无菌注射器 Sterile syringe", "SY-5", "5 ml, Luer lock", "0690123456001", "II", True, 1095),
    ("一次性使用输液器 Infusion set", "IS-20", "20 drops/ml, 1.5 m", "0690123456002", "II", True, 1095),
    ("支架输送系统 Stent delivery catheter", "DC-140", "140 cm", "0690123456004", "III", True, 730),
    ("冠状动脉药物洗脱支架 Coronary stent", "CS-3018", "3.0 x 18 mm", "0690123456003", "III", True, 730),
    ("血糖仪 Blood glucose meter", "BG-1", "with 10 strips", "0690123456005", "II", False, 1825),
]
SUPPLIERS = [
    ("SUP-PP", "宁波聚丙烯材料 Ningbo PP Resin", "approved"),
    ("SUP-RUB", "无锡医用橡胶 Wuxi Medical Rubber", "approved"),
    ("SUP-TUBE", "常州医用导管 Changzhou Tubing", "conditional"),
    ("SUP-COCR", "Heraeus CoCr Alloy", "approved"),
    ("SUP-DRUG", "上海药物涂层 Shanghai Drug Coating", "approved"),
    ("SUP-PCB", "深圳电子 Shenzhen Electronics", "suspended"),
]
# material, supplier, used by products (model)
MATERIALS = [
    ("Polypropylene resin", "SUP-PP", ("SY-5", "IS-20")),
    ("Rubber plunger stopper", "SUP-RUB", ("SY-5",)),
    ("PVC tubing", "SUP-TUBE", ("IS-20", "DC-140")),
    ("CoCr alloy tube", "SUP-COCR", ("CS-3018",)),
    ("Sirolimus coating", "SUP-DRUG", ("CS-3018",)),
    ("Glucose sensor PCB", "SUP-PCB", ("BG-1",)),
]
PROVINCES = ["Zhejiang", "Jiangsu", "Guangdong", "Beijing", "Shanghai", "Sichuan", "Hubei", "Shandong"]


def _gtin(stem: str) -> str:
    """Complete a GTIN-14 stem with its GS1 check digit."""
    body = stem.rjust(13, "0")
    return body + str(gs1_standard_check_digit(body))


def _rows(records: list[dict]) -> Iterator[tuple[int, dict]]:
    return ((line, record) for line, record in enumerate(records, start=2))


def _plan(today: date) -> dict[str, list[dict]]:
    """Lay out the whole demo plant deterministically relative to today."""
    rng = random.Random(SEED)
    plan: dict[str, list[dict]] = {kind: [] for kind in import_rules.KINDS}
    plan["products"] = [{"gtin": _gtin(stem), "name": name, "model": model, "specification": spec,
                         "registration_no": f"国械注准2024{3 if cls == 'III' else 2}{i:02d}0{i}",
                         "registration_expiry": (today + timedelta(days=900 + 60 * i)).isoformat(),
                         "device_class": cls, "sterile": "yes" if sterile else "no"}
                        for i, (name, model, spec, stem, cls, sterile, _) in enumerate(PRODUCTS, start=1)]
    plan["suppliers"] = [{"code": code, "name": name, "status": "approved", "contact_name": f"QA {code[4:]}",
                          "email": f"quality@{code[4:].lower()}-supplier.example",
                          "language": "en" if code == "SUP-COCR" else "zh-CN"} for code, name, _ in SUPPLIERS]
    gtins = {model: _gtin(stem) for _, model, _, stem, *_ in PRODUCTS}
    materials: dict[str, list[tuple[str, str, date]]] = {}
    for material, supplier, models in MATERIALS:
        for n in range(7):
            number = f"ML-{supplier[4:]}-{2025 + n // 4}{n:02d}"
            received = today - timedelta(days=800 - 90 * n)  # the first lots precede the oldest product lots
            plan["material_lots"].append({"supplier_code": supplier, "material": material, "lot_number": number,
                                          "received_on": received.isoformat(),
                                          "expiry_on": (received + timedelta(days=1460)).isoformat(),
                                          "status": "released"})
            plan["inspections"].append({"stage": "incoming", "material": material, "material_lot": number,
                                        "result": "pass", "inspected_on": received.isoformat(),
                                        "inspector": "Zhang Min", "results": "CoA checked, sampling AQL 1.0 passed"})
            for model in models:
                materials.setdefault(model, []).append((material, number, received))
    distributors, hospitals = [], []
    for i, province in enumerate(PROVINCES, start=1):
        code = f"D{i:02d}"
        distributors.append(code)
        plan["customers"].append({"code": code, "name": f"{province} Medical Supply Co.", "kind": "distributor",
                                  "region": province, "country": "CN", "contact": f"Manager {province}",
                                  "email": f"qa@{province.lower()}-medsupply.example"})
        for j in range(1, 4):
            hospital = f"H{i:02d}{j}"
            hospitals.append((hospital, code))
            plan["customers"].append({"code": hospital, "name": f"{province} People's Hospital No. {j}",
                                      "kind": "hospital", "region": province, "country": "CN",
                                      "contact": f"Equipment dept. {j}", "parent_code": code,
                                      "email": f"equipment{j}@{province.lower()}-hospital.example"})
    for code, name, country in (("EX-US1", "Midwest Surgical Supply", "US"), ("EX-DE1", "MedHandel GmbH", "DE")):
        distributors.append(code)
        plan["customers"].append({"code": code, "name": name, "kind": "distributor", "region": "", "country": country,
                                  "contact": "Regulatory desk", "email": f"recalls@{code.lower()}.example"})
    lot_number = 0
    loads: dict[str, tuple[date, list[str]]] = {}  # EO batch -> (made on, its lots)
    for _, model, _, _, _, sterile, shelf_life in PRODUCTS:
        count = 20 if model == "DC-140" else 45
        for n in range(count):
            lot_number += 1
            made = today - timedelta(days=700 - 15 * n - rng.randint(0, 5))
            if model in ("CS-3018", "DC-140"):  # stents are short-lived: some lots expire soon or already did
                made = today - timedelta(days=760 - 14 * n)
            number = f"{model.split('-')[0]}{made:%y%m%d}{n:02d}"
            recent = (today - made).days < 45
            status = "quarantine" if recent else ("hold" if n % 17 == 5 else "released")
            lot = {"gtin": gtins[model], "lot_number": number, "quantity": rng.choice((500, 1000, 2000, 5000))
                   if model != "CS-3018" else rng.choice((100, 200)),
                   "manufactured_on": made.isoformat(), "expiry_on": (made + timedelta(days=shelf_life)).isoformat(),
                   "sterilization_batch": f"EO{made:%y%m%d}" if sterile else None, "status": status,
                   "batch_record_complete": "yes" if not recent or n % 2 else "no",
                   "labels_checked": "yes" if not recent else "no"}
            plan["product_lots"].append({k: v for k, v in lot.items() if v is not None})
            if sterile:
                loads.setdefault(lot["sterilization_batch"], (made, []))[1].append(number)
            # only material lots already received when the lot was made (genealogy refuses the others)
            received_by_then = [m for m in materials[model] if m[2] <= made]
            for material, material_lot, _ in rng.sample(received_by_then, k=min(2, len(received_by_then))):
                plan["genealogy"].append({"product_lot": number, "material": material, "material_lot": material_lot,
                                          "quantity": round(lot["quantity"] * rng.uniform(0.01, 0.05), 2)})
            if model == "CS-3018" and plan["product_lots"]:  # each stent lot uses a delivery-catheter lot
                catheters = [row["lot_number"] for row in plan["product_lots"] if row["lot_number"].startswith("DC")]
                if catheters:
                    plan["genealogy"].append({"product_lot": number, "component_lot": catheters[n % len(catheters)],
                                              "quantity": lot["quantity"]})
            if not recent:
                plan["inspections"].append({"stage": "final", "product_lot": number, "result": "pass",
                                            "inspected_on": (made + timedelta(days=7)).isoformat(),
                                            "inspector": "Chen Jing",
                                            "results": "Sterility, leak and label checks passed"})
            if model == "CS-3018":
                plan["serials"] += [{"product_lot": number, "serial": f"{number[-6:]}{s:04d}"} for s in range(1, 6)]
            shipped = 0
            if status == "released":
                for _ in range(rng.randint(1, 3)):
                    quantity = max(lot["quantity"] // 10, 1) * rng.randint(1, 2)
                    if shipped + quantity > lot["quantity"]:
                        break
                    distributor = rng.choice(distributors)
                    day = made + timedelta(days=20 + rng.randint(0, 60))
                    if day > today:
                        break
                    shipped += quantity
                    plan["shipments"].append({"product_lot": number, "customer_code": distributor,
                                              "quantity": quantity, "shipped_on": day.isoformat(),
                                              "document_no": f"DN{day:%y%m%d}{lot_number:03d}"})
                    onward = [h for h, parent in hospitals if parent == distributor]
                    if onward:
                        hospital = rng.choice(onward)
                        plan["shipments"].append({"product_lot": number, "customer_code": hospital,
                                                  "from_customer_code": distributor, "quantity": max(quantity // 2, 1),
                                                  "shipped_on": (day + timedelta(days=5)).isoformat(),
                                                  "document_no": f"{distributor}-{day:%y%m%d}{lot_number:03d}"})
            if lot["quantity"] > shipped:
                plan["stock"].append({"product_lot": number, "location": "Quarantine area" if status == "quarantine"
                                      else "Finished goods WH-1", "quantity": lot["quantity"] - shipped})
    # The stock's two locations belong to the finished-goods warehouse (stock and FEFO shipments: docs/stock.md).
    plan["warehouses"] = [{"code": "WH-1", "name": "成品仓库 Finished goods warehouse",
                           "address": "Hangzhou, Qiantang District, Medical Park 8"}]
    plan["locations"] = [{"code": "Finished goods WH-1", "warehouse": "WH-1", "name": "Released goods"},
                         {"code": "Quarantine area", "warehouse": "WH-1", "name": "Quarantine cage (待验区)"}]
    plan[sterilization.BATCH_KIND.name] = _sterilization_batches(loads, today)
    return plan


DEMO_BATCH_RELEASE_DAYS = 45  # batches processed before this many days ago are released at the demo load
DEMO_BI_DAYS = 10  # a biological indicator of a batch younger than this still incubates


def _sterilization_batches(loads: dict[str, tuple[date, list[str]]], today: date) -> list[dict]:
    """One EO cycle the day after each production day, within its validated limits (a random.Random of its own, so
    the rest of the plan stays as it was); the biological indicators of the last days still incubate."""
    rng = random.Random(SEED + 1)
    rows = []
    for number, (made, lot_numbers) in sorted(loads.items()):
        processed = made + timedelta(days=1)
        rows.append({"batch_number": number, "method": "eo", "processed_on": processed.isoformat(),
                     "sterilizer": f"EO chamber {1 + len(rows) % 2}",
                     "temperature_c": round(rng.uniform(50, 56), 1), "humidity_rh": round(rng.uniform(50, 70)),
                     "gas_mg_l": rng.choice((550, 600, 650)), "exposure_minutes": rng.choice((300, 360, 420)),
                     "bi_result": "pass" if (today - processed).days >= DEMO_BI_DAYS else "pending",
                     "load": "; ".join(lot_numbers)})
    return rows


def demo_batches_to_release(today: date) -> list[int]:
    """The demo's sterilization batches QA had released by now: those processed more than 45 days ago."""
    return sterilization.pending_batch_ids(today - timedelta(days=DEMO_BATCH_RELEASE_DAYS), "pass")


def load_demo_lots(actor: User, now: datetime) -> int:
    """Load the demo plant in one transaction when there are no products yet; return the rows written."""
    if db.session.scalar(select(func.count(Product.id))):
        return 0
    plan = _plan(now.date())
    order = ["products", "suppliers", "material_lots", "customers", "product_lots", sterilization.BATCH_KIND.name,
             "genealogy", "inspections", "serials", "warehouses", "locations", "stock", "shipments"]
    written = 0
    with atomic():
        for kind in order:
            state = import_rules.ImportState(db.session, actor, now, movement_kind="demo")
            import_rules.import_rows(import_rules.KINDS[kind], _rows(plan[kind]), state)
            written += state.written
        for code, _, status in SUPPLIERS:  # suppliers were approved while their lots came in
            if status != "approved":
                supplier = db.session.scalar(select(Supplier).where(Supplier.code == code))
                lots.set_supplier_status(supplier.id, status, "Demo: supplier audit finding", actor, now)
    return written
