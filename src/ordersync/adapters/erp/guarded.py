"""An ERP port wrapped in its instance's :class:`~ordersync.adapters.erp.guard.ErpGate`.

Flows and the read model talk to this wrapper (through :class:`~ordersync.ports.erp.Erps`), never to a
raw adapter, so the budget, lanes, retries and circuit hold for every caller. A wrapper made with
:meth:`GuardedErp.in_lane` sends every call through that lane; the plain wrapper gives each call its
natural lane. Single-order submissions made concurrently are coalesced into batch submissions (the
ERP's batched path is several times faster).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp.guard import Coalescer, ErpGate
from ordersync.canonical.v1 import Account, CreditStatus, PriceQuote, Product, StockPosition
from ordersync.ports.erp import (
    AmendmentRequest,
    AmendmentResult,
    ChangeBatch,
    ChangeFeed,
    ErpHealth,
    ErpOrder,
    ErpPort,
    ErpReturn,
    ErpStatus,
    Known,
    Lane,
    Plant,
    ReturnRequest,
    ReturnResult,
    SalesOrderRequest,
    SubmitResult,
)


class GuardedErp:
    """Implements :class:`ErpPort` by delegating through a gate. The lane of a call: this wrapper's
    ``lane`` (see :meth:`in_lane`), else the method's natural lane."""

    def __init__(self, inner: ErpPort, gate: ErpGate, *, coalesce: bool = True, max_batch: int = 20,
                 max_wait: float = 0.05, account_ttl: float = 30.0) -> None:
        self.inner = inner
        self.gate = gate
        self.name = inner.name
        self.account_ttl = account_ttl
        self.lane: Lane | None = None
        self._accounts: dict[str, tuple[float, Account]] = {}
        self._coalescer = (
            Coalescer(self._submit_batch, max_batch=max_batch, max_wait=max_wait) if coalesce else None
        )
        # Stock reads of orders prepared at the same time become one read of the union of their SKUs:
        # availability is among the ERP's most expensive answers (Tryton computes it from every move).
        self._stock_reads = (
            Coalescer(self._availability_batch, max_batch=16, max_wait=0.02) if coalesce else None
        )

    def in_lane(self, lane: Lane) -> GuardedErp:
        """This ERP with every call in ``lane``; gate, coalescers and caches are shared."""
        view = copy.copy(self)
        view.lane = lane
        return view

    def _call(self, default: Lane, fn: Any, *args: Any) -> Any:
        return self.gate.call(lambda: fn(*args), lane=default if self.lane is None else self.lane)

    def status(self) -> ErpStatus:
        status = self.gate.status()
        wire_calls = getattr(self.inner, "wire_calls", None)
        return dataclasses.replace(status, wire_calls=wire_calls()) if callable(wire_calls) else status

    def health(self) -> ErpHealth:
        try:
            health: ErpHealth = self.gate.call(self.inner.health, lane=Lane.ORDERS, retryable=False)
        except Exception as exc:
            return ErpHealth(erp=self.name, ok=False, detail=f"{type(exc).__name__}: {exc}")
        return health

    def plants(self) -> list[Plant]:
        result: list[Plant] = self._call(Lane.READS, self.inner.plants)
        return result

    def accounts(self) -> list[Account]:
        result: list[Account] = self._call(Lane.BACKGROUND, self.inner.accounts)
        return result

    def account(self, account_id: str) -> Account:
        """Master data of an account, remembered for ``account_ttl`` seconds (status and ship-to
        addresses change rarely; credit decisions use :meth:`credit`, which is never cached)."""
        now = time.monotonic()
        hit = self._accounts.get(account_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        result: Account = self._call(Lane.ORDERS, self.inner.account, account_id)
        self._accounts[account_id] = (now + self.account_ttl, result)
        return result

    def credit(self, account_id: str) -> CreditStatus:
        result: CreditStatus = self._call(Lane.ORDERS, self.inner.credit, account_id)
        return result

    def set_credit_limit(self, account_id: str, limit: Decimal) -> CreditStatus:
        result: CreditStatus = self._call(Lane.ORDERS, self.inner.set_credit_limit, account_id, limit)
        self._accounts.pop(account_id, None)  # the remembered account carries the old limit
        return result

    def products(self, account_id: str | None = None) -> list[Product]:
        result: list[Product] = self._call(Lane.READS, self.inner.products, account_id)
        return result

    def prices(self, account_id: str, items: Sequence[tuple[str, Decimal]], on: dt.date | None = None
               ) -> list[PriceQuote]:
        result: list[PriceQuote] = self._call(Lane.READS, self.inner.prices, account_id, items, on)
        return result

    def availability(self, skus: Sequence[str]) -> list[StockPosition]:
        if self._stock_reads is not None and self.lane is Lane.ORDERS:
            wanted = set(skus)
            positions: list[StockPosition] = self._stock_reads.submit(sorted(wanted))
            return [p for p in positions if p.sku in wanted]
        result: list[StockPosition] = self._call(Lane.READS, self.inner.availability, skus)
        return result

    def _availability_batch(self, requests: list[list[str]]) -> list[list[StockPosition]]:
        union = sorted({sku for skus in requests for sku in skus})
        positions: list[StockPosition] = self.gate.call(lambda: self.inner.availability(union),
                                                        lane=Lane.ORDERS)
        return [positions] * len(requests)

    def submit_orders(self, requests: Sequence[SalesOrderRequest]) -> list[SubmitResult]:
        if self._coalescer is not None and len(requests) == 1:
            return [self._coalescer.submit(requests[0])]
        return self._submit_batch(list(requests))

    def _submit_batch(self, requests: list[SalesOrderRequest]) -> list[SubmitResult]:
        result: list[SubmitResult] = self.gate.call(lambda: self.inner.submit_orders(requests),
                                                    lane=Lane.ORDERS)
        return result

    def amend_order(self, request: AmendmentRequest) -> AmendmentResult:
        result: AmendmentResult = self._call(Lane.ORDERS, self.inner.amend_order, request)
        return result

    def cancel_order(self, reference: str) -> bool:
        result: bool = self._call(Lane.ORDERS, self.inner.cancel_order, reference)
        return result

    def order(self, reference: str) -> ErpOrder | None:
        result: ErpOrder | None = self._call(Lane.ORDERS, self.inner.order, reference)
        return result

    def orders_for(self, order_id: str) -> list[ErpOrder]:
        result: list[ErpOrder] = self._call(Lane.ORDERS, self.inner.orders_for, order_id)
        return result

    def sales_since(self, since: dt.datetime | None, references: Sequence[str] = ()) -> list[ErpOrder]:
        result: list[ErpOrder] = self._call(Lane.BACKGROUND, self.inner.sales_since, since, references)
        return result

    def returns_since(self, since: dt.datetime | None, references: Sequence[str] = ()) -> list[ErpReturn]:
        result: list[ErpReturn] = self._call(Lane.BACKGROUND, self.inner.returns_since, since, references)
        return result

    def changes_since(self, watermark: dt.datetime | None, known: Known | None = None) -> ChangeBatch:
        result: ChangeBatch = self._call(Lane.CHANGES, self.inner.changes_since, watermark, known)
        return result

    def change_probe(self, watermark: dt.datetime | None) -> str | None:
        result: str | None = self._call(Lane.CHANGES, self.inner.change_probe, watermark)
        return result

    def change_feed(self) -> ChangeFeed | None:
        """Opened through the gate (a question to the ERP); its long polls then bypass the gate: one
        request held for minutes must not take a slot from the orders. They are counted all the same."""
        result: ChangeFeed | None = self._call(Lane.CHANGES, self.inner.change_feed)
        return result

    def create_return(self, request: ReturnRequest) -> ReturnResult:
        result: ReturnResult = self._call(Lane.ORDERS, self.inner.create_return, request)
        return result

    def return_status(self, reference: str) -> ErpReturn | None:
        result: ErpReturn | None = self._call(Lane.ORDERS, self.inner.return_status, reference)
        return result
