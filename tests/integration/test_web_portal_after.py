"""The buyer portal after the order, over the ERP twin: shipments with carriers' tracking links, invoices with
their open and overdue balance and disputes (post/redirect/get), order confirmations and invoices as PDF,
returns with RMA numbers, one status text per order state, and every /portal path answering a page."""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.channels.portal import documents, formatting, orders, returns
from ordersync.config import WebSettings
from ordersync.domain.clock import FakeClock
from ordersync.ports.erp import order_reference
from ordersync.server import create_app
from tests.integration import test_web_portal as portal_tests
from tests.integration.test_web_portal import SCOPES, add, checkout, csrf, sign_in
from tests.support.hub import erp_hub, settle
from tests.support.people import buyer

# the portal tests' fixtures: a hub over the ERP twin's main profile and a browser-like client
erp, hub, client = portal_tests.erp, portal_tests.hub, portal_tests.client


def _shipped_and_invoiced(client: TestClient, hub: Any, erp: MemoryErp, *, carrier: str | None = None,
                          tracking: str | None = None, invoice: bool = True) -> str:
    """An order of 10 bearings placed in the portal, shipped from PLANT-N (and invoiced): its id."""
    add(client, "BRG-6204-2RS", 10)
    order_id = checkout(client, buyer_po_number="PO-AFTER-1")
    settle(hub)
    reference = order_reference(order_id, "PLANT-N")
    erp.ship(reference, None, carrier=carrier, tracking=tracking)
    if invoice:
        erp.post_invoices(reference)
    hub.poller.poll_all()
    settle(hub)
    return order_id


def _pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def _invoice_id(html: str) -> str:
    found = re.search(r'data-invoice="([^"]+)"', html)
    assert found, html
    return found.group(1)


# -- tracking ---------------------------------------------------------------------------------------------

def test_tracking_links_for_known_carriers_and_none_for_unknown() -> None:
    assert documents.tracking_url("DHL Paket", "00340434000000000017") == (
        "https://www.dhl.com/de-en/home/tracking/tracking-parcel.html?submit=1&tracking-id=00340434000000000017")
    assert documents.tracking_url("ups", "1Z 999") == "https://www.ups.com/track?loc=en_US&tracknum=1Z%20999"
    assert documents.tracking_url("FedEx", "123").startswith("https://www.fedex.com/")  # type: ignore[union-attr]
    assert documents.tracking_url("DB Schenker", "123") is None  # unknown: no guessed link
    assert documents.tracking_url("DHL", None) is None and documents.tracking_url(None, "1") is None
    configured = {"DB Schenker": "https://schenker.example/track?id={number}", "DHL": "https://dhl.example/{number}"}
    assert documents.tracking_url("DB Schenker", "S-1", configured) == "https://schenker.example/track?id=S-1"
    assert documents.tracking_url("DHL Paket", "7", configured) == "https://dhl.example/7"  # configured wins


def test_the_order_page_shows_each_shipment_with_carrier_number_and_link(client: TestClient, hub: Any,
                                                                        erp: MemoryErp) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    order_id = _shipped_and_invoiced(client, hub, erp, invoice=False)  # the twin's first carrier: DHL Paket
    page = client.get(f"/portal/orders/{order_id}")
    shipment = re.search(r'<li class="shipment"(.*?)</li>', page.text, re.S)
    assert shipment, page.text
    number = re.search(r'class="tracking-number">([^<]+)<', shipment.group(1))
    assert number and "DHL Paket" in shipment.group(1)
    assert f'href="https://www.dhl.com/de-en/home/tracking/tracking-parcel.html?submit=1&amp;tracking-id=' \
           f'{number.group(1)}"' in shipment.group(1)
    assert "10 \u00d7 BRG-6204-2RS" in shipment.group(1)


def test_an_unknown_carrier_gets_no_link(client: TestClient, hub: Any, erp: MemoryErp) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    order_id = _shipped_and_invoiced(client, hub, erp, carrier="DB Schenker", tracking="SCH-4711", invoice=False)
    page = client.get(f"/portal/orders/{order_id}")
    assert "SCH-4711" in page.text and "DB Schenker" in page.text
    assert 'class="tracking-link"' not in page.text


