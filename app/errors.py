"""Map domain exceptions to HTTP answers in one place: JSON for the API, a page for the browser."""
from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.exceptions import QualiflowError


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
        return render_template("error.html", status=err.code, message=err.description), err.code
