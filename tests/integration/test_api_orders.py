"""``/v1/orders`` over HTTP (in-process ASGI): intake, idempotency, problem+json, keys and isolation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.server import create_app
from tests.support.hub import api_key, erp_hub, settle

BODY = {"external_order_number": "API-1", "account_id": "C-1001", "ship_to_id": "RIS-DUS",
        "lines": [{"line_no": 1, "sku": "BRG-6204-2RS", "quantity": "10"}]}


@pytest.fixture
def hub(tmp_path: Path) -> Any:
    h = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")})
    yield h
    h.close()


@pytest.fixture
def client(hub: Any) -> TestClient:
    return TestClient(create_app(hub), raise_server_exceptions=False)


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def test_an_order_is_acknowledged_at_once_with_its_location_and_followed_to_acceptance(hub: Any,
                                                                                        client: TestClient) -> None:
    token = api_key(hub, "orders:write", "orders:read", client="storefront")
    r = client.post("/v1/orders", json=BODY, headers=auth(token, **{"Idempotency-Key": "k1"}))
    assert r.status_code == 202
    body = r.json()
    assert body["status"] == "received"
    assert r.headers["Location"] == body["location"] == f"/v1/orders/{body['order_id']}"
    settle(hub)
    view = client.get(body["location"], headers=auth(token)).json()
    assert view["state"] == "accepted" and view["channel"] == "storefront"
    assert [h["to"] for h in view["history"]][-1] == "accepted"
    assert view["lines"][0]["allocations"][0]["plant"] == "PLANT-N"
    assert view["erp_orders"][0]["outcome"] == "accepted"


def test_a_retried_request_gets_the_first_answer_and_a_reused_key_with_another_body_is_refused(
    hub: Any, client: TestClient
) -> None:
    token = api_key(hub, "orders:write")
    first = client.post("/v1/orders", json=BODY, headers=auth(token, **{"Idempotency-Key": "same"}))
    again = client.post("/v1/orders", json=BODY, headers=auth(token, **{"Idempotency-Key": "same"}))
    assert again.status_code == 202 and again.json()["order_id"] == first.json()["order_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/v1/orders", json={**BODY, "external_order_number": "API-2"},
                        headers=auth(token, **{"Idempotency-Key": "same"}))
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["status"] == 409 and "idempotency key" in other.json()["detail"]
    resent = client.post("/v1/orders", json=BODY, headers=auth(token, **{"Idempotency-Key": "new"}))
    assert resent.json() == {**first.json(), "duplicate": True}


def test_bad_requests_get_problem_details_and_store_nothing(hub: Any, client: TestClient) -> None:
    token = api_key(hub, "orders:write")
    for bad in ({**BODY, "lines": []}, {**BODY, "lines": [{"line_no": 1, "sku": "X", "quantity": "-1"}]},
                {**BODY, "surprise": 1}, {"lines": "nope"}):
        r = client.post("/v1/orders", json=bad, headers=auth(token))
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"]
    r = client.post("/v1/orders", content=b"{not json", headers=auth(token, **{"Content-Type": "application/json"}))
    assert r.status_code == 422
    with hub.db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM orders").scalar() == 0


def test_keys_scopes_and_account_binding_are_enforced(hub: Any, client: TestClient) -> None:
    assert client.post("/v1/orders", json=BODY).status_code == 401
    assert client.post("/v1/orders", json=BODY, headers=auth("osk_nope_nope")).status_code == 401
    reader = api_key(hub, "orders:read")
    assert client.post("/v1/orders", json=BODY, headers=auth(reader)).status_code == 403
    theirs = api_key(hub, "orders:write", "orders:read", account="C-1002")
    assert client.post("/v1/orders", json=BODY, headers=auth(theirs)).status_code == 404  # C-1001 is not theirs
    mine = api_key(hub, "orders:write", "orders:read", account="C-1001")
    placed = client.post("/v1/orders", json={k: v for k, v in BODY.items() if k != "account_id"},
                         headers=auth(mine)).json()
    assert client.get(placed["location"], headers=auth(mine)).status_code == 200
    assert client.get(placed["location"], headers=auth(theirs)).status_code == 404


def test_a_key_over_its_rate_gets_429_with_retry_after(hub: Any, client: TestClient) -> None:
    token = api_key(hub, "orders:read", rate=60)  # a burst of 6, then one per second
    codes = [client.get("/v1/orders/none", headers=auth(token)).status_code for _ in range(8)]
    assert codes[:6] == [404] * 6 and codes[-1] == 429
    r = client.get("/v1/orders/none", headers=auth(token))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_an_order_number_taken_by_another_account_is_refused_without_naming_that_order(
    hub: Any, client: TestClient
) -> None:
    mine = api_key(hub, "orders:write", account="C-1001", client="portal")
    theirs = api_key(hub, "orders:write", account="C-1002", client="portal")
    first = client.post("/v1/orders", json={**BODY, "account_id": None}, headers=auth(mine))
    assert first.status_code == 202
    other = {**BODY, "account_id": None, "ship_to_id": None}
    r = client.post("/v1/orders", json=other, headers=auth(theirs))
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert first.json()["order_id"] not in r.text and "another account" in r.json()["detail"]
    again = client.post("/v1/orders", json={**BODY, "account_id": None}, headers=auth(mine))
    assert again.json()["order_id"] == first.json()["order_id"] and again.json()["duplicate"] is True
