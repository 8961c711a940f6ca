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
- Pages follow a cursor (keyset pagination): a page after (or before) a task is one index range per visible range
  starting at that task's place in the order (a row-value comparison on (due_at IS NULL, due_at, id)), so page 2000
  costs what the first does, and completing tasks between page reads neither skips nor repeats a task. The cursor
  is opaque to clients (Cursor.encode); a malformed one is refused with 400. `page` (OFFSET) still works for
  compatibility: it reads and skips every task before the page, so deep pages are slower.
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

import base64
import binascii
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from flask_babel import gettext as _
from sqlalchemy import (
    Integer,
    column,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.orm import joinedload, lazyload

from app.exceptions import ValidationFailed
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
CURSOR_MAX_LENGTH = 100
_CURSOR_VERSION = "1"
_INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class InboxFilter:
    scope: str = "all"  # all (mine + my groups), mine, unassigned
    process_key: str | None = None
    overdue: bool = False
    search: str = ""


class InvalidCursor(ValidationFailed):
    """The page cursor is not one this inbox gave out; start again from the first page."""


@dataclass(frozen=True)
class Cursor:
    """A place in the inbox's order: a task's due date (None: undated, after every dated task) and id. Clients see
    it only as an opaque text (encode/decode)."""

    due_at: datetime | None
    id: int

    @classmethod
    def of(cls, task: Task) -> Cursor:
        return cls(task.due_at, task.id)

    def encode(self) -> str:
        due = "" if self.due_at is None else self.due_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")
        return base64.urlsafe_b64encode(f"{_CURSOR_VERSION}|{due}|{self.id}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor an inbox page gave out; InvalidCursor (400) for anything else."""
        try:
            if not text or len(text) > CURSOR_MAX_LENGTH:
                raise ValueError(text)
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
            version, due, number = raw.split("|")
            if version != _CURSOR_VERSION or not number.isdigit() or not 0 < int(number) <= _INT_MAX:
                raise ValueError(raw)
            due_at = datetime.strptime(due, "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC) if due else None
        except (ValueError, UnicodeError, binascii.Error) as err:
            raise InvalidCursor(_("The page cursor is not one this inbox gave out; start again from the first "
                                  "page.")) from err
        return cls(due_at, int(number))


@dataclass
class InboxPage:
    """A page of the inbox. `total` is exact when `total_exact`, else a lower bound (the count stopped there).
    `page` is the page number when the page was asked for by number, None when it was reached by a cursor."""

    items: list[Task]
    page: int | None
    per_page: int
    total: int
    total_exact: bool
    # Set for pages read by cursor: is there a task before the first one / after the last one?
    more_before: bool | None = None
    more_after: bool | None = None

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.more_before if self.page is None else self.page > 1

    @property
    def has_next(self) -> bool:
        if self.page is None:
            return bool(self.more_after)
        return self.page * self.per_page < self.total or not self.total_exact

    @property
    def next_cursor(self) -> str | None:
        """Where the next page starts (after the last task), for ?after=; None on the last page."""
        return Cursor.of(self.items[-1]).encode() if self.items and self.has_next else None

    @property
    def prev_cursor(self) -> str | None:
        """Where the previous page ends (before the first task), for ?before=; None on the first page."""
        return Cursor.of(self.items[0]).encode() if self.items and self.has_prev else None

    @property
    def prev_num(self) -> int | None:
        return self.page - 1 if self.page is not None and self.has_prev else None

    @property
    def next_num(self) -> int | None:
        return self.page + 1 if self.page is not None and self.has_next else None

    @property
    def total_label(self) -> str:
        return f"{self.total:,}" if self.total_exact else f"{self.total:,}+"

    @property
    def pages_label(self) -> str:
        return f"{self.pages:,}" if self.total_exact else f"{self.pages:,}+"


_OPEN_USER_TASK = (Task.state == literal_column("'ready'"), Task.kind == literal_column("'user'"))
_ORDER = (Task.due_at.is_(None), Task.due_at, Task.id)


def inbox(actor: User, filters: InboxFilter, *, page: int = 1, per_page: int = 20, after: str | None = None,
          before: str | None = None, now: datetime | None = None) -> InboxPage:
    """Return a page of ready tasks assigned to actor or offered to actor's groups, most urgent first: the page
    after (or before) a cursor an earlier page gave out, or page number `page` (slower for deep pages)."""
    now = now or utcnow()
    if after is not None and before is not None:
        raise InvalidCursor(_("Give either after or before, not both."))
    text = after if after is not None else before
    if text is not None and page != 1:
        raise InvalidCursor(_("Page either by number (page) or by cursor (after, before), not both."))
    cursor = Cursor.decode(text) if text is not None else None
    page = max(page, 1)
    ranges = _visible_ranges(actor, filters.scope)
    if not ranges:
        return InboxPage([], None if cursor else page, per_page, 0, True, False if cursor else None,
                         False if cursor else None)
    conditions = _filter_conditions(filters, now)
    if cursor is not None:
        return _cursor_page(ranges, conditions, cursor, forward=after is not None, per_page=per_page)
    offset = (page - 1) * per_page
    cap = FILTERED_COUNT_CAP if conditions else COUNT_CAP
    ids = _page_ids(ranges, conditions, offset, per_page + 1)  # one more: is there a next page?
    more, ids = len(ids) > per_page, ids[:per_page]
    if ids and not more or not ids and offset == 0:  # the last page: the count is known
        total, exact = offset + len(ids), True
    elif more and offset + per_page >= cap:  # past the bound: the pages so far and at least one more task
        total, exact = offset + per_page + 1, False
    else:  # a page within the bound (or past the end): count up to the bound
        total, exact = _count(ranges, conditions, max(cap, offset + per_page))
    return InboxPage(_load(ids), page, per_page, total, exact)


def _count(ranges: list[tuple], conditions: list, cap: int) -> tuple[int, bool]:
    """The visible tasks counted up to cap: (count, exact), a lower bound `cap` when there are more."""
    limit = cap + 1
    counted = db.session.scalar(select(func.count()).select_from(
        _union([_range_select(where, conditions, Task.id) for where in ranges]).limit(limit).subquery()))
    return (counted, True) if counted < limit else (cap, False)


def _cursor_page(ranges: list[tuple], conditions: list, cursor: Cursor, *, forward: bool,
                 per_page: int) -> InboxPage:
    """The page after (forward) or before a cursor, and whether tasks lie beyond either end of it. A page before
    the cursor with fewer tasks than per_page (tasks done meanwhile) is the first page: that one is answered."""
    rows = _keyset_rows(ranges, conditions, cursor, forward, per_page + 1)
    more, rows = len(rows) > per_page, rows[:per_page]
    if not forward:
        if not more:
            return _first_page(ranges, conditions, per_page)
        rows.reverse()
    if forward:
        more_after = more
        more_before = bool(_keyset_rows(ranges, conditions, _row_cursor(rows[0]) if rows else cursor, False, 1))
    else:
        more_before = True
        more_after = bool(_keyset_rows(ranges, conditions, _row_cursor(rows[-1]), True, 1))
    total, exact = _count(ranges, conditions, FILTERED_COUNT_CAP if conditions else COUNT_CAP)
    return InboxPage(_load([row.id for row in rows]), None, per_page, total, exact, more_before, more_after)


def _first_page(ranges: list[tuple], conditions: list, per_page: int) -> InboxPage:
    ids = _page_ids(ranges, conditions, 0, per_page + 1)
    if len(ids) <= per_page:
        total, exact = len(ids), True
    else:
        ids = ids[:per_page]
        total, exact = _count(ranges, conditions, FILTERED_COUNT_CAP if conditions else COUNT_CAP)
    return InboxPage(_load(ids), 1, per_page, total, exact)


def _row_cursor(row) -> Cursor:
    return Cursor(row.due_at, row.id)


def _keyset_rows(ranges: list[tuple], conditions: list, cursor: Cursor, forward: bool, limit: int) -> list:
    """Up to `limit` (due_at, id) rows strictly after (forward) or before the cursor, nearest first.

    Every visible range splits into its dated and its undated part; each part is one index range read in the
    index's order (due_at, id) from the cursor's place with its own ORDER BY ... LIMIT, so no part is sorted or
    read beyond `limit` rows (the undated part's due_at is NULL throughout, but ordering by it too lets PostgreSQL
    read the index in order instead of sorting the part); the parts are then merged (at most limit rows each). A
    dated cursor is followed by the later dated tasks, then every undated one; an undated cursor by the undated
    tasks with a greater id."""
    undated = Task.due_at.is_(None)
    due = literal(cursor.due_at, Task.__table__.c.due_at.type) if cursor.due_at is not None else None
    number = literal(cursor.id, Integer())
    parts = []  # (conditions, order) of each index range
    if forward:
        if cursor.due_at is not None:
            parts.append(((undated == false(), tuple_(Task.due_at, Task.id) > tuple_(due, number)),
                          (Task.due_at, Task.id)))
            parts.append(((undated == true(), Task.due_at.is_(None)), (Task.due_at, Task.id)))
        else:
            parts.append(((undated == true(), Task.due_at.is_(None), Task.id > number), (Task.due_at, Task.id)))
    else:
        if cursor.due_at is None:
            parts.append(((undated == true(), Task.due_at.is_(None), Task.id < number),
                          (Task.due_at.desc(), Task.id.desc())))
            parts.append(((undated == false(),), (Task.due_at.desc(), Task.id.desc())))
        else:
            parts.append(((undated == false(), tuple_(Task.due_at, Task.id) < tuple_(due, number)),
                          (Task.due_at.desc(), Task.id.desc())))
    columns = (undated.label("undated"), Task.due_at.label("due_at"), Task.id.label("id"))
    selects = []
    for where in ranges:
        for position, order in parts:
            part = _range_select(where, conditions, *columns).where(*position).order_by(*order).limit(limit)
            selects.append(select(part.subquery()))
    merged = _union(selects).subquery()
    order = (merged.c.undated, merged.c.due_at, merged.c.id)
    query = select(merged.c.due_at, merged.c.id).order_by(
        *(order if forward else (column.desc() for column in order))).limit(limit)
    return list(db.session.execute(query))


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
