"""Process catalogue: deployed procedures and their versions."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

from app.services import processes

bp = Blueprint("processes", __name__, url_prefix="/processes")


@bp.get("/")
@login_required
def index():
    return render_template("processes/index.html", definitions=processes.list_definitions())


@bp.get("/<key>/<int:version>")
@login_required
def version(key: str, version: int):
    return render_template("processes/version.html", version=processes.get_version(key, version))
