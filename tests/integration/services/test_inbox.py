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
