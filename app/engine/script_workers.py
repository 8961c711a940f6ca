"""Worker processes that run scripts and conditions under OS limits, and the pool the app's threads share.

The in-process time check of the sandbox cannot stop C-level work (a set of colliding hashes, a huge format):
it holds the GIL and every other request with it. A worker runs the same sandbox policy in its own process,
capped by RLIMIT_AS (memory) and RLIMIT_CPU (a backstop); the parent kills it once it spent the time limit in
CPU time (or ten times the limit on the clock, when the machine is too busy to run it) and starts a fresh one.
Values cross the pipe as JSON with tags for tuples, sets, dates and decimals, and the parent
decodes only those: a worker can never make the parent build an object of its choosing.

A worker imports this module and the policy without the app's package imports (Flask, SQLAlchemy,
SpiffWorkflow; see _BOOTSTRAP), so it starts in ~50 ms and small.
"""
from __future__ import annotations

import atexit
import builtins
import json
import math
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from app.engine import data_check, script_policy
from app.exceptions import ScriptRejected

# What task data can hold is one rule: the engine's save-time check (data_check) and this codec share its limits.
MAX_DEPTH = data_check.MAX_DEPTH  # nesting levels of lists, tuples, sets and dicts a value may have to cross the pipe
MAX_INT_BITS = data_check.MAX_INT_BITS  # Python refuses to print longer ints, so JSON cannot carry them
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a larger reply is refused rather than decoded in the parent
KILL_MARGIN = 0.5  # seconds past the time limit before the parent kills a worker (pipe and JSON time)
# The limit is CPU time: a worker that waited for a core (a busy machine) gets more time on the clock, up to this
# many times its limit; one that spent its CPU time is killed at the limit.
WALL_LIMIT_FACTOR = 10
STARTUP_TIMEOUT = 30.0
CHECK_TIME_LIMIT = 10.0  # compiling a deployed script; parse bombs end here or at the memory limit
RUNS_PER_WORKER = 1000  # then the worker is replaced, so no leak or heap fragmentation lasts
_TAG = "~"
_ROOT = Path(__file__).resolve().parents[2]
# A worker's main program: empty packages stand in for app/__init__.py and app/engine/__init__.py, which
# import Flask and SpiffWorkflow; only this module, the policy and what they import are loaded.
_BOOTSTRAP = """
import sys, types
for name in ("app", "app.engine"):
    package = types.ModuleType(name)
    package.__path__ = [{root!r} + "/" + name.replace(".", "/")]
    sys.modules[name] = package
from app.engine.script_workers import serve
serve({memory_limit_mb})
"""
_HEADER = struct.Struct(">I")
_ERRORS = {name: value for name, value in vars(builtins).items()
           if isinstance(value, type) and issubclass(value, Exception) and not name.startswith("_")}


class Unsendable(Exception):
    """A value that cannot cross to the parent (or that task data cannot store); its message says what it is."""


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def encode(value: Any, *, storable: bool = False, depth: int = 0) -> Any:
    """Return value as JSON-ready data with tagged non-JSON types; storable also refuses what task data cannot save."""
    if depth > MAX_DEPTH:
        raise Unsendable(f"values nested more than {MAX_DEPTH} levels deep")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        if value.bit_length() > MAX_INT_BITS:
            raise Unsendable("an integer of more than 4,200 digits")
        return value
    if kind is float:
        if storable and not math.isfinite(value):
            raise Unsendable(f"the number {value!r}")
        return value
    inner = depth + 1
    if kind is list:
        return [encode(item, storable=storable, depth=inner) for item in value]
    if kind is dict:
        if all(type(key) is str and not key.startswith(_TAG) for key in value):
            return {key: encode(item, storable=storable, depth=inner) for key, item in value.items()}
        odd = next((key for key in value if type(key) not in (str, int, float, bool, type(None))), None)
        if storable and odd is not None:
            raise Unsendable(f"a dict with {type(odd).__name__} keys")
        return {"~dict": [[encode(key, storable=storable, depth=inner), encode(item, storable=storable, depth=inner)]
                          for key, item in value.items()]}
    if kind in (tuple, set, frozenset):
        return {_TAG + kind.__name__: [encode(item, storable=storable, depth=inner) for item in value]}
    if kind is datetime or kind is date:
        return {_TAG + kind.__name__: value.isoformat()}
    if kind is timedelta:
        return {"~timedelta": [value.days, value.seconds, value.microseconds]}
    if kind is UUID:
        return {"~uuid": str(value)}
    if not storable and kind is time_of_day:
        return {"~time": value.isoformat()}
    if not storable and kind is Decimal:
        return {"~decimal": str(value)}
    raise Unsendable("a function" if callable(value) else _a(kind.__name__))


