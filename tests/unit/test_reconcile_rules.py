"""Reconciliation rules (ordersync.domain.reconcile) on ERP sales read from the in-memory twin."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.canonical.v1 import InvoiceState, ShipmentState
from ordersync.devkit import demo_data
from ordersync.domain.reconcile import (
    INVOICES,
    LINES,
    MISSING_SALE,
    SHIPMENTS,
    STATE,
    UNEXPECTED_SALE,
    UNKNOWN_SALE,
    FieldDiff,
    HubSale,
    compare,
)
from ordersync.ports.erp import AmendmentRequest, LineChange, SalesOrderLine, SalesOrderRequest, order_reference

MAIN = demo_data.profile("main")
D = Decimal


def accepted(erp: MemoryErp, order_id: str, lines: list[tuple[str, int]], account: str = "C-1001") -> SalesOrderRequest:
    request = SalesOrderRequest(
        reference=order_reference(order_id, "PLANT-N"), order_id=order_id, account_id=account, plant="PLANT-N",
        currency="EUR", lines=tuple(SalesOrderLine(line_no=n, sku=sku, quantity=D(q),
                                                   unit_price=demo_data.contract_price(MAIN, account, sku, q))
                                    for n, (sku, q) in enumerate(lines, 1)))
    (result,) = erp.submit_orders([request])
    assert result.outcome.value == "accepted", result
    return request


def held(erp: MemoryErp, request: SalesOrderRequest) -> HubSale:
    """The hub's side of a sale whose shipment and invoice copies are up to date (the change poller's)."""
    sale = erp.order(request.reference)
    assert sale is not None
    return HubSale(request, shipments={s.id: s.state for s in sale.shipments},
                   invoices={i.id: i.state for i in sale.invoices})


@pytest.fixture
def erp() -> MemoryErp:
    return MemoryErp()


def test_a_hub_sale_the_erp_holds_as_sent_is_no_discrepancy(erp: MemoryErp) -> None:
    request = accepted(erp, "o1", [("SEL-OR-NBR-KIT", 2), ("SEL-GSK-DN50-PTFE", 10)])
    assert compare("main", [held(erp, request)], erp.sales_since(None), known_orders={"o1": "C-1001"}) == []


def test_a_quantity_changed_in_the_erp_is_one_lines_discrepancy_with_both_sides(erp: MemoryErp) -> None:
    request = accepted(erp, "o1", [("SEL-OR-NBR-KIT", 2), ("SEL-GSK-DN50-PTFE", 10)])
    erp.amend_order(AmendmentRequest(reference=request.reference, changes=(LineChange(line_no=2, quantity=D(15)),)))
    hub = held(erp, request)  # the poller saw the shipment's new quantity, not the sale line's

    (found,) = compare("main", [hub], erp.sales_since(None), known_orders={"o1": "C-1001"})

    assert (found.kind, found.key, found.order_id) == (LINES, f"erp:main:lines:{request.reference}", "o1")
    assert found.diffs == (FieldDiff("line 2 quantity", "10", "15"),)
    assert "line 2 quantity: hub 10, ERP 15" in found.summary and not found.settles


def test_a_price_and_a_dropped_line_are_shown_per_field(erp: MemoryErp) -> None:
    request = accepted(erp, "o1", [("SEL-OR-NBR-KIT", 2), ("SEL-GSK-DN50-PTFE", 10)])
    erp.amend_order(AmendmentRequest(reference=request.reference, changes=(LineChange(line_no=1, cancel=True),)))
    cheaper = request.model_copy(update={"lines": (
        request.lines[0], request.lines[1].model_copy(update={"unit_price": D("1.50")}))})

    (found,) = compare("main", [held(erp, cheaper)], erp.sales_since(None), known_orders={"o1": "C-1001"})

    price = request.lines[1].unit_price
    assert found.diffs == (FieldDiff("line 1", f"2 x SEL-OR-NBR-KIT at {request.lines[0].unit_price.normalize():f}",
                                     "—"),
                           FieldDiff("line 2 unit price", "1.5", f"{price.normalize():f}"))


def test_a_sale_gone_from_the_erp_is_missing_and_one_the_hub_never_made_is_unknown(erp: MemoryErp) -> None:
    gone = accepted(erp, "o1", [("SEL-OR-NBR-KIT", 2)])
    stray = accepted(erp, "stray", [("SEL-OR-NBR-KIT", 4)], account="C-1002")
    erp.delete_sale(gone.reference)

    found = compare("main", [HubSale(gone)], erp.sales_since(None), known_orders={"o1": "C-1001"})

    assert [(d.kind, d.subject, d.order_id) for d in found] == [(MISSING_SALE, gone.reference, "o1"),
                                                               (UNKNOWN_SALE, stray.reference, None)]
    assert found[1].account_id == "C-1002" and "no hub order stray" in found[1].summary


def test_a_sale_for_a_plant_the_hub_never_had_accepted_is_unexpected(erp: MemoryErp) -> None:
    extra = accepted(erp, "o1", [("SEL-OR-NBR-KIT", 2)])
    (found,) = compare("main", [], erp.sales_since(None), known_orders={"o1": "C-1001"}, expected={"o1": set()})
    assert (found.kind, found.subject, found.account_id) == (UNEXPECTED_SALE, extra.reference, "C-1001")
    # while the hub still expects it (a quotation on hold, a submission in flight) it is none
    assert compare("main", [], erp.sales_since(None), known_orders={"o1": "C-1001"},
                   expected={"o1": {extra.reference}}) == []


def test_shipment_and_invoice_states_compare_and_settle(erp: MemoryErp) -> None:
    request = accepted(erp, "o1", [("SEL-OR-NBR-KIT", 2)])
    erp.ship(request.reference)
    erp.post_invoices(request.reference)
    (sale,) = erp.sales_since(None)
    (shipment,), (invoice,) = sale.shipments, sale.invoices
    agreeing = HubSale(request, shipments={shipment.id: ShipmentState.DELIVERED},
                       invoices={invoice.id: InvoiceState.DISPUTED})
    assert compare("main", [agreeing], [sale], known_orders={"o1": "C-1001"}) == []

    behind = HubSale(request, shipments={shipment.id: ShipmentState.WAITING})
    found = compare("main", [behind], [sale], known_orders={"o1": "C-1001"})
    assert [(d.kind, d.diffs, d.settles) for d in found] == [
        (SHIPMENTS, (FieldDiff(f"shipment {shipment.id}", "waiting", "shipped"),), True),
        (INVOICES, (FieldDiff(f"invoice {invoice.id}", "—", "posted"),), True)]


def test_a_cancelled_hub_order_with_a_live_sale_is_a_state_discrepancy(erp: MemoryErp) -> None:
    request = accepted(erp, "o1", [("SEL-OR-NBR-KIT", 2)])
    (found,) = compare("main", [HubSale(request, cancelled=True)], erp.sales_since(None),
                       known_orders={"o1": "C-1001"})
    assert (found.kind, found.diffs[0].hub, found.settles) == (STATE, "cancelled", True)


def test_a_waiting_shipment_the_erp_replaced_is_no_discrepancy_but_a_picked_one_gone_is(erp: MemoryErp) -> None:
    request = accepted(erp, "o1", [("SEL-OR-NBR-KIT", 2)])
    sale = erp.order(request.reference)
    assert sale is not None
    (current,) = sale.shipments
    replaced = HubSale(request, shipments={"old": ShipmentState.WAITING, current.id: current.state})
    assert compare("main", [replaced], [sale], known_orders={"o1": "C-1001"}) == []

    vanished = HubSale(request, shipments={"old": ShipmentState.PICKED, current.id: current.state})
    (found,) = compare("main", [vanished], [sale], known_orders={"o1": "C-1001"})
    assert (found.kind, found.diffs) == (SHIPMENTS, (FieldDiff("shipment old", "picked", "—"),))


def test_a_sale_amended_to_nothing_is_a_cancelled_order_on_both_sides(erp: MemoryErp) -> None:
    request = accepted(erp, "o1", [("SEL-OR-NBR-KIT", 2), ("SEL-GSK-DN50-PTFE", 10)])
    erp.amend_order(AmendmentRequest(reference=request.reference, changes=(
        LineChange(line_no=1, cancel=True), LineChange(line_no=2, cancel=True))))
    sales = erp.sales_since(None)
    assert compare("main", [HubSale(request, cancelled=True)], sales, known_orders={"o1": "C-1001"}) == []

    (found,) = compare("main", [held(erp, request)], sales, known_orders={"o1": "C-1001"})
    assert (found.kind, found.diffs[0].hub) == (STATE, "accepted")
    assert found.diffs[0].erp.endswith("every line at 0")


def test_a_return_received_in_the_erp_that_the_hub_still_has_approved_settles_as_a_state_discrepancy(
        erp: MemoryErp) -> None:
    from ordersync.canonical.v1 import ReturnState
    from ordersync.domain.reconcile import RETURN_STATE, HubReturn, compare_returns
    from ordersync.ports.erp import ReturnRequest, ReturnRequestLine, return_reference

    request = accepted(erp, "o1", [("SEL-OR-NBR-KIT", 2)])
    erp.ship(request.reference)
    rma = ReturnRequest(reference=return_reference("r1", "PLANT-N"), return_id="r1", order_reference=request.reference,
                        account_id="C-1001", plant="PLANT-N", lines=(ReturnRequestLine(line_no=1, quantity=D(1)),))
    erp.create_return(rma)
    hub = [HubReturn(rma.reference, "r1", "o1", "C-1001", ReturnState.APPROVED)]
    assert compare_returns("main", hub, erp.returns_since(None), known_returns={"r1": "C-1001"}) == []

    erp.receive_return(rma.reference)
    (found,) = compare_returns("main", hub, erp.returns_since(None), known_returns={"r1": "C-1001"})
    assert (found.kind, found.diffs, found.settles) == (
        RETURN_STATE, (FieldDiff("state", "approved", "received (received)"),), True)
    # a return the ERP refused (nothing there) is no missing return
    refused = [HubReturn(return_reference("r2", "PLANT-N"), "r2", "o1", "C-1001", ReturnState.REJECTED)]
    assert compare_returns("main", refused, [], known_returns={}) == []
