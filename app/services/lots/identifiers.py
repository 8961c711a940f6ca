"""Turn what a user types or scans into a search box into a structured GS1 code (GTIN, UDI) or plain text.

Parsing and validation are biip's; this module only decides which biip parser applies and explains failures.
Accepted: GS1 HRI "(01)…(17)…(10)…(21)…", raw scanner strings with or without a symbology identifier
("]d2", "]C1", "]Q3", …) and GS (\\x1d) separators, plain GTIN-8/12/13/14. Anything else is plain text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from biip import ParseError
from biip.checksums import gs1_standard_check_digit
from biip.gs1_application_identifiers import GS1ApplicationIdentifier
from biip.gs1_element_strings import GS1ElementString
from biip.gs1_messages import GS1Message
from biip.gtin import Gtin
from biip.symbology import GS1Symbology

__all__ = ["InvalidCode", "ScannedCode", "gtin_problem", "normalize_gtin", "parse_code"]

GS = "\x1d"  # ASCII group separator: what scanners send for FNC1 between variable-length fields
_GTIN_DIGITS = re.compile(r"[0-9]{8}|[0-9]{12,14}")  # ASCII only: str.isdigit() also accepts e.g. Arabic digits
_HRI_START = re.compile(r"\(([0-9]{2,4})\)")  # AIs are 2 to 4 digits: (01), (240), (7003)
_RAW_GTIN_START = re.compile(r"01[0-9]{14}")  # a raw element string that starts with a GTIN, as scanners send it
_BIIP_PATTERN_ERROR = re.compile(r"^Failed to match '(?P<data>.*)' with GS1 AI \((?P<ai>[0-9]+)\) pattern '.*'\.$",
                                 re.DOTALL)


@dataclass(frozen=True)
class ScannedCode:
    """What a scanned or typed code says: a GS1 code (GTIN/UDI) or plain text to look up."""

    text: str  # the input, stripped
    gtin: str | None = None  # normalised to 14 digits
    lot: str | None = None
    serial: str | None = None
    expiry: date | None = None
    production: date | None = None
    is_gs1: bool = False  # True when the input was a GS1 element string / UDI / GTIN


class InvalidCode(ValueError):
    """The input looks like a GS1 code (HRI, scanner string or GTIN) but is not a valid one."""


def parse_code(text: str) -> ScannedCode:
    """Parse a typed or scanned search input into a GS1 code, or keep it as plain text."""
    stripped = text.strip()  # note: str.strip() also removes leading/trailing GS, which is harmless here
    if not stripped:
        raise InvalidCode("empty code: type or scan a GTIN, UDI, lot or serial number")

    if _looks_like_hri(stripped):
        return _from_message(stripped, _parse_hri(stripped))

    symbology = _gs1_symbology(stripped)
    if symbology is not None:
        payload = stripped[3:]
        if not payload.strip():
            raise InvalidCode(f"no data after the symbology identifier {stripped[:3]!r}")
        if symbology in GS1Symbology.with_gs1_messages():
            return _from_message(stripped, _parse_raw(payload))
        if symbology in GS1Symbology.with_gtin():
            return ScannedCode(text=stripped, gtin=normalize_gtin(payload), is_gs1=True)
        return ScannedCode(text=stripped)  # e.g. ]E1, a bare EAN add-on: not an identifier we look up

    if GS in stripped:  # only scanners produce the group separator
        return _from_message(stripped, _parse_raw(stripped))

    if _RAW_GTIN_START.match(stripped):
        # Raw "01<GTIN>…" without a symbology identifier (a scanner sending no AIM prefix). If the structure does
        # not parse it may just be a long number starting with 01, so look it up as text; a structure that parses
        # but carries a bad GTIN check digit is reported by _from_message.
        try:
            message = GS1Message.parse(stripped)
        except ParseError:
            return ScannedCode(text=stripped)
        return _from_message(stripped, message)

    if _GTIN_DIGITS.fullmatch(stripped):
        return ScannedCode(text=stripped, gtin=normalize_gtin(stripped), is_gs1=True)

    return ScannedCode(text=stripped)


def gtin_problem(value: str) -> str | None:
    """Return why value is not a valid GTIN-8/12/13/14, or None when it is."""
    _, problem = _check_gtin(value)
    return problem


def normalize_gtin(value: str) -> str:
    """Return the valid GTIN value as 14 digits, left zero-padded; raise InvalidCode otherwise."""
    gtin, problem = _check_gtin(value, where=value.strip())
    if gtin is None:
        raise InvalidCode(problem)
    return gtin.as_gtin_14()


def _check_gtin(value: str, where: str | None = None) -> tuple[Gtin | None, str | None]:
    """Parse value as a GTIN with biip; return (gtin, None) or (None, reason), the reason naming `where` if given."""
    digits = value.strip()
    if not _GTIN_DIGITS.fullmatch(digits):
        reason = "GTIN must be 8, 12, 13 or 14 digits"
        return None, f"{reason}, got {digits!r}" if where is not None else reason
    located = f" in {where}" if where is not None else ""
    try:
        return Gtin.parse(digits), None
    except ParseError as exc:
        # biip only states the expected digit inside its message; recompute it with biip's checksum instead.
        expected = gs1_standard_check_digit(digits[:-1])
        if expected != int(digits[-1]):
            return None, f"bad GTIN check digit{located}: expected {expected}"
        return None, f"invalid GTIN{located}: {exc}"


def _looks_like_hri(value: str) -> bool:
    """Return whether value starts like GS1 HRI: "(" two digits ")", or a known 3- or 4-digit AI as in "(7003)"."""
    start = _HRI_START.match(value)
    if start is None:
        return False
    digits = start[1]
    if len(digits) == 2:
        return True
    try:  # so that "(2024) annual report" stays plain text
        return GS1ApplicationIdentifier.extract(digits).ai == digits
    except ParseError:
        return False


def _gs1_symbology(value: str) -> GS1Symbology | None:
    """Return the GS1 symbology named by a leading "]xy" symbology identifier, if any."""
    # biip's SymbologyIdentifier.extract raises IndexError on "]" alone, so look the code up in its enum directly.
    if not value.startswith("]") or len(value) < 3:
        return None
    try:
        return GS1Symbology(value[1:3])
    except ValueError:
        return None


def _parse_hri(text: str) -> GS1Message:
    """Parse a "(AI)data(AI)data" string with biip, refusing anything biip would silently drop."""
    try:
        message = GS1Message.parse_hri(text)
    except ParseError as exc:
        raise InvalidCode(f"not a valid GS1 code: {_explain(exc)}") from exc
    # parse_hri removes all whitespace (GS included) and skips text it cannot read, e.g. everything after a "(" that
    # opens no AI: "(10)A(B" yields lot "A". Compare the round trip so nothing is lost without saying so.
    if message.as_hri() != "".join(text.split()):
        raise InvalidCode(f"not a valid GS1 code: only {message.as_hri()!r} of {text!r} could be read")
    return message


def _parse_raw(value: str) -> GS1Message:
    """Parse a raw element string (AIs without parentheses, GS between fields) with biip."""
    try:
        message = GS1Message.parse(value)
    except ParseError as exc:
        raise InvalidCode(f"not a valid GS1 code: {_explain(exc)}") from exc
    if not message.element_strings:
        raise InvalidCode("not a valid GS1 code: no element strings found")
    return message


def _explain(exc: ParseError) -> str:
    """Return biip's error message with a regular expression replaced by the AI's name and format."""
    message = str(exc)
    found = _BIIP_PATTERN_ERROR.match(message)
    if found is None:
        return message
    try:
        ai = GS1ApplicationIdentifier.extract(found["ai"])
    except ParseError:
        return message
    data = found["data"].removeprefix(ai.ai)
    expected = ai.format.split("+", 1)[-1]  # "N2+X..20": the AI is N2, its data X..20 (up to 20 characters)
    return f"{data!r} is not a valid {ai} {ai.description} (format {expected})"


def _from_message(text: str, message: GS1Message) -> ScannedCode:
    """Build the ScannedCode of a parsed GS1 message, refusing elements whose check digit biip found wrong."""
    fields: dict[str, GS1ElementString] = {}
    for element in message.element_strings:
        # biip does not raise for a bad check digit inside an element: it sets gtin_error/sscc_error/gln_error.
        if element.ai.ai == "01" and element.gtin is None:
            _, problem = _check_gtin(element.value, where=element.as_hri())
            raise InvalidCode(problem)
        for error in (element.gtin_error, element.sscc_error, element.gln_error):
            if error:
                raise InvalidCode(f"invalid {element.as_hri()}: {error}")
        fields.setdefault(element.ai.ai, element)

    def value(ai: str) -> str | None:
        return fields[ai].value if ai in fields else None

    def day(ai: str) -> date | None:
        # biip turns day 00 into the last day of the month (GS1 General Specifications 7.12), leap years included.
        return fields[ai].date if ai in fields else None

    gtin = fields["01"].gtin.as_gtin_14() if "01" in fields and fields["01"].gtin else None
    return ScannedCode(text=text, gtin=gtin, lot=value("10"), serial=value("21"), expiry=day("17"),
                       production=day("11"), is_gs1=True)
