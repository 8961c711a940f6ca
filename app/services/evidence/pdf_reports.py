"""The PDF copy of an evidence package's report, made from the same HTML with WeasyPrint.

WeasyPrint needs system libraries (Pango, and a CJK font for Chinese text: Debian's libpango-1.0-0,
libpangoft2-1.0-0 and fonts-noto-cjk). Where it cannot run, a package is still made with its HTML report: `render`
raises PdfUnavailable with the reason, the package's manifest records `"pdf": "not produced: <reason>"`, and the
pages that offer packages say so.
"""
from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

PRODUCED = "produced"


class PdfUnavailable(Exception):
    """No PDF could be made; str(err) is the reason, for the manifest and the pages."""


def _weasyprint():
    """Return the weasyprint module, or raise PdfUnavailable with why it cannot be loaded (a failed import is
    tried again next time: the libraries may have been installed meanwhile)."""
    try:
        return importlib.import_module("weasyprint")
    except (ImportError, OSError) as err:  # OSError: a system library (Pango, GObject) cannot be loaded
        raise PdfUnavailable(f"WeasyPrint cannot run on this server ({err.__class__.__name__}: "
                             f"{str(err).splitlines()[0][:200] if str(err) else 'no detail'})") from err


def unavailable() -> str | None:
    """Return why no PDF report can be made on this server, or None when it can."""
    try:
        _weasyprint()
    except PdfUnavailable as err:
        return str(err)
    return None


def render(html: str | bytes) -> bytes:
    """Return the PDF of a standalone HTML page (its print stylesheet sets the page size and footer). Nothing
    outside the page is fetched but data: URLs. Raise PdfUnavailable when WeasyPrint cannot run or fails."""
    weasyprint = _weasyprint()
    text = html.decode("utf-8") if isinstance(html, bytes) else html
    try:
        return weasyprint.HTML(string=text, url_fetcher=weasyprint.URLFetcher(allowed_protocols=["data"])).write_pdf()
    except Exception as err:  # a rendering failure leaves the package with its HTML report, not a failed export
        log.exception("the PDF report could not be rendered")
        raise PdfUnavailable(f"WeasyPrint failed ({err.__class__.__name__}: {str(err)[:200]})") from err


def not_produced(reason: str) -> str:
    """The manifest's "pdf" value of a package made without PDF reports."""
    return f"not produced: {reason}"
