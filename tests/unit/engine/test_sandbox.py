"""The script sandbox refuses escapes before they run and keeps SpiffWorkflow's task-data semantics."""
from __future__ import annotations

import copy
import re
import sys
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from types import FrameType
from xml.sax.saxutils import escape

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import TaskDataEnvironment
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

from app.engine.sandbox import SandboxedEnvironment
from app.engine.script_policy import _compile, compile_source
from app.engine.working_days import add_working_days, working_days_between
from app.exceptions import ScriptRejected

NOW = datetime(2026, 3, 2, 9, 30)
HELPERS = {  # what the worker gives scripts at NOW, for SpiffWorkflow's own environment to compare with
    "date": date, "datetime": datetime, "timedelta": timedelta,
    "add_working_days": add_working_days, "working_days_between": working_days_between,
    "today": lambda: date(2026, 3, 2), "now": lambda: datetime(2026, 3, 2, 9, 30),
}


@pytest.fixture
def env() -> SandboxedEnvironment:
    return SandboxedEnvironment(now=NOW, time_limit=0.2)


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


# Refused at compile time or by the unavailable-name check, both before the first line runs.
REFUSED_BEFORE_RUN = [
    ("__import__('os').system('touch {sentinel}')", '"__import__"'),
    ("import os\nos.system('touch {sentinel}')", "imports are not allowed"),
    ("from os import system\nsystem('touch {sentinel}')", "imports are not allowed"),
    ("open('/etc/passwd').read()", '"open" is not available'),
    ("open('{sentinel}', 'w').write('x')", '"open" is not available'),
    ("(lambda f=open: f('{sentinel}', 'w'))()", '"open" is not available'),
    ("().__class__.__base__.__subclasses__()", '"__class__"'),
    ("[c for c in ().__class__.__bases__]", '"__bases__"'),
    ("getattr(x, '__globals__')", '"getattr" is not available'),
    ("setattr(date, 'today', x)", '"setattr" is not available'),
    ("exec(\"open('{sentinel}', 'w')\")", "Exec calls are not allowed"),
    ("eval(\"open('{sentinel}', 'w')\")", "Eval calls are not allowed"),
    ("compile('1', '', 'eval')", '"compile" is not available'),
    ("globals()", '"globals" is not available'),
    ("locals()", '"locals" is not available'),
    ("vars()", '"vars" is not available'),
    ("type(1)", '"type" is not available'),
    ("breakpoint()", '"breakpoint"'),
    ("input()", '"input" is not available'),
    ("help()", '"help" is not available'),
    ("memoryview(b'')", '"memoryview" is not available'),
    ("'{{0.__class__}}'.format(1)", '"format" is a forbidden attribute'),
    ("'{{x.__class__.__mro__}}'.format_map({{'x': 1}})", '"format_map" is a forbidden attribute'),
    ("f'{{x.__class__}}'", '"__class__"'),
    ("(lambda: 0).__code__", '"__code__"'),
    ("(x for x in []).gi_frame.f_globals", '"gi_frame"'),
    ("def g():\n    yield 1\ng().gi_frame.f_back", '"f_back"'),
    ("x.func_globals", '"func_globals" is a forbidden attribute'),
    ("date.mro()[1]", '"mro" is a forbidden attribute'),
    ("try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    e.__traceback__.tb_frame", '"__traceback__"'),
    ("x._private", '"_private"'),
    ("class Escape:\n    pass", "class definitions are not allowed"),
    ("try:\n    pass\nexcept:\n    pass", 'bare "except:"'),
    ("try:\n    pass\nfinally:\n    pass", '"finally" is not allowed'),
    ("print('x')", '"print" is not available'),
    ("f'{{x:>{{10 ** 9}}}}'", "format specs must be constant"),
]

# Stopped while running by the time limit or a size guard, before the runaway statement completes.
STOPPED_WHILE_RUNNING = [
    ("while True: pass", "time limit"),
    ("i = 0\nwhile True:\n    i += 1", "time limit"),
    ("def spin():\n    while True:\n        pass\nspin()", "time limit"),
    ("add_working_days(today(), 10 ** 6)", "time limit"),
    ("sum(range(10 ** 12))", "range() with more than"),
    ("'a' * 10 ** 10", "Repeating a sequence"),
    ("[0] * 10 ** 9", "Repeating a sequence"),
    ("10 ** 10 ** 10", "Integers above"),
    ("1 << 10 ** 9", "Integers above"),
    ("'%*d' % (10 ** 9, 1)", "%-format widths"),
    ("b'%10000000000s' % b'x'", "%-format widths"),
    ("'x'.ljust(10 ** 10)", "ljust() would build"),
    ("s = 'a' * 10 ** 6\ns.replace('a', s)", "replace() would build"),
    ("items = [1]\nfor _ in range(64):\n    items.extend(items)", "extend() would build"),
    ("s = 'ab'\nfor _ in range(64):\n    s += s", "Concatenating to more than"),
    ("sum([[0] * 1000] * 1000, [])", "sum() cannot concatenate sequences"),
]


