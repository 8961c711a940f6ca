"""Instances: start a procedure, list instances, the instance page with tasks, evidence and audit trail."""
from __future__ import annotations

import io

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.exceptions import EvidenceTampered, FormInvalid, QualiflowError, ValidationFailed
from app.services.evidence import document_rendering
from app.services.evidence import verification as evidence
from app.services.studio import diagrams, studio
from app.services.workflow import instances, processes

bp = Blueprint("instances", __name__, url_prefix="/instances")

STATUSES = ("running", "incident", "completed", "cancelled")


@bp.get("/")
@login_required
def index():
    status = request.args.get("status") if request.args.get("status") in STATUSES else None
    page = instances.list_instances(status=status, process_key=request.args.get("process") or None,
                                    page=request.args.get("page", 1, type=int),
                                    per_page=current_app.config["PAGE_SIZE"])
    return render_template("instances/index.html", page=page, status=status, statuses=STATUSES,
                           definitions=processes.list_definitions())


@bp.route("/start", methods=["GET", "POST"])
@login_required
def start():
    definitions = processes.startable()  # (definition, its effective version): pending versions never start
    error = None
    if request.method == "POST":
        title = request.form.get("title", "").strip()
        key = request.form.get("process", "")
        if not title:
            error = _("Give the instance a title.")
        elif len(title) > 300:
            error = _("The title is too long (300 characters at most).")
        else:
            try:
                instance = instances.start_instance(key, current_user, {"title": title}, title=title)
            except QualiflowError as err:
                error = err.message
            else:
                flash(_("Started. The first task is waiting in the inbox."), "success")
                first = next((t for t in instance.tasks if t.state == "ready"), None)
                if first is not None:
                    return redirect(url_for("inbox.task", task_id=first.id))
                return redirect(url_for("instances.detail", instance_id=instance.id))
    status = 400 if error else 200
    return render_template("instances/start.html", definitions=definitions, error=error,
                           selected=request.values.get("process")), status


@bp.get("/<int:instance_id>")
@login_required
def detail(instance_id: int):
    return render_template("instances/detail.html", record=instances.instance_record(instance_id))


@bp.get("/<int:instance_id>/diagram.json")
@login_required
def diagram_states(instance_id: int):
    """Where the instance stands: the state of each diagram element, and where to fetch the diagram."""
    found = diagrams.instance_diagram(instance_id)
    version = found.instance.version
    return jsonify(instance=instance_id, status=found.instance.status, states=found.states,
                   diagram_url=url_for("processes.diagram", key=version.definition.key, version=version.version))


@bp.post("/<int:instance_id>/retry")
@login_required
def retry(instance_id: int):
    instance = instances.retry_instance(instance_id, current_user)
    if instance.status == "incident":
        flash(_("The retry failed again; see the incident."), "danger")
    else:
        flash(_("Retried: the instance runs again."), "success")
    return redirect(url_for("instances.detail", instance_id=instance_id))


@bp.get("/documents/<int:document_id>")
@login_required
def document(document_id: int):
    try:
        document = evidence.open_document(document_id, current_user)
    except EvidenceTampered:
        message = _("This document was changed after it was stored: its bytes no longer match the recorded "
                    "SHA-256, so it is not served. An incident was raised on its instance.")
        return render_template("error.html", status=409, message=message), 409
    return send_file(io.BytesIO(document.content), download_name=document.filename, as_attachment=True,
                     mimetype=document_rendering.DOCX_MIMETYPE)


@bp.post("/<int:instance_id>/cancel")
@login_required
def cancel(instance_id: int):
    try:
        instances.cancel_instance(instance_id, current_user, request.form.get("reason", ""))
    except FormInvalid as err:
        flash(err.errors["reason"][0], "danger")
    else:
        flash(_("The instance was cancelled."), "info")
    return redirect(url_for("instances.detail", instance_id=instance_id))


@bp.post("/<int:instance_id>/migrate")
@login_required
def migrate(instance_id: int):
    """Move the instance onto another version of its procedure (process owners; reason audited)."""
    version = request.form.get("version", type=int)
    try:
        if version is None:
            raise ValidationFailed(_("Choose the version to move the instance to."))
        moved = studio.migrate_instance(current_user, instance_id, version, request.form.get("reason", ""))
    except FormInvalid as err:
        flash(" ".join(message for messages in err.errors.values() for message in messages), "danger")
    except QualiflowError as err:
        flash(_("Not moved: %(message)s", message=err.message), "danger")
    else:
        flash(_("The instance now runs on version %(version)s.", version=moved["to"]), "success")
    return redirect(url_for("instances.detail", instance_id=instance_id))
