"""The sandbox policy for BPMN scripts, conditions and expressions: compile, check and run them in this process.

RestrictedPython compiles the code; extra AST checks, size guards and an in-thread time limit close the gaps it leaves.
Only the script workers (app/engine/script_workers.py) run code with it, under their OS limits; deploys check with
it. It imports nothing of the app but its exceptions and working days, so a worker starts small and fast.
"""
from __future__ import annotations

import ast
import builtins
import operator
import re
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from functools import lru_cache, partial
from types import CodeType, FrameType, ModuleType
from typing import Any, NamedTuple, NoReturn
from zoneinfo import ZoneInfo

from RestrictedPython import RestrictingNodeTransformer, compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import full_write_guard, guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from app.engine.working_days import add_working_days, working_days_between
from app.exceptions import ScriptRejected

FILENAME = "<string>"  # PythonScriptEngine looks for frames of this file to report the failing line
MAX_SIZE = 1_000_000  # items or characters one operator, range() or string method may produce
MAX_INT_BITS = 100_000  # about 30,000 decimal digits

# Not prefixed with "_" (RestrictedPython refuses those anyway) but still leading to code, frames or type internals;
# str.format can read attributes through its replacement fields.
_EXTRA_FORBIDDEN_ATTRIBUTES = frozenset({"format", "format_map", "mro", "func_globals", "func_code"})
FORBIDDEN_ATTRIBUTES = INSPECT_ATTRIBUTES | _EXTRA_FORBIDDEN_ATTRIBUTES
_BIG_NUMBER = re.compile(r"\d{7,}")  # a width or precision of a million or more
_PERCENT_WIDTH = re.compile(r"%(\([^)]*\))?[^a-zA-Z%]*(\*|\d{7,})")
_SEQUENCES = (str, bytes, list, tuple)
_GUARDED_OPS = {ast.Add: "+", ast.Mult: "*", ast.Pow: "**", ast.LShift: "<<", ast.Mod: "%"}
_OPERATORS = {
    "+": operator.add, "*": operator.mul, "**": operator.pow, "<<": operator.lshift, "%": operator.mod,
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "|=": operator.ior, "^=": operator.ixor, "&=": operator.iand, "@=": operator.imatmul,
}


def _translated_size(text: str, table: Any) -> int:
    """Return the largest length str.translate can produce with table."""
    values = table.values() if isinstance(table, dict) else ()
    return len(text) * max((len(v) for v in values if isinstance(v, str)), default=1)


# Upper bounds of the result length of methods that can grow a value, checked before the method runs.
_GROWING_METHODS: dict[str, Callable[..., int]] = {
    "ljust": lambda s, width, *_: width,
    "rjust": lambda s, width, *_: width,
    "center": lambda s, width, *_: width,
    "zfill": lambda s, width: width,
    "expandtabs": lambda s, tabsize=8: len(s) * tabsize,
    "replace": lambda s, old, new, *_: len(s) + (s.count(old) if old else len(s) + 1) * len(new),
    "translate": _translated_size,
    "join": lambda s, items: sum(len(i) for i in items if isinstance(i, str | bytes)) + len(s) * len(items),
    "extend": lambda lst, items: len(lst) + len(items),
}
_GROWABLE = (str, bytes, list)
_MATERIALIZED = {"join", "extend"}  # their argument may be a one-shot iterator: list it before measuring


def _reject(message: str) -> NoReturn:
    """Raise ScriptRejected."""
    raise ScriptRejected(message)


def _operate(op: str, left: Any, right: Any) -> Any:
    """Apply a binary or augmented operator, refusing results too large to build."""
    kind = op.rstrip("=")
    ints = isinstance(left, int) and isinstance(right, int)
    if kind == "*":
        seq, times = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(seq, _SEQUENCES) and isinstance(times, int) and len(seq) * times > MAX_SIZE:
            _reject(f"Repeating a sequence to more than {MAX_SIZE:,} items is not allowed.")
        if ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            _reject(f"Integers above {MAX_INT_BITS:,} bits are not allowed.")
    elif kind == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        if len(left) + len(right) > MAX_SIZE:
            _reject(f"Concatenating to more than {MAX_SIZE:,} items is not allowed.")
    elif kind == "**" and ints and right > 0 and abs(left) > 1 and right * left.bit_length() > MAX_INT_BITS:
        _reject(f"Integers above {MAX_INT_BITS:,} bits are not allowed.")
    elif kind == "<<" and ints and left and left.bit_length() + right > MAX_INT_BITS:
        _reject(f"Integers above {MAX_INT_BITS:,} bits are not allowed.")
    elif kind == "%" and isinstance(left, str | bytes) and _PERCENT_WIDTH.search(str(left)):
        _reject("%-format widths must be constant and below a million.")
    return _OPERATORS[op](left, right)


