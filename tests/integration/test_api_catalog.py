"""``/v1/catalog``, ``/v1/prices``, ``/v1/availability`` and ``/ready`` over the read model (in-process
ASGI, ERP twin): as_of and stale, single flight, change events, ETags, channel rules."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.canonical.v1 import StockPosition
from ordersync.config import ChannelRuleSettings, FlowSettings
from ordersync.domain.events import StockChanged
from ordersync.server import create_app
from tests.support.hub import api_key, erp_hub, settle

SKU = "BRG-6204-2RS"


@pytest.fixture
def erp() -> MemoryErp:
    return MemoryErp.from_profile("main", name="main")


@pytest.fixture
def hub(tmp_path: Path, erp: MemoryErp) -> Any:
    rules = [ChannelRuleSettings(name="dealer-5", percent_off=Decimal(5), channels=["dealer-app"])]
    h = erp_hub(tmp_path, {"main": erp}, flows=FlowSettings(channel_rules=rules))
    yield h
    h.close()


@pytest.fixture
def client(hub: Any) -> TestClient:
    return TestClient(create_app(hub), raise_server_exceptions=False)


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def test_prices_are_the_erp_contract_price_with_the_channel_rules_of_the_key_and_carry_as_of(
    hub: Any, client: TestClient, erp: MemoryErp
) -> None:
    portal = api_key(hub, "catalog:read", account="C-1001", client="portal")
    dealer = api_key(hub, "catalog:read", account="C-1001", client="dealer_app")
    contract = erp.prices("C-1001", [(SKU, Decimal(10))])[0].contract_unit_price
    r = client.get("/v1/prices", params={"sku": SKU, "qty": "10"}, headers=auth(portal))
    assert r.status_code == 200, r.text
    price = r.json()["prices"][0]
    assert Decimal(price["contract_unit_price"]) == Decimal(price["unit_price"]) == contract
    assert price["source"] == "erp_contract" and price["stale"] is False
    assert dt.datetime.fromisoformat(price["as_of"]) <= dt.datetime.now(dt.UTC)
    d = client.get("/v1/prices", params={"sku": SKU, "qty": "10"}, headers=auth(dealer)).json()["prices"][0]
    assert Decimal(d["unit_price"]) == (contract * Decimal("0.95")).quantize(Decimal("0.0001"))
    assert d["source"] == "erp_contract+rules" and d["adjustments"][0]["rule"] == "dealer-5"


def test_a_basket_is_one_erp_call_and_repeats_are_served_from_the_read_model(hub: Any, client: TestClient,
                                                                              erp: MemoryErp) -> None:
    token = api_key(hub, "catalog:read", account="C-1001")
    skus = [i["sku"] for i in client.get("/v1/catalog", headers=auth(token)).json()["items"]][:6]
    before = erp.calls["prices"]
    for _ in range(5):
        r = client.get("/v1/prices", params={"sku": skus, "qty": "4"}, headers=auth(token))
        assert r.status_code == 200 and [p["sku"] for p in r.json()["prices"]] == skus
    assert erp.calls["prices"] - before == 1


def test_customer_part_numbers_resolve_to_skus(hub: Any, client: TestClient) -> None:
    token = api_key(hub, "catalog:read", account="C-1001")
    catalog = client.get("/v1/catalog", headers=auth(token)).json()
    item = next(i for i in catalog["items"] if i["sku"] == SKU)
    assert item["customer_part_numbers"] == ["RIS-100-6204"]
    r = client.get("/v1/prices", params={"sku": "RIS-100-6204"}, headers=auth(token))
    assert r.json()["prices"][0]["sku"] == SKU


def test_concurrent_misses_call_the_erp_once(hub: Any, erp: MemoryErp) -> None:
    erp.latency = 0.3  # every request arrives while the first lookup is still in the ERP
    model = hub.readmodel
    results: list[Any] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            results.append(model.stock([SKU, "BRG-6205-2RS"]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 20
    assert erp.calls["availability"] == 1
    assert model.stock_flight.calls == 1
    assert {v.sku for v in results[0]} == {SKU, "BRG-6205-2RS"}


def test_when_the_erp_is_down_reads_serve_the_last_known_values_marked_stale(hub: Any, client: TestClient,
                                                                             erp: MemoryErp) -> None:
    token = api_key(hub, "catalog:read", account="C-1001")
    fresh = client.get("/v1/availability", params={"sku": SKU}, headers=auth(token)).json()
    assert fresh["stale"] is False
    erp.down = True
    for _ in range(8):  # unknown SKUs miss the read model, go to the ERP and trip its circuit
        r = client.get("/v1/availability", params={"sku": "NEVER-SEEN"}, headers=auth(token))
        assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
        assert r.headers["Retry-After"]
    assert hub.erps.erp("main").status().circuit.value == "open"
    stale = client.get("/v1/availability", params={"sku": SKU}, headers=auth(token))
    assert stale.status_code == 200
    assert stale.json()["stale"] is True and stale.json()["items"][0]["plants"] == fresh["items"][0]["plants"]
    hub.heartbeat.beat()  # a worker is alive: the open circuit alone degrades the hub
    ready = client.get("/ready").json()
    assert ready["status"] == "degraded" and ready["erps"]["main"]["circuit"] == "open"
    assert ready["warnings"][0].startswith("ERP main: circuit open")


def test_a_stock_change_event_shows_in_availability(hub: Any, client: TestClient) -> None:
    token = api_key(hub, "catalog:read", account="C-1001")
    settle(hub)  # the first change poll reports every position the ERP has
    before = client.get("/v1/availability", params={"sku": SKU}, headers=auth(token)).json()["items"][0]
    plant = before["plants"][0]["plant"]
    now = dt.datetime.now(dt.UTC)
    position = StockPosition(sku=SKU, plant=plant, on_hand=Decimal(7), reserved=Decimal(0),
                             available_to_promise=Decimal(7), as_of=now)
    with hub.uow() as uow:
        uow.emit(StockChanged(erp="main", positions=(position,)), correlation_id=None)
    settle(hub)
    after = client.get("/v1/availability", params={"sku": SKU}, headers=auth(token)).json()["items"][0]
    changed = next(p for p in after["plants"] if p["plant"] == plant)
    assert changed["available_to_promise"] == "7" and dt.datetime.fromisoformat(changed["as_of"]) == now
    assert len(after["plants"]) == len(before["plants"])  # the other plant is kept


def test_availability_promises_what_ships_and_backorders_the_rest_with_a_date(hub: Any, client: TestClient) -> None:
    token = api_key(hub, "catalog:read", account="C-1001")
    item = client.get("/v1/availability", params={"sku": SKU}, headers=auth(token)).json()["items"][0]
    total = Decimal(item["available_to_promise"])
    want = total + 25
    item = client.get("/v1/availability", params={"sku": SKU, "qty": str(want)},
                      headers=auth(token)).json()["items"][0]
    promised = sum(Decimal(p["quantity"]) for p in item["promise"])
    back = [p for p in item["promise"] if p["backorder"]]
    assert promised == want and len(back) == 1 and Decimal(back[0]["quantity"]) == 25
    assert back[0]["promised_date"] > min(p["promised_date"] for p in item["promise"] if not p["backorder"])


def test_catalog_and_prices_answer_conditional_gets(hub: Any, client: TestClient) -> None:
    token = api_key(hub, "catalog:read", account="C-1001")
    for path, params in (("/v1/catalog", {}), ("/v1/prices", {"sku": SKU, "qty": "3"})):
        first = client.get(path, params=params, headers=auth(token))
        etag = first.headers["ETag"]
        again = client.get(path, params=params, headers=auth(token, **{"If-None-Match": etag}))
        assert again.status_code == 304 and again.headers["ETag"] == etag and again.content == b""
        other = client.get(path, params=params, headers=auth(token, **{"If-None-Match": '"nope"'}))
        assert other.status_code == 200 and other.json() == first.json()


def test_unknown_skus_and_other_accounts_are_not_found(hub: Any, client: TestClient) -> None:
    token = api_key(hub, "catalog:read", account="C-1001")
    r = client.get("/v1/prices", params={"sku": "NOPE-1"}, headers=auth(token))
    assert r.status_code == 404 and "NOPE-1" in r.json()["detail"]
    for path in ("/v1/catalog", "/v1/prices", "/v1/availability"):
        r = client.get(path, params={"sku": SKU, "account_id": "C-1002"}, headers=auth(token))
        assert r.status_code == 404, path
    assert client.get("/v1/prices", params={"sku": SKU, "qty": ["1", "2"]}, headers=auth(token)).status_code == 422
    assert client.get("/v1/prices", params={"sku": SKU, "qty": "-1"}, headers=auth(token)).status_code == 422


def test_ready_reports_the_store_and_each_erp_circuit(hub: Any, client: TestClient) -> None:
    hub.heartbeat.beat()
    r = client.get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["store"], body["reasons"], body["warnings"]) == ("ready", "ok", [], [])
    assert body["erps"] == {"main": {"circuit": "closed", "last_error": None, "in_flight": 0,
                                     "max_concurrency": 2, "budget_scope": "process"}}
    assert body["bus"] == {"kind": "embedded"} and [w["id"] for w in body["workers"]["live"]] == [hub.heartbeat.id]


def test_another_process_sees_refreshed_rows_after_its_sync(hub: Any, tmp_path: Path) -> None:
    from ordersync.runtime.readmodel import ReadModel

    settle(hub)  # the first change poll reports every position the ERP has
    other = ReadModel(hub.db, hub.clock, hub.erps)  # an API process of its own, same store
    first = other.stock([SKU])[0]
    other.sync()  # sets its starting point
    plant = first.positions[0].plant
    now = dt.datetime.now(dt.UTC)
    position = StockPosition(sku=SKU, plant=plant, on_hand=Decimal(3), reserved=Decimal(0),
                             available_to_promise=Decimal(3), as_of=now)
    with hub.uow() as uow:
        uow.emit(StockChanged(erp="main", positions=(position,)), correlation_id=None)
    settle(hub)
    assert other.stock_cached([SKU]) is not None
    assert other.stock_cached([SKU])[0].positions[0].on_hand != 3  # type: ignore[index]
    assert other.sync() >= 1
    synced = {p.plant: p for p in other.stock_cached([SKU])[0].positions}  # type: ignore[index]
    assert synced[plant].on_hand == 3
