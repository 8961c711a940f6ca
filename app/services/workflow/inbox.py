"""The inbox query: a page of the ready user tasks assigned to a user or offered to the user's groups, most urgent
first, at any size of the task table.

How it stays fast with 100,000 open tasks (bench/inbox.py measures it):

- The visible tasks are the union of disjoint index ranges: "assigned to me" (ix_tasks_inbox_assignee) and, per
  group, "offered to the group and unclaimed" (ix_tasks_inbox_group). Each range is already in the inbox's order
  (dated tasks first, by due date, then by id), so the database merges the ranges instead of sorting every visible
  task: SQLite merges a compound SELECT ("MERGE (UNION ALL)"), PostgreSQL a union of per-range ORDER BY ... LIMIT
  subqueries ("Merge Append"). The indexes are partial (open user tasks) and hold every column a filter reads, so
  pages and counts never visit the task rows; their condition is written with literals so both planners can
  prove the partial index applies (a bound parameter cannot).
- The count is bounded: at most COUNT_CAP tasks (FILTERED_COUNT_CAP with a filter) are counted, and a larger
  inbox says "10,000+". The page is read with one task more, so the last page (a search with a few results too)
  needs no count, nor does a page past the bound (it says "at least this page and one more").
- Only the page's tasks are then loaded, with their instance's title and procedure name, never the instance's
  saved engine state.
- The text search matches task names in the index and instance titles through the title index (models/search.py):
  up to SEARCH_CANDIDATES matching instances become a list the index scan checks; a term that more instances match
  is compared on the instance row per task instead (it matches so often that a page fills quickly).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import column, exists, func, literal_column, or_, select, table, union_all
from sqlalchemy.orm import joinedload, lazyload

from app.extensions import db
from app.models import ProcessDefinition, ProcessInstance, ProcessVersion, Task, User
from app.models.search import TITLE_FTS, has_title_fts
from app.models.types import utcnow

COUNT_CAP = 10_000  # an inbox larger than this is counted as "10,000+"
# A filtered inbox may check each task's instance row (the procedure, a title many instances match): counted to
# 1,000 ("1,000+"), which the instance rows of a few thousand tasks answer.
FILTERED_COUNT_CAP = 1_000
SEARCH_CANDIDATES = 1_000  # instance titles matched through the index before matching row by row instead
SEARCH_MAX_LENGTH = 100


@dataclass(frozen=True)
class InboxFilter:
    scope: str = "all"  # all (mine + my groups), mine, unassigned
    process_key: str | None = None
    overdue: bool = False
    search: str = ""


@dataclass
class InboxPage:
    """A page of the inbox. `total` is exact when `total_exact`, else a lower bound (the count stopped there)."""

    items: list[Task]
    page: int
    per_page: int
    total: int
    total_exact: bool

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page * self.per_page < self.total or not self.total_exact

    @property
    def prev_num(self) -> int | None:
        return self.page - 1 if self.has_prev else None

    @property
    def next_num(self) -> int | None:
        return self.page + 1 if self.has_next else None

    @property
    def total_label(self) -> str:
        return f"{self.total:,}" if self.total_exact else f"{self.total:,}+"

    @property
    def pages_label(self) -> str:
        return f"{self.pages:,}" if self.total_exact else f"{self.pages:,}+"


_OPEN_USER_TASK = (Task.state == literal_column("'ready'"), Task.kind == literal_column("'user'"))
_ORDER = (Task.due_at.is_(None), Task.due_at, Task.id)


def inbox(actor: User, filters: InboxFilter, *, page: int = 1, per_page: int = 20,
          now: datetime | None = None) -> InboxPage:
    """Return a page of ready tasks assigned to actor or offered to actor's groups, most urgent first."""
    now = now or utcnow()
    page = max(page, 1)
    offset = (page - 1) * per_page
    ranges = _visible_ranges(actor, filters.scope)
    if not ranges:
        return InboxPage([], page, per_page, 0, True)
    conditions = _filter_conditions(filters, now)
    cap = FILTERED_COUNT_CAP if conditions else COUNT_CAP
    ids = _page_ids(ranges, conditions, offset, per_page + 1)  # one more: is there a next page?
    more, ids = len(ids) > per_page, ids[:per_page]
    if ids and not more or not ids and offset == 0:  # the last page: the count is known
        total, exact = offset + len(ids), True
    elif more and offset + per_page >= cap:  # past the bound: the pages so far and at least one more task
        total, exact = offset + per_page + 1, False
    else:  # a page within the bound (or past the end): count up to the bound
        limit = max(cap, offset + per_page) + 1
        counted = db.session.scalar(select(func.count()).select_from(
            _union([_range_select(where, conditions, Task.id) for where in ranges])
            .limit(limit).subquery()))
        total, exact = (counted, True) if counted < limit else (limit - 1, False)
    return InboxPage(_load(ids), page, per_page, total, exact)


