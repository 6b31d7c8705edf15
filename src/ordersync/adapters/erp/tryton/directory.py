"""Master data of one Tryton database, cached: the ids behind the hub's codes.

The hub names things by business keys (party code, product code, warehouse code, the address key kept
in ``building_name``); Tryton's RPC wants record ids. Reading them on every call would double the calls
of a submission, so the adapter loads them once and reloads when asked for a key it does not know (a
product created in the ERP since): a miss costs one reload, then :class:`UnknownItem`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp.tryton.rpc import TrytonClient
from ordersync.ports.erp import UnknownItem

_ALL = {"active_test": False}
# a reload is only worth it when the data may have changed; protects Tryton from a storm of misses
_MIN_RELOAD_SECONDS = 2.0


@dataclass(frozen=True)
class PartyRow:
    """A customer party: its id and what a sale of it needs."""

    id: int
    code: str
    name: str
    active: bool
    price_list: int | None
    price_list_name: str | None
    payment_term: int | None
    payment_term_name: str | None = None
    payment_term_days: int | None = None  # when the whole amount is due a number of days after the invoice
    tax_id: str | None = None  # the code of the party's tax identifier (the first of a tax type)


@dataclass(frozen=True)
class AddressRow:
    """A party address; ``key`` is the seed's stable handle (``building_name``), else ``addr-<id>``."""

    id: int
    key: str
    party: int
    street: str
    postal_code: str
    city: str
    country: str
    subdivision: str
    invoice: bool
    delivery: bool
    active: bool


@dataclass(frozen=True)
class ProductRow:
    """A salable product with its unit and the sale quantity rules of trytond-sale-product-quantity."""

    id: int
    sku: str
    name: str
    active: bool
    unit: int
    unit_symbol: str
    list_price: Decimal | None
    category: str
    minimal: Decimal | None  # sale_quantity_minimal
    rounding: Decimal | None  # sale_quantity_rounding

    def quantity_problem(self, quantity: Decimal) -> str | None:
        """Why Tryton will refuse ``quantity`` on a draft sale line, or None (mirrors its check)."""
        if self.minimal is not None and quantity < self.minimal:
            return f"{self.sku}: quantity {quantity} is below the minimum of {self.minimal}"
        if self.rounding is not None and quantity % self.rounding:
            return f"{self.sku}: quantity {quantity} is not a multiple of the pack of {self.rounding}"
        return None


@dataclass(frozen=True)
class WarehouseRow:
    """A warehouse (a plant) and the subdivision of its address (for the region)."""

    id: int
    code: str
    name: str
    subdivision: str


@dataclass
class _Snapshot:
    company: int = 0
    company_party: int = 0
    currency: str = ""
    currencies: dict[str, int] = field(default_factory=dict)
    parties: dict[str, PartyRow] = field(default_factory=dict)
    party_codes: dict[int, str] = field(default_factory=dict)
    addresses: dict[int, list[AddressRow]] = field(default_factory=dict)  # by party id
    products: dict[str, ProductRow] = field(default_factory=dict)
    product_skus: dict[int, str] = field(default_factory=dict)
    warehouses: dict[str, WarehouseRow] = field(default_factory=dict)
    warehouse_codes: dict[int, str] = field(default_factory=dict)


def _code(row: Mapping[str, Any], dotted: str, name: str = "code") -> str:
    """``row['x.']['code']`` of a dotted read, '' when the relation is empty."""
    related = row.get(f"{dotted}.")
    return str(related.get(name) or "") if isinstance(related, dict) else ""


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


#: what the party read asks of its customer payment term: its name and the deltas of its lines
_PAYMENT_TERM_FIELDS = [
    "customer_payment_term.name",
    "customer_payment_term.lines.type",
    *(
        f"customer_payment_term.lines.relativedeltas.{name}"
        for name in ("days", "weeks", "months", "day", "month", "weekday")
    ),
]


