"""The sales workflow of the in-memory ERP twin, after Tryton 8.2's.

draft --quote--> quotation --confirm--> processing (moves grouped into a waiting shipment and a draft
invoice, at once, like Tryton's processing right after the confirm's commit). Quote and confirm check
stock (trytond-sale-stock-quantity), confirm then checks credit (trytond-account-credit-limit); a failed
check raises :class:`Warned` and changes nothing, as a Tryton warning rolls the call back. Draft lines
are checked for minimum quantity and pack (trytond-sale-product-quantity): :class:`Refused`.
Amendments, shipping (also partial: the rest goes into a new shipment, as Tryton's re-processing does)
and invoice posting follow Tryton likewise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal

from ordersync.adapters.erp.erp_common import short_lines
from ordersync.adapters.erp.memory_state import ZERO, ErpState, MInvoice, MInvoiceLine, MLine, MMove, MSale, MShipment
from ordersync.devkit import demo_data
from ordersync.ports.erp import SalesOrderLine, SalesOrderRequest, Shortfall


class Refused(Exception):
    """Tryton's ``UserError``: a business rule refused the operation; nothing changed."""


class Warned(Exception):
    """Tryton's ``UserWarning``: ``kind`` is ``stock`` or ``credit``; nothing changed."""

    def __init__(self, kind: str, message: str, shortfalls: Sequence[Shortfall] = ()) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.shortfalls = tuple(shortfalls)


LineValues = tuple[int, str, Decimal, Decimal]  # (sequence, sku, quantity, unit price)


def _touch(st: ErpState, *records: MSale | MShipment | MInvoice) -> None:
    stamp = st.tick()
    for record in records:
        record.stamp = stamp


def _touch_stock(st: ErpState, skus: set[str] | list[str]) -> None:
    stamp = st.tick()
    for sku in skus:
        st.stock_stamps[sku] = stamp


def _check_lines(st: ErpState, lines: Sequence[LineValues]) -> None:
    for _, sku, quantity, _ in lines:
        problem = st.quantity_problem(sku, quantity)
        if problem:
            raise Refused(problem)


def create_sale(
    st: ErpState,
    *,
    reference: str,
    party: str,
    plant: str,
    currency: str,
    ship_to: str,
    po: str | None,
    shipping_date: dt.date | None,
    lines: Sequence[LineValues],
) -> MSale:
    _check_lines(st, lines)
    sale = MSale(
        next(st.ids),
        reference,
        party,
        plant,
        currency,
        ship_to,
        po,
        shipping_date,
        [MLine(next(st.ids), seq, sku, qty, price) for seq, sku, qty, price in lines],
        st.tick(),
    )
    st.sales[sale.id] = sale
    return sale


def write_sale(
    st: ErpState,
    sale: MSale,
    *,
    party: str,
    plant: str,
    ship_to: str,
    po: str | None,
    shipping_date: dt.date | None,
    lines: Sequence[LineValues],
) -> bool:
    """Make a draft match: header and lines by sequence (kept lines keep their ids). True if changed."""
    assert sale.state == "draft"
    wanted = {seq: (sku, qty, price) for seq, sku, qty, price in lines}
    current = {ln.seq: (ln.sku, ln.quantity, ln.unit_price) for ln in sale.lines}
    header = (party, plant, ship_to, po, shipping_date)
    if wanted == current and header == (sale.party, sale.plant, sale.ship_to, sale.po, sale.shipping_date):
        return False
    _check_lines(st, lines)
    sale.party, sale.plant, sale.ship_to, sale.po, sale.shipping_date = header
    kept = {ln.seq: ln for ln in sale.lines}
    sale.lines = []
    for seq, sku, qty, price in lines:
        line = kept.get(seq) or MLine(next(st.ids), seq, sku, qty, price)
        line.sku, line.quantity, line.unit_price = sku, qty, price
        sale.lines.append(line)
    _touch(st, sale)
    return True


def _stock_check(st: ErpState, sale: MSale) -> None:
    request = SalesOrderRequest(
        reference=sale.reference,
        order_id="-",
        account_id=sale.party,
        plant=sale.plant,
        currency=sale.currency,
        lines=tuple(
            SalesOrderLine(line_no=ln.seq, sku=ln.sku, quantity=ln.quantity, unit_price=ln.unit_price)
            for ln in sale.lines
            if ln.quantity > 0
        ),
    )
    short = short_lines(request, st.available_for(sale))
    if short:
        first = short[0]
        raise Warned(
            "stock",
            f'The forecast quantity ({first.available}) for line "{first.requested} [{first.sku}] '
            f'@ [{sale.reference}]" is lower than its quantity ({first.requested}).',
            short,
        )


