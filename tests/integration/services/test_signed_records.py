"""A CAPA's QA approval is issued into the CAPA report: a new revision with the signature in it, bound to its bytes."""
from __future__ import annotations

import hashlib
from io import BytesIO

import docx

from app.extensions import db
from app.models import Document, Signature
from tests.conftest import T0
from tests.integration.services.scenarios import close_capa


def test_capa_report_is_issued_with_the_approval_in_it(app, user, runner):
    app.config["PLANT_TIME_ZONE"] = "Asia/Shanghai"
    instance = close_capa(user, T0)
    signature = db.session.scalar(db.select(Signature).where(Signature.instance_id == instance.id))
    reports = db.session.scalars(db.select(Document).where(Document.instance_id == instance.id,
                                                           Document.kind == "capa_report")
                                 .order_by(Document.revision)).all()
    assert [report.revision for report in reports] == [1, 2]
    rendered, issued = reports
    signed = next(item for item in signature.documents if item["kind"] == "capa_report")
    assert signed["id"] == issued.id and signed["sha256"] == hashlib.sha256(issued.content).hexdigest()
    assert issued.context["signed_revision"]["of_document"] == rendered.id

    parsed = docx.Document(BytesIO(issued.content))
    rows = [[cell.text for cell in row.cells] for table in parsed.tables for row in table.rows]
    assert issued.language == "zh-CN"  # the CAPA's language: its report's labels are Chinese, its times Shanghai's
    header = rows.index(["职责", "签名人姓名", "含义", "签署时间"])
    assert rows[header + 1] == ["质量负责人", "Helen Head", "批准", "2026-11-23 17:00 CST"]
    assert not any("签名清单" in p.text for p in parsed.paragraphs)
    assert parsed.core_properties.last_modified_by == "Helen Head"

    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
