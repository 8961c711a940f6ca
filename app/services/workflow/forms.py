"""User-task forms defined by JSON Schema: parse HTML submissions, validate them with per-field
messages in English or zh-CN, and describe the fields for the Jinja form macro."""
from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import SchemaError

from app.engine import data_check
from app.exceptions import FormInvalid

_FALSE_WORDS = {"", "false", "off", "0", "no"}

_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "required": "This field is required.",
        "minLength": "Enter at least {limit} characters.",
        "maxLength": "Enter at most {limit} characters.",
        "minimum": "Enter a value of at least {limit}.",
        "maximum": "Enter a value of at most {limit}.",
        "exclusiveMinimum": "Enter a value greater than {limit}.",
        "exclusiveMaximum": "Enter a value less than {limit}.",
        "enum": "Choose one of the listed options.",
        "minItems": "Enter {limit} or more entries.",
        "maxItems": "Enter {limit} or fewer entries.",
        "pattern": "Enter a value in the expected format.",
        "format:date": "Enter a date as YYYY-MM-DD.",
        "format:email": "Enter a valid e-mail address.",
        "type:integer": "Enter a whole number.",
        "type:number": "Enter a number.",
        "type": "This value has the wrong type.",
        "unstorable": "This value cannot be stored (use finite numbers, text, true/false, lists and objects).",
    },
    "zh-CN": {
        "required": "此项为必填项。",
        "minLength": "请至少输入 {limit} 个字符。",
        "maxLength": "最多可输入 {limit} 个字符。",
        "minimum": "请输入不小于 {limit} 的值。",
        "maximum": "请输入不大于 {limit} 的值。",
        "exclusiveMinimum": "请输入大于 {limit} 的值。",
        "exclusiveMaximum": "请输入小于 {limit} 的值。",
        "enum": "请从列出的选项中选择一项。",
        "minItems": "请至少填写 {limit} 项。",
        "maxItems": "最多可填写 {limit} 项。",
        "pattern": "请按要求的格式输入。",
        "format:date": "请输入日期，格式为 YYYY-MM-DD。",
        "format:email": "请输入有效的电子邮件地址。",
        "type:integer": "请输入整数。",
        "type:number": "请输入数字。",
        "type": "此项的值类型不正确。",
        "unstorable": "无法保存此值（请使用有限数值、文本、是/否、列表和对象）。",
    },
}

_TEXTS: dict[str, dict[str, str]] = {
    "en": {"choose": "Choose…", "yes": "Yes", "no": "No", "add_row": "Add row"},
    "zh-CN": {"choose": "请选择…", "yes": "是", "no": "否", "add_row": "添加一行"},
}

_INPUT_WIDGETS = {"text", "textarea", "number", "date", "email", "select", "checkbox", "radio"}


@dataclass(frozen=True)
class Column:
    """One column header of an array table."""

    name: str
    label: str
    required: bool


@dataclass(frozen=True)
class Field:
    """One form control as the template draws it; cells of an array table are Fields too."""

    name: str
    id: str
    label: str
    widget: str
    required: bool = False
    help: str = ""
    value: Any = ""
    options: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    columns: list[Column] = field(default_factory=list)
    rows: list[list[Field]] = field(default_factory=list)
    add_row_label: str = ""


def parse_submission(schema: dict, formdata: Mapping[str, Any], uischema: dict | None = None) -> dict:
    """Turn flat HTML form fields into typed, nested data shaped by the schema."""
    return _parse_object(schema, formdata, uischema or {}, prefix="")


def validate(schema: dict, data: dict, lang: str = "en") -> None:
    """Validate data against the schema, raising FormInvalid with every error keyed by field path."""
    validator = _FormValidator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    messages = _MESSAGES[_language(lang)]
    errors: dict[str, list[str]] = {}
    require_storable(data, lang)
    for error in validator.iter_errors(data):
        path = ".".join(str(p) for p in error.path)
        errors.setdefault(path, []).append(_message(error, messages))
    if errors:
        raise FormInvalid(errors)


def require_storable(data: dict, lang: str = "en") -> None:
    """Refuse, per field, values task data cannot hold: NaN, Infinity (which JSON parsers accept) and
    over-long integers would otherwise fail at the database, not here."""
    message = _MESSAGES[_language(lang)]["unstorable"]
    errors = {key: [message] for key, _, _ in data_check.problems(data)}
    if errors:
        raise FormInvalid(errors)


def form_fields(schema: dict, uischema: dict | None, values: dict, errors: dict[str, list[str]],
                lang: str = "en") -> list[Field]:
    """Describe the schema's fields, with current values and errors, for forms/_fields.html."""
    lang = _language(lang)
    ui = uischema or {}
    required = set(schema.get("required", []))
    return [_field(name, prop, ui.get(name, {}), values.get(name), errors, name in required, lang)
            for name, prop in _ordered_properties(schema, ui)]