def quote(st: ErpState, sale: MSale, *, accept_shortfall: bool) -> None:
    if sale.state != "draft":
        return
    if not accept_shortfall:
        _stock_check(st, sale)
    sale.state = "quotation"
    sale.number = sale.number or str(next(st.sale_numbers))
    sale.sale_date = sale.sale_date or st.today()
    _touch(st, sale)


def confirm(st: ErpState, sale: MSale, *, credit_approved: bool, accept_shortfall: bool) -> None:
    if sale.state != "quotation":
        return
    # Tryton's order: trytond-sale-stock-quantity checks before trytond-sale-credit-limit (MRO)
    if not accept_shortfall:
        _stock_check(st, sale)
    if not credit_approved:
        limit, amount = st.customers[sale.party].credit_limit, sale.amount
        if limit is not None and amount > 0 and st.exposure(sale.party) + amount > limit:
            raise Warned(
                "credit",
                f'The party "{st.customers[sale.party].name}" will exceed their {limit} credit limit by {amount}.',
            )
    sale.state = "confirmed"
    process(st, sale)


def draft(st: ErpState, sale: MSale) -> None:
    if sale.state == "quotation":
        sale.state = "draft"
        _touch(st, sale)


def cancel(st: ErpState, sale: MSale) -> None:
    if sale.state in ("draft", "quotation"):
        sale.state = "cancelled"
        _touch(st, sale)


def process(st: ErpState, sale: MSale) -> None:
    """Tryton's ``Sale.process``: moves for what is left to ship (one new shipment) and a draft invoice
    for what is left to invoice; the sale is then processing."""
    today = st.today()
    planned = max(sale.sale_date or today, sale.shipping_date or today, today)
    shipment: MShipment | None = None
    touched: set[str] = set()
    for line in sale.lines:
        moved = sum(
            (m.quantity for m in st.moves.values() if m.line_id == line.id and (m.state != "cancelled" or m.ignored)),
            ZERO,
        )
        left = line.quantity - moved
        if left <= 0:
            continue
        if shipment is None:
            shipment = MShipment(next(st.ids), str(next(st.shipment_numbers)), sale.id, sale.plant, planned, st.tick())
            st.shipments[shipment.id] = shipment
        move = MMove(next(st.ids), sale.id, line.id, line.sku, sale.plant, left, shipment.id, planned)
        st.moves[move.id] = move
        touched.add(line.sku)
    to_invoice = [(line, line.quantity - st.invoiced(line, posted_only=False)) for line in sale.lines]
    invoice_lines = [MInvoiceLine(line.id, line.seq, line.sku, qty, line.unit_price) for line, qty in to_invoice if qty]
    if invoice_lines:
        invoice = MInvoice(next(st.ids), sale.id, sale.party, invoice_lines, st.tick())
        st.invoices[invoice.id] = invoice
    if touched:
        _touch_stock(st, touched)
    sale.state = "processing"
    _touch(st, sale)


def shipment_lines(st: ErpState, shipment: MShipment) -> list[MMove]:
    return [m for m in st.moves.values() if m.shipment_id == shipment.id]


def amend_quantities(st: ErpState, sale: MSale, quantities: Mapping[int, Decimal]) -> None:
    """trytond-sale-amendment: set the quantities, clear waiting shipments and draft invoices, process."""
    for seq, quantity in quantities.items():
        line = sale.line(seq)
        assert line is not None
        line.quantity = quantity
    touched: set[str] = set()
    for shipment in [s for s in st.shipments.values() if s.sale_id == sale.id and s.state in ("draft", "waiting")]:
        for move in shipment_lines(st, shipment):
            if move.state == "draft":
                del st.moves[move.id]
                touched.add(move.sku)
        if not shipment_lines(st, shipment):
            del st.shipments[shipment.id]
    for invoice in [i for i in st.invoices.values() if i.sale_id == sale.id and i.state == "draft"]:
        del st.invoices[invoice.id]
    if touched:
        _touch_stock(st, touched)
    process(st, sale)


def plan_shipment(st: ErpState, shipment: MShipment, day: dt.date) -> None:
    shipment.planned_date = day
    for move in shipment_lines(st, shipment):
        if move.state == "draft":
            move.planned_date = day
    _touch(st, shipment)


