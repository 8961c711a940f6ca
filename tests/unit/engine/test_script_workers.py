"""Script workers: hostile scripts and conditions are refused at deploy or stopped at their element by an OS limit,
and C-level work in one never holds up another thread of the app."""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID
from xml.sax.saxutils import escape

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

from app.engine import script_policy, script_workers
from app.engine.sandbox import SandboxedEnvironment
from app.engine.script_engine import QualiflowScriptEngine
from app.engine.validation import parse_diagram
from app.exceptions import InvalidBpmn, ScriptRejected
from tests.unit.engine.test_sandbox import BPMN  # a script task "score_it", then a condition on flow "to_high"

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TIME_LIMIT = 0.3  # short, so that the time bombs of the table end quickly
# 20,000 ints that all hash alike, built by C code: a set of them takes seconds of one C call (quadratic).
COLLIDING = "range(0, 20000 * (2 ** 61 - 1), 2 ** 61 - 1)"

SCRIPT_LINE = 9  # the line of <bpmn:script> in BPMN, where a script's line 1 is
DEPLOY, RUN = "refused at deploy", "stopped when it runs"

# (id, script, condition, where it ends, the element named, a pattern of the reason)
# Each count compares a million 15,000-digit integers to their last digit (~0.5 s on a quick machine); twenty of
# them outlast the 1 s limit on any machine, while every value stays within the sandbox's size guards.
C_LEVEL_COMPARES = "x = [2 ** 49990] * 10 ** 6\ny = 2 ** 49990 + 1\nn = [x.count(y) for _ in range(20)]"

