"""The titles procedures give the instances they start: stored in English as they always were, shown in the page
language. A procedure registers each title it makes as an English and a Chinese format with the same fields
("Release of lot {lot}", "批次 {lot} 的放行"); a stored title that matches an English format reads in Chinese
with the same values. A title a user typed matches none and is shown as typed."""
from __future__ import annotations

import re
import string
from dataclasses import dataclass


@dataclass(frozen=True)
class TitleFormat:
    english: str
    chinese: str
    pattern: re.Pattern

    def format(self, **values: str) -> str:
        """The title to store (English)."""
        return self.english.format(**values)


_FORMATS: list[TitleFormat] = []


def register(english: str, chinese: str) -> TitleFormat:
    """Register a title format (once per format; registering it again returns the same one)."""
    for known in _FORMATS:
        if known.english == english:
            return known
    parts = []
    for literal, field, _, _ in string.Formatter().parse(english):
        parts.append(re.escape(literal))
        if field:
            parts.append(f"(?P<{field}>.+?)")
    found = TitleFormat(english, chinese, re.compile("".join(parts) + r"\Z", re.S))
    _FORMATS.append(found)
    return found


def localized(title: str | None, lang: str, procedure_names: dict[str, str] | None = None) -> str:
    """The title in the page language: Chinese when it was made from a registered format, or when it is a
    procedure's English name (the title of an instance started without one) that procedure_names (English name ->
    Chinese name) translates."""
    if not title or lang != "zh-CN":
        return title or ""
    for known in _FORMATS:
        matched = known.pattern.match(title)
        if matched:
            return known.chinese.format(**matched.groupdict())
    return (procedure_names or {}).get(title) or title


def in_language(text: str, title: str | None, lang: str, procedure_names: dict[str, str] | None = None) -> str:
    """Text (an e-mail's subject or body made by a diagram from the stored English title) with that title in lang."""
    if not title or title not in text:
        return text
    shown = localized(title, lang, procedure_names)
    return text.replace(title, shown) if shown != title else text