def test_configured_tracking_urls_add_carriers(tmp_path: Path, erp: MemoryErp) -> None:
    h = erp_hub(tmp_path, {"main": erp},
                web=WebSettings(tracking_urls={"DB Schenker": "https://schenker.example/t/{number}"}))
    try:
        c = TestClient(create_app(h), follow_redirects=True)
        sign_in(c, buyer(h, *SCOPES, account="C-1001"))
        order_id = _shipped_and_invoiced(c, h, erp, carrier="DB Schenker", tracking="SCH-1", invoice=False)
        assert 'href="https://schenker.example/t/SCH-1"' in c.get(f"/portal/orders/{order_id}").text
    finally:
        h.close()


# -- status texts -----------------------------------------------------------------------------------------

def test_one_status_text_per_state_on_list_and_detail(client: TestClient, hub: Any, erp: MemoryErp) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    order_id = _shipped_and_invoiced(client, hub, erp)
    detail = client.get(f"/portal/orders/{order_id}")
    state = re.search(r'id="order-state" data-state="([a-z_]+)"', detail.text)
    assert state and state.group(1) in ("shipped", "invoiced", "closed"), detail.text
    text = orders.status(state.group(1))[1]
    banner = re.search(r'<div class="banner[^"]*" id="order-outcome".*?</div>', detail.text, re.S)
    assert banner and text in banner.group(0)
    assert "promised" not in banner.group(0) and "ships from" not in banner.group(0)  # shipped is not "ships"
    row = re.search(rf'<tr data-order="{order_id}".*?</tr>', client.get("/portal/orders").text, re.S)
    assert row and text in row.group(0)


def test_every_state_has_one_text_and_promises_only_while_shipping_lies_ahead() -> None:
    from ordersync.canonical.v1 import OrderState

    assert {s.value for s in OrderState} <= set(orders.STATUS)
    line = {"line_no": 1, "sku": "A", "allocations": [
        {"plant": "P", "quantity": "1", "promised_date": "2026-12-24", "backorder": False}]}
    assert orders.outcome({"state": "accepted", "lines": [line]})["shipping"]
    invoiced = orders.outcome({"state": "invoiced", "lines": [line]})
    assert invoiced["title"] == "Shipped and invoiced" and not invoiced["shipping"]


# -- invoices ---------------------------------------------------------------------------------------------

def test_invoices_show_amount_open_balance_due_date_and_total(client: TestClient, hub: Any, erp: MemoryErp) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    _shipped_and_invoiced(client, hub, erp)
    page = client.get("/portal/invoices")
    row = re.search(r'<tr id="invoice-[^"]+" data-invoice="[^"]+" data-state="posted".*?</tr>', page.text, re.S)
    assert row, page.text
    amount = re.search(r'class="num amount">([^<]+)<', row.group(0))
    open_ = re.search(r'class="num open">([^<]+)<', row.group(0))
    assert amount and open_ and amount.group(1).startswith("\u20ac") and open_.group(1) == amount.group(1)
    due = re.search(r'class="due">([^<]+)<', row.group(0))
    assert due and re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}, \d{4}", due.group(1)), due  # "Jan 4, 2027" in English
    assert 'data-overdue' not in row.group(0)
    balance = re.search(r'id="open-balance"><span>([^<]+)<', page.text)
    assert balance and balance.group(1) == amount.group(1)
    assert 'id="overdue-balance"' not in page.text


def test_a_part_payment_lowers_the_open_balance_and_a_full_one_clears_it(client: TestClient, hub: Any,
                                                                         erp: MemoryErp) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    _shipped_and_invoiced(client, hub, erp)
    page = client.get("/portal/invoices")
    number = re.search(r'<td data-label="Number">([^<]+)<', page.text)
    amount = re.search(r'class="num amount">\u20ac([\d,.]+)<', page.text)
    assert number and amount, page.text
    total = Decimal(amount.group(1).replace(",", ""))
    erp.pay_invoice(number.group(1), Decimal("10.00"))
    hub.poller.poll_all()
    settle(hub)
    page = client.get("/portal/invoices")
    left = formatting.money(total - Decimal("10.00"), "EUR")
    assert f'class="num open">{left}<' in page.text and 'data-state="posted"' in page.text, page.text
    assert re.search(rf'id="open-balance"><span>{re.escape(left)}<', page.text)
    erp.pay_invoice(number.group(1), total - Decimal("10.00"))
    hub.poller.poll_all()
    settle(hub)
    page = client.get("/portal/invoices")
    assert 'data-state="paid"' in page.text and 'class="num open">\u20ac0.00<' in page.text
    assert "Nothing open" in page.text


