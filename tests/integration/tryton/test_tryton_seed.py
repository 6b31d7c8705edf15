"""The seeded demo ERP, read over JSON-RPC, matches demo_data (read-only tests on ``main``/``acquired``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest

from ordersync.adapters.erp.tryton.rpc import TrytonAuthError, TrytonClient
from ordersync.devkit import demo_data
from ordersync.devkit.tryton.server import TrytonServer

pytestmark = [pytest.mark.tryton, pytest.mark.timeout(900)]  # the first test may build the templates


def test_login_loads_the_users_company_context(tryton_main: TrytonClient, main_profile: demo_data.Profile) -> None:
    assert isinstance(tryton_main.user_id, int)
    assert tryton_main.context["company.rec_name"] == main_profile["company"]["name"]
    (company,) = tryton_main.call("company.company", "read", [tryton_main.context["company"]], ["currency.code"])
    assert company["currency."]["code"] == main_profile["company"]["currency"]


def test_wrong_password_is_an_auth_error(tryton_server: TrytonServer) -> None:
    client = TrytonClient(tryton_server.url, "main", "ordersync", "not-the-password")
    with client, pytest.raises(TrytonAuthError):
        client.login()


def test_products_are_seeded_with_codes_units_and_list_prices(
    tryton_main: TrytonClient, main_profile: demo_data.Profile
) -> None:
    rows = tryton_main.call(
        "product.product",
        "search_read",
        [("salable", "=", True)],  # the catalog; the carriers' service products are not sold
        0,
        None,
        None,
        ["code", "name", "list_price_used", "default_uom.symbol", "salable", "account_category"],
    )
    by_sku = {row["code"]: row for row in rows}
    assert set(by_sku) == {p["sku"] for p in main_profile["products"]}
    assert len(by_sku) == 50
    for prod in main_profile["products"]:
        row = by_sku[prod["sku"]]
        assert row["name"] == prod["name"]
        assert row["list_price_used"] == Decimal(prod["list_price"])
        assert row["default_uom."]["symbol"] == prod["unit"]
        assert row["salable"] and row["account_category"]


def test_stock_per_warehouse_matches_the_seed(
    tryton_main: TrytonClient, main_profile: demo_data.Profile, ids_by_code: Callable[..., dict[str, int]]
) -> None:
    warehouses = ids_by_code(tryton_main, "stock.location", list(main_profile["regions"].values()))
    assert set(warehouses) == {"PLANT-N", "PLANT-S"}
    for code, wh_id in warehouses.items():
        rows = tryton_main.call(
            "product.product",
            "search_read",
            [("salable", "=", True)],
            0,
            None,
            None,
            ["code", "quantity", "forecast_quantity"],
            context={"locations": [wh_id]},
        )
        for row in rows:
            assert row["quantity"] == demo_data.on_hand(main_profile, row["code"], code), (code, row)
            assert row["forecast_quantity"] == demo_data.forecast(main_profile, row["code"], code), (
                code,
                row,
            )
    # the seed varies stock on purpose: single-plant SKUs, low stock and zero stock exist
    stock = {p["sku"]: p["stock"] for p in main_profile["products"]}
    assert stock["BRG-6205-2RS"] == {"PLANT-N": 300} and stock["BRG-6206-ZZ"] == {"PLANT-S": 260}
    assert stock["MOT-SRV-400W"] == {}


def test_carriers_are_seeded_with_their_party_and_service_product(tryton_main: TrytonClient) -> None:
    rows = tryton_main.call(
        "carrier", "search_read", [], 0, None, [("id", "ASC")],
        ["party.name", "party.code", "carrier_product.code", "carrier_product.type", "carrier_product.salable"],
    )
    assert [r["party."]["name"] for r in rows] == [c["name"] for c in demo_data.CARRIERS]
    for row, seeded in zip(rows, demo_data.CARRIERS, strict=True):
        assert row["party."]["code"] == seeded["code"]
        product = row["carrier_product."]
        assert (product["code"], product["type"], product["salable"]) == (seeded["service_code"], "service", False)


def test_contract_prices_come_from_the_customers_price_list(
    tryton_main: TrytonClient, main_profile: demo_data.Profile
) -> None:
    products = {
        row["code"]: row
        for row in tryton_main.call(
            "product.product", "search_read", [("salable", "=", True)], 0, None, None, ["code", "list_price_used"]
        )
    }
    differs = 0
    for cust in main_profile["customers"]:
        if not cust["active"]:
            continue
        (party,) = tryton_main.call(
            "party.party", "search_read", [("code", "=", cust["code"])], 0, 1, None, ["sale_price_list"]
        )
        for quantity in (1, 100):
            ctx = {"customer": party["id"], "price_list": party["sale_price_list"], "quantity": quantity}
            rows = tryton_main.call(
                "product.product",
                "read",
                [p["id"] for p in products.values()],
                ["code", "sale_price_uom"],
                context=ctx,
            )
            for row in rows:
                expected = demo_data.contract_price(main_profile, cust["code"], row["code"], quantity)
                assert row["sale_price_uom"] == expected, (cust["code"], row["code"], quantity)
                differs += row["sale_price_uom"] != products[row["code"]]["list_price_used"]
    assert differs > 50
    # spot checks written out, so a broken helper cannot hide a broken seed
    assert demo_data.contract_price(main_profile, "C-1001", "BRG-6204-2RS") == Decimal("6.6300")
    assert demo_data.contract_price(main_profile, "C-1001", "BRG-6204-2RS", 100) == Decimal("6.2400")
    assert demo_data.contract_price(main_profile, "C-1003", "MOT-IE3-1.5-4P") == Decimal("249.0000")


def test_customer_part_number_lookup(tryton_main: TrytonClient, main_profile: demo_data.Profile) -> None:
    for cust in main_profile["customers"]:
        for pn in cust["part_numbers"]:
            rows = tryton_main.call(
                "sale.product_customer",
                "search_read",
                [("code", "=", pn["code"]), ("party.code", "=", cust["code"])],
                0,
                None,
                None,
                ["product.code", "template.code", "name"],
            )
            assert len(rows) == 1, pn
            assert rows[0]["product."]["code"] == pn["sku"]
            assert rows[0]["name"] == pn["name"]


def test_near_limit_customer_credit(tryton_main: TrytonClient, main_profile: demo_data.Profile) -> None:
    (party,) = tryton_main.call(
        "party.party",
        "search_read",
        [("code", "=", "C-1004")],
        0,
        1,
        None,
        ["credit_limit_amount", "credit_amount"],
    )
    seeded = demo_data.customer(main_profile, "C-1004")
    assert party["credit_limit_amount"] == Decimal(seeded["credit_limit"])
    assert party["credit_amount"] == demo_data.credit_exposure(main_profile, "C-1004") == Decimal("33853.50")
    assert party["credit_amount"] / party["credit_limit_amount"] > Decimal("0.9")


def test_inactive_customer_is_hidden_by_default(tryton_main: TrytonClient) -> None:
    assert tryton_main.call("party.party", "search", [("code", "=", "C-1005")], 0, None, None) == []
    rows = tryton_main.call(
        "party.party",
        "search_read",
        [("code", "=", "C-1005")],
        0,
        None,
        None,
        ["active"],
        context={"active_test": False},
    )
    assert [row["active"] for row in rows] == [False]


def test_ship_to_addresses_carry_their_subdivision(tryton_main: TrytonClient, main_profile: demo_data.Profile) -> None:
    rows = tryton_main.call(
        "party.address",
        "search_read",
        [("party.code", "=", "C-1003")],
        0,
        None,
        None,
        ["building_name", "subdivision.code", "city"],
    )
    got = {row["building_name"]: row["subdivision."]["code"] for row in rows}
    want = {a["key"]: a["subdivision"] for a in demo_data.customer(main_profile, "C-1003")["addresses"]}
    assert got == want


def test_acquired_database_is_served_by_the_same_process(tryton_connect: Callable[..., TrytonClient]) -> None:
    acquired, main = tryton_connect("acquired"), tryton_connect("main")
    assert acquired.url == main.url
    prof = demo_data.profile("acquired")
    assert acquired.context["company.rec_name"] == prof["company"]["name"]
    assert main.context["company.rec_name"] != acquired.context["company.rec_name"]
    salable = [("salable", "=", True)]
    codes = {row["code"] for row in acquired.call("product.product", "search_read", salable, 0, None, None, ["code"])}
    assert codes == {p["sku"] for p in prof["products"]}
    (party,) = acquired.call(
        "party.party",
        "search_read",
        [("code", "=", "C-2001")],
        0,
        1,
        None,
        ["sale_price_list", "credit_limit_amount"],
    )
    assert party["credit_limit_amount"] == Decimal("120000.00")
    ctx = {"customer": party["id"], "price_list": party["sale_price_list"], "quantity": 1}
    (row,) = acquired.call(
        "product.product",
        "search_read",
        [("code", "=", "VFS-PMP-DIA-1")],
        0,
        1,
        None,
        ["sale_price_uom"],
        context=ctx,
    )
    assert row["sale_price_uom"] == demo_data.contract_price(prof, "C-2001", "VFS-PMP-DIA-1") == Decimal("1050")


def test_rest_api_key_reads_products(tryton_server: TrytonServer, main_profile: demo_data.Profile) -> None:
    import httpx

    response = httpx.get(
        f"{tryton_server.url}/main/rest/model/product.product",
        params={"f": "code"},
        headers={"Authorization": f"Bearer {main_profile['rest_key']}", "Range": "records=0-5"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    # unlike HTTP byte ranges, the end of Tryton's record range is exclusive
    assert len(response.json()) == 5
    assert response.headers["Content-Range"].startswith("records 0-5/")
    wrong = httpx.get(
        f"{tryton_server.url}/main/rest/model/product.product",
        headers={"Authorization": "Bearer nope"},
        timeout=10,
    )
    assert wrong.status_code == 401


def test_minimum_quantities_and_packs_are_seeded(tryton_main: TrytonClient, main_profile: demo_data.Profile) -> None:
    rows = tryton_main.call(
        "product.template", "search_read", [], 0, None, None,
        ["code", "sale_quantity_minimal", "sale_quantity_rounding"],
    )
    seeded = {r["code"]: (r["sale_quantity_minimal"], r["sale_quantity_rounding"]) for r in rows}
    for prod in main_profile["products"]:
        assert seeded[prod["sku"]] == (prod.get("minimum_quantity"), prod.get("pack_multiple")), prod["sku"]
    assert seeded["FIT-PTC-8MM"] == (50, 10) and seeded["HOS-HYD-2SN-12"] == (5, None)


def test_a_zero_default_lead_time_lets_the_sale_shipping_date_reach_the_lines(tryton_main: TrytonClient) -> None:
    (config,) = tryton_main.call("product.configuration", "read", [1], ["default_lead_time"])
    assert config["default_lead_time"] == dt.timedelta(0)
