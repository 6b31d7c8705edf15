"""A buyer in the portal after the order, in Chromium: the ERP ships the order and the order page shows
the carrier, the tracking number and a link to the carrier's tracking page; the confirmation prints as
PDF; a return gets its RMA number and shows on the returns page; an invoice shows its open balance and is
disputed, and a reload of the form's address lands on the invoices page; an unknown address is a page
with the way back. Every page fits a 390 px wide phone without scrolling sideways."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from ordersync.canonical.v1 import Invoice, InvoiceLine, InvoiceState, Shipment, ShipmentLine, ShipmentState
from ordersync.domain.clock import SystemClock
from ordersync.domain.events import ErpInvoicePosted, ErpShipmentChanged
from ordersync.ports.erp import order_reference
from ordersync.store.uow import SqlStore
from tests.browser.conftest import SCREENSHOTS, Server
from tests.browser.pages import portal_sign_in, reload_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser: Any, server: Server, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh 390 px wide context on the hub; its last page is saved as a screenshot."""
    context = browser.new_context(base_url=server.url, viewport=PHONE)
    context.set_default_timeout(15_000)
    p = context.new_page()
    yield p
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        p.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-last.png"), full_page=True)
    finally:
        context.close()


def fits(page: Any) -> None:
    """The page scrolls only up and down at 390 px."""
    page.wait_for_load_state()  # after a click that navigates: measure the new page, once it is there
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url} is {width} px wide at 390 px"


def place(server: Server, po: str) -> str:
    """An order of 10 bearings for C-1001 through the API (the dealer app's way in): its id."""
    key = server.key("orders:write", account="C-1001", client="dealer_app")
    body = {"external_order_number": po, "buyer_po_number": po, "account_id": "C-1001", "ship_to_id": "RIS-DUS",
            "lines": [{"line_no": 1, "sku": "BRG-6204-2RS", "quantity": "10"}]}
    r = httpx.post(f"{server.url}/v1/orders", json=body, timeout=10.0,
                   headers={"Authorization": f"Bearer {key}", "Idempotency-Key": po})
    assert r.status_code == 202, r.text
    order_id: str = r.json()["order_id"]
    return order_id


def report(server: Server, order_id: str, event: Any) -> None:
    """An ERP change of the order as the served hub's change poller would emit it (the ERP twin lives in
    the served process, out of this test's reach); the served worker handles it like any other."""
    with SqlStore(server.db, SystemClock()).transaction() as uow:
        uow.emit(event, correlation_id=order_id)


def ship(server: Server, order_id: str, carrier: str, tracking: str, quantity: int) -> None:
    """The ERP ships line 1 of the order from PLANT-N with ``carrier``."""
    shipment = Shipment(id=f"shp-{order_id[:8]}", order_id=order_id, plant="PLANT-N", erp_ref="SHP-PHONE-1",
                        state=ShipmentState.SHIPPED, carrier=carrier, tracking_number=tracking,
                        lines=(ShipmentLine(line_no=1, sku="BRG-6204-2RS", quantity=Decimal(quantity)),),
                        shipped_at=dt.datetime.now(dt.UTC))
    report(server, order_id, ErpShipmentChanged(erp="main", reference=order_reference(order_id, "PLANT-N"),
                                                order_id=order_id, shipment=shipment))


def post_invoice(server: Server, order_id: str, number: str, total: str) -> None:
    """The ERP posts the order's invoice."""
    invoice = Invoice(id=f"inv-{number}", order_id=order_id, account_id="C-1001", number=number,
                      state=InvoiceState.POSTED, currency="EUR", untaxed_amount=Decimal(total),
                      tax_amount=Decimal("0"), total_amount=Decimal(total),
                      due_date=dt.date.today() + dt.timedelta(days=30), posted_at=dt.datetime.now(dt.UTC),
                      lines=(InvoiceLine(line_no=1, sku="BRG-6204-2RS", quantity=Decimal(10),
                                         unit_price=Decimal(total) / 10, amount=Decimal(total)),))
    report(server, order_id, ErpInvoicePosted(erp="main", reference=order_reference(order_id, "PLANT-N"),
                                              order_id=order_id, invoice=invoice))


def test_after_the_order_on_a_phone(phone: Any, server: Server, request: pytest.FixtureRequest) -> None:
    page = phone

    def shot(step: str) -> None:
        page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-{step}.png"), full_page=True)

    portal_sign_in(page, server.buyer(account="C-1001", roles=("approver",)))
    order_id = place(server, "PO-PHONE-1")  # the cart is the catalog's tests' (tests/browser/test_portal.py)
    page.goto(f"/portal/orders/{order_id}")
    reload_until(page, lambda: page.locator("#order-state").get_attribute("data-state") == "accepted")
    expect(page.locator("#return-link")).to_have_count(0)  # nothing shipped yet
    fits(page)

    ship(server, order_id, "UPS", "1Z999AA10123456784", 10)
    shipped = '#shipments .shipment[data-state="shipped"]'
    reload_until(page, lambda: page.locator(shipped).count() > 0)
    shipment = page.locator(shipped)
    expect(shipment.locator(".carrier")).to_have_text("UPS")
    expect(shipment.locator(".tracking-number")).to_have_text("1Z999AA10123456784")
    expect(shipment.locator("a.tracking-link")).to_have_attribute(
        "href", "https://www.ups.com/track?loc=en_US&tracknum=1Z999AA10123456784")
    expect(page.locator("#order-title")).not_to_contain_text("promised")
    fits(page)
    shot("shipped")

    pdf = page.request.get(f"/portal/orders/{order_id}/confirmation.pdf")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.body()[:4] == b"%PDF"

    page.click("#return-link")
    fits(page)
    page.fill('input[name="qty:1"]', "2")
    page.fill("#reason", "two arrived dented")
    page.click("#request-return")
    expect(page.locator("#rma")).to_have_text(re.compile(r"RMA-\d{4}-[0-9A-F]{8}"))
    rma = page.locator("#rma").inner_text()
    fits(page)
    page.click("#nav-returns")
    expect(page.locator("#returns")).to_contain_text(rma)
    expect(page.locator("#returns")).to_contain_text("two arrived dented")
    fits(page)
    shot("returns")

    post_invoice(server, order_id, "INV-PHONE-1", "66.30")
    page.click("#nav-invoices")
    row = page.locator('#invoices tr[data-invoice="inv-INV-PHONE-1"]')
    reload_until(page, lambda: row.count() > 0)  # the served worker takes the ERP's invoice
    expect(row.locator(".open")).to_have_text("\u20ac66.30")
    expect(page.locator("#open-balance")).to_contain_text("\u20ac66.30")
    fits(page)
    row.locator("summary").click()
    row.locator("textarea").fill("billed 10, 8 arrived")
    row.locator(".dispute-submit").click()
    expect(page).to_have_url(re.compile(r"/portal/invoices\?disputed=INV-PHONE-1"))
    expect(page.locator("#dispute-done")).to_be_visible()
    expect(row.locator(".dispute-state")).to_have_attribute("data-case-state", "open")
    fits(page)
    shot("disputed")

    page.goto("/portal/invoices/inv-INV-PHONE-1/dispute")  # the form's address, opened again
    expect(page).to_have_url(re.compile(r"/portal/invoices$"))
    page.goto("/portal/no-such-page")
    expect(page.locator("#error-title")).to_have_text("Page not found")
    page.locator("#way-back a", has_text="Orders").click()
    expect(page).to_have_url(re.compile(r"/portal/orders$"))
    expect(page.locator(f'#orders tr[data-order="{order_id}"]')).to_contain_text("Shipped and invoiced")
    fits(page)
