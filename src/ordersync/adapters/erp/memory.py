"""``MemoryErp``: the in-memory twin of the ERP port, behaving like the Tryton adapter.

Seeded from the same :mod:`~ordersync.devkit.demo_data` profile as the demo Tryton, it
emulates what the hub can observe of Tryton: first-match contract price lists, available-to-promise =
on hand minus confirmed unshipped quantity, credit exposure = confirmed uninvoiced sales plus posted
unpaid invoices, minimum quantities and packs, the same warning outcomes, drafts and quotations left
behind, amendments, shipments and invoices, returns, changes with versions and a watermark. It passes
the same contract suite as :class:`~ordersync.adapters.erp.tryton.adapter.TrytonErp`.

Where it is simpler than Tryton on purpose: one lock serialises every call, so two concurrent
submissions of one reference can never both create a sale (Tryton only guarantees that with its
writes serialised, see ``tryton/submit.py``); requests of a batch are handled one after the other,
which is the outcome the Tryton adapter reproduces with its batched calls.

For the hub's own tests it is also a fault injector: :meth:`fail_next`, :attr:`down`, :attr:`latency`;
and it counts calls per method (:attr:`calls`). The ERP-side operations tests need (leave a draft
behind, ship, post an invoice, change stock or a price) are methods too (:meth:`ship` ...).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp import memory_returns as returns
from ordersync.adapters.erp import memory_workflow as wf
from ordersync.adapters.erp.erp_common import EPOCH, change_fingerprint
from ordersync.adapters.erp.guard import WireCounter
from ordersync.adapters.erp.memory_documents import MemoryDocuments
from ordersync.adapters.erp.memory_state import ErpState, MSale, Signals
from ordersync.adapters.erp.memory_submit import amend, submit
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
from ordersync.devkit import demo_data
from ordersync.domain.errors import Unavailable
from ordersync.ports.erp import (
    AmendmentRequest,
    AmendmentResult,
    ChangeBatch,
    ChangeFeed,
    ChangeNotice,
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
    parse_reference,
    parse_return_reference,
)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MemoryErp:
    """An ERP in a dict (see the module docstring). Thread-safe."""

    def __init__(
        self,
        profile: demo_data.Profile | str = "main",
        *,
        name: str = "memory",
        clock: Callable[[], dt.datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        prof = demo_data.profile(profile) if isinstance(profile, str) else profile
        self._lock = threading.RLock()
        self._state = ErpState.seeded(prof, clock)
        wf.seed_open_sales(self._state)
        self._docs = MemoryDocuments(self._state)
        self._sleep = sleep
        #: every call raises :class:`Unavailable` while True
        self.down = False
        #: seconds each call takes (slept through the injected ``sleep``)
        self.latency = 0.0
        #: calls per port method
        self.calls: Counter[str] = Counter()
        self.wire = WireCounter()
        self._faults: list[tuple[Exception, bool, frozenset[str] | None]] = []

    @classmethod
    def from_profile(cls, profile: str = "main", *, name: str = "memory") -> MemoryErp:
        """A twin seeded with the demo profile ``profile`` (``main`` or ``acquired``)."""
        return cls(profile, name=name)

    def __repr__(self) -> str:
        return f"MemoryErp({self.name!r}, {self._state.profile['key']!r})"

    # -- fault injection ---------------------------------------------------------------------------------
    def fail_next(
        self, n: int = 1, exc: Exception | None = None, *, after: bool = False, methods: Sequence[str] | None = None
    ) -> None:
        """Make the next ``n`` calls (of ``methods``, default any) raise ``exc`` (default
        :class:`Unavailable`). ``after=True`` raises *after* the call took effect: a timeout whose
        outcome is unknown to the caller, as a read timeout on a confirm would be."""
        error = exc or Unavailable(f"ERP {self.name}: injected failure")
        with self._lock:
            self._faults += [(error, after, frozenset(methods) if methods else None)] * n

    def wire_calls(self) -> dict[str, int]:
        """Port calls so far, per priority lane (the twin's "wire")."""
        return self.wire.snapshot()

    def _enter(self, method: str) -> tuple[Exception, bool] | None:
        """Count the call, apply latency and outage; return a fault to raise after the call, if any."""
        self.wire.count()
        with self._lock:
            self.calls[method] += 1
            fault = next((f for f in self._faults if f[2] is None or method in f[2]), None)
            if fault is not None:
                self._faults.remove(fault)
            latency, down = self.latency, self.down
        if latency:
            self._sleep(latency)
        if down:
            raise Unavailable(f"ERP {self.name} is down")
        if fault is not None and not fault[1]:
            raise fault[0]
        return (fault[0], True) if fault is not None else None

    def _call(self, method: str, fn: Callable[[], Any]) -> Any:
        late = self._enter(method)
        with self._lock:
            result = fn()
        if late is not None:
            raise late[0]
        return result

    # -- port: master data -------------------------------------------------------------------------------
    def health(self) -> ErpHealth:
        started = time.perf_counter()
        try:
            self._call("health", lambda: None)
        except Exception as exc:  # health reports, it does not raise
            return ErpHealth(erp=self.name, ok=False, detail=f"{type(exc).__name__}: {exc}")
        return ErpHealth(
            erp=self.name, ok=True, detail="in memory", latency_ms=round((time.perf_counter() - started) * 1000, 3)
        )

    def plants(self) -> list[Plant]:
        def run() -> list[Plant]:
            return [
                Plant(code=w["code"], name=w["name"], region=w["region"])
                for w in sorted(self._state.plants.values(), key=lambda w: w["code"])
            ]

        result: list[Plant] = self._call("plants", run)
        return result

    def _account(self, code: str) -> Account:
        st = self._state
        cust = st.customer(code)
        if cust is None:
            raise UnknownItem("account", code)
        return Account(
            id=cust.code,
            name=cust.name,
            erp=self.name,
            erp_ref=cust.code,
            status=AccountStatus.ACTIVE if cust.active else AccountStatus.INACTIVE,
            credit=self._credit(code),
            price_list=st.price_lists[cust.price_list].name,
            currency=st.currency,
            ship_to=tuple(
                Address(
                    id=a["key"],
                    name=cust.name,
                    street=a["street"],
                    city=a["city"],
                    postal_code=a["postal_code"],
                    region=a["region"],
                    country=a["country"],
                )
                for a in cust.addresses
                if a["delivery"]
            ),
            tax_id=cust.tax_id,
            payment_terms=cust.payment_term or None,
            payment_terms_days=cust.payment_days,
        )

    def _credit(self, code: str) -> CreditStatus:
        if self._state.customer(code) is None:
            raise UnknownItem("account", code)
        return CreditStatus(
            limit=self._state.credit_limit(code),
            exposure=self._state.exposure(code),
            currency=self._state.currency,
            as_of=self._state.clock(),
        )

    def accounts(self) -> list[Account]:
        result: list[Account] = self._call(
            "accounts",
            lambda: [
                self._account(c.code) for c in sorted(self._state.customers.values(), key=lambda c: c.code) if c.active
            ],
        )
        return result

    def account(self, account_id: str) -> Account:
        result: Account = self._call("account", lambda: self._account(account_id))
        return result

    def credit(self, account_id: str) -> CreditStatus:
        result: CreditStatus = self._call("credit", lambda: self._credit(account_id))
        return result

    def set_credit_limit(self, account_id: str, limit: Decimal) -> CreditStatus:
        def run() -> CreditStatus:
            customer = self._state.customer(account_id)
            if customer is None:
                raise UnknownItem("account", account_id)
            customer.credit_limit = limit
            return self._credit(account_id)

        result: CreditStatus = self._call("set_credit_limit", run)
        return result

    def products(self, account_id: str | None = None) -> list[Product]:
        def run() -> list[Product]:
            st = self._state
            customers = sorted(st.customers.values(), key=lambda c: c.code)
            if account_id is not None:
                if st.customer(account_id) is None:
                    raise UnknownItem("account", account_id)
                customers = [c for c in customers if c.code == account_id]
            out = []
            for sku, p in sorted(st.products.items()):
                numbers = tuple(
                    CustomerPartNumber(account_id=c.code, part_number=pn["code"], description=pn["name"])
                    for c in customers
                    for pn in c.part_numbers
                    if pn["sku"] == sku
                )
                minimum = p.get("minimum_quantity") or p.get("pack_multiple") or 1
                out.append(
                    Product(
                        sku=sku,
                        name=p["name"],
                        unit=p["unit"],
                        minimum_quantity=Decimal(minimum),
                        pack_multiple=Decimal(p.get("pack_multiple") or 1),
                        customer_part_numbers=numbers,
                        category=p["category"],
                        list_price=Decimal(p["list_price"]),
                        currency=st.currency,
                    )
                )
            return out

        result: list[Product] = self._call("products", run)
        return result

    # -- port: prices and stock --------------------------------------------------------------------------
    def prices(
        self, account_id: str, items: Sequence[tuple[str, Decimal]], on: dt.date | None = None
    ) -> list[PriceQuote]:
        def run() -> list[PriceQuote]:
            st = self._state
            if st.customer(account_id) is None:
                raise UnknownItem("account", account_id)
            out = []
            for sku, quantity in items:
                if sku not in st.products:
                    raise UnknownItem("sku", sku)
                price = st.price(account_id, sku, quantity) or Decimal(0)
                out.append(
                    PriceQuote(
                        account_id=account_id,
                        sku=sku,
                        quantity=quantity,
                        currency=st.currency,
                        contract_unit_price=price,
                        unit_price=price,
                        as_of=st.clock(),
                    )
                )
            return out

        result: list[PriceQuote] = self._call("prices", run)
        return result

    def availability(self, skus: Sequence[str]) -> list[StockPosition]:
        result: list[StockPosition] = self._call("availability", lambda: self._docs.positions(skus))
        return result

    # -- port: orders ------------------------------------------------------------------------------------
    def submit_orders(self, requests: Sequence[SalesOrderRequest]) -> list[SubmitResult]:
        result: list[SubmitResult] = self._call("submit_orders", lambda: submit(self._state, requests))
        return result

    def amend_order(self, request: AmendmentRequest) -> AmendmentResult:
        result: AmendmentResult = self._call("amend_order", lambda: amend(self._state, request))
        return result

    def cancel_order(self, reference: str) -> bool:
        def run() -> bool:
            sale = self._docs.best(reference)
            if sale is None or sale.state not in ("draft", "quotation", "cancelled"):
                return False
            wf.cancel(self._state, sale)
            return True

        result: bool = self._call("cancel_order", run)
        return result

    def order(self, reference: str) -> ErpOrder | None:
        def run() -> ErpOrder | None:
            sale = self._docs.best(reference)
            return self._docs.order(sale) if sale else None

        result: ErpOrder | None = self._call("order", run)
        return result

    def orders_for(self, order_id: str) -> list[ErpOrder]:
        def run() -> list[ErpOrder]:
            references = sorted(
                {
                    s.reference
                    for s in self._state.sales.values()
                    if (parse_reference(s.reference) or ("", ""))[0] == order_id
                }
            )
            return [self._docs.order(sale) for ref in references if (sale := self._docs.best(ref)) is not None]

        result: list[ErpOrder] = self._call("orders_for", run)
        return result

    def sales_since(self, since: dt.datetime | None, references: Sequence[str] = ()) -> list[ErpOrder]:
        def run() -> list[ErpOrder]:
            wanted = set(references)
            chosen = sorted({s.reference for s in self._state.sales.values()
                             if parse_reference(s.reference) is not None
                             and (since is None or s.reference in wanted or self._changed(s) >= since)})
            return [self._docs.order(sale) for ref in chosen if (sale := self._docs.best(ref)) is not None]

        result: list[ErpOrder] = self._call("sales_since", run)
        return result

    def returns_since(self, since: dt.datetime | None, references: Sequence[str] = ()) -> list[ErpReturn]:
        def run() -> list[ErpReturn]:
            wanted, docs = set(references), self._docs
            chosen = sorted({s.reference for s in self._state.sales.values() if parse_return_reference(s.reference)})
            out = []
            for ref in chosen:
                sale = docs.best(ref)
                if sale is None:
                    continue
                found, stamp = returns.state_of(self._state, sale)
                if since is None or ref in wanted or stamp >= since:
                    out.append(found)
            return out

        result: list[ErpReturn] = self._call("returns_since", run)
        return result

    def _changed(self, sale: MSale) -> dt.datetime:
        """When the sale, one of its shipments or one of its invoices last changed."""
        st = self._state
        return max([sale.stamp, *(s.stamp for s in st.shipments.values() if s.sale_id == sale.id),
                    *(i.stamp for i in st.invoices.values() if i.sale_id == sale.id)])

    def changes_since(self, watermark: dt.datetime | None, known: Known | None = None) -> ChangeBatch:
        # the twin is cheap to read in full: ``known`` needs no short cut here
        result: ChangeBatch = self._call("changes_since", lambda: self._changes(watermark))
        return result

    def _changes(self, watermark: dt.datetime | None) -> ChangeBatch:
        batch = self._docs.changes(watermark or EPOCH)
        more, seen = returns.changes(self._state, watermark or EPOCH)
        return batch.model_copy(update={"changes": (*batch.changes, *more), "watermark": max([batch.watermark, *seen])})

    def change_probe(self, watermark: dt.datetime | None) -> str | None:
        """The twin reads itself in full for free: the fingerprint of everything changed since
        ``watermark`` (keys and versions), counted as one call like Tryton's probe."""
        def run() -> str:
            return change_fingerprint((c.key, c.version) for c in self._changes(watermark).changes)

        result: str = self._call("change_probe", run)
        return result

    def change_feed(self) -> ChangeFeed | None:
        """The twin pushes: every write signals (its probe sees everything)."""
        result: ChangeFeed = self._call("change_feed", lambda: MemoryChangeFeed(self._state.signals))
        return result

    # -- port: returns -----------------------------------------------------------------------------------
    def create_return(self, request: ReturnRequest) -> ReturnResult:
        result: ReturnResult = self._call("create_return", lambda: returns.create(self._state, request))
        return result

    def return_status(self, reference: str) -> ErpReturn | None:
        result: ErpReturn | None = self._call("return_status", lambda: returns.status(self._state, reference))
        return result

    # -- the ERP side (what users of the ERP do; for tests and demos) -------------------------------------
    def _sale(self, reference: str) -> MSale:
        sale = self._docs.best(reference)
        if sale is None:
            raise UnknownItem("order", reference)
        return sale

    def leave_behind(self, request: SalesOrderRequest, *, quoted: bool = False) -> str:
        """Create the draft (or quotation) a crash between two steps of a submission leaves; its id."""
        with self._lock:
            sale = wf.create_sale(self._state, **self._docs.sale_values(request))
            if quoted:
                wf.quote(self._state, sale, accept_shortfall=True)
            return str(sale.id)

    def ship(self, reference: str, quantities: dict[int, Decimal] | None = None, *, carrier: str | None = None,
             tracking: str | None = None) -> None:
        """Ship the order's waiting shipments; ``quantities`` by line number ships less (a split). They go
        with ``carrier`` (a carrier's name, default the first demo carrier; ``""``: none) and ``tracking``
        (default a number in the carrier's style, from the shipment's id)."""
        with self._lock:
            wf.ship(self._state, self._sale(reference), quantities, carrier=carrier, tracking=tracking)

    def ship_short(self, reference: str, quantities: dict[int, Decimal], *, carrier: str | None = None,
                   tracking: str | None = None) -> None:
        """Ship ``quantities`` (by line number) and cancel the rest of the order's shipping for good."""
        with self._lock:
            wf.ship_short(self._state, self._sale(reference), quantities, carrier=carrier, tracking=tracking)

    def receive_return(self, reference: str) -> None:
        """The plant receives the goods of return ``reference`` back into stock."""
        with self._lock:
            returns.receive(self._state, self._sale(reference))

    def post_invoices(self, reference: str) -> None:
        """Post the order's draft invoices (a return's credit notes)."""
        with self._lock:
            wf.post_invoices(self._state, self._sale(reference))

    def pay_invoice(self, number: str, amount: Decimal) -> None:
        """The customer pays ``amount`` of posted invoice ``number`` (all of it: the invoice is paid)."""
        with self._lock:
            wf.pay_invoice(self._state, number, amount)

    def set_stock(self, sku: str, plant: str, on_hand: Decimal) -> None:
        """An inventory: ``on_hand`` of ``sku`` at ``plant`` from now on."""
        with self._lock:
            wf.set_stock(self._state, sku, plant, on_hand)

    def set_price(self, account_id: str, sku: str, price: Decimal) -> None:
        """A fixed contract price for ``sku`` on the account's price list."""
        with self._lock:
            wf.set_price(self._state, account_id, sku, price)

    def delete_sale(self, reference: str) -> None:
        """Someone removes the sales (or returns) of ``reference`` from the ERP, with their shipments, moves and
        invoices (reconciliation tests: a sale gone behind the hub's back)."""
        with self._lock:
            st = self._state
            gone = {s.id for s in st.sales_of(reference)}
            if not gone:
                raise UnknownItem("order", reference)
            for table in (st.moves, st.shipments, st.invoices, st.return_shipments):
                for key in [k for k, v in table.items() if v.sale_id in gone]:
                    del table[key]
            for sale_id in gone:
                del st.sales[sale_id]

    def sales_with_reference(self, reference: str) -> list[tuple[str, str]]:
        """``(erp id, state)`` of every sale carrying ``reference`` (to count duplicates)."""
        with self._lock:
            return [(str(s.id), s.state) for s in self._state.sales_of(reference)]


class MemoryChangeFeed:
    """A subscription to the twin's signals; ``timeout`` plays the bus's long-polling timeout."""

    def __init__(self, signals: Signals, timeout: float = 30.0) -> None:
        self._signals = signals
        self._seen = signals.generation
        self._timeout = timeout
        self._closed = False

    def wait(self) -> ChangeNotice | None:
        with self._signals.cond:
            self._signals.cond.wait_for(lambda: self._closed or self._signals.generation != self._seen, self._timeout)
            if self._closed or self._signals.generation == self._seen:
                return None
            self._seen = self._signals.generation
            return ChangeNotice()

    def close(self) -> None:
        with self._signals.cond:
            self._closed = True
            self._signals.cond.notify_all()