def _bounded(method: Callable[..., Any], name: str, owner: Any) -> Callable[..., Any]:
    """Wrap a growing method so that it refuses results longer than MAX_SIZE."""
    unbound = isinstance(owner, type)  # str.join(sep, items) passes the instance as first argument

    def call(*args: Any, **kwargs: Any) -> Any:
        full = args if unbound else (owner, *args)
        if name in _MATERIALIZED and len(full) > 1:
            full = (full[0], list(full[1]), *full[2:])
        if _GROWING_METHODS[name](*full, **kwargs) > MAX_SIZE:
            _reject(f"{name}() would build more than {MAX_SIZE:,} items.")
        return method(*full, **kwargs) if unbound else method(*full[1:], **kwargs)

    return call


def _getattr(obj: Any, name: str) -> Any:
    """Read an attribute, refusing private and introspection names."""
    # Compile-time checks already refuse these; checked again in case a future rewrite lets a name through.
    if name.startswith("_") or name in FORBIDDEN_ATTRIBUTES:
        _reject(f'"{name}" is a forbidden attribute.')
    value = getattr(obj, name)
    if name in _GROWING_METHODS and (isinstance(obj, _GROWABLE) or obj in _GROWABLE):
        return _bounded(value, name, obj)
    return value


def _range(*args: int) -> range:
    """Return range(*args) if it has at most MAX_SIZE items."""
    result = range(*args)
    try:
        too_long = len(result) > MAX_SIZE
    except OverflowError:  # longer than sys.maxsize
        too_long = True
    if too_long:
        _reject(f"range() with more than {MAX_SIZE:,} items is not allowed.")
    return result


def _sum(items: Any, start: Any = 0) -> Any:
    """Add up items such as numbers or durations; concatenating sequences this way would bypass the size guards."""
    if isinstance(start, _SEQUENCES):
        _reject("sum() cannot concatenate sequences.")
    return sum(items, start)


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call func; RestrictedPython routes calls with *args or **kwargs through here."""
    return func(*args, **kwargs)


def _import(name: str, *args: Any, **kwargs: Any) -> ModuleType:
    """Import a module that datetime's C code loads lazily (strftime, strptime); refuse anything else."""
    # Scripts cannot name __import__ (it starts with "_"); only C code reached from a script calls this.
    if name not in ("time", "_strptime"):
        _reject(f'importing "{name}" is not allowed.')
    return __import__(name, *args, **kwargs)


def _tick() -> None:
    """Do nothing: calling it gives the time-limit tracer a chance to run in a loop without line events."""


_SAFE_NAMES = (
    "True False None abs all any bool dict enumerate float int isinstance len list max min reversed round set "
    "sorted str tuple zip ValueError KeyError IndexError TypeError ZeroDivisionError"
).split()
_BUILTINS: dict[str, Any] = {name: getattr(builtins, name) for name in _SAFE_NAMES} | {
    "range": _range,
    "sum": _sum,
    "_getattr_": _getattr,
    "_getitem_": operator.getitem,
    "_getiter_": iter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": full_write_guard,
    "_inplacevar_": _operate,
    "_apply_": _apply,
    "_binop_": _operate,
    "_tick_": _tick,
    "__import__": _import,
}
# Real builtins the sandbox leaves out; reading one is refused unless task data or a helper defines that name.
_UNAVAILABLE = frozenset(dir(builtins)) - _BUILTINS.keys()


def _call(name: str, where: ast.AST, *args: ast.expr) -> ast.Call:
    """Build the AST of a call to the sandbox function name, located at where."""
    call = ast.copy_location(ast.Call(func=ast.Name(name, ast.Load()), args=list(args), keywords=[]), where)
    return ast.fix_missing_locations(call)


