"""One use case, one transaction: commit on success, roll back on any error (refusals included)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm.exc import StaleDataError

from app.exceptions import Conflict
from app.extensions import db

_DEPTH = "qualiflow_atomic_depth"


@contextmanager
def atomic() -> Iterator[None]:
    """Commit the session when the block succeeds; otherwise roll back and re-raise (stale writes as 409).

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
        db.session.commit()
    except StaleDataError as err:
        db.session.rollback()
        raise Conflict("Someone changed this record at the same time; nothing was saved.") from err
    except BaseException:
        db.session.rollback()
        raise
    finally:
        info[_DEPTH] = 0
