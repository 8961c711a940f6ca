"""Refusals that carry values (a number, a name, a status) read in the page's or the request's language: the
services give them as parameterised messages, so Chinese readers get Chinese with the same values."""
from __future__ import annotations

import pytest
from flask_babel import refresh

from app.exceptions import Conflict
from app.services.evidence import packages
from app.services.workflow import instances
from tests.conftest import login


def _token(username: str) -> dict[str, str]:
    from app.services import users
    return {"Authorization": f"Bearer {users.issue_token(username)}"}


@pytest.mark.parametrize("path, chinese, english", [
    ("/audit/lots/product/99999", "没有成品批次 99999。", "No product lot 99999."),
    ("/audit/lots/material/99999", "没有物料批次 99999。", "No material lot 99999."),
    ("/audit/exports/99999", "没有导出 99999。", "No export 99999."),
    ("/audit/instances/99999/package.zip", "没有编号为 99999 的实例。", "No instance 99999."),
    ("/instances/documents/99999", "没有文件 99999。", "No document 99999."),
    ("/studio/drafts/99999", "没有草稿 99999。", "No draft 99999."),
    ("/processes/nope/history", "没有流程 'nope'。", "No process 'nope'."),
    ("/processes/capa/9/review", "流程 'capa' 没有第 9 版。", "Process 'capa' has no version 9."),
    ("/tasks/99999", "没有任务 99999。", "No task 99999."),
])
def test_a_page_refusal_with_values_reads_in_the_page_language(client, seeded, path, chinese, english):
    login(client, "admin")
    zh = client.get(f"{path}?lang=zh_CN")
    assert zh.status_code == 404
    assert chinese in zh.get_data(as_text=True).replace("&#39;", "'")
    en = client.get(f"{path}?lang=en")
    assert english in en.get_data(as_text=True).replace("&#39;", "'")


def test_an_api_refusal_with_values_reads_in_the_requests_language(client, seeded):
    headers = _token("head")
    answer = client.get("/api/v1/processes/capa/versions/9?lang=zh_CN", headers=headers)
    assert answer.status_code == 404 and answer.get_json()["message"] == "流程 'capa' 没有第 9 版。"
    answer = client.get("/api/v1/processes/capa/versions/9", headers={**headers, "Accept-Language": "zh-CN"})
    assert answer.get_json()["message"] == "流程 'capa' 没有第 9 版。"
    answer = client.get("/api/v1/processes/capa/versions/9?lang=en", headers=headers)
    assert answer.get_json()["message"] == "Process 'capa' has no version 9."


def test_a_gate_without_its_evidence_names_what_is_missing_in_chinese(app, seeded, user):
    from app.services.evidence import signatures
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub")
    task = instance.tasks[0]
    task.evidence = "capa_report, recall_plan"
    with app.test_request_context("/?lang=zh_CN"):
        refresh()
        with pytest.raises(Conflict) as refused:
            signatures.gate_documents(task)
    assert refused.value.message == "此关口所需的证据尚未齐备：capa_report, recall_plan。"
    refresh()
    with pytest.raises(Conflict, match="This gate needs evidence that is not there yet: capa_report, recall_plan."):
        signatures.gate_documents(task)  # outside a request: English (the command line, the logs)


def test_a_package_too_large_says_so_with_its_figures(app):
    with app.test_request_context("/?lang=zh_CN"):
        refresh()
        with pytest.raises(Exception) as refused:
            packages.check_size(list(range(packages.MAX_INSTANCES + 5)))
        assert refused.value.message == f"该期间有 {packages.MAX_INSTANCES + 5} 个实例；一个证据包最多容纳 " \
                                        f"{packages.MAX_INSTANCES} 个。请导出较短的期间。"
    refresh()


def test_release_check_details_with_values_read_in_chinese(client, seeded, user):
    """A lot's failed release checks that carry values (an inspection's date, the open CAPA, the expiry date) have
    their Chinese detail; the lot page shows it to Chinese readers and the English one to the others."""
    from datetime import date

    from app.extensions import db
    from app.models import Inspection, Product, ProductLot
    from app.services.lots import lots
    from app.services.lots.lots import INSPECTION_CAPA_TITLE

    product = Product(name="Catheter", gtin=None)
    lot = ProductLot(product=product, lot_number="LZ9", quantity=10, status="quarantine", batch_record_complete=False,
                     labels_checked=False, expiry_on=date(2026, 11, 1))
    db.session.add_all([product, lot, Inspection(product_lot=lot, stage="final", result="fail",
                                                 inspected_on=date(2026, 10, 20))])
    db.session.commit()
    title = INSPECTION_CAPA_TITLE.format(lot="LZ9")
    capa = instances.start_instance("capa", user("qa"), title=title)
    lots.link_lots(capa.id, [lot.id], "subject")
    db.session.commit()

    checks = {c["code"]: (c["detail"], c["detail_zh"]) for c in lots.release_checks(lot, date(2026, 11, 23))
              .as_dict()["failed"]}
    assert checks == {
        "batch_record_complete": ("batch record is not complete", "批记录不完整"),
        "final_inspection_passed": ("final inspection failed on 2026-10-20", "成品检验于 2026-10-20 不合格"),
        "labels_udi": ("product has no UDI-DI (GTIN)", "产品没有 UDI-DI（GTIN）"),
        "no_open_capa_or_deviation": (f"#{capa.id} {title}", f"#{capa.id} CAPA：批次 LZ9 成品检验不合格"),
        "not_expired": ("expired on 2026-11-01", "已于 2026-11-01 过期"),
    }
    login(client, "qa")
    page = client.get(f"/lots/product-lots/{lot.id}?lang=zh_CN").get_data(as_text=True)
    checks_shown = page.split('data-testid="release-checks"', 1)[1].split("</section>", 1)[0]
    assert "成品检验于 2026-10-20 不合格" in checks_shown and "CAPA：批次 LZ9 成品检验不合格" in checks_shown
    assert "inspection failed on" not in checks_shown
    page = client.get(f"/lots/product-lots/{lot.id}?lang=en").get_data(as_text=True)
    assert "final inspection failed on 2026-10-20" in page.split('data-testid="release-checks"', 1)[1]


def test_a_lot_status_refusal_names_the_lot_and_both_statuses_in_chinese(client, seeded):
    from app.extensions import db
    from app.models import Product, ProductLot

    product = Product(name="Catheter")
    lot = ProductLot(product=product, lot_number="LS1", quantity=5, status="scrapped")
    db.session.add_all([product, lot])
    db.session.commit()
    answer = client.post(f"/api/v1/product-lots/{lot.id}/status?lang=zh_CN", headers=_token("admin"),
                         json={"status": "quarantine", "reason": "try"})
    assert answer.status_code == 409, answer.get_json()
    assert answer.get_json()["message"] == "批次 LS1 的状态为“已报废”，不能变为“待验”。"