class _SandboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy plus Qualiflow's refusals and the size and time hooks."""

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> ast.AST:
        self.error(node, "imports are not allowed.")
        return node

    visit_ImportFrom = visit_Import

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in ("print", "printed"):
            self.error(node, f'"{node.id}" is not available in scripts.')
            return node
        return super().visit_Name(node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if node.attr in _EXTRA_FORBIDDEN_ATTRIBUTES:  # RestrictedPython reports INSPECT_ATTRIBUTES itself
            self.error(node, f'"{node.attr}" is a forbidden attribute.')
        return super().visit_Attribute(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.error(node, "class definitions are not allowed.")
        return node

    def visit_Try(self, node: ast.Try) -> ast.AST:
        # The time-limit error must not be swallowed: after the tracer raises once, Python stops tracing.
        if any(handler.type is None for handler in node.handlers):
            self.error(node, 'a bare "except:" is not allowed; name the exception types.')
        if node.finalbody:
            self.error(node, '"finally" is not allowed.')
        return super().visit_Try(node)

    def visit_While(self, node: ast.While) -> ast.AST:
        node = super().visit_While(node)
        # "while True: pass" emits no line events, so each iteration makes a call the tracer sees.
        node.body.insert(0, ast.copy_location(ast.Expr(_call("_tick_", node)), node))
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = super().visit_BinOp(node)
        symbol = _GUARDED_OPS.get(type(node.op))
        if symbol is None:
            return node
        return _call("_binop_", node, ast.Constant(symbol), node.left, node.right)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        spec = node.format_spec
        if spec is not None and not all(
            isinstance(v, ast.Constant) and not _BIG_NUMBER.search(str(v.value)) for v in spec.values
        ):
            self.error(node, "f-string format specs must be constant and below a million characters wide.")
        return super().visit_FormattedValue(node)


class Compiled(NamedTuple):
    """Restricted code, the unavailable builtins it reads and the line where it last assigns each name."""

    code: CodeType
    unavailable: Mapping[str, int]
    assigned: Mapping[str, int]
    called: frozenset[str]  # names called as functions


_ERROR_LINE = re.compile(r"^Line (\d+): (.*)$", re.DOTALL)


@lru_cache(maxsize=1024)
def _compile(source: str, mode: str) -> Compiled | SyntaxError | list[tuple[int, str]]:
    """Compile restricted source, or return its syntax error or (line, reason) for each thing the sandbox refuses."""
    try:
        tree = ast.parse(source, FILENAME, mode)
        compiler = compile_restricted_exec if mode == "exec" else compile_restricted_eval
        result = compiler(tree, FILENAME, policy=_SandboxPolicy)
    except SyntaxError as exc:
        return exc
    except (MemoryError, RecursionError):
        # CPython's parser and RestrictedPython's visitor give up on pathologically nested code.
        return [(1, "the code is nested too deeply.")]
    if result.errors:
        return [(int(m[1]), m[2]) if (m := _ERROR_LINE.match(error)) else (1, error) for error in result.errors]
    names = sorted((node for node in ast.walk(tree) if isinstance(node, ast.Name)), key=lambda node: -node.lineno)
    assigned = {node.id for node in names if not isinstance(node.ctx, ast.Load)}
    # Built from the last line to the first, so each name maps to the first line using it.
    unavailable = {node.id: node.lineno for node in names if node.id in _UNAVAILABLE and node.id not in assigned}
    stores = [(node.id, node.lineno) for node in names if not isinstance(node.ctx, ast.Load)]
    stores += [(node.name, node.lineno) for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    called = frozenset(node.func.id for node in ast.walk(tree)
                       if isinstance(node, ast.Call) and isinstance(node.func, ast.Name))
    return Compiled(result.code, unavailable, dict(sorted(stores, key=lambda store: store[1])), called)


def compile_source(source: str, mode: str) -> Compiled:
    """Compile restricted source (mode "exec" or "eval"); raise ScriptRejected naming the lines it breaks."""
    compiled = _compile(source, mode)
    if isinstance(compiled, SyntaxError):
        raise SyntaxError(*compiled.args)
    if isinstance(compiled, list):
        raise ScriptRejected(" ".join(f"Line {line}: {reason}" for line, reason in compiled))
    return compiled


def check(source: str, mode: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Return the (line, reason) errors and warnings the sandbox finds in source before running it.

    Calling a builtin that scripts lack can never work (task data cannot hold a function); only reading one
    is a warning, since task data may define the name (a form field "input").
    """
    compiled = _compile(source, mode)
    if isinstance(compiled, SyntaxError):
        return [(compiled.lineno or 1, f"syntax error: {compiled.msg}")], []
    if isinstance(compiled, list):
        return compiled, []
    errors, warnings = [], []
    for name, line in sorted(compiled.unavailable.items(), key=lambda item: item[1]):
        if name in compiled.called:
            errors.append((line, f'"{name}" is not available in scripts.'))
        else:
            warnings.append((line, f'"{name}" is not available in scripts unless the task data defines it.'))
    return errors, warnings


def _timed(code: CodeType, namespace: dict[str, Any], time_limit: float) -> Any:
    """Run code with namespace as globals, stopping it once it used time_limit seconds of CPU time.

    CPU time of this thread, not the clock: on a busy machine a short script waits for a core, and that wait is
    not the script's doing (a constant expression must not stop an instance because the server was busy)."""
    deadline = time.thread_time() + time_limit

    def check_deadline(frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if time.thread_time() > deadline:
            _reject(f"Script stopped after exceeding the {time_limit:g} s time limit.")
        # The loop-free guards of this module are only checked on entry: tracing their lines would slow scripts down.
        return None if frame.f_code.co_filename == __file__ else check_deadline

    previous = sys.gettrace()
    sys.settrace(check_deadline)  # per thread, so concurrent runs each keep their own deadline
    try:
        return eval(code, namespace)  # also runs exec-mode code objects, returning None
    finally:
        sys.settrace(previous)


def _run(code: CodeType, unavailable: Mapping[str, int], namespace: dict[str, Any], time_limit: float) -> Any:
    """Refuse unavailable builtins, then run code, adding the script line to run-time refusals."""
    for name, line in unavailable.items():
        if name not in namespace:
            _reject(f'Line {line}: "{name}" is not available in scripts.')
    try:
        return _timed(code, namespace, time_limit)
    except ScriptRejected as exc:
        lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == FILENAME]
        if not lines:
            raise
        raise ScriptRejected(f"Line {lines[-1]}: {exc.message}").with_traceback(exc.__traceback__) from None



HELPER_NAMES = frozenset({"date", "datetime", "timedelta", "add_working_days", "working_days_between", "now", "today"})


def helpers(now: datetime | None, holidays: tuple[date, ...], workdays: tuple[date, ...] = (),
            time_zone: str | None = None) -> dict[str, Any]:
    """Return the functions scripts can call, with now() and today() fixed to the step's clock when it is given.

    With time_zone (the plant's), today() is the local date and the working-day helpers count local dates.
    """
    tz = ZoneInfo(time_zone) if time_zone else None

    def current() -> datetime:
        return now or datetime.now()

    def today() -> date:
        moment = current()
        return (moment.astimezone(tz) if tz is not None and moment.tzinfo is not None else moment).date()

    return {
        "date": date, "datetime": datetime, "timedelta": timedelta,
        "add_working_days": partial(add_working_days, holidays=holidays, workdays=workdays, tz=tz),
        "working_days_between": partial(working_days_between, holidays=holidays, workdays=workdays, tz=tz),
        "now": current, "today": today,
    }


def _getter(data: dict[str, Any]) -> Callable[..., Any]:
    """Return get(name, default=None): a task-data value that may be absent (an optional form field)."""
    def get(name: str, default: Any = None) -> Any:
        return data.get(name, default)
    return get


def evaluate(expression: str, data: dict[str, Any], external: dict[str, Any], functions: dict[str, Any],
             time_limit: float) -> Any:
    """Return the value of expression, with task data, helper functions and external context visible as names."""
    # eval() of a string ignores leading blanks; keep that for expressions copied from BPMN XML.
    compiled = compile_source(expression.lstrip(" \t"), "eval")
    namespace = {**functions, "get": _getter(data), **external, **data, "__builtins__": _BUILTINS}
    return _run(compiled.code, compiled.unavailable, namespace, time_limit)


def execute(script: str, data: dict[str, Any], external: dict[str, Any], functions: dict[str, Any],
            time_limit: float) -> None:
    """Run script over data in place: afterwards data holds what it held plus what the script assigned.

    As in SpiffWorkflow, assignments made before a failure stay in data.
    """
    compiled = compile_source(script, "exec")
    original = dict(data)
    data.update(functions)
    data.setdefault("get", _getter(original))
    data.update(external)
    data["__builtins__"] = _BUILTINS
    try:
        _run(compiled.code, compiled.unavailable, data, time_limit)
    finally:
        for key in list(data):
            value = data[key]
            if (key == "__builtins__" or callable(value) or isinstance(value, ModuleType)
                    or key in functions or key in external):
                del data[key]


def assignment_line(script: str, name: str) -> int | None:
    """Return the last line of script that assigns name, if it does."""
    compiled = _compile(script, "exec")
    return compiled.assigned.get(name) if isinstance(compiled, Compiled) else None
