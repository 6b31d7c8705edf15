"""The Shopify channel as the composition root wires it: a client per shop (one cost budget per shop in
the process), the inbound side (webhook events, reconciliation), the outbound sync (prices, stock,
payment terms) and sender (fulfillments, cancellations), and the worker jobs that drive them."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ordersync.canonical.v1 import Account
from ordersync.channels.shopify.client import ShopifyClient
from ordersync.channels.shopify.inbound import AccountDirectory, Shop, ShopifyInbound
from ordersync.channels.shopify.outbound import ShopifySender
from ordersync.channels.shopify.sync import ShopifySync
from ordersync.config import ShopifySettings
from ordersync.domain.cases import CasePolicy
from ordersync.domain.clock import Clock
from ordersync.flows.deps import FlowDeps
from ordersync.messaging.worker import Worker
from ordersync.runtime.intake_writer import IntakeWriter
from ordersync.store import shopify as store
from ordersync.store.db import Database

log = logging.getLogger("ordersync.shopify")


def shops_of(settings: ShopifySettings, *, transport: httpx.BaseTransport | None = None) -> list[Shop]:
    """A client for each configured shop (``transport``: a test double's, for tests and the demo)."""
    shops = []
    for s in settings.shops:
        token = s.access_token()
        if not token:
            log.warning("Shopify shop %s: no access token (set %s); its calls will be refused", s.name,
                        s.token_env or "token")
        client = ShopifyClient(s.domain, token or "", base_url=s.api_url or None, plan=s.plan, transport=transport,
                               timeout=settings.timeout)
        shops.append(Shop(s, client))
    return shops


@dataclass
class ShopifyChannel:
    settings: ShopifySettings
    shops: list[Shop]
    inbound: ShopifyInbound
    syncs: dict[str, ShopifySync] = field(default_factory=dict)  # by shop name (with an ERP)
    sender: ShopifySender | None = None

    @classmethod
    def build(cls, settings: ShopifySettings, db: Database, clock: Clock, intake: IntakeWriter, cases: CasePolicy,
              deps: FlowDeps | None, accounts: Callable[[], Sequence[Account]], *,
              transport: httpx.BaseTransport | None = None) -> ShopifyChannel:
        shops = shops_of(settings, transport=transport)
        directory = AccountDirectory(accounts, clock)
        inbound = ShopifyInbound(db, intake, clock, shops, directory, cases=cases, deps=deps)
        channel = cls(settings, shops, inbound)
        channel._outbound(db, clock, cases, deps, directory)
        return channel

    def _outbound(self, db: Database, clock: Clock, cases: CasePolicy, deps: FlowDeps | None,
                  directory: AccountDirectory) -> None:
        """The sync (it asks the ERP: only with ERP dependencies) and the sender."""
        if deps is not None:
            self.syncs = {s.name: ShopifySync(s, deps.erps, db, clock, directory) for s in self.shops}
        self.sender = ShopifySender(db, clock, self.shops, self.settings, cases=cases)

    def shop(self, name: str) -> Shop:
        for s in self.shops:
            if s.name == name:
                return s
        raise KeyError(f"no Shopify shop named {name!r} (configured: {', '.join(s.name for s in self.shops)})")

    def schedule(self, worker: Worker, *, single_worker: bool = False) -> None:
        """The worker jobs: work kept webhook events, send due tasks, reconcile, push stock and prices."""
        started: list[bool] = []

        def inbound() -> int:
            if single_worker and not started:
                with self.inbound.db.write() as conn:
                    released = store.release_leases(conn)
                if released:
                    log.warning("Shopify: %d event(s) or task(s) a stopped worker held are taken up again",
                                released)
                started.append(True)
            return self.inbound.process_waiting()

        poll = self.settings.poll_seconds
        worker.every(poll, "shopify events", inbound)
        if self.sender is not None:
            worker.every(poll, "shopify send", self.sender.send_due)
        for shop in self.shops:
            s = shop.settings
            worker.every(s.reconcile_minutes * 60, f"shopify reconcile {s.name}",
                         _quietly(f"reconciliation of {s.name}", functools.partial(self.inbound.reconcile, s.name)),
                         singleton=True)
            sync = self.syncs.get(s.name)
            if sync is not None and s.stock_minutes:
                worker.every(s.stock_minutes * 60, f"shopify stock {s.name}",
                             _quietly(f"stock push to {s.name}", sync.push_stock), singleton=True)
            if sync is not None and s.prices_minutes:
                worker.every(s.prices_minutes * 60, f"shopify prices {s.name}",
                             _quietly(f"price push to {s.name}", sync.push_prices), singleton=True)
                worker.every(s.prices_minutes * 60, f"shopify payment terms {s.name}",
                             _quietly(f"payment terms push to {s.name}", sync.push_payment_terms), singleton=True)

    def close(self) -> None:
        for shop in self.shops:
            shop.client.close()


def _quietly(what: str, job: Callable[[], Any]) -> Callable[[], int]:
    """A scheduled push or sweep: an unreachable Shopify or ERP is one warning line, tried at the next turn."""
    def run() -> int:
        try:
            job()
        except Exception as exc:
            log.warning("Shopify %s did not finish (tried again at the next turn): %s: %s", what,
                        type(exc).__name__, exc)
        return 0
    return run
