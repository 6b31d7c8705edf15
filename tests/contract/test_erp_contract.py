"""The ERP port's contract: the same tests against the in-memory twin and against Tryton 8.2.

Tests on ``seeded`` compare with the seed (``demo_data``); tests on ``subject`` make their own orders
(fresh references) and compare with what they read before acting, so they hold in a shared database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import threading
import time
import uuid
from decimal import Decimal

import pytest

from ordersync.canonical.v1 import AccountStatus, InvoiceState, ShipmentState
from ordersync.devkit import demo_data
from ordersync.ports.erp import (
    AmendmentRequest,
    ChangeKind,
    ChangeNotice,
    ErpOrder,
    ErpOrderState,
    ErpPort,
    ErpReturnState,
    LineChange,
    ReturnOutcome,
    ReturnRequest,
    ReturnRequestLine,
    SalesOrderLine,
    SalesOrderRequest,
    Shortfall,
    SubmitOutcome,
    SubmitResult,
    UnknownItem,
    order_reference,
    parse_reference,
    return_reference,
)
from tests.contract.conftest import ErpUnderTest

pytestmark = pytest.mark.timeout(900)  # the first Tryton test may build the templates

MAIN = demo_data.profile("main")
D = Decimal


def request_for(account: str, plant: str, lines: list[tuple[str, int | Decimal]], *, ship_to: str | None = None,
                **flags: bool) -> SalesOrderRequest:
    """A request of a fresh hub order at the seeded contract prices."""
    order_id = f"ct{uuid.uuid4().hex[:10]}"
    return SalesOrderRequest(
        reference=order_reference(order_id, plant), order_id=order_id, account_id=account, plant=plant,
        currency=MAIN["company"]["currency"], ship_to_id=ship_to, buyer_po_number=f"PO-{order_id}",
        lines=tuple(SalesOrderLine(line_no=n, sku=sku, quantity=D(qty),
                                   unit_price=demo_data.contract_price(MAIN, account, sku, qty))
                    for n, (sku, qty) in enumerate(lines, 1)),
        **flags)


def atp(erp: ErpPort, sku: str, plant: str) -> Decimal:
    return next(p.available_to_promise for p in erp.availability([sku]) if p.plant == plant)


def only_order(erp: ErpPort, reference: str) -> ErpOrder:
    order = erp.order(reference)
    assert order is not None, reference
    return order


def live_sales(subject: ErpUnderTest, reference: str) -> list[tuple[str, str]]:
    return [s for s in subject.driver.sales_with_reference(reference) if s[1] != "cancelled"]


# -- master data, prices, stock ----------------------------------------------------------------------------

def test_accounts_are_the_active_customers_with_credit_and_ship_to_addresses(seeded: ErpPort) -> None:
    accounts = {a.id: a for a in seeded.accounts()}
    assert set(accounts) == {c["code"] for c in MAIN["customers"] if c["active"]}
    near = accounts["C-1004"]  # the customer close to its credit limit
    assert near.erp == seeded.name and near.status is AccountStatus.ACTIVE
    assert near.credit is not None
    assert near.credit.limit == D("36000.00")
    assert near.credit.exposure == demo_data.credit_exposure(MAIN, "C-1004") == D("33853.50")
    assert near.credit.available == D("2146.50") and near.credit.currency == "EUR"
    # order preparation checks the credit an account read brought (one ERP call, not two)
    one, alone = seeded.account("C-1004").credit, seeded.credit("C-1004")
    assert one is not None and alone.model_dump(exclude={"as_of"}) == one.model_dump(exclude={"as_of"})
    for customer in MAIN["customers"]:
        if customer["active"]:
            wanted = {(a["key"], a["region"], a["city"]) for a in customer["addresses"] if a["delivery"]}
            assert {(s.id, s.region, s.city) for s in accounts[customer["code"]].ship_to} == wanted


def test_an_inactive_account_is_found_by_id_but_not_listed(seeded: ErpPort) -> None:
    account = seeded.account("C-1005")
    assert account.status is AccountStatus.INACTIVE and account.name == "Mittelstand Maschinenbau GmbH"
    assert "C-1005" not in {a.id for a in seeded.accounts()}
    assert seeded.credit("C-1005").limit == D("20000.00")


def test_an_account_carries_the_tax_id_and_payment_terms_the_seed_gave_it(seeded: ErpPort) -> None:
    listed = {a.id: a for a in seeded.accounts()}
    days = {t["name"]: t["days"] for t in MAIN["payment_terms"]}
    for customer in MAIN["customers"]:  # the inactive one too, read by id
        account = listed.get(customer["code"]) or seeded.account(customer["code"])
        assert (account.tax_id, account.payment_terms, account.payment_terms_days) == (
            customer["tax_id"], customer["payment_term"], days[customer["payment_term"]]), customer["code"]
    one = seeded.account("C-1003")
    assert (one.tax_id, one.payment_terms, one.payment_terms_days) == ("DE115396285", "Net 60", 60)


def test_unknown_accounts_and_skus_are_unknown_items(seeded: ErpPort) -> None:
    calls = [
        ("account", lambda: seeded.account("C-9999")),
        ("account", lambda: seeded.credit("C-9999")),
        ("account", lambda: seeded.products("C-9999")),
        ("account", lambda: seeded.prices("C-9999", [("BRG-6204-2RS", D(1))])),
        ("sku", lambda: seeded.prices("C-1001", [("NO-SUCH-SKU", D(1))])),
        ("sku", lambda: seeded.availability(["BRG-6204-2RS", "NO-SUCH-SKU"])),
    ]
    for kind, call in calls:
        with pytest.raises(UnknownItem) as caught:
            call()
        assert caught.value.kind == kind


def test_products_carry_customer_part_numbers_minimum_quantities_and_packs(seeded: ErpPort) -> None:
    everything = {p.sku: p for p in seeded.products()}
    assert set(everything) == {p["sku"] for p in MAIN["products"]}
    assert {n.account_id for n in everything["SEN-PX-M12-NPN"].customer_part_numbers} == {"C-1001", "C-1002", "C-1003"}
    for sku, minimum, pack in [("FIT-PTC-8MM", 50, 10), ("FIT-TEE-G12-SS", 10, 10), ("HOS-HYD-2SN-12", 5, 1),
                               ("BRG-6204-2RS", 1, 1)]:
        assert (everything[sku].minimum_quantity, everything[sku].pack_multiple) == (D(minimum), D(pack)), sku
        assert everything[sku].minimum_quantity == demo_data.minimum_quantity(MAIN, sku)
        assert everything[sku].pack_multiple == demo_data.pack_multiple(MAIN, sku)
    assert everything["HOS-PU-8X6"].unit == "m" and everything["MOT-VFD-2.2"].category == "Motors"
    assert everything["MOT-VFD-2.2"].list_price == D("398.00")

    hanse = {p.sku: p for p in seeded.products("C-1003")}
    seeded_numbers = {pn["sku"]: pn["code"] for pn in demo_data.customer(MAIN, "C-1003")["part_numbers"]}
    found = {sku: [n.part_number for n in p.customer_part_numbers] for sku, p in hanse.items()}
    assert {sku: codes for sku, codes in found.items() if codes} == {s: [c] for s, c in seeded_numbers.items()}


def test_contract_prices_follow_the_price_list_including_the_volume_break(seeded: ErpPort) -> None:
    items = [("C-1001", "BRG-6204-2RS", 10), ("C-1001", "BRG-6204-2RS", 100), ("C-1001", "MOT-VFD-2.2", 1),
             ("C-1001", "HOS-PU-8X6", 50), ("C-1002", "SEN-PT-0-10B", 2), ("C-1002", "VLV-BV-DN25-SS", 3),
             ("C-1003", "FIT-PTC-8MM", 500), ("C-1004", "MOT-IE3-4.0-4P", 1)]
    for account in sorted({a for a, _, _ in items}):
        asked = [(sku, D(qty)) for a, sku, qty in items if a == account]
        quotes = seeded.prices(account, asked)
        assert [(q.sku, q.quantity) for q in quotes] == asked  # in request order
        for quote, (sku, qty) in zip(quotes, asked, strict=True):
            assert quote.contract_unit_price == demo_data.contract_price(MAIN, account, sku, qty), (account, sku)
            assert quote.unit_price == quote.contract_unit_price and quote.currency == "EUR"
    volume = seeded.prices("C-1001", [("BRG-6204-2RS", D(99)), ("BRG-6204-2RS", D(100))])
    assert volume[0].unit_price == D("6.63") and volume[1].unit_price == D("6.24")


def test_availability_per_plant_equals_the_seeded_forecast(seeded: ErpPort) -> None:
    skus = ["VLV-BV-DN25-SS", "SEN-TT-PT100", "BRG-6205-2RS", "BRG-6206-ZZ", "MOT-SRV-400W", "MOT-IE3-7.5-4P"]
    positions = seeded.availability(skus)
    assert [(p.sku, p.plant) for p in positions] == [(s, w) for s in skus for w in ("PLANT-N", "PLANT-S")]
    for p in positions:
        forecast = demo_data.forecast(MAIN, p.sku, p.plant)
        assert p.on_hand == demo_data.on_hand(MAIN, p.sku, p.plant), p
        assert p.available_to_promise == max(forecast, 0), p
        assert p.reserved == p.on_hand - p.available_to_promise, p
    # the seeded open sale of C-1004 reserves 100 of the 120 ball valves in the north
    valves = next(p for p in positions if p.sku == "VLV-BV-DN25-SS" and p.plant == "PLANT-N")
    assert (valves.on_hand, valves.reserved, valves.available_to_promise) == (120, 100, 20)


def test_plants_are_the_warehouses_with_their_regions(seeded: ErpPort) -> None:
    assert [(p.code, p.region) for p in seeded.plants()] == [("PLANT-N", "north"), ("PLANT-S", "south")]


def test_health_is_ok_and_reports_a_latency(seeded: ErpPort) -> None:
    health = seeded.health()
    assert health.ok and health.erp == seeded.name
    assert health.latency_ms is not None and health.latency_ms >= 0


# -- submitting --------------------------------------------------------------------------------------------

def test_a_submitted_order_is_confirmed_and_reserves_its_stock(subject: ErpUnderTest) -> None:
    erp = subject.erp
    request = request_for("C-1002", "PLANT-S", [("SEN-PX-M12-NPN", 12), ("SEN-PHO-DIFF", 3)], ship_to="AFS-NUE")
    before = {sku: atp(erp, sku, "PLANT-S") for sku in ("SEN-PX-M12-NPN", "SEN-PHO-DIFF")}

    (result,) = erp.submit_orders([request])

    assert result.outcome is SubmitOutcome.ACCEPTED, result
    assert result.erp_order_id and result.erp_order_number and not result.reconciled
    order = only_order(erp, request.reference)
    assert order.state is ErpOrderState.PROCESSING and order.erp_order_id == result.erp_order_id
    assert (order.order_id, order.plant, order.account_id, order.currency) == (request.order_id, "PLANT-S", "C-1002",
                                                                               "EUR")
    assert [(ln.line_no, ln.sku, ln.quantity, ln.unit_price) for ln in order.lines] == [
        (ln.line_no, ln.sku, ln.quantity, ln.unit_price) for ln in request.lines]
    (shipment,) = order.shipments
    assert shipment.state is ShipmentState.WAITING and shipment.plant == "PLANT-S"
    assert [(s.line_no, s.sku, s.quantity) for s in shipment.lines] == [(1, "SEN-PX-M12-NPN", 12),
                                                                         (2, "SEN-PHO-DIFF", 3)]
    assert {sku: atp(erp, sku, "PLANT-S") for sku in before} == {
        "SEN-PX-M12-NPN": before["SEN-PX-M12-NPN"] - 12, "SEN-PHO-DIFF": before["SEN-PHO-DIFF"] - 3}


def test_a_batch_is_confirmed_order_by_order_in_request_order(subject: ErpUnderTest) -> None:
    requests = [
        request_for("C-1001", "PLANT-N", [("BRG-6204-2RS", 20), ("FIT-CMP-12MM-SS", 30)], ship_to="RIS-DUS"),
        request_for("C-1003", "PLANT-N", [("MOT-IE3-1.5-4P", 1), ("HOS-PU-8X6", 25)], ship_to="HAW-WOB"),
        request_for("C-1002", "PLANT-S", [("VLV-SV-24V-G12", 2)]),
        request_for("C-1001", "PLANT-S", [("BRG-UCP205", 4)], ship_to="RIS-STR"),
    ]
    results = subject.erp.submit_orders(requests)
    assert [r.reference for r in results] == [r.reference for r in requests]
    assert [r.outcome for r in results] == [SubmitOutcome.ACCEPTED] * 4, results
    assert len({r.erp_order_id for r in results}) == 4
    for request in requests:
        assert only_order(subject.erp, request.reference).state is ErpOrderState.PROCESSING


def test_submitting_the_same_order_twice_returns_the_same_erp_order_reconciled(subject: ErpUnderTest) -> None:
    request = request_for("C-1003", "PLANT-S", [("SEN-PX-M12-NPN", 40)], ship_to="HAW-ING")
    (first,) = subject.erp.submit_orders([request])
    (again,) = subject.erp.submit_orders([request])
    twice = subject.erp.submit_orders([request, request])  # a duplicate inside one batch, too
    assert first.outcome is again.outcome is SubmitOutcome.ACCEPTED
    assert (again.erp_order_id, again.erp_order_number) == (first.erp_order_id, first.erp_order_number)
    assert again.reconciled and not first.reconciled
    assert [r.erp_order_id for r in twice] == [first.erp_order_id] * 2
    assert len(subject.driver.sales_with_reference(request.reference)) == 1


def test_a_draft_left_by_a_crash_is_reconciled_into_one_confirmed_order(subject: ErpUnderTest) -> None:
    request = request_for("C-1001", "PLANT-N", [("BRG-6308-2RS", 5), ("SEN-TT-PT100", 2), ("VLV-NV-G14-SS", 10)])
    stale = request.model_copy(update={"lines": (request.lines[0].model_copy(update={"quantity": D(7)}),
                                                 request.lines[1])})  # an older version of the order
    draft_id = subject.driver.leave_draft(stale)

    (result,) = subject.erp.submit_orders([request])

    assert result.outcome is SubmitOutcome.ACCEPTED and result.reconciled and result.erp_order_id == draft_id
    order = only_order(subject.erp, request.reference)
    assert [(ln.line_no, ln.sku, ln.quantity) for ln in order.lines] == [
        (1, "BRG-6308-2RS", 5), (2, "SEN-TT-PT100", 2), (3, "VLV-NV-G14-SS", 10)]
    assert subject.driver.sales_with_reference(request.reference) == [(draft_id, "processing")]


def test_a_quotation_left_by_a_crash_is_confirmed_without_a_second_order(subject: ErpUnderTest) -> None:
    request = request_for("C-1002", "PLANT-N", [("SEN-PT-0-10B", 1), ("VLV-BV-DN50-SS", 1)], ship_to="AFS-HAM")
    quotation_id = subject.driver.leave_quotation(request)
    assert only_order(subject.erp, request.reference).state is ErpOrderState.QUOTATION

    (result,) = subject.erp.submit_orders([request])

    assert result.outcome is SubmitOutcome.ACCEPTED and result.reconciled and result.erp_order_id == quotation_id
    assert subject.driver.sales_with_reference(request.reference) == [(quotation_id, "processing")]


def _race(ports: list[ErpPort], request: SalesOrderRequest) -> list[SubmitResult]:
    """Submit ``request`` through every port at the same moment (one thread each)."""
    start = threading.Barrier(len(ports))
    results: dict[int, SubmitResult] = {}

    def submit(i: int, port: ErpPort) -> None:
        start.wait()
        results[i] = port.submit_orders([request])[0]

    threads = [threading.Thread(target=submit, args=(i, p)) for i, p in enumerate(ports)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return [results[i] for i in sorted(results)]


def test_concurrent_submits_of_one_reference_make_exactly_one_sale(subject: ErpUnderTest) -> None:
    for _ in range(3):  # each round is a fresh race between two hub processes
        request = request_for("C-1003", "PLANT-N", [("FIT-PTC-8MM", 100), ("SEN-PHO-DIFF", 1)])

        results = _race([subject.connect(), subject.connect()], request)

        assert [r.outcome for r in results] == [SubmitOutcome.ACCEPTED] * 2, results
        assert len({r.erp_order_id for r in results}) == 1
        assert len(live_sales(subject, request.reference)) == 1


def test_an_order_beyond_the_stock_is_a_shortfall_with_the_missing_quantities(subject: ErpUnderTest) -> None:
    erp = subject.erp
    sku, plant = "BRG-NU210-ECP", "PLANT-N"
    have = atp(erp, sku, plant)
    request = request_for("C-1001", plant, [("BRG-6204-2RS", 2), (sku, have + 4)])

    (result,) = erp.submit_orders([request])

    assert result.outcome is SubmitOutcome.STOCK_SHORTFALL, result
    assert result.shortfalls == (Shortfall(sku=sku, plant=plant, requested=have + 4, available=have),)
    assert sku in result.message
    assert only_order(erp, request.reference).state is ErpOrderState.DRAFT  # nothing confirmed, nothing reserved
    assert atp(erp, sku, plant) == have


def test_accepting_the_shortfall_confirms_the_same_order(subject: ErpUnderTest) -> None:
    erp = subject.erp
    sku, plant = "SEN-FLW-MAG-DN25", "PLANT-S"
    have = atp(erp, sku, plant)
    request = request_for("C-1002", plant, [(sku, have + 2)])
    (short,) = erp.submit_orders([request])
    assert short.outcome is SubmitOutcome.STOCK_SHORTFALL

    (result,) = erp.submit_orders([request.model_copy(update={"accept_shortfall": True})])

    assert result.outcome is SubmitOutcome.ACCEPTED and result.reconciled
    assert result.erp_order_id == short.erp_order_id
    position = next(p for p in erp.availability([sku]) if p.plant == plant)
    assert position.available_to_promise == 0 and position.reserved == position.on_hand


def _over_the_limit(erp: ErpPort, sku: str) -> SalesOrderRequest:
    """An order of C-1004 (the customer near its limit) worth more than its available credit."""
    credit = erp.credit("C-1004")
    price = demo_data.contract_price(MAIN, "C-1004", sku)
    quantity = max(int(credit.available / price) + 50, 50)
    return request_for("C-1004", "PLANT-N", [(sku, quantity)])


def test_an_order_over_the_credit_limit_is_held_as_a_quotation(subject: ErpUnderTest) -> None:
    erp = subject.erp
    request = _over_the_limit(erp, "FIT-ELB-G12-SS")
    exposure = erp.credit("C-1004").exposure

    (result,) = erp.submit_orders([request])

    assert result.outcome is SubmitOutcome.CREDIT_HOLD, result
    assert "credit limit" in result.message and result.erp_order_number
    assert only_order(erp, request.reference).state is ErpOrderState.QUOTATION
    assert erp.credit("C-1004").exposure == exposure


def test_credit_approval_releases_a_held_order(subject: ErpUnderTest) -> None:
    erp = subject.erp
    request = _over_the_limit(erp, "FIT-CPL-G1-SS")
    (held,) = erp.submit_orders([request])
    assert held.outcome is SubmitOutcome.CREDIT_HOLD

    (released,) = erp.submit_orders([request.model_copy(update={"credit_approved": True})])

    assert released.outcome is SubmitOutcome.ACCEPTED and released.reconciled
    assert released.erp_order_id == held.erp_order_id
    assert only_order(erp, request.reference).state is ErpOrderState.PROCESSING


def test_a_credit_limit_set_by_finance_is_the_limit_credit_and_account_report(subject: ErpUnderTest) -> None:
    erp = subject.erp
    before = erp.credit("C-1004")
    raised = before.limit + D("5000.00")
    try:
        after = erp.set_credit_limit("C-1004", raised)
        assert after.limit == raised and after.exposure == before.exposure
        assert after.available == before.available + D("5000.00")
        assert erp.credit("C-1004").limit == raised
        account = erp.account("C-1004")
        assert account.credit is not None and account.credit.limit == raised
        assert erp.set_credit_limit("C-1004", raised).limit == raised  # again: the same
    finally:
        erp.set_credit_limit("C-1004", before.limit)
    assert erp.credit("C-1004").limit == before.limit
    with pytest.raises(UnknownItem):
        erp.set_credit_limit("C-9999", D("1.00"))


def test_one_bad_order_in_a_batch_leaves_the_others_accepted(subject: ErpUnderTest) -> None:
    erp = subject.erp
    good = [request_for("C-1003", "PLANT-N", [("FIT-PTC-8MM", 60)]),
            request_for("C-1001", "PLANT-N", [("FIT-TEE-G12-SS", 20)]),
            request_for("C-1002", "PLANT-S", [("HOS-HYD-2SN-12", 12)])]
    below_minimum = request_for("C-1003", "PLANT-N", [("FIT-PTC-8MM", 15)])
    not_a_pack = request_for("C-1001", "PLANT-N", [("FIT-TEE-G12-SS", 25)])
    unknown_sku = request_for("C-1001", "PLANT-N", [("BRG-6204-2RS", 1)])
    unknown_sku = unknown_sku.model_copy(update={"lines": (unknown_sku.lines[0].model_copy(update={"sku": "NOPE-1"}),)})
    inactive = request_for("C-1005", "PLANT-S", [("BRG-6204-2RS", 1)])
    batch = [good[0], below_minimum, good[1], not_a_pack, unknown_sku, inactive, good[2]]

    results = {r.reference: r for r in erp.submit_orders(batch)}

    for request in good:
        assert results[request.reference].outcome is SubmitOutcome.ACCEPTED, results[request.reference]
    for request, needle in [(below_minimum, "FIT-PTC-8MM"), (not_a_pack, "FIT-TEE-G12-SS"), (unknown_sku, "NOPE-1"),
                            (inactive, "C-1005")]:
        refused = results[request.reference]
        assert refused.outcome is SubmitOutcome.REJECTED and needle in refused.message, refused
        assert live_sales(subject, request.reference) == []


def test_warnings_in_a_batch_concern_only_their_own_orders(subject: ErpUnderTest) -> None:
    erp = subject.erp
    short_sku = "MOT-IE4-11-4P"
    fine_1 = request_for("C-1001", "PLANT-S", [("BRG-32008-X", 3)])
    short = request_for("C-1002", "PLANT-S", [(short_sku, atp(erp, short_sku, "PLANT-S") + 1)])
    held = _over_the_limit(erp, "FIT-QC-G14-ST")
    fine_2 = request_for("C-1003", "PLANT-N", [("MOT-GM-0.37-I20", 1)])

    results = erp.submit_orders([fine_1, short, held, fine_2])

    assert [r.outcome for r in results] == [SubmitOutcome.ACCEPTED, SubmitOutcome.STOCK_SHORTFALL,
                                            SubmitOutcome.CREDIT_HOLD, SubmitOutcome.ACCEPTED], results
    assert [s.sku for s in results[1].shortfalls] == [short_sku]


def test_orders_of_one_batch_competing_for_stock_are_served_in_request_order(subject: ErpUnderTest) -> None:
    erp = subject.erp
    sku, plant = "SEN-VIB-4-20", "PLANT-N"
    reserved = next(p.reserved for p in erp.availability([sku]) if p.plant == plant)
    subject.driver.set_stock(sku, plant, D(10) + reserved)
    assert atp(erp, sku, plant) == 10
    first, second, third = (request_for("C-1001", plant, [(sku, q)]) for q in (6, 6, 4))

    results = erp.submit_orders([first, second, third])

    # one after the other: 6 fit, the next 6 do not (4 left), the 4 fit
    assert [r.outcome for r in results] == [SubmitOutcome.ACCEPTED, SubmitOutcome.STOCK_SHORTFALL,
                                            SubmitOutcome.ACCEPTED], results
    assert results[1].shortfalls == (Shortfall(sku=sku, plant=plant, requested=D(6), available=D(4)),)
    assert atp(erp, sku, plant) == 0


def test_a_held_quotation_can_be_cancelled_and_then_refuses_resubmission(subject: ErpUnderTest) -> None:
    erp = subject.erp
    request = _over_the_limit(erp, "SEN-PX-M12-NPN")
    (held,) = erp.submit_orders([request])
    assert held.outcome is SubmitOutcome.CREDIT_HOLD

    assert erp.cancel_order(request.reference) is True
    assert only_order(erp, request.reference).state is ErpOrderState.CANCELLED
    (again,) = erp.submit_orders([request.model_copy(update={"credit_approved": True})])
    assert again.outcome is SubmitOutcome.REJECTED and "cancelled" in again.message

    confirmed = request_for("C-1003", "PLANT-S", [("BRG-UCP205", 1)])
    assert erp.submit_orders([confirmed])[0].outcome is SubmitOutcome.ACCEPTED
    assert erp.cancel_order(confirmed.reference) is False
    assert erp.cancel_order(order_reference("ctnosuchorder", "PLANT-N")) is False


def test_an_unknown_reference_reads_as_none_and_cannot_be_amended(subject: ErpUnderTest) -> None:
    reference = order_reference(f"ct{uuid.uuid4().hex[:10]}", "PLANT-N")
    assert subject.erp.order(reference) is None
    assert subject.erp.orders_for(reference.split("-")[1]) == []
    with pytest.raises(UnknownItem):
        subject.erp.amend_order(AmendmentRequest(reference=reference, changes=(LineChange(line_no=1, cancel=True),)))


# -- amending ----------------------------------------------------------------------------------------------

def _accepted(subject: ErpUnderTest, account: str, plant: str, lines: list[tuple[str, int]]) -> SalesOrderRequest:
    request = request_for(account, plant, lines)
    (result,) = subject.erp.submit_orders([request])
    assert result.outcome is SubmitOutcome.ACCEPTED, result
    return request


def test_amending_a_quantity_changes_the_line_and_its_shipment(subject: ErpUnderTest) -> None:
    request = _accepted(subject, "C-1001", "PLANT-N", [("SEL-OR-NBR-KIT", 2), ("SEL-GSK-DN50-PTFE", 10)])
    change = LineChange(line_no=2, quantity=D(15))

    result = subject.erp.amend_order(AmendmentRequest(reference=request.reference, changes=(change,)))

    assert result.applied == (change,) and result.refused == ()
    order = only_order(subject.erp, request.reference)
    assert [ln.quantity for ln in order.lines] == [2, 15]
    (shipment,) = [s for s in order.shipments if s.state is ShipmentState.WAITING]
    assert {(s.line_no, s.quantity) for s in shipment.lines} == {(1, 2), (2, 15)}


def test_our_sales_are_listed_by_change_time_and_by_reference_with_lines_prices_and_states(
        subject: ErpUnderTest) -> None:
    erp, driver = subject.erp, subject.driver
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)  # margin for the ERP's own clock
    request = _accepted(subject, "C-1001", "PLANT-N", [("SEL-OR-NBR-KIT", 2), ("SEL-GSK-DN50-PTFE", 10)])
    other = _accepted(subject, "C-1002", "PLANT-N", [("VLV-3W-DN20-SS", 1)])
    driver.ship(other.reference)

    listed = {o.reference: o for o in erp.sales_since(before)}
    assert {request.reference, other.reference} <= set(listed)
    assert all(parse_reference(ref) is not None for ref in listed)  # our prefix only
    mine = listed[request.reference]
    assert mine == only_order(erp, request.reference)
    assert (mine.order_id, mine.plant, mine.account_id) == (request.order_id, "PLANT-N", "C-1001")
    assert [(ln.line_no, ln.sku, ln.quantity, ln.unit_price) for ln in mine.lines] == [
        (ln.line_no, ln.sku, ln.quantity, ln.unit_price) for ln in request.lines]
    assert mine.state in (ErpOrderState.CONFIRMED, ErpOrderState.PROCESSING)
    assert [s.state for s in listed[other.reference].shipments] == [ShipmentState.SHIPPED]
    assert request.reference in {o.reference for o in erp.sales_since(None)}

    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert request.reference not in {o.reference for o in erp.sales_since(later)}
    assert [o.reference for o in erp.sales_since(later, [request.reference, order_reference("nohub", "PLANT-N")])
            ] == [request.reference]


def test_amending_the_date_moves_the_shipment_when_all_its_lines_move(subject: ErpUnderTest) -> None:
    request = _accepted(subject, "C-1002", "PLANT-S", [("SEN-PT-0-10B", 1), ("SEN-TT-PT100", 2)])
    later = dt.date.today() + dt.timedelta(days=12)

    alone = subject.erp.amend_order(AmendmentRequest(
        reference=request.reference, changes=(LineChange(line_no=1, promised_date=later),)))
    assert alone.applied == () and "line(s) 2" in alone.refused[0][1]  # Tryton plans one date per shipment

    both = subject.erp.amend_order(AmendmentRequest(reference=request.reference, changes=(
        LineChange(line_no=1, promised_date=later), LineChange(line_no=2, promised_date=later))))
    assert [c.line_no for c in both.applied] == [1, 2] and both.refused == ()
    assert [ln.promised_date for ln in only_order(subject.erp, request.reference).lines] == [later, later]


def test_cancelling_a_line_sets_it_to_zero_and_takes_it_off_the_shipment(subject: ErpUnderTest) -> None:
    request = _accepted(subject, "C-1003", "PLANT-N", [("MOT-IE3-0.75-4P", 1), ("SEN-PX-M18-PNP", 5)])

    result = subject.erp.amend_order(AmendmentRequest(reference=request.reference,
                                                      changes=(LineChange(line_no=2, cancel=True),)))

    assert [c.line_no for c in result.applied] == [2]
    order = only_order(subject.erp, request.reference)
    assert [(ln.line_no, ln.quantity) for ln in order.lines] == [(1, 1), (2, 0)]
    assert [[s.line_no for s in sh.lines] for sh in order.shipments] == [[1]]


def test_a_line_cannot_be_reduced_below_what_has_shipped(subject: ErpUnderTest) -> None:
    request = _accepted(subject, "C-1001", "PLANT-S", [("VLV-BV-DN25-SS", 10)])
    subject.driver.ship(request.reference, {1: D(6)})

    result = subject.erp.amend_order(AmendmentRequest(reference=request.reference, changes=(
        LineChange(line_no=1, quantity=D(4)), LineChange(line_no=7, quantity=D(1)))))

    assert result.applied == ()
    reasons = dict((c.line_no, why) for c, why in result.refused)
    assert "shipped" in reasons[1] and "no line 7" in reasons[7]
    fine = subject.erp.amend_order(AmendmentRequest(reference=request.reference,
                                                    changes=(LineChange(line_no=1, quantity=D(8)),)))
    assert [c.quantity for c in fine.applied] == [8]
    order = only_order(subject.erp, request.reference)
    assert sorted((s.state.value, s.lines[0].quantity) for s in order.shipments) == [("shipped", 6), ("waiting", 2)]


# -- reading orders and changes ----------------------------------------------------------------------------

def test_an_order_reads_with_split_shipments_and_its_posted_invoice(subject: ErpUnderTest) -> None:
    erp, driver = subject.erp, subject.driver
    request = _accepted(subject, "C-1001", "PLANT-N", [("BRG-6204-2RS", 10), ("SEN-PX-M12-NPN", 4)])
    on_hand = next(p.on_hand for p in erp.availability(["BRG-6204-2RS"]) if p.plant == "PLANT-N")

    driver.ship(request.reference, {1: D(6)})
    driver.post_invoices(request.reference)

    order = only_order(erp, request.reference)
    first, second = order.shipments
    assert first.state is ShipmentState.SHIPPED and first.shipped_at is not None
    assert [(s.line_no, s.sku, s.quantity) for s in first.lines] == [(1, "BRG-6204-2RS", 6), (2, "SEN-PX-M12-NPN", 4)]
    assert second.state is ShipmentState.WAITING and [(s.line_no, s.quantity) for s in second.lines] == [(1, 4)]
    assert {s.order_id for s in order.shipments} == {request.order_id}
    (invoice,) = order.invoices
    total = sum((ln.quantity * ln.unit_price for ln in request.lines), D(0)).quantize(D("0.01"))
    assert invoice.state is InvoiceState.POSTED and invoice.number
    assert (invoice.account_id, invoice.order_id, invoice.currency) == ("C-1001", request.order_id, "EUR")
    assert invoice.total_amount == total and invoice.untaxed_amount == total
    assert invoice.due_date == dt.date.today() + dt.timedelta(days=30)  # Net 30
    assert invoice.open_amount == total  # nothing paid yet: all of it is still to pay
    assert [(ln.line_no, ln.sku, ln.quantity) for ln in invoice.lines] == [(1, "BRG-6204-2RS", 10),
                                                                           (2, "SEN-PX-M12-NPN", 4)]
    assert next(p.on_hand for p in erp.availability(["BRG-6204-2RS"]) if p.plant == "PLANT-N") == on_hand - 6
    assert [o.reference for o in erp.orders_for(request.order_id)] == [request.reference]


def test_a_shipped_shipment_has_a_carrier_and_a_tracking_number(subject: ErpUnderTest) -> None:
    erp, driver = subject.erp, subject.driver
    start = erp.changes_since(None).watermark
    request = _accepted(subject, "C-1002", "PLANT-N", [("VLV-3W-DN20-SS", 4)])
    (waiting,) = only_order(erp, request.reference).shipments
    assert (waiting.carrier, waiting.tracking_number) == (None, None)

    driver.ship(request.reference, {1: D(1)})  # the default: the first demo carrier, a number in its style
    first, second = only_order(erp, request.reference).shipments
    dhl, schenker = demo_data.CARRIERS
    assert first.state is ShipmentState.SHIPPED and first.carrier == dhl["name"] == "DHL Paket"
    assert first.tracking_number == demo_data.tracking_number(dhl, int(first.id))
    assert len(first.tracking_number) == 20 and first.tracking_number.startswith("00340434")
    assert second.state is ShipmentState.WAITING and (second.carrier, second.tracking_number) == (None, None)

    driver.ship(request.reference, carrier=schenker["name"], tracking="1806203236")
    shipments = {s.id: s for s in only_order(erp, request.reference).shipments}
    assert (shipments[second.id].carrier, shipments[second.id].tracking_number) == ("DB Schenker", "1806203236")
    # the change feed carries them too
    changes = {c.key: c.shipment for c in erp.changes_since(start).changes if c.kind is ChangeKind.SHIPMENT}
    assert {(s.carrier, s.tracking_number) for k, s in changes.items() if s and k in {
        f"shipment:{first.id}", f"shipment:{second.id}"}} == {
        ("DHL Paket", first.tracking_number), ("DB Schenker", "1806203236")}

    pickup = _accepted(subject, "C-1002", "PLANT-N", [("VLV-3W-DN20-SS", 1)])
    driver.ship(pickup.reference, carrier="")  # collected by the customer: no carrier, no tracking number
    (collected,) = only_order(erp, pickup.reference).shipments
    assert collected.state is ShipmentState.SHIPPED and (collected.carrier, collected.tracking_number) == (None, None)


def test_changes_report_shipments_invoices_stock_and_price_lists_with_stable_versions(subject: ErpUnderTest) -> None:
    erp, driver = subject.erp, subject.driver
    start = erp.changes_since(None).watermark
    request = _accepted(subject, "C-1002", "PLANT-N", [("VLV-3W-DN20-SS", 2)])
    (erp_order,) = erp.orders_for(request.order_id)
    (shipment,) = erp_order.shipments
    key = f"shipment:{shipment.id}"
    waiting = {c.key: c for c in erp.changes_since(start).changes}[key]
    assert waiting.kind is ChangeKind.SHIPMENT and waiting.reference == request.reference
    assert waiting.shipment is not None and waiting.shipment.state is ShipmentState.WAITING

    driver.ship(request.reference)
    driver.post_invoices(request.reference)
    driver.set_stock("SEL-GSK-DN50-PTFE", "PLANT-N", D(275))
    driver.set_price("C-1002", "SEN-TT-PT100", D("41.00"))
    batch = erp.changes_since(start)

    changes = {c.key: c for c in batch.changes}
    shipped = changes[key]
    assert shipped.shipment is not None and shipped.shipment.state is ShipmentState.SHIPPED
    assert shipped.version != waiting.version
    (invoice,) = [c for c in batch.changes if c.kind is ChangeKind.INVOICE and c.reference == request.reference]
    assert invoice.invoice is not None and invoice.invoice.state is InvoiceState.POSTED
    stock = changes["stock:SEL-GSK-DN50-PTFE"]
    assert {(p.plant, p.on_hand) for p in stock.stock} >= {("PLANT-N", D(275))}
    assert "stock:VLV-3W-DN20-SS" in changes  # shipped goods left the shelf
    assert [c for c in batch.changes if c.kind is ChangeKind.PRICE_LIST and "C-1002" in c.account_ids]
    assert erp.prices("C-1002", [("SEN-TT-PT100", D(1))])[0].unit_price == D("41.00")
    assert batch.watermark >= start and batch.watermark.tzinfo is not None

    again = erp.changes_since(start)
    assert {(c.key, c.version) for c in again.changes} >= {(c.key, c.version) for c in batch.changes}
    later = erp.changes_since(batch.watermark)
    assert (key, waiting.version) not in {(c.key, c.version) for c in later.changes}
    assert later.watermark >= batch.watermark

    # what the hub already holds may be left out, never anything else; the watermark does not move back
    held = {(c.key, c.version) for c in batch.changes if c.kind in (ChangeKind.SHIPMENT, ChangeKind.STOCK)}
    skipping = erp.changes_since(start, lambda k, v: (k, v) in held)
    assert {(c.key, c.version) for c in skipping.changes} >= {(c.key, c.version) for c in batch.changes} - held
    assert skipping.watermark == again.watermark


def test_the_change_probe_answers_the_same_until_something_the_hub_follows_moves(subject: ErpUnderTest) -> None:
    erp, driver = subject.erp, subject.driver
    start = erp.changes_since(None).watermark
    request = _accepted(subject, "C-1002", "PLANT-N", [("VLV-3W-DN20-SS", 2)])
    quiet = erp.change_probe(start)
    assert quiet is not None and erp.change_probe(start) == quiet  # nothing moved: the same answer
    driver.ship(request.reference)
    shipped = erp.change_probe(start)
    assert shipped not in (None, quiet)
    driver.post_invoices(request.reference)
    invoiced = erp.change_probe(start)
    assert invoiced not in (None, quiet, shipped)
    driver.set_stock("SEL-GSK-DN50-PTFE", "PLANT-N", D(263))
    assert erp.change_probe(start) not in (None, quiet, shipped, invoiced)
    # a window after everything is quiet
    assert erp.change_probe(erp.changes_since(start).watermark + dt.timedelta(days=1)) == \
        erp.change_probe(erp.changes_since(start).watermark + dt.timedelta(days=1))


def test_the_change_feed_signals_committed_changes_and_is_quiet_otherwise(subject: ErpUnderTest) -> None:
    """Push: an ERP that can signal its changes gives a feed (the twin; Tryton on PostgreSQL with the
    ordersync_changes module and its bus open); one that cannot says so (Tryton on SQLite has no bus)."""
    erp, driver = subject.erp, subject.driver
    feed = erp.change_feed()
    if subject.kind == "tryton":
        assert feed is None
        return
    assert feed is not None
    notices: queue.Queue[ChangeNotice] = queue.Queue()

    def listen() -> None:
        with contextlib.suppress(Exception):  # the feed closed under a wait at the end
            while not stopped.is_set():
                if (notice := feed.wait()) is not None:
                    notices.put(notice)

    stopped = threading.Event()
    threading.Thread(target=listen, daemon=True).start()
    try:
        time.sleep(1.5)  # a new subscription may first hear of changes made just before it
        while not notices.empty():
            notices.get_nowait()
        start = erp.changes_since(None).watermark
        probe = erp.change_probe(start)
        time.sleep(1.0)
        assert notices.empty()  # nothing moved: nothing signalled
        driver.set_stock("SEL-GSK-DN50-PTFE", "PLANT-N", D(271))
        notice = notices.get(timeout=10)
        assert notice.probe_sees and erp.change_probe(start) != probe  # the probe sees what was signalled
        probe = erp.change_probe(start)
        driver.set_price("C-1001", "SEL-GSK-DN50-PTFE", D("1.23"))
        # a change outside Tryton's probe is signalled too, as one it cannot see (the twin's sees all);
        # notices of the stock count's transactions may still be on their way
        deadline = time.monotonic() + 10
        while (notice := notices.get(timeout=max(0.1, deadline - time.monotonic()))).probe_sees:
            if erp.change_probe(start) != probe:
                break
    finally:
        stopped.set()
        feed.close()


def test_nothing_changed_keeps_the_watermark(subject: ErpUnderTest) -> None:
    first = subject.erp.changes_since(None)
    future = first.watermark + dt.timedelta(days=365)
    quiet = subject.erp.changes_since(future)
    assert quiet.changes == () and quiet.watermark == future


# -- shipping short and returns ----------------------------------------------------------------------------

def test_shipping_short_cancels_the_rest_for_good(subject: ErpUnderTest) -> None:
    request = _accepted(subject, "C-1003", "PLANT-N", [("SEN-PX-M18-PNP", 5), ("MOT-IE3-0.75-4P", 1)])

    subject.driver.ship_short(request.reference, {1: D(3)})

    order = only_order(subject.erp, request.reference)
    assert order.state is ErpOrderState.PROCESSING
    assert sorted((s.state.value, [(x.line_no, x.quantity) for x in s.lines]) for s in order.shipments) == [
        ("cancelled", [(1, 2)]), ("shipped", [(1, 3), (2, 1)])]


def _return(request: SalesOrderRequest, lines: list[tuple[int, int]], *, account: str | None = None) -> ReturnRequest:
    """A return request of a fresh hub return of ``request``'s ERP order."""
    return_id = f"rt{uuid.uuid4().hex[:10]}"
    return ReturnRequest(reference=return_reference(return_id, request.plant), return_id=return_id,
                         order_reference=request.reference, account_id=account or request.account_id,
                         plant=request.plant,
                         lines=tuple(ReturnRequestLine(line_no=n, quantity=D(q), reason="damaged") for n, q in lines))


