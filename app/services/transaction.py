"""One use case, one transaction: commit on success, roll back on any error (refusals included)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm.exc import StaleDataError

from app.exceptions import Conflict
from app.extensions import db


@contextmanager
def atomic() -> Iterator[None]:
    """Commit the session when the block succeeds; otherwise roll back and re-raise (stale writes as 409)."""
    try:
        yield
        db.session.commit()
    except StaleDataError as err:
        db.session.rollback()
        raise Conflict("Someone changed this record at the same time; nothing was saved.") from err
    except BaseException:
        db.session.rollback()
        raise