def _net_days(term: Mapping[str, Any]) -> int | None:
    """The days after the invoice date a payment term makes the whole amount due (Net 30: 30), or None
    when the term is not that simple (instalments, months, a day of the month or of the week)."""
    lines = term.get("lines.") or []
    if len(lines) != 1 or lines[0].get("type") != "remainder":
        return None
    days = 0
    for delta in lines[0].get("relativedeltas.") or []:
        if delta.get("months") or delta.get("day") or delta.get("month") or delta.get("weekday"):
            return None
        days += int(delta.get("days") or 0) + 7 * int(delta.get("weeks") or 0)
    return days


class Directory:
    """Cached codes -> records of one Tryton database. Thread-safe; ``clock`` is for the reload throttle."""

    def __init__(self, client: TrytonClient, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._snap: _Snapshot | None = None
        self._loaded_at = float("-inf")

    # -- loading ---------------------------------------------------------------------------------------
    def _load(self) -> _Snapshot:
        c = self._client
        snap = _Snapshot()
        if c.user_id is None:
            c.login()
        snap.company = int(c.context["company"])
        (company,) = c.call("company.company", "read", [snap.company], ["currency.code", "party"])
        snap.currency = _code(company, "currency")
        snap.company_party = int(company["party"])
        snap.currencies = {
            r["code"]: r["id"] for r in c.call("currency.currency", "search_read", [], 0, None, None, ["code"])
        }
        for row in c.call(
            "stock.location",
            "search_read",
            [("type", "=", "warehouse")],
            0,
            None,
            None,
            ["code", "name", "address.subdivision.code"],
            context=_ALL,
        ):
            if row.get("code"):
                address = row.get("address.") or {}
                wh = WarehouseRow(row["id"], row["code"], row["name"], _code(address, "subdivision"))
                snap.warehouses[wh.code] = wh
                snap.warehouse_codes[wh.id] = wh.code
        # a customer is a party set up for selling: a payment term or a price list (not the company); both
        # are company-dependent values Tryton cannot search on, so every party is read and filtered here
        fields = ["code", "name", "active", "sale_price_list.name", "customer_payment_term", *_PAYMENT_TERM_FIELDS,
                  "tax_identifier.code"]
        for row in c.call("party.party", "search_read", [], 0, None, None, fields, context=_ALL):
            selling = row.get("customer_payment_term") or row.get("sale_price_list.")
            if not row.get("code") or row["id"] == snap.company_party or not selling:
                continue
            price_list = row.get("sale_price_list.") or None
            term = row.get("customer_payment_term.") or None
            party = PartyRow(
                row["id"],
                row["code"],
                row["name"],
                bool(row["active"]),
                price_list["id"] if price_list else None,
                price_list["name"] if price_list else None,
                row.get("customer_payment_term"),
                payment_term_name=(term.get("name") or None) if term else None,
                payment_term_days=_net_days(term) if term else None,
                tax_id=_code(row, "tax_identifier") or None,
            )
            snap.parties[party.code] = party
            snap.party_codes[party.id] = party.code
        fields = [
            "party",
            "building_name",
            "street",
            "postal_code",
            "city",
            "country.code",
            "subdivision.code",
            "invoice",
            "delivery",
            "active",
        ]
        for row in c.call(
            "party.address",
            "search_read",
            [("party", "in", list(snap.party_codes))],
            0,
            None,
            [("id", "ASC")],
            fields,
            context=_ALL,
        ):
            address = AddressRow(
                row["id"],
                row.get("building_name") or f"addr-{row['id']}",
                row["party"],
                row.get("street") or "",
                row.get("postal_code") or "",
                row.get("city") or "",
                _code(row, "country"),
                _code(row, "subdivision"),
                bool(row["invoice"]),
                bool(row["delivery"]),
                bool(row["active"]),
            )
            snap.addresses.setdefault(address.party, []).append(address)
        fields = [
            "code",
            "name",
            "active",
            "sale_uom",
            "sale_uom.symbol",
            "list_price_used",
            "categories.name",
            "categories.accounting",
            "template.sale_quantity_minimal",
            "template.sale_quantity_rounding",
        ]
        for row in c.call(
            "product.product", "search_read", [("salable", "=", True)], 0, None, None, fields, context=_ALL
        ):
            if not row.get("code"):
                continue
            categories = [cat["name"] for cat in row.get("categories.") or [] if not cat.get("accounting")]
            template = row.get("template.") or {}
            product = ProductRow(
                row["id"],
                row["code"],
                row["name"],
                bool(row["active"]),
                row["sale_uom"],
                _code(row, "sale_uom", "symbol"),
                _dec(row.get("list_price_used")),
                categories[0] if categories else "",
                _dec(template.get("sale_quantity_minimal")),
                _dec(template.get("sale_quantity_rounding")),
            )
            snap.products[product.sku] = product
            snap.product_skus[product.id] = product.sku
        return snap

    def snapshot(self, *, reload: bool = False) -> _Snapshot:
        """The cached master data; ``reload`` re-reads it unless that happened a moment ago."""
        with self._lock:
            now = self._clock()
            stale = reload and now - self._loaded_at >= _MIN_RELOAD_SECONDS
            if self._snap is None or stale:
                self._snap = self._load()
                self._loaded_at = now
            return self._snap

    def invalidate(self) -> None:
        """Forget everything (the next look-up reloads)."""
        with self._lock:
            self._snap = None

    def _lookup(self, table: Callable[[_Snapshot], Mapping[str, Any]], kind: str, key: str) -> Any:
        found = table(self.snapshot()).get(key)
        if found is None:
            found = table(self.snapshot(reload=True)).get(key)
        if found is None:
            raise UnknownItem(kind, key)
        return found

    # -- look-ups --------------------------------------------------------------------------------------
    @property
    def company(self) -> int:
        return self.snapshot().company

    @property
    def currency(self) -> str:
        """The company currency code (what prices and credit are expressed in)."""
        return self.snapshot().currency

    def currency_id(self, code: str) -> int:
        result: int = self._lookup(lambda s: s.currencies, "currency", code)
        return result

    def party(self, code: str) -> PartyRow:
        result: PartyRow = self._lookup(lambda s: s.parties, "account", code)
        return result

    def parties(self, *, reload: bool = False) -> list[PartyRow]:
        return sorted(self.snapshot(reload=reload).parties.values(), key=lambda p: p.code)

    def party_code(self, party_id: int) -> str:
        return self.snapshot().party_codes.get(party_id) or str(party_id)

    def product(self, sku: str) -> ProductRow:
        result: ProductRow = self._lookup(lambda s: s.products, "sku", sku)
        return result

    def products(self) -> list[ProductRow]:
        return sorted(self.snapshot().products.values(), key=lambda p: p.sku)

    def sku(self, product_id: int) -> str:
        return self.snapshot().product_skus.get(product_id) or str(product_id)

    def warehouse(self, code: str) -> WarehouseRow:
        result: WarehouseRow = self._lookup(lambda s: s.warehouses, "plant", code)
        return result

    def warehouses(self) -> list[WarehouseRow]:
        return sorted(self.snapshot().warehouses.values(), key=lambda w: w.code)

    def plant_code(self, warehouse_id: int) -> str:
        return self.snapshot().warehouse_codes.get(warehouse_id) or str(warehouse_id)

    def addresses(self, party: PartyRow) -> list[AddressRow]:
        return list(self.snapshot().addresses.get(party.id, []))

    def ship_to(self, party: PartyRow, key: str | None) -> AddressRow:
        """The party's delivery address ``key``; without a key the first delivery address (as Tryton's
        ``address_get(type='delivery')``)."""

        def find(addresses: Iterable[AddressRow]) -> AddressRow | None:
            usable = [a for a in addresses if a.active and a.delivery]
            if key is None:
                return usable[0] if usable else None
            return next((a for a in usable if a.key == key), None)

        found = find(self.snapshot().addresses.get(party.id, []))
        if found is None:
            found = find(self.snapshot(reload=True).addresses.get(party.id, []))
        if found is None:
            raise UnknownItem("ship-to", key or f"(default of {party.code})")
        return found

    def invoice_address(self, party: PartyRow, fallback: AddressRow) -> AddressRow:
        """The party's invoice address (the first one flagged so), else ``fallback``."""
        return next((a for a in self.addresses(party) if a.active and a.invoice), fallback)
