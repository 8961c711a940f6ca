"""What the database keeps besides tables: the index for searching instance titles and the planner's statistics.

Instance titles are searched by substring (a lot number inside "Recall of LOT-2026-0042"), which no b-tree
index answers. SQLite gets an FTS5 table with the trigram tokenizer over process_instances.title (external
content, kept in step by triggers); PostgreSQL a pg_trgm GIN index, which ILIKE uses by itself. Either only
proposes candidates: the inbox still checks the title with ILIKE, so both databases return the same tasks. When
the database cannot build the index (an SQLite without FTS5 or trigram, a role that may not create pg_trgm) the
search runs without it.

Both are installed by the migration and, for create_all (tests, benchmarks), by listeners on the table; Alembic's
autogenerate is told to leave them alone (`include_name`).
"""
from __future__ import annotations

import logging

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from app.models.instances import ProcessInstance

log = logging.getLogger(__name__)

TITLE_FTS = "process_instances_fts"
TITLE_TRGM_INDEX = "ix_process_instances_title_trgm"

TITLE_SEARCH_SQL = {
    "sqlite": [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {TITLE_FTS} USING fts5(title, content='process_instances', "
        "content_rowid='id', tokenize='trigram')",
        f"CREATE TRIGGER IF NOT EXISTS {TITLE_FTS}_insert AFTER INSERT ON process_instances "
        f"BEGIN INSERT INTO {TITLE_FTS}(rowid, title) VALUES (new.id, new.title); END",
        f"CREATE TRIGGER IF NOT EXISTS {TITLE_FTS}_delete AFTER DELETE ON process_instances "
        f"BEGIN INSERT INTO {TITLE_FTS}({TITLE_FTS}, rowid, title) VALUES ('delete', old.id, old.title); END",
        # Only an UPDATE that sets the title fires this; saving the engine state after every step does not.
        f"CREATE TRIGGER IF NOT EXISTS {TITLE_FTS}_update AFTER UPDATE OF title ON process_instances "
        f"BEGIN INSERT INTO {TITLE_FTS}({TITLE_FTS}, rowid, title) VALUES ('delete', old.id, old.title); "
        f"INSERT INTO {TITLE_FTS}(rowid, title) VALUES (new.id, new.title); END",
        f"INSERT INTO {TITLE_FTS}({TITLE_FTS}) VALUES ('rebuild')",
    ],
    "postgresql": [
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
        f"CREATE INDEX IF NOT EXISTS {TITLE_TRGM_INDEX} ON process_instances USING gin (title gin_trgm_ops)",
    ],
}
DROP_TITLE_SEARCH_SQL = {
    "sqlite": [f"DROP TRIGGER IF EXISTS {TITLE_FTS}_{verb}" for verb in ("insert", "delete", "update")]
    + [f"DROP TABLE IF EXISTS {TITLE_FTS}"],
    "postgresql": [f"DROP INDEX IF EXISTS {TITLE_TRGM_INDEX}"],  # pg_trgm stays: other schemas may use it
}


def install_title_search(connection: Connection) -> bool:
    """Create the title search index in the connection's transaction (a savepoint, so a database that cannot
    build it only logs why); return whether it exists."""
    statements = TITLE_SEARCH_SQL.get(connection.dialect.name, [])
    if not statements:
        return False
    try:
        with connection.begin_nested():
            for statement in statements:
                connection.exec_driver_sql(statement)
    except DBAPIError as err:
        log.warning("instance titles are searched without an index: %s", err.orig)
        return False
    return True


def drop_title_search(connection: Connection) -> None:
    for statement in DROP_TITLE_SEARCH_SQL.get(connection.dialect.name, []):
        connection.exec_driver_sql(statement)


def has_title_fts(connection: Connection) -> bool:
    """Tell whether SQLite's FTS5 title table exists (PostgreSQL's ILIKE uses its index by itself)."""
    return connection.dialect.name == "sqlite" and connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TITLE_FTS,)).first() is not None


def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic autogenerate: the title search objects are not described by the models, so compare without them."""
    if type_ == "table" and name and name.startswith(TITLE_FTS):
        return False
    return not (type_ == "index" and name == TITLE_TRGM_INDEX)


def analyze(connection: Connection) -> None:
    """Refresh the query planner's statistics (after migrations and periodically). SQLite samples at most 1,000
    rows per index (analysis_limit), so this stays fast on a large file; PostgreSQL samples by itself."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA analysis_limit=1000")
        connection.exec_driver_sql("ANALYZE")
    elif connection.dialect.name == "postgresql":
        connection.exec_driver_sql("ANALYZE")


def _after_create(table, connection: Connection, **kw) -> None:
    install_title_search(connection)


def _before_drop(table, connection: Connection, **kw) -> None:
    drop_title_search(connection)


event.listen(ProcessInstance.__table__, "after_create", _after_create)
event.listen(ProcessInstance.__table__, "before_drop", _before_drop)
