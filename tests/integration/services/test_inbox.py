"""The inbox query (app.services.workflow.inbox): who sees which open tasks, in which order, the bounded count and
the text search, through the service, the HTML inbox and GET /api/v1/tasks."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import ProcessInstance, Task
from app.services import users
from app.services.workflow import inbox, processes
from app.services.workflow.inbox import InboxFilter
from tests.conftest import T0, login

HOUR = timedelta(hours=1)


def _instance(title: str, process: str = "capa") -> ProcessInstance:
    instance = ProcessInstance(version=processes.get_version(process), title=title, status="running", started_at=T0)
    db.session.add(instance)
    db.session.flush()
    return instance


def _task(instance: ProcessInstance, name: str = "Review", *, group: str = "qa", assignee: str | None = None,
          due: timedelta | None = None, state: str = "ready", kind: str = "user", name_zh: str | None = None) -> Task:
    task = Task(instance_id=instance.id, spiff_id=str(uuid.uuid4()), element_id="review", name=name,
                name_zh=name_zh, kind=kind, state=state, group_name=group, created_at=T0,
                assignee_id=users.get_by_username(assignee).id if assignee else None,
                due_at=T0 + due if due is not None else None)
    db.session.add(task)
    db.session.flush()
    return task


def _ids(actor, filters: InboxFilter | None = None, **kwargs) -> list[int]:
    return [task.id for task in inbox.inbox(actor, filters or InboxFilter(), now=T0, **kwargs).items]


def test_inbox_merges_my_claims_and_each_group_dated_first_then_by_id(user):
    """qa (groups qa and regulatory) sees its claims and its groups' unclaimed tasks, nothing else."""
    case = _instance("Order case")
    visible = [
        _task(case, "claimed by me, no date", group="production", assignee="qa"),
        _task(case, "qa, due in 3 h", due=3 * HOUR),
        _task(case, "regulatory, due in 1 h", group="regulatory", due=HOUR),
        _task(case, "claimed by me, due in 2 h", assignee="qa", due=2 * HOUR),
        _task(case, "qa, no date"),
        _task(case, "regulatory, overdue", group="regulatory", due=-HOUR),
        _task(case, "qa, due in 1 h too", due=HOUR),
    ]
    _task(case, "production, unclaimed", group="production", due=-HOUR)
    _task(case, "qa, claimed by head", assignee="head", due=-HOUR)
    _task(case, "qa, completed", state="completed", due=-HOUR)
    _task(case, "qa, a service task", kind="service", due=-HOUR)
    dated = sorted((t for t in visible if t.due_at), key=lambda t: (t.due_at, t.id))
    expected = [t.id for t in dated] + sorted(t.id for t in visible if t.due_at is None)
    qa = user("qa")

    assert _ids(qa) == expected
    pages = [_ids(qa, page=page, per_page=3) for page in (1, 2, 3, 4)]
    assert pages == [expected[:3], expected[3:6], expected[6:], []]
    assert _ids(qa, InboxFilter(scope="mine")) == [t.id for t in (visible[3], visible[0])]
    assert _ids(qa, InboxFilter(scope="unassigned")) == [i for i in expected if i not in (visible[0].id,
                                                                                            visible[3].id)]
    assert _ids(qa, InboxFilter(overdue=True)) == [visible[5].id]
    assert _ids(user("auditor")) == []  # no groups, no claims


def test_inbox_loads_the_page_without_the_instances_engine_state(user):
    case = _instance("Deferred state")
    task_id = _task(case, due=HOUR).id
    db.session.commit()
    db.session.expunge_all()

    [loaded] = inbox.inbox(user("qa"), InboxFilter(), now=T0).items

    assert loaded.id == task_id
    assert loaded.instance.title == "Deferred state" and loaded.instance.version.definition.key == "capa"
    assert "state_json" not in loaded.instance.__dict__ and "data" not in loaded.instance.__dict__