HOSTILE = [
    # Sandbox escapes
    ("subclasses", "x = ().__class__.__base__.__subclasses__()", "True", DEPLOY, "score_it", '"__class__"'),
    ("bases", "x = [c for c in ().__class__.__bases__]", "True", DEPLOY, "score_it", '"__class__"'),
    ("gi_frame", "g = (i for i in [1])\nf = g.gi_frame.f_back", "True", DEPLOY, "score_it", '"gi_frame"'),
    ("format", "x = '{0.__class__}'.format(1)", "True", DEPLOY, "score_it", '"format" is a forbidden'),
    ("format_map", "x = '{a.__init__}'.format_map({'a': 1})", "True", DEPLOY, "score_it", '"format_map"'),
    ("f-string", "a = 1\nx = f'{a.__class__}'", "True", DEPLOY, "score_it", '"__class__"'),
    ("f-string spec", "x = f'{1:>{10 ** 9}}'", "True", DEPLOY, "score_it", "format specs must be constant"),
    ("code", "x = (lambda: 0).__code__", "True", DEPLOY, "score_it", '"__code__"'),
    ("mro", "x = date.mro()", "True", DEPLOY, "score_it", '"mro" is a forbidden'),
    ("private", "x = date._private", "True", DEPLOY, "score_it", '"_private"'),
    ("import", "import os", "True", DEPLOY, "score_it", "imports are not allowed"),
    ("from import", "x = 1\nfrom subprocess import run", "True", DEPLOY, "score_it", "line 2: imports are not"),
    ("__import__", "x = __import__('os')", "True", DEPLOY, "score_it", '"__import__"'),
    ("open", "x = open('/etc/passwd').read()", "True", DEPLOY, "score_it", '"open" is not available'),
    ("getattr", "x = getattr(1, 'real')", "True", DEPLOY, "score_it", '"getattr" is not available'),
    ("exec", "exec('x = 1')", "True", DEPLOY, "score_it", "Exec calls are not allowed"),
    ("eval", "x = eval('1')", "True", DEPLOY, "score_it", "Eval calls are not allowed"),
    ("compile", "x = compile('1', '', 'eval')", "True", DEPLOY, "score_it", '"compile" is not available'),
    ("globals", "x = globals()", "True", DEPLOY, "score_it", '"globals" is not available'),
    ("vars", "x = vars()", "True", DEPLOY, "score_it", '"vars" is not available'),
    ("repr", "x = repr([0] * 10)", "True", DEPLOY, "score_it", '"repr" is not available'),
    ("bytearray", "x = bytearray(10 ** 9)", "True", DEPLOY, "score_it", '"bytearray" is not available'),
    ("print", "print('x')", "True", DEPLOY, "score_it", '"print" is not available'),
    ("class", "class A:\n    pass", "True", DEPLOY, "score_it", "class definitions are not allowed"),
    ("bare except", "try:\n    x = 1\nexcept:\n    x = 2", "True", DEPLOY, "score_it", 'bare "except:"'),
    ("finally", "try:\n    x = 1\nfinally:\n    x = 2", "True", DEPLOY, "score_it", '"finally" is not allowed'),
    ("condition escape", "x = 1", "().__class__ is None", DEPLOY, "to_high", '"__class__"'),
    ("condition import", "x = 1", "__import__('os') is None", DEPLOY, "to_high", '"__import__"'),
    # Parse bombs
    ("nested parentheses", "x = " + "(" * 300 + "1" + ")" * 300, "True", DEPLOY, "score_it", "syntax error"),
    ("nested lists", "x = " + "[" * 300 + "]" * 300, "True", DEPLOY, "score_it", "syntax error"),
    ("long expression", "x = " + "+".join(["1"] * 100_000), "True", DEPLOY, "score_it", "nested too deeply"),
    ("unary chain", "x = " + "-" * 100_000 + "1", "True", DEPLOY, "score_it", "nested too deeply|syntax error"),
    ("nested condition", "x = 1", "(" * 300 + "x" + ")" * 300, DEPLOY, "to_high", "syntax error"),
    # C-level time bombs: one call that would hold the GIL for seconds
    ("colliding set", f"items = {COLLIDING}\ns = set(items)", "True", RUN, "score_it", "limit"),
    ("colliding dict", f"items = {COLLIDING}\nd = dict(zip(items, items))", "True", RUN, "score_it", "limit"),
    ("colliding condition", "x = 1", f"len(set({COLLIDING})) > 0", RUN, "gateway", "limit"),
    ("big int compares", C_LEVEL_COMPARES, "True", RUN, "score_it", "time limit"),
    ("big int product", "x = 2 ** 99999 * 2 ** 99999", "True", RUN, "score_it", "Integers above"),
    ("sorted huge list", "x = sorted([(i * 7919) % 1000003 for i in range(10 ** 6)] * 1, key=str)\ny = sorted(x * 1)",
     "True", RUN, "score_it", "limit"),
    # Memory bombs: C-level formatting and growth
    ("wide %-format", "s = ('%999999s' * 500) % tuple(['x'] * 500)", "True", RUN, "score_it", "limit"),
    ("str of big container", "a = [0] * 10 ** 6\ns = str([a] * 300)", "True", RUN, "score_it", "limit"),
    ("f-string of big container", "a = [0] * 10 ** 6\ns = f'{[a] * 300}'", "True", RUN, "score_it", "limit"),
    ("condition formats", "x = 1", "len(str([[0] * 10 ** 6] * 300)) > 0", RUN, "gateway", "limit"),
    ("repeated big strings", "parts = ['a' * 10 ** 6 for _ in range(1000)]", "True", RUN, "score_it", "limit"),
    ("list of lists", "rows = []\nwhile True:\n    rows.append([0] * 10 ** 6)", "True", RUN, "score_it", "limit"),
    ("dict comprehension", "d = {i: 'x' * 1000 for i in range(10 ** 6)}", "True", RUN, "score_it", "limit"),
    ("endless loop", "while True:\n    pass", "True", RUN, "score_it", "Script stopped after exceeding the 0.3 s"),
    ("recursion", "def f(n):\n    return f(n + 1)\nf(0)", "True", RUN, "score_it", "recursion"),
    # Values task data cannot hold
    ("generator", "x = 1\ng = (i for i in [1])", "True", RUN, "score_it",
     'Line 2: "g" holds a generator, which task data cannot store'),
    ("exception", "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    err = e", "True", RUN, "score_it",
     '"err" holds a ZeroDivisionError'),
    ("tuple keys", "d = {(1, 2): 3}", "True", RUN, "score_it", '"d" holds a dict with tuple keys'),
    ("NaN", "v = float('nan')", "True", RUN, "score_it", '"v" holds the number nan'),
    ("Infinity", "v = [1, float('inf')]", "True", RUN, "score_it", '"v" holds the number inf'),
    ("huge int", "v = 10 ** 5000", "True", RUN, "score_it", '"v" holds an integer of more than'),
    ("range", "r = range(3)", "True", RUN, "score_it", '"r" holds a range'),
    ("deep nesting", "v = []\nfor _ in range(200):\n    v = [v]", "True", RUN, "score_it", "nested more than 100"),
]