def test_a_return_of_shipped_goods_is_authorized_once_and_reads_back(subject: ErpUnderTest) -> None:
    erp = subject.erp
    request = _accepted(subject, "C-1001", "PLANT-N", [("BRG-6204-2RS", 10), ("SEN-PX-M12-NPN", 4)])
    subject.driver.ship(request.reference, {1: D(6)})
    rma = _return(request, [(1, 4), (2, 1)])

    first = erp.create_return(rma)
    again = erp.create_return(rma)

    assert first.outcome is ReturnOutcome.AUTHORIZED, first
    assert first.erp_return_id and first.erp_return_number and not first.reconciled
    assert again.outcome is ReturnOutcome.AUTHORIZED and again.reconciled
    assert (again.erp_return_id, again.erp_return_number) == (first.erp_return_id, first.erp_return_number)
    assert live_sales(subject, rma.reference) == [(first.erp_return_id, "processing")]
    status = erp.return_status(rma.reference)
    assert status is not None and status.state is ErpReturnState.AUTHORIZED
    assert (status.return_id, status.plant, status.account_id, status.erp_return_id) == (
        rma.return_id, "PLANT-N", "C-1001", first.erp_return_id)
    assert [(x.line_no, x.sku, x.quantity) for x in status.lines] == [(1, "BRG-6204-2RS", 4), (2, "SEN-PX-M12-NPN", 1)]
    assert erp.return_status(return_reference("rtnosuchreturn", "PLANT-N")) is None
    assert [x.quantity for x in only_order(erp, request.reference).lines] == [10, 4]  # the order stays as it was