def read_form_files(forms_dir: Path) -> dict[str, dict]:
    """Load every *.schema.json and *.uischema.json in forms_dir, keyed by file name."""
    forms: dict[str, dict] = {}
    for path in sorted([*forms_dir.glob("*.schema.json"), *forms_dir.glob("*.uischema.json")]):
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path.name}: not valid JSON: {err}") from err
        if not isinstance(content, dict):
            raise ValueError(f"{path.name}: expected a JSON object at the top level")
        if path.name.endswith(".schema.json"):
            try:
                check_schema(content)
            except ValueError as err:
                raise ValueError(f"{path.name}: {err}") from err
        forms[path.name] = content
    return forms


def check_schema(schema: dict) -> None:
    """Raise ValueError when schema is not a valid JSON Schema draft 2020-12 document."""
    problem = _schema_problem(json.dumps(schema, sort_keys=True))
    if problem:
        raise ValueError(problem)


@functools.lru_cache(maxsize=512)
def _schema_problem(canonical: str) -> str | None:
    """Check one schema (as canonical JSON) against the metaschema once: deploys re-read the same forms."""
    try:
        Draft202012Validator.check_schema(json.loads(canonical))
    except SchemaError as err:
        return f"invalid JSON Schema at {err.json_path}: {err.message}"
    return None


def _required_at_field(validator: Any, required: list[str], instance: Any, schema: dict) -> Iterator[ValidationError]:
    """Report each missing property at its own path, so the error sits next to its input."""
    if validator.is_type(instance, "object"):
        for name in required:
            if name not in instance:
                yield ValidationError(f"{name!r} is a required property", path=[name])


_FormValidator = validators.extend(Draft202012Validator, {"required": _required_at_field})


def _message(error: ValidationError, messages: dict[str, str]) -> str:
    """Translate one jsonschema error for staff, falling back to jsonschema's own message."""
    keyword = error.validator
    if keyword in ("format", "type") and isinstance(error.validator_value, str):
        template = messages.get(f"{keyword}:{error.validator_value}", messages.get(keyword))
    else:
        template = messages.get(keyword)
    return template.format(limit=error.validator_value) if template else error.message


def _language(lang: str) -> str:
    """Map a locale such as zh_CN, zh-cn or en_GB to one of the languages forms are written in."""
    return "zh-CN" if lang.replace("_", "-").lower().startswith("zh") else "en"


def _type(prop: dict) -> str:
    """Return the property's JSON type, ignoring "null" in a type list."""
    kind = prop.get("type", "string")
    if isinstance(kind, list):
        return next((k for k in kind if k != "null"), "string")
    return kind


def _values(formdata: Mapping[str, Any], name: str) -> list[str]:
    """Return every submitted value of name, for MultiDicts and plain mappings alike."""
    if hasattr(formdata, "getlist"):
        return [str(v) for v in formdata.getlist(name)]
    value = formdata.get(name)
    return [] if value is None else [str(value)]


def _parse_object(schema: dict, formdata: Mapping[str, Any], ui: dict, prefix: str) -> dict:
    """Parse the object's properties from fields named prefix + property name."""
    data: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        value = _parse_property(prop, formdata, ui.get(name, {}), prefix + name)
        if value is not None:
            data[name] = value
    return data


def _parse_property(prop: dict, formdata: Mapping[str, Any], ui: dict, name: str) -> Any:
    """Return the typed value of one property, or None when the user left it empty."""
    kind = _type(prop)
    if kind == "array":
        items = prop.get("items", {})
        if _type(items) == "object":
            rows = _parse_rows(items, formdata, ui.get("items", {}), name)
        else:
            lines = [line.strip() for raw in _values(formdata, name) for line in raw.splitlines()]
            rows = [_parse_scalar(items, line) for line in lines if line]
        return rows or None
    raw = formdata.get(name)
    if kind == "boolean" and ui.get("ui:widget") not in ("radio", "select"):
        # An unchecked checkbox is not submitted at all, so absence means "no".
        return raw is not None and str(raw).strip().lower() not in _FALSE_WORDS
    if raw is None or not str(raw).strip():
        return None
    return _parse_scalar(prop, str(raw))


def _parse_rows(items: dict, formdata: Mapping[str, Any], ui: dict, name: str) -> list[dict]:
    """Parse rows named name-0-col, name-1-col...; rows the user left blank are dropped."""
    columns = items.get("properties", {})
    pattern = re.compile(rf"{re.escape(name)}-(\d+)-(.+)")
    indexes: set[int] = set()
    for key in formdata:
        match = pattern.fullmatch(key)
        if match and match[2] in columns and any(v.strip() for v in _values(formdata, key)):
            indexes.add(int(match[1]))
    return [_parse_object(items, formdata, ui, f"{name}-{index}-") for index in sorted(indexes)]


def _parse_scalar(prop: dict, raw: str) -> Any:
    """Convert one non-empty string; a bad number stays a string so validation reports its type."""
    text = raw.replace("\r\n", "\n").strip()
    kind = _type(prop)
    if kind == "boolean":
        return text.lower() not in _FALSE_WORDS
    if kind in ("integer", "number") and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    return text


