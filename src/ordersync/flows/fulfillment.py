"""Fulfillment and invoicing: an accepted order follows its shipments and invoices.

One consumer, ``flow.fulfillment`` (tx mode, ordered per order), takes what the ERP poller, the warehouse
and the carriers report:

- ``erp.shipment_changed`` and ``erp.invoice_posted`` (the ERP, polled);
- ``wms.shipment_event`` and ``carrier.tracking_event`` (the signed WMS webhook, ``flows/wms.py``);
- ``order.accepted`` and ``order.amended``: the same facts weighed again (reports that came before the
  hub recorded the acceptance; quantities an amendment changed).

Each report updates the order's fulfillment record (table ``order_fulfillment``: every shipment by
source and id, every invoice), then the rules of :mod:`ordersync.domain.fulfillment` say where the order
stands: it moves forward (never back), each discrepancy opens one ``fulfillment_discrepancy`` case, and
SLA timestamps are stamped in the order's ``data``. Record, moves, cases and their events commit in one
transaction with the inbox row. A report that changes nothing (a repeat, a late "picked") writes
nothing. The record lives beside the order rather than in its ``data`` so that the order's row is
written only when its state or a timestamp changes: the ERP reports each sale's first (waiting) shipment
while the submission flow is recording the acceptance, and two writers of one order row would make one
of them fail its optimistic save.

Reports of ERP orders without a hub reference are not the hub's business (orders keyed in the ERP
directly) and are ignored, as the document projection ignores them. A report that names a hub order the
hub does not have, or that the WMS could not match to an order, opens a case: it is never dropped.

**SLA timestamps** (top-level keys of the order's ``data``, ISO 8601 UTC, each set once, never moved):

- ``in_fulfillment_at``: the hub saw the warehouse start (first assigned/picked/packed shipment);
- ``first_shipped_at``: the hub saw the first quantity leave;
- ``shipped_at``: the hub saw the last ordered quantity leave (the order is shipped);
- ``delivered_at``: the carrier's time of the last delivery, once every shipment the WMS reported is
  delivered and the order is shipped;
- ``invoice_posted_at``: the ERP's posting time of the first posted invoice (Tryton keeps a posting
  *date*: midnight UTC of the invoice date);
- ``invoice_visible_at``: when the hub recorded that posted invoice, from which moment ``GET /v1/invoices``
  shows it (the document projection stores it from the same relay batch);
- ``invoiced_at``: the order moved to ``invoiced``.

Per invoice, ``data["fulfillment"]["invoices"][<erp>:<invoice id>]`` keeps ``number``, ``posted_at`` and
``visible_at`` (set once, when the invoice is first seen posted: the invoice-sync SLA clock of each
invoice). In the fulfillment record, each shipment keeps ``shipped_at`` (and ``delivered_at`` from
carriers).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from ordersync.canonical.v1 import CaseType, InvoiceLine, InvoiceState, OrderState, ShipmentLine, ShipmentState
from ordersync.domain.cases import CasePolicy, open_case
from ordersync.domain.events import (
    CarrierTrackingEvent,
    CaseOpened,
    ErpInvoicePosted,
    ErpShipmentChanged,
    Message,
    OrderAccepted,
    OrderAmended,
    ReportedLine,
    WmsShipmentEvent,
)
from ordersync.domain.fulfillment import (
    BILLED,
    LEFT,
    TRACK,
    WMS_STATES,
    InvoiceFacts,
    Progress,
    ShipmentFacts,
    discrepancies,
    invoice_supersedes,
    moves,
    progress,
    supersedes,
)
from ordersync.domain.lifecycle import can_move
from ordersync.domain.order import OrderRecord
from ordersync.flows.returns import ordered_quantities
from ordersync.messaging.registry import Registry, Subscription
from ordersync.store.schema import fulfillment_problems, order_fulfillment, orders
from ordersync.store.sql import insert_ignore, upsert_row
from ordersync.store.uow import UnitOfWork

log = logging.getLogger("ordersync.flows.fulfillment")

CONSUMER = "flow.fulfillment"
Sh = ShipmentState
WmsReport = WmsShipmentEvent | CarrierTrackingEvent
#: orders that should not ship at all: goods leaving for them is a discrepancy
_NOT_TO_SHIP = frozenset({OrderState.CANCELLED, OrderState.REJECTED})


# -- the order's fulfillment record -------------------------------------------------------------------

def fulfillment_record(conn: Connection, order_id: str) -> dict[str, Any]:
    """What was reported about the order's shipments and invoices: ``{"shipments": {key: entry},
    "invoices": {key: entry}}`` (empty when nothing was)."""
    body = conn.execute(select(order_fulfillment.c.body).where(order_fulfillment.c.order_id == order_id)
                        ).scalar_one_or_none()
    f: dict[str, Any] = json.loads(body) if body else {}
    f.setdefault("shipments", {})
    f.setdefault("invoices", {})
    return f


def _save_record(uow: UnitOfWork, order_id: str, f: dict[str, Any]) -> None:
    upsert_row(uow.conn, order_fulfillment, {"order_id": order_id},
               {"body": json.dumps(f, sort_keys=True), "updated_at": uow.now()})


def _iso(at: dt.datetime | None) -> str | None:
    return at.astimezone(dt.UTC).isoformat() if at is not None else None


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _lines(lines: Sequence[ShipmentLine | ReportedLine | InvoiceLine], sign: int = 1) -> dict[str, str]:
    out: dict[str, Decimal] = {}
    for line in lines:
        out[str(line.line_no)] = out.get(str(line.line_no), Decimal(0)) + sign * line.quantity
    return {k: str(v) for k, v in sorted(out.items(), key=lambda kv: int(kv[0]))}


def _put(entries: dict[str, Any], key: str, content: dict[str, Any], now: dt.datetime) -> bool:
    """Store ``content`` as entry ``key`` (keeping when it was first seen); False if nothing changed."""
    held = entries.get(key) or {}
    if held and all(held.get(k) == v for k, v in content.items()):
        return False
    entries[key] = {**held, **content, "first_seen_at": held.get("first_seen_at") or _iso(now),
                    "updated_at": _iso(now)}
    return True


def _stamp(data: dict[str, Any], key: str, at: dt.datetime | str | None) -> bool:
    """Set an SLA timestamp once; True if it was set now."""
    if at is None or data.get(key):
        return False
    data[key] = at if isinstance(at, str) else _iso(at)
    return True


# -- reports ------------------------------------------------------------------------------------------

def _erp_order(uow: UnitOfWork, policy: CasePolicy, msg: ErpShipmentChanged | ErpInvoicePosted,
               name: str) -> tuple[OrderRecord, dict[str, Any]] | None:
    """The hub order an ERP document belongs to, locked, with its fulfillment record; None (after opening
    an unknown-order case) when the hub has no such order."""
    assert msg.order_id is not None
    record = _lock(uow, msg.order_id)
    if record is None:
        _unknown_order(uow, policy, f"erp:{msg.erp}:{msg.reference}", f"{name} belongs to {msg.reference}")
        return None
    return record, fulfillment_record(uow.conn, record.id)


def _lock(uow: UnitOfWork, order_id: str) -> OrderRecord | None:
    """The order, its row locked for this transaction (PostgreSQL: another writer waits instead of
    failing our optimistic save; SQLite's single writer needs no lock)."""
    uow.conn.execute(select(orders.c.id).where(orders.c.id == order_id).with_for_update())
    return uow.orders.find(order_id)


def erp_shipment(msg: ErpShipmentChanged, uow: UnitOfWork, policy: CasePolicy) -> None:
    if msg.order_id is None:
        return  # an ERP order the hub did not create
    s = msg.shipment
    name = f"ERP {msg.erp} shipment {s.erp_ref or s.id}"
    found = _erp_order(uow, policy, msg, name)
    if found is None:
        return
    record, f = found
    key = f"erp:{msg.erp}:{s.id}"
    held = f["shipments"].get(key)
    if held is not None and not supersedes(Sh(held["state"]), None, s.state, None):
        return  # a late report of an earlier state
    if _put(f["shipments"], key, {
        "source": "erp", "erp": msg.erp, "id": s.id, "erp_ref": s.erp_ref, "plant": s.plant,
        "reference": msg.reference, "state": s.state.value, "lines": _lines(s.lines),
        "shipped_at": _iso(s.shipped_at) or (held or {}).get("shipped_at")}, uow.now()):
        _save_record(uow, record.id, f)
        evaluate(uow, record, f, policy, f"{name} is {s.state.value}")


def erp_invoice(msg: ErpInvoicePosted, uow: UnitOfWork, policy: CasePolicy) -> None:
    if msg.order_id is None:
        return
    i = msg.invoice
    name = f"ERP {msg.erp} invoice {i.number or i.id}"
    found = _erp_order(uow, policy, msg, name)
    if found is None:
        return
    record, f = found
    key = f"{msg.erp}:{i.id}"
    held = f["invoices"].get(key) or {}
    if held and not invoice_supersedes(InvoiceState(held["state"]), i.state):
        return
    now = uow.now()
    visible = held.get("visible_at") or (_iso(now) if i.state in BILLED else None)
    if not _put(f["invoices"], key, {
        "erp": msg.erp, "id": i.id, "number": i.number, "state": i.state.value, "currency": i.currency,
        "total": str(i.total_amount), "lines": _lines(i.lines, -1 if i.total_amount < 0 else 1),
        "posted_at": _iso(i.posted_at), "visible_at": visible}, now):
        return
    _save_record(uow, record.id, f)
    stamped = False
    if i.state in BILLED:
        per_invoice = record.data.setdefault("fulfillment", {}).setdefault("invoices", {})
        if key not in per_invoice:
            per_invoice[key] = {"number": i.number, "posted_at": _iso(i.posted_at or now), "visible_at": visible}
            stamped = True
        stamped |= _stamp(record.data, "invoice_posted_at", i.posted_at or now)
        stamped |= _stamp(record.data, "invoice_visible_at", visible)
    evaluate(uow, record, f, policy, f"{name} is {i.state.value}", stamped)


def wms_report(msg: WmsReport, uow: UnitOfWork, policy: CasePolicy) -> None:
    name = f"{msg.source} event {msg.event_id} ({msg.kind})"
    record = _lock(uow, msg.order_id) if msg.order_id else None
    if record is None:
        _unknown_order(uow, policy, f"{msg.source}:{msg.order_ref}", f"{name} names order {msg.order_ref!r}")
        return
    state = WMS_STATES[msg.kind]
    f = fulfillment_record(uow.conn, record.id)
    ref = msg.shipment_ref or "default"
    key = f"wms:{msg.source}:{ref}"
    held = f["shipments"].get(key) or {}
    at = _iso(msg.occurred_at)
    attributes = {"carrier": held.get("carrier") or msg.carrier,
                  "tracking_number": held.get("tracking_number") or msg.tracking_number,
                  "shipped_at": held.get("shipped_at") or (at if state in LEFT else None),
                  "delivered_at": held.get("delivered_at") or (at if state is Sh.DELIVERED else None)}
    if not held or supersedes(Sh(held["state"]), _time(held.get("occurred_at")), state, msg.occurred_at):
        content = {**attributes, "source": "wms", "wms": msg.source, "shipment_ref": msg.shipment_ref,
                   "state": state.value, "lines": _lines(msg.lines) if msg.lines else held.get("lines", {}),
                   "carrier": msg.carrier or held.get("carrier"),
                   "tracking_number": msg.tracking_number or held.get("tracking_number"),
                   "detail": msg.detail, "occurred_at": at}
    else:  # a late report: what it knows that the held one lacks still counts (a tracking number)
        content = {k: v for k, v in attributes.items() if v is not None and not held.get(k)}
    changed = _put(f["shipments"], key, content, uow.now()) if content else False
    if changed:
        _save_record(uow, record.id, f)
    if state is Sh.EXCEPTION:
        label = msg.tracking_number or held.get("tracking_number") or f"WMS shipment {ref}"
        _problem(uow, policy, f"{record.id}:carrier_exception:{ref}", record,
                 f"{msg.carrier or held.get('carrier') or 'the carrier'} reports an exception for {label}"
                 + (f": {msg.detail}" if msg.detail else ""),
                 "contact the carrier with the tracking number; arrange a new delivery or a replacement "
                 "shipment, and tell the buyer")
    if changed:
        evaluate(uow, record, f, policy, name + (f" ({msg.carrier} {msg.tracking_number})"
                                                  if msg.tracking_number else ""))


def reevaluate(msg: OrderAccepted | OrderAmended, uow: UnitOfWork, policy: CasePolicy) -> None:
    f = fulfillment_record(uow.conn, msg.order_id)
    if not f["shipments"] and not f["invoices"]:
        return  # nothing reported yet: nothing to weigh again (the usual case)
    record = _lock(uow, msg.order_id)
    if record is not None:
        evaluate(uow, record, f, policy, "order accepted" if isinstance(msg, OrderAccepted) else "order amended")


# -- the rules applied --------------------------------------------------------------------------------

def facts(f: Mapping[str, Any]) -> tuple[list[ShipmentFacts], list[InvoiceFacts]]:
    shipments = [
        ShipmentFacts(key, e["source"], Sh(e["state"]), _quantities(e["lines"]), _label(key, e))
        for key, e in sorted(f.get("shipments", {}).items())
    ]
    invoices = [InvoiceFacts(key, InvoiceState(e["state"]), _quantities(e["lines"]))
                for key, e in sorted(f.get("invoices", {}).items())]
    return shipments, invoices


def _quantities(lines: Mapping[str, str]) -> dict[int, Decimal]:
    return {int(k): Decimal(v) for k, v in lines.items()}


def _label(key: str, e: Mapping[str, Any]) -> str:
    if e["source"] == "erp":
        return f"ERP {e['erp']} shipment {e.get('erp_ref') or e['id']}"
    return f"{e['wms']} shipment {e.get('shipment_ref') or '(unnamed)'}"


def evaluate(uow: UnitOfWork, record: OrderRecord, f: Mapping[str, Any], policy: CasePolicy, cause: str,
             changed: bool = False) -> None:
    """Weigh the order's fulfillment record ``f``: move the order, open cases, stamp SLA times; save the
    order if anything of it changed (``changed``: something already did)."""
    now = uow.now()
    ordered = ordered_quantities(record)
    shipments, invoices = facts(f)
    p = progress(ordered, shipments, invoices)
    skus = {line.line_no: record.data.get("lines", {}).get(str(line.line_no), {}).get("sku") or line.sku or ""
            for line in record.order.lines}
    for d in discrepancies(ordered, skus, shipments):
        _problem(uow, policy, f"{record.id}:{d.key}", record, d.summary, d.next_action)
    if record.state in _NOT_TO_SHIP and p.any_shipped:
        _problem(uow, policy, f"{record.id}:shipped_while_{record.state.value}", record,
                 f"goods left the plant for order {record.id}, which is {record.state.value} ({cause})",
                 "get the goods back or re-open the sale with the buyer; correct the ERP order")
    if record.state in TRACK:  # accepted or later: before, the submission flow owns the order's row
        for target in moves(record.state, p.target):
            if can_move(record.state, target):
                record.move_to(target, now, f"{cause}: {p.reasons[target]}"[:500])
                changed = True
        changed |= _stamp_progress(record.data, f, p, shipments, now)
    if changed:
        uow.save_order(record)


def _stamp_progress(data: dict[str, Any], f: Mapping[str, Any], p: Progress, shipments: list[ShipmentFacts],
                    now: dt.datetime) -> bool:
    stamped = False
    if p.started:
        stamped |= _stamp(data, "in_fulfillment_at", now)
    if p.any_shipped:
        stamped |= _stamp(data, "first_shipped_at", now)
    if p.fully_shipped:
        stamped |= _stamp(data, "shipped_at", now)
        left = [f["shipments"][s.key] for s in shipments if s.source == "wms" and s.state in LEFT]
        if left and all(e["state"] == Sh.DELIVERED.value for e in left):
            stamped |= _stamp(data, "delivered_at", max(e["delivered_at"] for e in left))
    if p.target is OrderState.INVOICED:
        stamped |= _stamp(data, "invoiced_at", now)
    return stamped


# -- cases --------------------------------------------------------------------------------------------

def _problem(uow: UnitOfWork, policy: CasePolicy, key: str, record: OrderRecord | None, summary: str,
             next_action: str) -> bool:
    """Open a fulfillment_discrepancy case for problem ``key`` unless one was opened for it before."""
    order_id = record.id if record is not None else None
    case = open_case(CaseType.FULFILLMENT_DISCREPANCY, summary=summary, next_action=next_action, now=uow.now(),
                     policy=policy, order_id=order_id,
                     account_id=record.order.account_id if record is not None else None)
    if not insert_ignore(uow.conn, fulfillment_problems, {"key": key[:300], "case_id": case.id, "order_id": order_id,
                                                          "opened_at": case.opened_at}, ("key",)):
        return False
    uow.cases.add(case)
    uow.emit(CaseOpened(case=case), correlation_id=order_id)
    log.warning("fulfillment discrepancy (case %s): %s", case.id, summary, extra={"correlation_id": order_id})
    return True


def _unknown_order(uow: UnitOfWork, policy: CasePolicy, ref: str, what: str) -> None:
    _problem(uow, policy, f"unknown_order:{ref}", None,
             f"{what}, but the hub has no such order; the report is kept in this case",
             "find the order it is about (hub order id, ERP reference OS-<order>-<plant>, or the channel's order "
             "number) and have the sender report it again with that; resolve with a comment if the goods are "
             "not the hub's")


# -- reading (the API's order view) -------------------------------------------------------------------

def shipments_with_tracking(erp_shipments: list[dict[str, Any]], f: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ERP's shipments of an order (as the document projection keeps them) with what the warehouse
    and carriers reported: a WMS shipment whose ``shipment_ref`` names an ERP shipment (its id or number)
    adds its carrier, tracking number and ``carrier_status`` to it; any other is listed on its own with
    ``source: "wms"``."""
    reported = {k: e for k, e in f.get("shipments", {}).items() if e["source"] == "wms"}
    numbers = {e["id"]: e.get("erp_ref") for e in f.get("shipments", {}).values() if e["source"] == "erp"}
    out = []
    for s in erp_shipments:
        names = {s["id"], numbers.get(s["id"])} - {None, ""}
        match = next((k for k, e in reported.items() if e.get("shipment_ref") in names), None)
        wms = reported.pop(match) if match else {}
        out.append({**s, "source": "erp", "carrier": s.get("carrier") or wms.get("carrier"),
                    "tracking_number": s.get("tracking_number") or wms.get("tracking_number"),
                    "carrier_status": wms.get("state"),
                    "delivered_at": s.get("delivered_at") or wms.get("delivered_at")})
    for key, e in sorted(reported.items()):
        out.append({"id": key, "source": "wms", "plant": "", "state": e["state"], "carrier": e.get("carrier"),
                    "tracking_number": e.get("tracking_number"), "carrier_status": e["state"],
                    "shipped_at": e.get("shipped_at"), "delivered_at": e.get("delivered_at"),
                    "lines": [{"line_no": int(n), "sku": None, "quantity": q} for n, q in e.get("lines", {}).items()]})
    return out


SLA_KEYS = ("in_fulfillment_at", "first_shipped_at", "shipped_at", "delivered_at", "invoice_posted_at",
            "invoice_visible_at", "invoiced_at")


def fulfillment_times(data: Mapping[str, Any]) -> dict[str, str | None]:
    """The order's fulfillment and invoicing timestamps (see the module docstring)."""
    return {key: data.get(key) for key in SLA_KEYS}


# -- registry -------------------------------------------------------------------------------------------

def handler(policy: CasePolicy) -> Any:
    def handle(message: Message, uow: UnitOfWork) -> None:
        if isinstance(message, ErpShipmentChanged):
            erp_shipment(message, uow, policy)
        elif isinstance(message, ErpInvoicePosted):
            erp_invoice(message, uow, policy)
        elif isinstance(message, (WmsShipmentEvent, CarrierTrackingEvent)):
            wms_report(message, uow, policy)
        elif isinstance(message, (OrderAccepted, OrderAmended)):
            reevaluate(message, uow, policy)

    return handle


def register(registry: Registry, policy: CasePolicy) -> None:
    types = (ErpShipmentChanged, ErpInvoicePosted, WmsShipmentEvent, CarrierTrackingEvent, OrderAccepted, OrderAmended)
    registry.add(Subscription(CONSUMER, frozenset(t.TYPE for t in types), handler(policy), "tx", ordered=True))