def test_the_count_stops_at_the_bound_and_says_so(monkeypatch, user):
    monkeypatch.setattr(inbox, "COUNT_CAP", 5)
    case = _instance("Counted")
    for hours in range(8):
        _task(case, due=hours * HOUR)
    qa = user("qa")

    first = inbox.inbox(qa, InboxFilter(), per_page=2, now=T0)
    assert (first.total, first.total_exact, first.total_label, first.pages_label) == (5, False, "5+", "3+")
    assert (first.has_next, first.next_num, first.has_prev) == (True, 2, False)
    third = inbox.inbox(qa, InboxFilter(), page=3, per_page=2, now=T0)  # past the bound: this page and one more
    assert (third.total, third.total_exact, third.has_next, third.pages_label) == (7, False, True, "4+")
    last = inbox.inbox(qa, InboxFilter(), page=4, per_page=2, now=T0)
    assert (len(last.items), last.total, last.total_exact, last.has_next) == (2, 8, True, False)
    short = inbox.inbox(qa, InboxFilter(), page=2, per_page=6, now=T0)  # the last page needs no count
    assert (len(short.items), short.total, short.total_exact, short.pages_label) == (2, 8, True, "2")
    beyond = inbox.inbox(qa, InboxFilter(), page=9, per_page=2, now=T0)
    assert (beyond.items, beyond.total, beyond.total_exact) == ([], 8, True)
    small = inbox.inbox(qa, InboxFilter(), per_page=20, now=T0)
    assert (small.total, small.total_exact, small.total_label) == (8, True, "8")


def test_a_filtered_inbox_is_counted_to_a_lower_bound(monkeypatch, user):
    monkeypatch.setattr(inbox, "FILTERED_COUNT_CAP", 3)
    case = _instance("Filtered count")
    for hours in range(5):
        _task(case, "Assess", due=hours * HOUR)
    _task(case, "Other", due=HOUR)

    found = inbox.inbox(user("qa"), InboxFilter(search="assess"), per_page=2, now=T0)
    assert (len(found.items), found.total, found.total_exact, found.total_label) == (2, 3, False, "3+")
    assert inbox.inbox(user("qa"), InboxFilter(), per_page=2, now=T0).total == 6  # unfiltered: COUNT_CAP


