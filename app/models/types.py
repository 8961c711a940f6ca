"""Column types shared by the models: UTC timestamps that read back timezone-aware on every database."""
from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Store naive UTC; return aware UTC, so SQLite and PostgreSQL compare the same way."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# Every integer column (ids, quantities, counts) is a PostgreSQL `integer`: values outside this range cannot be
# stored or even compared with one, so requests are refused at the edge (app/edge.py) before a query sees them.
INT_MIN = -(2**31)
INT_MAX = 2**31 - 1
