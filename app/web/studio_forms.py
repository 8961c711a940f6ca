"""The studio's form editor (process owners and admins): the list of forms, the editor with a live preview drawn
by the inbox's own form macro, and saving a form for the next deploy."""
from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.datastructures import MultiDict

from app.exceptions import PermissionDenied, QualiflowError
from app.services.studio import studio_forms
from app.web.common import ui_lang

bp = Blueprint("studio_forms", __name__, url_prefix="/studio/forms")

PREVIEW_LANGUAGES = ("en", "zh-CN")


@bp.before_request
@login_required
def owners_only():
    """Every page here is for process owners and admins; others get the 403 page (or JSON)."""
    if not studio_forms.may_edit_forms(current_user):
        raise PermissionDenied(_("Only process owners and admins edit forms."))


@bp.context_processor
def studio_link() -> dict:
    """The studio's index page (the modeler's blueprint) for the breadcrumb, when that blueprint is installed."""
    has_studio = "studio.index" in current_app.view_functions
    return {"studio_index_url": url_for("studio.index") if has_studio else None}


@bp.get("/")
def index():
    return render_template("studio/forms/index.html", forms=studio_forms.list_forms(current_user))


@bp.post("/")
def create():
    form = request.form
    try:
        name = studio_forms.new_form(form.get("name", ""), form.get("title", ""), form.get("title_zh", ""),
                                     current_user, lang=ui_lang())
    except QualiflowError as err:
        if err.status not in (400, 409):
            raise
        return render_template("studio/forms/index.html", forms=studio_forms.list_forms(current_user),
                               new_error=err.message, new_values=form), err.status
    flash(_("Form %(name)s created; it is saved in the studio.", name=name), "success")
    return redirect(url_for("studio_forms.edit", name=name))


@bp.get("/<name>")
def edit(name: str):
    return render_template("studio/forms/edit.html", form=studio_forms.get_form(name, current_user, ui_lang()),
                           languages=PREVIEW_LANGUAGES)


def _json_object() -> dict:
    """The request's JSON object; anything else (a number, a list, no JSON) reads as an empty one."""
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


@bp.post("/<name>/preview")
def preview(name: str):
    """Check the edited texts and answer the preview's HTML (the inbox's fields) and the problems, as JSON.

    Body: {"schema": text, "uischema": text, "lang": "en"|"zh-CN", "values": [[field, value], ...], "check": bool};
    values are the preview form's own inputs, parsed and (with check) validated as completing a task would.
    """
    body = _json_object()
    lang = body.get("lang") if body.get("lang") in PREVIEW_LANGUAGES else ui_lang()
    pairs = body.get("values") if isinstance(body.get("values"), list) else []
    values = MultiDict([(pair[0], str(pair[1])) for pair in pairs
                        if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)])
    try:
        result = studio_forms.preview_form(str(body.get("schema", "")), str(body.get("uischema", "")),
                                           current_user, lang=lang, values=values, check_values=bool(body.get("check")))
    except QualiflowError as err:
        return jsonify(err.as_dict()), err.status
    html = render_template("studio/forms/_preview.html", preview=result, lang=lang) if result.fields is not None \
        else ""
    return jsonify(html=html, valid=result.fields is not None, problems=[asdict(p) for p in result.problems],
                   form_errors=result.form_errors)


@bp.post("/<name>/discard")
def discard(name: str):
    """Drop the studio's version of the form (back to the file in forms/, or gone when it has no file)."""
    try:
        file_remains = studio_forms.discard_studio_version(name, current_user, lang=ui_lang())
    except QualiflowError as err:
        flash(err.message, "danger")
        return redirect(url_for("studio_forms.index"))
    if file_remains:
        flash(_("The studio version of %(name)s was discarded: the file in forms/ applies again at the next "
                "deploy.", name=name), "success")
        return redirect(url_for("studio_forms.edit", name=name))
    flash(_("The form %(name)s was removed from the studio; deployed versions keep their copy.", name=name),
          "success")
    return redirect(url_for("studio_forms.index"))


@bp.put("/<name>")
def save(name: str):
    """Save the form (JSON {"schema": text, "uischema": text}); an invalid form is refused with 422 and its problems."""
    body = _json_object()
    try:
        saved = studio_forms.save_form(name, str(body.get("schema", "")), str(body.get("uischema", "")),
                                       current_user, lang=ui_lang())
    except QualiflowError as err:
        return jsonify(err.as_dict()), err.status
    message = _("Saved: %(files)s. The next deploy of a diagram that uses this form takes it; running instances "
                "keep the form of their version.", files=", ".join(saved)) if saved else _("Nothing changed.")
    return jsonify(name=name, saved=saved, message=message)
