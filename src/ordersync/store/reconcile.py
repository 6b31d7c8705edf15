"""What reconciliation reads of the hub (orders with ERP sales, their shipment and invoice copies) and the
findings it keeps (:data:`~ordersync.store.schema.reconcile_findings`), as plain queries."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select, update

from ordersync.canonical.v1 import InvoiceState, OrderState, ReturnState, ShipmentState
from ordersync.domain.order.aggregate import OrderRecord, load_record
from ordersync.domain.reconcile import FieldDiff, HubReturn
from ordersync.store.schema import erp_returns, invoices, orders, reconcile_findings, return_requests, shipments

#: hub order states in which the order's ERP sales exist for good (or, cancelled, should be cancelled)
SETTLED_STATES = (OrderState.ACCEPTED, OrderState.IN_FULFILLMENT, OrderState.PARTIALLY_SHIPPED, OrderState.SHIPPED,
                  OrderState.INVOICED, OrderState.CLOSED, OrderState.CANCELLED)


def _record(row: Sequence[Any]) -> OrderRecord:
    return load_record(row[0], OrderState(row[1]), row[2], row[3])


def settled_orders(conn: Connection, since: dt.datetime | None, page: int) -> Iterator[OrderRecord]:
    """Hub orders in :data:`SETTLED_STATES` (updated at or after ``since``), by id, read ``page`` at a time."""
    o = orders.c
    last = ""
    while True:
        query = (select(o.id, o.body, o.state, o.version, o.data)
                 .where(o.state.in_([s.value for s in SETTLED_STATES]), o.id > last).order_by(o.id).limit(page))
        if since is not None:
            query = query.where(o.updated_at >= since)
        rows = conn.execute(query).all()
        for row in rows:
            yield _record(row[1:])
        if len(rows) < page:
            return
        last = rows[-1][0]


def orders_by_id(conn: Connection, ids: Sequence[str], page: int = 500) -> dict[str, OrderRecord]:
    """The hub orders among ``ids`` (any state)."""
    o = orders.c
    out: dict[str, OrderRecord] = {}
    wanted = sorted(set(ids))
    for i in range(0, len(wanted), page):
        for row in conn.execute(select(o.id, o.body, o.state, o.version, o.data)
                                .where(o.id.in_(wanted[i:i + page]))):
            out[row[0]] = _record(row[1:])
    return out


@dataclass(frozen=True)
class Documents:
    """The hub's copies of an ERP's shipments and invoices, by sale reference: document id -> state."""

    shipments: dict[str, dict[str, ShipmentState]]
    invoices: dict[str, dict[str, InvoiceState]]


def documents(conn: Connection, erp: str, order_ids: Sequence[str], page: int = 500) -> Documents:
    """The shipments and invoices the hub holds of ERP ``erp`` for ``order_ids``."""
    out = Documents({}, {})
    wanted = sorted(set(order_ids))
    s, i = shipments.c, invoices.c
    for n in range(0, len(wanted), page):
        chunk = wanted[n:n + page]
        for ref, doc_id, state in conn.execute(select(s.reference, s.shipment_id, s.state)
                                               .where(s.erp == erp, s.order_id.in_(chunk))):
            out.shipments.setdefault(ref or "", {})[doc_id] = ShipmentState(state)
        for ref, doc_id, state in conn.execute(select(i.reference, i.invoice_id, i.state)
                                               .where(i.erp == erp, i.order_id.in_(chunk))):
            out.invoices.setdefault(ref or "", {})[doc_id] = InvoiceState(state)
    return out


def hub_returns(conn: Connection, erp: str, *, since: dt.datetime | None = None,
                references: Sequence[str] | None = None, page: int = 500) -> list[HubReturn]:
    """The hub's ERP returns of ``erp``: those updated at or after ``since`` (all with None), or with
    ``references`` only."""
    e, r = erp_returns.c, return_requests.c
    query = (select(e.reference, e.return_id, r.order_id, r.account_id, e.state)
             .select_from(erp_returns.join(return_requests, r.id == e.return_id)).where(e.erp == erp))
    if since is not None:
        query = query.where(e.updated_at >= since)
    chunks = [query] if references is None else [
        query.where(e.reference.in_(sorted(set(references))[n:n + page])) for n in range(0, len(set(references)), page)]
    return [HubReturn(ref, return_id, order_id, account, ReturnState(state))
            for q in chunks for ref, return_id, order_id, account, state in conn.execute(q.order_by(e.reference))]


def return_accounts(conn: Connection, return_ids: Sequence[str], page: int = 500) -> dict[str, str]:
    """Hub return id -> account, of those among ``return_ids`` the hub has."""
    r = return_requests.c
    wanted = sorted(set(return_ids))
    return {i: a for n in range(0, len(wanted), page)
            for i, a in conn.execute(select(r.id, r.account_id).where(r.id.in_(wanted[n:n + page])))}


# -- findings ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    key: str
    source: str
    kind: str
    subject: str
    order_id: str | None
    case_id: str | None
    diffs: tuple[FieldDiff, ...]
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime


def _finding(row: Sequence[Any]) -> Finding:
    key, source, kind, subject, order_id, case_id, diffs, first, last = row
    return Finding(key, source, kind, subject, order_id, case_id,
                   tuple(FieldDiff(**d) for d in json.loads(diffs)), first, last)


_COLUMNS = (reconcile_findings.c.key, reconcile_findings.c.source, reconcile_findings.c.kind,
            reconcile_findings.c.subject, reconcile_findings.c.order_id, reconcile_findings.c.case_id,
            reconcile_findings.c.diffs, reconcile_findings.c.first_seen_at, reconcile_findings.c.last_seen_at)


def findings(conn: Connection, source: str | None = None) -> list[Finding]:
    """Every finding kept (of ``source``), by key."""
    query = select(*_COLUMNS).order_by(reconcile_findings.c.key)
    if source is not None:
        query = query.where(reconcile_findings.c.source == source)
    return [_finding(r) for r in conn.execute(query)]


def finding(conn: Connection, key: str) -> Finding | None:
    row = conn.execute(select(*_COLUMNS).where(reconcile_findings.c.key == key)).first()
    return _finding(row) if row is not None else None


def finding_of_case(conn: Connection, case_id: str) -> Finding | None:
    row = conn.execute(select(*_COLUMNS).where(reconcile_findings.c.case_id == case_id)).first()
    return _finding(row) if row is not None else None


def _diffs(diffs: Sequence[FieldDiff]) -> str:
    return json.dumps([{"field": d.field, "hub": d.hub, "erp": d.erp} for d in diffs])


def keep(conn: Connection, f: Finding) -> None:
    """Insert or update the finding under its key."""
    values = {"source": f.source, "kind": f.kind, "subject": f.subject, "order_id": f.order_id,
              "case_id": f.case_id, "diffs": _diffs(f.diffs), "first_seen_at": f.first_seen_at,
              "last_seen_at": f.last_seen_at}
    done = conn.execute(update(reconcile_findings).where(reconcile_findings.c.key == f.key).values(**values))
    if not done.rowcount:
        conn.execute(reconcile_findings.insert().values(key=f.key, **values))


def forget(conn: Connection, key: str) -> None:
    conn.execute(delete(reconcile_findings).where(reconcile_findings.c.key == key))
