"""``TrytonErp``: the ERP port over Tryton 8.2 JSON-RPC.

Mapping: account id = party ``code``; SKU = product ``code``; plant = warehouse location ``code``;
ship-to id = the address key kept in ``building_name``; ERP order = ``sale.sale`` with the hub reference
in ``reference`` and the hub line number in each line's ``sequence``; region = a map from the address'
subdivision (ISO 3166-2) to the hub region (Tryton has no region), from the ERP's settings (``regions``);
account tax id = the ``code`` of the party's ``tax_identifier``; payment terms = the name of its
``customer_payment_term`` (and its days when it is "the whole amount N days after the invoice").

Errors: transport failures, a refused login and server-side exceptions raise
:class:`~ordersync.domain.errors.Unavailable`; an answer that is not what Tryton answers raises
:class:`~ordersync.domain.errors.ProtocolError`; an unknown account, SKU or plant raises
:class:`~ordersync.ports.erp.UnknownItem`. Business refusals of an order are :class:`SubmitResult`\\ s.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp.erp_common import UNLIMITED_CREDIT
from ordersync.adapters.erp.tryton.amend import Amender
from ordersync.adapters.erp.tryton.changes import ChangeReader
from ordersync.adapters.erp.tryton.directory import AddressRow, Directory, PartyRow
from ordersync.adapters.erp.tryton.documents import Documents
from ordersync.adapters.erp.tryton.orders import best_sale, cancel_sale
from ordersync.adapters.erp.tryton.push import open_feed
from ordersync.adapters.erp.tryton.returns import Returns
from ordersync.adapters.erp.tryton.rpc import (
    TrytonAuthError,
    TrytonClient,
    TrytonError,
    TrytonProtocolError,
    TrytonUnavailable,
)
from ordersync.adapters.erp.tryton.submit import DEFAULT_CHUNK, Submitter
from ordersync.canonical.v1 import (
    Account,
    AccountStatus,
    Address,
    CreditStatus,
    CustomerPartNumber,
    PriceQuote,
    Product,
    StockPosition,
)
from ordersync.domain.clock import Clock, SystemClock
from ordersync.domain.errors import ProtocolError, Unavailable
from ordersync.ports.contracts import PayloadObserver
from ordersync.ports.erp import (
    REFERENCE_PREFIX,
    AmendmentRequest,
    AmendmentResult,
    ChangeBatch,
    ChangeFeed,
    ErpHealth,
    ErpOrder,
    ErpReturn,
    Known,
    Plant,
    ReturnRequest,
    ReturnResult,
    SalesOrderRequest,
    SubmitResult,
    UnknownItem,
    order_reference,
    parse_reference,
)

#: sales per page of :meth:`TrytonErp.sales_since` (one search, then a fixed number of reads per page)
RECONCILE_PAGE = 200


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn Tryton client errors into the port's exception tree."""
    try:
        yield
    except UnknownItem:
        raise
    except TrytonUnavailable as exc:
        raise Unavailable(f"Tryton {what}: {exc}") from exc
    except TrytonAuthError as exc:
        raise Unavailable(f"Tryton {what}: login refused: {exc}") from exc
    except TrytonProtocolError as exc:
        raise ProtocolError(f"Tryton {what}: {exc}") from exc
    except TrytonError as exc:  # a server exception or a refusal a read should never meet (access rights)
        raise Unavailable(f"Tryton {what} failed: {exc}") from exc
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:  # an answer of an unexpected shape
        raise ProtocolError(f"Tryton {what}: unexpected answer: {exc!r}") from exc


