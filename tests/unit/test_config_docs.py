"""Operator documentation: every environment variable that config.py (and deploy/gunicorn.conf.py) reads has a row
in a configuration table of docs/deploying.md or docs/operating.md, with its default and what it sets - so a new
setting cannot ship undocumented."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READERS = [ROOT / "config.py", ROOT / "deploy" / "gunicorn.conf.py"]
DOCS = [ROOT / "docs" / "deploying.md", ROOT / "docs" / "operating.md"]
NAME = re.compile(r"^[A-Z][A-Z0-9_]+$")


def _reader(call: ast.Call) -> bool:
    """os.environ.get(...), environ.get(...), os.getenv(...), or a helper of config.py that takes the variable's name
    first (_bool(...))."""
    func = call.func
    if isinstance(func, ast.Attribute):
        if func.attr == "getenv":
            return True
        return func.attr == "get" and isinstance(func.value, (ast.Attribute, ast.Name)) and (
            getattr(func.value, "attr", None) == "environ" or getattr(func.value, "id", None) == "environ")
    return isinstance(func, ast.Name) and func.id.startswith("_")


def variables_read(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and node.args and _reader(node):
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and NAME.match(first.value):
                found.add(first.value)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and \
                node.value.attr == "environ" and isinstance(node.slice, ast.Constant):
            found.add(node.slice.value)
    return found


def documented_rows() -> dict[str, list[str]]:
    """Variable -> the cells of the table row whose first cell names it (in backticks)."""
    rows: dict[str, list[str]] = {}
    for path in DOCS:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("|") or set(line) <= set("|-: "):
                continue
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
                rows.setdefault(name, cells)
    return rows


def test_the_readers_are_found():
    names = set().union(*(variables_read(path) for path in READERS))
    assert {"DATABASE_URL", "SECRET_KEY", "QUALIFLOW_SCHEDULER", "QUALIFLOW_API_TOKEN_DAYS", "QUALIFLOW_BIND"} <= names


@pytest.mark.parametrize("name", sorted(set().union(*(variables_read(path) for path in READERS))))
def test_every_variable_read_has_a_row_with_its_default_and_meaning(name):
    rows = documented_rows()
    assert name in rows, f"{name} is read by config.py but has no row in docs/deploying.md or docs/operating.md"
    cells = rows[name]
    assert len(cells) >= 3 and cells[1] and cells[2], f"{name}: the row needs a default and what it sets: {cells}"