def _visible_ranges(actor: User, scope: str) -> list[tuple]:
    """The disjoint index ranges the actor sees: claimed by the actor (ix_tasks_inbox_assignee), and unclaimed
    per group (ix_tasks_inbox_group)."""
    ranges = []
    if scope in ("all", "mine"):
        ranges.append((Task.assignee_id == actor.id,))
    if scope in ("all", "unassigned"):
        ranges += [(Task.assignee_id.is_(None), Task.group_name == name) for name in sorted(actor.group_names)]
    return ranges


def _range_select(where: tuple, conditions: list, *columns):
    return select(*columns).where(*_OPEN_USER_TASK, *where, *conditions)


def _filter_conditions(filters: InboxFilter, now: datetime) -> list:
    conditions = []
    if filters.process_key:
        versions = select(ProcessVersion.id).join(ProcessVersion.definition).where(
            ProcessDefinition.key == filters.process_key)
        conditions.append(exists().where(ProcessInstance.id == Task.instance_id,
                                         ProcessInstance.version_id.in_(versions.scalar_subquery())))
    if filters.overdue:
        conditions.append(Task.due_at < now)
    search = filters.search.strip()[:SEARCH_MAX_LENGTH]
    if search:
        conditions.append(_search_condition(search))
    return conditions


def _like_pattern(search: str) -> str:
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _search_condition(search: str):
    """Task name (either language) or instance title contains the text, case-insensitively."""
    pattern = _like_pattern(search)
    names = or_(Task.name.ilike(pattern, escape="\\"), Task.name_zh.ilike(pattern, escape="\\"))
    title = ProcessInstance.title.ilike(pattern, escape="\\")
    candidates = _title_candidates(search)
    if candidates is None:  # so many titles match that checking each visible task's title is cheaper
        return or_(names, exists().where(ProcessInstance.id == Task.instance_id, title))
    matching = list(db.session.scalars(select(ProcessInstance.id).where(ProcessInstance.id.in_(candidates), title)))
    return or_(names, Task.instance_id.in_(matching)) if matching else names


def _title_candidates(search: str) -> list[int] | None:
    """Instance ids whose title may contain the text (a superset, from the title index), or None when more than
    SEARCH_CANDIDATES do."""
    # Unescaped on purpose: % and _ then match more, never less, and the index is used (FTS5 ignores ESCAPE).
    pattern = f"%{search}%"
    if has_title_fts(db.session.connection()):
        fts = table(TITLE_FTS, column("rowid"), column("title"))
        query = select(fts.c.rowid).where(fts.c.title.like(pattern))
    else:  # PostgreSQL (its trigram index serves ILIKE) or SQLite without FTS5
        query = select(ProcessInstance.id).where(ProcessInstance.title.ilike(pattern))
    ids = list(db.session.scalars(query.limit(SEARCH_CANDIDATES + 1)))
    return None if len(ids) > SEARCH_CANDIDATES else ids


def _union(selects: list):
    return selects[0] if len(selects) == 1 else union_all(*selects)


def _page_ids(ranges: list[tuple], conditions: list, offset: int, per_page: int) -> list[int]:
    """The ids of up to per_page tasks after `offset`, in inbox order, read from the indexes alone."""
    columns = (Task.due_at.is_(None).label("undated"), Task.due_at.label("due_at"), Task.id.label("id"))
    selects = [_range_select(where, conditions, *columns) for where in ranges]
    if len(selects) == 1:
        query = selects[0].order_by(*_ORDER)
    elif db.session.get_bind().dialect.name == "postgresql":
        # Each range sorted and cut by its index; the outer ORDER BY becomes a Merge Append of the ranges.
        merged = union_all(*(s.order_by(*_ORDER).limit(offset + per_page) for s in selects)).subquery()
        query = select(merged.c.undated, merged.c.due_at, merged.c.id).order_by(
            merged.c.undated, merged.c.due_at, merged.c.id)
    else:  # SQLite merges a compound SELECT's ordered members itself
        merged = union_all(*selects)
        query = merged.order_by(*(merged.selected_columns[name] for name in ("undated", "due_at", "id")))
    return [row.id for row in db.session.execute(query.offset(offset).limit(per_page))]


def _load(ids: list[int]) -> list[Task]:
    """Load the page's tasks with what the inbox shows: the instance's title and procedure, the assignee."""
    if not ids:
        return []
    rows = db.session.scalars(select(Task).where(Task.id.in_(ids)).options(
        joinedload(Task.instance).load_only(ProcessInstance.title, ProcessInstance.version_id,
                                            ProcessInstance.status)
        .joinedload(ProcessInstance.version).joinedload(ProcessVersion.definition),
        joinedload(Task.assignee).options(lazyload(User.groups)),
    )).unique()
    by_id = {task.id: task for task in rows}
    return [by_id[task_id] for task_id in ids if task_id in by_id]
