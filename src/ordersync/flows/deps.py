"""What the flows need, built once by the composition root and handed to handlers and services: ports
only (the store, the ERPs behind their access policy, the read model's catalogs), the clock and policy."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal

from ordersync.domain.allocation import AllocationPolicy
from ordersync.domain.cases import CasePolicy
from ordersync.domain.clock import Clock
from ordersync.domain.pricing import ChannelRule
from ordersync.ports.catalogs import Catalogs
from ordersync.ports.erp import Erps, Lane
from ordersync.ports.store import Store


@dataclass(frozen=True)
class FlowPolicy:
    rules: tuple[ChannelRule, ...] = ()
    price_tolerance_percent: Decimal = Decimal("0.5")
    allocation: AllocationPolicy = field(default_factory=AllocationPolicy)
    max_days_ahead: int = 365


@dataclass(frozen=True)
class FlowDeps:
    store: Store
    clock: Clock
    erps: Erps
    policy: FlowPolicy = field(default_factory=FlowPolicy)
    cases: CasePolicy = field(default_factory=CasePolicy)
    submit_concurrency: int = 4  # orders prepared at once
    submit_wave: int = 8  # orders being submitted at once (the ERP adapter batches them)
    catalogs: Catalogs | None = None  # catalogs and plants for preparation (prices and stock stay live)

    def in_lane(self, lane: Lane) -> FlowDeps:
        """The same dependencies with every ERP call in ``lane`` (a consumer picks its lane where it is
        registered)."""
        return dataclasses.replace(self, erps=self.erps.in_lane(lane))
