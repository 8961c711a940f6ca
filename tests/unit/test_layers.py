"""The layering rules of ARCHITECTURE.md, checked on the source code with `ast` (tests and migrations excluded)."""
from __future__ import annotations

import ast
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# bench/ is excluded like tests/: its harness seeds a database the way tests/conftest.py does.
SKIPPED_DIRS = {"tests", "bench", "migrations", "node_modules", "__pycache__", "instance"}

Finding = tuple[int, str]  # line, what is wrong there


def project_files() -> list[str]:
    """Return the project's Python files as POSIX paths relative to the root."""
    found = []
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS and not d.startswith("."))
        found += [Path(directory, name).relative_to(ROOT).as_posix() for name in files if name.endswith(".py")]
    return sorted(found)


def _imports(tree: ast.AST) -> Iterator[tuple[int, str, list[str]]]:
    """Yield (line, module, imported names) of every import, including importlib/__import__ with a literal."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [alias.name for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and _called_name(node) in ("import_module", "__import__")):
            yield node.lineno, node.args[0].value, []


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _imports_of(*packages: str) -> Callable[[ast.AST], Iterator[Finding]]:
    """Find imports of any of the top-level packages (a trailing '*' matches a prefix, as in flask_*)."""

    def matches(module: str) -> bool:
        top = module.split(".")[0]
        return any(top.startswith(p[:-1]) if p.endswith("*") else top == p for p in packages)

    def find(tree: ast.AST) -> Iterator[Finding]:
        for line, module, _ in _imports(tree):
            if matches(module):
                yield line, f"imports {module}"

    return find


def _commits(tree: ast.AST) -> Iterator[Finding]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "commit":
            yield node.lineno, f"calls {ast.unparse(node.func)}()"


def _database_access(tree: ast.AST) -> Iterator[Finding]:
    """Find SQLAlchemy imports, the `db` extension and commits: routes call services for all of that."""
    yield from _imports_of("sqlalchemy", "flask_sqlalchemy")(tree)
    for line, module, names in _imports(tree):
        if module == "app.extensions" and "db" in names:
            yield line, "imports db from app.extensions"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "session" and isinstance(node.value, ast.Name) \
                and node.value.id == "db":
            yield node.lineno, "uses db.session"
    yield from _commits(tree)


def _under(*folders: str) -> Callable[[str], bool]:
    return lambda path: any(path.startswith(folder + "/") for folder in folders)


def _outside(*folders: str) -> Callable[[str], bool]:
    inside = _under(*folders)
    return lambda path: not inside(path)


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    applies_to: Callable[[str], bool]
    find: Callable[[ast.AST], Iterator[Finding]]

    def violations(self, path: str, source: str) -> list[str]:
        if not self.applies_to(path):
            return []
        return [f"{path}:{line}: {what}" for line, what in self.find(ast.parse(source, filename=path))]


RULES = [
    Rule("spiff", "only app/engine imports SpiffWorkflow", _outside("app/engine"), _imports_of("SpiffWorkflow")),
    Rule("thin-routes", "routes (app/web, app/api) leave the database to services", _under("app/web", "app/api"),
         _database_access),
    Rule("commits", "the database session commits only in app/services", _outside("app/services"), _commits),
    Rule("handlers", "handlers never import Flask", _under("handlers"), _imports_of("flask", "flask_*")),
]


@pytest.mark.parametrize("rule", RULES, ids=[rule.id for rule in RULES])
def test_layer_rule(rule):
    violations = [found for path in project_files()
                  for found in rule.violations(path, (ROOT / path).read_text(encoding="utf-8"))]
    assert not violations, f"{rule.name}:\n" + "\n".join(violations)


def test_the_walk_sees_every_layer_and_skips_tests():
    files = project_files()
    assert {"app/engine/runner.py", "app/api/routes.py", "app/web/inbox.py", "app/services/tasks.py",
            "app/cli.py", "handlers/notify.py"} <= set(files)
    assert not [f for f in files if f.startswith(("tests/", "bench/", "migrations/", ".venv/", "node_modules/"))]


SPIFF, ROUTES, COMMITS, HANDLERS = RULES

SELF_TESTS = [
    # rule, path, source, how many violations the checker must find
    (SPIFF, "app/services/tasks.py", "from SpiffWorkflow.bpmn.workflow import BpmnWorkflow\n", 1),
    (SPIFF, "app/web/inbox.py", "import SpiffWorkflow\n", 1),
    (SPIFF, "handlers/notify.py", "import importlib\nimportlib.import_module('SpiffWorkflow.bpmn')\n", 1),
    (SPIFF, "app/engine/runner.py", "from SpiffWorkflow.bpmn.workflow import BpmnWorkflow\n", 0),
    (SPIFF, "app/services/tasks.py", "from app import engine\n", 0),
    (ROUTES, "app/web/inbox.py", "from sqlalchemy import select\n", 1),
    (ROUTES, "app/api/routes.py", "from app.extensions import api, db\n", 1),
    (ROUTES, "app/api/routes.py", "def view(db):\n    return db.session.get(1)\n", 1),
    (ROUTES, "app/web/inbox.py", "def view(session):\n    session.commit()\n", 1),
    (ROUTES, "app/web/inbox.py", "from app.services import tasks\ntasks.complete_task(1, {}, None)\n", 0),
    (ROUTES, "app/services/tasks.py", "from sqlalchemy import select\n", 0),
    (COMMITS, "app/cli.py", "from app.extensions import db\ndb.session.commit()\n", 1),
    (COMMITS, "app/engine/runner.py", "def run(session):\n    session.commit()\n", 1),
    (COMMITS, "handlers/documents.py", "def render(ctx):\n    ctx.session.commit()\n", 1),
    (COMMITS, "app/services/tasks.py", "from app.extensions import db\ndb.session.commit()\n", 0),
    (COMMITS, "app/cli.py", "from app.extensions import db\ndb.session.flush()\n", 0),
    (HANDLERS, "handlers/notify.py", "from flask import current_app\n", 1),
    (HANDLERS, "handlers/notify.py", "import flask_login\n", 1),
    (HANDLERS, "handlers/notify.py", "from sqlalchemy import select\n", 0),
    (HANDLERS, "app/services/tasks.py", "from flask import current_app\n", 0),
]


@pytest.mark.parametrize("rule, path, source, expected", SELF_TESTS,
                         ids=[f"{rule.id}-{n}" for n, (rule, *_) in enumerate(SELF_TESTS)])
def test_the_checker_detects_violations_in_synthetic_source(rule, path, source, expected):
    assert len(rule.violations(path, source)) == expected