def ship(st: ErpState, sale: MSale, quantities: Mapping[int, Decimal] | None = None, *,
         carrier: str | None = None, tracking: str | None = None) -> None:
    """Ship the sale's waiting shipments (assign, pick, pack, done); ``quantities`` (by line number)
    ships less of some lines: the rest goes into a new shipment when the sale is processed again.
    Each goes with ``carrier`` (default the first demo carrier; ``""``: none, a pickup) and ``tracking``
    (default a number in the carrier's style from the shipment's id), as the Tryton simulator does."""
    today = st.today()
    name = demo_data.CARRIERS[0]["name"] if carrier is None else carrier
    if name and name not in st.carriers:
        raise LookupError(f"no carrier {name!r} in the ERP")
    lines = {ln.id: ln for ln in sale.lines}
    touched: set[str] = set()
    for shipment in [s for s in st.shipments.values() if s.sale_id == sale.id and s.state in ("draft", "waiting")]:
        for move in shipment_lines(st, shipment):
            if move.state != "draft":
                continue
            if quantities is not None and lines[move.line_id].seq in quantities:
                move.quantity = min(move.quantity, quantities[lines[move.line_id].seq])
            if move.quantity <= 0:
                del st.moves[move.id]
                continue
            move.state, move.effective_date = "done", today
            st.on_hand[(move.sku, move.plant)] = st.on_hand.get((move.sku, move.plant), ZERO) - move.quantity
            touched.add(move.sku)
        shipment.state, shipment.effective_date = "done", today
        shipment.carrier = name or None
        if tracking is not None or not name:
            shipment.tracking = tracking or None
        else:
            shipment.tracking = demo_data.tracking_number(st.carriers[name], shipment.id)
        _touch(st, shipment)
    if touched:
        _touch_stock(st, touched)
    process(st, sale)


def ship_short(st: ErpState, sale: MSale, quantities: Mapping[int, Decimal], *,
               carrier: str | None = None, tracking: str | None = None) -> None:
    """Ship ``quantities`` (by line number) and cancel whatever is left to ship: the cancelled moves are
    ignored by the sale (Tryton's shipment exception handled with "ignore"), so nothing ships again."""
    ship(st, sale, quantities, carrier=carrier, tracking=tracking)
    touched: set[str] = set()
    for shipment in [s for s in st.shipments.values() if s.sale_id == sale.id and s.state in ("draft", "waiting")]:
        for move in shipment_lines(st, shipment):
            if move.state == "draft":
                move.state, move.ignored = "cancelled", True
                touched.add(move.sku)
        shipment.state = "cancelled"
        _touch(st, shipment)
    if touched:
        _touch_stock(st, touched)
    process(st, sale)


def post_invoices(st: ErpState, sale: MSale) -> None:
    days = st.customers[sale.party].payment_days
    for invoice in [i for i in st.invoices.values() if i.sale_id == sale.id and i.state == "draft"]:
        invoice.state, invoice.number = "posted", str(next(st.invoice_numbers))
        invoice.invoice_date = st.today()
        invoice.due_date = invoice.invoice_date + dt.timedelta(days=days)
        _touch(st, invoice)


def pay_invoice(st: ErpState, number: str, amount: Decimal) -> None:
    """A payment of ``amount`` on posted invoice ``number``; paid in full, the invoice is ``paid``
    (Tryton reconciles the payment with the invoice's lines to pay)."""
    invoice = next((i for i in st.invoices.values() if i.number == number), None)
    if invoice is None or invoice.state != "posted":
        raise Refused(f"no posted invoice {number!r} to pay")
    invoice.paid += amount
    if invoice.paid >= invoice.total:
        invoice.state = "paid"
    _touch(st, invoice)


def set_stock(st: ErpState, sku: str, plant: str, quantity: Decimal) -> None:
    st.on_hand[(sku, plant)] = quantity
    _touch_stock(st, [sku])


def set_price(st: ErpState, account_id: str, sku: str, price: Decimal) -> None:
    """Give ``sku`` a fixed price on the customer's price list (its first line for that SKU)."""
    price_list = st.price_lists[st.customers[account_id].price_list]
    rules = [r for r in price_list.rules if r.get("sku") != sku or set(r) - {"sku", "price"}]
    price_list.rules = [{"sku": sku, "price": str(price)}, *rules]
    price_list.stamp = st.tick()


def seed_open_sales(st: ErpState) -> None:
    """The profile's open sales, confirmed as ``provision.py`` does (warnings skipped)."""
    for seeded in st.profile["open_sales"]:
        lines = [
            (
                i,
                ln["sku"],
                Decimal(ln["quantity"]),
                st.price(seeded["customer"], ln["sku"], Decimal(ln["quantity"])) or ZERO,
            )
            for i, ln in enumerate(seeded["lines"], 1)
        ]
        sale = create_sale(
            st,
            reference=seeded["reference"],
            party=seeded["customer"],
            plant=seeded["warehouse"],
            currency=st.currency,
            ship_to=seeded["ship_to"],
            po=None,
            shipping_date=None,
            lines=lines,
        )
        quote(st, sale, accept_shortfall=True)
        confirm(st, sale, credit_approved=True, accept_shortfall=True)
