"""The composition root: the one place that builds concrete adapters and wires them together.

Nothing here runs at import time; :func:`build_hub` does the work when called.
"""

from __future__ import annotations

from dataclasses import dataclass

from ordersync.config import Settings
from ordersync.domain.clock import Clock, SystemClock
from ordersync.domain.errors import ConfigError
from ordersync.flows import build_registry
from ordersync.messaging.consumer import ConsumerRunner
from ordersync.messaging.deadletters import DeadLetterService
from ordersync.messaging.registry import Registry
from ordersync.messaging.relay import Relay
from ordersync.messaging.retry import RetryPolicy
from ordersync.messaging.sqlqueue import SqlQueueTransport
from ordersync.messaging.worker import Worker
from ordersync.store.db import Database
from ordersync.store.uow import UnitOfWork, unit_of_work


@dataclass
class Hub:
    """A wired hub: store, bus, flows and the services the CLI and API use."""

    settings: Settings
    clock: Clock
    db: Database
    transport: SqlQueueTransport
    registry: Registry
    runner: ConsumerRunner
    relay: Relay
    worker: Worker
    dead_letters: DeadLetterService

    def uow(self, causation_id: str | None = None):  # type: ignore[no-untyped-def]
        """A unit of work (one write transaction) on this hub's store."""
        return unit_of_work(self.db, self.clock, causation_id)

    def close(self) -> None:
        self.db.dispose()


def build_hub(settings: Settings, *, clock: Clock | None = None, registry: Registry | None = None,
              migrate: bool = True) -> Hub:
    if settings.bus != "embedded":
        raise ConfigError(f"bus {settings.bus!r} is not available yet; use 'embedded'")
    clock = clock or SystemClock()
    db = Database(settings.store_url)
    if migrate:
        db.migrate()
    registry = registry or build_registry()
    retry = settings.worker.retry
    policy = RetryPolicy(max_attempts=retry.max_attempts, base_seconds=retry.base_seconds,
                         cap_seconds=retry.cap_seconds)
    registry = _with_default_retry(registry, policy)
    transport = SqlQueueTransport(db, lease_seconds=settings.worker.lease_seconds)
    runner = ConsumerRunner(db, transport, registry, clock, lease_seconds=settings.worker.lease_seconds)
    relay = Relay(db, transport, clock, batch_size=settings.worker.relay_batch)
    worker = Worker(relay, runner, registry, clock, poll_interval=settings.worker.poll_interval)
    transport.on_publish(worker.wake)
    dead = DeadLetterService(db, transport, registry, clock)
    return Hub(settings, clock, db, transport, registry, runner, relay, worker, dead)


def _with_default_retry(registry: Registry, policy: RetryPolicy) -> Registry:
    """Subscriptions that kept the library default take the configured retry policy."""
    from dataclasses import replace

    out = Registry()
    for sub in registry:
        out.add(replace(sub, retry=policy) if sub.retry == RetryPolicy() else sub)
    return out


__all__ = ["Hub", "UnitOfWork", "build_hub"]
