"""The studio's form editor: list, check, preview and save a form's JSON Schema and UI schema as StudioForm
rows, which override the same-named files in forms/ for the next deploy (deployed versions keep theirs)."""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.decoder import scanstring
from typing import Any

from flask import current_app
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from sqlalchemy import select
from sqlalchemy.orm import joinedload, undefer

from app.exceptions import Conflict, FormDefinitionInvalid, FormInvalid, NotFound, PermissionDenied, ValidationFailed
from app.extensions import db
from app.models import User
from app.models.processes import ProcessVersion
from app.models.studio import StudioForm
from app.models.types import utcnow
from app.models.users import OWNER_ROLES
from app.services.evidence import audit
from app.services.workflow import form_checks, forms, registry
from app.services.workflow.processes import available_forms
from app.services.workflow.transaction import atomic

SCHEMA, UI = "schema", "uischema"
_SUFFIX = {SCHEMA: ".schema.json", UI: ".uischema.json"}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,79}")
MAX_CHARS = 500_000  # per text: the biggest shipped form is about 10 KB
MAX_DEPTH = 40  # nesting levels; keeps parsing and meta-validation far from Python's recursion limit
_META_VALIDATOR = Draft202012Validator(Draft202012Validator.META_SCHEMA,
                                       format_checker=Draft202012Validator.FORMAT_CHECKER)

_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "not_json": "Not valid JSON: {error}.",
        "not_object": "The top level must be a JSON object {{…}}.",
        "too_big": "The text is longer than {limit} characters.",
        "too_deep": "The JSON is nested more than {limit} levels deep.",
        "unknown_check": "Unknown server check {name!r} in x-checks; known checks: {known}.",
        "checks_list": "x-checks must be a list of check names.",
        "not_object_form": "A form's top level should have \"type\": \"object\" with \"properties\".",
        "no_zh_title": "No Chinese title (x-i18n.zh-CN.title): the zh-CN form shows the English one.",
        "ui_unknown_field": "The UI schema refers to {name!r}, which is not a field of the schema.",
        "ui_not_object": "The UI settings of {name!r} must be a JSON object.",
        "ui_order": "ui:order must be a list of field names.",
        "cannot_render": "The form cannot be shown: {error}",
        "bad_name": "A form name uses lower-case letters, digits and _ and starts with a letter (e.g. capa_problem).",
        "exists": "A form named {name!r} already exists.",
        "no_form": "There is no form named {name!r}.",
        "owners_only": "Only process owners and admins edit forms.",
        "invalid": "The form has errors; nothing was saved.",
        "sample": "The sample values are not a JSON object.",
        "not_in_studio": "The form {name!r} has no studio version to discard.",
    },
    "zh-CN": {
        "not_json": "不是有效的 JSON：{error}。",
        "not_object": "顶层必须是 JSON 对象 {{…}}。",
        "too_big": "文本超过 {limit} 个字符。",
        "too_deep": "JSON 的嵌套超过 {limit} 层。",
        "unknown_check": "x-checks 中的服务器检查 {name!r} 不存在；已有的检查：{known}。",
        "checks_list": "x-checks 必须是检查名称的列表。",
        "not_object_form": "表单的顶层应为 \"type\": \"object\" 并包含 \"properties\"。",
        "no_zh_title": "缺少中文标题（x-i18n.zh-CN.title）：中文表单将显示英文标题。",
        "ui_unknown_field": "界面定义引用了 {name!r}，但表单定义中没有该字段。",
        "ui_not_object": "{name!r} 的界面设置必须是 JSON 对象。",
        "ui_order": "ui:order 必须是字段名称的列表。",
        "cannot_render": "无法显示该表单：{error}",
        "bad_name": "表单名称只能包含小写字母、数字和 _，并以字母开头（例如 capa_problem）。",
        "exists": "名为 {name!r} 的表单已存在。",
        "no_form": "没有名为 {name!r} 的表单。",
        "owners_only": "只有流程负责人和管理员可以编辑表单。",
        "invalid": "表单定义有错误，未保存任何内容。",
        "sample": "示例值不是 JSON 对象。",
        "not_in_studio": "表单 {name!r} 没有可放弃的流程设计器版本。",
    },
}


