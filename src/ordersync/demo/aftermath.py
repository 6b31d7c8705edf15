"""The demo after the orders settle: the warehouse ships, the ERP invoices, a buyer returns goods and
disputes an invoice — everything through the real systems, so it can be followed by order id in the
API (``GET /v1/orders/{id}``, ``/v1/invoices``, ``/v1/returns/{id}``, ``/v1/ops/cases``).

- The warehouse (a simulator acting in Tryton as its administrator, as the warehouse staff would)
  ships the accepted orders: one in two parcels (a split shipment: part of a line first, the rest
  later), one short (less than ordered, the rest cancelled: a fulfillment-discrepancy case), the rest
  in full, each plant of an order split across plants on its own.
- Production planning moves the date of an accepted order's backordered line in Tryton to later; the
  hub records the revised promise on the order and tells the buyer (``order.backorder_date_revised``).
- Accounting posts the invoices in Tryton for all but a couple of the shipped orders.
- A buyer asks to return part of a delivered line (the hub creates the return in Tryton; the plant
  receives the goods) and disputes an invoice (a case for finance).
- The carrier's reports reach the hub through the warehouse's signed webhook (``POST /v1/wms/events``,
  HMAC-SHA256 over the timestamp and body): an invoiced order's Tryton shipment is in transit, then
  delivered, with the carrier and tracking number the buyer sees on the order.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select

from ordersync.devkit.tryton.simulate import TrytonSimulator
from ordersync.domain.order import OrderRecord
from ordersync.ports.erp import order_reference
from ordersync.runtime.hub import Hub
from ordersync.store.schema import invoices, orders

#: order states in which the warehouse has nothing left to do for the demo
FULFILLED = {"shipped", "invoiced", "partially_shipped", "closed"}


@dataclass
class Aftermath:
    shipped: list[str] = field(default_factory=list)
    split_shipment: str | None = None
    short_shipment: str | None = None
    split_across_plants: str | None = None
    backorder_revised: str | None = None
    invoiced: list[str] = field(default_factory=list)
    return_id: str | None = None
    return_state: str | None = None
    dispute_case: str | None = None
    delivered: str | None = None
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        follow = {k: f"/v1/orders/{v}" for k, v in (("split_shipment", self.split_shipment),
                                                    ("short_shipment", self.short_shipment),
                                                    ("split_across_plants", self.split_across_plants),
                                                    ("backorder_revised", self.backorder_revised)) if v}
        if self.return_id:
            follow["return"] = f"/v1/returns/{self.return_id}"
        if self.dispute_case:
            follow["dispute_case"] = f"/v1/ops/cases/{self.dispute_case}"
        if self.delivered:
            follow["delivered_by_carrier"] = f"/v1/orders/{self.delivered}"
        return {"orders_shipped_by_warehouse": len(self.shipped), "invoices_posted_for": len(self.invoiced),
                "return_state": self.return_state, "dispute_case": self.dispute_case, "follow": follow,
                "problems": self.problems}


def _accepted(hub: Hub) -> list[OrderRecord]:
    with hub.db.read() as conn:
        ids = list(conn.execute(select(orders.c.id).where(orders.c.state == "accepted")
                                .order_by(orders.c.received_at)).scalars())
    with hub.store.reading() as reader:
        return [reader.orders.get(i) for i in ids]


def run(hub: Hub, base: str, erp_url: str, token: str, console: Console, timeout: float = 300.0, *,
        database: str = "main", wms: tuple[str, bytes] | None = None) -> Aftermath:
    """Ship, invoice, return and dispute; wait until the hub shows it. ``token``: an unbound key with
    orders:read, returns:write and invoices:write (the buyer's actions go through the API); ``wms``: the
    warehouse's key and webhook secret (its carrier reports are signed)."""
    out = Aftermath()
    sim = TrytonSimulator.connect(erp_url, database)
    try:
        records = _accepted(hub)
        columns = (TextColumn("warehouse and accounting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("ship", total=len(records))
            for i, record in enumerate(records):
                _ship(sim, record, out, first=i == 0)
                bar.advance(task)
        _wait(lambda: _in_states(hub, set(out.shipped), FULFILLED), len(out.shipped), timeout, console,
              "shipments reach the hub")
        _revise_backorder(hub, sim, records, out, timeout, console)
        for order_id in out.shipped[2:]:  # accounting leaves the first two shipped orders uninvoiced for now
            record = next(r for r in records if r.id == order_id)
            for plant in record.plants():
                sim.post_invoices(order_reference(order_id, plant))
            out.invoiced.append(order_id)
        _wait(lambda: _with_invoice(hub, set(out.invoiced)), len(out.invoiced), timeout, console,
              "invoices reach the hub")
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as api:
            _return_and_dispute(api, hub, sim, out, timeout, console)
            if wms is not None:
                _carrier_reports(api, base, wms, out, timeout)
    finally:
        sim.close()
    return out


def _ship(sim: TrytonSimulator, record: OrderRecord, out: Aftermath, *, first: bool) -> None:
    plants = sorted({a.plant for a in record.allocations if not a.backorder})
    lines = {a.line_no: a.quantity for a in record.allocations if not a.backorder}
    if not plants:
        return
    references = [order_reference(record.id, p) for p in plants]
    line_no, quantity = next(iter(sorted(lines.items())))
    if len(plants) > 1 and out.split_across_plants is None:
        out.split_across_plants = record.id
    if out.split_shipment is None and len(plants) == 1 and quantity >= 2 and not first:
        sim.ship(references[0], {line_no: (quantity / 2).to_integral_value()})  # first parcel
        sim.ship(references[0])  # the rest, in the shipment Tryton planned for it
        out.split_shipment = record.id
    elif out.short_shipment is None and len(plants) == 1 and quantity >= 2 and not first:
        sim.ship_short(references[0], {line_no: quantity - 1})
        out.short_shipment = record.id
    else:
        for reference in references:
            sim.ship(reference)
    out.shipped.append(record.id)


#: how much later production planning promises the backordered line than anything said before
REVISED_BY = dt.timedelta(days=14)


def _revise_backorder(hub: Hub, sim: TrytonSimulator, records: list[OrderRecord], out: Aftermath, timeout: float,
                      console: Console) -> None:
    """Production planning moves an unshipped backorder to a later date in Tryton; wait until the hub
    records the revision. The date is later than both the hub's promise and any date it has seen from
    the ERP, so it counts as a revision whatever the hub has already read (see ``domain/order/backorders``)."""
    record = next((r for r in records if r.id not in out.shipped
                   and r.is_backordered), None)
    if record is None:
        out.problems.append("no accepted, unshipped order with a backordered line to revise")
        return
    with hub.store.reading() as reader:  # what the hub has read from the ERP since the orders settled
        record = reader.orders.get(record.id)
    backordered = [a for a in record.allocations if a.backorder]
    plant = backordered[0].plant
    known = [a.promised_date for a in backordered] + list(record.backorders.erp_promised.values())
    later = max(known) + REVISED_BY
    try:
        sim.revise_date(order_reference(record.id, plant), later)
    except LookupError as e:
        out.problems.append(f"backorder date of {record.id} not revised: {e}")
        return
    _wait(lambda: _revised(hub, record.id), 1, timeout, console, "the revised backorder date reaches the hub")
    if _revised(hub, record.id):
        out.backorder_revised = record.id
    else:
        out.problems.append(f"order {record.id} shows no revised backorder date after {timeout:.0f}s")


def _revised(hub: Hub, order_id: str) -> int:
    with hub.store.reading() as reader:
        record = reader.orders.get(order_id)
    return 1 if record.backorders.revisions else 0


def _in_states(hub: Hub, ids: set[str], wanted: set[str]) -> int:
    if not ids:
        return 0
    with hub.db.read() as conn:
        states = conn.execute(select(orders.c.state).where(orders.c.id.in_(ids))).scalars()
        return sum(1 for s in states if s in wanted)


def _with_invoice(hub: Hub, ids: set[str]) -> int:
    """How many of the orders show a posted invoice to the buyer (an order with backordered lines
    stays short of ``invoiced`` until they ship, but its invoice is visible at once)."""
    if not ids:
        return 0
    with hub.db.read() as conn:
        return len(set(conn.execute(select(invoices.c.order_id).where(invoices.c.order_id.in_(ids))).scalars()))


def _wait(count: Callable[[], int], total: int, timeout: float, console: Console, what: str) -> None:
    deadline = time.monotonic() + timeout
    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(what, total=total)
        while True:
            done = count()
            bar.update(task, completed=done)
            if done >= total:
                return
            if time.monotonic() > deadline:
                console.print(f"[yellow]{what}: {done} of {total} after {timeout:.0f}s[/yellow]")
                return
            time.sleep(0.5)


def _return_and_dispute(api: httpx.Client, hub: Hub, sim: TrytonSimulator, out: Aftermath, timeout: float,
                        console: Console) -> None:
    candidates = [o for o in out.invoiced if o != out.short_shipment]
    if not candidates:
        out.problems.append("no invoiced order to return goods from or dispute")
        return
    order = api.get(f"/v1/orders/{candidates[0]}").json()
    line = order["lines"][0]
    r = api.post("/v1/returns", json={"order_id": order["id"], "lines": [
        {"line_no": line["line_no"], "quantity": "1", "reason": "damaged in transit"}]})
    if r.status_code != 201:
        out.problems.append(f"return request refused: {r.status_code} {r.text[:200]}")
    else:
        out.return_id = r.json()["id"]
        _wait_return(api, sim, out, timeout)
    invoices = api.get("/v1/invoices", params={"account_id": order["account_id"], "order_id": order["id"]}).json()
    if not invoices["items"]:
        out.problems.append(f"order {order['id']} shows no invoice")
        return
    d = api.post(f"/v1/invoices/{invoices['items'][0]['id']}/disputes", json={
        "account_id": order["account_id"], "reason": "freight charged twice", "comment": "see our PO terms"})
    if d.status_code in (200, 201):
        out.dispute_case = d.json()["case_id"]
    else:
        out.problems.append(f"dispute refused: {d.status_code} {d.text[:200]}")


def _carrier_reports(api: httpx.Client, base: str, wms: tuple[str, bytes], out: Aftermath, timeout: float) -> None:
    """The carrier reports an invoiced order's Tryton shipment in transit, then delivered, through the
    warehouse's signed webhook; wait until the order shows the parcel delivered."""
    import json
    import zlib

    from ordersync.flows.services.wms import sign

    candidates = [o for o in out.invoiced if o not in (out.short_shipment, out.split_shipment)]
    order = next((api.get(f"/v1/orders/{o}").json() for o in candidates[1:] + candidates[:1]), None)
    shipments = [s for s in (order or {}).get("shipments", []) if s.get("source") == "erp"]
    if order is None or not shipments:
        out.problems.append("no invoiced order with an ERP shipment for the carrier to report")
        return
    key, secret = wms
    shipment = shipments[0]
    tracking = f"00340434{zlib.crc32(shipment['id'].encode()):010d}"
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"}) as warehouse:
        for kind in ("in_transit", "delivered"):
            body = json.dumps({"event_id": f"demo-{kind}-{shipment['id']}", "type": kind, "order_id": order["id"],
                               "shipment_ref": shipment["id"], "carrier": "DHL", "tracking_number": tracking,
                               "occurred_at": dt.datetime.now(dt.UTC).isoformat()}).encode()
            stamp = str(int(time.time()))
            r = warehouse.post("/v1/wms/events", content=body, headers={
                "Content-Type": "application/json", "X-Ordersync-Timestamp": stamp,
                "X-Ordersync-Signature": sign(secret, stamp, body)})
            if r.status_code not in (200, 202):
                out.problems.append(f"signed carrier event {kind} refused: {r.status_code} {r.text[:200]}")
                return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = api.get(f"/v1/orders/{order['id']}").json()
        if any(s.get("carrier_status") == "delivered" for s in view.get("shipments", [])):
            out.delivered = order["id"]
            return
        time.sleep(0.2)
    out.problems.append(f"order {order['id']} does not show the carrier's delivery within {timeout:.0f}s")


def _wait_return(api: httpx.Client, sim: TrytonSimulator, out: Aftermath, timeout: float) -> None:
    """The hub creates the return in Tryton (approved); the plant receives the goods; the hub sees it."""
    deadline = time.monotonic() + timeout
    received = False
    while time.monotonic() < deadline:
        body = api.get(f"/v1/returns/{out.return_id}").json()
        out.return_state = body["state"]
        if body["state"] == "rejected":
            out.problems.append(f"return rejected: {body.get('refusal_reason')}")
            return
        if body["state"] == "approved" and not received:
            for erp_return in body["erp_returns"]:
                sim.receive_return(erp_return["reference"])
            received = True
        if body["state"] in ("received", "credited"):
            return
        time.sleep(0.5)
    out.problems.append(f"return {out.return_id} still {out.return_state} after {timeout:.0f}s")
