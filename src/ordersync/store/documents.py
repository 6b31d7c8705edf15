"""Repositories of what the ERP, the warehouse and the buyers told the hub about an order beyond the order
itself: the copies of the ERP's shipments and invoices, the order's fulfillment record, return requests
and their ERP returns, invoice disputes, warehouse events, and the order counters."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select, update

from ordersync.canonical.v1 import CaseState, Invoice, ReturnAuthorization, ReturnState, Shipment
from ordersync.domain.fulfillment import FulfillmentRecord
from ordersync.store.schema import (
    cases,
    erp_returns,
    fulfillment_problems,
    inbound_webhook_attempts,
    invoice_disputes,
    invoices,
    order_counters,
    order_fulfillment,
    orders,
    return_requests,
    shipments,
    wms_events,
)
from ordersync.store.sql import insert_ignore, upsert_add_many, upsert_row


def _account_of(conn: Connection, order_id: str | None) -> str | None:
    if not order_id:
        return None
    account: str | None = conn.execute(select(orders.c.account_id).where(orders.c.id == order_id)).scalar_one_or_none()
    return account


class DocumentRepository:
    """The hub's copies of the ERP's shipments and invoices of hub orders, filed under the hub order's
    account (the account the API isolates by), upserted by (ERP, document id)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def keep_shipment(self, erp: str, reference: str | None, order_id: str | None, shipment: Shipment,
                      at: dt.datetime) -> bool:
        """Store the shipment as last reported; False when the hub has no such order (not kept)."""
        account = _account_of(self.conn, order_id)
        if account is None:
            return False
        values = {"order_id": order_id, "account_id": account, "reference": reference,
                  "state": shipment.state.value, "body": shipment.model_dump_json(), "updated_at": at}
        key = {"erp": erp, "shipment_id": shipment.id}
        if not insert_ignore(self.conn, shipments, {**key, **values, "first_seen_at": at}, ("erp", "shipment_id")):
            self.conn.execute(update(shipments).where(shipments.c.erp == erp, shipments.c.shipment_id == shipment.id)
                              .values(**values))
        return True

    def keep_invoice(self, erp: str, reference: str | None, order_id: str | None, invoice: Invoice,
                     at: dt.datetime) -> bool:
        """Store the invoice as last reported; False when the hub has no such order (not kept)."""
        account = _account_of(self.conn, order_id)
        if account is None:
            return False
        values = {"order_id": order_id, "account_id": account, "reference": reference, "number": invoice.number,
                  "state": invoice.state.value, "body": invoice.model_dump_json(), "updated_at": at}
        key = {"erp": erp, "invoice_id": invoice.id}
        issued = invoice.posted_at or at
        if not insert_ignore(self.conn, invoices, {**key, **values, "issued_at": issued}, ("erp", "invoice_id")):
            if invoice.posted_at is not None:  # a draft first seen unposted takes its posting time once known
                values["issued_at"] = invoice.posted_at
            self.conn.execute(update(invoices).where(invoices.c.erp == erp, invoices.c.invoice_id == invoice.id)
                              .values(**values))
        return True

    def shipments(self, order_id: str) -> list[Shipment]:
        """The order's shipments as the ERP last reported them."""
        rows = self.conn.execute(select(shipments.c.body).where(shipments.c.order_id == order_id)).scalars()
        return [Shipment.model_validate_json(body) for body in rows]

    def invoice_for_update(self, invoice_id: str, account_id: str) -> tuple[str, Invoice] | None:
        """(ERP, invoice) of the account's invoice with this id, locked for this transaction."""
        i = invoices.c
        row = self.conn.execute(
            select(i.erp, i.body).where(i.invoice_id == invoice_id, i.account_id == account_id)
            .order_by(i.issued_at.desc()).limit(1).with_for_update()).first()
        return (row[0], Invoice.model_validate_json(row[1])) if row is not None else None