@dataclass(frozen=True)
class FormProblem:
    """One finding in a form definition, located by file (schema or uischema), JSON path and line."""

    message: str
    file: str
    path: str = "$"
    line: int | None = None
    column: int | None = None
    severity: str = "error"  # "error" refuses a save, "warning" does not

    def __str__(self) -> str:
        where = f"{self.file} {self.path}" + (f", line {self.line}" if self.line else "")
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class CheckedForm:
    """A form definition as parsed from the editor's texts, with everything found wrong in it."""

    schema: dict | None
    uischema: dict | None
    problems: list[FormProblem]

    @property
    def errors(self) -> list[FormProblem]:
        return [p for p in self.problems if p.severity == "error"]


@dataclass(frozen=True)
class FormSummary:
    name: str
    title: str
    title_zh: str
    source: str  # "studio" when a StudioForm row overrides (or adds to) forms/, else "file"
    used_by: list[tuple[str, int]] = field(default_factory=list)  # (process key, version) that froze this form


@dataclass(frozen=True)
class EditableForm:
    name: str
    schema_text: str
    uischema_text: str
    source: str
    has_file: bool
    updated_at: Any = None
    author: str = ""


@dataclass(frozen=True)
class Preview:
    """What the preview pane shows: the inbox's fields for the form, or nothing when the schema is broken."""

    title: str
    fields: list[forms.Field] | None
    problems: list[FormProblem]
    form_errors: dict[str, list[str]] = field(default_factory=dict)


def may_edit_forms(actor: User) -> bool:
    """Process owners and admins edit forms, as they deploy the diagrams that use them."""
    return actor.has_role(*OWNER_ROLES)


def list_forms(actor: User) -> list[FormSummary]:
    """Every form a diagram may use, with its titles, where it comes from and the versions that froze it."""
    _require_owner(actor)
    available = available_forms()
    studio = set(db.session.scalars(select(StudioForm.name)))
    used_by: dict[str, list[tuple[str, int]]] = {}
    versions = db.session.scalars(select(ProcessVersion).options(undefer(ProcessVersion.forms),
                                                                joinedload(ProcessVersion.definition)))
    for version in versions:
        for file_name in version.forms or {}:
            if file_name.endswith(_SUFFIX[SCHEMA]):
                used_by.setdefault(file_name, []).append((version.definition.key, version.version))
    return [FormSummary(name=_base(file_name), title=_title(schema, "en"), title_zh=_title(schema, "zh-CN"),
                        source="studio" if {file_name, _file(_base(file_name), UI)} & studio else "file",
                        used_by=sorted(used_by.get(file_name, [])))
            for file_name, schema in sorted(available.items()) if file_name.endswith(_SUFFIX[SCHEMA])]


def get_form(name: str, actor: User, lang: str = "en") -> EditableForm:
    """The form's schema and UI schema as the editor shows them (the studio's version when there is one)."""
    _require_owner(actor, lang)
    available = available_forms()
    schema_file = _file(name, SCHEMA)
    if schema_file not in available:
        raise NotFound(_text("no_form", lang, name=name))
    row = db.session.scalar(select(StudioForm).where(StudioForm.name.in_([schema_file, _file(name, UI)]))
                            .order_by(StudioForm.updated_at.desc()))
    ui = available.get(_file(name, UI))
    has_file = (current_app.config["FORMS_DIR"] / schema_file).exists()
    return EditableForm(name=name, schema_text=_pretty(available[schema_file]),
                        uischema_text=_pretty(ui) if ui is not None else "", source="studio" if row else "file",
                        has_file=has_file, updated_at=row.updated_at if row else None,
                        author=row.author.full_name if row and row.author else "")


def check_form(schema_text: str, uischema_text: str, lang: str = "en") -> CheckedForm:
    """Parse both texts and find every problem: JSON syntax (line, column), JSON Schema 2020-12 errors, unknown
    x-checks and UI settings for fields the schema does not have; each problem carries its JSON path."""
    problems: list[FormProblem] = []
    schema, schema_source = _parse(schema_text, SCHEMA, problems, lang)
    uischema, ui_source = _parse(uischema_text, UI, problems, lang) if uischema_text.strip() else (None, None)
    if schema is not None:
        problems += _schema_problems(schema, schema_source, lang)
    if schema is not None and uischema is not None:
        problems += _ui_problems(schema, uischema, ui_source, lang)
    if schema is not None and not any(p.severity == "error" for p in problems):
        problems += _render_problems(schema, uischema, lang)
    return CheckedForm(schema, uischema, problems)


