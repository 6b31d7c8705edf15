"""Each persona's day in Chromium, against the real parts: ``ordersync serve`` in front of a real Tryton
(the warehouse and accounting act in Tryton through its own API), staff signing in through a real
certified OpenID provider (``oidc-provider``, tests/support/oidc.py), buyers with the passwords they chose
from their invitations. Every step is checked by axe at 1440 and 390 px and kept as a screenshot
(``test-artifacts/screenshots/persona-*``).

- A buyer admin invites a colleague, who orders (quick order by part number), follows the shipment with
  its tracking link, downloads the invoice as a PDF and returns goods (an RMA).
- A finance clerk decides a credit hold and a dispute with the context on the page.
- An operations manager triages the queue: counts, a saved filter, a case assigned to a person.
Every decision is recorded under the person who made it.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect

from ordersync.canonical.erp import REFERENCE_PREFIX
from ordersync.devkit import demo_data
from ordersync.devkit.tryton.home import TrytonHome
from ordersync.devkit.tryton.server import TrytonServer
from ordersync.devkit.tryton.simulate import TrytonSimulator
from ordersync.devkit.tryton.template import create_database
from ordersync.web.people import People
from tests.browser.accessibility import axe_check
from tests.browser.conftest import SCREENSHOTS, Server, free_port, serve_hub
from tests.browser.pages import add_to_cart, place_cart, portal_sign_in
from tests.support.oidc import LOGIN_FIELD, PASSWORD_FIELD, SUBMIT_BUTTON, Provider, oidc_provider
from tests.support.tryton import sales_by_reference

pytestmark = [pytest.mark.browser, pytest.mark.tryton, pytest.mark.slow, pytest.mark.timeout(900)]

DESK = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
SECRET = "persona-client-secret-0123456789"
STAFF_IDENTITIES: dict[str, dict[str, Any]] = {
    "olga": {"sub": "u-olga", "email": "olga@kestrel.example", "email_verified": True, "name": "Olga Operations",
             "roles": ["grp-operations"]},
    "fiona": {"sub": "u-fiona", "email": "fiona@kestrel.example", "email_verified": True, "name": "Fiona Finance",
              "roles": ["grp-finance"]},
}


@dataclass
class World:
    server: Server
    erp: TrytonSimulator
    tryton: TrytonServer
    provider: Provider

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def world(tryton_ready: TrytonHome, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    erp_dir = tmp_path_factory.mktemp("erp")
    create_database("main", erp_dir, "main", home=tryton_ready)
    tryton = TrytonServer(erp_dir, ["main"], home=tryton_ready, die_with_parent=True, verbose=False)
    tryton.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client = {"client_id": "ordersync", "client_secret": SECRET, "token_endpoint_auth_method": "client_secret_basic",
              "redirect_uris": [f"{base}/ops/oidc/callback", f"{base}/portal/oidc/callback"]}
    user = demo_data.INTEGRATION_USER
    try:
        with contextlib.ExitStack() as stack:
            provider = stack.enter_context(oidc_provider(clients=[client], accounts=STAFF_IDENTITIES))
            config = (
                f'[[erp]]\nname = "main"\nkind = "tryton"\nurl = "{tryton.url}"\ndatabase = "main"\n'
                f'login = "{user["login"]}"\npassword = "{user["password"]}"\npoll_seconds = 0.3\n'
                f'idle_poll_seconds = 0.3\n\n[web]\nseller = ["Kestrel Components GmbH", "Billbrookdeich 210", '
                f'"22113 Hamburg"]\n\n[web.oidc]\nissuer = "{provider.issuer}"\nclient_id = "ordersync"\n'
                f'client_secret = "{SECRET}"\ndisplay_name = "Kestrel login"\n'
                'role_map = { "grp-operations" = "operations", "grp-finance" = "finance" }\n')
            server = stack.enter_context(serve_hub(tmp_path_factory.mktemp("hub"), config, port=port))
            erp = TrytonSimulator.connect(tryton.url, "main")
            stack.callback(erp.close)
            yield World(server, erp, tryton, provider)
    finally:
        tryton.stop()


@contextlib.contextmanager
def person(browser: Any, world: World) -> Iterator[Any]:
    """A browser of one's own (cookies, the identity provider's session), at a desk."""
    context = browser.new_context(base_url=world.url, viewport=DESK, accept_downloads=True)
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def seen(page: Any, step: str) -> None:
    """The page at 1440 and at 390 px: a screenshot of each, axe at each, no sideways scrolling on the phone."""
    for size in (DESK, PHONE):
        page.set_viewport_size(size)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"persona-{step}-{size['width']}px.png"), full_page=True)
        axe_check(page, f"{step}-{size['width']}px")
        if size is PHONE:
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{step}: {page.url} is {width} px wide at 390 px"
    page.set_viewport_size(DESK)


def until(page: Any, done: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    """Reload until ``done()`` (the ERP's changes reach the hub by its poller)."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what} ({page.url})")
        time.sleep(0.5)
        page.reload()


def references(world: World, order_id: str) -> list[str]:
    return sorted(sales_by_reference(world.tryton, f"{REFERENCE_PREFIX}-{order_id}"))


def staff_sign_in_with_provider(page: Any, login: str, target: str) -> None:
    """Through the dashboard's "Sign in with Kestrel login": the provider's own form, then back."""
    page.goto(target)
    expect(page).to_have_url(re.compile(r"/ops/signin"))
    page.click("#signin-oidc")
    page.fill(LOGIN_FIELD, login)
    page.fill(PASSWORD_FIELD, "any password: the provider's test accounts take any")
    page.click(SUBMIT_BUTTON)
    expect(page).to_have_url(re.compile(re.escape(target.split("?")[0])))


# -- the buyer admin and her colleague ---------------------------------------------------------------------

def test_a_buyer_admin_invites_a_colleague_who_orders_tracks_downloads_an_invoice_and_returns_goods(
        browser: Any, world: World) -> None:
    rita = world.server.buyer(account="C-1001", roles=("admin",), name="Rita Ries")
    with person(browser, world) as page:
        portal_sign_in(page, rita)
        page.click("#nav-people")
        page.fill("#invite-email", "sam@rheinland.example")
        page.fill("#invite-name", "Sam Sommer")
        page.check('input[name="roles"][value="buyer"]')
        page.click("#invite-submit")
        link = page.locator("#invite-link").inner_text()
        seen(page, "buyer-admin-invites")
    assert link.startswith(f"{world.url}/portal/invite/")

    with person(browser, world) as page:
        page.goto(link)
        expect(page.locator("h1")).to_contain_text("Welcome")
        seen(page, "colleague-invitation")
        page.fill("#invite-password", "bearings-by-the-box")
        page.fill("#invite-repeat", "bearings-by-the-box")
        page.click("#invite-submit")
        expect(page).to_have_url(re.compile(r"/portal/catalog"))
        expect(page.locator("#buyer-name")).to_have_text("Sam Sommer")

        # quick order by part number, then the cart's own order button
        page.goto("/portal/quick-order")
        page.fill("#quick-lines", "BRG-6204-2RS, 20\nFIT-ELB-G12-SS; 100")
        page.click("#quick-preview-button")
        expect(page.locator("#quick-summary")).to_contain_text("2 lines can be added")
        seen(page, "colleague-quick-order")
        page.click("#quick-add")
        expect(page.locator("#cart-count")).to_have_text("2")
        order_id = place_cart(page, po="PO-SAM-1")
        expect(page.locator("#order-state")).to_have_attribute("data-state", "accepted", timeout=60_000)
        seen(page, "colleague-order-accepted")

        # the warehouse ships it in Tryton (with a carrier and its tracking number), accounting posts the invoice
        refs = references(world, order_id)
        assert refs, "no Tryton sale carries the order's reference"
        for ref in refs:
            world.erp.ship(ref)
        tracking = page.locator("#shipments a.tracking-link")
        until(page, lambda: tracking.count() >= len(refs), "a shipment with a tracking link")
        number = page.locator("#shipments .tracking-number").first.inner_text()
        assert number and number in (tracking.first.get_attribute("href") or "")
        seen(page, "colleague-tracking")
        for ref in refs:
            world.erp.post_invoices(ref)
        page.click("#nav-invoices")
        row = page.locator(f'#invoices tr:has(a[href="/portal/orders/{order_id}"])')
        until(page, lambda: row.count() >= 1, "the order's invoice on the invoices page")
        seen(page, "colleague-invoices")
        pdf = page.request.get(f"{world.url}{row.first.locator('a.invoice-pdf').get_attribute('href')}")
        assert pdf.ok and pdf.headers["content-type"].startswith("application/pdf")
        from pypdf import PdfReader

        text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.body())).pages)
        assert "Kestrel Components GmbH" in text and "BRG-6204-2RS" in text and "PO-SAM-1" in text

        # a return of two bearings: the RMA on its page and in the list
        page.goto(f"/portal/orders/{order_id}")
        page.click("#return-link")
        page.locator('input[name="qty:1"]').fill("2")
        page.fill("#reason", "two bearings arrived with dented shields")
        seen(page, "colleague-return-form")
        page.click("#request-return")
        rma = page.locator("#rma")
        expect(rma).to_have_text(re.compile(r"^RMA-\d{4}-[0-9A-F]{8}$"))
        number_rma = rma.inner_text()
        page.goto("/portal/returns")
        expect(page.locator("#returns")).to_contain_text(number_rma)
        seen(page, "colleague-returns")

    sam = People(world.server.db, _clock()).find("sam@rheinland.example")
    assert sam is not None and sam.invited_by is not None and sam.invited_by.startswith("Rita Ries <")
    assert sam.has_password and sam.roles == ("buyer",)