@pytest.mark.parametrize(("source", "message"), REFUSED_BEFORE_RUN)
def test_escape_is_refused_before_anything_runs(env: SandboxedEnvironment, sentinel: Path, source: str,
                                                 message: str) -> None:
    data = {"x": 1}
    script = f"before = 1\n{source.format(sentinel=sentinel)}\nafter = 1"
    with pytest.raises(ScriptRejected, match=re.escape(message)) as refused:
        env.execute(script, data)
    assert "Line " in refused.value.message
    assert data == {"x": 1}
    assert not sentinel.exists()


@pytest.mark.parametrize(("source", "message"), STOPPED_WHILE_RUNNING)
def test_runaway_is_stopped_with_its_line(source: str, message: str) -> None:
    # A size guard must name itself: give it time to, on a loaded machine, before the time limit would stop
    # the script first (the doubling loops copy hundreds of megabytes before the guard refuses).
    env = SandboxedEnvironment(now=NOW, time_limit=0.2 if message == "time limit" else 3.0)
    data: dict = {}
    started = time.monotonic()
    with pytest.raises(ScriptRejected, match=re.escape(message)) as stopped:
        env.execute(f"before = 1\n{source}\nafter = 1", data)
    assert time.monotonic() - started < 5
    assert stopped.value.message.startswith("Line ")
    assert data["before"] == 1
    assert "after" not in data


def test_time_limit_names_the_line_of_the_loop() -> None:
    with pytest.raises(ScriptRejected, match=r"^Line 3: Script stopped after exceeding the 0.1 s time limit"):
        SandboxedEnvironment(time_limit=0.1).execute("a = 1\nb = 2\nwhile True: pass", {})


@pytest.mark.parametrize("expression", [
    "__import__('os').system('ls')", "open('/etc/passwd').read()", "().__class__.__bases__",
    "'{0.__class__}'.format(1)", "[x for x in range(10 ** 12)]", "(lambda: 0).__globals__",
])
def test_escape_in_an_expression_is_refused(env: SandboxedEnvironment, expression: str) -> None:
    with pytest.raises(ScriptRejected):
        env.evaluate(expression, {})


# Scripts, starting data and the data expected afterwards; SpiffWorkflow's own environment must agree.
BUSINESS_SCRIPTS = [
    ("total = sum(line['qty'] for line in lines)", {"lines": [{"qty": 2}, {"qty": 3}]}, {"total": 5}),
    ("label = name.upper() + '-' + str(n).zfill(4)", {"name": "capa", "n": 7}, {"label": "CAPA-0007"}),
    ("record['status'] = 'closed'", {"record": {"status": "open"}}, {"record": {"status": "closed"}}),
    ("items.append(3)\ncount = len(items)", {"items": [1, 2]}, {"items": [1, 2, 3], "count": 3}),
    ("due = add_working_days(date(2026, 1, 2), 5)", {}, {"due": date(2026, 1, 9)}),
    ("nxt = date(2026, 1, 2) + timedelta(days=1)\nday = nxt.weekday()\niso = nxt.isoformat()", {},
     {"nxt": date(2026, 1, 3), "day": 5, "iso": "2026-01-03"}),
    ("shown = f'{when:%d.%m.%Y}'\nstamp = when.strftime('%Y-%m-%d')", {"when": date(2026, 5, 4)},
     {"shown": "04.05.2026", "stamp": "2026-05-04"}),
    ("parsed = datetime.strptime('2026-01-02', '%Y-%m-%d')", {}, {"parsed": datetime(2026, 1, 2)}),
    ("first, second = pair", {"pair": [1, 2]}, {"first": 1, "second": 2}),
    ("keys = []\nfor k, v in d.items():\n    keys.append(k + str(v))", {"d": {"a": 1}},
     {"keys": ["a1"], "k": "a", "v": 1}),  # loop variables land in task data, as upstream
    ("def double(v):\n    return v * 2\nresult = double(21)", {}, {"result": 42}),
    ("risk = 'high' if score > 7 else 'low'", {"score": 9}, {"risk": "high"}),
    ("n = 0\nwhile n < 5:\n    n += 1", {}, {"n": 5}),
    ("squares = {i: i * i for i in range(4)}", {}, {"squares": {0: 0, 1: 1, 2: 4, 3: 9}}),
    ("try:\n    v = int(raw)\nexcept ValueError:\n    v = None", {"raw": "x"}, {"v": None}),
    ("tags = sorted(set(tags), key=lambda t: t.lower())", {"tags": ["b", "A", "b"]}, {"tags": ["A", "b"]}),
    ("code = '%s-%03d' % ('DEV', 7)\nmissing = d.get('k', 0)", {"d": {}}, {"code": "DEV-007", "missing": 0}),
    ("big = 2 ** 64\nrows = [0] * 3 + [1]", {}, {"big": 2 ** 64, "rows": [0, 0, 0, 1]}),
    ("spent = sum([timedelta(hours=2), timedelta(hours=3)], timedelta())", {}, {"spent": timedelta(hours=5)}),
    ("kind = type.title()", {"type": "deviation"}, {"kind": "Deviation"}),
]