def preview_form(schema_text: str, uischema_text: str, actor: User, lang: str = "en",
                 values: Mapping[str, Any] | None = None, check_values: bool = False) -> Preview:
    """Build the inbox's fields for the edited form in lang, filled with values (as an HTML form submits them);
    with check_values, validate them as completing the task would and show the inbox's messages."""
    _require_owner(actor, lang)
    checked = check_form(schema_text, uischema_text, lang)
    if checked.errors:
        return Preview(title="", fields=None, problems=checked.problems)
    schema, uischema = checked.schema, checked.uischema
    data = forms.parse_submission(schema, values or {}, uischema)
    errors: dict[str, list[str]] = {}
    if check_values:
        try:
            forms.validate(schema, data, lang=lang)
            # The same server checks as completing a task, without an instance: nothing is written.
            form_checks.run_checks(schema, None, data, lang)
        except FormInvalid as err:
            errors = err.errors
    return Preview(title=_title(schema, lang), fields=forms.form_fields(schema, uischema, data, errors, lang=lang),
                   problems=checked.problems, form_errors=errors)


def save_form(name: str, schema_text: str, uischema_text: str, actor: User, lang: str = "en") -> list[str]:
    """Save the form as StudioForm rows (only the files that changed), audited with old and new hashes;
    nothing is saved when the definition has an error. Return the names of the files saved."""
    _require_owner(actor, lang)
    checked = check_form(schema_text, uischema_text, lang)
    if checked.errors:
        raise FormDefinitionInvalid(checked.problems, _text("invalid", lang))
    with atomic():
        if _file(name, SCHEMA) not in available_forms():
            raise NotFound(_text("no_form", lang, name=name))
        return _store(name, {SCHEMA: checked.schema, UI: checked.uischema}, actor)


def new_form(name: str, title: str, title_zh: str, actor: User, lang: str = "en") -> str:
    """Create a form from a minimal bilingual template (one comment field) and save it in the studio."""
    _require_owner(actor, lang)
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise ValidationFailed(_text("bad_name", lang))
    with atomic():
        if _file(name, SCHEMA) in available_forms():
            raise Conflict(_text("exists", lang, name=name))
        _store(name, _template(title.strip() or name.replace("_", " ").capitalize(), title_zh.strip()), actor)
    return name


def discard_studio_version(name: str, actor: User, lang: str = "en") -> bool:
    """Drop the studio's version of a form: the file in forms/ applies again at the next deploy, or - for a form
    made in the studio - the form is gone (a diagram still naming it then fails validation; deployed versions
    keep the copy they froze). Audited with the discarded hashes. Return whether a file in forms/ remains."""
    _require_owner(actor, lang)
    with atomic():
        rows = list(db.session.scalars(select(StudioForm).where(
            StudioForm.name.in_([_file(name, SCHEMA), _file(name, UI)])).with_for_update()))
        if not rows:
            raise NotFound(_text("not_in_studio", lang, name=name))
        for row in rows:
            audit.record(actor, "studio_form.discarded", "studio_form", row.name, old={"hash": _hash(row.content)})
            db.session.delete(row)
    return (current_app.config["FORMS_DIR"] / _file(name, SCHEMA)).exists()


