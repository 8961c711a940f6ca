"""The zh-CN catalog: every message translated with its placeholders kept, and the UI switching language."""
from __future__ import annotations

import re
from collections import Counter

import pytest
from babel import Locale
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from babel.support import Translations

from tests.conftest import ROOT, login

TRANSLATIONS = ROOT / "app" / "translations"
# Babel reads "zh_CN" as zh_Hans_CN and gettext only looks in directories named after that (or "zh").
PO_FILE = TRANSLATIONS / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")

with PO_FILE.open("rb") as po:
    MESSAGES = [message for message in read_po(po) if message.id]


def test_catalog_covers_every_message_in_the_code():
    """Extract from the source now (as babel.cfg says), so a new untranslated string fails here."""
    keywords = {"_": None, "gettext": None, "lazy_gettext": None}
    found = extract_from_dir(ROOT / "app", [("**.py", "python"), ("templates/**.html", "jinja2")],
                             keywords=keywords)
    extracted = {message for _, _, message, _, _ in found if isinstance(message, str)}
    missing = extracted - {message.id for message in MESSAGES}
    assert not missing, f"untranslated (run pybabel extract/update): {sorted(missing)}"
    assert len(extracted) > 100  # the extraction itself works


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.id[:40])
def test_message_is_translated_with_its_placeholders(message):
    assert message.string.strip(), f"no translation for {message.id!r}"
    assert "fuzzy" not in message.flags
    assert Counter(PLACEHOLDER.findall(message.string)) == Counter(PLACEHOLDER.findall(message.id))


def test_babel_finds_the_catalog_for_zh_cn():
    assert PO_FILE.with_suffix(".mo").exists(), "compiled catalog missing: run `make translations`"
    catalog = Translations.load(str(TRANSLATIONS), [Locale.parse("zh_CN")])
    assert catalog.gettext("Inbox") == "待办"


@pytest.mark.parametrize(("lang", "shown", "hidden"), [("zh_CN", "待办", "Inbox"), ("en", "Inbox", "待办")])
def test_inbox_speaks_the_chosen_language(client, seeded, lang, shown, hidden):
    login(client, "head")
    page = client.get(f"/?lang={lang}").get_data(as_text=True)
    assert shown in page
    assert hidden not in page
