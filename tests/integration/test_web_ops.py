"""The operations dashboard (``/ops``) over HTTP on the ERP twin: sign-in with an ops key and a signed,
HttpOnly session cookie (never the key), pages that show the pipeline, throughput, SLA clocks and
connector health, the exception queue with team views, case actions that write back through the
workbench, dead letters replayed only after a dry run, and each order's timeline."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.canonical.v1 import OrderState
from ordersync.config import RetrySettings, WorkerSettings
from ordersync.domain.clock import FakeClock
from ordersync.domain.errors import ProtocolError
from ordersync.server import create_app
from ordersync.store.schema import order_transitions
from ordersync.web.people import People
from tests.support.hub import api_key, erp_hub, order, place, record, settle
from tests.support.people import PASSWORD, buyer, staff

SHIP_TO = "RIS-DUS"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
def erp(clock: FakeClock) -> MemoryErp:
    return MemoryErp("main", name="main", clock=clock.now)


@pytest.fixture
def hub(tmp_path: Path, erp: MemoryErp, clock: FakeClock) -> Any:
    h = erp_hub(tmp_path, {"main": erp}, clock=clock, worker=WorkerSettings(retry=RetrySettings(max_attempts=1)))
    yield h
    h.close()


class World:
    """Two accepted orders, one held for credit, one whose ERP submission died (a dead letter and its
    integration-failure case)."""

    def __init__(self, hub: Any, erp: MemoryErp) -> None:
        self.accepted = [place(hub, order("C-1001", ("BRG-6204-2RS", 10), external=f"PO-OK-{i}",
                                          ship_to=SHIP_TO)).order_id for i in range(2)]
        settle(hub)
        self.held = place(hub, order("C-1004", ("MOT-IE3-4.0-4P", 8), external="PO-HELD")).order_id
        settle(hub)
        erp.fail_next(2, ProtocolError("the ERP answered garbage"), methods=["submit_orders"])
        self.failed = place(hub, order("C-1001", ("BRG-6204-2RS", 4), external="PO-DLQ", ship_to=SHIP_TO)).order_id
        settle(hub)
        with hub.uow() as uow:
            [self.hold_case] = uow.cases.open_for_order(self.held)
            [self.dlq_case] = uow.cases.open_for_order(self.failed)
        [self.letter] = hub.dead_letters.list()


@pytest.fixture
def world(hub: Any, erp: MemoryErp) -> World:
    w = World(hub, erp)
    assert [record(hub, o).state for o in w.accepted] == [OrderState.ACCEPTED] * 2
    assert record(hub, w.held).state is OrderState.ON_HOLD
    assert record(hub, w.failed).state is OrderState.SUBMITTED_TO_ERP
    return w


@pytest.fixture
def client(hub: Any) -> TestClient:
    return TestClient(create_app(hub), raise_server_exceptions=False)


@pytest.fixture
def ops_key(hub: Any) -> str:
    """A staff member (operations, admin) to sign in as: their e-mail address (the name is historical:
    the dashboard once signed in with keys)."""
    return staff(hub, "operations", "admin", name="Olga Ops")


def sign_in(client: TestClient, email: str, next_: str = "/ops", password: str = PASSWORD) -> Any:
    return client.post("/ops/signin", data={"email": email, "password": password, "next": next_},
                       follow_redirects=False)


@pytest.fixture
def signed(client: TestClient, ops_key: str) -> TestClient:
    r = sign_in(client, ops_key)
    assert r.status_code == 303 and r.headers["location"] == "/ops", r.text
    return client


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def rows(page: str, id_prefix: str) -> list[str]:
    """The ids of the rows (``<id_prefix><hex id>``) of a list on the page."""
    return re.findall(rf'id="{id_prefix}([0-9a-f]{{8,}})"', page)


# -- sign-in ------------------------------------------------------------------------------------------

def test_every_page_redirects_to_sign_in_and_comes_back(client: TestClient, ops_key: str, world: World) -> None:
    for path in ("/ops", "/ops/cases?view=finance", f"/ops/cases/{world.hold_case.id}", "/ops/dead-letters",
                 "/ops/orders", f"/ops/orders/{world.held}"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/ops/signin?next="), (path, r.text)
    form = client.get("/ops/cases?view=finance")  # followed: the sign-in page, remembering where to go
    assert form.status_code == 200 and 'id="signin-form"' in form.text
    assert 'name="next" value="/ops/cases?view=finance"' in form.text
    r = sign_in(client, ops_key, "/ops/cases?view=finance")
    assert (r.status_code, r.headers["location"]) == (303, "/ops/cases?view=finance")
    assert sign_in(client, ops_key, "https://evil.example/ops").headers["location"] == "/ops"  # no open redirect


def test_a_form_post_without_a_session_changes_nothing(client: TestClient, hub: Any, world: World) -> None:
    r = client.post(f"/ops/cases/{world.hold_case.id}/actions", data={"action": "release_hold", "csrf": "x"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ops/signin")
    r = client.post("/ops/dead-letters/replay", data={"ids": [world.letter.id]}, follow_redirects=False)
    assert r.status_code == 303
    settle(hub)
    assert record(hub, world.held).state is OrderState.ON_HOLD
    assert hub.dead_letters.get(world.letter.id).status == "dead"


def test_wrong_passwords_buyers_and_keys_are_refused_and_the_cookie_holds_no_secret(client: TestClient, hub: Any,
                                                                                   ops_key: str) -> None:
    r = sign_in(client, ops_key, password="wrong-password-here")
    assert r.status_code == 401 and "do not match" in r.text and "set-cookie" not in r.headers
    r = sign_in(client, buyer(hub, account="C-1001"))  # a buyer: the portal, not the dashboard
    assert r.status_code == 401
    key = api_key(hub, "ops", client="ops")  # keys are for machines
    r = client.post("/ops/signin", data={"key": key}, follow_redirects=False)
    assert r.status_code == 422 and "set-cookie" not in r.headers
    assert client.get("/ops", follow_redirects=False).status_code == 303

    r = sign_in(client, ops_key)
    cookie = r.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and "path=/ops" in cookie.lower()
    value = client.cookies["ordersync_ops"]
    assert PASSWORD not in value and ops_key not in value
    assert 'id="operator"' in client.get("/ops").text and "Olga Ops" in client.get("/ops").text

    tampered = value.rsplit(".", 1)[0] + ".AAAA"
    client.cookies.set("ordersync_ops", tampered, path="/ops")
    assert client.get("/ops", follow_redirects=False).status_code == 303
    client.cookies.set("ordersync_ops", value, path="/ops")
    assert client.get("/ops").status_code == 200

    people = People(hub.db, hub.clock)
    people.disable(people.find(ops_key).id)  # type: ignore[union-attr]  # disabling ends their sessions
    assert client.get("/ops", follow_redirects=False).status_code == 303


def test_sign_out_needs_the_token_and_clears_the_session(signed: TestClient) -> None:
    page = signed.get("/ops").text
    assert signed.post("/ops/signout", data={}, follow_redirects=False).status_code == 403  # no CSRF token
    r = signed.post("/ops/signout", data={"csrf": csrf(page)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ops/signin"
    assert "ordersync_ops" not in signed.cookies
    assert signed.get("/ops", follow_redirects=False).status_code == 303


# -- pages --------------------------------------------------------------------------------------------

def test_overview_shows_pipeline_throughput_sla_and_connector_health(signed: TestClient, world: World) -> None:
    page = signed.get("/ops")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    html = page.text
    counts = dict(re.findall(r'data-state="([a-z_]+)" data-count="(\d+)"', html))
    assert counts["accepted"] == "2" and counts["on_hold"] == "1" and counts["submitted_to_erp"] == "1"
    assert counts["rejected"] == "0"
    assert re.search(r'id="pipeline-on_hold".*?<td class="num"[^>]*>\d+s</td>', html, re.S)  # an age is shown
    assert 'id="throughput-chart"' in html and 'data-total="4"' in html  # four orders received this hour
    bars = re.findall(r'<g class="bar" data-hour="[^"]+" data-count="(\d+)"', html)
    assert len(bars) == 24 and bars[-1] == "4" and sum(map(int, bars)) == 4
    assert re.search(r'id="sla-acknowledgment"', html) and 'id="sla-invoice_sync"' in html
    assert 'id="erp-main" data-circuit="closed"' in html
    assert 'id="dead-letter-count" data-count="1"' in html
    assert 'id="open-cases" data-count="2"' in html


def test_exception_queue_filters_by_type_owner_and_team_view(signed: TestClient, world: World) -> None:
    every = rows(signed.get("/ops/cases").text, "case-row-")
    assert set(every) == {world.hold_case.id, world.dlq_case.id}
    assert rows(signed.get("/ops/cases?view=finance").text, "case-row-") == [world.hold_case.id]
    assert rows(signed.get("/ops/cases?view=operations").text, "case-row-") == [world.dlq_case.id]  # integration
    assert rows(signed.get("/ops/cases?view=commerce").text, "case-row-") == []
    assert rows(signed.get("/ops/cases?type=integration_failure").text, "case-row-") == [world.dlq_case.id]
    assert rows(signed.get("/ops/cases?owner=finance").text, "case-row-") == [world.hold_case.id]
    assert rows(signed.get("/ops/cases?state=resolved").text, "case-row-") == []
    page = signed.get("/ops/cases?view=customer_service").text
    assert 'id="view-customer_service" href="/ops/cases?view=customer_service" aria-current="page"' in page


def test_releasing_a_credit_hold_from_the_case_page_moves_the_order_on(signed: TestClient, hub: Any, erp: MemoryErp,
                                                                       world: World) -> None:
    case_id = world.hold_case.id
    page = signed.get(f"/ops/cases/{case_id}").text
    assert 'id="case-actions"' in page and 'data-action="release_hold"' in page and 'data-action="retry"' not in page
    assert 'data-order-state="on_hold"' in page
    token = csrf(page)
    # without the session's token, or with another one, nothing happens
    for bad in ({}, {"csrf": "forged"}):
        r = signed.post(f"/ops/cases/{case_id}/actions", data={"action": "release_hold", **bad})
        assert r.status_code == 403
    # a foreign origin is refused even with the token
    r = signed.post(f"/ops/cases/{case_id}/actions", data={"action": "release_hold", "csrf": token},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    settle(hub)
    assert record(hub, world.held).state is OrderState.ON_HOLD

    r = signed.post(f"/ops/cases/{case_id}/actions", follow_redirects=False,
                    data={"action": "release_hold", "csrf": token, "comment": "paid by wire"})
    assert r.status_code == 303 and r.headers["location"] == f"/ops/cases/{case_id}?done=release_hold"
    settle(hub)
    assert record(hub, world.held).state is OrderState.ACCEPTED and erp.orders_for(world.held)
    page = signed.get(r.headers["location"]).text
    assert 'id="flash"' in page and 'data-state="resolved"' in page and 'data-resolved="true"' in page
    assert 'data-order-state="accepted"' in page
    assert 'data-action="release" data-actor="Olga Ops &lt;' in page and "release_hold: paid by wire" in page


def test_a_refused_action_shows_why_and_changes_nothing(signed: TestClient, hub: Any, world: World) -> None:
    case_id = world.hold_case.id
    token = csrf(signed.get(f"/ops/cases/{case_id}").text)
    r = signed.post(f"/ops/cases/{case_id}/actions", data={"action": "resolve", "csrf": token, "comment": "done"})
    assert r.status_code == 409 and 'id="case-error"' in r.text and "release the hold" in r.text
    r = signed.post(f"/ops/cases/{case_id}/actions", data={"action": "retry", "csrf": token})
    assert r.status_code == 422 and "credit_hold cases take one of" in r.text
    r = signed.post(f"/ops/cases/{case_id}/actions", data={"action": "assign", "csrf": token})
    assert r.status_code == 422 and "assign needs owner_team" in r.text
    assert signed.get("/ops/cases/nope").status_code == 404
    settle(hub)
    assert record(hub, world.held).state is OrderState.ON_HOLD
    r = signed.post(f"/ops/cases/{case_id}/actions", follow_redirects=False,
                    data={"action": "assign", "csrf": token, "owner_team": "finance-lead"})
    assert r.status_code == 303
    assert rows(signed.get("/ops/cases?owner=finance-lead").text, "case-row-") == [case_id]
    assert rows(signed.get("/ops/cases?view=finance").text, "case-row-") == [case_id]  # the team's escalation


def test_dead_letter_replay_is_previewed_first_then_confirmed(signed: TestClient, hub: Any, erp: MemoryErp,
                                                              world: World) -> None:
    letter = world.letter
    page = signed.get("/ops/dead-letters").text
    assert rows(page, "dlq-row-") == [letter.id] and "garbage" in page
    assert f'href="/ops/cases/{world.dlq_case.id}"' in page
    token = csrf(page)

    preview = signed.post("/ops/dead-letters/preview", data={"csrf": token, "ids": [letter.id]})
    assert preview.status_code == 200 and "dry run" in preview.text
    assert f'id="dlq-preview-{letter.id}"' in preview.text and 'data-outlook="will run"' in preview.text
    assert 'id="dlq-replay-confirm"' in preview.text and 'data-count="1"' in preview.text
    settle(hub)
    assert hub.dead_letters.get(letter.id).status == "dead"  # the preview changed nothing
    assert record(hub, world.failed).state is OrderState.SUBMITTED_TO_ERP

    every = signed.post("/ops/dead-letters/preview", data={"csrf": token, "matching": "1", "error": "garbage"})
    assert rows(every.text, "dlq-preview-") == [letter.id]
    none = signed.post("/ops/dead-letters/preview", data={"csrf": token, "matching": "1", "error": "no such error"})
    assert 'id="dlq-preview-empty"' in none.text

    r = signed.post("/ops/dead-letters/replay", follow_redirects=False,
                    data={"csrf": csrf(preview.text), "ids": [letter.id]})
    assert r.status_code == 303 and r.headers["location"] == "/ops/dead-letters?replayed=1"
    settle(hub)
    assert hub.dead_letters.get(letter.id).status == "replayed"
    assert record(hub, world.failed).state is OrderState.ACCEPTED and len(erp.orders_for(world.failed)) == 1
    with hub.uow() as uow:  # replayed through the case's retry: the case is resolved, by whom is recorded
        case = uow.cases.get(world.dlq_case.id)
    assert case.state.value == "resolved" and case.history[-1].action == "retry"
    assert 'data-replayed="1"' in signed.get(r.headers["location"]).text
    # confirming again replays nothing: the letter is no longer dead
    r = signed.post("/ops/dead-letters/replay", data={"csrf": token, "ids": [letter.id]}, follow_redirects=False)
    assert r.headers["location"] == "/ops/dead-letters?replayed=0"
    assert rows(signed.get("/ops/dead-letters?status=replayed").text, "dlq-row-") == [letter.id]


def test_order_timeline_lists_every_transition_event_and_case_action(signed: TestClient, hub: Any,
                                                                     world: World) -> None:
    token = csrf(signed.get(f"/ops/cases/{world.hold_case.id}").text)
    signed.post(f"/ops/cases/{world.hold_case.id}/actions", data={"action": "release_hold", "csrf": token})
    settle(hub)
    page = signed.get(f"/ops/orders/{world.held}").text
    with hub.db.read() as conn:
        transitions = conn.execute(select(order_transitions.c.from_state, order_transitions.c.to_state)
                                   .where(order_transitions.c.order_id == world.held)
                                   .order_by(order_transitions.c.id)).all()
    shown = re.findall(r'data-kind="transition" data-system="hub" data-what="([^"]+)"', page)
    assert shown == [f"{f or '∅'} → {t}" for f, t in transitions]
    assert shown[0] == "∅ → received" and "on_hold → " in " ".join(shown) and shown[-1].endswith("accepted")
    events = re.findall(r'data-kind="event" data-system="([^"]+)" data-what="([^"]+)"', page)
    assert ("channel portal", "order.received") in events and ("hub", "order.accepted") in events
    assert ("hub", "order.hold_released") in events and ("workbench", "case.resolved") in events
    assert 'data-kind="case" data-system="Olga Ops &lt;' in page
    times = re.findall(r'<time datetime="([^"]+)"', page)
    assert times == sorted(times, key=dt.datetime.fromisoformat)

    failed = signed.get(f"/ops/orders/{world.failed}").text
    assert 'data-kind="dead letter"' in failed
    assert signed.get("/ops/orders?q=PO-HELD", follow_redirects=False).headers["location"] == \
        f"/ops/orders/{world.held}"
    assert set(rows(signed.get("/ops/orders?state=accepted").text, "order-row-")) == {*world.accepted, world.held}
    assert signed.get("/ops/orders/nope").status_code == 404


def test_htmx_is_served_locally_with_its_provenance(client: TestClient) -> None:
    r = client.get("/static/htmx.min.js")
    assert r.status_code == 200
    header, _, body = r.content.partition(b"*/\n")
    assert b"htmx.org 2.0.4" in header and b"registry.npmjs.org/htmx.org/-/htmx.org-2.0.4.tgz" in header
    assert b"0BSD" in header
    digest = re.search(rb"dist/htmx.min.js \(the bytes after this comment\): ([0-9a-f]{64})", header)
    assert digest and hashlib.sha256(body).hexdigest() == digest.group(1).decode()
    assert client.get("/static/ordersync.css").status_code == 200


# -- the workbench: decision panels, confirmations, the queue's columns, assigning from a list, search ---------

def invoiced(hub: Any, erp: MemoryErp, account: str = "C-1001", external: str = "PO-INV") -> tuple[str, Any]:
    """An accepted order of ``account``, shipped and invoiced in the ERP and polled: (order id, invoice)."""
    from ordersync.store.schema import invoices

    order_id = place(hub, order(account, ("BRG-6204-2RS", 5), external=external, ship_to=SHIP_TO)).order_id
    settle(hub)
    [erp_order] = erp.orders_for(order_id)
    erp.ship(erp_order.reference)
    erp.post_invoices(erp_order.reference)
    hub.poller.poll_all()
    settle(hub)
    from ordersync.canonical.v1 import Invoice
    with hub.db.read() as conn:
        body = conn.execute(select(invoices.c.body).where(invoices.c.order_id == order_id)).scalar_one()
    return order_id, Invoice.model_validate_json(body)


def test_a_credit_hold_shows_the_customer_credit_lines_and_the_limit_that_releases_it(
        signed: TestClient, hub: Any, erp: MemoryErp, world: World) -> None:
    case_id = world.hold_case.id
    credit = erp.credit("C-1004")
    account = erp.account("C-1004")
    page = signed.get(f"/ops/cases/{case_id}").text
    assert 'id="credit-panel"' in page and f'id="credit-customer">{html.escape(account.name)}<' in page
    assert f'id="credit-limit" data-value="{credit.limit}"' in page
    assert f'id="credit-exposure" data-value="{credit.exposure}"' in page
    assert 'id="credit-lines"' in page and 'data-line="1"' in page and "MOT-IE3-4.0-4P" in page
    total = record(hub, world.held).total
    needed = credit.exposure + total
    assert f'id="credit-needed" data-value="{needed}"' in page and total > credit.available
    # finance raises the limit in the ERP: recorded with who and which limit; the order stays held till released
    r = signed.post(f"/ops/cases/{case_id}/actions", follow_redirects=False,
                    data={"action": "raise_limit", "csrf": csrf(page), "amount": str(needed),
                          "comment": "good payer"})
    assert r.status_code == 303, r.text
    assert erp.credit("C-1004").limit == needed
    page = signed.get(r.headers["location"]).text
    assert 'data-action="raise_limit"' in page and f"set to {needed} EUR in ERP main (was {credit.limit}" in page
    assert f'id="credit-limit" data-value="{needed}"' in page and "good payer" in page
    assert record(hub, world.held).state is OrderState.ON_HOLD
    r = signed.post(f"/ops/cases/{case_id}/actions", data={"action": "raise_limit", "csrf": csrf(page)})
    assert r.status_code == 422 and "raise_limit needs amount" in r.text


def test_cancel_asks_for_a_confirmation_first_and_a_second_confirmation_is_harmless(
        signed: TestClient, hub: Any, world: World) -> None:
    case_id = world.hold_case.id
    page = signed.get(f"/ops/cases/{case_id}").text
    assert 'id="action-cancel"' in page and 'id="case-confirm"' not in page
    r = signed.post(f"/ops/cases/{case_id}/actions", data={"action": "cancel", "csrf": csrf(page), "comment": "fraud"})
    assert r.status_code == 200 and 'id="case-confirm"' in r.text and 'name="confirmed" value="yes"' in r.text
    assert 'href="/ops/cases/' + case_id + '"' in r.text  # the way back changes nothing
    settle(hub)
    assert record(hub, world.held).state is OrderState.ON_HOLD  # not cancelled yet
    confirm = {"action": "cancel", "csrf": csrf(r.text), "comment": "fraud", "confirmed": "yes"}
    r = signed.post(f"/ops/cases/{case_id}/actions", data=confirm, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("?done=cancel")
    settle(hub)
    assert record(hub, world.held).state is OrderState.CANCELLED
    again = signed.post(f"/ops/cases/{case_id}/actions", data=confirm, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == f"/ops/cases/{case_id}"
    assert [e.action for e in hub.workbench.case(case_id).history].count("cancel") == 1


def test_the_queue_shows_order_number_customer_amount_and_tabs_with_counts(signed: TestClient, hub: Any,
                                                                           erp: MemoryErp, world: World) -> None:
    page = signed.get("/ops/cases").text
    row = re.search(rf'<tr id="case-row-{world.hold_case.id}".*?</tr>', page, re.S)
    assert row is not None
    assert "PO-HELD" in row.group(0) and html.escape(erp.account("C-1004").name) in row.group(0)
    total = record(hub, world.held).total
    assert f"{total:,.2f}" in row.group(0)
    assert 'id="count-all">2<' in page and 'id="count-finance">1<' in page and 'id="count-commerce">0<' in page
    # the list's own refresh: the body only, the counts beside it (out of band)
    part = signed.get("/ops/cases?view=finance&part=rows")
    assert part.status_code == 200 and part.text.lstrip().startswith("<tbody id=\"case-rows\">")
    assert "<html" not in part.text and 'id="count-finance" hx-swap-oob="true">1<' in part.text
    assert rows(part.text, "case-row-") == [world.hold_case.id]


def test_assign_offers_the_configured_teams_and_escalation_chains(tmp_path: Path, erp: MemoryErp,
                                                                  clock: FakeClock) -> None:
    from ordersync.config import CaseSettings
    from ordersync.web.ops_workbench import assignees

    h = erp_hub(tmp_path, {"main": erp}, clock=clock,
                cases=CaseSettings(escalation={"finance": ["finance-lead", "cfo-office"]}))
    try:
        teams = [a.key for a in assignees(h)]
        assert {"finance", "finance-lead", "cfo-office", "commerce", "operations", "integration"} <= set(teams)
        client = TestClient(create_app(h), raise_server_exceptions=False)
        signed = sign_in(client, staff(h, "operations", name="Omar Ops"))
        assert signed.status_code == 303
        held = place(h, order("C-1004", ("MOT-IE3-4.0-4P", 8), external="PO-HELD")).order_id
        settle(h)
        with h.uow() as uow:
            [case] = uow.cases.open_for_order(held)
        page = client.get(f"/ops/cases/{case.id}").text
        assert '<select id="action-owner-team" name="owner_team" required>' in page
        assert '<option value="cfo-office" >' in page and 'list="teams"' not in page
        r = client.post(f"/ops/cases/{case.id}/actions", follow_redirects=False,
                        data={"action": "assign", "csrf": csrf(page), "owner_team": "cfo-office"})
        assert r.status_code == 303
        assert 'id="case-owner">cfo-office<' in client.get(r.headers["location"]).text
    finally:
        h.close()


def test_disputes_are_credited_or_rejected_with_an_answer_the_buyer_sees(signed: TestClient, hub: Any,
                                                                         erp: MemoryErp, world: World) -> None:
    from ordersync.flows.services.disputes import DisputeRequest, dispute_invoice
    from ordersync.reads.accounts import dispute_cases

    cases = {}
    for outcome in ("credit", "reject"):
        _, invoice = invoiced(hub, erp, external=f"PO-{outcome}")
        with hub.uow() as uow:
            opened = dispute_invoice(uow, invoice.id, DisputeRequest(reason="damaged", comment="two bearings broken",
                                                                     amount=Decimal("10.00"), lines=((1, None),)),
                                     account_id="C-1001", actor="buyer@example.com", policy=hub.workbench.policy)
        cases[outcome] = (opened.case.id, invoice)
    case_id, invoice = cases["credit"]
    page = signed.get(f"/ops/cases/{case_id}").text
    assert 'id="dispute-panel"' in page and "two bearings broken" in page and 'id="dispute-lines"' in page
    assert f"{invoice.total_amount:,.2f}" in page and 'id="action-amount" name="amount" inputmode="decimal" ' \
        'maxlength="24" value="10.00"' in page
    r = signed.post(f"/ops/cases/{case_id}/actions", data={"action": "credit", "csrf": csrf(page)})
    assert r.status_code == 422 and "credit needs answer" in r.text
    r = signed.post(f"/ops/cases/{case_id}/actions", follow_redirects=False,
                    data={"action": "credit", "csrf": csrf(page), "answer": "We credit the two bearings."})
    assert r.status_code == 303
    page = signed.get(r.headers["location"]).text
    assert 'data-outcome="credited"' in page and "We credit the two bearings." in page
    # rejecting is confirmed first, then the buyer's read model carries the answer
    case_id, rejected = cases["reject"]
    page = signed.get(f"/ops/cases/{case_id}").text
    form = {"action": "reject", "csrf": csrf(page), "answer": "The delivery note is signed without remarks."}
    r = signed.post(f"/ops/cases/{case_id}/actions", data=form)
    assert r.status_code == 200 and 'id="case-confirm"' in r.text
    r = signed.post(f"/ops/cases/{case_id}/actions", data={**form, "confirmed": "yes"}, follow_redirects=False)
    assert r.status_code == 303
    with hub.db.read() as conn:
        seen = dispute_cases(conn, "C-1001", [invoice.id, rejected.id])
    assert seen[invoice.id] == {"case_id": cases["credit"][0], "state": "resolved", "decision": "credited",
                                "answer": "We credit the two bearings.", "credit": "10.00"}
    assert seen[rejected.id]["decision"] == "rejected"
    assert seen[rejected.id]["answer"] == "The delivery note is signed without remarks."


def test_a_price_mismatch_shows_what_the_difference_costs(signed: TestClient, hub: Any) -> None:
    from ordersync.devkit import demo_data

    right = demo_data.contract_price(demo_data.profile("main"), "C-1002", "SEN-PT-0-10B", 3)
    shown = (right * Decimal("0.9")).quantize(Decimal("0.01"))
    held_id = place(hub, order("C-1002", ("SEN-PT-0-10B", 3, str(shown)), external="PO-PRICE")).order_id
    settle(hub)
    with hub.uow() as uow:
        [case] = uow.cases.open_for_order(held_id)
    page = signed.get(f"/ops/cases/{case.id}").text
    cost = (Decimal(3) * (right - shown)).quantize(Decimal("0.01"))
    assert 'id="price-panel"' in page and f'data-line="1" data-cost="{cost}"' in page
    assert f'id="price-total" data-value="{cost}"' in page


def test_orders_are_found_by_number_po_customer_and_sku(signed: TestClient, hub: Any, erp: MemoryErp,
                                                        world: World) -> None:
    po = place(hub, order("C-1001", ("BRG-6204-2RS", 2), external="WEB-77", ship_to=SHIP_TO,
                          buyer_po_number="4500012345")).order_id
    settle(hub)

    def found(q: str) -> list[str]:
        r = signed.get("/ops/orders", params={"q": q}, follow_redirects=False)
        if r.status_code == 303:
            return [r.headers["location"].rsplit("/", 1)[1]]
        return rows(r.text, "order-row-")

    assert found("WEB-77") == [po]
    assert found("4500012345") == [po]
    assert found("PO-HELD") == [world.held]
    assert found("MOT-IE3") == [world.held]  # a SKU, in part
    name = erp.account("C-1004").name
    assert found(name.split()[0].lower()) == [world.held]  # the customer's name, in any case
    assert set(found("C-1001")) == {*world.accepted, world.failed, po}
    page = signed.get("/ops/orders", params={"q": "nothing-like-this"}).text
    assert 'id="order-list-empty"' in page
    part = signed.get("/ops/orders", params={"q": "C-1001", "part": "rows"}).text
    assert part.lstrip().startswith('<tbody id="order-rows">') and "<html" not in part


def test_saved_filters_are_each_operators_own(signed: TestClient, client: TestClient, hub: Any,
                                              world: World) -> None:
    page = signed.get("/ops/cases?view=finance&type=credit_hold").text
    assert 'name="query" value="view=finance&amp;type=credit_hold"' in page
    r = signed.post("/ops/filters", follow_redirects=False,
                    data={"csrf": csrf(page), "page": "cases", "name": "  My  credit holds ",
                          "query": "view=finance&type=credit_hold&part=rows&evil=1"})
    assert r.status_code == 303 and r.headers["location"] == "/ops/cases?view=finance&type=credit_hold"
    page = signed.get("/ops/cases").text
    found = re.search(r'<li data-filter-id="([0-9a-f]{32})"><a class="saved-filter" '
                      r'href="/ops/cases\?view=finance&amp;type=credit_hold" >My credit holds</a>', page)
    assert found, page
    # saving the name again replaces it; the order search keeps its own
    signed.post("/ops/filters", data={"csrf": csrf(page), "page": "cases", "name": "My credit holds",
                                      "query": "state=all"})
    signed.post("/ops/filters", data={"csrf": csrf(page), "page": "orders", "name": "Ostsee", "query": "q=C-1004"})
    page = signed.get("/ops/cases").text
    assert page.count('class="saved-filter"') == 1 and 'href="/ops/cases?state=all"' in page
    assert 'href="/ops/orders?q=C-1004" >Ostsee</a>' in signed.get("/ops/orders").text
    # another operator sees none of them and cannot delete them
    other = TestClient(create_app(hub), raise_server_exceptions=False)
    assert sign_in(other, staff(hub, "finance", name="Frida Finance")).status_code == 303
    theirs = other.get("/ops/cases").text
    assert 'class="saved-filter"' not in theirs
    [filter_id] = re.findall(r'data-filter-id="([0-9a-f]{32})"', page)
    other.post(f"/ops/filters/{filter_id}/delete", data={"csrf": csrf(theirs), "page": "cases"})
    assert 'class="saved-filter"' in signed.get("/ops/cases").text
    for _ in range(2):  # deleting twice is harmless
        r = signed.post(f"/ops/filters/{filter_id}/delete", data={"csrf": csrf(page), "page": "cases"},
                        follow_redirects=False)
        assert r.status_code == 303
    assert 'class="saved-filter"' not in signed.get("/ops/cases").text
    assert signed.post("/ops/filters", data={"page": "cases", "name": "x"}).status_code == 403  # no token


def test_the_credit_panel_lists_open_and_overdue_invoices_and_recent_payments(signed: TestClient, hub: Any,
                                                                              clock: FakeClock, world: World) -> None:
    from ordersync.canonical.v1 import Invoice, InvoiceState

    today = clock.now().date()

    def invoice(number: str, state: InvoiceState, total: str, due: dt.date, left: str | None = None) -> Invoice:
        return Invoice(id=f"inv-{number}", order_id=world.held, account_id="C-1004", number=number, state=state,
                       currency="EUR", untaxed_amount=Decimal(total), tax_amount=Decimal(0),
                       total_amount=Decimal(total), due_date=due,
                       open_amount=Decimal(left) if left is not None else None)

    with hub.uow() as uow:
        for inv in (invoice("INV-LATE", InvoiceState.POSTED, "1200.00", today - dt.timedelta(days=9), "700.00"),
                    invoice("INV-OPEN", InvoiceState.POSTED, "300.00", today + dt.timedelta(days=20)),
                    invoice("INV-PAID", InvoiceState.PAID, "999.00", today - dt.timedelta(days=30))):
            assert uow.documents.keep_invoice("main", None, world.held, inv, clock.now())
    page = signed.get(f"/ops/cases/{world.hold_case.id}").text
    assert 'id="credit-open-invoices" data-count="2">2 · 1,000.00<' in page  # what is left to pay
    assert 'id="credit-overdue" class="bad" data-value="700.00"' in page
    late = re.search(r'<tr data-invoice="inv-INV-LATE" class="overdue">.*?</tr>', page, re.S)
    assert late and "700.00 EUR" in late.group(0) and "overdue" in late.group(0)
    assert re.search(r'<ul id="credit-paid".*?INV-PAID · 999.00 EUR paid', page, re.S)
