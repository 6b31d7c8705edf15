"""Choosing the sale of a reference, and cancelling a held one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ordersync.adapters.erp.tryton.rpc import TrytonClient

# Tryton does not make references unique: when an old race left several sales for one reference, the
# hub's order is the most advanced one (then the oldest)
STATE_RANK = {"cancelled": 0, "draft": 1, "quotation": 2, "confirmed": 3, "processing": 3, "done": 3}


def best_sale(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The sale that stands for a reference among ``rows`` (all with that reference), or None."""
    return max(rows, key=lambda r: (STATE_RANK[r["state"]], -r["id"]), default=None)


def cancel_sale(client: TrytonClient, reference: str) -> bool:
    """Cancel the draft or quotation of ``reference``; True if it is cancelled now (or was already)."""
    rows = client.call("sale.sale", "search_read", [("reference", "=", reference)], 0, None, [("id", "ASC")], ["state"])
    sale = best_sale(rows)
    if sale is None:
        return False
    if sale["state"] == "cancelled":
        return True
    if sale["state"] not in ("draft", "quotation"):
        return False
    client.call("sale.sale", "cancel", [sale["id"]])
    return True