def _diagram(script: str, condition: str) -> bytes:
    return BPMN.format(script=escape(script), condition=escape(condition)).encode()


def _run(diagram: bytes) -> BpmnWorkflow:
    parser = SpiffBpmnParser()
    parser.add_bpmn_str(diagram)
    environment = SandboxedEnvironment(now=NOW, time_limit=TIME_LIMIT)
    workflow = BpmnWorkflow(parser.get_spec("triage"), script_engine=QualiflowScriptEngine(environment, None))
    workflow.do_engine_steps()
    return workflow


@pytest.mark.parametrize(("script", "condition", "outcome", "element", "reason"),
                         [row[1:] for row in HOSTILE], ids=[row[0] for row in HOSTILE])
def test_hostile_code_is_refused_at_deploy_or_stopped_at_its_element(script: str, condition: str, outcome: str,
                                                                      element: str, reason: str) -> None:
    diagram = _diagram(script, condition)
    if outcome == DEPLOY:
        with pytest.raises(InvalidBpmn) as refused:
            parse_diagram(diagram, filename="hostile.bpmn", handlers={}, forms=())
        found = [p for p in refused.value.problems if p.element_id == element and p.line is not None
                 and re.search(reason, p.message, re.IGNORECASE)]
        assert found, refused.value.problems
        return
    parse_diagram(diagram, filename="hostile.bpmn", handlers={}, forms=())
    with pytest.raises(WorkflowTaskException) as stopped:
        _run(diagram)
    assert stopped.value.task.task_spec.bpmn_id == element
    message = f"{stopped.value} {stopped.value.exception}"
    assert re.search(reason, message, re.IGNORECASE), message


def test_the_table_covers_forty_hostile_cases_each_way_they_end() -> None:
    assert len(HOSTILE) >= 40
    assert {row[3] for row in HOSTILE} == {DEPLOY, RUN}


def test_a_refusal_at_deploy_names_the_element_and_the_line_in_the_file() -> None:
    with pytest.raises(InvalidBpmn) as refused:
        parse_diagram(_diagram("x = 1\ny = 2\nimport os", "True"), filename="hostile.bpmn", handlers={}, forms=())
    [problem] = refused.value.problems
    assert (problem.element_id, problem.line) == ("score_it", SCRIPT_LINE + 2)
    assert problem.message == "script is refused by the script sandbox on its line 3: imports are not allowed."


def test_reading_a_missing_builtin_is_a_warning_as_task_data_may_define_it() -> None:
    parsed = parse_diagram(_diagram("doubled = input * 2", "True"), filename="hostile.bpmn", handlers={}, forms=())
    assert [(w.element_id, w.severity) for w in parsed.warnings] == [("score_it", "warning")]
    assert '"input" is not available in scripts unless the task data defines it' in parsed.warnings[0].message


C_LEVEL_BOMBS = {
    "colliding set": f"s = set({COLLIDING})",
    "colliding dict": f"items = {COLLIDING}\nd = dict(zip(items, items))",
    "big int compares": C_LEVEL_COMPARES,
}