# -- the finance clerk --------------------------------------------------------------------------------------

def buyer_orders(browser: Any, world: World, account: str, lines: list[tuple[str, int]], po: str, outcome: str,
                 roles: tuple[str, ...] = ("buyer",)) -> tuple[str, str]:
    """A buyer of ``account`` orders ``lines`` in the portal; (their e-mail, the order's id) once the hub
    has decided (``outcome``: the order page's outcome kind)."""
    email = world.server.buyer(account=account, roles=roles)
    with person(browser, world) as page:
        portal_sign_in(page, email)
        for sku, quantity in lines:
            add_to_cart(page, sku, quantity)
        order_id = place_cart(page, po=po)
        expect(page.locator("#order-outcome")).to_have_attribute("data-kind", outcome, timeout=60_000)
    return email, order_id


def shipped_and_invoiced(world: World, order_id: str) -> None:
    for ref in references(world, order_id):
        world.erp.ship(ref)
        world.erp.post_invoices(ref)


def test_a_finance_clerk_decides_a_credit_hold_and_a_dispute_with_the_context_on_the_page(
        browser: Any, world: World) -> None:
    _, held = buyer_orders(browser, world, "C-1004", [("MOT-IE3-4.0-4P", 8)], "PO-OSTSEE-MOTORS", "held")
    claimant, invoiced = buyer_orders(browser, world, "C-1002", [("SEN-PX-M12-NPN", 10)], "PO-ALPEN-SENSORS",
                                      "accepted", roles=("approver",))
    shipped_and_invoiced(world, invoiced)
    with person(browser, world) as page:  # the buyer disputes the invoice in the portal
        portal_sign_in(page, claimant)
        page.goto("/portal/invoices")
        row = page.locator(f'#invoices tr:has(a[href="/portal/orders/{invoiced}"])')
        until(page, lambda: row.count() == 1, "the invoice in the portal")
        row.locator("details.dispute summary").click()
        row.locator("textarea").fill("Two sensors were billed at the list price, not our contract price")
        row.locator("button.dispute-submit").click()
        expect(page.locator("#dispute-done")).to_be_visible()

    with person(browser, world) as page:
        staff_sign_in_with_provider(page, "fiona", "/ops/cases?view=finance")
        expect(page.locator("#operator")).to_have_text("Fiona Finance")
        credit = page.locator(f'#case-list tr[data-type="credit_hold"]:has(a[href="/ops/orders/{held}"])')
        expect(credit).to_contain_text("PO-OSTSEE-MOTORS")
        seen(page, "finance-queue")

        credit.locator("a.case-link").click()
        panel = page.locator("#credit-panel")
        expect(panel.locator("#credit-limit")).to_contain_text(re.compile(r"\d"))
        expect(panel.locator("#credit-exposure")).to_contain_text(re.compile(r"\d"))
        expect(panel.locator("#credit-lines")).to_contain_text("MOT-IE3-4.0-4P")
        expect(panel.locator("#credit-needed")).to_contain_text("releases this order")
        seen(page, "finance-credit-hold")
        page.fill("#action-comment", "prepayment received by wire")
        page.click("#action-release_hold")
        expect(page.locator("#case-summary")).to_have_attribute("data-state", "resolved")
        expect(page.locator("#case-history li[data-action='release']")).to_contain_text("Fiona Finance")

        page.goto("/ops/cases?view=finance&type=invoice_dispute")
        dispute = page.locator('#case-list tr[data-type="invoice_dispute"]:has-text("PO-ALPEN-SENSORS")')
        until(page, lambda: dispute.count() == 1, "the dispute case in the finance queue")
        dispute.locator("a.case-link").click()
        expect(page.locator("#dispute-buyer-text")).to_contain_text("contract price")
        expect(page.locator("#dispute-lines")).to_contain_text("SEN-PX-M12-NPN")
        seen(page, "finance-dispute")
        page.fill("#action-answer", "The invoice uses your contract price of this month; see the price list")
        page.click("#action-reject")
        expect(page.locator("#case-confirm")).to_contain_text("cannot be undone")  # a destructive action asks
        seen(page, "finance-dispute-confirm")
        page.click("#confirm-yes")
        expect(page.locator("#case-summary")).to_have_attribute("data-state", "resolved")
        expect(page.locator("#case-history")).to_contain_text("Fiona Finance")

    with person(browser, world) as page:  # the buyer reads the answer beside the invoice
        portal_sign_in(page, claimant)
        page.goto("/portal/invoices")
        answer = page.locator(f'#invoices tr:has(a[href="/portal/orders/{invoiced}"]) .dispute-answer')
        expect(answer).to_have_attribute("data-decision", "rejected")
        expect(answer).to_contain_text("contract price of this month")
        seen(page, "buyer-reads-the-answer")


