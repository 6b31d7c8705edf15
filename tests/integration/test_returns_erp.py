"""Returns created in the ERP (on the twin): a return request becomes one ERP return per plant the goods
came from, authorized or refused with the reason, and follows the ERP's receipt and credit note; through
the API, with redeliveries, outages and a half-refused split."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.canonical.envelope import Envelope
from ordersync.devkit import demo_data
from ordersync.domain.clock import FakeClock
from ordersync.ports.erp import ReturnRequest, ReturnRequestLine, order_reference, return_reference
from ordersync.server import create_app
from ordersync.store.schema import dead_letters, erp_returns
from tests.support.hub import api_key, erp_hub, events, settle

MAIN = demo_data.profile("main")
D = Decimal


@pytest.fixture
def erp() -> MemoryErp:
    return MemoryErp.from_profile("main", name="main")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hub(tmp_path: Path, erp: MemoryErp, clock: FakeClock) -> Any:
    h = erp_hub(tmp_path, {"main": erp}, clock=clock)
    yield h
    h.close()


@pytest.fixture
def client(hub: Any) -> TestClient:
    return TestClient(create_app(hub), raise_server_exceptions=False)


@pytest.fixture
def mine(hub: Any) -> dict[str, str]:
    return auth(api_key(hub, "orders:read", "orders:write", "returns:write", account="C-1001"))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def place(client: TestClient, headers: dict[str, str], number: str, *lines: tuple[str, int | D]) -> str:
    body = {"external_order_number": number, "ship_to_id": "RIS-DUS",
            "lines": [{"line_no": i, "sku": sku, "quantity": str(q)} for i, (sku, q) in enumerate(lines, 1)]}
    r = client.post("/v1/orders", json=body, headers=headers)
    assert r.status_code == 202, r.text
    order_id: str = r.json()["order_id"]
    return order_id


def poll(hub: Any) -> None:
    """The ERP change poll, then everything it causes."""
    hub.poller.poll_all()
    settle(hub)


def ask(client: TestClient, headers: dict[str, str], order_id: str, *lines: tuple[int, int]) -> Any:
    r = client.post("/v1/returns", headers=headers, json={"order_id": order_id, "lines": [
        {"line_no": n, "quantity": str(q), "reason": "damaged in transit"} for n, q in lines]})
    assert r.status_code == 201, r.text
    return r.json()


def payloads(hub: Any, type_: str) -> list[dict[str, Any]]:
    return [json.loads(b)["payload"] for b in events(hub, type_)]


def test_a_return_is_authorized_in_the_erp_then_received_and_credited(hub: Any, erp: MemoryErp, client: TestClient,
                                                                      mine: dict[str, str]) -> None:
    order_id = place(client, mine, "RE-1", ("BRG-6204-2RS", 10), ("SEN-PX-M12-NPN", 4))
    settle(hub)
    erp.ship(order_reference(order_id, "PLANT-N"), {1: D(6)})
    poll(hub)

    created = ask(client, mine, order_id, (1, 4), (2, 1))
    assert created["state"] == "requested" and created["erp_returns"] == []
    settle(hub)

    body = client.get(f"/v1/returns/{created['id']}", headers=mine).json()
    reference = return_reference(created["id"], "PLANT-N")
    erp_return = erp.return_status(reference)
    assert erp_return is not None and [(x.line_no, x.quantity) for x in erp_return.lines] == [(1, 4), (2, 1)]
    assert body["state"] == "approved" and body["refusal_reason"] == ""
    assert body["erp_returns"] == [{"plant": "PLANT-N", "reference": reference,
                                    "number": erp_return.erp_return_number, "state": "approved"}]
    [authorized] = payloads(hub, "return.authorized")
    assert authorized["erp_returns"] == [{"plant": "PLANT-N", "reference": reference,
                                          "erp_number": erp_return.erp_return_number}]

    poll(hub)  # the ERP reports the return it made: nothing moves
    assert client.get(f"/v1/returns/{created['id']}", headers=mine).json()["state"] == "approved"
    erp.receive_return(reference)
    poll(hub)
    assert client.get(f"/v1/returns/{created['id']}", headers=mine).json()["state"] == "received"
    erp.post_invoices(reference)
    poll(hub)
    final = client.get(f"/v1/returns/{created['id']}", headers=mine).json()
    assert final["state"] == "credited" and final["erp_returns"][0]["state"] == "credited"
    moves = [(p["from_state"], p["to_state"]) for p in payloads(hub, "return.state_changed")]
    assert moves == [("requested", "approved"), ("approved", "received"), ("received", "credited")]
    assert erp.calls["create_return"] == 1

    other = auth(api_key(hub, "orders:read", account="C-1002"))
    assert client.get(f"/v1/returns/{created['id']}", headers=other).status_code == 404


def test_a_redelivered_request_creates_no_second_erp_return(hub: Any, erp: MemoryErp, client: TestClient,
                                                            mine: dict[str, str]) -> None:
    order_id = place(client, mine, "RE-2", ("BRG-6204-2RS", 5))
    settle(hub)
    erp.ship(order_reference(order_id, "PLANT-N"))
    poll(hub)
    erp.fail_next(1, after=True, methods=["create_return"])  # the ERP made it, the answer got lost

    created = ask(client, mine, order_id, (1, 2))
    settle(hub)
    hub.clock.advance(120)
    settle(hub)
    [envelope] = [Envelope.model_validate_json(b) for b in events(hub, "return.requested")]
    with hub.uow() as uow:  # the same request announced once more (a replay): nothing happens
        uow.write_envelopes([envelope.model_copy(update={"message_id": envelope.message_id + "-again"})])
    settle(hub)

    reference = return_reference(created["id"], "PLANT-N")
    assert client.get(f"/v1/returns/{created['id']}", headers=mine).json()["state"] == "approved"
    assert len(erp.sales_with_reference(reference)) == 1 and erp.calls["create_return"] == 2
    assert len(payloads(hub, "return.authorized")) == 1


def test_the_hub_checks_again_against_what_shipped_meanwhile(hub: Any, erp: MemoryErp, client: TestClient,
                                                             mine: dict[str, str]) -> None:
    order_id = place(client, mine, "RE-3", ("BRG-6204-2RS", 10))
    settle(hub)
    created = ask(client, mine, order_id, (1, 8))  # nothing reported shipped yet: up to the ordered 10
    erp.ship_short(order_reference(order_id, "PLANT-N"), {1: D(5)})
    hub.poller.poll_all()  # the shipments arrive before the request is authorized

    settle(hub)

    body = client.get(f"/v1/returns/{created['id']}", headers=mine).json()
    assert body["state"] == "rejected" and body["erp_returns"] == []
    assert body["refusal_reason"] == "line 1: 8 is more than the 5 left to return"
    assert erp.calls["create_return"] == 0
    [refused] = payloads(hub, "return.refused")
    assert refused["return_id"] == created["id"] and refused["reason"] == body["refusal_reason"]
    assert ask(client, mine, order_id, (1, 5))["state"] == "requested"  # a refused request takes nothing
    settle(hub)
    assert [p["to_state"] for p in payloads(hub, "return.state_changed")] == ["rejected", "approved"]


def test_the_erps_refusal_is_the_requests_reason(hub: Any, erp: MemoryErp, client: TestClient,
                                                 mine: dict[str, str]) -> None:
    order_id = place(client, mine, "RE-4", ("SEN-PX-M12-NPN", 6))
    settle(hub)
    reference = order_reference(order_id, "PLANT-N")
    erp.ship(reference)
    poll(hub)
    # someone took 5 back in the ERP directly: the hub does not know
    outside = ReturnRequest(reference="RMA-desk-PLANT-N", return_id="desk", order_reference=reference,
                            account_id="C-1001", plant="PLANT-N", lines=(ReturnRequestLine(line_no=1, quantity=D(5)),))
    assert erp.create_return(outside).outcome.value == "authorized"

    created = ask(client, mine, order_id, (1, 3))
    settle(hub)

    body = client.get(f"/v1/returns/{created['id']}", headers=mine).json()
    assert body["state"] == "rejected"
    assert body["refusal_reason"] == ("line 1: 3 is more than the 6 shipped, of which 5 already came back or is on "
                                      "its way")
    assert erp.sales_with_reference(return_reference(created["id"], "PLANT-N")) == []


def test_a_split_order_returns_to_each_plant_and_is_received_when_both_are(hub: Any, erp: MemoryErp,
                                                                           client: TestClient,
                                                                           mine: dict[str, str]) -> None:
    north = demo_data.forecast(MAIN, "BRG-6204-2RS", "PLANT-N")
    order_id = place(client, mine, "RE-5", ("BRG-6204-2RS", north + 30))
    settle(hub)
    for plant in ("PLANT-N", "PLANT-S"):
        erp.ship(order_reference(order_id, plant))
    poll(hub)

    created = ask(client, mine, order_id, (1, north + 10))
    settle(hub)

    body = client.get(f"/v1/returns/{created['id']}", headers=mine).json()
    assert body["state"] == "approved"
    assert [(p["plant"], p["state"]) for p in body["erp_returns"]] == [("PLANT-N", "approved"),
                                                                      ("PLANT-S", "approved")]
    parts = {p: erp.return_status(return_reference(created["id"], p)) for p in ("PLANT-N", "PLANT-S")}
    assert {p: [x.quantity for x in r.lines] for p, r in parts.items() if r} == {"PLANT-N": [north], "PLANT-S": [10]}
    erp.receive_return(return_reference(created["id"], "PLANT-S"))
    poll(hub)
    body = client.get(f"/v1/returns/{created['id']}", headers=mine).json()
    assert body["state"] == "approved" and [p["state"] for p in body["erp_returns"]] == ["approved", "received"]
    erp.receive_return(return_reference(created["id"], "PLANT-N"))
    poll(hub)
    assert client.get(f"/v1/returns/{created['id']}", headers=mine).json()["state"] == "received"


def test_while_the_erp_is_down_the_request_waits_and_goes_through_after(hub: Any, erp: MemoryErp,
                                                                       client: TestClient, clock: FakeClock,
                                                                       mine: dict[str, str]) -> None:
    order_id = place(client, mine, "RE-6", ("BRG-6204-2RS", 3))
    settle(hub)
    erp.ship(order_reference(order_id, "PLANT-N"))
    poll(hub)
    erp.down = True
    created = ask(client, mine, order_id, (1, 3))
    settle(hub)
    clock.advance(60)
    settle(hub)  # tried again: still down, still waiting (no attempt used up)
    assert client.get(f"/v1/returns/{created['id']}", headers=mine).json()["state"] == "requested"
    with hub.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(erp_returns)).scalar_one() == 0

    erp.down = False
    clock.advance(300)
    settle(hub)

    assert client.get(f"/v1/returns/{created['id']}", headers=mine).json()["state"] == "approved"
    with hub.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(dead_letters)).scalar_one() == 0
