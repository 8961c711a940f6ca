"""One use case, one transaction: commit on success, roll back on any error (refusals included)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from app.exceptions import Conflict
from app.extensions import db

# SQLSTATE 23505 (PostgreSQL) and SQLite's own wording: a unique key taken by a transaction that committed first.
_UNIQUE_VIOLATION = "23505"
CONCURRENT_DUPLICATE = "Someone saved the same record at the same time; nothing was saved. Reload and try again."


def is_unique_violation(err: IntegrityError) -> bool:
    return getattr(err.orig, "sqlstate", None) == _UNIQUE_VIOLATION or "UNIQUE constraint failed" in str(err.orig)


_DEPTH = "qualiflow_atomic_depth"
_KEPT = "qualiflow_atomic_kept"


def keep_loaded(*objects: object) -> None:
    """Keep these objects loaded when the use case commits (the answer is built from them), so reading them after
    the commit needs no new transaction - on SQLite a POST's would take the write lock again. Every other object
    is expired at the commit as usual. Their state is what this transaction just wrote (it held their rows)."""
    db.session.info.setdefault(_KEPT, []).extend(objects)


def _commit() -> None:
    session = db.session()
    kept = session.info.pop(_KEPT, None)
    if not kept:
        session.commit()
        return
    expire = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire
    keep = {id(obj) for obj in kept}
    for obj in list(session.identity_map.values()):
        if id(obj) not in keep:
            session.expire(obj)


@contextmanager
def atomic() -> Iterator[None]:
    """Commit the session when the block succeeds; otherwise roll back and re-raise (stale writes, and a unique
    key another transaction took after this one checked it was free, as 409).

    A use case called inside another (a failed inspection starting a CAPA) joins the outer
    transaction: only the outermost block commits, so the two land or fail together.
    """
    info = db.session.info
    if info.get(_DEPTH):
        info[_DEPTH] += 1
        try:
            yield
        finally:
            info[_DEPTH] -= 1
        return
    info[_DEPTH] = 1
    try:
        yield
        _commit()
    except StaleDataError as err:
        db.session.rollback()
        raise Conflict("Someone changed this record at the same time; nothing was saved.") from err
    except IntegrityError as err:
        db.session.rollback()
        if is_unique_violation(err):
            raise Conflict(CONCURRENT_DUPLICATE) from err
        raise
    except BaseException:
        db.session.rollback()
        raise
    finally:
        info[_DEPTH] = 0
        info.pop(_KEPT, None)
