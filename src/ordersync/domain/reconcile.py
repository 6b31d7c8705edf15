"""Reconciliation rules: what the hub holds of an order's ERP sales against what the ERP says, as
discrepancies with both sides shown field by field.

Pure comparison; reading both sides and opening cases is :mod:`ordersync.flows.reconcile`. One hub order
has one ERP sale per plant (reference ``OS-<order>-<plant>``); each sale is compared on its own:

- ``missing_sale``: the hub holds an accepted sale the ERP does not have (deleted, or renamed);
- ``unknown_sale``: the ERP has a live sale with our reference prefix and no hub order of that id;
- ``unexpected_sale``: the hub order exists but never had the ERP accept a sale for that plant;
- ``lines``: a line's SKU, quantity or unit price differs, or a line is on one side only;
- ``state``: the hub order is cancelled and the sale is not, or the sale is cancelled and the order is not;
- ``shipments`` / ``invoices``: a document's state differs, or a document is on one side only;
- ``missing_return`` / ``unknown_return`` / ``return_state``: the same for returns (reference ``RMA-<return>-<plant>``).

Every discrepancy has a stable :attr:`Discrepancy.key` (source, kind, subject) so that a run finding it
again updates the case it opened instead of opening another. The ``shipments``, ``invoices`` and ``state``
kinds may be the hub's change poller running behind the ERP for a moment: they :attr:`~Discrepancy.settles`
(a case opens only when the discrepancy outlives a grace period).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from ordersync.canonical.erp import ErpOrder, ErpOrderState, ErpReturn, ErpReturnState, SalesOrderRequest
from ordersync.canonical.v1 import InvoiceState, ReturnState, ShipmentState

MISSING_SALE = "missing_sale"
UNKNOWN_SALE = "unknown_sale"
UNEXPECTED_SALE = "unexpected_sale"
LINES = "lines"
STATE = "state"
SHIPMENTS = "shipments"
INVOICES = "invoices"
MISSING_RETURN = "missing_return"
UNKNOWN_RETURN = "unknown_return"
RETURN_STATE = "return_state"
#: kinds that may be the hub's change poller lagging behind the ERP: they open a case only once settled
LAGGING = frozenset({STATE, SHIPMENTS, INVOICES, RETURN_STATE})
#: what an ERP return's state means for the hub's return (as the hub's returns flow reads it)
RETURN_STATES: dict[ErpReturnState, ReturnState] = {
    ErpReturnState.AUTHORIZED: ReturnState.APPROVED,
    ErpReturnState.RECEIVED: ReturnState.RECEIVED,
    ErpReturnState.CREDITED: ReturnState.CREDITED,
    ErpReturnState.CANCELLED: ReturnState.REJECTED,
}
NONE = "—"  # a side that has nothing
S = TypeVar("S", ShipmentState, InvoiceState)

#: hub shipment states that agree with an ERP state (carrier events move the hub beyond "shipped")
_SHIPMENT_AGREES: dict[ShipmentState, frozenset[ShipmentState]] = {
    ShipmentState.SHIPPED: frozenset({ShipmentState.SHIPPED, ShipmentState.IN_TRANSIT, ShipmentState.DELIVERED,
                                      ShipmentState.EXCEPTION}),
}
#: a waiting shipment the ERP no longer has was replaced by it (an amendment recomputes waiting shipments, and a
#: deletion is no change the poller can see): the hub's stale copy is no discrepancy
_SHIPMENT_REPLACED = frozenset({ShipmentState.WAITING})
#: a disputed invoice is the hub's own state of a posted (or meanwhile paid) one
_INVOICE_AGREES: dict[InvoiceState, frozenset[InvoiceState]] = {
    InvoiceState.POSTED: frozenset({InvoiceState.POSTED, InvoiceState.DISPUTED}),
    InvoiceState.PAID: frozenset({InvoiceState.PAID, InvoiceState.DISPUTED}),
}


@dataclass(frozen=True)
class FieldDiff:
    """One field on which the sides differ: the hub's value and the ERP's (or the channel's)."""

    field: str
    hub: str
    erp: str


@dataclass(frozen=True)
class Discrepancy:
    """One thing on which the hub and another system disagree. ``source`` is ``erp:<name>`` for the ERP
    comparison, the channel's name for a channel's own; ``subject`` what it is about (an ERP reference, a
    document id)."""

    source: str
    kind: str
    subject: str
    order_id: str | None
    account_id: str | None
    diffs: tuple[FieldDiff, ...]
    settles: bool = False

    @property
    def key(self) -> str:
        return f"{self.source}:{self.kind}:{self.subject}"

    @property
    def summary(self) -> str:
        shown = "; ".join(f"{d.field}: hub {d.hub}, {self.other} {d.erp}" for d in self.diffs[:6])
        more = f" (+{len(self.diffs) - 6} more)" if len(self.diffs) > 6 else ""
        return f"{self.kind.replace('_', ' ')} {self.subject}: {shown}{more}"

    @property
    def other(self) -> str:
        """What the other side is called in the summary."""
        return "ERP" if self.source.startswith("erp:") else self.source


@dataclass(frozen=True)
class HubSale:
    """What the hub holds of one ERP sale: the request as it would be sent now (lines at the hub's
    quantities and prices), whether the order is cancelled, and its copies of the sale's shipments and
    invoices (document id -> state)."""

    request: SalesOrderRequest
    cancelled: bool = False
    shipments: Mapping[str, ShipmentState] = field(default_factory=dict)
    invoices: Mapping[str, InvoiceState] = field(default_factory=dict)


def compare(erp: str, hub: Sequence[HubSale], erp_sales: Iterable[ErpOrder], *,
            known_orders: Mapping[str, str], expected: Mapping[str, set[str]] | None = None) -> list[Discrepancy]:
    """Every discrepancy between the hub's ``hub`` sales and the ERP's ``erp_sales`` of ERP ``erp``.

    ``known_orders``: hub order id -> account of every hub order an ERP sale in ``erp_sales`` names (an
    ERP sale of an order not in it is ``unknown_sale``); ``expected``: hub order id -> references the hub
    expects at all for that order (default: those in ``hub``), so that a sale the hub is still submitting
    or holds as a quotation is not ``unexpected_sale``."""
    source = f"erp:{erp}"
    by_reference = {s.reference: s for s in erp_sales}
    expected = expected if expected is not None else _expected(hub)
    out: list[Discrepancy] = []
    for sale in hub:
        req = sale.request
        found = by_reference.get(req.reference)
        if found is None:
            out.append(Discrepancy(source, MISSING_SALE, req.reference, req.order_id, req.account_id, (
                FieldDiff("sale", f"accepted ({len(req.lines)} line(s))", "no sale with this reference"),)))
            continue
        out += _compare_sale(source, sale, found)
    for reference, found in sorted(by_reference.items()):
        if found.state is ErpOrderState.CANCELLED or reference in {s.request.reference for s in hub}:
            continue
        if found.order_id not in known_orders:
            out.append(Discrepancy(source, UNKNOWN_SALE, reference, None, found.account_id, (
                FieldDiff("order", f"no hub order {found.order_id}",
                          f"sale {found.erp_order_number or found.erp_order_id} ({found.state.value}, "
                          f"{len(found.lines)} line(s), account {found.account_id})"),)))
        elif reference not in expected.get(found.order_id, set()):
            out.append(Discrepancy(source, UNEXPECTED_SALE, reference, found.order_id,
                                   known_orders[found.order_id], (
                FieldDiff("sale", "not accepted for this plant",
                          f"sale {found.erp_order_number or found.erp_order_id} ({found.state.value})"),)))
    return out


def _expected(hub: Sequence[HubSale]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for sale in hub:
        out.setdefault(sale.request.order_id, set()).add(sale.request.reference)
    return out


def _compare_sale(source: str, sale: HubSale, found: ErpOrder) -> list[Discrepancy]:
    req = sale.request
    out: list[Discrepancy] = []

    def add(kind: str, diffs: list[FieldDiff], *, settles: bool = False) -> None:
        if diffs:
            out.append(Discrepancy(source, kind, req.reference, req.order_id, req.account_id, tuple(diffs), settles))

    # a confirmed sale cannot be cancelled in the ERP: the hub cancels one by amending every line to 0
    erp_cancelled = found.state is ErpOrderState.CANCELLED or not any(ln.quantity for ln in found.lines)
    if sale.cancelled != erp_cancelled:
        erp_state = found.state.value if found.state is ErpOrderState.CANCELLED or not erp_cancelled \
            else f"{found.state.value}, every line at 0"
        add(STATE, [FieldDiff("state", "cancelled" if sale.cancelled else "accepted", erp_state)], settles=True)
    if sale.cancelled or erp_cancelled:
        return out  # the lines of a cancelled order or sale do not matter any more
    add(LINES, line_diffs(req, found))
    add(SHIPMENTS, _document_diffs("shipment", sale.shipments, {s.id: s.state for s in found.shipments},
                                   _SHIPMENT_AGREES, _SHIPMENT_REPLACED), settles=True)
    add(INVOICES, _document_diffs("invoice", sale.invoices, {i.id: i.state for i in found.invoices},
                                  _INVOICE_AGREES), settles=True)
    return out


def line_diffs(request: SalesOrderRequest, found: ErpOrder) -> list[FieldDiff]:
    """Line by line number: SKU, quantity and unit price (an ERP line at quantity 0 is a cancelled one)."""
    hub = {ln.line_no: (ln.sku, ln.quantity, ln.unit_price) for ln in request.lines if ln.quantity}
    erp = {ln.line_no: (ln.sku, ln.quantity, ln.unit_price) for ln in found.lines if ln.quantity}
    diffs = []
    for line_no in sorted(hub.keys() | erp.keys()):
        mine, theirs = hub.get(line_no), erp.get(line_no)
        if mine is None or theirs is None:
            diffs.append(FieldDiff(f"line {line_no}", _line(mine), _line(theirs)))
            continue
        for name, a, b in zip(("sku", "quantity", "unit price"), mine, theirs, strict=True):
            if a != b:
                diffs.append(FieldDiff(f"line {line_no} {name}", _text(a), _text(b)))
    return diffs


def _line(values: tuple[str, Decimal, Decimal] | None) -> str:
    if values is None:
        return NONE
    sku, quantity, price = values
    return f"{_text(quantity)} x {sku} at {_text(price)}"


def _text(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def _document_diffs(what: str, hub: Mapping[str, S], erp: Mapping[str, S], agrees: Mapping[S, frozenset[S]],
                    replaced: frozenset[S] = frozenset()) -> list[FieldDiff]:
    diffs = []
    for doc_id in sorted(hub.keys() | erp.keys()):
        mine, theirs = hub.get(doc_id), erp.get(doc_id)
        if theirs is not None and mine is not None and mine in agrees.get(theirs, frozenset({theirs})):
            continue
        if theirs is None and mine in replaced:
            continue
        diffs.append(FieldDiff(f"{what} {doc_id}", mine.value if mine else NONE, theirs.value if theirs else NONE))
    return diffs


@dataclass(frozen=True)
class HubReturn:
    """What the hub holds of one ERP return: its reference, the hub return, the order and account, the state."""

    reference: str
    return_id: str
    order_id: str | None
    account_id: str | None
    state: ReturnState


def compare_returns(erp: str, hub: Sequence[HubReturn], erp_returns: Iterable[ErpReturn], *,
                    known_returns: Mapping[str, str]) -> list[Discrepancy]:
    """Every discrepancy between the hub's returns ``hub`` and the ERP's ``erp_returns``. ``known_returns``:
    hub return id -> account of every hub return an ERP return in ``erp_returns`` names."""
    source = f"erp:{erp}"
    by_reference = {r.reference: r for r in erp_returns}
    mine = {r.reference for r in hub}
    out: list[Discrepancy] = []
    for part in hub:
        found = by_reference.get(part.reference)
        if found is None:
            if part.state is not ReturnState.REJECTED:
                out.append(Discrepancy(source, MISSING_RETURN, part.reference, part.order_id, part.account_id, (
                    FieldDiff("return", part.state.value, "no return with this reference"),)))
            continue
        theirs = RETURN_STATES.get(found.state)  # a pending return means nothing yet
        if theirs is not None and theirs is not part.state:
            out.append(Discrepancy(source, RETURN_STATE, part.reference, part.order_id, part.account_id, (
                FieldDiff("state", part.state.value, f"{theirs.value} ({found.state.value})"),), settles=True))
    for reference, found in sorted(by_reference.items()):
        if reference in mine or found.state is ErpReturnState.CANCELLED:
            continue
        if found.return_id not in known_returns:
            out.append(Discrepancy(source, UNKNOWN_RETURN, reference, None, found.account_id, (
                FieldDiff("return", f"no hub return {found.return_id}",
                          f"return {found.erp_return_number or found.erp_return_id} ({found.state.value}, "
                          f"{len(found.lines)} line(s), account {found.account_id})"),)))
    return out
