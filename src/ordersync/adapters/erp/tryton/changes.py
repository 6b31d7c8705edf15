"""Polling Tryton for changes: shipments, invoices, stock, price lists and hub orders.

Tryton has no webhooks. Every record carries ``create_date`` and ``write_date`` (naive UTC, taken when
the statement runs), and ``write_date`` stays empty until the first write: "changed since" is therefore
``write_date >= watermark OR create_date >= watermark``. A change's ``version`` is that timestamp plus the
state, so overlapping polls (the caller subtracts an overlap window) yield the same (key, version) for
an unchanged record and the poller deduplicates. The new watermark is the newest timestamp seen, or the
one passed in when nothing changed.

About ten calls per poll, whatever the number of changes; :meth:`ChangeReader.probe` asks in one call
whether a poll would find anything (the poller's idle cost).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ordersync.adapters.erp.erp_common import EPOCH, change_fingerprint, version
from ordersync.adapters.erp.tryton.directory import Directory
from ordersync.adapters.erp.tryton.documents import Documents, stamp
from ordersync.adapters.erp.tryton.returns import Returns
from ordersync.adapters.erp.tryton.rpc import TrytonClient
from ordersync.canonical.v1 import StockPosition
from ordersync.ports.erp import REFERENCE_PREFIX, Change, ChangeBatch, ChangeKind, Known


def _since(watermark: dt.datetime) -> list[Any]:
    return ["OR", ("write_date", ">=", watermark), ("create_date", ">=", watermark)]


class ChangeReader:
    """``changes_since`` of :class:`TrytonErp`; ``availability`` gives the stock positions of SKUs."""

    def __init__(
        self,
        client: TrytonClient,
        directory: Directory,
        documents: Documents,
        availability: Callable[[list[str]], list[StockPosition]],
        returns: Returns | None = None,
    ) -> None:
        self._returns = returns
        self._c = client
        self._dir = directory
        self._docs = documents
        self._availability = availability

    def _search(self, model: str, domain: list[Any], fields: list[str]) -> list[dict[str, Any]]:
        return list(
            self._c.call(
                model,
                "search_read",
                domain,
                0,
                None,
                [("id", "ASC")],
                ["write_date", "create_date", *fields],
                context={"active_test": False},
            )
        )

    def changes_since(self, watermark: dt.datetime | None, known: Known | None = None) -> ChangeBatch:
        """Every change since ``watermark``. Shipments and stock whose (key, version) is ``known`` to the
        hub are left out before their details are read: those reads (moves of a shipment, quantities
        per warehouse) are the expensive part, and overlapping polls would repeat them every second."""
        since = watermark or EPOCH
        known = known or (lambda key, version: False)
        seen: list[dt.datetime] = []
        changes: list[Change] = []
        changes += self._shipments(since, seen, known)
        changes += self._invoices(since, seen)
        changes += self._stock(since, seen, known)
        changes += self._price_lists(since, seen)
        changes += self._orders(since, seen)
        if self._returns is not None:
            changes += self._returns.changed(_since(since), seen, known)
        newest = max(seen, default=since)
        return ChangeBatch(changes=tuple(changes), watermark=max(newest, since))

    #: the probe reads at most this many stamps; a window fuller than that always counts as changed
    PROBE_LIMIT = 500

    def probe(self, watermark: dt.datetime | None) -> str | None:
        """One call: the stock moves changed at or after ``watermark``, or whose shipment (outgoing or
        return) or invoice was. Moves are where almost everything the hub follows shows up: stock,
        confirmed sales and their returns, shipments and their states (a write to a shipment alone, a
        tracking number say, is seen through its moves' shipment), invoices posted or paid (through the
        moves they invoice), and the sale states that follow from those. Price lists and sales without
        moves are not seen: the poller sweeps in full now and then for them. Returns the fingerprint of
        every stamp found, or None for a window fuller than ``PROBE_LIMIT`` (too busy to tell: poll)."""
        since = watermark or EPOCH
        rows = self._c.call(
            "stock.move", "search_read",
            ["OR", ("write_date", ">=", since), ("create_date", ">=", since),
             ("shipment.write_date", ">=", since, "stock.shipment.out"),
             ("shipment.write_date", ">=", since, "stock.shipment.out.return"),
             ("invoice_lines.invoice.write_date", ">=", since)],
            0, self.PROBE_LIMIT, [("id", "ASC")],
            ["write_date", "create_date", "shipment.write_date", "invoice_lines.invoice.write_date"],
            context={"active_test": False})
        if len(rows) >= self.PROBE_LIMIT:
            return None
        return change_fingerprint(sorted(r.items()) for r in rows)

    def _shipments(self, since: dt.datetime, seen: list[dt.datetime], known: Known) -> list[Change]:
        ids = []
        for r in self._search("stock.shipment.out", [_since(since)], ["state"]):
            seen.append(stamp(r))
            if not known(f"shipment:{r['id']}", version(stamp(r), r["state"])):
                ids.append(r["id"])
        rows = self._docs.shipment_rows(ids) if ids else []
        out = []
        for row_id, (reference, shipment) in sorted(self._docs.shipments(rows).items()):
            row = next(r for r in rows if r["id"] == row_id)
            seen.append(stamp(row))
            out.append(
                Change(
                    kind=ChangeKind.SHIPMENT,
                    key=f"shipment:{row_id}",
                    version=version(stamp(row), row["state"]),
                    reference=reference or None,
                    shipment=shipment,
                )
            )
        return out

    def _invoices(self, since: dt.datetime, seen: list[dt.datetime]) -> list[Change]:
        rows = self._docs.invoice_rows([_since(since)])
        out = []
        for row_id, (reference, invoice) in sorted(self._docs.invoices(rows).items()):
            row = next(r for r in rows if r["id"] == row_id)
            seen.append(stamp(row))
            out.append(
                Change(
                    kind=ChangeKind.INVOICE,
                    key=f"invoice:{row_id}",
                    version=version(stamp(row), row["state"]),
                    reference=reference or None,
                    invoice=invoice,
                )
            )
        return out

    def _stock(self, since: dt.datetime, seen: list[dt.datetime], known: Known) -> list[Change]:
        rows = self._search("stock.move", [_since(since)], ["product"])
        latest: dict[str, dt.datetime] = {}
        for row in rows:
            sku = self._dir.snapshot().product_skus.get(row["product"])
            if sku is None:  # not a product the hub sells
                continue
            latest[sku] = max(latest.get(sku, EPOCH), stamp(row))
        seen.extend(latest.values())
        latest = {sku: at for sku, at in latest.items() if not known(f"stock:{sku}", version(at))}
        if not latest:
            return []
        positions: dict[str, list[StockPosition]] = defaultdict(list)
        for position in self._availability(sorted(latest)):
            positions[position.sku].append(position)
        return [
            Change(kind=ChangeKind.STOCK, key=f"stock:{sku}", version=version(latest[sku]), stock=tuple(positions[sku]))
            for sku in sorted(latest)
        ]

    def _price_lists(self, since: dt.datetime, seen: list[dt.datetime]) -> list[Change]:
        latest: dict[int, dt.datetime] = {}
        for row in self._search("product.price_list", [_since(since)], []):
            latest[row["id"]] = max(latest.get(row["id"], EPOCH), stamp(row))
        for row in self._search("product.price_list.line", [_since(since)], ["price_list"]):
            latest[row["price_list"]] = max(latest.get(row["price_list"], EPOCH), stamp(row))
        seen.extend(latest.values())
        if not latest:
            return []
        users: dict[int, list[str]] = defaultdict(list)
        for party in self._dir.parties(reload=True):  # who uses a list is a company value: not searchable
            if party.price_list in latest:
                users[party.price_list].append(party.code)
        return [
            Change(
                kind=ChangeKind.PRICE_LIST,
                key=f"price_list:{pl}",
                version=version(latest[pl]),
                account_ids=tuple(users[pl]),
            )
            for pl in sorted(latest)
        ]

    def _orders(self, since: dt.datetime, seen: list[dt.datetime]) -> list[Change]:
        rows = self._search(
            "sale.sale", [_since(since), ("reference", "like", f"{REFERENCE_PREFIX}-%")], ["reference", "state"]
        )
        seen.extend(stamp(r) for r in rows)
        return [
            Change(
                kind=ChangeKind.ORDER,
                key=f"order:{r['id']}",
                version=version(stamp(r), r["state"]),
                reference=r["reference"],
            )
            for r in rows
        ]