class FulfillmentRepository:
    """The order's fulfillment record (beside the order, see ``flows/handlers/fulfillment.py``) and the
    problems a case was opened for (each once)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, order_id: str) -> FulfillmentRecord:
        body = self.conn.execute(select(order_fulfillment.c.body).where(order_fulfillment.c.order_id == order_id)
                                 ).scalar_one_or_none()
        return FulfillmentRecord.model_validate_json(body) if body else FulfillmentRecord()

    def save(self, order_id: str, record: FulfillmentRecord, at: dt.datetime) -> None:
        body = json.dumps(record.model_dump(mode="json", exclude_none=True), sort_keys=True)
        upsert_row(self.conn, order_fulfillment, {"order_id": order_id}, {"body": body, "updated_at": at})

    def claim_problem(self, key: str, case_id: str, order_id: str | None, at: dt.datetime) -> bool:
        """Remember that problem ``key`` has its case; False if one was opened for it before."""
        return insert_ignore(self.conn, fulfillment_problems,
                             {"key": key, "case_id": case_id, "order_id": order_id, "opened_at": at}, ("key",))


class ReturnRepository:
    """Return requests (the buyer's) and the ERP returns each became (one per plant)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, request: ReturnAuthorization, at: dt.datetime) -> None:
        self.conn.execute(return_requests.insert().values(
            id=request.id, order_id=request.order_id, account_id=request.account_id, state=request.state.value,
            body=request.model_dump_json(), requested_at=at, updated_at=at))

    def get(self, return_id: str) -> ReturnAuthorization | None:
        body = self.conn.execute(select(return_requests.c.body).where(return_requests.c.id == return_id)
                                 ).scalar_one_or_none()
        return ReturnAuthorization.model_validate_json(body) if body is not None else None

    def save(self, request: ReturnAuthorization, at: dt.datetime) -> None:
        self.conn.execute(update(return_requests).where(return_requests.c.id == request.id).values(
            state=request.state.value, body=request.model_dump_json(), updated_at=at))

    def requested_quantities(self, order_id: str, before: ReturnAuthorization | None = None) -> dict[int, Decimal]:
        """What the order's return requests ask for per line (refused ones excepted); with ``before``, only
        the requests made before that one."""
        r = return_requests.c
        rows = self.conn.execute(select(r.id, r.requested_at, r.body).where(
            r.order_id == order_id, r.state != ReturnState.REJECTED.value))
        out: dict[int, Decimal] = {}
        for return_id, requested_at, body in rows:
            if before is not None and (requested_at, return_id) >= (before.requested_at, before.id):
                continue
            for line in json.loads(body)["lines"]:
                out[line["line_no"]] = out.get(line["line_no"], Decimal(0)) + Decimal(line["quantity"])
        return out

    def record_part(self, erp: str, reference: str, *, return_id: str, plant: str, erp_return_id: str | None,
                    number: str | None, state: ReturnState, at: dt.datetime) -> None:
        upsert_row(self.conn, erp_returns, {"erp": erp, "reference": reference},
                   {"return_id": return_id, "plant": plant, "erp_return_id": erp_return_id, "number": number,
                    "state": state.value, "updated_at": at})

    def part(self, erp: str, reference: str) -> tuple[str, ReturnState] | None:
        """(return request id, state) of the ERP return with this reference, if it is one of the hub's."""
        row = self.conn.execute(select(erp_returns.c.return_id, erp_returns.c.state).where(
            erp_returns.c.erp == erp, erp_returns.c.reference == reference)).first()
        return (row[0], ReturnState(row[1])) if row is not None else None

    def set_part_state(self, erp: str, reference: str, state: ReturnState, at: dt.datetime) -> None:
        self.conn.execute(update(erp_returns).where(erp_returns.c.erp == erp, erp_returns.c.reference == reference)
                          .values(state=state.value, updated_at=at))

    def part_states(self, return_id: str) -> list[ReturnState]:
        return [ReturnState(s) for s in self.conn.execute(
            select(erp_returns.c.state).where(erp_returns.c.return_id == return_id)).scalars()]


class DisputeRepository:
    """Invoice disputes; one is open while its case is."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def open_for(self, erp: str, invoice_id: str) -> tuple[str, str] | None:
        """(dispute id, case id) of the invoice's open dispute, if any."""
        d = invoice_disputes.c
        row = self.conn.execute(
            select(d.id, d.case_id).join(cases, cases.c.id == d.case_id)
            .where(d.erp == erp, d.invoice_id == invoice_id, cases.c.state != CaseState.RESOLVED.value)
            .order_by(d.opened_at.desc()).limit(1)).first()
        return (row[0], row[1]) if row is not None else None

    def add(self, dispute_id: str, *, erp: str, invoice_id: str, order_id: str, account_id: str, case_id: str,
            at: dt.datetime, request: Mapping[str, Any]) -> None:
        self.conn.execute(invoice_disputes.insert().values(
            id=dispute_id, erp=erp, invoice_id=invoice_id, order_id=order_id, account_id=account_id,
            case_id=case_id, opened_at=at, body=json.dumps(dict(request))))

    def for_case(self, case_id: str) -> tuple[str, dict[str, Any]] | None:
        """(dispute id, what the buyer asked) of the dispute a case was opened for."""
        d = invoice_disputes.c
        row = self.conn.execute(select(d.id, d.body).where(d.case_id == case_id).limit(1)).first()
        return (row[0], json.loads(row[1])) if row is not None else None

    def decide(self, dispute_id: str, decision: Mapping[str, Any]) -> None:
        """Keep finance's decision (outcome, the answer the buyer sees, amount, by, at) on the dispute."""
        d = invoice_disputes.c
        body = self.conn.execute(select(d.body).where(d.id == dispute_id)).scalar_one()
        kept = {**json.loads(body), "decision": dict(decision)}
        self.conn.execute(update(invoice_disputes).where(d.id == dispute_id).values(body=json.dumps(kept)))


class WmsRepository:
    """Warehouse events as received (each event id once) and every signed call's outcome."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def event(self, source: str, event_id: str) -> tuple[str, str | None] | None:
        """(body digest, order id) of an event received before."""
        row = self.conn.execute(select(wms_events.c.body_sha256, wms_events.c.order_id).where(
            wms_events.c.source == source, wms_events.c.event_id == event_id)).first()
        return (row[0], row[1]) if row is not None else None

    def add_event(self, source: str, event_id: str, *, body_sha256: str, kind: str, order_id: str | None,
                  message_id: str, at: dt.datetime) -> bool:
        """Remember the event; False if a concurrent request with the same id was first."""
        return insert_ignore(self.conn, wms_events, {
            "source": source, "event_id": event_id, "body_sha256": body_sha256, "type": kind, "order_id": order_id,
            "message_id": message_id, "received_at": at}, ("source", "event_id"))

    def record_attempt(self, *, source: str, at: dt.datetime, outcome: str, reason: str, body_sha256: str,
                       key_id: str | None = None, event_id: str | None = None, detail: str = "") -> None:
        self.conn.execute(inbound_webhook_attempts.insert().values(
            source=source, received_at=at, outcome=outcome, reason=reason, key_id=key_id,
            event_id=event_id[:200] if event_id else None, body_sha256=body_sha256, detail=detail[:2000]))


class CounterRepository:
    """Named counters (orders per state, per day); increments, made exactly-once by the consumer's inbox."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, amounts: Mapping[str, int]) -> None:
        upsert_add_many(self.conn, order_counters, "name", "value", dict(amounts))
