"""The buyer portal (``/portal``) over the ERP twin: sign-in as a person of an account, catalog with contract
prices and plant stock, cart to order with its partial/backorder outcome, history, invoices, reorder and
returns; sessions, CSRF and account isolation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.channels.portal import orders as portal
from ordersync.channels.portal.formatting import money
from ordersync.ports.erp import order_reference
from ordersync.server import create_app
from ordersync.web.people import People
from tests.support.hub import api_key, erp_hub, settle
from tests.support.people import PASSWORD, buyer, staff

SCOPES = ("catalog:read", "orders:read", "orders:write", "returns:write")


@pytest.fixture
def erp() -> MemoryErp:
    return MemoryErp.from_profile("main", name="main")


@pytest.fixture
def hub(tmp_path: Path, erp: MemoryErp) -> Any:
    h = erp_hub(tmp_path, {"main": erp})
    yield h
    h.close()


@pytest.fixture
def client(hub: Any) -> TestClient:
    return TestClient(create_app(hub), raise_server_exceptions=True, follow_redirects=True)


def sign_in(client: TestClient, email: str) -> None:
    r = client.post("/portal/signin", data={"email": email, "password": PASSWORD, "next": "/portal/catalog"})
    assert r.status_code == 200 and r.url.path == "/portal/catalog", r.text


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def add(client: TestClient, sku: str, qty: int) -> str:
    page = client.get("/portal/catalog")
    r = client.post("/portal/cart/add", data={"csrf": csrf(page.text), "sku": sku, "quantity": str(qty)})
    assert r.status_code == 200 and f"Added {sku}" in r.text, r.text
    return r.text


def checkout(client: TestClient, **fields: str) -> str:
    cart = client.get("/portal/cart")
    shown = dict(re.findall(r'name="(shown:[^"]+)" value="([^"]+)"', cart.text))
    r = client.post("/portal/cart/checkout", data={"csrf": csrf(cart.text), **shown, **fields})
    assert r.status_code == 200 and "/portal/orders/" in str(r.url), r.text
    return str(r.url).split("/portal/orders/")[1].split("?")[0]


def test_sign_in_sets_an_httponly_strict_cookie_without_the_password(client: TestClient, hub: Any) -> None:
    email = buyer(hub, *SCOPES, account="C-1001", name="Rita Buyer")
    r = client.post("/portal/signin", data={"email": email, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/portal/catalog"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("ordersync_portal="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/portal" in cookie
    assert "Secure" not in cookie  # plain http, no trusted proxy
    assert PASSWORD not in cookie and email not in cookie
    page = client.get("/portal/catalog")
    assert 'id="account">C-1001<' in page.text and 'id="buyer-name">Rita Buyer<' in page.text


def test_wrong_passwords_staff_and_api_keys_cannot_sign_in(client: TestClient, hub: Any) -> None:
    email = buyer(hub, *SCOPES, account="C-1001")
    r = client.post("/portal/signin", data={"email": email, "password": "not-the-password"})
    assert r.status_code == 401 and "do not match" in r.text
    r = client.post("/portal/signin", data={"email": "nobody@example.com", "password": PASSWORD})
    assert r.status_code == 401 and "do not match" in r.text
    r = client.post("/portal/signin", data={"email": staff(hub), "password": PASSWORD})  # staff: the dashboard
    assert r.status_code == 401
    r = client.post("/portal/signin", data={"api_key": api_key(hub, *SCOPES, account="C-1001")})
    assert r.status_code == 422  # keys are for machines: the form wants an e-mail address and a password
    r = client.get("/portal/orders", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/signin?next=/portal/orders")


def test_disabling_the_person_ends_the_session(client: TestClient, hub: Any) -> None:
    email = buyer(hub, *SCOPES, account="C-1001")
    sign_in(client, email)
    people = People(hub.db, hub.clock)
    people.disable(people.find(email).id)  # type: ignore[union-attr]
    r = client.get("/portal/orders", follow_redirects=False)
    assert r.status_code == 303 and "/portal/signin" in r.headers["location"]


def test_catalog_shows_contract_prices_and_plant_stock(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    page = client.get("/portal/catalog", params={"q": "6204"})
    assert page.status_code == 200
    row = re.search(r'<tr data-sku="BRG-6204-2RS">(.*?)</tr>', page.text, re.S)
    assert row, page.text
    api = client.get("/v1/prices", params={"sku": "BRG-6204-2RS"},
                     headers={"Authorization": f"Bearer {api_key(hub, 'catalog:read', account='C-1001')}"})
    price = api.json()["prices"][0]
    assert money(price["unit_price"], price["currency"]) in row.group(1)  # the API's price, as people read it
    assert "420" in row.group(1) and "380" in row.group(1)  # ATP of PLANT-N and PLANT-S
    assert "VLV-BV-DN25-SS" not in page.text  # the search narrowed the list


def test_cart_to_order_is_accepted_with_allocations(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    add(client, "BRG-6204-2RS", 10)
    add(client, "FIT-ELB-G12-SS", 100)
    add(client, "BRG-6204-2RS", 10)  # the same item again adds to its line
    cart = client.get("/portal/cart")
    assert 'id="cart-count">2<' in cart.text and 'value="20"' in cart.text
    order_id = checkout(client, buyer_po_number="PO-PORTAL-1")
    first = client.get(f"/portal/orders/{order_id}")
    assert 'data-kind="pending"' in first.text and first.headers["refresh"] == "2"
    settle(hub)
    page = client.get(f"/portal/orders/{order_id}")
    assert 'data-state="accepted"' in page.text and 'data-kind="accepted"' in page.text, page.text
    assert "ships from PLANT-" in page.text and "PO-PORTAL-1" in page.text
    assert 'id="cart-count">0<' in page.text  # the cart was emptied
    history = client.get("/portal/orders")
    assert f'data-order="{order_id}"' in history.text and "accepted" in history.text


def test_a_resent_checkout_places_the_order_once(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    add(client, "BRG-6204-2RS", 10)
    cart = client.get("/portal/cart")
    cookies = dict(client.cookies)
    form = {"csrf": csrf(cart.text)}
    first = client.post("/portal/cart/checkout", data=form, follow_redirects=False)
    client.cookies.update(cookies)  # the browser sends the same form again before it saw the answer
    second = client.post("/portal/cart/checkout", data=form, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]


def test_backorder_outcome_is_clear(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    add(client, "BRG-NU210-ECP", 10)  # 3 in stock at PLANT-N
    cart = client.get("/portal/cart")
    assert 'id="cart-backorder"' in cart.text and "backorder</span> 7" in cart.text
    order_id = checkout(client)
    settle(hub)
    page = client.get(f"/portal/orders/{order_id}")
    assert 'data-kind="partial"' in page.text, page.text
    backordered = re.findall(r'<li class="backordered">(.*?)</li>', page.text, re.S)
    assert backordered and "7 \u00d7 BRG-NU210-ECP" in backordered[0] and "promised" in backordered[0]
    assert '<li class="ships">Line 1: 3 \u00d7 BRG-NU210-ECP ships from PLANT-N' in page.text


def test_forms_need_the_sessions_csrf_token_and_same_origin(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    r = client.post("/portal/cart/add", data={"sku": "BRG-6204-2RS", "quantity": "1", "csrf": "forged"})
    assert r.status_code == 403
    token = csrf(client.get("/portal/catalog").text)
    r = client.post("/portal/cart/add", data={"sku": "BRG-6204-2RS", "quantity": "1", "csrf": token},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert 'id="cart-count">0<' in client.get("/portal/catalog").text


def test_another_accounts_order_is_not_found(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    add(client, "BRG-6204-2RS", 10)
    order_id = checkout(client)
    other = TestClient(create_app(hub))
    sign_in(other, buyer(hub, *SCOPES, account="C-1002"))
    assert other.get(f"/portal/orders/{order_id}").status_code == 404
    assert other.get(f"/portal/orders/{order_id}/return").status_code == 404
    r = other.post(f"/portal/orders/{order_id}/reorder", data={"csrf": csrf(other.get("/portal/orders").text)})
    assert r.status_code == 404
    assert order_id not in other.get("/portal/orders").text


def test_shipment_tracking_invoice_reorder_and_return(client: TestClient, hub: Any, erp: MemoryErp) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    add(client, "BRG-6204-2RS", 10)
    order_id = checkout(client)
    settle(hub)
    reference = order_reference(order_id, "PLANT-N")
    erp.ship(reference, None)
    erp.post_invoices(reference)
    hub.poller.poll_all()
    settle(hub)
    page = client.get(f"/portal/orders/{order_id}")
    assert 'id="shipments"' in page.text and 'id="order-invoices"' in page.text, page.text
    invoices = client.get("/portal/invoices")
    assert f'href="/portal/orders/{order_id}"' in invoices.text

    r = client.post(f"/portal/orders/{order_id}/reorder", data={"csrf": csrf(page.text), "nonce": "n1"})
    assert r.status_code == 200 and "/portal/orders/" in str(r.url)
    assert str(r.url).split("/portal/orders/")[1].split("?")[0] != order_id

    form = client.get(f"/portal/orders/{order_id}/return")
    r = client.post(f"/portal/orders/{order_id}/return",
                    data={"csrf": csrf(form.text), "qty:1": "2", "reason": "damaged in transit"})
    assert r.status_code == 200 and "/portal/returns/" in str(r.url), r.text
    assert 'data-state="requested"' in r.text and "damaged in transit" in r.text
    too_many = client.post(f"/portal/orders/{order_id}/return",
                           data={"csrf": csrf(form.text), "qty:1": "50", "reason": "x"})
    assert too_many.status_code == 422 and 'id="error-reasons"' in too_many.text


def test_sign_out_ends_the_session(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    page = client.get("/portal/catalog")
    r = client.post("/portal/signout", data={"csrf": csrf(page.text)})
    assert r.url.path == "/portal/signin"
    assert client.get("/portal/orders", follow_redirects=False).status_code == 303


def test_outcome_of_a_held_order() -> None:
    view = {"state": "on_hold", "lines": [], "hold": {"reason": "over the credit limit by 1200 EUR"}}
    result = portal.outcome(view)
    assert result["kind"] == "held" and result["hold"] == "over the credit limit by 1200 EUR"
    assert portal.outcome({"state": "accepted", "lines": [{"line_no": 1, "sku": "A", "allocations": [
        {"plant": "P", "quantity": "1", "promised_date": None, "backorder": True}]}]})["kind"] == "partial"


# -- buying: formatting, ordering rules, ship-to, quick order, post/redirect/get ------------------------

def test_money_and_quantities_read_as_people_write_them() -> None:
    from ordersync.channels.portal.formatting import day, locale_of, qty

    assert money("81.6000", "EUR", "de") == "81,60\xa0€" and money("81.6000", "EUR", "en") == "€81.60"
    assert money("1234.5", "EUR", "fr") == "1\u202f234,50\xa0€"
    assert qty("0.0") == "0" and qty("10.000000") == "10" and qty("2.50", "de") == "2,5" and qty("1250") == "1,250"
    assert day("2026-12-05", "de") == "05.12.2026"
    assert locale_of("fr-CH, de;q=0.8") == "fr" and locale_of("es, de;q=0.5, en;q=0.9") == "en"
    assert locale_of("es-ES") == "en" and locale_of(None) == "en" and locale_of("de-DE,de;q=0.9") == "de"


def test_catalog_formats_per_locale_names_plants_and_states_ordering_rules(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    page = client.get("/portal/catalog", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert "Available at Plant North (Hamburg)" in page.text and "Available at Plant South (Augsburg)" in page.text
    assert ">PLANT-N<" not in page.text
    row = re.search(r'<tr data-sku="BRG-6204-2RS">(.*?)</tr>', page.text, re.S)
    assert row and re.search(r"\d+,\d\d\xa0€", row.group(1)), row
    assert not re.search(r"\d\.\d\d00\b", page.text)  # no "81.6000"
    assert not re.search(r">\s*0\.0\b", page.text)  # stock "0", never "0.0"
    ptc = re.search(r'<tr data-sku="FIT-PTC-8MM">(.*?)</tr>', page.text, re.S)
    assert ptc and "minimum 50, multiples of 10" in ptc.group(1)
    assert 'value="50"' in ptc.group(1) and 'step="10"' in ptc.group(1)  # the first quantity it can be ordered in


def test_adding_a_quantity_its_rules_do_not_allow_is_refused_with_the_reason(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    token = csrf(client.get("/portal/catalog").text)
    r = client.post("/portal/cart/add", data={"csrf": token, "sku": "FIT-PTC-8MM", "quantity": "55"},
                    follow_redirects=False)
    assert r.status_code == 303 and "refused=FIT-PTC-8MM" in r.headers["location"]
    page = client.get(r.headers["location"])
    refusal = re.search(r'id="refusal"(.*?)</div>', page.text, re.S)
    assert refusal and "FIT-PTC-8MM is sold in multiples of 10" in refusal.group(1)
    assert 'id="cart-count">0<' in page.text
    add(client, "FIT-PTC-8MM", 50)
    r = client.post("/portal/cart/add", data={"csrf": token, "sku": "FIT-PTC-8MM", "quantity": "5"})
    assert "your cart has 50 already, 55 in all: FIT-PTC-8MM is sold in multiples of 10" in r.text
    r = client.post("/portal/cart/add", data={"csrf": token, "sku": "NOT-A-SKU", "quantity": "5"})
    assert "NOT-A-SKU is not in your catalog" in r.text
    cart = client.get("/portal/cart")
    assert 'id="cart-count">1<' in cart.text and 'value="50"' in cart.text


def test_cart_keeps_a_line_to_fix_and_checkout_sends_back_to_it(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    add(client, "BRG-6204-2RS", 10)
    add(client, "FIT-PTC-8MM", 50)
    cart = client.get("/portal/cart")
    client.post("/portal/cart/update", data={"csrf": csrf(cart.text), "qty:BRG-6204-2RS": "10",
                                             "qty:FIT-PTC-8MM": "45"})
    cart = client.get("/portal/cart")
    line = re.search(r'<tr data-sku="FIT-PTC-8MM" class="needs-fix">(.*?)</tr>', cart.text, re.S)
    assert line and "minimum order quantity is 50" in line.group(1) and "multiples of 10" in line.group(1)
    assert "Change to 50" in line.group(1) and 'id="place-order" disabled' in cart.text
    r = client.post("/portal/cart/checkout", data={"csrf": csrf(cart.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/cart?blocked=lines")
    page = client.get(r.headers["location"])
    assert 'id="cart-blocked"' in page.text and 'id="cart-count">2<' in page.text  # nothing lost
    assert 'data-order="' not in client.get("/portal/orders").text  # nothing placed
    client.post("/portal/cart/update", data={"csrf": csrf(page.text), "fix": "FIT-PTC-8MM"})
    cart = client.get("/portal/cart")
    assert "needs-fix" not in cart.text and 'name="qty:FIT-PTC-8MM" value="50"' in cart.text
    order_id = checkout(client)
    assert order_id


def test_ship_to_is_one_of_the_accounts_addresses_and_the_order_has_a_currency(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    add(client, "BRG-6204-2RS", 10)
    cart = client.get("/portal/cart")
    assert 'name="ship_to_id" value="RIS-DUS" checked' in cart.text and 'value="RIS-STR"' in cart.text
    assert "Heilbronner Str. 380" in cart.text and 'id="ship-to"' in cart.text
    r = client.post("/portal/cart/checkout", data={"csrf": csrf(cart.text), "ship_to_id": "ELSEWHERE"},
                    follow_redirects=False)
    assert r.status_code == 303 and "blocked=ship_to" in r.headers["location"]
    assert "pick one of your company" in client.get(r.headers["location"]).text
    order_id = checkout(client, ship_to_id="RIS-STR")
    api = client.get(f"/v1/orders/{order_id}",
                     headers={"Authorization": f"Bearer {api_key(hub, 'orders:read', account='C-1001')}"})
    assert api.json()["currency"] == "EUR" and api.json()["ship_to_id"] == "RIS-STR"
    settle(hub)
    assert 'data-state="accepted"' in client.get(f"/portal/orders/{order_id}").text


def test_quick_order_previews_line_by_line_then_adds_what_was_recognised(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    paste = ("part,quantity\nRIS-100-6204,20\nFIT-PTC-8MM;55\nNOPE-1,3\nBRG-6205-2RS,abc\n\n"
             "fit-elb-g12-ss\t100\nBRG-6206-ZZ 2")
    preview = client.get("/portal/quick-order", params={"lines": paste})
    assert preview.status_code == 200 and 'id="quick-header"' in preview.text
    rows = dict(re.findall(r'<tr data-line="(\d+)" class="(\w+)">', preview.text))
    assert rows == {"2": "recognised", "3": "refused", "4": "refused", "5": "refused", "7": "recognised",
                    "8": "recognised"}, rows

    def line(n: int) -> str:
        found = re.search(rf'<tr data-line="{n}"(.*?)</tr>', preview.text, re.S)
        assert found
        return found.group(1)

    assert "BRG-6204-2RS" in line(2) and "FIT-ELB-G12-SS" in line(7)  # the customer's part number, any case
    assert "sold in multiples of 10" in line(3)
    assert "NOPE-1 is not in your catalog" in line(4) and "abc is not a quantity" in line(5)
    assert "3 lines can be added" in preview.text and "3 cannot" in preview.text
    r = client.post("/portal/quick-order/add", data={"csrf": csrf(preview.text), "lines": paste},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/portal/cart?added=3"
    cart = client.get(r.headers["location"])
    assert 'id="quick-added"' in cart.text and 'id="cart-count">3<' in cart.text
    assert 'name="qty:BRG-6204-2RS" value="20"' in cart.text and 'name="qty:FIT-ELB-G12-SS" value="100"' in cart.text


def test_buying_forms_redirect_after_posting_and_pages_have_a_strict_csp(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    for form, page in (("/portal/cart/add", "/portal/cart"), ("/portal/cart/update", "/portal/cart"),
                       ("/portal/cart/checkout", "/portal/cart"), ("/portal/quick-order/add", "/portal/quick-order")):
        r = client.get(form, follow_redirects=False)  # a reload of the address a form was posted to
        assert r.status_code == 303 and r.headers["location"] == page, (form, r.status_code)
    for path in ("/portal/catalog", "/portal/cart", "/portal/quick-order"):
        r = client.get(path)
        policy = r.headers["content-security-policy"]
        assert "unsafe-inline" not in policy and "base-uri 'none'" in policy and "style-src 'self'" in policy
        assert "style=" not in r.text and "<style" not in r.text, path


def test_a_requested_date_in_the_past_sends_back_to_the_cart(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    add(client, "BRG-6204-2RS", 10)
    cart = client.get("/portal/cart")
    today = hub.clock.now().date()
    assert f'min="{today.isoformat()}"' in cart.text
    r = client.post("/portal/cart/checkout", data={"csrf": csrf(cart.text), "requested_date": "2001-01-01"},
                    follow_redirects=False)
    assert r.status_code == 303 and "blocked=date" in r.headers["location"]
    page = client.get(r.headers["location"])
    assert "must be today or later" in page.text and 'id="cart-count">1<' in page.text
    assert checkout(client, requested_date=today.isoformat())


def test_the_cart_states_each_lines_rule(client: TestClient, hub: Any) -> None:
    sign_in(client, buyer(hub, *SCOPES, account="C-1001"))
    add(client, "FIT-PTC-8MM", 60)
    add(client, "BRG-6204-2RS", 10)
    cart = client.get("/portal/cart", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    fitting = re.search(r'<tr data-sku="FIT-PTC-8MM">(.*?)</tr>', cart.text, re.S)
    bearing = re.search(r'<tr data-sku="BRG-6204-2RS">(.*?)</tr>', cart.text, re.S)
    assert fitting and "Ordered in minimum 50, multiples of 10" in fitting.group(1)
    assert bearing and 'class="rule"' not in bearing.group(1)  # any quantity will do
    assert re.search(r'id="cart-total"[^>]*>\d[\d\u202f]*,\d\d\xa0€<', cart.text)  # French: "160,50 €"