@pytest.mark.parametrize("script", C_LEVEL_BOMBS.values(), ids=C_LEVEL_BOMBS.keys())
def test_a_c_level_bomb_does_not_hold_up_another_thread(tmp_path, script: str) -> None:
    environment = SandboxedEnvironment(now=NOW, time_limit=1.0)
    outcome: list[str] = []
    cpu_used: list[float] = []

    def hostile() -> None:
        started = time.thread_time()
        with pytest.raises(ScriptRejected, match="time limit"):
            environment.execute(script, {})
        cpu_used.append(time.thread_time() - started)
        outcome.append("hostile script stopped")

    database = sqlite3.connect(tmp_path / "reads.sqlite", check_same_thread=False)
    database.execute("CREATE TABLE t (v)")
    database.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(100)])
    bomb = threading.Thread(target=hostile)
    bomb.start()
    for _ in range(50):
        assert database.execute("SELECT sum(v) FROM t").fetchone() == (4950,)
        assert not outcome, "the quick reads waited for the hostile script"
    outcome.append("50 quick reads done")
    bomb.join()
    assert outcome == ["50 quick reads done", "hostile script stopped"]
    # The second of C-level work ran in another process: in this one it would have held the GIL all along
    # (the reads above would only have finished with it).
    assert cpu_used[0] < 0.25


@pytest.mark.parametrize(("value", "storable"), [
    ({"a": [1, 2.5, None, True, "x"], "b": {"nested": {"k": "v"}}}, True),
    ({"when": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "day": date(2026, 1, 2), "span": timedelta(1, 2, 3)},
     True),
    ({"pair": (1, 2), "tags": {"a", "b"}, "frozen": frozenset({1}), "keys": {1: "one", 2.5: "x", None: 0}}, True),
    ({"~tuple": "a key like a tag", "~": 1}, True),
    ({"id": UUID("12345678-1234-5678-1234-567812345678")}, True),
    ({"amount": Decimal("1.10"), "time": datetime(2026, 1, 1).time()}, False),
    ({(1, 2): "tuple key"}, False),
])
def test_values_cross_the_pipe_unchanged(value: dict, storable: bool) -> None:
    assert script_workers.loads(script_workers.dumps(script_workers.encode(value))) == value
    if not storable:
        with pytest.raises(script_workers.Unsendable):
            script_workers.encode(value, storable=True)


@pytest.mark.parametrize("message", [
    b'{"~eval": "__import__(\'os\')"}', b'{"~set": [[1]]}', b'{"x": {"~Path": "/etc"}}',
])
def test_the_parent_decodes_only_the_tagged_types(message: bytes) -> None:
    with pytest.raises((KeyError, TypeError)):
        script_workers.loads(message)


def test_an_error_keeps_its_type_and_script_line() -> None:
    with pytest.raises(ZeroDivisionError) as failed:
        SandboxedEnvironment().execute("a = 1\nb = a / 0", {})
    assert failed.value.script_line == 2


def test_a_killed_worker_is_replaced_and_the_next_script_runs() -> None:
    environment = SandboxedEnvironment(time_limit=0.2)
    with pytest.raises(ScriptRejected, match=r"^Script stopped after exceeding the 0.2 s time limit\.$"):
        environment.execute(f"s = set({COLLIDING})", {})
    data = {"a": 1}
    environment.execute("b = a + 1", data)
    assert data == {"a": 1, "b": 2}


def test_a_worker_over_its_memory_limit_is_stopped_and_replaced() -> None:
    environment = SandboxedEnvironment(memory_limit_mb=128, workers=1)
    with pytest.raises(ScriptRejected, match="exceeding the 128 MB memory limit"):
        environment.execute("rows = []\nwhile True:\n    rows.append('x' * 10 ** 6)", {})
    assert environment.evaluate("1 + 1", {}) == 2


def test_threads_share_the_pool_and_get_their_own_results() -> None:
    environment = SandboxedEnvironment(now=NOW)
    results: dict[int, object] = {}

    def run(n: int) -> None:
        data = {"n": n}
        environment.execute("square = n * n\nday = today()", data)
        results[n] = data

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: {"n": n, "square": n * n, "day": date(2026, 3, 2)} for n in range(8)}


def test_holidays_reach_the_working_day_helpers() -> None:
    environment = SandboxedEnvironment(now=NOW, holidays=(date(2026, 3, 3),))
    assert environment.evaluate("add_working_days(today(), 1)", {}) == date(2026, 3, 4)
    assert environment.evaluate("working_days_between(today(), date(2026, 3, 4))", {}) == 1


