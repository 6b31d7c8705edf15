"""Subscriptions: which handler runs for which message types, how it is retried, and how messages are
decoded and validated before any handler sees them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from ordersync.canonical.envelope import Envelope
from ordersync.domain.clock import Clock
from ordersync.domain.errors import MessageError
from ordersync.domain.events import MESSAGE_TYPES, Message
from ordersync.messaging.retry import RetryPolicy
from ordersync.ports.store import UnitOfWork

TxHandler = Callable[[Any, UnitOfWork], None]


class HandlerContext:
    """What an I/O handler gets: the envelope, the clock, and :meth:`transaction`, the one transaction
    in which its effects, its emitted events, the inbox record and the delivery's settlement commit
    together. An I/O handler calls remote systems *before* opening it, so no database lock is held
    during a slow call."""

    def __init__(self, envelope: Envelope, clock: Clock,
                 opener: Callable[[], contextlib.AbstractContextManager[UnitOfWork]]) -> None:
        self.envelope = envelope
        self.clock = clock
        self._opener = opener
        self.committed = False

    @contextlib.contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        if self.committed:
            raise RuntimeError("a handler commits its effects once")
        with self._opener() as uow:
            yield uow
        self.committed = True


IoHandler = Callable[[Any, HandlerContext], None]


@dataclass(frozen=True)
class Subscription:
    """A consumer: a durable name, the message types it takes, its handler and its retry policy.

    ``mode="tx"`` handlers run inside a runner-managed transaction and may be batched (fast path);
    ``mode="io"`` handlers call remote systems and commit through :class:`HandlerContext`.
    ``ordered=True`` delivers messages of one correlation id (order) strictly one after another.
    ``batch_size`` is how many deliveries one claim takes (default: 200 for tx, 10 for io handlers).
    ``concurrency`` (io mode) handles that many deliveries of a batch at once, in threads, so that a
    remote system's adapter can coalesce concurrent calls into batch calls.
    ``batched=True`` (tx mode only) calls the handler once per claimed batch with the list of messages
    not processed before, so that a projection can aggregate its writes; the inbox still records every
    message id in the same transaction.
    """

    consumer: str
    types: frozenset[str] | None
    handler: Callable[..., None]
    mode: Literal["tx", "io"] = "tx"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    ordered: bool = False
    batch_size: int = 0
    batched: bool = False
    concurrency: int = 1

    def __post_init__(self) -> None:
        if self.batched and self.mode != "tx":
            raise ValueError(f"{self.consumer}: only tx handlers can take batches")
        if self.concurrency > 1 and self.mode != "io":
            raise ValueError(f"{self.consumer}: only io handlers run concurrently")
        if self.batch_size <= 0:
            object.__setattr__(self, "batch_size", 50 if self.mode == "tx" else max(10, 2 * self.concurrency))


class Registry:
    """All subscriptions of a process, keyed by consumer name."""

    def __init__(self) -> None:
        self._subs: dict[str, Subscription] = {}

    def add(self, sub: Subscription) -> Subscription:
        if sub.consumer in self._subs:
            raise ValueError(f"consumer {sub.consumer!r} is registered twice")
        self._subs[sub.consumer] = sub
        return sub

    def on(
        self,
        consumer: str,
        *types: type[Message],
        mode: Literal["tx", "io"] = "tx",
        retry: RetryPolicy | None = None,
        ordered: bool = False,
        batched: bool = False,
    ) -> Callable[[Callable[..., None]], Callable[..., None]]:
        """Decorator form: ``@registry.on("projection.counters", OrderStateChanged)``."""

        def wrap(fn: Callable[..., None]) -> Callable[..., None]:
            self.add(Subscription(consumer, frozenset(t.TYPE for t in types) or None, fn, mode,
                                  retry or RetryPolicy(), ordered, batched=batched))
            return fn

        return wrap

    def __iter__(self) -> Iterator[Subscription]:
        return iter(self._subs.values())

    def __getitem__(self, consumer: str) -> Subscription:
        return self._subs[consumer]

    def __contains__(self, consumer: object) -> bool:
        return consumer in self._subs

    def names(self) -> list[str]:
        return list(self._subs)


class DecodeError(MessageError):
    """A message that cannot be decoded; ``reason`` is one of malformed, unknown_type, schema_violation."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def decode(body: str) -> tuple[Envelope, Message]:
    """Parse and validate a wire message into its envelope and typed message, or raise DecodeError."""
    try:
        envelope = Envelope.model_validate_json(body)
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            raise DecodeError("malformed", f"not JSON: {exc.errors()[0]['msg']}") from exc
        raise DecodeError("malformed", f"envelope does not fit: {_short(exc)}") from exc
    cls = MESSAGE_TYPES.get(envelope.type)
    if cls is None:
        raise DecodeError("unknown_type", f"no message type {envelope.type!r} is known")
    if envelope.schema_version > cls.VERSION:
        raise DecodeError(
            "schema_violation",
            f"{envelope.type} schema version {envelope.schema_version} is newer than {cls.VERSION}",
        )
    try:
        message = cls.model_validate(envelope.payload)
    except ValidationError as exc:
        raise DecodeError("schema_violation", f"{envelope.type} payload: {_short(exc)}") from exc
    return envelope, message


def _short(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
