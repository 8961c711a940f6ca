"""The studio's edit page after a save: the heading names the draft and a link compares the draft with the version
it started from (the browser updates both after the first save: tests/e2e/test_studio_browser.py); the process list
shows that it is loading."""
from __future__ import annotations

import html
import re

from app.services import users
from app.services.studio import studio
from app.services.workflow import processes
from tests.conftest import ROOT, login


def test_a_draft_page_names_the_draft_and_links_the_diff_with_its_base(client, seeded):
    login(client, "owner")
    page = client.get("/studio/processes/capa/1?lang=en").get_data(as_text=True)
    link = re.search(r'<a [^>]*data-testid="compare-with-base"[^>]*>', page).group(0)
    assert " hidden" in link and "draft=__id__" in html.unescape(link)
    assert 'data-draft-title="CAPA (corrective and preventive action): draft #__id__"' in page

    base = processes.get_version("capa", 1)
    draft = studio.create_draft(users.get_by_username("owner"), (ROOT / "processes" / "capa.bpmn").read_bytes(),
                                base.id)
    page = client.get(f"/studio/drafts/{draft.id}?lang=en").get_data(as_text=True)
    assert f">CAPA (corrective and preventive action): draft #{draft.id}</span>" in page
    link = re.search(r'<a [^>]*data-testid="compare-with-base"[^>]*>([^<]*)</a>', page)
    assert f'href="/studio/diff?key=capa&amp;draft={draft.id}&amp;from=1"' in link.group(0)
    assert link.group(1) == "Compare with its base (v1)"
    assert client.get(html.unescape(re.search(r'\shref="([^"]+)"', link.group(0)).group(1))).status_code == 200
    zh = client.get(f"/studio/drafts/{draft.id}?lang=zh_CN").get_data(as_text=True)
    assert "与其基础版本（v1）比较" in zh


def test_the_process_list_says_it_is_loading(client, seeded):
    login(client, "owner")
    page = client.get("/studio/?lang=en").get_data(as_text=True)
    loading = page[page.index("data-process-list"):]
    assert 'aria-busy="true"' in loading[:80] and 'role="status"' in loading and "spinner-border" in loading