@pytest.mark.parametrize(("script", "before", "after"), BUSINESS_SCRIPTS)
def test_business_script_keeps_spiffworkflow_data_semantics(env: SandboxedEnvironment, script: str, before: dict,
                                                            after: dict) -> None:
    data, reference = copy.deepcopy(before), copy.deepcopy(before)
    assert env.execute(script, data) is True
    TaskDataEnvironment(dict(HELPERS)).execute(script, reference)
    assert data == {**before, **after}
    assert data == reference


@pytest.mark.parametrize(("expression", "data", "expected"), [
    ("score > 4 and kind == 'major'", {"score": 5, "kind": "major"}, True),
    ("  score > 4", {"score": 1}, False),
    ("type == 'deviation'", {"type": "deviation"}, True),
    ("today() + timedelta(days=3)", {}, date(2026, 3, 5)),
    ("working_days_between(date(2026, 1, 2), date(2026, 1, 9))", {}, 5),
    ("now().hour", {}, 9),
    ("len(items) if items else 0", {"items": [1, 2]}, 2),
    ("isinstance(x, int) and max(x, 3) == 3", {"x": 2}, True),
    ("d.get('k')", {"d": {"k": "v"}}, "v"),
    ("date", {"date": "data wins over a helper, as in SpiffWorkflow"}, "data wins over a helper, as in SpiffWorkflow"),
])
def test_expression_sees_data_and_helpers(env: SandboxedEnvironment, expression: str, data: dict,
                                          expected: object) -> None:
    before = copy.deepcopy(data)
    assert env.evaluate(expression, data) == expected
    assert data == before


def test_external_context_is_visible_but_not_kept(env: SandboxedEnvironment) -> None:
    data: dict = {}
    env.execute("copy = doc['title']", data, external_context={"doc": {"title": "SOP-1"}})
    assert data == {"copy": "SOP-1"}
    assert env.evaluate("doc['title'] == 'SOP-1'", {}, external_context={"doc": {"title": "SOP-1"}}) is True


def test_helpers_functions_and_builtins_do_not_leak_into_task_data(env: SandboxedEnvironment) -> None:
    data = {"x": 1}
    env.execute("f = lambda: 1\ndef g():\n    return 2\ndate = 5\ny = f() + g()", data)
    assert data == {"x": 1, "y": 3}


def test_task_data_overwriting_a_helper_is_refused(env: SandboxedEnvironment) -> None:
    data = {"today": "2026-01-01"}
    with pytest.raises(ValueError, match="today"):
        env.execute("x = 1", data)
    assert data == {"today": "2026-01-01"}


def test_del_removes_a_variable_from_task_data(env: SandboxedEnvironment) -> None:
    data = {"temp": 1, "keep": 2}
    env.execute("del temp", data)
    assert data == {"keep": 2}


def test_data_named_like_a_missing_builtin_is_usable(env: SandboxedEnvironment) -> None:
    data = {"input": 3}
    env.execute("output = input * 2\nid = 7\nsame = id", data)
    assert data == {"input": 3, "output": 6, "id": 7, "same": 7}


@pytest.mark.parametrize(("source", "error"), [
    ("y = missing", NameError),
    ("y = 1 / 0", ZeroDivisionError),
    ("y = 'a' + 1", TypeError),
    ("y = {}['k']", KeyError),
    ("y = (", SyntaxError),
])
def test_ordinary_errors_propagate_unchanged(env: SandboxedEnvironment, source: str, error: type) -> None:
    with pytest.raises(error):
        env.execute(source, {})