def _hash(content: dict) -> str:
    """The hash of a form file's content, as the audit trail records it (canonical JSON, like deploys)."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _store(name: str, contents: dict[str, dict | None], actor: User) -> list[str]:
    """Write each changed file as a StudioForm row and audit it; a missing UI schema stays missing."""
    available = available_forms()
    saved = []
    for kind, content in contents.items():
        file_name = _file(name, kind)
        old = available.get(file_name)
        if content is None or content == old:
            continue
        row = db.session.scalar(select(StudioForm).where(StudioForm.name == file_name))
        if row is None:
            row = StudioForm(name=file_name)
            db.session.add(row)
        row.content = content
        row.author_id = actor.id
        row.updated_at = utcnow()
        db.session.flush()
        audit.record(actor, "studio_form.saved", "studio_form", file_name,
                     old={"hash": _hash(old)} if old is not None else None,
                     new={"hash": _hash(content)})
        saved.append(file_name)
    return saved


def _template(title: str, title_zh: str) -> dict[str, dict]:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "x-i18n": {"zh-CN": {"title": title_zh or title}},
        "type": "object",
        "required": ["comment"],
        "properties": {
            "comment": {"type": "string", "title": "Comment", "maxLength": 2000,
                        "x-i18n": {"zh-CN": {"title": "备注"}}},
        },
        "additionalProperties": False,
    }
    return {SCHEMA: schema, UI: {"ui:order": ["comment"], "comment": {"ui:widget": "textarea", "ui:rows": 4}}}


def _require_owner(actor: User, lang: str = "en") -> None:
    if not may_edit_forms(actor):
        raise PermissionDenied(_text("owners_only", lang))


def _text(key: str, lang: str, **values: Any) -> str:
    language = "zh-CN" if lang.replace("_", "-").lower().startswith("zh") else "en"
    return _MESSAGES[language][key].format(**values)


def _file(name: str, kind: str) -> str:
    return name + _SUFFIX[kind]


def _base(file_name: str) -> str:
    return file_name.removesuffix(_SUFFIX[SCHEMA]).removesuffix(_SUFFIX[UI])


def _pretty(content: dict) -> str:
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"


def _title(schema: dict, lang: str) -> str:
    title = schema.get("title") or ""
    if lang == "zh-CN":
        translated = schema.get("x-i18n", {}).get("zh-CN", {})
        return (translated.get("title") if isinstance(translated, dict) else None) or title
    return title


# -- parsing with positions -------------------------------------------------------------------------------

Path = tuple[str | int, ...]
_BLANK = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")


class _TooDeep(Exception):
    """The JSON text nests deeper than MAX_DEPTH."""

    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


class _Source:
    """A parsed JSON text that locates problems: where each member (at its key) and item starts, by path."""

    def __init__(self, text: str, kind: str) -> None:
        self.text = text
        self.kind = kind
        self.starts: dict[Path, int] = {}
        self._value(0, ())  # raises _TooDeep

    def problem(self, message: str, path: Path, severity: str = "error") -> FormProblem:
        """A problem at path, with the line of the nearest part that exists (a missing key: its object)."""
        known = path
        while known and known not in self.starts:
            known = known[:-1]
        offset = self.starts.get(known, 0)
        line = self.text.count("\n", 0, offset) + 1
        column = offset - self.text.rfind("\n", 0, offset)
        return FormProblem(message, self.kind, _json_path(path), line, column, severity)

    def _skip(self, index: int) -> int:
        return _BLANK.match(self.text, index).end()

    def _value(self, index: int, path: Path) -> int:
        text = self.text
        index = self._skip(index)
        if len(path) > MAX_DEPTH:
            raise _TooDeep(index)
        self.starts.setdefault(path, index)
        if text[index] == "{":
            return self._members(index + 1, path)
        if text[index] == "[":
            return self._items(index + 1, path)
        if text[index] == '"':
            return scanstring(text, index + 1)[1]
        return _SCALAR.match(text, index).end()

    def _members(self, index: int, path: Path) -> int:
        index = self._skip(index)
        while self.text[index] != "}":
            key, after = scanstring(self.text, index + 1)
            self.starts[(*path, key)] = index
            index = self._skip(self._value(self._skip(after) + 1, (*path, key)))
            index = self._skip(index + 1) if self.text[index] == "," else index
        return index + 1

    def _items(self, index: int, path: Path) -> int:
        index, position = self._skip(index), 0
        while self.text[index] != "]":
            index = self._skip(self._value(index, (*path, position)))
            index = self._skip(index + 1) if self.text[index] == "," else index
            position += 1
        return index + 1


def _parse(text: str, kind: str, problems: list[FormProblem], lang: str) -> tuple[dict | None, _Source | None]:
    """Parse one text; on a syntax error add a problem with its line and column and return None."""
    if len(text) > MAX_CHARS:
        problems.append(FormProblem(_text("too_big", lang, limit=MAX_CHARS), kind))
        return None, None
    try:
        content = json.loads(text, parse_constant=_no_constant)
        source = _Source(text, kind)
    except json.JSONDecodeError as err:
        problems.append(FormProblem(_text("not_json", lang, error=err.msg), kind, "$", err.lineno, err.colno))
        return None, None
    except ValueError as err:  # NaN or Infinity: Python reads them, JSON (and the database) does not
        problems.append(FormProblem(_text("not_json", lang, error=err), kind))
        return None, None
    except (_TooDeep, RecursionError) as err:
        offset = err.offset if isinstance(err, _TooDeep) else 0
        problems.append(FormProblem(_text("too_deep", lang, limit=MAX_DEPTH), kind, "$",
                                    text.count("\n", 0, offset) + 1))
        return None, None
    if not isinstance(content, dict):
        problems.append(FormProblem(_text("not_object", lang), kind, "$", 1, 1))
        return None, None
    return content, source


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _json_path(path: Path) -> str:
    parts = ["$"]
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif re.fullmatch(r"[A-Za-z_$][\w$-]*", part):
            parts.append(f".{part}")
        else:
            parts.append(f"[{part!r}]")  # as jsonschema writes paths: $['ui:order']
    return "".join(parts)


# -- checks -----------------------------------------------------------------------------------------------

def _meta_message(error: ValidationError) -> str:
    """jsonschema's message, made precise for anyOf/oneOf ("'strin' is not one of [...]")."""
    if error.context:
        deepest = best_match(error.context)
        if deepest is not None:
            return deepest.message
    return error.message


