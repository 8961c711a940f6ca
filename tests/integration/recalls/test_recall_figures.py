"""A recall's figures through a multi-level distribution chain: units shipped are what left the plant, whatever
page, handler, document or dashboard counts them, and every unit returned anywhere counts once."""
from __future__ import annotations

import pytest

from app.exceptions import FormInvalid
from app.services.lots import trace
from app.services.procedures import dashboards, recalls
from tests.conftest import T0
from tests.integration import recall_steps as steps

TRIGGER = {**steps.TRIGGER, "material_lots": "", "product_lots": "C1"}
# consignee: (returned, destroyed) - every unit of C1 comes back from where it ended up
RETURNS = {"DA": (40, 0), "SD": (30, 0), "HA": (100, 20), "HB": (0, 50), "HC": (60, 0), "HD": (40, 0)}


def test_onward_shipments_are_counted_once_everywhere(chain, user):
    instance = steps.start(user, T0, TRIGGER)
    view = recalls.recall_view(instance.id)
    assert trace.find_affected(product_lot_ids=[chain.id]).quantity_shipped == 340
    assert sorted(c.customer.code for c in view.consignees) == ["DA", "HA", "HB", "HC", "HD", "SD"]
    assert view.totals["quantity_shipped"] == 340
    assert [row.quantity_shipped for row in view.lots] == [340]
    assert {row["region"]: row["quantity_shipped"] for row in view.regions} == {"Anhui": 300, "Jiangsu": 40}
    assert instance.data["affected"]["quantity_shipped"] == 340  # the handler's summary in the instance data
    context = recalls.document_context(instance, T0, "en")["recall"]
    assert context["totals"]["quantity_shipped"] == 340
    assert dashboards.recall_dashboard(T0).quantity_shipped == 340
    forwarded = {c.customer.code: sum(line.quantity_forwarded for line in c.lines) for c in view.consignees}
    assert forwarded == {"DA": 260, "SD": 170, "HA": 0, "HB": 0, "HC": 0, "HD": 0}


def test_recovery_reaches_one_hundred_percent_through_the_chain(chain, user):
    instance = steps.start(user, T0, TRIGGER)
    qa = user("qa")
    for code, (returned, destroyed) in RETURNS.items():
        recalls.record_return(instance.id, code, "C1", returned, destroyed, qa, T0)
    totals = recalls.recall_view(instance.id).totals
    assert (totals["quantity_shipped"], totals["quantity_returned"], totals["quantity_destroyed"]) == (340, 270, 70)
    assert totals["recovered_pct"] == "100.0%"
    board = dashboards.recall_dashboard(T0)
    assert (board.quantity_recovered, board.recovered_rate) == (340, 1.0)


def test_a_unit_cannot_come_back_twice(chain, user):
    """DA may return what it got back from its customers, but not units its customers already returned."""
    instance = steps.start(user, T0, TRIGGER)
    qa = user("qa")
    recalls.record_return(instance.id, "HA", "C1", 120, 0, qa, T0)
    recalls.record_return(instance.id, "DA", "C1", 220, 0, qa, T0)  # its own 40 and 180 fetched from SD and HC
    with pytest.raises(FormInvalid) as err:
        recalls.record_return(instance.id, "DA", "C1", 221, 0, qa, T0)
    assert "would exceed the 340 units shipped" in err.value.errors["returned"][0]
    assert recalls.recall_view(instance.id).totals["recovered_pct"] == "100.0%"
