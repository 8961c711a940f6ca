"""Tests for app/services/identifiers.py: GS1 HRI, raw scanner strings, GTINs and plain text from a search box."""
from datetime import date

import pytest

from app.services.lots.identifiers import InvalidCode, ScannedCode, gtin_problem, normalize_gtin, parse_code

GS = "\x1d"
GTIN = "09506000134352"  # GS1 example GTIN-14 (a GTIN-13 with a leading zero); check digit 2

UDI = ScannedCode(text="", gtin=GTIN, lot="ABC123", serial="S1", expiry=date(2025, 2, 28), is_gs1=True)

PARSED = [
    # id, input, expected fields (text is always the stripped input)
    ("hri-full-udi", f"(01){GTIN}(17)250200(10)ABC123(21)S1", UDI),
    ("hri-surrounding-whitespace", f"  (01){GTIN}(17)250200(10)ABC123(21)S1\n", UDI),
    ("raw-datamatrix-prefix-and-gs", f"]d201{GTIN}17250200" + f"10ABC123{GS}21S1", UDI),
    ("raw-gs1-128-prefix", f"]C101{GTIN}17250200" + f"10ABC123{GS}21S1", UDI),
    ("raw-qr-prefix", f"]Q301{GTIN}17250200" + f"10ABC123{GS}21S1", UDI),
    ("raw-without-prefix", f"01{GTIN}17250200" + f"10ABC123{GS}21S1", UDI),
    ("raw-leading-fnc1-as-gs", f"]d2{GS}01{GTIN}17250200" + f"10ABC123{GS}21S1", UDI),
    ("raw-gtin-only-without-prefix", f"01{GTIN}", ScannedCode(text="", gtin=GTIN, is_gs1=True)),
    ("raw-gs-without-gtin", f"10ABC{GS}21X", ScannedCode(text="", lot="ABC", serial="X", is_gs1=True)),
    ("serial-only", "(21)ABC", ScannedCode(text="", serial="ABC", is_gs1=True)),
    ("lot-only", "(10)LOT-2024-001", ScannedCode(text="", lot="LOT-2024-001", is_gs1=True)),
    ("production-date", f"(01){GTIN}(11)240115(10)B7",
     ScannedCode(text="", gtin=GTIN, lot="B7", production=date(2024, 1, 15), is_gs1=True)),
    ("production-and-expiry", "(11)240100(17)270600",
     ScannedCode(text="", production=date(2024, 1, 31), expiry=date(2027, 6, 30), is_gs1=True)),
    ("gtin-14", GTIN, ScannedCode(text="", gtin=GTIN, is_gs1=True)),
    ("gtin-13-padded", "9506000134352", ScannedCode(text="", gtin=GTIN, is_gs1=True)),
    ("gtin-12", "036000291452", ScannedCode(text="", gtin="00036000291452", is_gs1=True)),
    ("gtin-8", "96385074", ScannedCode(text="", gtin="00000096385074", is_gs1=True)),
    ("ean-13-symbology", "]E09506000134352", ScannedCode(text="", gtin=GTIN, is_gs1=True)),
    ("plain-lot", "LOT-2024-001", ScannedCode(text="")),
    ("plain-document-number", "SOP-QA-0042", ScannedCode(text="")),
    ("plain-short-number", "123", ScannedCode(text="")),
    ("plain-nine-digits", "123456789", ScannedCode(text="")),
    ("plain-parenthesis-not-an-ai", "(1)draft", ScannedCode(text="")),
    ("plain-parenthesised-year", "(2024) annual report", ScannedCode(text="")),
    ("four-digit-ai", "(7003)2401151230(21)X9", ScannedCode(text="", serial="X9", is_gs1=True)),
    ("plain-non-gs1-symbology", "]C0ABC", ScannedCode(text="")),
    ("plain-long-number-starting-01", "01095060001343521725023", ScannedCode(text="")),
]


@pytest.mark.parametrize("raw, expected", [case[1:] for case in PARSED], ids=[case[0] for case in PARSED])
def test_parse_code(raw, expected):
    parsed = parse_code(raw)
    assert parsed == ScannedCode(**{**expected.__dict__, "text": raw.strip()})


EXPIRY_DAY_00 = [
    # id, (17) value, expected expiry: day 00 is the last day of the month
    ("leap-february", "240200", date(2024, 2, 29)),
    ("common-february", "250200", date(2025, 2, 28)),
    ("31-day-month", "250100", date(2025, 1, 31)),
    ("december", "251200", date(2025, 12, 31)),
    ("30-day-month", "250400", date(2025, 4, 30)),
    ("explicit-day", "250215", date(2025, 2, 15)),
]


@pytest.mark.parametrize("yymmdd, expected", [case[1:] for case in EXPIRY_DAY_00],
                         ids=[case[0] for case in EXPIRY_DAY_00])
