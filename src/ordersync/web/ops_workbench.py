"""What the exception workbench shows beside a case so that finance and operations can decide on the page:
per case type, the facts the decision needs (no HTML here).

- credit hold: the customer, the ERP's credit limit and exposure, the hub's open orders and open, overdue
  and recently paid invoices of the account, the order's lines and total, and the limit that would
  release the order;
- invoice dispute: the invoice's lines and amounts, what the buyer said, and finance's answer once given;
- price mismatch: what each line's price difference costs (quantity x difference) and the total.

Also who a case can be assigned to (:func:`assignees`) and the customers' names (read from the ERPs at
most every few minutes, never per row). The ERP is read in the ``reads`` lane; when it does not answer
the panel says so and shows what the hub itself knows.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from ordersync.canonical.v1 import CaseType, ExceptionCase, Invoice, InvoiceState, Order, OrderState
from ordersync.domain.cases import DEFAULT_OWNERS
from ordersync.domain.errors import OrdersyncError
from ordersync.domain.order.parts import load_parts
from ordersync.ports.erp import Lane
from ordersync.reads.accounts import open_amount
from ordersync.runtime.hub import Hub
from ordersync.store.schema import invoice_disputes, invoices, orders
from ordersync.web.people import STAFF, People

#: orders the ERP counts in an account's exposure until they are invoiced (confirmed, not invoiced yet)
OPEN_ORDER_STATES = (OrderState.SUBMITTED_TO_ERP, OrderState.ACCEPTED, OrderState.IN_FULFILLMENT,
                     OrderState.PARTIALLY_SHIPPED, OrderState.SHIPPED, OrderState.BACKORDERED)
OPEN_INVOICE_STATES = (InvoiceState.POSTED.value, InvoiceState.DISPUTED.value)
NAMES_TTL = 300.0
RECENT = 5


# -- who is who ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Assignee:
    """Someone a case can be assigned to: ``key`` is what the case's owner becomes."""

    key: str
    label: str
    kind: str  # team | person


def assignees(hub: Hub) -> list[Assignee]:
    """Whom a case can be handed to, teams first: every configured owner team and every team of the
    configured escalation chains; then every active staff member, by their e-mail address (what the
    case's owner becomes, so that "assigned to me" is ``owner=<my address>``)."""
    policy = hub.workbench.policy
    teams = set(policy.owners.values()) | {DEFAULT_OWNERS[t] for t in CaseType}
    for base, above in policy.escalation.items():
        teams.update([base, *above])
    found = [Assignee(key=t, label=t.replace("_", " ").replace("-", " "), kind="team") for t in sorted(teams)]
    staff = [p for p in People(hub.db, hub.clock).listed(kind=STAFF) if p.active and len(p.email) <= OWNER_MAX]
    found += [Assignee(key=p.email, label=f"{p.name} ({', '.join(r.replace('_', ' ') for r in p.roles)})",
                       kind="person") for p in sorted(staff, key=lambda p: p.name.lower())]
    return found


#: the longest owner a case keeps (``cases.owner_team``); a staff member with a longer address is assigned
#: through their team
OWNER_MAX = 64


_names: dict[int, tuple[float, dict[str, str]]] = {}
_names_lock = threading.Lock()


def account_names(hub: Hub) -> dict[str, str]:
    """Account id -> the customer's name, from every ERP's account list (kept for :data:`NAMES_TTL`
    seconds; an ERP that does not answer leaves its accounts to be shown by id)."""
    now = hub.clock.monotonic()
    with _names_lock:
        kept = _names.get(id(hub))
        if kept is not None and now - kept[0] < NAMES_TTL:
            return kept[1]
    names: dict[str, str] = {}
    if hub.erps is not None:
        erps = hub.erps.in_lane(Lane.READS)
        for name in erps.names():
            try:
                names.update({a.id: a.name for a in erps.erp(name).accounts()})
            except OrdersyncError:
                continue
    with _names_lock:
        _names[id(hub)] = (now, names)
    return names


# -- the order ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    line_no: int
    sku: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    shown: Decimal | None = None  # the price the channel showed the buyer
    difference: Decimal | None = None  # our price minus the shown one, per unit
    cost: Decimal | None = None  # quantity x difference: what honouring the shown price costs


@dataclass(frozen=True)
class OrderFacts:
    id: str
    number: str
    po: str
    account_id: str
    state: str
    currency: str
    lines: list[Line]
    total: Decimal | None