class TrytonErp:
    """The :class:`~ordersync.ports.erp.ErpPort` of one Tryton database (see the module docstring).

    Thread-safe: the JSON-RPC client is, the master-data cache is locked, and submissions of one
    reference through one instance are serialised. ``chunk``: sales per quote/confirm call.
    """

    def __init__(
        self,
        client: TrytonClient,
        *,
        name: str = "tryton",
        regions: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        chunk: int = DEFAULT_CHUNK,
        observer: PayloadObserver | None = None,
    ) -> None:
        self.name = name
        self.client = client
        self.regions = dict(regions or {})
        self._clock = clock or SystemClock()
        self.directory = Directory(client)
        self._documents = Documents(client, self.directory, observer)  # observer: drift of what it reads
        self._submitter = Submitter(client, self.directory, lambda: self._clock.now().date(), chunk=chunk)
        self._amender = Amender(client)
        self._returns = Returns(client, self.directory)
        self._changes = ChangeReader(client, self.directory, self._documents, self.availability, self._returns)

    @classmethod
    def connect(
        cls,
        *,
        url: str,
        database: str,
        login: str,
        password: str | Callable[[], str],
        name: str = "tryton",
        timeout: float = 30.0,
        regions: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        chunk: int = DEFAULT_CHUNK,
        observer: PayloadObserver | None = None,
    ) -> TrytonErp:
        """An adapter with its own client (it logs in on first use)."""
        client = TrytonClient(url, database, login, password, timeout=timeout)
        return cls(client, name=name, regions=regions, clock=clock, chunk=chunk, observer=observer)

    def close(self) -> None:
        self.client.close()

    def wire_calls(self) -> dict[str, int]:
        """JSON-RPC requests sent so far, per priority lane."""
        return self.client.wire.snapshot()

    def __repr__(self) -> str:
        return f"TrytonErp({self.name!r}, {self.client!r})"

    def _now(self) -> dt.datetime:
        return self._clock.now()

    # -- health and master data ----------------------------------------------------------------------------
    def health(self) -> ErpHealth:
        started = time.perf_counter()
        try:
            self.client.request("model.res.user.get_preferences", [True, {}])
        except TrytonError as exc:
            return ErpHealth(erp=self.name, ok=False, detail=f"{type(exc).__name__}: {exc}")
        latency = (time.perf_counter() - started) * 1000
        return ErpHealth(
            erp=self.name, ok=True, detail=f"{self.client.database} @ {self.client.url}", latency_ms=round(latency, 2)
        )

    def plants(self) -> list[Plant]:
        with translated("plants"):
            return [
                Plant(code=w.code, name=w.name, region=self.regions.get(w.subdivision, ""))
                for w in self.directory.warehouses()
            ]

    def _address(self, party: PartyRow, a: AddressRow) -> Address:
        return Address(
            id=a.key,
            name=party.name,
            street=a.street,
            city=a.city,
            postal_code=a.postal_code,
            region=self.regions.get(a.subdivision, ""),
            country=a.country,
        )

    def _credit_rows(self, parties: Sequence[PartyRow]) -> dict[int, dict[str, Any]]:
        ids = [p.id for p in parties]
        rows = (
            self.client.call(
                "party.party", "read", ids, ["credit_amount", "credit_limit_amount"], context={"active_test": False}
            )
            if ids
            else []
        )
        return {row["id"]: row for row in rows}

    def _credit(self, row: Mapping[str, Any]) -> CreditStatus:
        limit = row.get("credit_limit_amount")
        return CreditStatus(
            limit=UNLIMITED_CREDIT if limit is None else limit,
            exposure=row.get("credit_amount") or 0,
            currency=self.directory.currency,
            as_of=self._now(),
        )

    def _account(self, party: PartyRow, credit: Mapping[str, Any]) -> Account:
        return Account(
            id=party.code,
            name=party.name,
            erp=self.name,
            erp_ref=str(party.id),
            status=AccountStatus.ACTIVE if party.active else AccountStatus.INACTIVE,
            credit=self._credit(credit),
            price_list=party.price_list_name,
            currency=self.directory.currency,
            ship_to=tuple(self._address(party, a) for a in self.directory.addresses(party) if a.delivery and a.active),
            tax_id=party.tax_id,
            payment_terms=party.payment_term_name,
            payment_terms_days=party.payment_term_days,
        )

    def accounts(self) -> list[Account]:
        with translated("accounts"):
            parties = [p for p in self.directory.parties() if p.active]
            credit = self._credit_rows(parties)
            return [self._account(p, credit[p.id]) for p in parties]

    def account(self, account_id: str) -> Account:
        with translated("account"):
            party = self.directory.party(account_id)
            return self._account(party, self._credit_rows([party])[party.id])

    def credit(self, account_id: str) -> CreditStatus:
        with translated("credit"):
            party = self.directory.party(account_id)
            return self._credit(self._credit_rows([party])[party.id])

    def set_credit_limit(self, account_id: str, limit: Decimal) -> CreditStatus:
        """The party's ``credit_limit_amount`` (account_credit_limit), written for the company of the
        session's user."""
        with translated("set_credit_limit"):
            party = self.directory.party(account_id)
            self.client.call("party.party", "write", [party.id], {"credit_limit_amount": limit})
            return self._credit(self._credit_rows([party])[party.id])

    def products(self, account_id: str | None = None) -> list[Product]:
        with translated("products"):
            self.directory.snapshot(reload=True)  # a catalog read: show what the ERP has now
            domain: list[Any] = []
            if account_id is not None:
                domain = [("party", "=", self.directory.party(account_id).id)]
            numbers: dict[str, list[CustomerPartNumber]] = {}
            for row in self.client.call(
                "sale.product_customer",
                "search_read",
                domain,
                0,
                None,
                [("id", "ASC")],
                ["party.code", "product.code", "template.code", "code", "name"],
            ):
                sku = (row.get("product.") or row.get("template.") or {}).get("code")
                if sku and row.get("code"):
                    numbers.setdefault(sku, []).append(
                        CustomerPartNumber(
                            account_id=(row.get("party.") or {}).get("code") or "",
                            part_number=row["code"],
                            description=row.get("name") or "",
                        )
                    )
            return [
                Product(
                    sku=p.sku,
                    name=p.name,
                    unit=p.unit_symbol or "unit",
                    minimum_quantity=p.minimal or p.rounding or Decimal(1),
                    pack_multiple=p.rounding or Decimal(1),
                    customer_part_numbers=tuple(numbers.get(p.sku, ())),
                    category=p.category,
                    list_price=p.list_price,
                    currency=self.directory.currency,
                    active=p.active,
                )
                for p in self.directory.products()
                if p.active
            ]

    # -- prices and stock -----------------------------------------------------------------------------------
    def prices(
        self, account_id: str, items: Sequence[tuple[str, Decimal]], on: dt.date | None = None
    ) -> list[PriceQuote]:
        with translated("prices"):
            party = self.directory.party(account_id)
            products = [self.directory.product(sku) for sku, _ in items]
            by_quantity: dict[Decimal, set[int]] = {}
            for product, (_, quantity) in zip(products, items, strict=True):
                by_quantity.setdefault(quantity, set()).add(product.id)
            prices: dict[tuple[int, Decimal], Decimal] = {}
            for quantity, ids in by_quantity.items():  # Tryton prices one quantity per call (context)
                context: dict[str, Any] = {
                    "customer": party.id,
                    "price_list": party.price_list,
                    "quantity": float(quantity),
                    "currency": self.directory.currency_id(self.directory.currency),
                }
                if on is not None:
                    context["sale_date"] = on
                for row in self.client.call(
                    "product.product", "read", sorted(ids), ["sale_price_uom"], context=context
                ):
                    prices[(row["id"], quantity)] = row["sale_price_uom"]
            now = self._now()
            out = []
            for product, (sku, quantity) in zip(products, items, strict=True):
                price = prices[(product.id, quantity)]
                if price is None:
                    raise ProtocolError(f"Tryton has no price for {sku} x {quantity} for {account_id}")
                out.append(
                    PriceQuote(
                        account_id=account_id,
                        sku=sku,
                        quantity=quantity,
                        currency=self.directory.currency,
                        contract_unit_price=price,
                        unit_price=price,
                        as_of=now,
                    )
                )
            return out

    def availability(self, skus: Sequence[str]) -> list[StockPosition]:
        with translated("availability"):
            products = [self.directory.product(sku) for sku in skus]
            ids = sorted({p.id for p in products})
            stock: dict[tuple[int, str], tuple[Decimal, Decimal]] = {}
            warehouses = self.directory.warehouses()
            for wh in warehouses:  # quantities are per location context: one call per warehouse
                for row in (
                    self.client.call(
                        "product.product",
                        "read",
                        ids,
                        ["quantity", "forecast_quantity"],
                        context={"locations": [wh.id]},
                    )
                    if ids
                    else []
                ):
                    stock[(row["id"], wh.code)] = (
                        Decimal(str(row["quantity"])),
                        Decimal(str(row["forecast_quantity"])),
                    )
            now = self._now()
            out = []
            for product in products:
                for wh in warehouses:
                    on_hand, forecast = stock[(product.id, wh.code)]
                    atp = max(forecast, Decimal(0))
                    out.append(
                        StockPosition(
                            sku=product.sku,
                            plant=wh.code,
                            on_hand=on_hand,
                            reserved=on_hand - atp,
                            available_to_promise=atp,
                            as_of=now,
                        )
                    )
            return out

    # -- orders -----------------------------------------------------------------------------------------------
    def submit_orders(self, requests: Sequence[SalesOrderRequest]) -> list[SubmitResult]:
        with translated("submit"):
            return self._submitter.submit(requests) if requests else []

    def amend_order(self, request: AmendmentRequest) -> AmendmentResult:
        with translated("amend"):
            return self._amender.amend(request)

    def cancel_order(self, reference: str) -> bool:
        with translated("cancel"):
            return cancel_sale(self.client, reference)

    def order(self, reference: str) -> ErpOrder | None:
        with translated("order"):
            sale = best_sale(self._documents.sales([("reference", "=", reference)]))
            return self._documents.orders([sale])[0] if sale else None

    def orders_for(self, order_id: str) -> list[ErpOrder]:
        with translated("orders"):
            rows = self._documents.sales([("reference", "like", order_reference(order_id, "") + "%")])
            by_reference: dict[str, list[dict[str, Any]]] = {}
            for row in rows:  # LIKE treats "_" as a wildcard: keep exact matches only
                parsed = parse_reference(row["reference"] or "")
                if parsed and parsed[0] == order_id:
                    by_reference.setdefault(row["reference"], []).append(row)
            chosen = [best_sale(group) for _, group in sorted(by_reference.items())]
            return self._documents.orders([s for s in chosen if s is not None])

    def sales_since(self, since: dt.datetime | None, references: Sequence[str] = ()) -> list[ErpOrder]:
        """Pages of :data:`RECONCILE_PAGE` sales by id, each read in a fixed number of calls (the sale rows,
        then :meth:`Documents.orders`); ``references`` in chunks of the same size."""
        ours: list[Any] = [("reference", "like", f"{REFERENCE_PREFIX}-%")]
        domains: list[list[Any]] = [ours if since is None else
                                    [*ours, ["OR", ("write_date", ">=", since), ("create_date", ">=", since)]]]
        refs = sorted(set(references))
        domains += [[("reference", "in", refs[i:i + RECONCILE_PAGE])] for i in range(0, len(refs), RECONCILE_PAGE)]
        by_reference: dict[str, list[dict[str, Any]]] = {}
        with translated("sales"):
            for domain in domains:
                last = 0
                while True:
                    rows = self.client.call("sale.sale", "search_read", [*domain, ("id", ">", last)], 0,
                                             RECONCILE_PAGE, [("id", "ASC")], ["reference", "state"])
                    for row in rows:
                        if parse_reference(row["reference"] or "") is not None:
                            by_reference.setdefault(row["reference"], []).append(row)
                    if len(rows) < RECONCILE_PAGE:
                        break
                    last = rows[-1]["id"]
            chosen = sorted(s["id"] for group in by_reference.values() if (s := best_sale(group)) is not None)
            out: list[ErpOrder] = []
            for i in range(0, len(chosen), RECONCILE_PAGE):
                sales = self._documents.sales([("id", "in", chosen[i:i + RECONCILE_PAGE])])
                out += self._documents.orders(sales)
        return sorted(out, key=lambda o: o.reference)

    def returns_since(self, since: dt.datetime | None, references: Sequence[str] = ()) -> list[ErpReturn]:
        with translated("returns"):
            return self._returns.since(since, references, RECONCILE_PAGE)

    def changes_since(self, watermark: dt.datetime | None, known: Known | None = None) -> ChangeBatch:
        with translated("changes"):
            return self._changes.changes_since(watermark, known)

    def change_probe(self, watermark: dt.datetime | None) -> str | None:
        with translated("change probe"):
            return self._changes.probe(watermark)

    def change_feed(self) -> ChangeFeed | None:
        with translated("change feed"):
            return open_feed(self.client)

    # -- returns (see returns.py) -------------------------------------------------------------------------
    def create_return(self, request: ReturnRequest) -> ReturnResult:
        with translated("create return"):
            return self._returns.create(request)

    def return_status(self, reference: str) -> ErpReturn | None:
        with translated("return status"):
            return self._returns.status(reference)
