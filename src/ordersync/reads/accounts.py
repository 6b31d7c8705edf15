"""The read side of what happens after an order, per account: one invoice, the account's open balance,
the state of each invoice's dispute case, and the account's return requests.

Why a module of its own: the portal's invoice and return pages need account-wide answers (the balance
over every invoice, not the page shown; every return of the account) that the order view, which reads
one order, does not give. Plain queries over the projections, no decisions."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from ordersync.canonical.v1 import Invoice, InvoiceState
from ordersync.reads.pages import older_than
from ordersync.store.schema import cases, erp_returns, invoice_disputes, invoices, orders, return_requests

#: invoice states with money still owed (a disputed invoice is owed until finance decides)
OPEN_STATES = frozenset({InvoiceState.POSTED.value, InvoiceState.DISPUTED.value})


def invoice_of(conn: Connection, account_id: str, invoice_id: str) -> Invoice | None:
    """The account's invoice ``invoice_id`` (None: unknown, or another account's)."""
    body = conn.execute(select(invoices.c.body).where(invoices.c.invoice_id == invoice_id,
                                                      invoices.c.account_id == account_id)
                        .order_by(invoices.c.erp).limit(1)).scalar_one_or_none()
    return Invoice.model_validate_json(body) if body is not None else None


def invoices_by_id(conn: Connection, account_id: str, invoice_ids: Iterable[str]) -> dict[str, Invoice]:
    """The account's invoices of ``invoice_ids``, as last reported (for what a page's summary leaves out)."""
    rows = conn.execute(select(invoices.c.body).where(invoices.c.account_id == account_id,
                                                      invoices.c.invoice_id.in_(list(invoice_ids))))
    found = (Invoice.model_validate_json(body) for body in rows.scalars())
    return {i.id: i for i in found}


def open_amount(invoice: Invoice) -> Decimal:
    """What is still owed on an invoice: nothing once paid or cancelled; while posted (or disputed) what
    the ERP says is left to pay after part payments, or the total when it does not say."""
    if invoice.state.value not in OPEN_STATES:
        return Decimal("0")
    return invoice.open_amount if invoice.open_amount is not None else invoice.total_amount


def open_balance(conn: Connection, account_id: str) -> dict[str, Decimal]:
    """The account's open balance per currency, over all its invoices (not one page of them)."""
    rows = conn.execute(select(invoices.c.body).where(invoices.c.account_id == account_id,
                                                      invoices.c.state.in_(sorted(OPEN_STATES))))
    totals: dict[str, Decimal] = {}
    for body in rows.scalars():
        invoice = Invoice.model_validate_json(body)
        totals[invoice.currency] = totals.get(invoice.currency, Decimal("0")) + open_amount(invoice)
    return dict(sorted(totals.items()))


def overdue_amount(conn: Connection, account_id: str, today: dt.date) -> dict[str, Decimal]:
    """The part of the open balance past its due date, per currency."""
    rows = conn.execute(select(invoices.c.body).where(invoices.c.account_id == account_id,
                                                      invoices.c.state.in_(sorted(OPEN_STATES))))
    totals: dict[str, Decimal] = {}
    for body in rows.scalars():
        invoice = Invoice.model_validate_json(body)
        if invoice.due_date is not None and invoice.due_date < today:
            totals[invoice.currency] = totals.get(invoice.currency, Decimal("0")) + open_amount(invoice)
    return dict(sorted(totals.items()))


def dispute_cases(conn: Connection, account_id: str, invoice_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """The latest dispute of each of the account's invoices: its case's id and state (open, in progress,
    resolved), so a page can say how the dispute stands, not only that there was one; once finance has
    decided, ``decision`` (``credited`` or ``rejected``, else "") and ``answer``, the text written for the
    buyer (the workbench's credit and reject actions), and ``credit``, the amount credited ("" if none)."""
    d = invoice_disputes.c
    rows = conn.execute(select(d.invoice_id, d.case_id, d.opened_at, d.body, cases.c.state)
                        .join(cases, cases.c.id == d.case_id)
                        .where(d.account_id == account_id, d.invoice_id.in_(list(invoice_ids)))
                        .order_by(d.opened_at))
    return {r.invoice_id: {"case_id": r.case_id, "state": r.state, **_decision(r.body)} for r in rows}


def _decision(body: str) -> dict[str, str]:
    decided = json.loads(body).get("decision") or {}
    return {"decision": str(decided.get("outcome") or ""), "answer": str(decided.get("answer") or ""),
            "credit": str(decided.get("amount") or "")}


def order_numbers(conn: Connection, order_ids: Iterable[str]) -> dict[str, str]:
    """The orders' numbers as their channel gave them (what a buyer recognises), by order id."""
    rows = conn.execute(select(orders.c.id, orders.c.external_order_number).where(orders.c.id.in_(set(order_ids))))
    return {r.id: r.external_order_number for r in rows}


def account_returns(conn: Connection, account_id: str, limit: int, after: list[Any] | None = None
                    ) -> list[tuple[dict[str, Any], list[Any]]]:
    """Up to ``limit`` return requests of the account, newest first, each with its cursor key, the ERP
    returns it became (``erp_returns``) and its order's number (``order_number``)."""
    r = return_requests.c
    key = [r.requested_at, r.id]
    query = select(r.body, *key).where(r.account_id == account_id)
    if after is not None:
        query = query.where(older_than(key, after))
    rows = list(conn.execute(query.order_by(*(c.desc() for c in key)).limit(limit)))
    ids = [row[2] for row in rows]
    made: dict[str, list[dict[str, Any]]] = {}
    for e in conn.execute(select(erp_returns.c.return_id, erp_returns.c.plant, erp_returns.c.reference,
                                 erp_returns.c.number, erp_returns.c.state)
                          .where(erp_returns.c.return_id.in_(ids))
                          .order_by(erp_returns.c.plant, erp_returns.c.reference)).mappings():
        made.setdefault(e["return_id"], []).append({k: e[k] for k in ("plant", "reference", "number", "state")})
    bodies = [json.loads(row[0]) for row in rows]
    numbers = order_numbers(conn, {b["order_id"] for b in bodies})
    return [({**body, "erp_returns": made.get(row[2], []), "order_number": numbers.get(body["order_id"], "")},
             list(row[1:])) for body, row in zip(bodies, rows, strict=True)]
