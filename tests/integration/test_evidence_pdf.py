"""The PDF copy of an evidence package's report (WeasyPrint): what an auditor files and prints. It opens (pypdf),
holds the instance, every signature (printed name and meaning) and every document hash in the page language, is
covered by the signed manifest like every file, and where WeasyPrint cannot run the package is made without it and
says so."""
from __future__ import annotations

import io
import json
import logging
import re
import sys
import zipfile

import pytest
from pypdf import PdfReader

from app.extensions import db
from app.models import Document, ProcessInstance, ProductLot, Signature
from app.services.evidence import packages
from tests.conftest import login
from tests.integration.recalls.conftest import plant  # noqa: F401 - the recall's lots and consignees
from tests.integration.services.scenarios import close_capa
from tests.integration.test_audit_workspace import _export, _rezip, chinese_capa  # noqa: F401
from tests.integration.test_evidence_exports import queue, recall  # noqa: F401 - the in-process queue, a recall

A4 = (595, 842)  # points, rounded


def _download(client, instance_id: int, lang: str) -> bytes:
    response = client.get(f"/audit/instances/{instance_id}/package.zip?lang={lang}")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    return response.data


def _pdf_text(pdf: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(pdf))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def test_package_holds_the_report_as_pdf_covered_by_the_manifest(client, runner, seeded, user, tmp_path):
    instance_id = close_capa(user).id
    instance = db.session.get(ProcessInstance, instance_id)
    signatures = list(db.session.scalars(db.select(Signature).where(Signature.instance_id == instance_id)))
    hashes = list(db.session.scalars(db.select(Document.sha256).where(Document.instance_id == instance_id)))
    assert signatures and hashes
    login(client, "auditor")
    assert 'data-testid="no-pdf"' not in client.get(f"/audit/instances/{instance_id}?lang=en").get_data(as_text=True)
    data = _download(client, instance_id, "en")
    path = f"instances/{instance_id}/report.pdf"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        pdf = archive.read(path)
        manifest = json.loads(archive.read("manifest.json"))
        html = archive.read(f"instances/{instance_id}/report.html").decode()
        index = archive.read("index.html").decode()
    assert manifest["pdf"] == "produced" and manifest["package_id"].startswith("EP-")
    assert path in {item["path"] for item in manifest["files"]}
    assert 'href="report.pdf"' in html and f'href="{path}"' in index

    reader, text = _pdf_text(pdf)
    assert tuple(round(float(v)) for v in reader.pages[0].mediabox[2:]) == A4
    flat = "".join(text.split())  # a hash may wrap at the line's end
    assert instance.title in text
    for signature in signatures:
        assert signature.printed_name in text
    assert "Approved" in text  # the signature's meaning, as the HTML report names it
    for digest in hashes:
        assert digest in flat
    # Every page's footer: the package, the instance and "Page N of M".
    assert text.count(manifest["package_id"]) == len(reader.pages)
    assert f"Page 1 of {len(reader.pages)}" in text and f"#{instance_id}" in text

    package = tmp_path / "package.zip"
    package.write_bytes(data)
    verified = runner.invoke(args=["evidence", "verify", str(package)])
    assert verified.exit_code == 0 and "Note:" not in verified.output, verified.output
    altered = tmp_path / "altered.zip"
    # An incremental update appended to a PDF (how a PDF is edited in place) changes its bytes.
    altered.write_bytes(_rezip(data, lambda name, content: content + b"\n1 0 obj << >> endobj\n%%EOF\n"
                               if name == path else content))
    result = runner.invoke(args=["evidence", "verify", str(altered)])
    assert result.exit_code == 1 and f"altered file: {path}" in result.output


def test_chinese_package_prints_the_chinese_report(client, chinese_capa):  # noqa: F811
    login(client, "auditor")
    with zipfile.ZipFile(io.BytesIO(_download(client, chinese_capa, "zh_CN"))) as archive:
        html = archive.read(f"instances/{chinese_capa}/report.html").decode()
        reader, text = _pdf_text(archive.read(f"instances/{chinese_capa}/report.pdf"))
    name = re.search(r"<th scope=\"row\">[^<]+</th><td>([^<·]+) ·", html)[1].strip()
    assert name == "CAPA（纠正和预防措施）", name  # the procedure's name in Chinese, as the HTML report gives it
    assert name in text and "针头毛刺" in text and "医院反馈输液器针头有毛刺" in text
    assert f"第 1 页，共 {len(reader.pages)} 页" in text and "Signed gates" not in text


MISSING_PANGO = "cannot load library 'libpango-1.0-0': libpango-1.0-0: cannot open shared object file"


class _NoPango:
    """An import hook failing `import weasyprint` the way it fails where Pango is not installed (cffi's OSError)."""

    def find_spec(self, name, path=None, target=None):
        if name == "weasyprint" or name.startswith("weasyprint."):
            raise OSError(MISSING_PANGO)
        return None


@pytest.fixture
def no_weasyprint(monkeypatch):
    for name in [name for name in sys.modules if name == "weasyprint" or name.startswith("weasyprint.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoPango(), *sys.meta_path])


def test_without_weasyprint_the_package_is_made_and_says_why(client, runner, recall, queue, no_weasyprint,  # noqa: F811
                                                             caplog, tmp_path):
    login(client, "auditor")
    for lang, words in (("en", "PDF reports cannot be made on this server"), ("zh_CN", "本服务器无法生成 PDF 报告")):
        page = client.get(f"/audit/instances/{recall}?lang={lang}").get_data(as_text=True)
        notice = page.split('data-testid="no-pdf"', 1)[1].split("</div>", 1)[0]
        assert words in notice and "WeasyPrint cannot run on this server (OSError: cannot load library" in notice

    with caplog.at_level(logging.WARNING, logger="app.web.audit_workspace"):
        data = _download(client, recall, "en")
    assert any("holds no PDF report" in r.getMessage() and "WeasyPrint cannot run" in r.getMessage()
               for r in caplog.records)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
        index = archive.read("index.html").decode()
    assert f"instances/{recall}/report.html" in names and not any(name.endswith(".pdf") for name in names)
    assert manifest["pdf"] == f"not produced: WeasyPrint cannot run on this server (OSError: {MISSING_PANGO})"
    assert 'data-testid="no-pdf"' in index
    package = tmp_path / "package.zip"
    package.write_bytes(data)
    verified = runner.invoke(args=["evidence", "verify", str(package)])
    assert verified.exit_code == 0 and "PDF reports were not produced: WeasyPrint" in verified.output

    # A lot's package, a background job: done, and its page says (in the page language) why no PDF is in it.
    lot = db.session.scalar(db.select(ProductLot).where(ProductLot.lot_number == "L1"))
    data = _export(client, f"/audit/lots/product/{lot.id}/package?lang=zh_CN")
    assert packages.verify_package(data).ok
    assert packages.verify_package(data).pdf.startswith("not produced: WeasyPrint")
    job = client.get("/audit/exports/?lang=zh_CN").get_data(as_text=True)
    job_url = re.search(r'href="(/audit/exports/\d+)"', job)[1]
    page = client.get(f"{job_url}?lang=zh_CN").get_data(as_text=True)
    notice = page.split('data-testid="export-no-pdf"', 1)[1].split("</div>", 1)[0]
    assert "此证据包不含 PDF 报告" in notice and "WeasyPrint cannot run" in notice
    assert "This package holds no PDF report" in client.get(f"{job_url}?lang=en").get_data(as_text=True)