def test_an_invoice_past_its_due_date_is_overdue(tmp_path: Path, erp: MemoryErp) -> None:
    later = FakeClock(dt.datetime.now(dt.UTC) + dt.timedelta(days=120))
    h = erp_hub(tmp_path, {"main": erp}, clock=later)
    try:
        c = TestClient(create_app(h), follow_redirects=True)
        sign_in(c, buyer(h, *SCOPES, account="C-1001"))
        _shipped_and_invoiced(c, h, erp)
        page = c.get("/portal/invoices")
        assert 'data-overdue="1"' in page.text and 'class="tag overdue-tag">overdue<' in page.text, page.text
        assert re.search(r'id="overdue-balance"><span>\u20ac[\d,.]+<', page.text)
    finally:
        h.close()


def test_a_dispute_is_post_redirect_get_and_shows_the_cases_state(client: TestClient, hub: Any,
                                                                   erp: MemoryErp) -> None:
    sign_in(client, buyer(hub, account="C-1001", roles=("approver",)))
    _shipped_and_invoiced(client, hub, erp)
    page = client.get("/portal/invoices")
    invoice_id = _invoice_id(page.text)
    form = {"csrf": csrf(page.text), "reason": "10 billed, 8 received"}
    r = client.post(f"/portal/invoices/{invoice_id}/dispute", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/invoices?disputed=")
    after = client.get(r.headers["location"])
    assert 'id="dispute-done"' in after.text and "finance team has your case" in after.text
    row = re.search(rf'<tr id="invoice-{invoice_id}".*?</tr>', after.text, re.S)
    assert row and "disputed" in row.group(0) and 'data-case-state="open"' in row.group(0)
    assert 'class="dispute-form"' not in row.group(0)  # disputed: the open case has it
    again = client.post(f"/portal/invoices/{invoice_id}/dispute", data={**form, "reason": "and 2 damaged"})
    assert again.status_code == 200 and "added what you wrote to the open case" in again.text
    reload = client.get(f"/portal/invoices/{invoice_id}/dispute", follow_redirects=False)  # the form's address
    assert reload.status_code == 303 and reload.headers["location"] == "/portal/invoices"
    with hub.db.read() as conn:
        from sqlalchemy import func, select

        from ordersync.store.schema import invoice_disputes
        assert conn.execute(select(func.count()).select_from(invoice_disputes)).scalar_one() == 1


def test_a_buyer_without_invoice_rights_sees_no_dispute_button(client: TestClient, hub: Any, erp: MemoryErp) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))  # role buyer: no invoices:write
    _shipped_and_invoiced(client, hub, erp)
    page = client.get("/portal/invoices")
    assert 'class="dispute-form"' not in page.text and "ask a colleague who approves invoices" in page.text
    r = client.post(f"/portal/invoices/{_invoice_id(page.text)}/dispute",
                    data={"csrf": csrf(page.text), "reason": "x"})
    assert r.status_code == 403


# -- PDFs -------------------------------------------------------------------------------------------------

def test_order_confirmation_pdf(client: TestClient, hub: Any, erp: MemoryErp) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    add(client, "BRG-6204-2RS", 10)
    order_id = checkout(client, buyer_po_number="PO-PDF-1")
    early = client.get(f"/portal/orders/{order_id}/confirmation.pdf")
    assert early.status_code == 409 and "Not confirmed yet" in early.text  # the ERP has not accepted it yet
    settle(hub)
    page = client.get(f"/portal/orders/{order_id}")
    assert f'href="/portal/orders/{order_id}/confirmation.pdf"' in page.text
    total = re.search(r'id="order-total">([^<]+)<', page.text)
    assert total and total.group(1).startswith("\u20ac")
    r = client.get(f"/portal/orders/{order_id}/confirmation.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")
    text = _pdf_text(r.content)
    assert "Order confirmation" in text and "PO-PDF-1" in text and "BRG-6204-2RS" in text
    assert "SELLER" in text and "BUYER" in text and "C-1001" in text  # (headings in capitals)
    assert "Rheinland Industrial Supply GmbH" in text and "40549" in text  # the buyer as the ERP knows it
    assert total.group(1) in text  # the same money as the page


