"""The inbox: my tasks and my groups' tasks; a task page to claim, release and complete with its form."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app import security
from app.exceptions import FormInvalid, QualiflowError, SignatureRejected
from app.services.workflow import forms, instances, processes, tasks
from app.web import display
from app.web.common import ui_lang

bp = Blueprint("inbox", __name__)


@bp.get("/")
@login_required
def index():
    filters = tasks.InboxFilter(
        scope=request.args.get("scope", "all") if request.args.get("scope") in ("all", "mine", "unassigned") else "all",
        process_key=request.args.get("process") or None, overdue=request.args.get("overdue") == "1",
        search=request.args.get("q", "").strip()[:100])
    # Next and Previous follow a cursor (any page as fast as the first); ?page= still works for old links.
    page = tasks.inbox(current_user, filters, page=request.args.get("page", 1, type=int),
                       per_page=current_app.config["PAGE_SIZE"], after=request.args.get("after"),
                       before=request.args.get("before"))
    return render_template("inbox/index.html", page=page, filters=filters, definitions=processes.list_definitions())


def _render_task(task, values=None, errors=None, message=None, status=200):
    schema, ui_schema = tasks.task_form(task)
    fields = forms.form_fields(schema, ui_schema, values if values is not None else tasks.form_values(task, schema),
                               errors or {}, lang=ui_lang())
    record = instances.instance_record(task.instance_id)
    summary = figures = None
    if task.signature_meaning:  # a signer reads what they sign in words, not the instance's raw data
        summary = display.step_facts(record.tasks, ui_lang(), until=task.completed_at)
        # Figures are live counts: shown to whoever signs now, not as if a signed step had seen them.
        figures = display.key_figures(task.instance) if task.state == "ready" else None
    return render_template("inbox/task.html", task=task, fields=fields, form_title=_form_title(schema),
                           record=record, summary=summary, figures=figures,
                           can_work=tasks.can_work_on(task, current_user), message=message, errors=errors), status


def _form_title(schema: dict) -> str:
    if ui_lang() == "zh-CN":
        return schema.get("x-i18n", {}).get("zh-CN", {}).get("title") or schema.get("title", "")
    return schema.get("title", "")


@bp.get("/tasks/<int:task_id>")
@login_required
def task(task_id: int):
    return _render_task(tasks.get_task(task_id))


@bp.post("/tasks/<int:task_id>/claim")
@login_required
def claim(task_id: int):
    tasks.claim_task(task_id, current_user)
    flash(_("Task claimed: it is now in your name."), "success")
    return redirect(url_for("inbox.task", task_id=task_id))


@bp.post("/tasks/<int:task_id>/release")
@login_required
def release(task_id: int):
    tasks.release_task(task_id, current_user)
    flash(_("Task released back to its group."), "info")
    return redirect(url_for("inbox.task", task_id=task_id))


@bp.post("/tasks/<int:task_id>/complete")
@security.failed_signatures()
@login_required
def complete(task_id: int):
    task = tasks.get_task(task_id)
    schema, ui_schema = tasks.task_form(task)
    data = forms.parse_submission(schema, request.form, ui_schema)
    try:
        tasks.complete_task(task_id, data, current_user, password=request.form.get("password"), lang=ui_lang())
    except FormInvalid as err:
        return _render_task(tasks.get_task(task_id), data, err.errors,
                            _("The form has errors; nothing was saved."), 422)
    except SignatureRejected as err:
        return _render_task(tasks.get_task(task_id), data, None, err.message, 401)
    except QualiflowError as err:
        if err.status in (409, 403):
            flash(err.message, "warning")
            return redirect(url_for("inbox.task", task_id=task_id))
        raise
    flash(_("Task completed."), "success")
    return redirect(url_for("instances.detail", instance_id=task.instance_id))
