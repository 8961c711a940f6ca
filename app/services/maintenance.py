"""Database upkeep the scheduler runs: the query planner's statistics."""
from __future__ import annotations

from app.extensions import db
from app.models.search import analyze


def refresh_statistics() -> None:
    """Refresh the planner's statistics (ANALYZE) as the tables grow, in a short transaction of its own. SQLite
    has none until it is told to gather them: without them it picked the `status` index for the timer tick and
    read every waiting instance."""
    with db.engine.begin() as connection:
        analyze(connection)
