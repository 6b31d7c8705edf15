"""The buyer portal's quick order: part numbers and quantities typed or pasted (a CSV of ``part,quantity``
per line, with or without a header, as a spreadsheet exports it), a preview that says line by line what
was recognised and what not and why, then the recognised lines into the cart.

Why a preview before the cart: a buyer reorders from their own purchasing system, in their own part
numbers; a typo or a quantity their pack size does not allow must show on the line it is on, before
anything is added. A part is our SKU or the account's own part number (the catalog knows both, as the
intake does); a line's quantity is checked with the cart's rules (:func:`.cart.line_problems`).

Why the preview is a GET: it changes nothing, so it needs no post/redirect/get; the one form that changes
the cart (``/quick-order/add``) parses the same text again (never trusting what the preview showed) and
answers with a redirect to the cart."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from ordersync.api import catalog
from ordersync.api.keys import Scope
from ordersync.channels.portal.cart import MAX_CART_LINES, Cart, line_problems, quantity
from ordersync.channels.portal.catalog import by_part, catalog_items
from ordersync.channels.portal.session import Buyer, hub_of, page, render, router, text, with_cart

#: the most characters and lines read from one paste (a cart holds at most MAX_CART_LINES lines)
MAX_TEXT = 8000
MAX_LINES = 100
SEPARATORS = re.compile(r"[,;\t]")
DECIMAL_COMMA = re.compile(r"^\d+,\d+$")
HEADER_WORDS = frozenset({"part", "part number", "part no", "part no.", "partnumber", "sku", "item", "article",
                          "artikel", "article number", "material", "product", "reference", "référence"})


@dataclass
class QuickLine:
    """One line of the paste: what was typed, what it was recognised as, and why it cannot be added."""

    line_no: int
    raw: str
    part: str = ""
    quantity: Decimal | None = None
    item: dict[str, Any] | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.item is not None and self.quantity is not None and not self.reasons


def _fields(line: str) -> list[str]:
    """A line's fields: split at a comma, semicolon or tab when it has one, else at white space. With a
    semicolon or tab as separator, "2,5" is a decimal comma (a German or French spreadsheet's export)."""
    if SEPARATORS.search(line):
        separator = ";" if ";" in line else ("\t" if "\t" in line else ",")
        parts = [p.strip().strip('"').strip() for p in line.split(separator)]
        if separator != ",":
            parts = [p.replace(",", ".") if DECIMAL_COMMA.match(p) else p for p in parts]
        return parts
    return line.split()


def _is_header(fields: list[str]) -> bool:
    first = fields[0].lower() if fields else ""
    second = fields[1] if len(fields) > 1 else ""
    return first in HEADER_WORDS or (quantity(second) is None and second.isalpha() and not first[:1].isdigit()
                                     and first.isalpha())


def parse(raw: str, items: list[dict[str, Any]], cart: Cart, account_id: str) -> tuple[list[QuickLine], bool]:
    """The paste's lines, each recognised or with its reasons; and whether a header line was skipped.
    A line's quantity is checked together with what the cart and the lines above have of its item."""
    known = by_part(items)
    lines: list[QuickLine] = []
    running = dict(cart.lines)
    header = False
    numbered = [(n, line.strip()) for n, line in enumerate(raw[:MAX_TEXT].splitlines(), start=1) if line.strip()]
    for index, (n, line) in enumerate(numbered[:MAX_LINES]):
        fields = [f for f in _fields(line) if f != ""]
        if index == 0 and _is_header(fields):
            header = True
            continue
        entry = QuickLine(n, line[:200], part=fields[0][:120] if fields else "")
        lines.append(entry)
        if len(fields) < 2:
            entry.reasons.append("no quantity: write the part number, then the quantity")
            continue
        if len(fields) > 2:
            entry.reasons.append("more than two values: write the part number, then the quantity")
            continue
        entry.quantity = quantity(fields[1])
        entry.item = known.get(entry.part.upper())
        if entry.item is None:
            entry.reasons.append(f"{entry.part} is not in your catalog (neither our SKU nor one of your part numbers)")
        if entry.quantity is None:
            entry.reasons.append(f"{fields[1][:30]} is not a quantity (a positive number)")
        if entry.item is None or entry.quantity is None:
            continue
        sku = entry.item["sku"]
        before = running.get(sku, Decimal(0))
        entry.reasons.extend(line_problems(entry.item, before + entry.quantity, account_id))
        if entry.ok:
            running[sku] = before + entry.quantity
    if len(numbered) > MAX_LINES:
        lines.append(QuickLine(numbered[MAX_LINES][0], "…", reasons=[f"only the first {MAX_LINES} lines are read"]))
    new_skus = {e.item["sku"] for e in lines if e.ok and e.item} - {s for s, _ in cart.lines}
    if len(cart.lines) + len(new_skus) > MAX_CART_LINES:
        for e in lines:
            if e.ok and e.item and e.item["sku"] in new_skus:
                e.reasons.append(f"a cart holds at most {MAX_CART_LINES} items: order the rest separately")
    return lines, header


@router.get("/quick-order")
@page(Scope.CATALOG_READ)
async def quick_order_page(request: Request, buyer: Buyer, lines: str = "") -> Response:
    """The quick-order form; with ``lines``, the preview of what they were recognised as."""
    raw = lines[:MAX_TEXT]
    parsed: list[QuickLine] = []
    header = False
    prices: dict[str, Any] = {}
    if raw.strip():
        parsed, header = parse(raw, await catalog_items(request, buyer), buyer.cart, buyer.account_id)
        skus = sorted({e.item["sku"] for e in parsed if e.ok and e.item})
        if skus:
            answer = await catalog.prices_answer(hub_of(request), buyer.principal, skus)
            prices = {p["sku"]: p for p in answer["prices"]}
    return render(request, "quick_order.html", buyer, raw=raw, lines=parsed, header=header, prices=prices,
                  recognised=sum(1 for e in parsed if e.ok), refused=sum(1 for e in parsed if not e.ok))


@router.post("/quick-order/add")
@page(Scope.CATALOG_READ, posted=True)
async def quick_order_add(request: Request, buyer: Buyer, form: FormData) -> Response:
    """The recognised lines of the paste into the cart (parsed again: the preview is not trusted); the
    lines that cannot be added stay out. Then the cart."""
    parsed, _ = parse(text(form, "lines", MAX_TEXT), await catalog_items(request, buyer), buyer.cart,
                      buyer.account_id)
    added = 0
    for entry in parsed:
        if entry.ok and entry.item is not None and entry.quantity is not None:
            buyer.cart.add(entry.item["sku"], entry.quantity)
            added += 1
    return with_cart(RedirectResponse(f"/portal/cart?added={added}", status_code=303), request, buyer.cart)