@pytest.mark.parametrize("form", ["hri", "raw"])
def test_expiry_day_00_is_the_end_of_the_month(form, yymmdd, expected):
    raw = f"(01){GTIN}(17){yymmdd}" if form == "hri" else f"]d201{GTIN}17{yymmdd}"
    assert parse_code(raw).expiry == expected


INVALID = [
    # id, input, words the message must contain
    ("empty", "", "empty"),
    ("whitespace", " \t\n", "empty"),
    ("bad-check-digit-hri", "(01)09506000134353(17)250200(10)ABC123",
     "bad GTIN check digit in (01)09506000134353: expected 2"),
    ("bad-check-digit-raw", "]d20109506000134353" + f"10ABC{GS}21S1",
     "bad GTIN check digit in (01)09506000134353: expected 2"),
    ("bad-check-digit-raw-without-prefix", "0109506000134353", "bad GTIN check digit in (01)09506000134353"),
    ("bad-check-digit-gtin-14", "09506000134353", "bad GTIN check digit in 09506000134353: expected 2"),
    ("bad-check-digit-gtin-13", "9506000134353", "bad GTIN check digit in 9506000134353: expected 2"),
    ("bad-check-digit-gtin-8", "96385075", "bad GTIN check digit in 96385075: expected 4"),
    ("gtin-too-short-in-01", "(01)0950600013435", "(01) Global Trade Item Number"),
    ("lot-longer-than-20", "(10)ABCDEFGHIJKLMNOPQRSTU", "(10) Batch or lot number"),
    ("month-13", "(17)251300", "(17) Expiration date"),
    ("february-31", "(17)250231", "(17) date"),
    ("hri-without-data", "(01)", "not a valid GS1 code"),
    ("hri-unknown-ai", "(05)123", "Unknown GS1 Application Identifier"),
    ("hri-unreadable-rest", "(10)A(B", "only '(10)A'"),
    ("hri-trailing-junk", f"(01){GTIN}junk", "(01) Global Trade Item Number"),
    ("symbology-without-data", "]d2", "no data after the symbology identifier"),
    ("raw-not-gs1", "]d2HELLO", "not a valid GS1 code"),
    ("ean-13-symbology-wrong-length", "]E0123", "GTIN must be 8, 12, 13 or 14 digits"),
    ("bad-sscc-check-digit", "(00)123456789012345670", "SSCC check digit"),
]


@pytest.mark.parametrize("raw, words", [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_parse_code_refuses_what_looks_like_gs1_but_is_not(raw, words):
    with pytest.raises(InvalidCode) as caught:
        parse_code(raw)
    assert words in str(caught.value)
    assert "^" not in str(caught.value), "no regular expression in a user-facing message"


def test_invalid_code_is_a_value_error():
    assert issubclass(InvalidCode, ValueError)


GTIN_PROBLEMS = [
    # id, value, gtin_problem(), normalize_gtin(): the GTIN-14, or InvalidCode and words of its message
    ("gtin-14", GTIN, None, GTIN),
    ("gtin-13", "9506000134352", None, GTIN),
    ("gtin-12", "036000291452", None, "00036000291452"),
    ("gtin-8", "96385074", None, "00000096385074"),
    ("surrounding-whitespace", " 9506000134352 ", None, GTIN),
    ("bad-check-digit", "09506000134353", "bad GTIN check digit: expected 2",
     (InvalidCode, "bad GTIN check digit in 09506000134353: expected 2")),
    ("bad-check-digit-gtin-8", "96385075", "bad GTIN check digit: expected 4",
     (InvalidCode, "bad GTIN check digit in 96385075: expected 4")),
    ("too-short", "123", "GTIN must be 8, 12, 13 or 14 digits",
     (InvalidCode, "GTIN must be 8, 12, 13 or 14 digits, got '123'")),
    ("eleven-digits", "95060001343", "GTIN must be 8, 12, 13 or 14 digits", (InvalidCode, "got '95060001343'")),
    ("fifteen-digits", "095060001343520", "GTIN must be 8, 12, 13 or 14 digits", (InvalidCode, "8, 12, 13 or 14")),
    ("letters", "0950600013435A", "GTIN must be 8, 12, 13 or 14 digits", (InvalidCode, "8, 12, 13 or 14")),
    ("non-ascii-digits", "\u0669\u0666\u0663\u0668\u0665\u0660\u0667\u0664", "GTIN must be 8, 12, 13 or 14 digits",
     (InvalidCode, "8, 12, 13 or 14")),
    ("empty", "", "GTIN must be 8, 12, 13 or 14 digits", (InvalidCode, "got ''")),
]


@pytest.mark.parametrize("value, problem, normalized", [case[1:] for case in GTIN_PROBLEMS],
                         ids=[case[0] for case in GTIN_PROBLEMS])
def test_gtin_problem_and_normalize_gtin(value, problem, normalized):
    assert gtin_problem(value) == problem
    if isinstance(normalized, tuple):
        error, words = normalized
        with pytest.raises(error) as caught:
            normalize_gtin(value)
        assert words in str(caught.value)
    else:
        assert normalize_gtin(value) == normalized