_DECODERS = {
    "~tuple": tuple, "~set": set, "~frozenset": frozenset, "~dict": lambda pairs: {key: item for key, item in pairs},
    "~datetime": datetime.fromisoformat, "~date": date.fromisoformat, "~time": time_of_day.fromisoformat,
    "~timedelta": lambda parts: timedelta(*parts), "~decimal": Decimal, "~uuid": UUID,
}


def _decode_object(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        key = next(iter(obj))
        if key.startswith(_TAG):
            return _DECODERS[key](obj[key])  # an unknown tag is a KeyError: the message is refused
    return obj


_ENCODER = json.JSONEncoder(separators=(",", ":"))
_DECODER = json.JSONDecoder(object_hook=_decode_object)  # built once: building one costs as much as a small reply


def dumps(value: Any) -> bytes:
    """Return a message as bytes: a JSON object whose values were encoded."""
    return _ENCODER.encode(value).encode()


def loads(message: bytes) -> Any:
    """Return a message decoded with only the tagged types above."""
    return _DECODER.decode(message.decode())


# The worker: a loop reading requests from stdin and writing replies to the private copy of stdout.

def _read_message(stream: Any) -> dict[str, Any] | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    return loads(stream.read(_HEADER.unpack(header)[0]))


def _write_message(stream: Any, message: bytes) -> None:
    stream.write(_HEADER.pack(len(message)) + message)
    stream.flush()


def _script_line(exc: BaseException) -> int | None:
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__)
             if frame.filename == script_policy.FILENAME]
    return lines[-1] if lines else None


def _encoded_data(script: str, data: dict[str, Any]) -> dict[str, Any]:
    """Encode task data after a script, refusing values it cannot store and naming the variable and its line."""
    encoded = {}
    for name, value in data.items():
        try:
            encoded[name] = encode(value, storable=True)
        except Unsendable as exc:
            line = script_policy.assignment_line(script, name)
            where = f"Line {line}: " if line else ""
            raise ScriptRejected(f'{where}"{name}" holds {exc}, which task data cannot store.') from None
    return {"~dict": [[name, value] for name, value in encoded.items()]} if any(
        name.startswith(_TAG) for name in encoded) else encoded


def _answer(request: dict[str, Any], memory_limit_mb: int) -> dict[str, Any]:
    """Run one request and return its reply (before encoding)."""
    op = request["op"]
    if op == "check":
        errors, warnings = script_policy.check(request["source"], request["mode"])
        return {"errors": errors, "warnings": warnings}
    functions = script_policy.helpers(request["now"], tuple(request["holidays"]), tuple(request["workdays"]),
                                      request["time_zone"])
    source, data, external, time_limit = request["source"], request["data"], request["external"], request["time_limit"]
    reply: dict[str, Any] = {}
    try:
        if op == "evaluate":
            value = script_policy.evaluate(source, data, external, functions, time_limit)
            try:
                return {"value": encode(value)}
            except Unsendable as exc:
                raise ScriptRejected(f"The expression's value is {exc}, which cannot be used.") from None
        script_policy.execute(source, data, external, functions, time_limit)
        return {"data": _encoded_data(source, data)}
    except MemoryError:
        data.clear()  # frees what the script built, so the reply below can be written
        return {"rejected": f"Script stopped after exceeding the {memory_limit_mb} MB memory limit.", "recycle": True}
    except ScriptRejected as exc:
        reply["rejected"] = exc.message
    except Exception as exc:
        try:
            args = encode(list(exc.args))
        except Unsendable:
            args = [str(exc)]
        reply["error"] = [type(exc).__name__, args, _script_line(exc)]
    if op == "execute":  # assignments before the failure stay in the task data, as in SpiffWorkflow
        try:
            reply["data"] = _encoded_data(source, data)
        except ScriptRejected:
            pass
    return reply