def test_the_inbox_page_and_the_api_show_a_bounded_count(monkeypatch, client, seeded, user):
    monkeypatch.setattr(inbox, "COUNT_CAP", 3)
    seeded.config["PAGE_SIZE"] = 2
    case = _instance("Bounded")
    for hours in range(5):
        _task(case, due=hours * HOUR)
    db.session.commit()
    token = users.issue_token("qa")

    answer = client.get("/api/v1/tasks?per_page=2", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert {key: answer[key] for key in ("total", "total_exact", "pages", "has_next")} == {
        "total": 3, "total_exact": False, "pages": 2, "has_next": True}
    login(client, "qa")
    page = client.get("/?lang=en").get_data(as_text=True)
    assert "Page 1 of 2+" in page and 'data-testid="inbox-count">3+<' in page


@pytest.fixture
def searchable(user):
    """Tasks to search: names in both languages, titles with a lot number, a literal % and _."""
    cases = {
        "lot": _instance("Recall of LOT-2026-0042 (class II)"),
        "percent": _instance("Yield 100% below target"),
        "underscore": _instance("Line_7 stoppage"),
        "plain": _instance("Housing burr"),
    }
    found = {
        "lot": _task(cases["lot"], "Recall decision", due=HOUR),
        "percent": _task(cases["percent"], "Assess yield", due=2 * HOUR),
        "underscore": _task(cases["underscore"], "Assess stoppage", due=3 * HOUR),
        "plain": _task(cases["plain"], "Containment", name_zh="遏制措施", due=4 * HOUR),
    }
    _task(_instance("Recall of LOT-2026-0042 elsewhere"), group="production")  # matches, not visible to qa
    db.session.commit()
    return found


@pytest.mark.parametrize(("text", "expected"), [
    ("lot-2026-0042", ["lot"]),  # a title's middle, any case
    ("0042", ["lot"]),  # shorter than a trigram: still found
    ("RECALL", ["lot"]),  # the name and the title both match: once
    ("containment", ["plain"]),
    ("遏制", ["plain"]),  # the Chinese name
    ("100%", ["percent"]),  # % and _ are literal
    ("e_7", ["underscore"]),
    ("e%7", []),
    ("assess", ["percent", "underscore"]),
    ("nothing like it", []),
])
def test_search_finds_task_names_and_instance_titles(searchable, user, text, expected):
    assert _ids(user("qa"), InboxFilter(search=text)) == [searchable[key].id for key in expected]


def test_search_compares_titles_row_by_row_when_the_index_matches_too_many(monkeypatch, searchable, user):
    monkeypatch.setattr(inbox, "SEARCH_CANDIDATES", 1)  # "recall" matches two titles: too many candidates
    assert inbox._title_candidates("recall") is None
    assert _ids(user("qa"), InboxFilter(search="Recall of")) == [searchable["lot"].id]
    assert _ids(user("qa"), InboxFilter(search="burr")) == [searchable["plain"].id]


def test_search_follows_a_changed_title(searchable, user):
    instance = db.session.get(ProcessInstance, searchable["plain"].instance_id)
    instance.title = "Housing crack"
    db.session.commit()

    assert _ids(user("qa"), InboxFilter(search="crack")) == [searchable["plain"].id]
    assert _ids(user("qa"), InboxFilter(search="burr")) == []


def test_search_and_filters_combine(searchable, user):
    assert _ids(user("qa"), InboxFilter(search="assess", process_key="capa")) == [
        searchable["percent"].id, searchable["underscore"].id]
    assert _ids(user("qa"), InboxFilter(search="assess", process_key="recall")) == []


def test_the_api_searches_with_q(client, searchable):
    headers = {"Authorization": f"Bearer {users.issue_token('qa')}"}

    answer = client.get("/api/v1/tasks?q=lot-2026", headers=headers).get_json()
    assert [item["id"] for item in answer["items"]] == [searchable["lot"].id]
    assert (answer["total"], answer["total_exact"]) == (1, True)
    assert client.get("/api/v1/tasks?q=" + "x" * 101, headers=headers).status_code == 422


def _tied_tasks() -> list[Task]:
    """Seventeen tasks qa sees, with ties on the due date (the order's tie-break is the id) and undated ones, claimed
    and offered to either group, in inbox order."""
    case = _instance("Paged")
    made = []
    for number in range(17):
        due = None if number % 4 == 3 else (number % 3) * HOUR  # three due dates, each shared by 4 or 5 tasks
        made.append(_task(case, f"Task {number}", due=due, group=("qa", "regulatory")[number % 2],
                          assignee="qa" if number % 5 == 0 else None))
    _task(case, "not qa's", group="production", due=HOUR)
    db.session.commit()
    return sorted(made, key=lambda t: (t.due_at is None, t.due_at or T0, t.id))


def _complete(*tasks: Task) -> None:
    for task in tasks:
        task.state = "completed"
    db.session.commit()


def test_cursor_pages_cover_every_task_once_while_tasks_are_completed(user):
    tasks = _tied_tasks()
    qa = user("qa")
    seen, done_read, done_unread = [], set(), set()
    page = inbox.inbox(qa, InboxFilter(), per_page=4, now=T0)
    assert (page.page, page.has_prev, page.prev_cursor) == (1, False, None)
    while True:
        seen += [task.id for task in page.items]
        # Between reads others complete tasks: one already read (the page's last: the cursor's own task) and the
        # last one not yet read.
        read = next((t for t in reversed(tasks) if t.id in seen and t.id not in done_read), None)
        unread = next((t for t in reversed(tasks) if t.id not in seen and t.id not in done_unread), None)
        _complete(*(t for t in (read, unread) if t))
        done_read |= {read.id} if read else set()
        done_unread |= {unread.id} if unread else set()
        if not page.has_next:
            assert page.next_cursor is None
            break
        page = inbox.inbox(qa, InboxFilter(), per_page=4, after=page.next_cursor, now=T0)
        assert page.page is None and page.has_prev

    assert len(seen) == len(set(seen))  # none twice
    assert seen == [t.id for t in tasks if t.id in seen]  # in inbox order, ties by id
    assert {t.id for t in tasks} - done_unread == set(seen)  # every task but those done before their page
    assert len(done_unread) >= 2 and len(seen) >= 8


def test_a_page_by_number_shifts_when_tasks_are_completed_a_cursor_does_not(user):
    tasks = _tied_tasks()
    qa = user("qa")
    first = inbox.inbox(qa, InboxFilter(), per_page=4, now=T0)
    _complete(tasks[0])
    by_number = inbox.inbox(qa, InboxFilter(), page=2, per_page=4, now=T0)
    by_cursor = inbox.inbox(qa, InboxFilter(), per_page=4, after=first.next_cursor, now=T0)
    assert [t.id for t in by_number.items] == [t.id for t in tasks[5:9]]  # tasks[4] is skipped
    assert [t.id for t in by_cursor.items] == [t.id for t in tasks[4:8]]


def test_previous_pages_by_cursor_and_a_short_previous_page_is_the_first(user):
    tasks = _tied_tasks()
    qa = user("qa")
    ids = [t.id for t in tasks]
    pages = [inbox.inbox(qa, InboxFilter(), per_page=4, now=T0)]
    while pages[-1].has_next:
        pages.append(inbox.inbox(qa, InboxFilter(), per_page=4, after=pages[-1].next_cursor, now=T0))
    assert [[t.id for t in p.items] for p in pages] == [ids[i:i + 4] for i in range(0, len(ids), 4)]
    last = pages[-1]
    assert (last.has_next, last.next_cursor, last.has_prev) == (False, None, True)

    back = inbox.inbox(qa, InboxFilter(), per_page=4, before=pages[3].prev_cursor, now=T0)
    assert ([t.id for t in back.items], back.has_prev, back.has_next) == (ids[8:12], True, True)
    _complete(tasks[0])  # the page before the second now holds 3 tasks: the first page is answered
    first = inbox.inbox(qa, InboxFilter(), per_page=4, before=pages[1].prev_cursor, now=T0)
    assert ([t.id for t in first.items], first.page, first.has_prev) == (ids[1:5], 1, False)


def test_cursors_keep_to_the_filters_and_scope(user):
    tasks = _tied_tasks()
    qa = user("qa")
    mine = [t.id for t in tasks if t.assignee_id]
    page = inbox.inbox(qa, InboxFilter(scope="mine"), per_page=2, now=T0)
    found = [t.id for t in page.items]
    while page.has_next:
        page = inbox.inbox(qa, InboxFilter(scope="mine"), per_page=2, after=page.next_cursor, now=T0)
        found += [t.id for t in page.items]
    assert found == mine
    assert _ids(user("auditor"), after=inbox.Cursor(None, 1).encode()) == []


def test_the_api_pages_by_next_link_while_tasks_are_completed(client, user):
    tasks = _tied_tasks()
    headers = {"Authorization": f"Bearer {users.issue_token('qa')}"}
    answer = client.get("/api/v1/tasks?per_page=5&scope=all", headers=headers).get_json()
    assert (answer["page"], answer["has_prev"], answer["prev"], answer["prev_cursor"]) == (1, False, None, None)
    seen = [item["id"] for item in answer["items"]]
    _complete(tasks[0], tasks[-1])  # one read, one not yet read
    while answer["next"]:
        assert "scope=all" in answer["next"] and "per_page=5" in answer["next"]
        answer = client.get(answer["next"], headers=headers).get_json()
        assert answer["page"] is None and answer["has_prev"] and answer["prev"]
        seen += [item["id"] for item in answer["items"]]
    assert seen == [t.id for t in tasks[:-1]]
    assert answer["next_cursor"] is None and answer["has_next"] is False
    back = client.get(answer["prev"], headers=headers).get_json()
    assert [item["id"] for item in back["items"]] == [t.id for t in tasks[10:15]]


@pytest.mark.parametrize("query", [
    "after=garbage", "after=", "before=%25%25%25", "after=" + "A" * 101,
    "after=" + inbox.base64.urlsafe_b64encode(b"1|20260101T000000.000000|0").decode(),  # id 0
    "after=" + inbox.base64.urlsafe_b64encode(b"1||2147483648").decode(),  # beyond the id column
    "after=" + inbox.base64.urlsafe_b64encode(b"1||-5").decode(),
    "after=" + inbox.base64.urlsafe_b64encode(b"2||5").decode(),  # another version
    "after=" + inbox.base64.urlsafe_b64encode(b"1|2026-13-01|5").decode(),  # no such date
    "after=" + inbox.base64.urlsafe_b64encode(b"1|||5").decode(),
    "after=" + inbox.base64.urlsafe_b64encode("1||５".encode()).decode(),  # a full-width digit
    "after=" + inbox.base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    "after={c}&before={c}", "after={c}&page=2",
])
def test_hostile_cursors_answer_400(client, user, query):
    _tied_tasks()
    cursor = inbox.Cursor(None, 5).encode()
    query = query.format(c=cursor)
    headers = {"Authorization": f"Bearer {users.issue_token('qa')}"}
    answer = client.get(f"/api/v1/tasks?{query}", headers=headers)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert set(answer.get_json()) >= {"error", "message"}
    login(client, "qa")
    assert client.get(f"/?{query}").status_code == 400


def test_the_inbox_page_links_next_and_previous_by_cursor(client, seeded, user):
    seeded.config["PAGE_SIZE"] = 4
    tasks = _tied_tasks()
    login(client, "qa")
    first = client.get("/?lang=en&scope=all").get_data(as_text=True)
    assert "Page 1 of 5" in first and 'data-testid="inbox-prev"' not in first
    link = first.split('data-testid="inbox-next" href="')[1].split('"')[0].replace("&amp;", "&")
    assert "after=" in link and "scope=all" in link and "page=" not in link
    second = client.get(link).get_data(as_text=True)
    assert f"/tasks/{tasks[4].id}\"" in second and f"/tasks/{tasks[3].id}\"" not in second
    assert "Page " not in second  # reached by cursor: no page number
    back = second.split('data-testid="inbox-prev" href="')[1].split('"')[0].replace("&amp;", "&")
    again = client.get(back).get_data(as_text=True)
    assert f"/tasks/{tasks[0].id}\"" in again and "Page 1 of 5" in again
