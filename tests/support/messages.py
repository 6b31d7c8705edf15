"""A test message and a consumer whose effect is a plain (non-idempotent) counter increment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from ordersync.domain.events import Event, register
from ordersync.messaging.registry import Registry, Subscription
from ordersync.messaging.retry import RetryPolicy
from ordersync.store.db import Database
from ordersync.store.schema import order_counters
from ordersync.store.sql import upsert_add
from ordersync.store.uow import UnitOfWork


class Ping(Event):
    TYPE = "test.ping"
    n: int
    key: str = "k"


if "test.ping" not in __import__("ordersync.domain.events", fromlist=["MESSAGE_TYPES"]).MESSAGE_TYPES:
    register(Ping)


@dataclass
class Flaky:
    """Fails the first ``failures[n]`` times it sees ping ``n`` (or always, for ``always``)."""

    failures: dict[int, int] = field(default_factory=dict)
    always: set[int] = field(default_factory=set)
    error: Callable[[int], Exception] = lambda n: RuntimeError(f"ERP timeout on ping {n}")
    calls: list[int] = field(default_factory=list)

    def __call__(self, msg: Ping, uow: UnitOfWork) -> None:
        self.calls.append(msg.n)
        upsert_add(uow.conn, order_counters, "name", "ping", "value", 1)
        upsert_add(uow.conn, order_counters, "name", f"ping:{msg.n}", "value", 1)
        if msg.n in self.always:
            raise self.error(msg.n)
        if self.failures.get(msg.n, 0) > 0:
            self.failures[msg.n] -= 1
            raise self.error(msg.n)


def ping_registry(handler: Flaky, *, max_attempts: int = 4, mode: str = "tx", batch_size: int = 200) -> Registry:
    registry = Registry()
    registry.add(
        Subscription(
            "test.pings", frozenset({Ping.TYPE}), handler, mode,  # type: ignore[arg-type]
            retry=RetryPolicy(max_attempts=max_attempts, base_seconds=10, factor=2, cap_seconds=600, jitter=0.5),
            batch_size=batch_size,
        )
    )
    return registry


def counters(db: Database) -> dict[str, int]:
    with db.read() as conn:
        return {k: int(v) for k, v in conn.execute(select(order_counters.c.name, order_counters.c.value))}
