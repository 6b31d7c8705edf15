"""The fulfillment rules as pure functions: where an order stands, forward-only moves, stale reports,
two sources of one parcel, and discrepancies."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

from ordersync.canonical.v1 import InvoiceState, OrderState, ShipmentState
from ordersync.domain.fulfillment import InvoiceFacts, ShipmentFacts, discrepancies, moves, progress, supersedes

S, Sh = OrderState, ShipmentState


def ship(key: str, state: ShipmentState, source: str = "erp", **lines: int) -> ShipmentFacts:
    return ShipmentFacts(key, source, state, {int(n[1:]): D(q) for n, q in lines.items()}, key)


def test_the_target_follows_the_facts_and_invoiced_needs_everything_shipped_and_billed() -> None:
    ordered = {1: D(10), 2: D(5), 3: D(0)}  # line 3 was cancelled by an amendment
    assert progress(ordered, [ship("a", Sh.WAITING, l1=10, l2=5)], []).target is S.ACCEPTED
    assert progress(ordered, [ship("a", Sh.PICKED, l1=10, l2=5)], []).target is S.IN_FULFILLMENT
    partial = progress(ordered, [ship("a", Sh.SHIPPED, l1=4), ship("b", Sh.WAITING, l1=6, l2=5)], [])
    assert partial.target is S.PARTIALLY_SHIPPED and partial.reasons[S.PARTIALLY_SHIPPED] == "4 of 15 units shipped"
    billed = [InvoiceFacts("i", InvoiceState.POSTED, {1: D(10), 2: D(5)})]
    assert progress(ordered, [ship("a", Sh.SHIPPED, l1=4)], billed).target is S.PARTIALLY_SHIPPED
    done = [ship("a", Sh.SHIPPED, l1=4), ship("b", Sh.DELIVERED, l1=6, l2=5)]
    assert progress(ordered, done, []).target is S.SHIPPED
    assert progress(ordered, done, billed).target is S.INVOICED
    credit = InvoiceFacts("c", InvoiceState.POSTED, {2: D(-5)})
    assert progress(ordered, done, [*billed, credit]).target is S.SHIPPED
    assert progress(ordered, done, [InvoiceFacts("i", InvoiceState.DRAFT, {1: D(10), 2: D(5)})]).target is S.SHIPPED


def test_two_sources_reporting_the_same_parcel_count_it_once() -> None:
    ordered = {1: D(10)}
    both = [ship("erp", Sh.SHIPPED, l1=6), ship("wms", Sh.IN_TRANSIT, source="wms", l1=6)]
    p = progress(ordered, both, [])
    assert p.shipped == {1: D(6)} and p.target is S.PARTIALLY_SHIPPED
    ahead = [ship("erp", Sh.SHIPPED, l1=6), ship("w1", Sh.SHIPPED, "wms", l1=6), ship("w2", Sh.SHIPPED, "wms", l1=4)]
    assert progress(ordered, ahead, []).target is S.SHIPPED  # the warehouse has seen more than the ERP


def test_moves_go_forward_only_and_record_shipped_on_the_way_to_invoiced() -> None:
    assert moves(S.ACCEPTED, S.SHIPPED) == [S.SHIPPED]
    assert moves(S.ACCEPTED, S.INVOICED) == [S.SHIPPED, S.INVOICED]
    assert moves(S.PARTIALLY_SHIPPED, S.INVOICED) == [S.SHIPPED, S.INVOICED]
    assert moves(S.SHIPPED, S.INVOICED) == [S.INVOICED]
    assert moves(S.SHIPPED, S.PARTIALLY_SHIPPED) == [] and moves(S.INVOICED, S.SHIPPED) == []
    assert moves(S.ON_HOLD, S.SHIPPED) == [] and moves(S.CANCELLED, S.SHIPPED) == []


def test_a_late_report_of_an_earlier_state_is_stale() -> None:
    t0 = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
    t1 = t0 + dt.timedelta(minutes=5)
    assert supersedes(None, None, Sh.PICKED, t0)
    assert supersedes(Sh.PICKED, t0, Sh.SHIPPED, t1) and not supersedes(Sh.SHIPPED, t1, Sh.PICKED, t1)
    assert supersedes(Sh.WAITING, None, Sh.CANCELLED, None) and not supersedes(Sh.SHIPPED, None, Sh.CANCELLED, None)
    assert supersedes(Sh.IN_TRANSIT, t0, Sh.EXCEPTION, t1) and supersedes(Sh.EXCEPTION, t0, Sh.IN_TRANSIT, t1)
    assert not supersedes(Sh.EXCEPTION, t1, Sh.IN_TRANSIT, t0)  # same rank: the later report wins
    assert not supersedes(Sh.DELIVERED, t0, Sh.IN_TRANSIT, t1)


def test_discrepancies_name_short_over_and_unknown_lines_with_stable_keys() -> None:
    ordered = {1: D(10), 2: D(5)}
    skus = {1: "BRG-6204-2RS", 2: "FIT-ELB-G12-SS"}
    waiting_rest = [ship("a", Sh.SHIPPED, l1=6, l2=5), ship("b", Sh.WAITING, l1=4)]
    assert discrepancies(ordered, skus, waiting_rest) == []
    given_up = [ship("a", Sh.SHIPPED, l1=6, l2=7, l9=1), ship("b", Sh.CANCELLED, l1=4)]
    found = {d.key: d.summary for d in discrepancies(ordered, skus, given_up)}
    assert found == {
        "unknown_line:9": "a lists line 9, which the order does not have",
        "short:1": "line 1 (BRG-6204-2RS): 6 of 10 shipped and the rest was cancelled (b)",
        "over:2": "line 2 (FIT-ELB-G12-SS): 7 shipped, 5 ordered (2 too many)",
    }
    again = [*given_up, ship("c", Sh.WAITING, l1=4)]  # a new shipment for the rest: not short any more
    assert "short:1" not in {d.key for d in discrepancies(ordered, skus, again)}
