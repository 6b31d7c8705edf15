"""What the ERP decided about an order that came from Shopify, told back to Shopify.

One consumer (``shopify.outbound``) writes a task in the transaction that records the event in its inbox,
once per business fact (its business key), and never calls out from there:

- ``fulfillment:<erp>/<shipment>`` when an ERP shipment of the order has left (shipped, in transit,
  delivered): the SKUs and quantities shipped, carrier, tracking number, plant;
- ``cancel:<order>`` when the ERP rejected the order or it was cancelled in the hub (not when the buyer
  cancelled it in Shopify, where it is cancelled already);
- ``refund:<return>`` when the ERP credited a return of the order (its credit notes posted): the
  returned SKUs and quantities.

:class:`ShopifySender` (the worker's ``shopify send`` job) claims due tasks under a lease and does them:
a fulfillment against the order's open fulfillment orders (those at the plant's location first), an
``orderCancel``, a ``refundCreate``. Each is safe to do again after a crash: a fulfillment notes what it
is about to fulfil before it asks (and on a second attempt first looks whether Shopify did it), a
cancellation looks whether the order is cancelled already, a refund repeats its first request under the
same idempotency key. An unreachable Shopify and a refusal (userErrors) are tried again with backoff;
after ``max_attempts`` the task is dead and an integration case names the order and the error.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import RowMapping, update

from ordersync.canonical.v1 import OrderState, ReturnState, ShipmentState
from ordersync.channels.cases import open_integration_case
from ordersync.channels.shopify import operations as ops
from ordersync.channels.shopify.client import ShopifyError, ShopifyUnavailable
from ordersync.channels.shopify.inbound import Shop
from ordersync.config import ShopifySettings, ShopifyShopSettings
from ordersync.domain.cases import CasePolicy
from ordersync.domain.clock import Clock
from ordersync.domain.events import ErpShipmentChanged, Message, OrderRejected, OrderStateChanged, ReturnStateChanged
from ordersync.messaging.registry import Registry, Subscription
from ordersync.messaging.retry import RetryPolicy
from ordersync.store import shopify as store
from ordersync.store.db import Database
from ordersync.store.schema import shopify_tasks
from ordersync.store.uow import UnitOfWork, unit_of_work

log = logging.getLogger("ordersync.shopify")

CONSUMER = "shopify.outbound"
LEFT = frozenset({ShipmentState.SHIPPED, ShipmentState.IN_TRANSIT, ShipmentState.DELIVERED})
#: fulfillment orders that can still be fulfilled
FULFILLABLE = frozenset({"OPEN", "IN_PROGRESS"})
#: tracking URLs of carriers whose pattern is known (``{}`` is the tracking number)
TRACKING_URLS = {
    "dhl": "https://www.dhl.com/de-en/home/tracking.html?tracking-id={}",
    "ups": "https://www.ups.com/track?tracknum={}",
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={}",
    "dpd": "https://tracking.dpd.de/status/en_DE/parcel/{}",
    "gls": "https://gls-group.com/DE/en/parcel-tracking?match={}",
}
KEY_NAMESPACE = uuid.UUID("0b6f7c55-3a0e-5d8b-9f41-7c2e8d1a4b36")


def tracking_url(carrier: str | None, number: str | None) -> str | None:
    if not carrier or not number:
        return None
    name = carrier.casefold()
    pattern = next((url for key, url in TRACKING_URLS.items() if name.startswith(key)), None)
    return pattern.format(number) if pattern else None


def cancel_reason(message: Message) -> str:
    """Shopify's cancel reason for a hub rejection or cancellation: DECLINED (credit), INVENTORY (stock),
    else OTHER."""
    words = json.dumps(message.payload()).casefold()
    if "credit" in words:
        return "DECLINED"
    if any(w in words for w in ("stock", "shortfall", "inventory", "allocation")):
        return "INVENTORY"
    return "OTHER"


# -- the consumer: tasks written with the event -----------------------------------------------------------

class ShopifyOutbound:
    def __init__(self, shops: Sequence[ShopifyShopSettings]) -> None:
        self.shops = {s.name: s for s in shops}

    def handle(self, message: Message, uow: UnitOfWork) -> None:
        order_id = getattr(message, "order_id", None)
        if not order_id:
            return
        source = store.order_source(uow.conn, order_id)
        if source is None:
            return  # not a Shopify order
        if source["shop"] not in self.shops:
            log.warning("Shopify order %s of shop %s, which is no longer configured: %s not told", source["name"],
                        source["shop"], message.TYPE)
            return
        task = self.task(message, source, uow)
        if task is None:
            return
        kind, key, body = task
        body = {"order": source["shopify_id"], "name": source["name"], **body}
        store.queue_task(uow.conn, task_id=uuid.uuid4().hex, shop=source["shop"], kind=kind, business_key=key,
                         body=body, now=uow.now(), order_id=order_id)

    def task(self, message: Message, source: RowMapping, uow: UnitOfWork
             ) -> tuple[str, str, dict[str, Any]] | None:
        """(kind, business key, body) of the task ``message`` calls for, or None."""
        settings = self.shops[source["shop"]]
        if isinstance(message, ErpShipmentChanged):
            shipment = message.shipment
            lines: dict[str, Decimal] = defaultdict(Decimal)
            for line in shipment.lines:
                if line.quantity > 0:
                    lines[line.sku] += line.quantity
            if shipment.state not in LEFT or not lines:
                return None
            return "fulfillment", f"fulfillment:{message.erp}/{shipment.id}", {
                "shipment": shipment.id, "lines": {sku: str(q) for sku, q in lines.items()},
                "carrier": shipment.carrier, "tracking": shipment.tracking_number, "plant": shipment.plant,
                "location": settings.locations.get(shipment.plant)}
        if isinstance(message, OrderRejected) or (
                isinstance(message, OrderStateChanged) and message.to_state is OrderState.CANCELLED):
            if source["cancelled_at"] is not None or source["state"] == "cancelled":
                return None  # the buyer cancelled it in Shopify: nothing to tell
            return "cancel", f"cancel:{message.order_id}", {
                "reason": cancel_reason(message), "restock": True, "refund": False,
                "note": f"{'rejected' if isinstance(message, OrderRejected) else 'cancelled'} in the ERP / hub"}
        if isinstance(message, ReturnStateChanged) and message.to_state is ReturnState.CREDITED:
            authorization = uow.returns.get(message.return_id)
            record = uow.orders.find(message.order_id)
            if authorization is None or record is None:
                return None
            skus = {line.line_no: line.sku for line in record.lines}
            returned: dict[str, Decimal] = defaultdict(Decimal)
            for back in authorization.lines:
                if back.line_no in skus:
                    returned[skus[back.line_no]] += back.quantity
            if not returned:
                return None
            return "refund", f"refund:{message.return_id}", {
                "return": message.return_id, "lines": {sku: str(q) for sku, q in returned.items()}}
        return None


def register(registry: Registry, shops: Sequence[ShopifyShopSettings]) -> None:
    outbound = ShopifyOutbound(shops)
    registry.add(Subscription(CONSUMER, frozenset({ErpShipmentChanged.TYPE, OrderRejected.TYPE, OrderStateChanged.TYPE,
                                                   ReturnStateChanged.TYPE}), outbound.handle, ordered=True))


# -- the sender ---------------------------------------------------------------------------------------------

class Refused(Exception):
    """Shopify answered with userErrors (or the task cannot be done as it stands)."""


class ShopifySender:
    def __init__(self, db: Database, clock: Clock, shops: Sequence[Shop], settings: ShopifySettings, *,
                 cases: CasePolicy | None = None, lease_seconds: float | None = None, batch: int = 20,
                 rng: random.Random | None = None) -> None:
        self.db = db
        self.clock = clock
        self.shops = {s.name: s for s in shops}
        self.retry = RetryPolicy(max_attempts=settings.max_attempts, base_seconds=settings.base_seconds,
                                 cap_seconds=settings.cap_seconds)
        self.cases = cases or CasePolicy()
        self.lease = dt.timedelta(seconds=lease_seconds or settings.timeout * 4 + 60)
        self.batch = batch
        self.rng = rng or random.Random()

    def send_due(self) -> int:
        """Do the due tasks nobody else is doing; how many were tried."""
        now = self.clock.now()
        with self.db.read() as conn:
            rows = store.due_tasks(conn, now, self.batch)
        tried = 0
        for row in rows:
            with self.db.write() as conn:
                if not store.claim_task(conn, row["id"], now=now, until=now + self.lease):
                    continue  # another worker has it
            tried += 1
            self._do(dict(row))
        return tried

    def _do(self, row: dict[str, Any]) -> None:
        body = json.loads(row["body"])
        progress: dict[str, Any] = json.loads(row["result"]) if str(row["result"]).startswith("{") else {}
        shop = self.shops.get(row["shop"])
        try:
            if shop is None:
                raise Refused(f"shop {row['shop']} is no longer configured")
            work = {"fulfillment": self._fulfil, "cancel": self._cancel, "refund": self._refund}.get(row["kind"])
            if work is None:
                raise Refused(f"unknown task kind {row['kind']!r}")
            outcome = work(shop, row, body, progress)
        except (ShopifyUnavailable, ShopifyError, Refused) as exc:
            self._failed(row, body, progress, f"{type(exc).__name__}: {exc}")
            return
        with self.db.write() as conn:
            store.finish_task(conn, row["id"], state="done", now=self.clock.now(),
                              result=json.dumps({**progress, "outcome": outcome}, sort_keys=True))
        log.info("Shopify %s %s of %s: %s", row["shop"], row["kind"], body.get("name"), outcome)

    def _failed(self, row: Mapping[str, Any], body: Mapping[str, Any], progress: dict[str, Any], error: str) -> None:
        attempts = int(row["attempts"]) + 1
        now = self.clock.now()
        result = json.dumps(progress, sort_keys=True) if progress else ""
        with unit_of_work(self.db, self.clock) as uow:
            if self.retry.exhausted(attempts):
                store.finish_task(uow.conn, row["id"], state="dead", now=now, result=result, error=error)
                open_integration_case(
                    uow, self.cases, f"Shopify {row['kind']} of order {body.get('name')} ({row['shop']}) failed "
                    f"{attempts} times: {error}", f"fix the cause in Shopify ({body.get('order')}) or do the "
                    f"{row['kind']} there by hand; the task ({row['business_key']}) is a dead letter",
                    order_id=row["order_id"])
                log.warning("Shopify %s of %s is a dead letter after %d attempts: %s", row["kind"], body.get("name"),
                            attempts, error)
            else:
                delay = self.retry.delay(attempts, self.rng)
                store.finish_task(uow.conn, row["id"], state="queued", now=now, result=result, error=error,
                                  retry_at=now + dt.timedelta(seconds=delay))
                log.info("Shopify %s of %s: attempt %d failed (%s); next in %.0f s", row["kind"], body.get("name"),
                         attempts, error, delay)

    def _note(self, task_id: str, progress: Mapping[str, Any]) -> None:
        """Commit what is about to be asked before it is asked: a crash during the call leaves it known."""
        with self.db.write() as conn:
            conn.execute(update(shopify_tasks).where(shopify_tasks.c.id == task_id)
                         .values(result=json.dumps(progress, sort_keys=True)))

    # -- fulfillment ------------------------------------------------------------------------------------

    def _fulfil(self, shop: Shop, row: Mapping[str, Any], body: Mapping[str, Any], progress: dict[str, Any]) -> str:
        data = shop.client.execute(ops.FULFILLMENT_ORDERS, {"id": body["order"]})
        order = data.get("order")
        if order is None:
            raise Refused(f"Shopify has no order {body['order']}")
        orders = (order.get("fulfillmentOrders") or {}).get("nodes") or []
        remaining = {li["id"]: int(li.get("remainingQuantity") or 0) for fo in orders
                     for li in (fo.get("lineItems") or {}).get("nodes") or []}
        sent: dict[str, int] = progress.setdefault("sent", {})
        done: list[str] = progress.setdefault("fulfillments", [])
        asked = progress.pop("in_flight", None)
        # an attempt whose outcome a crash (or a lost answer) hid: Shopify made it if what it asked for is gone
        if asked is not None and all(remaining.get(li, 0) <= before - qty
                                     for li, (before, qty) in asked["lines"].items()):
            for sku, qty in asked["skus"].items():
                sent[sku] = sent.get(sku, 0) + qty
            done.append("(made by an earlier attempt)")
        wanted = {sku: int(Decimal(q)) - sent.get(sku, 0) for sku, q in body["lines"].items()}
        on_order = {li.get("sku") or (li.get("lineItem") or {}).get("sku") for fo in orders
                    for li in (fo.get("lineItems") or {}).get("nodes") or []}
        missing = sorted(sku for sku, q in wanted.items() if q > 0 and sku not in on_order)
        note = f"; not on the Shopify order: {', '.join(missing)}" if missing else ""
        groups = plan(orders, wanted, body.get("location"))
        if not groups:
            if missing and not done:
                raise Refused(f"the Shopify order has no line for {', '.join(missing)}")
            return ("already fulfilled" if not done else f"fulfilled ({', '.join(done)})") + note
        settings = shop.settings
        number = body.get("tracking") or None
        tracking = {k: v for k, v in {"company": body.get("carrier"), "number": number,
                                      "url": tracking_url(body.get("carrier"), number)}.items() if v}
        for group in groups:
            progress["in_flight"] = {
                "lines": {li["id"]: [remaining[li["id"]], li["quantity"]] for g in group for li in
                          g["fulfillmentOrderLineItems"]},
                "skus": _skus(group)}
            self._note(row["id"], progress)
            data = shop.client.execute(ops.FULFILLMENT_CREATE, {"fulfillment": {
                "lineItemsByFulfillmentOrder": [{k: v for k, v in g.items() if k != "_skus"} for g in group],
                "notifyCustomer": settings.notify_customer, **({"trackingInfo": tracking} if tracking else {})}})
            payload = data.get("fulfillmentCreate") or {}
            if payload.get("userErrors") or not payload.get("fulfillment"):
                progress.pop("in_flight")
                raise Refused("; ".join(str(e.get("message")) for e in payload.get("userErrors") or []) or
                              "no fulfillment made")
            progress.pop("in_flight")
            for sku, qty in _skus(group).items():
                sent[sku] = sent.get(sku, 0) + qty
            done.append(payload["fulfillment"]["id"])
            self._note(row["id"], progress)
        return f"fulfilled ({', '.join(done)})" + note

    # -- cancellation -----------------------------------------------------------------------------------

    def _cancel(self, shop: Shop, row: Mapping[str, Any], body: Mapping[str, Any], progress: dict[str, Any]) -> str:
        order = shop.client.execute(ops.ORDER, {"id": body["order"]}).get("order")
        if order is None:
            raise Refused(f"Shopify has no order {body['order']}")
        if order.get("cancelledAt"):
            return "already cancelled"
        data = shop.client.execute(ops.ORDER_CANCEL, {
            "orderId": body["order"], "reason": body.get("reason", "OTHER"), "restock": bool(body.get("restock", True)),
            "refund": bool(body.get("refund", False)), "notifyCustomer": shop.settings.notify_customer,
            "staffNote": f"ordersync: {body.get('note', 'cancelled in the ERP')}"[:255]})
        payload = data.get("orderCancel") or {}
        problems = payload.get("orderCancelUserErrors") or []
        if problems:
            raise Refused("; ".join(f"{e.get('code')}: {e.get('message')}" for e in problems))
        progress["job"] = (payload.get("job") or {}).get("id")
        return "cancelled"

    # -- refund -----------------------------------------------------------------------------------------

    def _refund(self, shop: Shop, row: Mapping[str, Any], body: Mapping[str, Any], progress: dict[str, Any]) -> str:
        """The returned items refunded (no restock: stock is the ERP's and comes with the next stock push).
        The first request is kept and repeated as it was under the same idempotency key, so Shopify makes
        one refund however many times it is asked."""
        request = progress.get("request")
        if request is None:
            order = shop.client.execute(ops.ORDER, {"id": body["order"]}).get("order")
            if order is None:
                raise Refused(f"Shopify has no order {body['order']}")
            wanted = {sku: int(Decimal(q)) for sku, q in body["lines"].items()}
            items = []
            for line in (order.get("lineItems") or {}).get("nodes") or []:
                sku = line.get("sku") or (line.get("variant") or {}).get("sku")
                take = min(wanted.get(sku, 0), int(line.get("currentQuantity") or 0))
                if take > 0:
                    items.append({"lineItemId": line["id"], "quantity": take, "restockType": "NO_RESTOCK"})
                    wanted[sku] -= take
            if not items:
                return "nothing left to refund"
            request = {"orderId": body["order"], "refundLineItems": items, "notify": False,
                       "note": f"ERP credit for return {body.get('return')}"}
            progress["request"] = request
            self._note(row["id"], progress)
        key = str(uuid.uuid5(KEY_NAMESPACE, row["business_key"]))
        data = shop.client.execute(ops.REFUND_CREATE, {"input": request, "key": key})
        payload = data.get("refundCreate") or {}
        if payload.get("userErrors") or not payload.get("refund"):
            raise Refused("; ".join(str(e.get("message")) for e in payload.get("userErrors") or []) or
                          "no refund made")
        progress["refund"] = payload["refund"]["id"]
        return f"refunded ({payload['refund']['id']})"


def _skus(group: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for g in group:
        for sku, qty in g["_skus"].items():
            out[sku] += qty
    return dict(out)


def plan(orders: Sequence[Mapping[str, Any]], wanted: Mapping[str, int], location: str | None
         ) -> list[list[dict[str, Any]]]:
    """The fulfillment order line items that take the shipment's quantities, open ones at the plant's
    location first; one group per location (a fulfillment ships from one place)."""
    left = {sku: q for sku, q in wanted.items() if q > 0}
    by_location: dict[str, list[dict[str, Any]]] = {}
    ordered = sorted((fo for fo in orders if fo.get("status") in FULFILLABLE),
                     key=lambda fo: _location(fo) != location)
    for fo in ordered:
        items: list[dict[str, Any]] = []
        skus: dict[str, int] = {}
        for li in (fo.get("lineItems") or {}).get("nodes") or []:
            sku = str(li.get("sku") or (li.get("lineItem") or {}).get("sku") or "")
            take = min(left.get(sku, 0), int(li.get("remainingQuantity") or 0))
            if take > 0:
                items.append({"id": li["id"], "quantity": take})
                skus[sku] = skus.get(sku, 0) + take
                left[sku] -= take
        if items:
            by_location.setdefault(_location(fo) or "", []).append(
                {"fulfillmentOrderId": fo["id"], "fulfillmentOrderLineItems": items, "_skus": skus})
    return list(by_location.values())


def _location(fulfillment_order: Mapping[str, Any]) -> str | None:
    return ((fulfillment_order.get("assignedLocation") or {}).get("location") or {}).get("id")
