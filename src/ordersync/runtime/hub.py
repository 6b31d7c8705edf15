"""The hub as the composition root wires it (:func:`ordersync.bootstrap.build_hub`): the parts the command
line, the experience API, the pages and the channels work with, each by its type."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from ordersync.config import Settings
from ordersync.domain.clock import Clock
from ordersync.flows.deps import FlowDeps
from ordersync.flows.services.workbench import Workbench
from ordersync.messaging.consumer import ConsumerRunner
from ordersync.messaging.deadletters import DeadLetterService
from ordersync.messaging.gaps import GapRepair
from ordersync.messaging.heartbeat import Heartbeat
from ordersync.messaging.nats import NatsTransport
from ordersync.messaging.registry import Registry
from ordersync.messaging.relay import Relay
from ordersync.messaging.retention import Retention
from ordersync.messaging.transport import Transport
from ordersync.messaging.worker import Worker
from ordersync.ports.alerts import Mailer
from ordersync.ports.erp import Erps
from ordersync.runtime.alerts import AlertDispatcher
from ordersync.runtime.erp_changes import ErpChangePoller
from ordersync.runtime.intake_writer import IntakeWriter
from ordersync.runtime.readmodel import ReadModel
from ordersync.runtime.reconcile import Reconciler
from ordersync.runtime.webhooks import WebhookDispatcher
from ordersync.store.db import Database
from ordersync.store.uow import SqlStore, UnitOfWork
from ordersync.telemetry import tracing


@dataclass
class Hub:
    """A wired hub: store, bus, flows and the services the CLI, the API and the pages use. Without an ERP
    configured, ``erps``, ``deps``, ``readmodel`` and ``poller`` are None (only projections run)."""

    settings: Settings
    clock: Clock
    db: Database
    store: SqlStore
    transport: Transport
    registry: Registry
    runner: ConsumerRunner
    relay: Relay
    worker: Worker
    dead_letters: DeadLetterService
    intake: IntakeWriter
    workbench: Workbench
    webhooks: WebhookDispatcher
    retention: Retention
    erps: Erps | None = None
    poller: ErpChangePoller | None = None
    deps: FlowDeps | None = None
    readmodel: ReadModel | None = None
    gap_repair: GapRepair | None = None
    #: the worker's heartbeat in the store (written while the worker loop runs)
    heartbeat: Heartbeat | None = None
    #: the EDI channel (:class:`ordersync.channels.edi.channel.EdiChannel`) when partners are configured;
    #: typed loosely because the channels sit above the runtime
    edi: Any = None
    #: the Shopify channel (:class:`ordersync.channels.shopify.channel.ShopifyChannel`) when shops are configured
    shopify: Any = None
    #: the alert job (:class:`ordersync.runtime.alerts.AlertDispatcher`)
    alerts: AlertDispatcher | None = None
    #: e-mail through ``[alerts.smtp]`` (alerts, invitations); None when no server is configured
    mailer: Mailer | None = None
    #: reconciliation with the ERPs and channels, when the hub has an ERP
    reconciler: Reconciler | None = None

    def uow(self, causation_id: str | None = None) -> AbstractContextManager[UnitOfWork]:
        """A unit of work (one write transaction) on this hub's store."""
        return self.store.transaction(causation_id)

    def close(self) -> None:
        self.intake.close()
        self.runner.close()
        if isinstance(self.transport, NatsTransport):
            self.transport.close()
        self.webhooks.close()
        if self.edi is not None:
            self.edi.close()
        if self.shopify is not None:
            self.shopify.close()
        self.db.dispose()
        tracing.flush()  # spans still buffered go out before the process ends
