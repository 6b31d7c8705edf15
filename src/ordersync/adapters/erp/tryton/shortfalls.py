"""Which lines of a sale Tryton's stock check finds short, and by how much.

A stock warning names only the first short line, in words. The hub wants every short line with
numbers, so they are recomputed the way trytond-sale-stock-quantity checks: the forecast quantity at
the warehouse (up to the line's shipping date) minus the lines of *other* sales in quotation or
confirmed state (not yet processed into stock moves), minus earlier lines of the same sale.
Two calls per warehouse and shipping date, one for the competing lines.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Protocol

from ordersync.adapters.erp.erp_common import short_lines
from ordersync.adapters.erp.tryton.directory import Directory
from ordersync.adapters.erp.tryton.rpc import TrytonClient
from ordersync.ports.erp import SalesOrderRequest, Shortfall, SubmitResult


class ShortJob(Protocol):
    """What :func:`shortfalls_of` needs of a job: its index, request, sale and result."""

    index: int
    request: SalesOrderRequest
    sale_id: int | None
    result: SubmitResult | None
    header: dict[str, Any]
    preexisting: bool


def _taken_later(job: ShortJob, batch: Sequence[ShortJob]) -> dict[str, Decimal]:
    """What requests after ``job`` in its batch took (confirmed now) or hold (held quotations) per SKU at
    its warehouse; one after the other, ``job`` came before them, so that was still available to it.
    Sales that existed before the batch (left quotations, accepted ones) were there for ``job`` too."""
    taken: dict[str, Decimal] = defaultdict(Decimal)
    for later in batch:
        if later.index <= job.index or later.preexisting or later.sale_id is None:
            continue
        # still without a result at this point = it went through (confirmed)
        holding = later.result is None or later.result.outcome.value in ("accepted", "credit_hold")
        if holding and later.header.get("warehouse") == job.header["warehouse"]:
            for line in later.request.lines:
                taken[line.sku] += line.quantity
    return taken


def shortfalls_of(
    client: TrytonClient, directory: Directory, jobs: Sequence[ShortJob], batch: Sequence[ShortJob] = ()
) -> dict[int, list[Shortfall]]:
    """``{job.index: [Shortfall, ...]}`` for jobs refused for stock, as seen when each was refused in a
    one-after-the-other run of ``batch`` (the requests after it did not exist yet)."""
    skus = sorted({line.sku for job in jobs for line in job.request.lines})
    product_ids = {directory.product(sku).id: sku for sku in skus}
    forecast: dict[tuple[int, dt.date | None], dict[str, Decimal]] = {}
    for job in jobs:
        key = (job.header["warehouse"], job.header.get("shipping_date"))
        if key in forecast:
            continue
        context: dict[str, Any] = {"locations": [key[0]], "stock_assign": True}
        if key[1] is not None:
            context["stock_date_end"] = key[1]
        rows = client.call("product.product", "read", list(product_ids), ["forecast_quantity"], context=context)
        forecast[key] = {product_ids[r["id"]]: Decimal(str(r["forecast_quantity"])) for r in rows}
    competing: dict[tuple[int, str], list[tuple[int, Decimal]]] = defaultdict(list)
    domain = [
        ("sale.state", "in", ["quotation", "confirmed"]),
        ("product", "in", list(product_ids)),
        ("quantity", ">", 0),
    ]
    for row in client.call(
        "sale.line", "search_read", domain, 0, None, None, ["sale", "product", "quantity", "sale.warehouse"]
    ):
        warehouse = int((row.get("sale.") or {}).get("warehouse") or 0)
        competing[(warehouse, product_ids[row["product"]])].append((row["sale"], Decimal(str(row["quantity"]))))
    out: dict[int, list[Shortfall]] = {}
    for job in jobs:
        warehouse = job.header["warehouse"]
        base = forecast[(warehouse, job.header.get("shipping_date"))]
        later = _taken_later(job, batch)
        available = {
            sku: base.get(sku, Decimal(0))
            - sum((q for sale, q in competing[(warehouse, sku)] if sale != job.sale_id), Decimal(0))
            + later[sku]
            for sku in {line.sku for line in job.request.lines}
        }
        out[job.index] = short_lines(job.request, available)
    return out
