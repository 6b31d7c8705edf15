"""Turning sales order requests into Tryton sale values, and comparing them with a sale left behind.

Pure functions over the cached :class:`Directory`: no RPC here (except a directory reload on a miss).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp.erp_common import shipping_date
from ordersync.adapters.erp.tryton.directory import Directory, PartyRow
from ordersync.ports.erp import SalesOrderRequest, SubmitOutcome, SubmitResult, UnknownItem


@dataclass(eq=False)  # identity: two jobs are never "equal"
class Job:
    """One request on its way through a submission, and what happened to it so far."""

    index: int
    request: SalesOrderRequest
    party: PartyRow | None = None
    header: dict[str, Any] = field(default_factory=dict)  # sale fields without lines
    lines: list[dict[str, Any]] = field(default_factory=list)  # sale.line values by request line order
    suspect: str | None = None  # a quantity Tryton will refuse (minimum / pack): created alone
    sale_id: int | None = None
    reconciled: bool = False
    preexisting: bool = False  # found as a quotation or accepted: it was there before this submission
    result: SubmitResult | None = None
    message: str = ""

    @property
    def reference(self) -> str:
        return self.request.reference

    @property
    def amount(self) -> Decimal:
        """Untaxed amount: what Tryton's credit check adds to the party's exposure."""
        return sum((ln.quantity * ln.unit_price for ln in self.request.lines), Decimal(0))

    @property
    def open(self) -> bool:
        return self.result is None

    def finish(self, outcome: SubmitOutcome, message: str = "", **extra: Any) -> None:
        """Settle the job's result (the ERP order number is filled in at the end)."""
        self.result = SubmitResult(
            reference=self.reference,
            outcome=outcome,
            message=message,
            erp_order_id=str(self.sale_id) if self.sale_id else None,
            reconciled=self.reconciled,
            **extra,
        )


def prepare(job: Job, directory: Directory, today: dt.date) -> None:
    """Fill ``job.header``/``job.lines`` from the request, or settle it as rejected (unknown or inactive
    account, unknown plant, ship-to, currency or SKU: retrying cannot help)."""
    r = job.request
    try:
        party = directory.party(r.account_id)
        if not party.active:
            job.finish(SubmitOutcome.REJECTED, f"account {r.account_id!r} is inactive in the ERP")
            return
        warehouse = directory.warehouse(r.plant)
        ship_to = directory.ship_to(party, r.ship_to_id)
        currency = directory.currency_id(r.currency or directory.currency)
        products = [directory.product(line.sku) for line in r.lines]
    except UnknownItem as exc:
        job.finish(SubmitOutcome.REJECTED, f"the ERP does not know {exc.kind} {exc.key!r}")
        return
    if not r.lines:
        job.finish(SubmitOutcome.REJECTED, "an order needs at least one line")
        return
    inactive = [p.sku for p in products if not p.active]
    if inactive:
        job.finish(SubmitOutcome.REJECTED, f"products not sold any more: {', '.join(inactive)}")
        return
    job.party = party
    job.header = {
        "party": party.id,
        "reference": r.reference,
        "company": directory.company,
        "currency": currency,
        "warehouse": warehouse.id,
        "shipment_address": ship_to.id,
        "invoice_address": directory.invoice_address(party, ship_to).id,
        "price_list": party.price_list,
        "payment_term": party.payment_term,
        "description": r.buyer_po_number or None,
        "shipping_date": shipping_date([ln.promised_date for ln in r.lines], today),
    }
    # raw create runs no on_change: unit and price are sent explicitly (the hub priced the order)
    job.lines = [
        {
            "type": "line",
            "sequence": line.line_no,
            "product": product.id,
            "quantity": float(line.quantity),
            "unit": product.unit,
            "unit_price": line.unit_price,
        }
        for line, product in zip(r.lines, products, strict=True)
    ]
    problems = [
        p for p in (prod.quantity_problem(ln.quantity) for prod, ln in zip(products, r.lines, strict=True)) if p
    ]
    job.suspect = "; ".join(problems) or None


def create_values(job: Job) -> dict[str, Any]:
    return {**job.header, "lines": [["create", job.lines]]}


_HEADER_COMPARED = ("party", "warehouse", "shipment_address", "shipping_date", "description")


def reconcile_values(job: Job, sale: Mapping[str, Any], lines: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The ``write`` values that make a draft sale left behind match the request, None if it does already.
    Lines are matched by sequence (the hub line number)."""
    values: dict[str, Any] = {
        f: job.header[f] for f in _HEADER_COMPARED if (sale.get(f) or None) != (job.header[f] or None)
    }
    existing = {ln["sequence"]: ln for ln in lines if ln.get("type", "line") == "line"}
    wanted = {ln["sequence"]: ln for ln in job.lines}
    actions: list[Any] = []
    stale = [ln["id"] for ln in lines if ln["sequence"] not in wanted or ln.get("type", "line") != "line"]
    if stale:
        actions.append(["delete", stale])
    new = [vals for seq, vals in wanted.items() if seq not in existing]
    if new:
        actions.append(["create", new])
    for seq, vals in wanted.items():
        line = existing.get(seq)
        if line is None:
            continue
        same = (
            line["product"] == vals["product"]
            and Decimal(str(line["quantity"])) == Decimal(str(vals["quantity"]))
            and Decimal(line["unit_price"] or 0) == Decimal(vals["unit_price"])
        )
        if not same:
            actions.append(["write", [line["id"]], {k: vals[k] for k in ("product", "quantity", "unit", "unit_price")}])
    if actions:
        values["lines"] = actions
    return values or None
