"""The Shopify channel's reconciliation check (a :class:`~ordersync.runtime.reconcile.ChannelCheck`): what
the shops told us and what we owe them, against the hub's orders, from the hub's own records (no Shopify
call: the sweep, ``ordersync shopify reconcile``, is what asks Shopify for orders no webhook brought).

- ``cancel_not_applied`` (subject ``cancel-in:<order>``): the buyer cancelled the order in Shopify and the hub
  order is not cancelled;
- ``cancel_not_sent`` (``cancel:<order>``): the hub cancelled or rejected the order and no cancellation was
  queued for Shopify (nor was it cancelled there);
- ``fulfillment_not_sent`` (``fulfillment:<erp>/<shipment>``): a shipment left the warehouse and no
  fulfillment was queued for Shopify.

Only what is older than ``settle_seconds`` counts (the outbound consumer queues tasks moments after the event).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Connection, select

from ordersync.canonical.v1 import OrderState, Shipment, ShipmentState
from ordersync.channels.shopify.outbound import LEFT
from ordersync.domain.reconcile import Discrepancy, FieldDiff
from ordersync.runtime.reconcile import StoreChecks
from ordersync.store.schema import orders, shipments, shopify_orders, shopify_tasks

SOURCE = "shopify"
ENDED = (OrderState.CANCELLED.value, OrderState.REJECTED.value)


class ShopifyChecks(StoreChecks):
    """The Shopify channel's comparisons, for the reconciliation job."""

    name = SOURCE

    def _find(self, conn: Connection, since: dt.datetime | None, before: dt.datetime) -> list[Discrepancy]:
        s, o = shopify_orders.c, orders.c
        query = (select(s.shop, s.name, s.order_id, s.cancelled_at, s.state, o.state.label("hub_state"),
                        o.account_id, o.updated_at)
                 .select_from(shopify_orders.join(orders, o.id == s.order_id)))
        if since is not None:
            query = query.where(o.updated_at >= since)
        rows = conn.execute(query.order_by(s.order_id)).all()
        keys = self._queued(conn, [r.order_id for r in rows])
        out: list[Discrepancy] = []
        for r in rows:
            shopify_cancelled = r.cancelled_at is not None or r.state == "cancelled"
            if shopify_cancelled and r.hub_state not in ENDED and (r.cancelled_at or r.updated_at) < before:
                out.append(self._one("cancel_not_applied", f"cancel-in:{r.order_id}", r, FieldDiff(
                    "order", r.hub_state, f"{r.name} cancelled in {r.shop}")))
            if r.hub_state in ENDED and not shopify_cancelled and r.updated_at < before \
                    and f"cancel:{r.order_id}" not in keys:
                out.append(self._one("cancel_not_sent", f"cancel:{r.order_id}", r, FieldDiff(
                    "order", r.hub_state, f"{r.name} open in {r.shop}, no cancellation queued")))
        by_order = {r.order_id: r for r in rows}
        x = shipments.c
        for n in range(0, len(by_order), 500):
            chunk = sorted(by_order)[n:n + 500]
            for order_id, erp, shipment_id, state, updated, body in conn.execute(
                    select(x.order_id, x.erp, x.shipment_id, x.state, x.updated_at, x.body)
                    .where(x.order_id.in_(chunk))):
                key = f"fulfillment:{erp}/{shipment_id}"
                if ShipmentState(state) in LEFT and updated < before and key not in keys \
                        and any(line.quantity > 0 for line in Shipment.model_validate_json(body).lines):
                    r = by_order[order_id]
                    out.append(self._one("fulfillment_not_sent", key, r, FieldDiff(
                        f"shipment {shipment_id}", state, f"{r.name}: no fulfillment queued for {r.shop}")))
        return out

    @staticmethod
    def _one(kind: str, subject: str, row: object, diff: FieldDiff) -> Discrepancy:
        return Discrepancy(SOURCE, kind, subject, getattr(row, "order_id", None), getattr(row, "account_id", None),
                           (diff,))

    @staticmethod
    def _queued(conn: Connection, order_ids: Sequence[str]) -> set[str]:
        """Business keys of the tasks queued for these orders (in any state: done, failed or dead ones have
        their own record and cases)."""
        t = shopify_tasks.c
        wanted = sorted(set(order_ids))
        return {k for n in range(0, len(wanted), 500)
                for k in conn.execute(select(t.business_key).where(t.order_id.in_(wanted[n:n + 500]))).scalars()}
