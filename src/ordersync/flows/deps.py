"""What the order flows need, built once by the composition root and handed to handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from ordersync.adapters.erp.router import ErpRouter
from ordersync.domain.allocation import AllocationPolicy
from ordersync.domain.cases import CasePolicy
from ordersync.domain.clock import Clock
from ordersync.domain.pricing import ChannelRule
from ordersync.flows.readmodel import ReadModel
from ordersync.store.db import Database


@dataclass(frozen=True)
class FlowPolicy:
    rules: tuple[ChannelRule, ...] = ()
    price_tolerance_percent: Decimal = Decimal("0.5")
    allocation: AllocationPolicy = field(default_factory=AllocationPolicy)
    max_days_ahead: int = 365


@dataclass(frozen=True)
class FlowDeps:
    db: Database
    clock: Clock
    router: ErpRouter
    policy: FlowPolicy = field(default_factory=FlowPolicy)
    cases: CasePolicy = field(default_factory=CasePolicy)
    submit_concurrency: int = 4
    readmodel: ReadModel | None = None  # catalogs and plants for planning (prices and stock stay live)
