"""The demo plant's stock sits in a registered warehouse, so a fresh demo shows stock per warehouse and can ship."""
from __future__ import annotations

from app.services.lots import stock
from tests.conftest import login


def test_demo_stock_is_in_the_finished_goods_warehouse(runner, app, client):
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    [(warehouse, locations, quantity)] = stock.list_warehouses()
    assert (warehouse.code, locations) == ("WH-1", 2) and quantity > 0
    login(client, "qa")
    client.get("/language/en")
    page = client.get("/stock/?warehouse=WH-1").get_data(as_text=True)
    assert 'data-testid="stock-row"' in page and "Finished goods WH-1" in page
    assert 'data-testid="stock-empty"' in client.get("/stock/?warehouse=").get_data(as_text=True)