def _schema_problems(schema: dict, source: _Source, lang: str) -> list[FormProblem]:
    problems = [source.problem(_meta_message(error), tuple(error.absolute_path))
                for error in _META_VALIDATOR.iter_errors(schema)]
    checks = schema.get("x-checks", [])
    if not isinstance(checks, list) or not all(isinstance(name, str) for name in checks):
        problems.append(source.problem(_text("checks_list", lang), ("x-checks",)))
    else:
        known = ", ".join(sorted({*registry.FORM_CHECKS, *registry.CLOCKED_FORM_CHECKS}))
        unknown = set(form_checks.unknown_checks(schema))
        problems += [source.problem(_text("unknown_check", lang, name=name, known=known), ("x-checks", i))
                     for i, name in enumerate(checks) if name in unknown]
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, dict):
        problems.append(source.problem(_text("not_object_form", lang), (), "warning"))
        return problems
    if not _has_zh_title(schema):
        problems.append(source.problem(_text("no_zh_title", lang), ("title",), "warning"))
    problems += [source.problem(_text("no_zh_title", lang), ("properties", name, "title"), "warning")
                 for name, prop in properties.items() if isinstance(prop, dict) and not _has_zh_title(prop)]
    return problems


def _has_zh_title(node: dict) -> bool:
    translated = node.get("x-i18n", {})
    translated = translated.get("zh-CN", {}) if isinstance(translated, dict) else {}
    return isinstance(translated, dict) and bool(translated.get("title"))


def _ui_problems(schema: dict, ui: dict, source: _Source, lang: str) -> list[FormProblem]:
    """UI settings must be objects, for fields the schema has (inside an array table: for its columns)."""
    problems: list[FormProblem] = []

    def walk(node: dict, properties: dict, path: Path) -> None:
        order = node.get("ui:order")
        if order is not None and not (isinstance(order, list) and all(isinstance(n, str) for n in order)):
            problems.append(source.problem(_text("ui_order", lang), (*path, "ui:order")))
        elif order:
            problems.extend(source.problem(_text("ui_unknown_field", lang, name=n), (*path, "ui:order", i), "warning")
                            for i, n in enumerate(order) if n not in properties)
        for key, value in node.items():
            if key.startswith("ui:"):
                continue
            if key not in properties:
                problems.append(source.problem(_text("ui_unknown_field", lang, name=key), (*path, key), "warning"))
            elif not isinstance(value, dict):
                problems.append(source.problem(_text("ui_not_object", lang, name=key), (*path, key)))
            else:
                items = properties[key].get("items") if isinstance(properties[key], dict) else None
                item_ui = value.get("items")
                if isinstance(items, dict) and isinstance(items.get("properties"), dict) and isinstance(item_ui, dict):
                    walk(item_ui, items["properties"], (*path, key, "items"))

    properties = schema.get("properties")
    walk(ui, properties if isinstance(properties, dict) else {}, ())
    return problems


def _render_problems(schema: dict, ui: dict | None, lang: str) -> list[FormProblem]:
    """Build the fields in both languages and validate an empty answer, as the inbox will: whatever fails here
    would fail on a task page, so it refuses the save."""
    try:
        for form_lang in ("en", "zh-CN"):
            forms.form_fields(schema, ui, {}, {}, lang=form_lang)
            try:
                forms.validate(schema, {}, lang=form_lang)
            except FormInvalid:
                pass  # an empty answer is expected to miss required fields
    except Exception as err:  # noqa: BLE001 - any failure means the inbox could not show this form
        return [FormProblem(_text("cannot_render", lang, error=f"{type(err).__name__}: {err}"), SCHEMA)]
    return []
