"""Audit trails in words: every action code the code base records has a label, and values read as written."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.web import display

ROOT = Path(__file__).resolve().parents[3]


def _recorded_actions() -> set[str]:
    """Return the action codes passed to audit.record in app/ and handlers/, and "<purpose>.failed" of
    users.check_password for each purpose its callers pass."""
    actions: set[str] = set()
    for path in [*ROOT.glob("app/**/*.py"), *ROOT.glob("handlers/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr == "record" and isinstance(func.value, ast.Name)
                    and func.value.id == "audit" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)):
                actions.add(node.args[1].value)
            actions |= {f"{k.value.value}.failed" for k in node.keywords
                        if k.arg == "purpose" and isinstance(k.value, ast.Constant)}
    return actions


def test_every_recorded_action_has_a_label():
    actions = _recorded_actions()
    assert {"task.completed", "signature.applied", "login.failed", "signature.failed"} <= actions
    assert sorted(actions - display.ACTIONS.keys()) == []


@pytest.mark.parametrize(("value", "text"), [
    ({"decision": "批准", "n": 2}, '{"decision": "批准", "n": 2}'),
    (["退回"], '["退回"]'),
    (None, ""),
])
def test_json_text_keeps_chinese_as_written(value, text):
    assert display.json_text(value) == text
