"""GET /api/v1/approvals: what awaits the caller's approval - pending procedure versions (QA approvers, not their
own) and e-signature steps they may sign - with the links where each is approved. Thin: one service call."""
from __future__ import annotations

from flask import jsonify, url_for
from flask_smorest import Blueprint

from app.api.auth import api_user, authenticate_request
from app.services.workflow import approvals

blp = Blueprint("approvals_api", __name__, url_prefix="/api/v1",
                description="Awaiting my approval: pending procedure versions and e-signature steps")
blp.before_request(authenticate_request)


@blp.route("/approvals")
@blp.response(200, description="count, versions (process, name, version, author, reason_for_change, deployed_at, "
                               "review_url, approve_url) and steps (task, name, meaning, instance, title, group, "
                               "assignee, due_at, url)")
@blp.alt_response(401, description="no valid token")
def awaiting_approval():
    """What awaits the caller's approval: pending procedure versions and steps to sign."""
    found = approvals.awaiting(api_user())
    return jsonify(
        count=found.count,
        versions=[{"process": v.definition.key, "name": v.definition.name, "version": v.version,
                   "author": v.author.username if v.author else None, "reason_for_change": v.change_note,
                   "deployed_at": v.created_at.isoformat(),
                   "review_url": url_for("procedure_control.review", key=v.definition.key, version=v.version,
                                         _external=True),
                   "approve_url": url_for("procedure_control_api.approve", key=v.definition.key, version=v.version,
                                          _external=True)} for v in found.versions],
        steps=[{"task": t.id, "element": t.element_id, "name": t.name, "name_zh": t.name_zh,
                "meaning": t.signature_meaning, "instance": t.instance_id, "title": t.instance.title,
                "process": t.instance.version.definition.key, "group": t.group_name,
                "assignee": t.assignee.username if t.assignee else None,
                "due_at": t.due_at.isoformat() if t.due_at else None,
                "url": url_for("inbox.task", task_id=t.id, _external=True)} for t in found.steps],
        more_versions=found.more_versions, more_steps=found.more_steps)