def test_make_up_days_and_the_plants_zone_reach_the_working_day_helpers() -> None:
    evening = datetime(2026, 10, 9, 17, tzinfo=UTC)  # Saturday 10 October 01:00 in Shanghai, a make-up working day
    environment = SandboxedEnvironment(now=evening, workdays=(date(2026, 10, 10),), time_zone="Asia/Shanghai")
    assert environment.evaluate("today()", {}) == date(2026, 10, 10)
    assert environment.evaluate("add_working_days(date(2026, 10, 9), 1)", {}) == date(2026, 10, 10)
    assert environment.evaluate("working_days_between(now(), datetime(2026, 10, 12, 1, tzinfo=now().tzinfo))", {}) == 1


def test_a_worker_loads_neither_flask_nor_the_database_nor_spiffworkflow() -> None:
    program = script_workers._BOOTSTRAP.format(root=str(script_workers._ROOT), memory_limit_mb=256)
    program = program.replace("serve(256)", "print(' '.join(sys.modules))")
    loaded = subprocess.run([sys.executable, "-I", "-c", program], capture_output=True, text=True, check=True)
    assert "app.engine.script_policy" in loaded.stdout.split()
    assert not {"flask", "sqlalchemy", "SpiffWorkflow", "app.models", "app.engine.runner"} & set(loaded.stdout.split())


# --- the time limit is CPU time: a busy machine does not stop short scripts ------------------------------------------

def test_a_worker_that_waits_for_a_core_longer_than_the_limit_still_answers() -> None:
    """The kill -9 loop, on a machine with a load average of 13 on 2 cores, put an instance in incident at
    `documents.render` with "Script stopped after exceeding the 1 s time limit": its parameter was the constant
    'capa_report', whose worker had not been given a core in time. The limit counts the worker's CPU time."""
    pool = script_workers.WorkerPool(1, 256)
    try:
        assert pool.evaluate("1 + 1", {}, {}, now=None, holidays=(), time_limit=0.2) == 2
        [worker] = pool._idle
        os.kill(worker.process.pid, signal.SIGSTOP)  # no core for it during 1.5 s, seven times its limit
        threading.Timer(1.5, os.kill, (worker.process.pid, signal.SIGCONT)).start()
        began = time.monotonic()
        assert pool.evaluate("'capa_report'", {}, {}, now=None, holidays=(), time_limit=0.2) == "capa_report"
        assert time.monotonic() - began >= 1.4
    finally:
        pool.stop()


def test_a_worker_that_never_gets_a_core_is_stopped_at_a_multiple_of_the_limit(monkeypatch) -> None:
    monkeypatch.setattr(script_workers, "WALL_LIMIT_FACTOR", 2)
    pool = script_workers.WorkerPool(1, 256)
    try:
        assert pool.evaluate("1 + 1", {}, {}, now=None, holidays=(), time_limit=0.2) == 2
        [worker] = pool._idle
        os.kill(worker.process.pid, signal.SIGSTOP)
        began = time.monotonic()
        with pytest.raises(ScriptRejected, match=r"^Script stopped after exceeding the 0.2 s time limit\.$"):
            pool.evaluate("1 + 1", {}, {}, now=None, holidays=(), time_limit=0.2)
        assert 1.3 <= time.monotonic() - began < 5  # (0.2 s + the kill margin) x 2 on the clock
        assert pool.evaluate("2 + 2", {}, {}, now=None, holidays=(), time_limit=0.2) == 4  # a fresh worker
    finally:
        pool.stop()


def test_a_script_waiting_without_using_cpu_is_not_stopped_by_the_clock() -> None:
    """Inside a worker (or a thread) the check counts the thread's CPU time: waiting for a core is not running."""
    code = compile("pause()", script_policy.FILENAME, "eval")
    assert script_policy._timed(code, {"pause": lambda: time.sleep(0.4)}, 0.1) is None
    with pytest.raises(ScriptRejected, match="time limit"):
        script_policy._timed(compile("spin()", script_policy.FILENAME, "eval"), {"spin": _spin}, 0.1)


def _spin() -> None:
    while True:
        pass
