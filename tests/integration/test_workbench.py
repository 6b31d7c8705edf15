"""The exception workbench over HTTP on the ERP twin: every case action writes back through its flow,
wrong actions are refused with the allowed ones, /v1/ops is for ops keys only, cases escalate on a fake
clock, and backordered lines follow the ERP's revised dates and become cases when a promise passes."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.canonical.v1 import Allocation, CaseType, OrderState
from ordersync.config import CaseSettings, RetrySettings, WorkerSettings
from ordersync.devkit import demo_data
from ordersync.domain.cases import open_case, resolve_case
from ordersync.domain.clock import FakeClock
from ordersync.domain.errors import ProtocolError
from ordersync.flows.jobs import escalate_overdue, flag_passed_promises
from ordersync.ports.erp import AmendmentRequest, LineChange, order_reference
from ordersync.server import create_app
from tests.support.hub import api_key, erp_hub, events, order, place, record, settle

#: how an API action is recorded: the key that made it (its id and name), never a name in the body
KEY_ACTOR = re.compile(r"^key:[0-9a-f]+ \(test\)$")

MAIN = demo_data.profile("main")
ESCALATION = {"finance": ["finance-lead", "cfo-office"], "operations": ["operations-lead"]}


@pytest.fixture
def clock() -> FakeClock:
    """Now, so that the twin's dates (its own "today") and the hub's agree."""
    return FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
def erp(clock: FakeClock) -> MemoryErp:
    return MemoryErp("main", name="main", clock=clock.now)


@pytest.fixture
def hub(tmp_path: Path, erp: MemoryErp, clock: FakeClock) -> Any:
    h = erp_hub(tmp_path, {"main": erp}, clock=clock, cases=CaseSettings(escalation=ESCALATION))
    yield h
    h.close()


@pytest.fixture
def client(hub: Any) -> TestClient:
    return TestClient(create_app(hub), raise_server_exceptions=False)


@pytest.fixture
def ops(hub: Any) -> dict[str, str]:
    return auth(api_key(hub, "ops", client="ops"))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def held(hub: Any, *lines: Any, account: str, **extra: Any) -> tuple[str, str]:
    """Place an order that the flow holds; (order id, case id)."""
    receipt = place(hub, order(account, *lines, **extra))
    settle(hub)
    with hub.uow() as uow:
        [case] = uow.cases.open_for_order(receipt.order_id)
    return receipt.order_id, case.id


def act(client: TestClient, headers: dict[str, str], case_id: str, action: str, **body: Any) -> Any:
    return client.post(f"/v1/ops/cases/{case_id}/actions", json={"action": action, **body}, headers=headers)


def payloads(hub: Any, type_: str) -> list[dict[str, Any]]:
    return [json.loads(b)["payload"] for b in events(hub, type_)]


# -- hold decisions -------------------------------------------------------------------------------------

def test_releasing_a_credit_hold_moves_the_order_on_and_records_who_did_it(hub: Any, erp: MemoryErp,
                                                                           client: TestClient,
                                                                           ops: dict[str, str]) -> None:
    order_id, case_id = held(hub, ("MOT-IE3-4.0-4P", 8), account="C-1004")
    detail = client.get(f"/v1/ops/cases/{case_id}", headers=ops).json()
    assert detail["type"] == "credit_hold" and detail["owner_team"] == "finance"
    assert detail["allowed_actions"] == ["release_hold", "raise_limit", "cancel", "resolve", "assign", "escalate"]
    assert detail["order"]["state"] == "on_hold" and detail["order"]["hold"]["case_id"] == case_id
    assert "credit limit" in detail["runbook"] and detail["dead_letter"] is None
    r = act(client, ops, case_id, "release_hold", comment="paid by wire")
    assert r.status_code == 200, r.text
    assert r.json()["case"]["state"] == "resolved" and r.json()["case"]["allowed_actions"] == []
    settle(hub)
    assert record(hub, order_id).state is OrderState.ACCEPTED and erp.orders_for(order_id)
    last = client.get(f"/v1/ops/cases/{case_id}", headers=ops).json()["history"][-1]
    assert (KEY_ACTOR.match(last["actor"]) is not None, last["action"]) == (True, "release")  # the key, not a name
    assert last["comment"] == "release_hold: paid by wire"
    assert dt.datetime.fromisoformat(last["at"]) == hub.clock.now()
    assert [p["decision"] for p in payloads(hub, "order.hold_released")] == ["release"]
    assert [p["action"] for p in payloads(hub, "case.resolved")] == ["release"]


def test_price_cases_accept_the_erp_price_honour_the_shown_one_or_cancel(hub: Any, erp: MemoryErp,
                                                                        client: TestClient,
                                                                        ops: dict[str, str]) -> None:
    right = demo_data.contract_price(MAIN, "C-1002", "SEN-PT-0-10B", 2)
    shown = (right * Decimal("0.9")).quantize(Decimal("0.01"))
    cases = {action: held(hub, ("SEN-PT-0-10B", 2, shown), account="C-1002", external=f"P-{action}")
             for action in ("accept_price", "honor_shown_price", "cancel")}
    for action, (_, case_id) in cases.items():
        assert act(client, ops, case_id, action).status_code == 200
    settle(hub)
    prices = {action: erp.orders_for(order_id)[0].lines[0].unit_price if erp.orders_for(order_id) else None
              for action, (order_id, _) in cases.items()}
    assert prices == {"accept_price": right, "honor_shown_price": shown, "cancel": None}
    assert record(hub, cases["cancel"][0]).state is OrderState.CANCELLED
    assert record(hub, cases["accept_price"][0]).state is OrderState.ACCEPTED


# -- refusals -------------------------------------------------------------------------------------------

def test_a_wrong_action_is_refused_with_the_allowed_ones_and_changes_nothing(hub: Any, client: TestClient,
                                                                           ops: dict[str, str]) -> None:
    order_id, case_id = held(hub, ("MOT-IE3-4.0-4P", 8), account="C-1004")
    before = client.get(f"/v1/ops/cases/{case_id}", headers=ops).json()
    for action in ("retry", "honor_shown_price", "cancel_line", "reallocate", "explode"):
        r = act(client, ops, case_id, action)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
        assert r.json()["allowed"] == ["release_hold", "raise_limit", "cancel", "resolve", "assign", "escalate"]
    # the action fits the type, but something it needs is missing or the state does not allow it
    assert act(client, ops, case_id, "assign").status_code == 422  # no owner_team
    r = act(client, ops, case_id, "resolve", comment="done")
    assert r.status_code == 409 and "release the hold" in r.json()["detail"]  # it holds the order
    assert client.get(f"/v1/ops/cases/{case_id}", headers=ops).json() == before
    assert record(hub, order_id).state is OrderState.ON_HOLD
    assert act(client, ops, case_id, "cancel").status_code == 200
    r = act(client, ops, case_id, "release_hold")
    assert r.status_code == 409 and "resolved" in r.json()["detail"]
    assert act(client, ops, "no-such-case", "resolve", comment="x").status_code == 404


# -- allocation shortfalls, backorders ----------------------------------------------------------------------

def test_reallocating_a_held_shortfall_plans_the_allocation_again(hub: Any, erp: MemoryErp, client: TestClient,
                                                                  ops: dict[str, str]) -> None:
    order_id, credit_case = held(hub, ("MOT-IE3-4.0-4P", 8), account="C-1004")
    with hub.uow() as uow:  # no flow holds an order for a shortfall today: a planner's hold, simulated
        uow.cases.save(resolve_case(uow.cases.get(credit_case), action="release", actor="x", comment="",
                                    now=uow.now()))
        r = uow.orders.get(order_id)
        r.credit_approved = True
        r.move_to(OrderState.PRICED, uow.now(), "test: back to priced")
        r.put_on_hold(CaseType.ALLOCATION_SHORTFALL, "plant stock is blocked", "reallocate", uow.now(), hub.deps.cases)
        uow.save_order(r)
        [case] = uow.cases.open_for_order(order_id)
    assert erp.orders_for(order_id) == []
    r = act(client, ops, case.id, "reallocate", comment="stock unblocked")
    assert r.status_code == 200 and r.json()["result"] == {"resumed": True}
    settle(hub)
    after = record(hub, order_id)
    assert after.state is OrderState.ACCEPTED  # allocated again, submitted, accepted
    assert sorted(o.plant for o in erp.orders_for(order_id)) == after.plants()
    assert r.json()["case"]["history"][-1]["comment"] == "reallocate: stock unblocked"


def backordered(hub: Any) -> tuple[str, str, Allocation]:
    """An accepted order of C-1003 with line 1 backordered; (order id, ERP reference, its backorder)."""
    receipt = place(hub, order("C-1003", ("BRG-7205-BEP", 4), ("SEN-PX-M12-NPN", 10)))
    settle(hub)
    r = record(hub, receipt.order_id)
    [backorder] = [a for a in r.allocations if a.backorder]
    assert r.state is OrderState.ACCEPTED and backorder.line_no == 1
    reference = order_reference(receipt.order_id, backorder.plant)
    assert r.plants() == [backorder.plant]  # one ERP order
    return receipt.order_id, reference, backorder


def test_a_date_the_erp_revises_reaches_the_order_and_the_buyer_event(hub: Any, erp: MemoryErp) -> None:
    order_id, reference, backorder = backordered(hub)
    hub.poller.poll_all()
    settle(hub)
    # the ERP plans the sale for its earliest line: not a promise for the backorder, nothing revised
    assert payloads(hub, "order.backorder_date_revised") == []
    assert record(hub, order_id).backorders.erp_promised
    later = backorder.promised_date + dt.timedelta(days=20)
    # production planning moves the shipment in the ERP (one date per shipment: both lines)
    answer = erp.amend_order(AmendmentRequest(reference=reference, changes=(
        LineChange(line_no=1, promised_date=later), LineChange(line_no=2, promised_date=later))))
    assert len(answer.applied) == 2
    hub.poller.poll_all()
    settle(hub)
    [revised] = payloads(hub, "order.backorder_date_revised")
    assert (revised["order_id"], revised["line_no"], revised["sku"]) == (order_id, 1, "BRG-7205-BEP")
    assert (revised["previous_date"], revised["revised_date"]) == (backorder.promised_date.isoformat(),
                                                                  later.isoformat())
    r = record(hub, order_id)
    assert [a.promised_date for a in r.allocations if a.backorder] == [later]
    assert r.backorders.revisions[0].revised == later
    hub.poller.poll_all()  # nothing new in the ERP: nothing revised again
    settle(hub)
    assert len(payloads(hub, "order.backorder_date_revised")) == 1


def test_a_passed_promise_opens_a_shortfall_case_that_reallocate_and_cancel_line_work_off(
    hub: Any, erp: MemoryErp, clock: FakeClock, client: TestClient, ops: dict[str, str]
) -> None:
    order_id, reference, backorder = backordered(hub)
    assert flag_passed_promises(hub.store, clock, hub.deps.cases) == 0  # not due yet
    promised = backorder.promised_date
    clock.advance((promised - clock.now().date()).days * 86400 + 86400)
    assert flag_passed_promises(hub.store, clock, hub.deps.cases) == 1
    assert flag_passed_promises(hub.store, clock, hub.deps.cases) == 0  # once per promised date
    page = client.get("/v1/ops/cases", params={"type": "allocation_shortfall", "order_id": order_id},
                      headers=ops).json()
    [case] = page["items"]
    assert case["owner_team"] == "operations" and "BRG-7205-BEP" in case["summary"]
    assert [p["case"]["id"] for p in payloads(hub, "case.opened")] == [case["id"]]
    # reallocate on an accepted order: the ERP allocates it; its promise is read again, the case stays open
    r = act(client, ops, case["id"], "reallocate")
    assert r.status_code == 200, r.text
    assert [a["line_no"] for a in r.json()["result"]["backorders"]] == [1]
    assert r.json()["case"]["state"] == "in_progress" and "the ERP's promise: line 1" in \
        r.json()["case"]["history"][-1]["comment"]
    assert [p["action"] for p in payloads(hub, "case.updated")] == ["reallocate"]
    # cancel the backordered line: the ERP cancels it, and nothing backordered is left, so the case closes
    r = act(client, ops, case["id"], "cancel_line", line_no=1, comment="customer agreed")
    assert r.status_code == 200, r.text
    assert [x["line_no"] for x in r.json()["result"]["applied"]] == [1]
    assert {x.line_no: x.quantity for x in erp.order(reference).lines}[1] == 0  # type: ignore[union-attr]
    [amended] = payloads(hub, "order.amended")
    assert KEY_ACTOR.match(amended["actor"]) and amended["applied"][0]["cancel"] is True
    done = r.json()["case"]
    assert done["state"] == "resolved" and done["history"][-1]["action"] == "cancel_line"
    assert "customer agreed; line 1 cancelled in" in done["history"][-1]["comment"]
    assert record(hub, order_id).line(1).cancelled is True  # type: ignore[union-attr]


def test_a_cancel_line_the_erp_refuses_is_recorded_and_an_unreachable_erp_changes_nothing(
    hub: Any, erp: MemoryErp, client: TestClient, ops: dict[str, str]
) -> None:
    order_id, reference, _ = backordered(hub)
    with hub.uow() as uow:
        case = open_case(CaseType.ALLOCATION_SHORTFALL, summary="late", next_action="x", now=uow.now(),
                         policy=hub.deps.cases, order_id=order_id, account_id="C-1003")
        uow.cases.add(case)
    assert act(client, ops, case.id, "cancel_line").status_code == 422  # which line?
    r = act(client, ops, case.id, "cancel_line", line_no=9)
    assert r.status_code == 422 and "no such line" in r.text
    before = record(hub, order_id).version
    erp.fail_next(2, methods=["amend_order"])
    r = act(client, ops, case.id, "cancel_line", line_no=1)
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    assert record(hub, order_id).version == before  # the ERP was not reached: nothing changed
    assert len(client.get(f"/v1/ops/cases/{case.id}", headers=ops).json()["history"]) == 1
    erp.ship(reference)  # the warehouse ships everything, the backorder too
    r = act(client, ops, case.id, "cancel_line", line_no=1)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["applied"] == [] and "already shipped" in r.json()["result"]["refused"][0]["reason"]
    after = r.json()["case"]
    assert after["state"] == "in_progress" and "line 1 not cancelled: " in after["history"][-1]["comment"]
    assert [p["action"] for p in payloads(hub, "case.updated")] == ["cancel_line"]
    assert payloads(hub, "order.amended") == [] and record(hub, order_id).version == before


# -- dead letters ------------------------------------------------------------------------------------------

def test_retry_replays_the_dead_letter_of_an_integration_failure(tmp_path: Path, clock: FakeClock) -> None:
    erp = MemoryErp("main", name="main", clock=clock.now)
    hub = erp_hub(tmp_path, {"main": erp}, clock=clock, worker=WorkerSettings(retry=RetrySettings(max_attempts=1)))
    try:
        client = TestClient(create_app(hub), raise_server_exceptions=False)
        ops = auth(api_key(hub, "ops", client="ops"))
        erp.fail_next(2, ProtocolError("the ERP answered garbage"), methods=["submit_orders"])
        receipt = place(hub, order("C-1001", ("BRG-6204-2RS", 10), ship_to="RIS-DUS"))
        settle(hub)
        assert record(hub, receipt.order_id).state is OrderState.SUBMITTED_TO_ERP
        [letter] = hub.dead_letters.list()
        [case] = client.get("/v1/ops/cases", params={"type": "integration_failure"}, headers=ops).json()["items"]
        assert case["dead_letter_id"] == letter.id and case["order_id"] == receipt.order_id
        assert case["account_id"] == "C-1001" and case["owner_team"] == "integration"
        detail = client.get(f"/v1/ops/cases/{case['id']}", headers=ops).json()
        assert detail["dead_letter"]["status"] == "dead" and "garbage" in detail["dead_letter"]["error"]
        assert "retry" in detail["allowed_actions"]
        r = act(client, ops, case["id"], "retry", comment="ERP fixed")
        assert r.status_code == 200, r.text
        assert r.json()["result"]["consumer"] == letter.consumer and r.json()["case"]["state"] == "resolved"
        assert r.json()["case"]["dead_letter"]["status"] == "replayed"
        settle(hub)
        assert record(hub, receipt.order_id).state is OrderState.ACCEPTED and len(erp.orders_for(receipt.order_id)) == 1
        assert hub.dead_letters.list() == []  # replayed and processed: no new dead letter, no new case
        assert len(client.get("/v1/ops/cases", headers=ops).json()["items"]) == 1
    finally:
        hub.close()


# -- assign, escalate, listing ---------------------------------------------------------------------------

def test_assign_and_escalate_move_the_case_between_teams(hub: Any, client: TestClient, ops: dict[str, str]) -> None:
    _, case_id = held(hub, ("MOT-IE3-4.0-4P", 8), account="C-1004")
    r = act(client, ops, case_id, "escalate", comment="customer is a key account")
    assert r.status_code == 200
    case = r.json()["case"]
    assert (case["state"], case["owner_team"], case["owner_level"]) == ("escalated", "finance-lead", 2)
    [escalated] = payloads(hub, "case.escalated")
    assert (escalated["from_team"], escalated["from_level"]) == ("finance", 1) and KEY_ACTOR.match(escalated["actor"])
    r = act(client, ops, case_id, "assign", owner_team="credit-desk", comment="yours")
    case = r.json()["case"]
    assert (case["state"], case["owner_team"], case["owner_level"]) == ("in_progress", "credit-desk", 1)
    assert case["history"][-1]["comment"] == "to credit-desk: yours"
    assert [p["action"] for p in payloads(hub, "case.updated")] == ["assign"]
    listed = client.get("/v1/ops/cases", params={"owner_team": "credit-desk"}, headers=ops).json()["items"]
    assert [c["id"] for c in listed] == [case_id]


def test_open_cases_past_due_escalate_along_the_chain_on_the_clock(hub: Any, clock: FakeClock,
                                                                   client: TestClient, ops: dict[str, str]) -> None:
    _, case_id = held(hub, ("MOT-IE3-4.0-4P", 8), account="C-1004")  # credit hold: due in 4 h
    policy = hub.deps.cases
    clock.advance(3 * 3600)
    assert escalate_overdue(hub.store, clock, policy) == 0
    assert client.get("/v1/ops/cases", params={"overdue": True}, headers=ops).json()["items"] == []
    clock.advance(3600 + 1)
    assert [c["id"] for c in client.get("/v1/ops/cases", params={"overdue": True}, headers=ops).json()["items"]] \
        == [case_id]
    settle(hub)  # the worker's periodic check escalates it
    case = client.get(f"/v1/ops/cases/{case_id}", headers=ops).json()
    assert (case["state"], case["owner_team"], case["owner_level"], case["overdue"]) == (
        "escalated", "finance-lead", 2, False)
    assert dt.datetime.fromisoformat(case["due_at"]) == clock.now() + dt.timedelta(hours=4)
    assert case["history"][-1]["actor"] == "ordersync" and "due time" in case["history"][-1]["comment"]
    for team, level in (("cfo-office", 3), ("cfo-office", 4)):  # the chain ends: its last team keeps it
        clock.advance(4 * 3600 + 1)
        assert escalate_overdue(hub.store, clock, policy) == 1
        case = client.get(f"/v1/ops/cases/{case_id}", headers=ops).json()
        assert (case["owner_team"], case["owner_level"]) == (team, level)
    assert [p["case"]["owner_level"] for p in payloads(hub, "case.escalated")] == [2, 3, 4]
    assert act(client, ops, case_id, "cancel").status_code == 200
    clock.advance(5 * 3600)
    assert escalate_overdue(hub.store, clock, policy) == 0  # resolved cases never escalate


def test_the_case_list_filters_and_pages_newest_first(hub: Any, clock: FakeClock, client: TestClient,
                                                      ops: dict[str, str]) -> None:
    made = []
    with hub.uow() as uow:
        for i in range(7):
            case = open_case([CaseType.INVOICE_DISPUTE, CaseType.FULFILLMENT_DISCREPANCY][i % 2], summary=f"c{i}",
                             next_action="look", now=uow.now(), policy=hub.deps.cases,
                             account_id=["C-1001", "C-1002"][i % 2])
            uow.cases.add(case)
            made.append(case.id)
            clock.advance(60 * (i % 3))  # some share an opening time: the id breaks the tie
    seen, cursor = [], None
    while True:
        page = client.get("/v1/ops/cases", params={"limit": 3, **({"cursor": cursor} if cursor else {})},
                          headers=ops).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(c["id"] for c in seen) == sorted(made) and len(seen) == 7
    keys = [(c["opened_at"], c["id"]) for c in seen]
    assert keys == sorted(keys, reverse=True)

    def ids(**params: Any) -> set[str]:
        r = client.get("/v1/ops/cases", params=params, headers=ops)
        assert r.status_code == 200, r.text
        return {c["id"] for c in r.json()["items"]}

    assert ids(type="invoice_dispute") == set(made[0::2]) == ids(account_id="C-1001")
    assert ids(owner_team="operations") == set(made[1::2])
    assert ids(state="resolved") == set() and ids(state="open") == set(made)
    assert ids(overdue=False) == set(made) and ids(overdue=True) == set()
    assert client.get("/v1/ops/cases", params={"type": "nonsense"}, headers=ops).status_code == 422
    assert client.get("/v1/ops/cases", params={"cursor": "garbage"}, headers=ops).status_code == 422


# -- who may use /v1/ops -----------------------------------------------------------------------------------

def test_ops_routes_need_the_ops_scope_and_a_bound_key_sees_its_own_account_only(hub: Any, client: TestClient,
                                                                                 ops: dict[str, str]) -> None:
    _, case_id = held(hub, ("MOT-IE3-4.0-4P", 8), account="C-1004")
    buyer = auth(api_key(hub, "orders:read", "orders:write", "catalog:read", "returns:write", account="C-1004"))
    calls = [("GET", "/v1/ops/cases", None), ("GET", f"/v1/ops/cases/{case_id}", None),
             ("POST", f"/v1/ops/cases/{case_id}/actions", {"action": "assign", "owner_team": "x"}),
             ("GET", "/v1/ops/sla", None)]
    for method, path, body in calls:
        r = client.request(method, path, json=body, headers=buyer)
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json", (path, r.text)
        assert client.request(method, path, json=body).status_code == 401
    admin = auth(api_key(hub, "admin", client="ops"))
    assert client.get(f"/v1/ops/cases/{case_id}", headers=admin).status_code == 200
    own = auth(api_key(hub, "ops", account="C-1004"))
    other = auth(api_key(hub, "ops", account="C-1001"))
    assert client.get(f"/v1/ops/cases/{case_id}", headers=own).status_code == 200
    for method, path, body in calls[1:3]:
        r = client.request(method, path, json=body, headers=other)
        assert r.status_code == 404 and "C-1004" not in r.text, (path, r.text)
    assert client.get("/v1/ops/cases", headers=other).json()["items"] == []
    assert client.get("/v1/ops/cases", params={"account_id": "C-1004"}, headers=other).status_code == 404
    assert [c["id"] for c in client.get("/v1/ops/cases", headers=own).json()["items"]] == [case_id]
    assert client.get("/v1/ops/cases", headers=ops).json()["items"][0]["id"] == case_id  # unbound: all


def test_raising_the_limit_sets_it_in_the_erp_while_the_order_is_held(hub: Any, erp: MemoryErp, client: TestClient,
                                                                       ops: dict[str, str]) -> None:
    order_id, case_id = held(hub, ("MOT-IE3-4.0-4P", 8), account="C-1004", external="L-1")
    before = erp.credit("C-1004")
    r = act(client, ops, case_id, "raise_limit", amount="-5")
    assert r.status_code == 422 and erp.credit("C-1004").limit == before.limit
    r = act(client, ops, case_id, "raise_limit", amount="60000", comment="two years without arrears")
    assert r.status_code == 200, r.text
    assert r.json()["result"] == {"limit": "60000", "was": str(before.limit), "currency": "EUR",
                                  "available": str(Decimal(60000) - before.exposure)}
    assert erp.credit("C-1004").limit == Decimal(60000)
    last = r.json()["case"]["history"][-1]
    assert last["action"] == "raise_limit" and KEY_ACTOR.match(last["actor"])
    assert last["comment"] == (f"credit limit of C-1004 set to 60000 EUR in ERP main (was {before.limit}; available "
                               f"now {Decimal(60000) - before.exposure}): two years without arrears")
    assert r.json()["case"]["state"] == "in_progress"
    settle(hub)
    assert record(hub, order_id).state is OrderState.ON_HOLD  # releasing is finance's next decision
    assert act(client, ops, case_id, "release_hold").status_code == 200
    settle(hub)
    assert record(hub, order_id).state is OrderState.ACCEPTED
    r = act(client, ops, case_id, "raise_limit", amount="70000")
    assert r.status_code == 409 and erp.credit("C-1004").limit == Decimal(60000)  # resolved: nothing waits


def test_dispute_actions_need_an_answer_and_a_case_without_a_dispute_cannot_take_them(
        hub: Any, client: TestClient, ops: dict[str, str]) -> None:
    with hub.uow() as uow:
        case = open_case(CaseType.INVOICE_DISPUTE, summary="a dispute the hub has no record of", next_action="",
                         now=uow.now(), policy=hub.workbench.policy, account_id="C-1001")
        uow.cases.add(case)
    r = act(client, ops, case.id, "reject")
    assert r.status_code == 422 and "reject needs answer" in r.text
    r = act(client, ops, case.id, "credit", answer="credited", amount="5.00")
    assert r.status_code == 409 and "no dispute to decide" in r.text
    assert act(client, ops, case.id, "release_hold").json()["allowed"] == ["credit", "reject", "resolve", "assign",
                                                                            "escalate"]
