"""The quality dashboard (/dashboard): every figure equals a count the test makes itself from the rows it created;
the period's edges are plant calendar days; every count links to a list of exactly that many rows; empty states,
bad periods and the Chinese page."""
from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import current_app, url_for

from app.extensions import db
from app.models import (
    Customer,
    Deadline,
    OutboxMessage,
    ProcessDefinition,
    ProcessInstance,
    ProcessVersion,
    Product,
    ProductLot,
    RecallConsignee,
    Task,
)
from app.models.types import utcnow
from tests.conftest import login

ZONE = ZoneInfo("Asia/Shanghai")


def _version(key: str) -> ProcessVersion:
    return db.session.scalar(db.select(ProcessVersion).join(ProcessDefinition)
                             .where(ProcessDefinition.key == key).limit(1))


def _instance(key: str, started: datetime, status: str = "running", **data) -> ProcessInstance:
    row = ProcessInstance(version=_version(key), title=f"{key} started {started:%Y-%m-%d %H:%M}", status=status,
                          started_at=started, data=data, state_json="")
    db.session.add(row)
    db.session.flush()
    return row


def _task(instance: ProcessInstance, element: str, *, due: datetime | None, group: str | None = "qa",
          state: str = "ready", kind: str = "user") -> Task:
    row = Task(instance_id=instance.id, spiff_id=str(uuid.uuid4()),
               element_id=element, name=element, kind=kind, state=state, group_name=group, due_at=due)
    db.session.add(row)
    return row


def _url(endpoint: str, **values) -> str:
    with current_app.test_request_context():
        return url_for(endpoint, **values)


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=ZONE).astimezone(UTC)


def _page(client, **args) -> str:
    response = client.get(_url("dashboard.index", **args))
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _link(page: str, href: str) -> int | None:
    """The count a link of the page shows for href (None: no such link)."""
    found = re.search(re.escape(f'href="{href.replace("&", "&amp;")}"') + r' data-(?:count|testid="[^"]*" data-count)'
                      r'="(\d+)"', page)
    return int(found.group(1)) if found else None


def _listed(client, href: str) -> int:
    page = client.get(href).get_data(as_text=True)
    return page.count('data-testid="figure-row"')


def _follow(client, page: str, figure: str, key: tuple[str, ...], expected: int, period: dict | None):
    href = _url("dashboard.rows", figure=figure, key=list(key), **(period or {}))
    if expected == 0:
        assert _link(page, href) is None, (figure, key)
        return
    assert _link(page, href) == expected, (figure, key)
    assert _listed(client, href) == expected, (figure, key)


