"""The layering rules of docs/architecture.md, checked on the source code with `ast` (tests and migrations excluded)."""
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


def _imports_under(*prefixes: str) -> Callable[[ast.AST], Iterator[Finding]]:
    """Find imports of the project's own modules under any of the dotted prefixes (app.models, handlers)."""

    def find(tree: ast.AST) -> Iterator[Finding]:
        for line, module, names in _imports(tree):
            targets = [f"{module}.{name}" for name in names] if names else [module]
            if any(t == p or t.startswith(p + ".") for t in (module, *targets) for p in prefixes):
                yield line, f"imports {module}"

    return find


RULES = [
    Rule("spiff", "only app/engine imports SpiffWorkflow", _outside("app/engine"), _imports_of("SpiffWorkflow")),
    Rule("thin-routes", "routes (app/web, app/api) leave the database to services", _under("app/web", "app/api"),
         _database_access),
    Rule("commits", "the database session commits only in app/services", _outside("app/services"), _commits),
    Rule("handlers", "handlers never import Flask", _under("handlers"), _imports_of("flask", "flask_*")),
    Rule("route-models", "routes take constants and types from services, never from app.models",
         _under("app/web", "app/api"), _imports_under("app.models")),
    Rule("services-handlers", "services never import handlers/ (handlers register with the platform's registry)",
         _under("app/services"), _imports_under("handlers")),
    Rule("platform-domains", "the platform (services/workflow, services/evidence) never imports a domain",
         _under("app/services/workflow", "app/services/evidence"),
         _imports_under("app.services.lots", "app.services.procedures", "app.services.studio")),
    Rule("lots-procedures", "lot data never imports a procedure or the studio", _under("app/services/lots"),
         _imports_under("app.services.procedures", "app.services.studio")),
]


@pytest.mark.parametrize("rule", RULES, ids=[rule.id for rule in RULES])
def test_layer_rule(rule):
    violations = [found for path in project_files()
                  for found in rule.violations(path, (ROOT / path).read_text(encoding="utf-8"))]
    assert not violations, f"{rule.name}:\n" + "\n".join(violations)


def test_the_walk_sees_every_layer_and_skips_tests():
    files = project_files()
    assert {"app/engine/runner.py", "app/api/routes.py", "app/web/inbox.py", "app/services/workflow/tasks.py",
            "app/cli.py", "handlers/notify.py"} <= set(files)
    assert not [f for f in files if f.startswith(("tests/", "bench/", "migrations/", ".venv/", "node_modules/"))]


SPIFF, ROUTES, COMMITS, HANDLERS, ROUTE_MODELS, SERVICE_HANDLERS, PLATFORM, LOTS = RULES

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
    (ROUTE_MODELS, "app/web/lots.py", "from app.models.lots import MATERIAL_ONLY_STATUSES\n", 1),
    (ROUTE_MODELS, "app/api/auth.py", "from app.models import User\n", 1),
    (ROUTE_MODELS, "app/api/auth.py", "from app import models\n", 1),
    (ROUTE_MODELS, "app/web/lots.py", "from app.services.lots import lots\n", 0),
    (ROUTE_MODELS, "app/services/lots/lots.py", "from app.models import ProductLot\n", 0),
    (SERVICE_HANDLERS, "app/services/workflow/execution.py", "import handlers\n", 1),
    (SERVICE_HANDLERS, "app/services/studio/studio.py", "from handlers import REGISTRY\n", 1),
    (SERVICE_HANDLERS, "app/services/workflow/execution.py", "from app.services.workflow import registry\n", 0),
    (PLATFORM, "app/services/workflow/form_checks.py", "from app.services.procedures import recalls\n", 1),
    (PLATFORM, "app/services/evidence/audit.py", "from app.services import studio\n", 1),
    (PLATFORM, "app/services/workflow/tasks.py", "from app.services.evidence import audit\n", 0),
    (PLATFORM, "app/services/procedures/recalls.py", "from app.services.lots import trace\n", 0),
    (LOTS, "app/services/lots/lots.py", "from app.services.procedures.capa import check_source\n", 1),
    (LOTS, "app/services/procedures/capa.py", "from app.services.lots import lots\n", 0),
]


@pytest.mark.parametrize("rule, path, source, expected", SELF_TESTS,
                         ids=[f"{rule.id}-{n}" for n, (rule, *_) in enumerate(SELF_TESTS)])
def test_the_checker_detects_violations_in_synthetic_source(rule, path, source, expected):
    assert len(rule.violations(path, source)) == expected


def module_graph() -> dict[str, set[str]]:
    """Return each project module's imports of other project modules (function-level imports included)."""
    modules = {}
    for path in project_files():
        name = path[:-3].replace("/", ".")
        modules[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in modules.items():
        edges = set()
        for _, module, names in _imports(ast.parse((ROOT / path).read_text(encoding="utf-8"))):
            for imported in names or [None]:
                candidate = f"{module}.{imported}" if imported else module
                edges.add(candidate if candidate in modules else module)
        graph[name] = {edge for edge in edges if edge in modules and edge != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))
    return cycles


def test_no_import_cycle_between_project_modules():
    cycles = import_cycles(module_graph())
    assert not cycles, "import cycles (imports must point one way):\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle_through_three_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_the_module_graph_sees_registration_edges():
    graph = module_graph()
    assert "app.services.workflow.registry" in graph["handlers"]
    assert "app.services.workflow.registry" in graph["app.services.procedures.recalls"]