def test_previous_trace_function_is_restored(env: SandboxedEnvironment) -> None:
    def tracer(frame: FrameType, event: str, arg: object) -> None:
        return None

    original = sys.gettrace()
    sys.settrace(tracer)
    try:
        env.execute("x = 1", {})
        with pytest.raises(ScriptRejected):
            env.execute("while True: pass", {})
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(original)


def test_concurrent_runs_keep_their_own_deadlines() -> None:
    results: dict[str, object] = {}
    slow = SandboxedEnvironment(time_limit=0.3)
    quick = SandboxedEnvironment(time_limit=5)

    def runaway() -> None:
        try:
            slow.execute("while True: pass", {})
        except ScriptRejected as exc:
            results["runaway"] = exc.message

    def worker() -> None:
        data: dict = {}
        quick.execute("t = 0\nfor i in range(20000):\n    t += i", data)
        results["worker"] = data["t"]

    threads = [threading.Thread(target=runaway), threading.Thread(target=worker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results == {"runaway": "Line 1: Script stopped after exceeding the 0.3 s time limit.",
                       "worker": sum(range(20000))}


def test_compiled_code_is_cached() -> None:
    compile_source("score > 1234", "eval")
    hits = _compile.cache_info().hits
    compile_source("score > 1234", "eval")
    assert _compile.cache_info().hits == hits + 1


BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="defs" targetNamespace="http://qualiflow.test">
  <bpmn:process id="triage" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="score_it"/>
    <bpmn:scriptTask id="score_it" name="Score">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>{script}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="score_it" targetRef="gateway"/>
    <bpmn:exclusiveGateway id="gateway" default="to_low">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>to_high</bpmn:outgoing><bpmn:outgoing>to_low</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="to_high" sourceRef="gateway" targetRef="high">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{condition}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="to_low" sourceRef="gateway" targetRef="low"/>
    <bpmn:scriptTask id="high"><bpmn:incoming>to_high</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>route = "high"</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="low"><bpmn:incoming>to_low</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:script>route = "low"</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="high" targetRef="end"/>
    <bpmn:sequenceFlow id="f4" sourceRef="low" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def run_triage(script: str, condition: str = "score > 4") -> BpmnWorkflow:
    """Parse the triage diagram with script and condition, run it in the sandbox and return the workflow."""
    parser = SpiffBpmnParser()
    parser.add_bpmn_str(BPMN.format(script=escape(script), condition=escape(condition)).encode())
    engine = PythonScriptEngine(environment=SandboxedEnvironment(now=NOW))
    workflow = BpmnWorkflow(parser.get_spec("triage"), script_engine=engine)
    workflow.do_engine_steps()
    return workflow


@pytest.mark.parametrize(("count", "route"), [(3, "high"), (1, "low")])
def test_workflow_runs_script_and_gateway_in_the_sandbox(count: int, route: str) -> None:
    workflow = run_triage(f"items = list(range({count}))\nscore = len(items) * 2\ndue = add_working_days(today(), 5)")
    assert workflow.is_completed()
    assert workflow.last_task.data == {"items": list(range(count)), "score": count * 2,
                                       "due": date(2026, 3, 9), "route": route}


def test_workflow_script_escape_fails_the_task(sentinel: Path) -> None:
    with pytest.raises(WorkflowTaskException) as failed:
        run_triage(f"import os\nos.system('touch {sentinel}')")
    assert failed.value.error_type == "ScriptRejected"
    assert "imports are not allowed" in str(failed.value)
    assert not sentinel.exists()


def test_workflow_condition_escape_fails_the_gateway(sentinel: Path) -> None:
    with pytest.raises(WorkflowTaskException) as failed:
        run_triage("score = 5", condition=f"__import__('os').system('touch {sentinel}') == 0")
    assert failed.value.error_type == "ScriptRejected"
    assert not sentinel.exists()


def test_get_reads_optional_task_data():
    from app.engine.sandbox import SandboxedEnvironment
    environment = SandboxedEnvironment()
    assert environment.evaluate("get('lots', '') or 'none'", {}) == "none"
    assert environment.evaluate("get('lots', '')", {"lots": "L1"}) == "L1"
    data = {"a": 1}
    environment.execute("b = get('a', 0) + get('missing', 10)", data)
    assert data == {"a": 1, "b": 11}
