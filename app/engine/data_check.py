"""What task data can hold: JSON values plus the dates and durations scripts compute, nothing else.

Saving a workflow whose data holds anything else (a generator, an exception, a dict with tuple keys,
NaN, an int longer than Python will print) would fail at the commit of every later step of that
instance; the engine finds such values, names where they are and turns them into an incident.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

MAX_DEPTH = 100  # nesting levels of lists and dicts
MAX_INT_BITS = 14_000  # about 4,200 decimal digits: Python refuses to print an int above 4,300
_SCALARS = (str, bool, type(None), datetime, date, timedelta, UUID)


def _kind(value: Any) -> str:
    if callable(value):
        return "a function"
    name = type(value).__name__
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def _leaf_problem(value: Any) -> str | None:
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, int):
        return None if value.bit_length() <= MAX_INT_BITS else "an integer too long to store"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value!r}, which JSON cannot hold"
    return f"{_kind(value)}, which task data cannot hold"


def _key_problem(key: Any) -> str:
    return f"a key of type {type(key).__name__} (keys must be text or numbers)"


def _key_ok(key: Any) -> bool:
    """JSON writes number keys as text (as SpiffWorkflow's state does); any other key cannot be written."""
    return isinstance(key, str | int) or (isinstance(key, float) and math.isfinite(key))


def problems(data: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """Yield (top-level key, path, reason) for every value of data that cannot be stored, without recursion."""
    for key, value in data.items():
        if not isinstance(key, str):  # variable names are always text; anything else here is a defect
            yield str(key), repr(key), _key_problem(key)
            continue
        stack = [(value, key, 0)]
        while stack:
            current, path, depth = stack.pop()
            if depth > MAX_DEPTH:
                yield key, path, f"values nested deeper than {MAX_DEPTH} levels"
                break
            if isinstance(current, dict):
                for inner_key, inner in current.items():
                    if not _key_ok(inner_key):
                        yield key, f"{path}[{inner_key!r}]", _key_problem(inner_key)
                        continue
                    stack.append((inner, f"{path}[{inner_key!r}]", depth + 1))
            elif isinstance(current, list | tuple | set | frozenset):
                stack.extend((inner, f"{path}[{index}]", depth + 1) for index, inner in enumerate(current))
            else:
                reason = _leaf_problem(current)
                if reason is not None:
                    yield key, path, reason


def first_problem(data: dict[str, Any]) -> tuple[str, str, str] | None:
    """Return the first (key, path, reason) of data that cannot be stored, or None when all of it can."""
    return next(problems(data), None)