def order_facts(conn: Connection, order_id: str | None) -> OrderFacts | None:
    """The order's priced lines (each with the price the buyer was shown) and its total."""
    if not order_id:
        return None
    row = conn.execute(select(orders).where(orders.c.id == order_id)).first()
    if row is None:
        return None
    placed = Order.model_validate_json(row.body)
    parts = load_parts(row.data)
    shown = {line.line_no: line.unit_price_shown for line in placed.lines}
    lines = []
    for p in parts.lines:
        if p.cancelled:
            continue
        said = shown.get(p.line_no)
        diff = p.unit_price - said if said is not None else None
        lines.append(Line(p.line_no, p.sku, p.quantity, p.unit_price, p.amount, said, diff,
                          (p.quantity * diff).quantize(Decimal("0.01")) if diff is not None else None))
    return OrderFacts(id=row.id, number=row.external_order_number, po=placed.buyer_po_number or "",
                      account_id=row.account_id, state=row.state, currency=placed.currency or "",
                      lines=lines, total=parts.total)


# -- credit hold ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InvoiceFacts:
    id: str
    number: str
    order_id: str
    state: str
    total: Decimal
    open: Decimal  # what is still owed (part payments taken off)
    currency: str
    due_date: dt.date | None
    overdue: bool
    posted_at: dt.datetime | None


@dataclass
class CreditPanel:
    kind: str = "credit"
    customer: str = ""
    account_id: str = ""
    erp_error: str = ""  # the ERP did not answer: the figures are the ones of the order's credit check
    currency: str = ""
    limit: Decimal | None = None
    exposure: Decimal | None = None
    available: Decimal | None = None
    as_of: dt.datetime | None = None
    open_orders: int = 0
    open_orders_total: Decimal = Decimal(0)
    open_invoices: list[InvoiceFacts] = field(default_factory=list)
    open_invoices_total: Decimal = Decimal(0)
    overdue_total: Decimal = Decimal(0)
    paid: list[InvoiceFacts] = field(default_factory=list)  # recently paid invoices (the port reports no payments)
    order: OrderFacts | None = None
    needed_limit: Decimal | None = None  # the lowest limit under which the order passes the credit check
    raise_by: Decimal | None = None


def _invoice(body: str, today: dt.date) -> InvoiceFacts:
    inv = Invoice.model_validate_json(body)
    open_ = inv.state.value in OPEN_INVOICE_STATES
    return InvoiceFacts(id=inv.id, number=inv.number or inv.id, order_id=inv.order_id, state=inv.state.value,
                        total=inv.total_amount, open=open_amount(inv), currency=inv.currency, due_date=inv.due_date,
                        overdue=open_ and inv.due_date is not None and inv.due_date < today, posted_at=inv.posted_at)


def credit_panel(hub: Hub, conn: Connection, case: ExceptionCase) -> CreditPanel:
    order = order_facts(conn, case.order_id)
    account = case.account_id or (order.account_id if order else "")
    panel = CreditPanel(account_id=account, customer=account, order=order)
    _erp_credit(hub, conn, panel, case)
    today = hub.clock.now().date()
    i = invoices.c
    open_rows = conn.execute(select(i.body).where(i.account_id == account, i.state.in_(OPEN_INVOICE_STATES))
                             .order_by(i.issued_at.desc()).limit(50)).scalars()
    panel.open_invoices = sorted((_invoice(b, today) for b in open_rows), key=lambda v: (not v.overdue, v.number))
    panel.open_invoices_total = sum((v.open for v in panel.open_invoices), Decimal(0))
    panel.overdue_total = sum((v.open for v in panel.open_invoices if v.overdue), Decimal(0))
    paid = conn.execute(select(i.body).where(i.account_id == account, i.state == InvoiceState.PAID.value)
                        .order_by(i.updated_at.desc()).limit(RECENT)).scalars()
    panel.paid = [_invoice(b, today) for b in paid]
    o = orders.c
    count, totals = 0, Decimal(0)
    for total in conn.execute(select(o.total).where(o.account_id == account, o.id != (case.order_id or ""),
                                                    o.state.in_([s.value for s in OPEN_ORDER_STATES]))).scalars():
        count += 1
        totals += Decimal(total) if total else Decimal(0)
    panel.open_orders, panel.open_orders_total = count, totals
    if panel.exposure is not None and panel.limit is not None and order is not None and order.total is not None:
        panel.needed_limit = panel.exposure + order.total
        panel.raise_by = max(Decimal(0), panel.needed_limit - panel.limit)
    return panel