def test_our_returns_are_listed_by_change_time_and_by_reference_as_return_status_reads_them(
        subject: ErpUnderTest) -> None:
    erp = subject.erp
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)  # margin for the ERP's own clock
    request = _accepted(subject, "C-1001", "PLANT-N", [("BRG-6204-2RS", 10)])
    subject.driver.ship(request.reference)
    rma = _return(request, [(1, 3)])
    assert erp.create_return(rma).outcome is ReturnOutcome.AUTHORIZED

    listed = {r.reference: r for r in erp.returns_since(before)}
    assert listed[rma.reference] == erp.return_status(rma.reference)
    assert request.reference not in listed  # sales are not returns
    assert rma.reference in {r.reference for r in erp.returns_since(None)}
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert rma.reference not in {r.reference for r in erp.returns_since(later)}
    assert [r.reference for r in erp.returns_since(later, [rma.reference, return_reference("rtnone", "PLANT-N")])
            ] == [rma.reference]


def test_a_return_of_more_than_shipped_is_refused_and_creates_nothing(subject: ErpUnderTest) -> None:
    erp = subject.erp
    request = _accepted(subject, "C-1002", "PLANT-S", [("SEN-PX-M12-NPN", 8), ("SEN-PHO-DIFF", 2)])
    before_shipping = _return(request, [(1, 1)])
    early = erp.create_return(before_shipping)
    assert early.outcome is ReturnOutcome.REFUSED and "line 1: 1 is more than the 0 shipped" in early.message, early
    subject.driver.ship(request.reference, {1: D(5)})
    assert erp.create_return(_return(request, [(1, 3)])).outcome is ReturnOutcome.AUTHORIZED

    too_many = _return(request, [(1, 3), (2, 1)])
    no_line = _return(request, [(7, 1)])
    foreign = _return(request, [(1, 1)], account="C-1003")
    unknown = _return(request, [(1, 1)]).model_copy(update={"order_reference": order_reference("ctnoorder", "PLANT-S")})
    refused = {r.reference: erp.create_return(r) for r in (too_many, no_line, foreign, unknown)}

    assert all(r.outcome is ReturnOutcome.REFUSED for r in refused.values()), refused
    assert "line 1: 3 is more than the 5 shipped, of which 3" in refused[too_many.reference].message
    assert "line 2" not in refused[too_many.reference].message  # line 2 shipped in full
    assert "line 7" in refused[no_line.reference].message
    assert "no accepted order" in refused[foreign.reference].message
    assert "no accepted order" in refused[unknown.reference].message
    for r in (before_shipping, too_many, no_line, foreign, unknown):
        assert live_sales(subject, r.reference) == [] and erp.return_status(r.reference) is None
    assert erp.create_return(_return(request, [(1, 2), (2, 2)])).outcome is ReturnOutcome.AUTHORIZED  # the rest