def test_invoice_pdf_and_another_accounts_invoice_is_not_found(client: TestClient, hub: Any, erp: MemoryErp) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    _shipped_and_invoiced(client, hub, erp)
    page = client.get("/portal/invoices")
    invoice_id = _invoice_id(page.text)
    number = re.search(rf'<tr id="invoice-{invoice_id}"[^>]*>\s*<td data-label="Number">([^<]+)<', page.text)
    amount = re.search(r'class="num amount">([^<]+)<', page.text)
    assert number and amount
    r = client.get(f"/portal/invoices/{invoice_id}.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    text = _pdf_text(r.content)
    assert f"Invoice {number.group(1)}" in text and "BRG-6204-2RS" in text and "PO-AFTER-1" in text
    assert amount.group(1) in text and "Due" in text and "C-1001" in text
    german = client.get(f"/portal/invoices/{invoice_id}.pdf", headers={"Accept-Language": "de-DE,de;q=0.9"})
    total = Decimal(amount.group(1).lstrip("\u20ac").replace(",", ""))
    assert formatting.money(total, "EUR", "de") in _pdf_text(german.content)  # "66,30 €": the buyer's language
    other = TestClient(create_app(hub), follow_redirects=True)
    sign_in(other, buyer(hub, *SCOPES, account="C-1002"))
    assert other.get(f"/portal/invoices/{invoice_id}.pdf").status_code == 404


# -- returns ----------------------------------------------------------------------------------------------

def test_returns_need_a_shipment_and_are_listed_with_an_rma_number(client: TestClient, hub: Any,
                                                                   erp: MemoryErp) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    add(client, "BRG-6204-2RS", 10)
    order_id = checkout(client)
    settle(hub)
    page = client.get(f"/portal/orders/{order_id}")
    assert 'id="return-link"' not in page.text  # nothing shipped: nothing to return
    assert client.get(f"/portal/orders/{order_id}/return").status_code == 409
    erp.ship(order_reference(order_id, "PLANT-N"), None)
    hub.poller.poll_all()
    settle(hub)
    assert 'id="return-link"' in client.get(f"/portal/orders/{order_id}").text
    form = client.get(f"/portal/orders/{order_id}/return")
    made = client.post(f"/portal/orders/{order_id}/return",
                       data={"csrf": csrf(form.text), "qty:1": "2", "reason": "damaged in transit"})
    assert made.status_code == 200 and "/portal/returns/" in str(made.url)
    return_id = str(made.url).rsplit("/", 1)[1]
    rma = re.search(r'id="rma">(RMA-\d{4}-[0-9A-F]{8})<', made.text)
    assert rma and rma.group(1) == returns.rma_number(return_id, dt.datetime.now(dt.UTC))
    listing = client.get("/portal/returns")
    row = re.search(rf'<tr data-return="{return_id}" data-state="requested">.*?</tr>', listing.text, re.S)
    assert row and rma.group(1) in row.group(0) and "Line 1: 2 (damaged in transit)" in row.group(0)
    number = re.search(r"<h1>Order ([^<]+)</h1>", client.get(f"/portal/orders/{order_id}").text)
    assert number and f'href="/portal/orders/{order_id}">{number.group(1)}</a>' in row.group(0)  # by its number
    assert 'id="nav-returns"' in listing.text
    other = TestClient(create_app(hub), follow_redirects=True)
    sign_in(other, buyer(hub, *SCOPES, account="C-1002"))
    assert return_id not in other.get("/portal/returns").text


def test_rma_numbers_are_stable() -> None:
    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert returns.rma_number("3f2a9c1b0d", at) == "RMA-2026-3F2A9C1B" == returns.rma_number("3f2a9c1b0d", at)


# -- every path answers a page ----------------------------------------------------------------------------

def test_unknown_portal_paths_are_html_pages_with_a_way_back(client: TestClient, hub: Any) -> None:
    r = client.get("/portal/no/such/page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert 'id="way-back"' in r.text and 'href="/portal/signin"' in r.text
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    r = client.get("/portal/invoicez")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert 'href="/portal/orders"' in r.text and "problem" not in r.headers["content-type"]
    for odd in ("/portal/orders/nope?placed=zz", "/portal/invoices?again=x&disputed=1"):
        r = client.get(odd)
        assert r.headers["content-type"].startswith("text/html") and r.status_code in (200, 404), (odd, r.text)


@pytest.mark.parametrize(("method", "path", "target"), [
    ("GET", "/portal/orders/abc/reorder", "/portal/orders/abc"),
    ("GET", "/portal/cart/add", "/portal/cart"),
    ("GET", "/portal/cart/checkout", "/portal/cart"),
    ("GET", "/portal/signout", "/portal/"),
    ("POST", "/portal/orders", "/portal/orders"),
    ("POST", "/portal/invoices", "/portal/invoices"),
])
def test_another_method_goes_to_the_page_the_address_belongs_to(client: TestClient, method: str, path: str,
                                                                target: str) -> None:
    r = client.request(method, path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == target