def _erp_credit(hub: Hub, conn: Connection, panel: CreditPanel, case: ExceptionCase) -> None:
    """The customer's name and credit as the ERP says now; else the order's credit check when it was held."""
    try:
        if hub.erps is None:
            raise OrdersyncError("no ERP is configured")
        found = hub.erps.in_lane(Lane.READS).for_account(panel.account_id).account(panel.account_id)
        panel.customer, panel.currency = found.name, found.currency
        credit = found.credit or hub.erps.in_lane(Lane.READS).for_account(panel.account_id).credit(panel.account_id)
        panel.limit, panel.exposure, panel.available, panel.as_of = (credit.limit, credit.exposure,
                                                                     credit.available, credit.as_of)
        panel.currency = credit.currency
    except OrdersyncError as exc:
        panel.erp_error = str(exc) or type(exc).__name__
        panel.customer = account_names(hub).get(panel.account_id, panel.account_id)
        row = conn.execute(select(orders.c.data).where(orders.c.id == (case.order_id or ""))).scalar_one_or_none()
        checked = load_parts(row).credit if row is not None else None
        if checked is not None:
            panel.limit, panel.exposure, panel.available, panel.as_of = (checked.limit, checked.exposure,
                                                                         checked.available, checked.as_of)


# -- invoice dispute -------------------------------------------------------------------------------------------

@dataclass
class DisputePanel:
    kind: str = "dispute"
    customer: str = ""
    dispute_id: str = ""
    invoice: Invoice | None = None
    reason: str = ""
    comment: str = ""
    amount: str = ""  # what the buyer disputes ("" : the invoice)
    lines: list[dict[str, Any]] = field(default_factory=list)  # line_no, quantity ("" : the whole line)
    buyer: str = ""
    decision: dict[str, Any] = field(default_factory=dict)  # outcome, answer, amount, by, at once decided
    credit_default: str = ""  # the credit the form proposes: the disputed amount, else the invoice total


def dispute_panel(hub: Hub, conn: Connection, case: ExceptionCase) -> DisputePanel:
    d = invoice_disputes.c
    row = conn.execute(select(d.id, d.erp, d.invoice_id, d.account_id, d.body).where(d.case_id == case.id)
                       .limit(1)).first()
    panel = DisputePanel(customer=account_names(hub).get(case.account_id or "", case.account_id or ""))
    if row is None:
        return panel
    asked = json.loads(row.body)
    i = invoices.c
    body = conn.execute(select(i.body).where(i.erp == row.erp, i.invoice_id == row.invoice_id)).scalar_one_or_none()
    panel.dispute_id = row.id
    panel.invoice = Invoice.model_validate_json(body) if body is not None else None
    panel.reason, panel.comment = str(asked.get("reason") or ""), str(asked.get("comment") or "")
    panel.amount = str(asked.get("amount") or "")
    panel.lines = [{"line_no": x.get("line_no"), "quantity": x.get("quantity") or ""} for x in asked.get("lines", [])]
    panel.buyer = str(asked.get("actor") or "")
    panel.decision = dict(asked.get("decision") or {})
    panel.credit_default = panel.amount or (str(panel.invoice.total_amount) if panel.invoice else "")
    return panel


# -- price mismatch ----------------------------------------------------------------------------------------------

@dataclass
class PricePanel:
    kind: str = "price"
    customer: str = ""
    order: OrderFacts | None = None
    lines: list[Line] = field(default_factory=list)  # the lines whose price differs from the shown one
    total_cost: Decimal = Decimal(0)  # what honouring every shown price costs (negative: the buyer saw more)


def price_panel(hub: Hub, conn: Connection, case: ExceptionCase) -> PricePanel:
    order = order_facts(conn, case.order_id)
    differing = [line for line in (order.lines if order else []) if line.cost]
    return PricePanel(customer=account_names(hub).get(case.account_id or "", case.account_id or ""), order=order,
                      lines=differing, total_cost=sum((line.cost or Decimal(0) for line in differing), Decimal(0)))


def context(hub: Hub, conn: Connection, case: ExceptionCase) -> CreditPanel | DisputePanel | PricePanel | None:
    """The decision panel of the case's type (None: the case page's general facts are all there is)."""
    if case.type is CaseType.CREDIT_HOLD:
        return credit_panel(hub, conn, case)
    if case.type is CaseType.INVOICE_DISPUTE:
        return dispute_panel(hub, conn, case)
    if case.type is CaseType.PRICE_MISMATCH:
        return price_panel(hub, conn, case)
    return None

