"""The read model behind the experience API: contract prices, stock per plant and catalogs, served
from the hub's store so that storefront traffic never turns into ERP traffic.

Where answers come from, fastest first:

1. this process's memory: every entry it has read, kept current by the changes applied in this process
   (at once) and by :meth:`ReadModel.sync`, which every ``memory_seconds`` reads the store rows other
   processes refreshed since the last sync (one indexed query per table, whatever the number of keys);
2. the store (``rm_stock``, ``rm_prices``, ``rm_catalogs``), kept fresh by ERP change events
   (:class:`~ordersync.domain.events.StockChanged`, :class:`~ordersync.domain.events.PriceListChanged`)
   and by a scheduled refresh of entries older than ``refresh_seconds``;
3. on a miss, the ERP, once for all concurrent requests of the same keys (single flight,
   :class:`SingleFlight` at the bottom of this module), in the
   READS lane of the ERP's concurrency budget; the answer is stored for everybody.

One class of about 500 lines: stock, prices and catalogs share the memory, the sync with other processes,
single flight and freshness; split by kind, each would repeat that machinery.

Every answer carries ``as_of`` (the time the ERP's answer describes) and ``stale``: true when the entry
is older than ``stale_after`` or the ERP is unreachable (circuit not closed), so that a portal can say
"prices as of 10:02" instead of failing while the ERP is down.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, select, tuple_

from ordersync.canonical.v1 import Account, CustomerPartNumber, PriceQuote, Product, StockPosition
from ordersync.domain.clock import Clock
from ordersync.domain.errors import Unavailable
from ordersync.domain.events import PriceListChanged, StockChanged
from ordersync.messaging.registry import HandlerContext, Registry
from ordersync.ports.erp import Erps, Lane, Plant, UnknownItem
from ordersync.store.db import Database
from ordersync.store.schema import rm_catalogs, rm_prices, rm_stock
from ordersync.store.sql import upsert_row
from ordersync.store.uow import UnitOfWork

log = logging.getLogger("ordersync.readmodel")

STOCK_CONSUMER = "readmodel.stock"
PRICES_CONSUMER = "readmodel.price_lists"


def qty_key(quantity: Decimal) -> str:
    """The normalized text of a quantity (10, 10.0 and 1E1 are one price entry)."""
    text = format(quantity.normalize(), "f")
    return text


@dataclass(frozen=True)
class Freshness:
    as_of: dt.datetime
    refreshed_at: dt.datetime
    stale: bool


@dataclass(frozen=True)
class StockView:
    sku: str
    positions: tuple[StockPosition, ...]
    freshness: Freshness


@dataclass(frozen=True)
class PriceView:
    quote: PriceQuote
    freshness: Freshness


@dataclass(frozen=True)
class CatalogView:
    account_id: str
    products: tuple[dict[str, Any], ...]
    etag: str
    freshness: Freshness


class ReadModel:
    def __init__(self, db: Database, clock: Clock, erps: Erps, *, refresh_seconds: float = 300.0,
                 stale_after_seconds: float = 900.0, memory_seconds: float = 0.5) -> None:
        self.db = db
        self.clock = clock
        self.erps = erps.in_lane(Lane.READS)
        self.background = erps.in_lane(Lane.BACKGROUND)  # scheduled refreshes
        self.refresh_after = dt.timedelta(seconds=refresh_seconds)
        self.stale_after = dt.timedelta(seconds=stale_after_seconds)
        self.memory_seconds = memory_seconds
        self._lock = threading.Lock()
        # memory: key -> (loaded at (monotonic), erp, value, as_of, refreshed_at)
        self._stock: dict[str, tuple[float, str, tuple[StockPosition, ...], dt.datetime, dt.datetime]] = {}
        self._prices: dict[tuple[str, str, str], tuple[float, str, PriceQuote, dt.datetime, dt.datetime]] = {}
        self._catalogs: dict[str, tuple[float, str, CatalogView]] = {}
        self._plants: dict[str, tuple[float, list[Plant]]] = {}
        self._products: dict[str, tuple[str, list[Product]]] = {}  # account -> (catalog etag, products)
        self._accounts: dict[str, tuple[float, Account | None]] = {}  # account -> (valid until, terms)
        self._account_flights: dict[str, Future[Account | None]] = {}
        self.stock_flight: SingleFlight[str, tuple[StockPosition, ...]] = SingleFlight()
        self.price_flight: SingleFlight[tuple[str, str, str], PriceQuote] = SingleFlight()
        self.catalog_flight: SingleFlight[str, CatalogView] = SingleFlight()
        self._synced: dt.datetime | None = None
        #: whether this process's change capture follows an ERP now (wired with the change poller; None:
        #: it runs elsewhere or not at all, and order preparation asks the ERP for stock)
        self.follows: Callable[[str], bool] | None = None
        self._sync_thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- keeping this process's memory current ------------------------------------------------------------
    def start_sync(self) -> None:
        """Start the background sync (API processes call this at start-up); idempotent."""
        if self._sync_thread is None and self.memory_seconds > 0:
            self._stop.clear()
            self._sync_thread = threading.Thread(target=self._sync_loop, name="ordersync-readmodel-sync", daemon=True)
            self._sync_thread.start()

    def stop_sync(self) -> None:
        self._stop.set()
        if self._sync_thread is not None:
            self._sync_thread.join(timeout=10)
            self._sync_thread = None

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.memory_seconds):
            try:
                self.sync()
            except Exception:  # a store hiccup: the next round catches up from the same point
                log.exception("read model sync failed; retrying")

    def sync(self, overlap: dt.timedelta = dt.timedelta(seconds=5)) -> int:
        """Bring rows refreshed since the last sync (by any process) into memory, for the keys this
        process holds. ``overlap`` covers rows stamped just before a slow commit."""
        now = self.clock.now()
        since = (self._synced - overlap) if self._synced is not None else now
        self._synced = now
        with self.db.read() as conn:
            stock_rows = list(conn.execute(select(rm_stock).where(rm_stock.c.refreshed_at >= since)).mappings())
            price_rows = list(conn.execute(select(rm_prices).where(rm_prices.c.refreshed_at >= since)).mappings())
            catalog_rows = list(conn.execute(select(rm_catalogs.c.account_id)
                                             .where(rm_catalogs.c.refreshed_at >= since)).scalars())
        held_skus = [r["sku"] for r in stock_rows if r["sku"] in self._stock]
        if held_skus:
            self._stock_from_store(sorted(set(held_skus)))
        keys = [(r["account_id"], r["sku"], r["quantity"]) for r in price_rows]
        held_keys = [k for k in keys if k in self._prices]
        if held_keys:
            self._prices_from_store(held_keys)
        for account_id in catalog_rows:
            if account_id in self._catalogs:
                self._catalog_from_store(account_id)
        return len(held_skus) + len(held_keys)

    # -- freshness ------------------------------------------------------------------------------------
    def erp_reachable(self, erp: str) -> bool:
        """The ERP's circuit is closed (a plain attribute read: this runs for every item served)."""
        return self.erps.reachable(erp)

    def _freshness(self, erp: str, as_of: dt.datetime, refreshed_at: dt.datetime, now: dt.datetime) -> Freshness:
        stale = now - refreshed_at > self.stale_after or not self.erp_reachable(erp)
        return Freshness(as_of=as_of, refreshed_at=refreshed_at, stale=stale)

    def _stock_erp(self, account_id: str | None) -> str:
        if account_id is not None:
            return self.erps.erp_name_for(account_id)
        return self.erps.default_name()

    # -- stock ----------------------------------------------------------------------------------------
    def stock(self, skus: Sequence[str], account_id: str | None = None) -> list[StockView]:
        """Stock per plant of each SKU, in order. Unknown SKU -> :class:`UnknownItem`; ERP down and
        nothing known -> :class:`Unavailable`."""
        now = self.clock.now()
        found = self.cached_stock(skus)
        missing = [s for s in dict.fromkeys(skus) if s not in found]
        if missing:
            found.update(self._stock_from_store(missing))
            missing = [s for s in missing if s not in found]
        if missing:
            erp = self._stock_erp(account_id)
            fetched = self.stock_flight.fetch(missing, lambda keys: self._fetch_stock(erp, keys))
            for sku, positions in fetched.items():
                if positions is None:
                    raise UnknownItem("sku", sku)
            found.update(self.cached_stock(missing, max_age=math.inf))
        return [self._stock_view(sku, found[sku], now) for sku in skus]

    def followed_stock(self, erp: str, skus: Sequence[str]) -> list[StockPosition] | None:
        """Stock per plant of ``skus`` as held (memory, then store), while this process's change capture
        follows ``erp``; None when it does not or a SKU is not held at ``erp`` (see the catalogs port)."""
        if self.follows is None or not self.follows(erp):
            return None
        wanted = list(dict.fromkeys(skus))
        found = self.cached_stock(wanted)
        missing = [s for s in wanted if s not in found]
        if missing:
            found.update(self._stock_from_store(missing))
        if any(sku not in found or found[sku][0] != erp for sku in wanted):
            return None
        return [position for sku in wanted for position in found[sku][1]]

    def stock_cached(self, skus: Sequence[str]) -> list[StockView] | None:
        """:meth:`stock` from memory only (no I/O, safe on an event loop), or None on any miss."""
        found = self.cached_stock(skus)
        if len(found) < len(set(skus)):
            return None
        now = self.clock.now()
        return [self._stock_view(sku, found[sku], now) for sku in skus]

    def cached_stock(self, skus: Iterable[str], max_age: float | None = None
                     ) -> dict[str, tuple[str, tuple[StockPosition, ...], dt.datetime, dt.datetime]]:
        """What this process's memory holds (no I/O): sku -> (erp, positions, as_of, refreshed_at)."""
        limit = time.monotonic() - (math.inf if max_age is None else max_age)
        out = {}
        for sku in skus:
            hit = self._stock.get(sku)
            if hit is not None and hit[0] >= limit:
                out[sku] = hit[1:]
        return out

    def _stock_view(self, sku: str, entry: tuple[str, tuple[StockPosition, ...], dt.datetime, dt.datetime],
                    now: dt.datetime) -> StockView:
        erp, positions, as_of, refreshed_at = entry
        return StockView(sku, positions, self._freshness(erp, as_of, refreshed_at, now))

    def _stock_from_store(self, skus: list[str]) -> dict[str, tuple[str, tuple[StockPosition, ...], dt.datetime,
                                                                     dt.datetime]]:
        with self.db.read() as conn:
            rows = conn.execute(select(rm_stock).where(rm_stock.c.sku.in_(skus)).order_by(rm_stock.c.sku,
                                                                                           rm_stock.c.plant))
            grouped: dict[str, list[Any]] = {}
            for row in rows.mappings():
                grouped.setdefault(row["sku"], []).append(row)
        loaded = time.monotonic()
        out = {}
        with self._lock:
            for sku, group in grouped.items():
                positions = tuple(StockPosition.model_validate_json(r["body"]) for r in group)
                entry = (group[0]["erp"], positions, min(r["as_of"] for r in group),
                         min(r["refreshed_at"] for r in group))
                self._stock[sku] = (loaded, *entry)
                out[sku] = entry
        return out

    def _fetch_stock(self, erp: str, skus: list[str], erps: Erps | None = None
                     ) -> dict[str, tuple[StockPosition, ...]]:
        try:
            positions = (erps or self.erps).erp(erp).availability(skus)
        except UnknownItem as exc:
            if len(skus) == 1:
                return {}
            # find the good ones: the ERP refused the batch because of one unknown SKU
            good = [s for s in skus if s != exc.key]
            return self._fetch_stock(erp, good, erps) if good else {}
        with self.db.write() as conn:
            self.store_stock(conn, erp, positions)
        grouped: dict[str, tuple[StockPosition, ...]] = {}
        for p in positions:
            grouped[p.sku] = (*grouped.get(p.sku, ()), p)
        return grouped

    def store_stock(self, conn: Connection, erp: str, positions: Sequence[StockPosition]) -> None:
        """Upsert stock positions (a change event or a fetch) and show them in this process at once."""
        now = self.clock.now()
        for p in positions:
            upsert_row(conn, rm_stock, {"sku": p.sku, "plant": p.plant},
                       {"erp": erp, "body": p.model_dump_json(), "as_of": p.as_of, "refreshed_at": now})
        grouped: dict[str, list[StockPosition]] = {}
        for p in positions:
            grouped.setdefault(p.sku, []).append(p)
        loaded = time.monotonic()
        with self._lock:
            for sku, group in grouped.items():
                old = self._stock.get(sku)
                merged = {p.plant: p for p in (old[2] if old else ())}
                merged.update({p.plant: p for p in group})
                values = tuple(merged[k] for k in sorted(merged))
                self._stock[sku] = (loaded, erp, values, min(p.as_of for p in values), now)

    def plants(self, erp: str) -> list[Plant]:
        """The ERP's plants, remembered for ten minutes (they change about never)."""
        hit = self._plants.get(erp)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        plants = self.erps.erp(erp).plants()
        self._plants[erp] = (time.monotonic() + 600, plants)
        return plants

    # -- account terms --------------------------------------------------------------------------------
    def account_terms(self, account_id: str) -> Future[Account | None]:
        """The account as its ERP has it (currency, status, ship-to addresses: the terms an order is
        checked against at intake), remembered for ``refresh_seconds``; a done future when remembered,
        else one the ERP's answer completes (read once for all concurrent callers, on a thread of its
        own so that the caller may stop waiting). None: not known to the ERP, or the ERP did not answer
        (the order's validation decides then)."""
        with self._lock:
            hit = self._accounts.get(account_id)
            if hit is not None:  # remembered: answered at once, and read again in the background once old
                done: Future[Account | None] = Future()
                done.set_result(hit[1])
                if hit[0] <= time.monotonic() and account_id not in self._account_flights:
                    self._start_account_fetch(account_id)
                return done
            flight = self._account_flights.get(account_id)
            if flight is not None:
                return flight
            flight = self._start_account_fetch(account_id)
        return flight

    def _start_account_fetch(self, account_id: str) -> Future[Account | None]:
        """(Holding ``_lock``.) Read the account's terms on a thread of its own."""
        flight: Future[Account | None] = Future()
        self._account_flights[account_id] = flight
        threading.Thread(target=self._fetch_account, args=(account_id, flight), name="account-terms",
                         daemon=True).start()
        return flight

    def _fetch_account(self, account_id: str, flight: Future[Account | None]) -> None:
        account: Account | None = None
        remember = True
        try:
            account = self.erps.for_account(account_id).account(account_id)
        except UnknownItem:
            account = None
        except Exception as exc:  # the ERP did not answer: ask again next time
            remember = False
            log.warning("account %s: its terms could not be read from the ERP (%s); orders are checked against "
                        "them at validation", account_id, exc)
        with self._lock:
            if remember:
                self._accounts[account_id] = (time.monotonic() + self.refresh_after.total_seconds(), account)
            self._account_flights.pop(account_id, None)
        flight.set_result(account)

    # -- prices ---------------------------------------------------------------------------------------
    def prices(self, account_id: str, items: Sequence[tuple[str, Decimal]]) -> list[PriceView]:
        """ERP contract prices of (sku, quantity) for an account, in order (channel rules are the
        caller's business: they depend on who asks)."""
        now = self.clock.now()
        keys = [(account_id, sku, qty_key(q)) for sku, q in items]
        found = self.cached_prices(keys)
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        if missing:
            found.update(self._prices_from_store(missing))
            missing = [k for k in missing if k not in found]
        if missing:
            erp = self.erps.erp_name_for(account_id)
            fetched = self.price_flight.fetch(missing, lambda ks: self._fetch_prices(erp, account_id, ks))
            for key, quote in fetched.items():
                if quote is None:
                    raise UnknownItem("sku", key[1])
            found.update(self.cached_prices(missing, max_age=math.inf))
        out = []
        for key in keys:
            erp, quote, as_of, refreshed_at = found[key]
            out.append(PriceView(quote, self._freshness(erp, as_of, refreshed_at, now)))
        return out

    def prices_cached(self, account_id: str, items: Sequence[tuple[str, Decimal]]) -> list[PriceView] | None:
        """:meth:`prices` from memory only (no I/O), or None on any miss."""
        keys = [(account_id, sku, qty_key(q)) for sku, q in items]
        found = self.cached_prices(keys)
        if len(found) < len(set(keys)):
            return None
        now = self.clock.now()
        return [PriceView(found[k][1], self._freshness(found[k][0], found[k][2], found[k][3], now)) for k in keys]

    def catalog_cached(self, account_id: str, max_age: float | None = None) -> CatalogView | None:
        hit = self._catalogs.get(account_id)
        if hit is None or hit[0] < time.monotonic() - (math.inf if max_age is None else max_age):
            return None
        view = hit[2]
        return CatalogView(view.account_id, view.products, view.etag,
                           self._freshness(hit[1], view.freshness.as_of, view.freshness.refreshed_at,
                                           self.clock.now()))

    def cached_prices(self, keys: Iterable[tuple[str, str, str]], max_age: float | None = None
                      ) -> dict[tuple[str, str, str], tuple[str, PriceQuote, dt.datetime, dt.datetime]]:
        limit = time.monotonic() - (math.inf if max_age is None else max_age)
        out = {}
        for key in keys:
            hit = self._prices.get(key)
            if hit is not None and hit[0] >= limit:
                out[key] = hit[1:]
        return out

    def _prices_from_store(self, keys: list[tuple[str, str, str]]
                           ) -> dict[tuple[str, str, str], tuple[str, PriceQuote, dt.datetime, dt.datetime]]:
        with self.db.read() as conn:
            rows = list(conn.execute(select(rm_prices).where(
                tuple_(rm_prices.c.account_id, rm_prices.c.sku, rm_prices.c.quantity).in_(keys))).mappings())
        loaded = time.monotonic()
        out = {}
        with self._lock:
            for r in rows:
                key = (r["account_id"], r["sku"], r["quantity"])
                entry = (r["erp"], PriceQuote.model_validate_json(r["body"]), r["as_of"], r["refreshed_at"])
                self._prices[key] = (loaded, *entry)
                out[key] = entry
        return out

    def _fetch_prices(self, erp: str, account_id: str, keys: list[tuple[str, str, str]]
                      ) -> dict[tuple[str, str, str], PriceQuote]:
        try:
            quotes = self.erps.erp(erp).prices(account_id, [(k[1], Decimal(k[2])) for k in keys])
        except UnknownItem as exc:
            if exc.kind != "sku" or len(keys) == 1:
                if exc.kind == "sku":
                    return {}
                raise
            good = [k for k in keys if k[1] != exc.key]
            return self._fetch_prices(erp, account_id, good) if good else {}
        with self.db.write() as conn:
            self.store_prices(conn, erp, quotes)
        return {(q.account_id, q.sku, qty_key(q.quantity)): q for q in quotes}

    def store_prices(self, conn: Connection, erp: str, quotes: Sequence[PriceQuote]) -> None:
        now = self.clock.now()
        loaded = time.monotonic()
        for q in quotes:
            key = (q.account_id, q.sku, qty_key(q.quantity))
            upsert_row(conn, rm_prices, {"account_id": key[0], "sku": key[1], "quantity": key[2]},
                       {"erp": erp, "body": q.model_dump_json(), "as_of": q.as_of, "refreshed_at": now})
            with self._lock:
                self._prices[key] = (loaded, erp, q, q.as_of, now)

    # -- catalog --------------------------------------------------------------------------------------
    def catalog(self, account_id: str) -> CatalogView:
        """The account's assortment with its customer part numbers."""
        cached = self.catalog_cached(account_id)
        if cached is not None:
            return cached
        if self._catalog_from_store(account_id) is None:
            self._fetch_catalog_once(account_id)
        cached = self.catalog_cached(account_id, max_age=math.inf)
        assert cached is not None
        return cached

    def products(self, account_id: str, *, refresh: bool = False) -> list[Product]:
        """The account's assortment as canonical products (for order validation); ``refresh`` reads it
        from the ERP first."""
        if refresh:
            self._fetch_catalog(self.erps.erp_name_for(account_id), account_id)
        view = self.catalog(account_id)
        hit = self._products.get(account_id)
        if hit is not None and hit[0] == view.etag:
            return hit[1]
        products = [product_of(item, account_id) for item in view.products]
        self._products[account_id] = (view.etag, products)
        return products

    def _catalog_from_store(self, account_id: str) -> CatalogView | None:
        with self.db.read() as conn:
            row = conn.execute(select(rm_catalogs).where(rm_catalogs.c.account_id == account_id)).mappings().first()
        if row is None:
            return None
        view = CatalogView(account_id, tuple(json.loads(row["body"])), row["etag"],
                           Freshness(row["as_of"], row["refreshed_at"], False))
        with self._lock:
            self._catalogs[account_id] = (time.monotonic(), row["erp"], view)
        return view

    def _fetch_catalog_once(self, account_id: str) -> CatalogView:
        erp = self.erps.erp_name_for(account_id)
        view = self.catalog_flight.fetch([account_id], lambda keys: {account_id: self._fetch_catalog(erp, keys[0])})
        result = view[account_id]
        assert result is not None
        return result

    def _fetch_catalog(self, erp: str, account_id: str, erps: Erps | None = None) -> CatalogView:
        products = (erps or self.erps).erp(erp).products(account_id)
        with self.db.write() as conn:
            return self.store_catalog(conn, erp, account_id, products)

    def store_catalog(self, conn: Connection, erp: str, account_id: str, products: Sequence[Product]) -> CatalogView:
        now = self.clock.now()
        items = [catalog_item(p, account_id) for p in sorted(products, key=lambda p: p.sku)]
        body = json.dumps(items, sort_keys=True, separators=(",", ":"))
        etag = hashlib.sha256(body.encode()).hexdigest()[:32]
        upsert_row(conn, rm_catalogs, {"account_id": account_id},
                   {"erp": erp, "body": body, "etag": etag, "as_of": now, "refreshed_at": now})
        view = CatalogView(account_id, tuple(items), etag, Freshness(now, now, False))
        with self._lock:
            self._catalogs[account_id] = (time.monotonic(), erp, view)
        return view

    # -- change events and scheduled refresh ----------------------------------------------------------
    def on_stock_changed(self, events: list[StockChanged], uow: UnitOfWork) -> None:
        for event in events:
            self.store_stock(uow.conn, event.erp, event.positions)

    def on_price_list_changed(self, event: PriceListChanged, ctx: HandlerContext) -> None:
        """Re-read the prices and catalogs the read model holds for the accounts concerned (all, when
        the event names none)."""
        accounts = set(event.account_ids)
        with self.db.read() as conn:
            query = select(rm_prices.c.account_id, rm_prices.c.sku, rm_prices.c.quantity).where(
                rm_prices.c.erp == event.erp)
            keys = [tuple(r) for r in conn.execute(query) if not accounts or r[0] in accounts]
            query_c = select(rm_catalogs.c.account_id).where(rm_catalogs.c.erp == event.erp)
            catalogs = [r[0] for r in conn.execute(query_c) if not accounts or r[0] in accounts]
        quotes, views = self._refetch_prices(event.erp, keys), []
        products = {a: self.erps.erp(event.erp).products(a) for a in catalogs}
        with ctx.transaction() as uow:
            assert isinstance(uow, UnitOfWork)  # the read model's tables live in the hub's own store
            self.store_prices(uow.conn, event.erp, quotes)
            for account_id, items in products.items():
                views.append(self.store_catalog(uow.conn, event.erp, account_id, items))

    def _refetch_prices(self, erp: str, keys: Sequence[tuple[Any, ...]], erps: Erps | None = None
                        ) -> list[PriceQuote]:
        by_account: dict[str, list[tuple[str, Decimal]]] = {}
        for account_id, sku, qty in keys:
            by_account.setdefault(account_id, []).append((sku, Decimal(qty)))
        quotes: list[PriceQuote] = []
        for account_id, items in by_account.items():
            for i in range(0, len(items), 50):
                try:
                    quotes += (erps or self.erps).erp(erp).prices(account_id, items[i:i + 50])
                except UnknownItem as exc:  # a SKU or account retired in the ERP: drop it later
                    log.warning("price refresh for %s skipped a batch: %s", account_id, exc)
        return quotes

    def refresh_due(self, limit: int = 200) -> int:
        """Scheduled refresh: re-read up to ``limit`` entries older than ``refresh_seconds``, in the
        BACKGROUND lane. Returns how many entries were refreshed. ERP down -> try again next time."""
        cutoff = self.clock.now() - self.refresh_after
        with self.db.read() as conn:
            stock = conn.execute(select(rm_stock.c.erp, rm_stock.c.sku).where(rm_stock.c.refreshed_at < cutoff)
                                 .order_by(rm_stock.c.refreshed_at).limit(limit)).all()
            prices = conn.execute(select(rm_prices.c.erp, rm_prices.c.account_id, rm_prices.c.sku,
                                         rm_prices.c.quantity).where(rm_prices.c.refreshed_at < cutoff)
                                  .order_by(rm_prices.c.refreshed_at).limit(limit)).all()
            catalogs = conn.execute(select(rm_catalogs.c.erp, rm_catalogs.c.account_id)
                                    .where(rm_catalogs.c.refreshed_at < cutoff).limit(limit)).all()
        done = 0
        try:
            skus_by_erp: dict[str, list[str]] = {}
            for erp, sku in stock:
                skus_by_erp.setdefault(erp, []).append(sku)
            for erp, skus in skus_by_erp.items():
                for i in range(0, len(skus), 50):
                    done += len(self._fetch_stock(erp, sorted(set(skus[i:i + 50])), self.background))
            prices_by_erp: dict[str, list[tuple[Any, ...]]] = {}
            for erp, *key in prices:
                prices_by_erp.setdefault(erp, []).append(tuple(key))
            for erp, keys in prices_by_erp.items():
                quotes = self._refetch_prices(erp, keys, self.background)
                with self.db.write() as conn:
                    self.store_prices(conn, erp, quotes)
                done += len(quotes)
            for erp, account_id in catalogs:
                self._fetch_catalog(erp, account_id, self.background)
                done += 1
        except Unavailable as exc:
            log.warning("read model refresh paused: %s", exc)
        return done