def serve(memory_limit_mb: int) -> None:
    """Apply the memory limit and answer requests until stdin closes (the worker's main loop)."""
    import resource

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is for the parent, which stops us
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # nothing a script or a library prints can corrupt the replies
    limit = memory_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    requests = sys.stdin.buffer
    _write_message(replies, dumps({"ready": os.getpid()}))
    while (request := _read_message(requests)) is not None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        # The parent kills a worker at the time limit; should the parent hang, the kernel stops it here.
        budget = int(usage.ru_utime + usage.ru_stime + request.get("time_limit", CHECK_TIME_LIMIT)) + 2
        soft = budget if cpu_hard == resource.RLIM_INFINITY else min(budget, cpu_hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, cpu_hard))
        try:
            message = dumps(_answer(request, memory_limit_mb))
        except MemoryError:
            message = dumps({"rejected": f"Script stopped after exceeding the {memory_limit_mb} MB memory limit.",
                             "recycle": True})
        if len(message) > MAX_MESSAGE_BYTES:
            message = dumps({"rejected": f"The script's result is larger than {MAX_MESSAGE_BYTES // 2**20} MB."})
        _write_message(replies, message)


# The parent: workers and the pool the threads of the web or scheduler process share.

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float | None:
    """The CPU time a process used so far (user and system), from /proc; None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime and stime, fields 14 and 15 of stat(5)


class _WorkerLost(Exception):
    """The worker ended, or sent something that is not a reply."""


class _Worker:
    """One worker process and its pipes; one thread at a time uses it."""

    def __init__(self, memory_limit_mb: int) -> None:
        command = [sys.executable, "-I", "-c", _BOOTSTRAP.format(root=str(_ROOT), memory_limit_mb=memory_limit_mb)]
        self.process = subprocess.Popen(command,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        self.runs = 0
        self.ready = False
        self._cpu_budget: tuple[float, float, float] | None = None  # CPU time at the request, its budget, the clock cap

    def exchange(self, request: bytes, timeout: float) -> dict[str, Any] | None:
        """Send a request and return the reply, or None when none came within timeout seconds."""
        if not self.ready:  # start-up is not part of the script's time
            if self._read(STARTUP_TIMEOUT) is None:
                raise _WorkerLost("the script worker did not start")
            self.ready = True
        self.runs += 1
        used = _cpu_seconds(self.process.pid)
        self._cpu_budget = None if used is None else (used, timeout, time.monotonic() + timeout * WALL_LIMIT_FACTOR)
        try:
            self.process.stdin.write(_HEADER.pack(len(request)) + request)
            self.process.stdin.flush()
            return self._read(timeout)
        except OSError as exc:
            raise _WorkerLost(str(exc)) from exc
        finally:
            self._cpu_budget = None

    def _more_time(self) -> float | None:
        """At the deadline: a new deadline when the worker has not used its CPU time yet (it waited for a core),
        else None."""
        if self._cpu_budget is None:
            return None
        before, budget, cap = self._cpu_budget
        used = _cpu_seconds(self.process.pid)
        now = time.monotonic()
        if used is None or now >= cap or used - before >= budget:
            return None
        return min(now + max(budget - (used - before), 0.05), cap)

    def _read(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        header = self._read_exactly(_HEADER.size, deadline)
        if header is None:
            return None
        size = _HEADER.unpack(header)[0]
        if size > MAX_MESSAGE_BYTES:
            raise _WorkerLost(f"a reply of {size} bytes")
        body = self._read_exactly(size, deadline)
        if body is None:
            return None
        try:
            return loads(body)
        except (ValueError, KeyError, TypeError) as exc:
            raise _WorkerLost(f"an unreadable reply: {exc}") from exc

    def _read_exactly(self, size: int, deadline: float) -> bytes | None:
        fd = self.process.stdout.fileno()
        chunks, missing = [], size
        while missing:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                deadline = self._more_time()
                if deadline is None:
                    return None
                continue
            chunk = os.read(fd, min(missing, 1 << 20))
            if not chunk:
                raise _WorkerLost(f"the script worker ended (exit status {self.process.wait()})")
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def stop(self) -> None:
        """Kill the process and close its pipes."""
        self.process.kill()
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()


class WorkerPool:
    """Up to size worker processes with a memory limit, started when first needed and shared by threads."""

    def __init__(self, size: int, memory_limit_mb: int) -> None:
        self.size = max(1, size)
        self.memory_limit_mb = memory_limit_mb
        self._idle: list[_Worker] = []
        self._started = 0
        self._available = threading.Condition()

    def evaluate(self, expression: str, data: dict[str, Any], external: dict[str, Any], *, now: datetime | None,
                 holidays: tuple[date, ...], time_limit: float, workdays: tuple[date, ...] = (),
                 time_zone: str | None = None) -> Any:
        """Return the value of an expression over task data, computed in a worker."""
        reply = self._run({"op": "evaluate", "source": expression, "data": data, "external": external,
                           "now": now, "holidays": holidays, "workdays": workdays, "time_zone": time_zone,
                           "time_limit": time_limit}, time_limit)
        return reply["value"]

    def execute(self, script: str, data: dict[str, Any], external: dict[str, Any], *, now: datetime | None,
                holidays: tuple[date, ...], time_limit: float, workdays: tuple[date, ...] = (),
                time_zone: str | None = None) -> None:
        """Run a script in a worker and put the task data it leaves into data."""
        self._run({"op": "execute", "source": script, "data": data, "external": external,
                   "now": now, "holidays": holidays, "workdays": workdays, "time_zone": time_zone,
                   "time_limit": time_limit}, time_limit, data)

    def check(self, source: str, mode: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
        """Return what the sandbox refuses in source and the builtins it reads that scripts lack (see check)."""
        try:
            reply = self._run({"op": "check", "source": source, "mode": mode}, CHECK_TIME_LIMIT)
        except ScriptRejected as exc:
            return [(1, exc.message)], []
        return [tuple(error) for error in reply["errors"]], [tuple(warning) for warning in reply["warnings"]]

    def _run(self, request: dict[str, Any], time_limit: float, data: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            message = dumps({key: encode(value) for key, value in request.items()})
        except Unsendable as exc:
            raise ScriptRejected(f"The task data holds {exc}, which scripts cannot be given.") from None
        worker = self._checkout()
        reply, lost = None, None
        try:
            reply = worker.exchange(message, time_limit + KILL_MARGIN)
        except _WorkerLost as exc:
            lost = exc
        finally:
            self._checkin(worker, keep=reply is not None and not reply.get("recycle"))
        if reply is None:
            if lost is None or worker.process.returncode == -signal.SIGXCPU:
                raise ScriptRejected(f"Script stopped after exceeding the {time_limit:g} s time limit.")
            raise ScriptRejected(f"Script stopped: {lost}, most likely at the {self.memory_limit_mb} MB memory limit.")
        if data is not None and "data" in reply:
            data.clear()
            data.update(reply["data"])
        if "rejected" in reply:
            raise ScriptRejected(reply["rejected"])
        if "error" in reply:
            raise _rebuilt(*reply["error"])
        return reply

    def _checkout(self) -> _Worker:
        with self._available:
            while not self._idle and self._started >= self.size:
                self._available.wait()
            if self._idle:
                return self._idle.pop()
            self._started += 1
        try:
            return _Worker(self.memory_limit_mb)
        except BaseException:
            self._checkin(None, keep=False)
            raise

    def _checkin(self, worker: _Worker | None, *, keep: bool) -> None:
        if worker is not None and (not keep or worker.runs >= RUNS_PER_WORKER):
            worker.stop()
            try:
                worker = _Worker(self.memory_limit_mb)  # starts now, so the next run need not wait for it
            except OSError:
                worker = None
        with self._available:
            if worker is None:
                self._started -= 1
            else:
                self._idle.append(worker)
            self._available.notify()

    def stop(self) -> None:
        """Stop the idle workers; busy ones are stopped when their run ends."""
        with self._available:
            idle, self._idle = self._idle, []
            self._started -= len(idle)
        for worker in idle:
            worker.stop()


def _rebuilt(name: str, args: list[Any], line: int | None) -> Exception:
    """Return the exception a worker reported, as the builtin type it names (other types become RuntimeError)."""
    kind = _ERRORS.get(name)
    try:
        error = kind(*args) if kind is not None else RuntimeError(f"{name}: {', '.join(map(str, args))}")
    except Exception:
        error = RuntimeError(f"{name}: {args}")
    error.script_line = line  # QualiflowScriptEngine reports it as SpiffWorkflow reports an in-process line
    return error


_POOLS: dict[tuple[int, int], WorkerPool] = {}
_POOLS_LOCK = threading.Lock()


def pool(size: int = 2, memory_limit_mb: int = 256) -> WorkerPool:
    """Return this process's pool of size workers with memory_limit_mb each; no worker starts before its first run."""
    with _POOLS_LOCK:
        if not _POOLS:
            atexit.register(_stop_all)
            os.register_at_fork(after_in_child=_POOLS.clear)  # a forked child must not share our pipes
        return _POOLS.setdefault((size, memory_limit_mb), WorkerPool(size, memory_limit_mb))


def _stop_all() -> None:
    for each in list(_POOLS.values()):
        each.stop()