@pytest.fixture
def board(app, seeded):
    """Rows of every kind, some inside the period and some outside, and the counts a reader expects."""
    app.config.update(PLANT_TIME_ZONE="Asia/Shanghai", PAGE_SIZE=100, LOT_NEAR_EXPIRY_DAYS=30)
    now = utcnow()
    today = now.astimezone(ZONE).date()
    start = today - timedelta(days=199)
    period = {"from": start.isoformat(), "to": today.isoformat()}
    inside = _local_midnight(start)  # the first moment of the period
    before = inside - timedelta(seconds=1)  # the last moment before it
    expect: dict = {"recalls": {}, "deadlines": {}, "undelivered": {}, "capa_aging": {}, "changes": {},
                    "supplier_returns": {}, "overdue_steps": {}}

    def add(figure: str, key: tuple[str, ...], n: int = 1) -> None:
        expect[figure][key] = expect[figure].get(key, 0) + n

    # Recalls: class x status, two before the period.
    recall_rows = []
    for recall_class, status, started in [("I", "running", inside), ("I", "running", now - timedelta(days=3)),
                                          ("II", "completed", now - timedelta(days=20)), (None, "running", now),
                                          ("III", "cancelled", now - timedelta(days=50)),
                                          ("I", "running", before), ("II", "incident", before)]:
        data = {"recall_class": recall_class} if recall_class else {}
        row = _instance("recall", started, status, **data)
        recall_rows.append(row)
        if started >= inside:
            add("recalls", (recall_class or "unassessed", status))
    first, second, third = recall_rows[0], recall_rows[1], recall_rows[2]
    outside = recall_rows[5]

    # Notification deadlines: met, met late, overdue, pending; one of a recall outside the period.
    for instance, key, due, met in [
            (first, "consignee_notice", now - timedelta(days=1), now - timedelta(days=2)),  # met
            (first, "regulator_report", now - timedelta(days=5), now - timedelta(days=4)),  # met late
            (second, "consignee_notice", now - timedelta(hours=1), None),  # overdue
            (second, "regulator_report", now + timedelta(days=1), None),  # pending
            (third, "consignee_notice", now - timedelta(days=10), now - timedelta(days=11)),  # met
            (outside, "consignee_notice", now - timedelta(days=1), None)]:  # overdue, outside
        db.session.add(Deadline(instance_id=instance.id, key=key, label=key.replace("_", " "), label_zh="通知期限",
                                met_by="x", started_at=instance.started_at, due_at=due, met_at=met))
        if instance is not outside:
            state = ("met" if met <= due else "met_late") if met else ("overdue" if due < now else "pending")
            add("deadlines", (key, state))

    # Consignee notices: one per delivery state; delivered ones and a closed recall's are not counted.
    customers = [Customer(code=f"C{i}", name=f"Customer {i}", kind="hospital") for i in range(9)]
    db.session.add_all(customers)
    db.session.flush()
    closed = third  # completed: its notices are no longer followed here

    def message(status: str, attempts: int) -> int:
        row = OutboxMessage(recipients="x@example.com", subject="Recall notice", body="b", status=status,
                            attempts=attempts, next_attempt_at=now)
        db.session.add(row)
        db.session.flush()
        return row.id

    for i, (instance, msg, acknowledged, effective, state) in enumerate([
            (first, None, False, None, "no_email"), (first, ("queued", 0), False, None, "queued"),
            (second, ("queued", 2), False, None, "retrying"), (second, ("failed", 5), False, None, "failed"),
            (first, ("sent", 1), False, None, None),  # delivered: the mail server took it
            (second, None, True, None, None),  # acknowledged on paper
            (first, None, False, True, None),  # a check found it acted on the notice
            (closed, ("failed", 5), False, None, None),  # the recall is closed
            (outside, None, False, None, None)]):  # started before the period
        db.session.add(RecallConsignee(
            instance_id=instance.id, customer_id=customers[i].id, notified_at=now - timedelta(hours=i),
            outbox_message_id=message(*msg) if msg else None, check_effective=effective,
            acknowledged_at=now if acknowledged else None))
        if state:
            add("undelivered", (state,))

    # CAPAs: open ones of every age, a closed one, one before the period; actions overdue or not.
    capas = []
    for age_days, status in [(1, "running"), (29, "incident"), (45, "running"), (75, "running"), (120, "running"),
                             (150, "running"), (10, "completed"), (None, "running")]:
        started = now - timedelta(days=age_days) if age_days is not None else before
        row = _instance("capa", started, status)
        capas.append(row)
        if status in ("running", "incident") and started >= inside:
            bucket = "0-30" if age_days <= 30 else "31-60" if age_days <= 60 else "61-90" if age_days <= 90 else "90+"
            add("capa_aging", (bucket,))
    _task(capas[0], "do_action", due=now - timedelta(days=1))  # overdue
    _task(capas[2], "do_action", due=now - timedelta(minutes=5), group=None)  # overdue, assigned to a person
    _task(capas[3], "do_action", due=now + timedelta(days=3))  # not yet due
    _task(capas[4], "do_action", due=now - timedelta(days=2), state="completed")  # done
    _task(capas[4], "investigation", due=now - timedelta(days=2), group="qa_management")  # overdue, not an action
    _task(capas[7], "do_action", due=now - timedelta(days=9), group="production")  # CAPA before the period
    capa_overdue = 2

    # Change controls: the highest of three risks; unassessed before the impact assessment; one closed.
    for risks, status in [({"qa_risk": "low", "ra_risk": "high", "production_risk": "low"}, "running"),
                          ({"qa_risk": "medium", "ra_risk": "low", "production_risk": "low"}, "running"),
                          ({"qa_risk": "low", "ra_risk": "low", "production_risk": "low"}, "incident"),
                          ({}, "running"), ({"qa_risk": "high"}, "completed")]:
        _instance("change_control", now - timedelta(days=7), status, **risks)
        if status in ("running", "incident"):
            levels = set(risks.values())
            add("changes", (next((r for r in ("high", "medium", "low") if r in levels), "unassessed"),))
    _instance("change_control", before, "running", qa_risk="high")

    # Supplier returns.
    for status, started in [("running", now), ("running", inside), ("incident", now), ("completed", now),
                            ("running", before)]:
        _instance("supplier_return", started, status)
        if status in ("running", "incident") and started >= inside:
            add("supplier_returns", (status,))

    # Overdue steps now, by group, whatever the period (the CAPA steps above are among them).
    lot_release = _instance("lot_release", before)
    _task(lot_release, "review", due=now - timedelta(hours=2), group="qa")
    _task(lot_release, "decide", due=now - timedelta(hours=2), group="qa", kind="service")  # not a user step
    _task(lot_release, "sign", due=None, group="qa")  # no due time
    db.session.flush()
    for task in db.session.scalars(db.select(Task)):
        if task.state == "ready" and task.kind == "user" and task.due_at is not None and task.due_at < now:
            add("overdue_steps", (task.group_name or "",))

    # Product lots by status; near expiry: in stock, expiring within 30 days.
    product = Product(name="Infusion set")
    db.session.add(product)
    db.session.flush()
    lots = [("quarantine", 10), ("quarantine", 400), ("released", 5), ("released", 20), ("hold", 3),
            ("expired", 5), ("scrapped", 10)]
    for i, (status, expires_in) in enumerate(lots):
        db.session.add(ProductLot(product_id=product.id, lot_number=f"DASH-{i:02d}", quantity=10, status=status,
                                  expiry_on=now.date() + timedelta(days=expires_in)))
    db.session.commit()
    by_status: dict[str, int] = {}
    for status, _ in lots:
        by_status[status] = by_status.get(status, 0) + 1
    near = sum(1 for status, days in lots if days <= 30 and status not in ("expired", "scrapped"))
    return {"period": period, "expect": expect, "capa_overdue": capa_overdue, "lots": by_status, "near": near,
            "start": start, "today": today, "now": now}