def catalog_item(product: Product, account_id: str) -> dict[str, Any]:
    return {
        "sku": product.sku,
        "name": product.name,
        "unit": product.unit,
        "category": product.category,
        "minimum_quantity": str(product.minimum_quantity),
        "pack_multiple": str(product.pack_multiple),
        "list_price": None if product.list_price is None else str(product.list_price),
        "currency": product.currency,
        "active": product.active,
        "customer_part_numbers": [c.part_number for c in product.customer_part_numbers
                                  if c.account_id == account_id],
    }


def product_of(item: dict[str, Any], account_id: str) -> Product:
    """The canonical product of a catalog item (the inverse of :func:`catalog_item`)."""
    return Product(
        sku=item["sku"], name=item["name"], unit=item["unit"], category=item["category"],
        minimum_quantity=Decimal(item["minimum_quantity"]), pack_multiple=Decimal(item["pack_multiple"]),
        list_price=None if item["list_price"] is None else Decimal(item["list_price"]), currency=item["currency"],
        active=item.get("active", True),
        customer_part_numbers=tuple(CustomerPartNumber(account_id=account_id, part_number=p)
                                    for p in item["customer_part_numbers"]),
    )


def register(registry: Registry, model: ReadModel) -> None:
    registry.on(STOCK_CONSUMER, StockChanged, batched=True)(model.on_stock_changed)
    registry.on(PRICES_CONSUMER, PriceListChanged, mode="io")(model.on_price_list_changed)


