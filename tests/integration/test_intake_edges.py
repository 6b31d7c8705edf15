"""The intake's edges a new user found by probing a running demo (issue 18):

- an order number sent again with different content is refused (409 naming the differences) and leaves
  one case for the channel's owner; sent again unchanged it is a plain duplicate;
- an idempotency key compares the request's meaning (canonical JSON), not its bytes;
- a currency the account does not trade in, or no currency at all, is refused at intake with a reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.canonical.v1 import CaseType, ExceptionCase
from ordersync.config import CaseSettings
from ordersync.server import create_app
from ordersync.store.schema import cases, orders
from tests.support.hub import api_key, erp_hub, settle

BODY: dict[str, Any] = {
    "external_order_number": "EDGE-1", "account_id": "C-1001", "ship_to_id": "RIS-DUS", "currency": "EUR",
    "buyer_po_number": "PO-77",
    "lines": [{"line_no": 1, "sku": "BRG-6204-2RS", "quantity": "10"},
              {"line_no": 2, "sku": "SEN-PX-M12-NPN", "quantity": "4"}]}


@pytest.fixture
def hub(tmp_path: Path) -> Any:
    h = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")},
                cases=CaseSettings(channel_owners={"storefront": "commerce"}))
    yield h
    h.close()


@pytest.fixture
def client(hub: Any) -> TestClient:
    return TestClient(create_app(hub), raise_server_exceptions=False)


@pytest.fixture
def token(hub: Any) -> str:
    return api_key(hub, "orders:write", "orders:read", client="storefront")


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def knows_terms(hub: Any, account: str = "C-1001") -> None:
    """The hub has read the account's terms (its first order does this; the intake never waits for it)."""
    assert hub.readmodel.account_terms(account).result(timeout=10) is not None


def conflict_cases(hub: Any) -> list[ExceptionCase]:
    with hub.db.read() as conn:
        rows = conn.execute(select(cases.c.body).where(cases.c.type == CaseType.ORDER_CONFLICT.value)).scalars()
        return [ExceptionCase.model_validate_json(b) for b in rows]


def order_count(hub: Any) -> int:
    with hub.db.read() as conn:
        return len(conn.execute(select(orders.c.id)).all())


# -- the same order number, other content ----------------------------------------------------------------

def test_an_order_number_sent_again_with_other_lines_is_refused_naming_the_differences(
        hub: Any, client: TestClient, token: str) -> None:
    first = client.post("/v1/orders", json=BODY, headers=auth(token))
    assert first.status_code == 202
    changed = {**BODY, "lines": [{"line_no": 1, "sku": "BRG-6204-2RS", "quantity": "12"},
                                 {"line_no": 3, "sku": "FIT-CMP-12MM-SS", "quantity": "5"}]}
    r = client.post("/v1/orders", json=changed, headers=auth(token))
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["order_id"] == first.json()["order_id"]
    assert problem["differences"] == ["line 1 quantity: 10 -> 12", "line 2 removed (SEN-PX-M12-NPN x 4)",
                                      "line 3 added (FIT-CMP-12MM-SS x 5)"]
    assert "amendment" in problem["detail"] and "line 1 quantity: 10 -> 12" in problem["detail"]
    [case] = conflict_cases(hub)
    assert case.order_id == first.json()["order_id"] and case.owner_team == "commerce"  # the channel's owner
    assert "line 1 quantity: 10 -> 12" in case.summary and case.account_id == "C-1001"
    settle(hub)
    view = client.get(f"/v1/orders/{problem['order_id']}", headers=auth(token)).json()
    assert [line["quantity"] for line in view["lines"]] == ["10", "4"]  # the stored order is unchanged
    assert order_count(hub) == 1


def test_each_further_changed_resend_is_noted_on_the_one_open_case(hub: Any, client: TestClient, token: str) -> None:
    assert client.post("/v1/orders", json=BODY, headers=auth(token)).status_code == 202
    for po in ("PO-78", "PO-79"):
        r = client.post("/v1/orders", json={**BODY, "buyer_po_number": po}, headers=auth(token))
        assert r.status_code == 409 and r.json()["differences"] == [f"buyer_po_number: PO-77 -> {po}"]
    [case] = conflict_cases(hub)
    assert [e.action for e in case.history] == ["opened", "resent"]
    assert "PO-79" in case.history[-1].comment