def test_every_figure_matches_the_rows_and_every_link_lists_them(client, board):
    login(client, "head")
    period, expect = board["period"], board["expect"]
    page = _page(client, **period)
    for figure, counts in expect.items():
        assert counts, figure  # the fixture made something to count for each figure
        for key, n in counts.items():
            _follow(client, page, figure, key, n, None if figure == "overdue_steps" else period)
    # A key with nothing to count has no link (and no row in the table).
    _follow(client, page, "recalls", ("II", "running"), 0, period)
    _follow(client, page, "capa_overdue", ("overdue",), board["capa_overdue"], period)
    # The headline of the deadlines: met on time out of met, met late and overdue (pending not yet decided).
    states = {}
    for (_, state), n in expect["deadlines"].items():
        states[state] = states.get(state, 0) + n
    rate = 100 * states["met"] / (states["met"] + states["met_late"] + states["overdue"])
    deadlines_tile = page.split('data-testid="tile-deadlines"')[1].split("</section>")[0]
    assert f'data-testid="headline">{rate:.1f}%<' in deadlines_tile
    recalls_tile = page.split('data-testid="tile-recalls"')[1].split("</section>")[0]
    assert f'data-testid="headline">{sum(expect["recalls"].values())}<' in recalls_tile
    # Lots link to the lot lists, filtered by status, and to the near-expiry list.
    for status, n in board["lots"].items():
        href = _url("lots.records", kind="product_lots", status=status)
        assert _link(page, href) == n
        assert client.get(href).get_data(as_text=True).count(">DASH-") == n
    assert _link(page, _url("lots.near_expiry")) == board["near"]
    assert client.get(_url("lots.near_expiry")).get_data(as_text=True).count(">DASH-") == board["near"]
    # The charts get the same figures from the page's JSON block; Chart.js comes from the vendored package.
    assert '<script type="application/json" id="dashboard-charts">' in page
    assert "vendor/chart.js/chart.umd.min.js" in page and "js/dashboard.js" in page


def test_the_period_edges_are_plant_calendar_days(client, board):
    login(client, "head")
    start, today = board["start"], board["today"]
    # One day later: the recall (and CAPA, change, supplier return) started at the first moment drop out.
    later = _page(client, **{"from": (start + timedelta(days=1)).isoformat(), "to": today.isoformat()})
    expect = dict(board["expect"]["recalls"])
    expect[("I", "running")] -= 1
    href = _url("dashboard.rows", figure="recalls", key=["I", "running"],
                **{"from": (start + timedelta(days=1)).isoformat(), "to": today.isoformat()})
    assert _link(later, href) == expect[("I", "running")] == _listed(client, href)
    # One day earlier: the ones started the second before the period come in.
    earlier = {"from": (start - timedelta(days=1)).isoformat(), "to": today.isoformat()}
    page = _page(client, **earlier)
    href = _url("dashboard.rows", figure="recalls", key=["I", "running"], **earlier)
    assert _link(page, href) == board["expect"]["recalls"][("I", "running")] + 1 == _listed(client, href)
    # The period ending the day before the start: of the period's recalls, none; the second before it: both.
    day_before = (start - timedelta(days=1)).isoformat()
    page = _page(client, **{"from": day_before, "to": day_before})
    recalls_tile = page.split('data-testid="tile-recalls"')[1].split("</section>")[0]
    assert 'data-testid="headline">2<' in recalls_tile


def test_a_period_with_nothing_says_so_in_each_tile(client, seeded):
    login(client, "qa")
    client.get("/language/en")
    page = _page(client, **{"from": "2020-01-01", "to": "2020-01-31"})
    assert "No recall was started in this period." in page
    assert "No CAPA started in this period is open." in page
    assert "No notice of the open recalls started in this period is waiting for delivery." in page
    assert "No step is overdue." in page and "There are no product lots yet." in page
    assert "No stock expires within 90 days, none is expired." in page
    # Every tile says it has nothing (however many tiles the dashboard has).
    assert page.count('data-testid="empty"') == page.count('data-testid="tile-') >= 9 and "<canvas" not in page


