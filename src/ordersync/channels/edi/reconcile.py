"""The EDI channel's reconciliation check (a :class:`~ordersync.runtime.reconcile.ChannelCheck`): what a
partner sent us and what we owe them, against the hub.

- ``order_missing`` (subject ``850:<order>``): a purchase order taken from an 850 (or ORDERS) has no hub order;
- ``855_not_sent``: an EDI order the ERP accepted or the hub rejected has no acknowledgment queued;
- ``856_not_sent``: a shipment of an EDI order left the warehouse and no ship notice is queued;
- ``810_not_sent``: an invoice of an EDI order is posted and no invoice is queued.

Only partners that take documents (``send_documents``) are owed the 855/856/810. What the documents consumer
writes moments after an event is not missing yet: only what is older than ``settle_seconds`` counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Connection, select

from ordersync.canonical.v1 import InvoiceState, OrderState, ShipmentState
from ordersync.channels.edi.documents import BILLED, LEFT
from ordersync.channels.edi.partners import Partner
from ordersync.domain.clock import Clock
from ordersync.domain.reconcile import NONE, Discrepancy, FieldDiff
from ordersync.runtime.reconcile import StoreChecks
from ordersync.store.db import Database
from ordersync.store.schema import edi_interchanges, edi_orders, invoices, orders, shipments

SOURCE = "edi"
#: hub order states after which the partner is owed an 855 (accepted or later, or rejected)
ANSWERED = frozenset({OrderState.ACCEPTED, OrderState.IN_FULFILLMENT, OrderState.PARTIALLY_SHIPPED,
                      OrderState.SHIPPED, OrderState.INVOICED, OrderState.CLOSED, OrderState.REJECTED})


class EdiChecks(StoreChecks):
    """The EDI channel's comparisons, for the reconciliation job."""

    name = SOURCE

    def __init__(self, db: Database, clock: Clock, partners: Sequence[Partner], *, settle_seconds: float) -> None:
        super().__init__(db, clock, settle_seconds=settle_seconds)
        self.partners = {p.name: p for p in partners}

    def _find(self, conn: Connection, since: dt.datetime | None, before: dt.datetime) -> list[Discrepancy]:
        e, o = edi_orders.c, orders.c
        query = (select(e.order_id, e.partner, e.po_number, e.received_at, o.state, o.account_id, o.updated_at)
                 .select_from(edi_orders.outerjoin(orders, o.id == e.order_id)).where(e.received_at < before))
        if since is not None:
            query = query.where(e.received_at >= since)
        rows = conn.execute(query.order_by(e.order_id)).all()
        owed = [r for r in rows if r.state is not None and (p := self.partners.get(r.partner)) and p.send_documents]
        ids = [r.order_id for r in owed]
        sent = self._sent(conn, ids)
        out: list[Discrepancy] = []
        for r in rows:
            if r.state is None:
                received = f"PO {r.po_number} from {r.partner}, received {r.received_at:%Y-%m-%d %H:%M}"
                out.append(Discrepancy(SOURCE, "order_missing", f"850:{r.order_id}", None, None, (
                    FieldDiff("order", NONE, received),)))
        for r in owed:
            if OrderState(r.state) in ANSWERED and r.updated_at < before and f"855:{r.order_id}" not in sent:
                out.append(self._unsent("855", r.order_id, r.account_id, r.partner,
                                        f"order {OrderState(r.state).value}"))
        s, i = shipments.c, invoices.c
        accounts = {r.order_id: (r.account_id, r.partner) for r in owed}
        for n in range(0, len(ids), 500):
            chunk = ids[n:n + 500]
            for order_id, shipment_id, state, updated in conn.execute(
                    select(s.order_id, s.shipment_id, s.state, s.updated_at).where(s.order_id.in_(chunk))):
                if ShipmentState(state) in LEFT and updated < before and f"856:{shipment_id}" not in sent:
                    account, partner = accounts[order_id]
                    out.append(self._unsent("856", shipment_id, account, partner, f"shipment {state}", order_id))
            for order_id, invoice_id, state, updated in conn.execute(
                    select(i.order_id, i.invoice_id, i.state, i.updated_at).where(i.order_id.in_(chunk))):
                if InvoiceState(state) in BILLED and updated < before and f"810:{invoice_id}" not in sent:
                    account, partner = accounts[order_id]
                    out.append(self._unsent("810", invoice_id, account, partner, f"invoice {state}", order_id))
        return out

    @staticmethod
    def _unsent(document: str, key: str, account: str, partner: str, hub: str,
                order_id: str | None = None) -> Discrepancy:
        return Discrepancy(SOURCE, f"{document}_not_sent", f"{document}:{key}", order_id or key, account, (
            FieldDiff(document, hub, f"no {document} queued for {partner}"),))

    @staticmethod
    def _sent(conn: Connection, order_ids: Sequence[str]) -> set[str]:
        """Business keys of what we queued for these orders (855/856/810)."""
        x = edi_interchanges.c
        out: set[str] = set()
        for n in range(0, len(order_ids), 500):
            out |= {k for k in conn.execute(select(x.business_key).where(
                x.direction == "out", x.order_id.in_(order_ids[n:n + 500]))).scalars() if k}
        return out