def test_a_returns_receipt_and_credit_read_back_and_show_as_changes(subject: ErpUnderTest) -> None:
    erp, driver = subject.erp, subject.driver
    sku, plant = "VLV-BV-DN25-SS", "PLANT-S"
    request = _accepted(subject, "C-1003", plant, [(sku, 6)])
    driver.ship(request.reference)
    start = erp.changes_since(None).watermark
    rma = _return(request, [(1, 2)])
    assert erp.create_return(rma).outcome is ReturnOutcome.AUTHORIZED
    on_hand = next(p.on_hand for p in erp.availability([sku]) if p.plant == plant)

    def change() -> tuple[str, ErpReturnState]:
        (found,) = [c for c in erp.changes_since(start).changes
                    if c.kind is ChangeKind.RETURN and c.reference == rma.reference]
        assert found.erp_return is not None and found.erp_return.return_id == rma.return_id
        assert found.key.startswith("return:")
        return found.version, found.erp_return.state

    authorized = change()
    assert authorized[1] is ErpReturnState.AUTHORIZED
    driver.receive_return(rma.reference)
    received = change()
    status = erp.return_status(rma.reference)
    assert status is not None and status.state is ErpReturnState.RECEIVED is received[1]
    assert next(p.on_hand for p in erp.availability([sku]) if p.plant == plant) == on_hand + 2
    driver.post_invoices(rma.reference)
    credited = change()
    status = erp.return_status(rma.reference)
    assert status is not None and status.state is ErpReturnState.CREDITED is credited[1]
    assert len({authorized[0], received[0], credited[0]}) == 3
    assert [c for c in erp.changes_since(erp.changes_since(start).watermark).changes
            if c.kind is ChangeKind.RETURN and c.version in (authorized[0], received[0])] == []