@pytest.mark.parametrize(("args", "message"), [
    ({"from": "2026-02-30"}, "2026-02-30 is not a date: enter the first day as YYYY-MM-DD"),
    ({"to": "yesterday"}, "yesterday is not a date: enter the last day"),
    ({"from": "20260101"}, "20260101 is not a date"),
    ({"from": "2026-12-01", "to": "2026-11-30"}, "ends (2026-11-30) before it starts (2026-12-01)"),
    ({"from": "2000-01-01", "to": "2026-01-01"}, "at most ten years"),
])
def test_a_bad_period_gets_a_clear_message(client, seeded, args, message):
    login(client, "head")
    response = client.get(_url("dashboard.index", **args))
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    rows = client.get(_url("dashboard.rows", figure="recalls", key=["I", "running"], **args))
    assert rows.status_code == 400 and message in rows.get_data(as_text=True)


def test_the_default_period_is_the_last_90_days(client, seeded):
    login(client, "qa")
    today = utcnow().astimezone(ZoneInfo(client.application.config["PLANT_TIME_ZONE"])).date()
    page = client.get("/dashboard/").get_data(as_text=True)
    assert f'value="{(today - timedelta(days=89)).isoformat()}"' in page and f'value="{today.isoformat()}"' in page


def test_an_unknown_figure_is_404_and_the_page_needs_a_sign_in(client, seeded):
    assert client.get("/dashboard/").status_code == 302
    login(client, "auditor")
    assert client.get("/dashboard/").status_code == 200
    assert client.get("/dashboard/nothing?key=x").status_code == 404
    assert client.get("/dashboard/recalls?key=I").status_code == 404  # a key of the wrong shape


def test_the_page_reads_in_chinese(client, board):
    login(client, "qa")  # Li Na reads Chinese
    client.get("/language/zh_CN")
    page = _page(client, **board["period"])
    assert "质量看板" in page and "按级别和状态的召回" in page and "通知期限" in page
    refused = client.get(_url("dashboard.index", **{"from": "2026-13-01"})).get_data(as_text=True)
    assert "2026-13-01 不是日期" in refused


def test_a_figures_list_pages_with_its_figure_key_and_period(client, board):
    client.application.config["PAGE_SIZE"] = 1
    login(client, "head")
    period = board["period"]
    response = client.get(_url("dashboard.rows", figure="recalls", key=["I", "running"], **period))
    first = response.get_data(as_text=True)
    assert response.status_code == 200 and "figure-row" in first, first[first.find("<main"):][:1500]
    assert first.count('data-testid="figure-row"') == 1 and "Page 1 of 2" in first
    next_href = re.search(r'href="([^"]*page=2[^"]*)"', first).group(1).replace("&amp;", "&")
    assert next_href.startswith("/dashboard/recalls?") and "key=I" in next_href and "key=running" in next_href
    assert f"from={period['from']}" in next_href
    second = client.get(next_href).get_data(as_text=True)
    assert second.count('data-testid="figure-row"') == 1 and "Page 2 of 2" in second


def test_the_api_gives_the_same_figures(client, board):
    from app.services import users

    headers = {"Authorization": f"Bearer {users.issue_token('auditor')}"}
    assert client.get("/api/v1/dashboard").status_code == 401
    answer = client.get("/api/v1/dashboard", query_string=board["period"], headers=headers)
    assert answer.status_code == 200
    body, expect = answer.get_json(), board["expect"]
    assert body["period"] == board["period"]
    assert {(r["class"], r["status"]): r["count"] for r in body["recalls"]} == expect["recalls"]
    assert {(d["key"], d["state"]): d["count"] for d in body["deadlines"]} == expect["deadlines"]
    for figure, name in (("undelivered", "undelivered"), ("capa_aging", "capa_aging"),
                         ("changes", "changes_open_by_risk"), ("supplier_returns", "supplier_returns_open"),
                         ("overdue_steps", "overdue_steps_by_group")):
        assert body[name] == {key[0]: n for key, n in expect[figure].items()}, figure
    assert body["capa_overdue_actions"] == board["capa_overdue"] and body["near_expiry"] == board["near"]
    assert body["lots_by_status"] == board["lots"]
    refused = client.get("/api/v1/dashboard", query_string={"from": "2026-12-01", "to": "2026-11-01"},
                         headers=headers)
    assert refused.status_code == 400 and refused.get_json()["error"] == "ValidationFailed"
    assert "before it starts" in refused.get_json()["message"]