# -- the operations manager -------------------------------------------------------------------------------

def test_an_operations_manager_triages_the_queue_and_hands_a_case_to_a_person(browser: Any, world: World) -> None:
    _, held = buyer_orders(browser, world, "C-1004", [("MOT-IE3-4.0-4P", 6)], "PO-OSTSEE-TRIAGE", "held")
    world.server.staff("finance", name="Frank Finance")
    with person(browser, world) as page:
        staff_sign_in_with_provider(page, "olga", "/ops/cases")
        expect(page.locator("#operator")).to_have_text("Olga Operations")
        expect(page.locator("#count-finance")).to_have_text(re.compile(r"[1-9]\d*"))
        row = page.locator(f'#case-list tr:has(a[href="/ops/orders/{held}"])')
        expect(row).to_contain_text("PO-OSTSEE-TRIAGE")
        seen(page, "operations-queue")

        page.select_option("#filter-type", "credit_hold")
        page.click("#filter-apply")
        expect(page).to_have_url(re.compile(r"type=credit_hold"))
        expect(page.locator("#save-filter input[name='query']")).to_have_value(re.compile(r"type=credit_hold"))
        page.fill("#save-filter-name", "Credit holds")
        page.click("#save-filter-submit")
        expect(page.locator("#saved-filters a.saved-filter")).to_contain_text(["Credit holds"])

        row.locator("a.case-link").click()
        people = page.locator("#action-owner-team optgroup[label='People'] option")
        expect(people).to_contain_text(["Frank Finance"])
        page.select_option("#action-owner-team", label="Frank Finance (finance)")
        page.fill("#assign-comment", "Frank, the customer's treasurer calls you back today")
        seen(page, "operations-assign")
        page.click("#action-assign")
        expect(page.locator("#flash")).to_have_attribute("data-done", "assign")
        owner = page.locator("#case-owner").inner_text()
        assert owner.startswith("staff-") or "@" in owner
        expect(page.locator("#case-history li[data-action='assign']")).to_contain_text("Olga Operations")

        page.goto("/ops/people")
        expect(page.locator("#staff")).to_contain_text("olga@kestrel.example")  # created at her first sign-in
        expect(page.locator('#staff tr[data-email="olga@kestrel.example"]')).to_contain_text("identity provider")
        seen(page, "operations-people")


def _clock() -> Any:
    from ordersync.domain.clock import SystemClock

    return SystemClock()