def test_the_same_order_sent_again_unchanged_is_a_duplicate_not_a_conflict(
        hub: Any, client: TestClient, token: str) -> None:
    first = client.post("/v1/orders", json=BODY, headers=auth(token)).json()
    same = {**BODY, "notes": "", "lines": [{**line, "quantity": line["quantity"] + ".000"} for line in BODY["lines"]]}
    r = client.post("/v1/orders", json=same, headers=auth(token))
    assert r.status_code == 202 and r.json()["duplicate"] is True and r.json()["order_id"] == first["order_id"]
    assert conflict_cases(hub) == []


# -- idempotency by meaning ------------------------------------------------------------------------------

def test_an_idempotency_key_compares_the_requests_meaning_not_its_bytes(client: TestClient, token: str) -> None:
    key = {"Idempotency-Key": "meaning-1", "Content-Type": "application/json"}
    first = client.post("/v1/orders", content=json.dumps(BODY), headers=auth(token, **key))
    reordered = {k: BODY[k] for k in reversed(list(BODY))}
    again = client.post("/v1/orders", content=json.dumps(reordered, indent=4), headers=auth(token, **key))
    assert again.status_code == 202, again.text
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["order_id"] == first.json()["order_id"]
    other = client.post("/v1/orders", content=json.dumps({**BODY, "buyer_po_number": "PO-OTHER"}, indent=2),
                        headers=auth(token, **key))
    assert other.status_code == 409 and "different request" in other.json()["detail"]


# -- currency and account terms at intake ----------------------------------------------------------------

@pytest.mark.parametrize(("currency", "says"), [
    ("eur", "upper case (ISO 4217): EUR"),
    ("XXX", "XXX is not a currency one can pay in"),
    ("DEM", "DEM is not a currency one can pay in"),
])
def test_a_currency_code_that_is_no_currency_in_use_is_refused_naming_it(
        hub: Any, client: TestClient, token: str, currency: str, says: str) -> None:
    r = client.post("/v1/orders", json={**BODY, "currency": currency}, headers=auth(token))
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error["location"] == "body.currency" and says in error["message"]
    assert order_count(hub) == 0


def test_a_currency_the_account_does_not_trade_in_is_refused_at_intake(hub: Any, client: TestClient,
                                                                       token: str) -> None:
    knows_terms(hub)
    r = client.post("/v1/orders", json={**BODY, "currency": "USD"}, headers=auth(token))
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"code": "currency_not_traded", "message": "account C-1001 trades in EUR, not USD"}]
    assert order_count(hub) == 0
    ok = client.post("/v1/orders", json=BODY, headers=auth(token))
    assert ok.status_code == 202


def test_a_ship_to_of_another_account_is_refused_at_intake(hub: Any, client: TestClient, token: str) -> None:
    knows_terms(hub)
    r = client.post("/v1/orders", json={**BODY, "ship_to_id": "NOT-OURS"}, headers=auth(token))
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "unknown_ship_to"


def test_before_the_hub_knows_the_terms_the_order_is_taken_and_rejected_before_the_erp(
        hub: Any, client: TestClient, token: str) -> None:
    """The intake never waits for the ERP: an account's first order is taken, and its validation rejects
    it with the same reason; the ERP never sees it. The next one is refused at once."""
    first = client.post("/v1/orders", json={**BODY, "currency": "USD"}, headers=auth(token))
    assert first.status_code == 202, first.text
    settle(hub)
    view = client.get(f"/v1/orders/{first.json()['order_id']}", headers=auth(token)).json()
    assert view["state"] == "rejected" and view["erp_orders"] == []
    assert [r["code"] for r in view["rejection"]] == ["currency_not_traded"]
    knows_terms(hub)
    again = client.post("/v1/orders", json={**BODY, "external_order_number": "EDGE-2", "currency": "USD"},
                        headers=auth(token))
    assert again.status_code == 422 and again.json()["errors"][0]["code"] == "currency_not_traded"
