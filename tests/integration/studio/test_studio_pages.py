"""The studio's upload of files from other modelers: a .bpmn with its .dmn files deployed from the studio's page,
refusals shown on the page in the user's language, and the version page naming its decision tables and callees."""
from __future__ import annotations

import io

import pytest

from app.services.workflow import processes
from tests.conftest import login
from tests.integration.diagrams import CALLER, CAPA_RISK_DMN, DIFFERENT_CAPA, RENAMED_PROCESS, callee, capa_variant


def upload(client, bpmn: bytes, filename: str, dmn: dict[str, bytes] | None = None, lang: str = "en", **form):
    data = {"change_note": "from Camunda Modeler", "bpmn": (io.BytesIO(bpmn), filename), **form}
    if dmn:
        data["dmn"] = [(io.BytesIO(raw), name) for name, raw in dmn.items()]
    return client.post(f"/studio/deploy?lang={lang}", data=data, content_type="multipart/form-data")


def test_a_bpmn_with_its_dmn_file_deploys_and_its_page_lists_the_decision_table(client, seeded):
    login(client, "owner")
    copy = capa_variant(RENAMED_PROCESS).encode()

    response = upload(client, copy, "capa_copy.bpmn", {"capa_risk.dmn": CAPA_RISK_DMN})

    assert response.status_code == 302 and response.location.endswith("/processes/capa_copy/1")
    page = client.get(response.location).get_data(as_text=True)
    assert "capa_risk.dmn" in page and "capa_copy deployed as version 1." in page


@pytest.mark.parametrize("lang, message", [
    ("en", "calls process checklist, which is not deployed"),
    ("zh_CN", "调用流程 checklist，但该流程尚未部署"),
])
def test_a_missing_callee_is_shown_on_the_page_in_the_users_language(client, seeded, lang, message):
    login(client, "owner")
    response = upload(client, CALLER, "inspection_round.bpmn", lang=lang)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_the_version_page_links_the_pinned_callee_version(client, seeded):
    login(client, "owner")
    assert upload(client, callee("v1"), "checklist.bpmn").status_code == 302
    assert upload(client, CALLER, "inspection_round.bpmn").status_code == 302
    page = client.get("/processes/inspection_round/1").get_data(as_text=True)
    assert 'href="/processes/checklist/1"' in page and "Processes it calls" in page


def test_a_different_procedure_under_a_taken_process_id_needs_the_checkbox(client, seeded):
    login(client, "owner")
    refused = upload(client, DIFFERENT_CAPA, "capa.bpmn", lang="zh_CN")
    assert refused.status_code == 409
    assert "确认它替换 capa" in refused.get_data(as_text=True)
    assert [v.version for v in processes.get_definition("capa").versions] == [1]

    confirmed = upload(client, DIFFERENT_CAPA, "capa.bpmn", replace="on")
    assert confirmed.status_code == 302 and confirmed.location.endswith("/processes/capa/2")


@pytest.mark.parametrize("bpmn_name, dmn, note", [
    ("capa.txt", None, "x"),
    ("capa.bpmn", {"risk.xlsx": b"x"}, "x"),
    ("capa.bpmn", None, " "),
])
def test_wrong_files_or_no_change_note_are_refused_on_the_page(client, seeded, bpmn_name, dmn, note):
    login(client, "owner")
    response = upload(client, DIFFERENT_CAPA, bpmn_name, dmn, change_note=note)
    assert response.status_code in (400, 422)
    assert 'data-testid="upload-error"' in response.get_data(as_text=True)


def test_only_process_owners_upload(client, seeded):
    login(client, "qa")
    assert upload(client, DIFFERENT_CAPA, "capa.bpmn", replace="on").status_code == 403