# -- single flight ------------------------------------------------------------------------------------------

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Concurrent requests for the same keys share one call to the system behind them: a storefront spike
    of 200 requests for the same SKU that is not in the read model yet costs the ERP one lookup, not 200.
    :meth:`fetch` takes a batch of keys; keys already being fetched by another caller are waited for, the
    rest are fetched in ONE call by this caller, which then hands every waiter its result (or exception)."""

    def __init__(self, *, wait_timeout: float = 60.0) -> None:
        self.wait_timeout = wait_timeout
        self._lock = threading.Lock()
        self._inflight: dict[K, Future[V | None]] = {}
        self.calls = 0  # how many times ``fn`` ran (tests and metrics)

    def fetch(self, keys: Sequence[K], fn: Callable[[list[K]], dict[K, V]]) -> dict[K, V | None]:
        """``fn(keys)`` returns the values it found (absent keys map to None for every waiter)."""
        lead: list[K] = []
        futures: dict[K, Future[V | None]] = {}
        with self._lock:
            for key in dict.fromkeys(keys):
                future = self._inflight.get(key)
                if future is None:
                    future = Future()
                    self._inflight[key] = future
                    lead.append(key)
                futures[key] = future
        if lead:
            try:
                self.calls += 1
                found = fn(lead)
            except BaseException as exc:
                for key in lead:
                    futures[key].set_exception(exc)
            else:
                for key in lead:
                    futures[key].set_result(found.get(key))
            finally:
                with self._lock:
                    for key in lead:
                        self._inflight.pop(key, None)
        return {key: future.result(timeout=self.wait_timeout) for key, future in futures.items()}