def _ordered_properties(schema: dict, ui: dict) -> list[tuple[str, dict]]:
    """Return properties in ui:order first, then the rest in schema order."""
    props = schema.get("properties", {})
    order = [name for name in ui.get("ui:order", []) if name in props]
    return [(name, props[name]) for name in order] + [(n, p) for n, p in props.items() if n not in order]


def _localized(value: Any, lang: str) -> str:
    """Pick the language's text from a {"en": ..., "zh-CN": ...} dict, or return a plain string."""
    if isinstance(value, dict):
        return value.get(lang) or value.get("en", "")
    return value or ""


def _translation(prop: dict, lang: str) -> dict:
    return prop.get("x-i18n", {}).get(lang, {}) if lang != "en" else {}


def _label(prop: dict, name: str, lang: str) -> str:
    return _translation(prop, lang).get("title") or prop.get("title") or name.replace("_", " ").capitalize()


def _widget(prop: dict, ui: dict) -> str:
    widget = ui.get("ui:widget")
    if widget in _INPUT_WIDGETS:
        return widget
    kind = _type(prop)
    if kind == "array":
        return "array_table" if _type(prop.get("items", {})) == "object" else "textarea"
    if kind == "boolean":
        return "checkbox"
    if "enum" in prop:
        return "select"
    if kind in ("integer", "number"):
        return "number"
    return {"date": "date", "email": "email"}.get(prop.get("format", ""), "text")


def _options(prop: dict, widget: str, lang: str) -> list[tuple[str, str]]:
    texts = _TEXTS[lang]
    if _type(prop) == "boolean":
        options = [("true", texts["yes"]), ("false", texts["no"])]
    else:
        values = prop.get("enum", [])
        names = _translation(prop, lang).get("enumNames") or prop.get("enumNames") or []
        options = [(_display(v), str(names[i]) if i < len(names) else _display(v)) for i, v in enumerate(values)]
    # An empty first choice makes staff pick deliberately instead of submitting the first option.
    return [("", texts["choose"]), *options] if widget == "select" else options


def _attrs(prop: dict, ui: dict, widget: str, lang: str) -> dict[str, Any]:
    """Return HTML attributes that help typing but never block a submission in the browser.

    required, minlength, min, max and an integer step are left out on purpose: the browser would refuse
    the form in its own language before the server could answer with its bilingual per-field messages.
    """
    attrs: dict[str, Any] = {}
    if "maxLength" in prop:
        attrs["maxlength"] = prop["maxLength"]
    if widget == "number":
        attrs["step"] = "any"
    if widget == "textarea":
        attrs["rows"] = ui.get("ui:rows", 4)
    placeholder = _localized(ui.get("ui:placeholder"), lang)
    if placeholder:
        attrs["placeholder"] = placeholder
    return attrs


def _display(value: Any) -> Any:
    """Return value as the text an input, select or textarea shows; a list becomes one line per item."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "\n".join(_display(v) for v in value)
    return str(value)


def _field(name: str, prop: dict, ui: dict, value: Any, errors: dict[str, list[str]], required: bool,
           lang: str, html_name: str | None = None, path: str | None = None) -> Field:
    """Build the Field of one property; html_name and path differ from name inside array rows."""
    html_name = html_name or name
    path = path or name
    widget = _widget(prop, ui)
    common = {
        "name": html_name,
        "id": f"field-{html_name}",
        "label": _label(prop, name, lang),
        "widget": widget,
        "required": required,
        "help": _localized(ui.get("ui:help"), lang)
        or _translation(prop, lang).get("description") or prop.get("description", ""),
        "errors": errors.get(path, []),
    }
    if widget == "array_table":
        return _array_table(prop, ui, value or [], errors, lang, common, path)
    return Field(**common, value=bool(value) if widget == "checkbox" else _display(value),
                 options=_options(prop, widget, lang), attrs=_attrs(prop, ui, widget, lang))


def _array_table(prop: dict, ui: dict, rows: list[dict], errors: dict[str, list[str]], lang: str,
                 common: dict, path: str) -> Field:
    """Build an array-of-objects Field: the existing rows plus one empty row to fill in."""
    items = prop.get("items", {})
    item_ui = ui.get("items", {})
    required = set(items.get("required", []))
    columns = _ordered_properties(items, item_ui)
    count = max(len(rows) + 1, ui.get("ui:rows", 1))
    cells = [
        [_field(col, col_prop, item_ui.get(col, {}), (rows[i] if i < len(rows) else {}).get(col), errors,
                col in required, lang, html_name=f"{common['name']}-{i}-{col}", path=f"{path}.{i}.{col}")
         for col, col_prop in columns]
        for i in range(count)
    ]
    return Field(**common, value="", rows=cells, add_row_label=_TEXTS[lang]["add_row"],
                 columns=[Column(col, _label(p, col, lang), col in required) for col, p in columns])
