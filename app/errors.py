"""Map domain exceptions to HTTP answers in one place: JSON for the API, a page for the browser."""
from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.exceptions import QualiflowError

# What a page says for an HTTP error that came without a message of its own (Werkzeug's default text).
HTTP_MESSAGES = {
    400: _l("The request was not understood; nothing was changed."),
    401: _l("Sign in first."),
    403: _l("You are not allowed to open this page."),
    404: _l("There is no such page or record. Check the address, or go back and follow a link."),
    405: _l("This address does not take that kind of request."),
    409: _l("The record changed meanwhile; reload and try again."),
    413: _l("The upload is too large."),
    429: _l("Too many requests; wait a moment and try again."),
    500: _l("Something went wrong on our side; nothing was changed. The error is logged; try again, or tell your "
            "administrator what you did."),
    503: _l("The service is unavailable for a moment; try again shortly."),
}
# The default messages of the domain exceptions and the fixed refusals the services raise: listed here so the
# catalog keeps them; QualiflowError.message shows them in the page language.
REFUSALS = (
    _l("The request is not valid; nothing was changed."), _l("The requested record does not exist."),
    _l("You are not allowed to do this."), _l("The record changed meanwhile; reload and try again."),
    _l("This task is already completed."), _l("This task is claimed by someone else or is not waiting for a user."),
    _l("The signature was rejected: the password is wrong or the account is locked."),
    _l("The password is wrong; the task was not signed."), _l("Your account is read-only."),
    _l("Only administrators can retry incidents."), _l("Only administrators can check running instances."),
    _l("Only administrators and process owners can cancel an instance."),
    _l("Only process owners deploy procedures."),
    _l("Someone changed this record at the same time; nothing was saved."),
    _l("Someone saved the same record at the same time; nothing was saved. Reload and try again."),
    _l("Only administrators edit holiday calendars."), _l("This task is no longer waiting for a user."),
    _l("Only a waiting task can be released."), _l("This task is not claimed."),
    _l("Only the assignee or an administrator can release this task."),
    _l("The current SCAR round has no answer to verify."),
    _l("Only an authorised releaser (QA releaser role) can sign a release."),
    _l("Four-eyes rule: you completed an earlier step this one must be checked against; another person has to "
       "sign it."),
    _l("The auditor's workspace is open to auditors, administrators and QA."),
    _l("Only process owners and administrators see where instances stand."),
    _l("Only process owners and admins use the process studio."),
    _l("Only an authorised releaser can release a lot."), _l("Only quality assurance can change a lot's status."),
    _l("Only quality assurance can change a supplier's status."),
    _l("This step opens a CAPA, but the CAPA procedure is not deployed."),
    _l("The form has errors; nothing was saved."), _l("Wrong user name or password."),
    _l("Too many failed attempts: the account is locked."),
)


def http_message(err: HTTPException) -> str:
    """The error's own message, or for Werkzeug's default text ours in the page language."""
    if err.description == type(err).description and err.code in HTTP_MESSAGES:
        return str(HTTP_MESSAGES[err.code])
    return gettext(err.description or "")


def _wants_json() -> bool:
    # A caller that sent JSON (the form editor's fetches) reads JSON back, even for a body over the upload limit.
    # The studio's JSON endpoints too, also on a URL none of them matches (/studio/api/drafts/2**63).
    return (request.path.startswith(("/api/", "/studio/api/")) or request.accept_mimetypes.best == "application/json"
            or request.is_json)


def register(app: Flask) -> None:
    from app import outage
    outage.register(app, _wants_json)  # the database cannot be reached: 503 at once

    @app.errorhandler(QualiflowError)
    def domain_error(err: QualiflowError):
        if _wants_json():
            return jsonify(err.as_dict()), err.status
        return render_template("error.html", status=err.status, message=err.message,
                               problems=getattr(err, "problems", None)), err.status

    @app.errorhandler(CSRFError)
    def csrf_error(err: CSRFError):
        return render_template("error.html", status=400, message=err.description), 400

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        if _wants_json():
            body = {"error": err.name, "message": err.description}
            messages = getattr(err, "data", {}).get("messages") if hasattr(err, "data") else None
            if messages:
                body["errors"] = messages
            return jsonify(body), err.code
        return render_template("error.html", status=err.code, message=http_message(err)), err.code
