"""NATS JetStream transport: the outbox relay publishes to JetStream, consumers pull from durables.

Layout (prefix ``ordersync`` by default):

- one stream per event family (the first part of the message type: ``order``, ``erp``, ``case`` ...),
  ``ORDERSYNC_ORDER`` with subjects ``ordersync.order.>``; a message travels on
  ``ordersync.<family>.<rest of type>.<partition>``, the partition a stable hash of its correlation id
  (the order), so one order's events always share a subject;
- one durable pull consumer per hub consumer and stream it takes types from, filtered to those types,
  explicit ack, ``ack_wait`` (10 s; work in progress kept alive), at most ``max_deliver`` deliveries;
- a repair stream ``ORDERSYNC_REPAIR`` (``ordersync.repair.<consumer>``) through which gap repair and
  dead-letter replay reach ONE consumer, with a durable per consumer;
- publishes carry the W3C trace context of the relay's publish span as ``traceparent`` / ``tracestate``
  headers when tracing is on (consumers continue it);
- publishes carry ``Nats-Msg-Id`` = the outbox message id: a relay that publishes a batch again after a
  crash is deduplicated by the stream within ``duplicate_window``, and by the consumers' inboxes after.

What JetStream does not decide: whether a message was processed (the consumer's inbox, in the same
transaction as its effects), how often a handler failed (``delivery_attempts`` in the store; the broker
counts deliveries, including deferrals and crashes), the order in which one order's events are handled
(the consumer runner checks the outbox sequence, :func:`ordersync.messaging.gaps.first_unprocessed`),
and whether a message was lost (gap repair, :mod:`ordersync.messaging.gaps`). The outbox stays the log
of record; the broker is transport.

Why one module of about 750 lines: the transport is one object whose event loop thread, buffers, leases
and stream layout share state; split, each part would reach into the others' privates. What needs none of
that state lives in :mod:`ordersync.messaging.streams`: comparing streams with the configuration,
migrating them, and reading the broker's state of streams and durables for ``/ready`` and ``/metrics``.

nats-py is asyncio; this transport runs its own event loop in a daemon thread and exposes the
synchronous :class:`~ordersync.messaging.transport.Transport` the worker uses. Each durable keeps a
small buffer filled by a long-poll pull loop, so :meth:`fetch` never waits on the network and a
message that arrives wakes the worker at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import re
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType
from nats.js.errors import APIError
from sqlalchemy import Connection, delete, select, tuple_

from ordersync.domain.errors import ConfigError, Unavailable
from ordersync.domain.events import MESSAGE_TYPES
from ordersync.messaging.streams import (
    BusState,
    StreamMismatch,
    cluster_size,
    default_replicas,
    differences,
    migrate_streams,
    read_state,
    replicas_text,
    stream_config_of,
)
from ordersync.messaging.transport import Delivery, OutboxMessage
from ordersync.store.db import Database
from ordersync.store.schema import delivery_attempts
from ordersync.store.sql import upsert_row
from ordersync.telemetry.tracing import TRACEPARENT, TRACESTATE, headers_of

log = logging.getLogger("ordersync.nats")
T = TypeVar("T")

H_MESSAGE_ID = "Ordersync-Message-Id"
H_SEQ = "Ordersync-Seq"
H_CORRELATION = "Ordersync-Correlation"
H_TYPE = "Ordersync-Type"
H_REPAIR = "Ordersync-Repair"
_KEEP_CLAIMED = 600.0  # seconds a delivery in a worker's hands is kept alive without an answer


def durable_name(consumer: str) -> str:
    """A hub consumer's name as a JetStream durable (no dots, wildcards or spaces)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", consumer)


def family_of(message_type: str) -> str:
    return message_type.split(".", 1)[0]


def parse_servers(url: str) -> list[str]:
    """``nats://h1:p1,nats://h2:p2`` (or ``nats://h1:p1,h2:p2``) -> the server URLs."""
    servers = []
    for part in (p.strip() for p in url.split(",")):
        if part:
            servers.append(part if "://" in part else f"nats://{part}")
    return servers


@dataclass
class _Durable:
    consumer: str
    stream: str
    name: str
    filters: list[str]
    family: str | None  # the event family whose stream it reads; None: the repair stream
    inbox: str = ""
    outstanding: int = 0
    done: asyncio.Event | None = None
    failures: int = 0

    @property
    def repair(self) -> bool:
        return self.family is None


@dataclass
class _ConsumerState:
    types: frozenset[str] | None
    ordered: bool
    buffer_size: int
    durables: list[_Durable] = field(default_factory=list)
    buffer: deque[tuple[Msg, _Durable, float]] = field(default_factory=deque)
    space: asyncio.Event | None = None


class NatsTransport:
    """JetStream behind the :class:`~ordersync.messaging.transport.Transport` port."""

    publishes_in_transaction = False
    claims_in_transaction = False
    carries_trace_context = True  # traceparent / tracestate headers
    #: deliveries of one correlation id may come in any order: the consumer runner orders them
    orders_by_correlation = False

    def __init__(self, db: Database, servers: list[str], *, prefix: str = "ordersync", replicas: int | None = None,
                 partitions: int = 16, lease_seconds: float = 15.0, ack_wait: float | None = None,
                 max_deliver: int = 2000,
                 duplicate_window: float = 120.0, max_age_days: float = 7.0, buffer: int = 10,
                 connect_timeout: float = 20.0, publish_timeout: float = 10.0, source: str = "the configuration",
                 ) -> None:
        if not servers:
            raise ValueError("the NATS transport needs at least one server URL")
        self.db = db
        self.servers = servers
        self.prefix = prefix
        #: copies asked for; None: what existing streams have, new ones by the cluster's size (ADR 0023)
        self.replicas = replicas
        self.source = source
        self.cluster_size = 1
        self.reconnects = 0
        #: why the last start failed (the streams differ from the configuration, the broker did not answer)
        self.start_error: str | None = None
        self._starting: threading.Thread | None = None
        self._error_logged = False
        #: since when pulls fail (monotonic), None while they work: one warning per outage
        self._pulls_failing: float | None = None
        self.partitions = partitions
        self.ack_wait = ack_wait if ack_wait is not None else max(2 * lease_seconds, 1.0)
        self.max_deliver = max_deliver
        self.duplicate_window = duplicate_window
        self.max_age = max_age_days * 86400
        self.buffer = buffer
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self._consumers: dict[str, _ConsumerState] = {}
        self._listeners: list[Callable[[frozenset[str]], None]] = []
        self._streams: set[str] = set()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ordersync-nats", daemon=True)
        self._thread.start()
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._started = False
        self._pulling = False
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        #: handed to the worker, not answered yet: kept alive, for at most ``_KEEP_CLAIMED`` seconds (a
        #: round that failed half-way must not hide its messages forever)
        self._claimed: dict[int, tuple[Msg, float]] = {}
        self._claimed_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float, what: str) -> T:
        """Run ``coro`` on the transport's event loop and wait at most ``timeout`` seconds. Failures of
        the broker (timeouts, no responders while a stream elects a leader, a lost connection) become
        :class:`Unavailable`: the caller waits and tries again, nothing is lost."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        started = time.monotonic()
        try:
            return future.result(timeout)
        except Unavailable:
            raise
        except TimeoutError as exc:
            future.cancel()
            waited = time.monotonic() - started
            raise Unavailable(f"NATS: {what} timed out after {waited:.1f}s ({type(exc).__name__})") from exc
        except (nats.errors.Error, OSError) as exc:
            raise Unavailable(f"NATS: {what} failed: {type(exc).__name__}: {exc}") from exc

    def on_publish(self, listener: Callable[[frozenset[str]], None]) -> None:
        """Call ``listener`` with the consumer's name when messages arrive for a consumer of this process
        (wakes the thread that runs it)."""
        self._listeners.append(listener)

    def stream_name(self, family: str) -> str:
        return f"{self.prefix.upper()}_{re.sub(r'[^A-Za-z0-9_-]', '_', family).upper()}"

    @property
    def repair_stream(self) -> str:
        return self.stream_name("repair")

    def subject(self, message_type: str, correlation_id: str | None, message_id: str) -> str:
        family, _, rest = message_type.partition(".")
        key = (correlation_id or message_id).encode()
        return f"{self.prefix}.{family}.{rest or '_'}.{zlib.crc32(key) % self.partitions}"

    def start(self) -> None:
        """Connect, check or create the streams and create the durables of every subscribed consumer
        (idempotent). A stream that exists with other durability settings than this process's
        configuration asks for is left as it is and the start refused (:class:`StreamMismatch`); only
        :meth:`migrate` changes streams. Pulling starts with the first fetch."""
        with self._lock:
            if self._started:
                return
            try:
                self._run(self._start(), self.connect_timeout + 60, "connecting and creating streams and consumers")
            except Exception as exc:
                self.start_error = str(exc)
                raise
            self.start_error = None
            self._started = True

    @property
    def started(self) -> bool:
        return self._started

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._nc is not None:  # started, or connected by migrate() or a start that failed
            try:
                self._run(self._stop(), 10, "closing")
            except Exception:  # closing is best effort
                log.debug("closing the NATS connection failed", exc_info=True)
        try:  # a start still connecting in the background (an API process's first /ready): cut it short
            self._run(self._cancel_pending(), 5, "cancelling what is pending")
        except Exception:
            log.debug("cancelling pending NATS work failed", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    @staticmethod
    async def _cancel_pending() -> None:
        me = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _connect(self) -> NatsClient:
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:  # with allow_reconnect nats-py retries the first connect forever: bounded here
                return await asyncio.wait_for(nats.connect(
                    servers=self.servers, name="ordersync", connect_timeout=2, allow_reconnect=True,
                    max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=self._on_error,
                    disconnected_cb=self._on_disconnect, reconnected_cb=self._on_reconnect),
                    max(deadline - time.monotonic(), 1.0))
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise Unavailable(f"cannot connect to NATS {', '.join(self.servers)}: "
                                      f"{str(exc) or type(exc).__name__}") from exc
                await asyncio.sleep(0.5)

    async def _on_error(self, exc: Exception) -> None:
        """One line per outage: while disconnected, the client reports every failed reconnection."""
        nc = self._nc
        if nc is not None and nc.is_connected:  # not an outage (a slow consumer, a permission): each one
            log.warning("NATS: %s", exc)
            return
        if self._error_logged:
            log.debug("NATS: %s", exc)
            return
        self._error_logged = True
        log.warning("NATS: %s: %s; reconnecting to %s every 0.5 s", type(exc).__name__, exc or "(no detail)",
                    ", ".join(self.servers))

    async def _on_disconnect(self) -> None:
        if not self._closed:
            self._error_logged = True
            log.warning("NATS: disconnected; reconnecting to %s every 0.5 s (publishes and deliveries wait)",
                        ", ".join(self.servers))

    async def _on_reconnect(self) -> None:
        self.reconnects += 1
        self._error_logged = False
        nc = self._nc
        log.warning("NATS: reconnected to %s", nc.connected_url.netloc if nc and nc.connected_url else "?")

    async def _start(self) -> None:
        if self._nc is None:
            self._nc = await self._connect()
            self._js = self._nc.jetstream(timeout=self.publish_timeout)
        self.cluster_size = cluster_size(self._nc)
        families = sorted({family_of(t) for t in MESSAGE_TYPES})
        found: list[str] = []
        for family in [*families, "repair"]:  # every existing stream first: a refusal creates nothing
            name = self.stream_name(family)
            have = await self._retry_api(f"reading stream {name}", functools.partial(self._stream_config_of, name))
            if have is not None:
                found += differences(name, have, self.stream_config(family))
        if found:
            raise StreamMismatch(found, self.source)
        for family in [*families, "repair"]:
            await self._ensure_stream(family)
        for consumer, state in self._consumers.items():
            self._plan_durables(consumer, state, families)
            state.space = asyncio.Event()
            for d in state.durables:
                await self._ensure_durable(d)

    def _start_pulling(self) -> None:
        """Start filling the consumers' buffers: only in a process that consumes (a worker), never in
        one that only publishes or replays (an API process), or its buffers would hold messages nobody
        handles until their ack_wait runs out."""
        with self._lock:
            if self._pulling:
                return
            self._run(self._pull_all(), 30, "starting to pull")
            self._pulling = True

    async def _pull_all(self) -> None:
        nc = self._nc
        assert nc is not None
        for consumer, state in self._consumers.items():
            for d in state.durables:
                d.inbox = nc.new_inbox()
                await nc.subscribe(d.inbox, cb=self._receiver(consumer, state, d), pending_msgs_limit=-1,
                                   pending_bytes_limit=-1)
                self._tasks.append(asyncio.get_running_loop().create_task(self._pull_loop(state, d)))
        self._tasks.append(asyncio.get_running_loop().create_task(self._keep_buffered()))

    async def _keep_buffered(self) -> None:
        """Messages prefetched and not yet handed to the worker, and messages the worker is handling, are
        work in progress: tell JetStream so (``+WPI``) before their ack_wait runs out, or it would
        redeliver them to another worker while they wait their turn or a slow ERP call runs here. A
        worker that dies stops doing this, and its messages come back after ``ack_wait``."""
        nc = self._nc
        assert nc is not None
        every = max(self.ack_wait / 3, 0.2)
        while not self._closed:
            await asyncio.sleep(every)
            cutoff = time.monotonic() - every
            with self._claimed_lock:
                for key in [k for k, (_m, at) in self._claimed.items() if at < time.monotonic() - _KEEP_CLAIMED]:
                    del self._claimed[key]
                busy = [msg for msg, _at in self._claimed.values()]
            try:
                for state in self._consumers.values():
                    busy += [msg for msg, _d, at in list(state.buffer) if at < cutoff]
                for msg in busy:
                    if msg.reply:
                        await nc.publish(msg.reply, b"+WPI")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost +WPI is at worst a redelivery, which the inbox absorbs
                log.debug("NATS: in-progress notice failed: %s", exc)

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._nc is not None:
            await self._nc.close()

    async def _retry_api(self, what: str, call: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """JetStream API calls fail for a moment while a cluster elects its meta leader: retry."""
        deadline = time.monotonic() + 30
        while True:
            try:
                return await call()
            except ConfigError:
                raise
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise Unavailable(f"NATS: {what} failed: {exc}") from exc
                await asyncio.sleep(0.5)

    def stream_config(self, family: str, replicas: int | None = None) -> dict[str, Any]:
        """The stream this process creates for ``family``; ``num_replicas`` None: not asked for."""
        return dict(name=self.stream_name(family), subjects=[f"{self.prefix}.{family}.>"],
                    retention=RetentionPolicy.LIMITS, storage=StorageType.FILE,
                    num_replicas=replicas if replicas is not None else self.replicas,
                    duplicate_window=self.duplicate_window, max_age=self.max_age, discard=DiscardPolicy.OLD)

    async def _stream_config_of(self, name: str) -> dict[str, Any] | None:
        js = self._js
        assert js is not None
        return await stream_config_of(js, name)

    async def _ensure_stream(self, family: str) -> str:
        """Create the stream, or check that the existing one has the settings this process asks for."""
        name = self.stream_name(family)
        if name in self._streams:
            return name
        js = self._js
        assert js is not None
        config = self.stream_config(family)

        async def create() -> None:
            have = await self._stream_config_of(name)
            if have is None:
                if config["num_replicas"] is None:
                    config["num_replicas"] = default_replicas(self.cluster_size)
                try:
                    await js.add_stream(**config)
                    log.info("NATS: created stream %s (%s)", name, replicas_text(config["num_replicas"]))
                    return
                except APIError as exc:
                    if exc.err_code != 10058:  # another process created it meanwhile: check it below
                        raise
                    have = await self._stream_config_of(name)
                    if have is None:
                        raise
            found = differences(name, have, config)
            if found:
                raise StreamMismatch(found, self.source)

        await self._retry_api(f"creating stream {name}", create)
        self._streams.add(name)
        return name

    def migrate(self, replicas: int | None = None) -> list[tuple[str, str]]:
        """Bring every stream to this process's settings (``replicas`` overriding its ``[nats] replicas``;
        unset both: keep each stream's): create what is missing, update what differs. The one way the hub
        changes existing streams (``ordersync nats migrate``). Returns (stream, what happened) per stream."""
        return self._run(self._migrate(replicas), self.connect_timeout + 120, "migrating streams")

    async def _migrate(self, replicas: int | None) -> list[tuple[str, str]]:
        if self._nc is None:
            self._nc = await self._connect()
            self._js = self._nc.jetstream(timeout=self.publish_timeout)
        assert self._js is not None
        self.cluster_size = cluster_size(self._nc)
        wanted = replicas if replicas is not None else self.replicas
        families = [*sorted({family_of(t) for t in MESSAGE_TYPES}), "repair"]
        report = await migrate_streams(self._js, [self.stream_config(f, wanted) for f in families], wanted,
                                       self.cluster_size, self._retry_api)
        self._streams.clear()  # checked again at the next start
        return report

    def _plan_durables(self, consumer: str, state: _ConsumerState, families: list[str]) -> None:
        base = durable_name(consumer)
        by_family: dict[str, list[str]] = {}
        for t in sorted(state.types) if state.types is not None else []:
            family, _, rest = t.partition(".")
            by_family.setdefault(family, []).append(f"{self.prefix}.{family}.{rest or '_'}.*")
        if state.types is None:
            by_family = {f: [f"{self.prefix}.{f}.>"] for f in families}
        state.durables = [_Durable(consumer, self.stream_name(f), base, filters, f) for f, filters in by_family.items()]
        state.durables.append(_Durable(consumer, self.repair_stream, base, [f"{self.prefix}.repair.{base}"], None))

    async def _ensure_durable(self, d: _Durable) -> None:
        js = self._js
        assert js is not None
        await self._ensure_stream(d.family or "repair")
        config = ConsumerConfig(name=d.name, durable_name=d.name, ack_policy=AckPolicy.EXPLICIT,
                                deliver_policy=DeliverPolicy.ALL, ack_wait=self.ack_wait,
                                max_deliver=self.max_deliver, max_ack_pending=10_000,
                                filter_subjects=d.filters if len(d.filters) > 1 else None,
                                filter_subject=d.filters[0] if len(d.filters) == 1 else None)

        async def create() -> None:
            await js.add_consumer(d.stream, config)

        await self._retry_api(f"creating consumer {d.name} on {d.stream}", create)

    def _receiver(self, consumer: str, state: _ConsumerState, d: _Durable
                  ) -> Callable[[Msg], Coroutine[Any, Any, None]]:
        woken = frozenset((consumer,))

        async def receive(msg: Msg) -> None:
            status = msg.headers.get("Status") if msg.headers else None
            if status:
                if status != "100" and d.done is not None:  # 404 no messages, 408 expired, 409 ...
                    if status not in ("404", "408"):
                        log.debug("NATS pull %s/%s: %s %s", d.stream, d.name, status,
                                  (msg.headers or {}).get("Description"))
                        d.failures += 1
                    d.done.set()
                return
            state.buffer.append((msg, d, time.monotonic()))
            d.outstanding -= 1
            if d.outstanding <= 0 and d.done is not None:
                d.done.set()
            for listener in self._listeners:
                listener(woken)

        return receive

    async def _pull_loop(self, state: _ConsumerState, d: _Durable) -> None:
        """Keep the consumer's buffer filled: one long-poll pull request at a time for the room left."""
        nc = self._nc
        assert nc is not None and state.space is not None
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{d.stream}.{d.name}"
        while not self._closed:
            try:
                room = state.buffer_size - len(state.buffer)
                if room <= 0:
                    state.space.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(state.space.wait(), timeout=1.0)
                    continue
                if d.failures >= 3:  # the durable may be gone (a node lost it): create it again
                    d.failures = 0
                    try:
                        await self._ensure_durable(d)
                    except Exception as exc:
                        self._pull_failed(f"consumer {d.name} on {d.stream} unavailable", exc)
                        await asyncio.sleep(1.0)
                        continue
                d.done = asyncio.Event()
                d.outstanding = room
                request = {"batch": room, "expires": 2_000_000_000}
                await nc.publish(subject, json.dumps(request).encode(), reply=d.inbox)
                try:
                    await asyncio.wait_for(d.done.wait(), timeout=3.0)
                    if d.failures == 0 and self._pulls_failing is not None:
                        log.warning("NATS: pulls answered again after %.0f s", time.monotonic() - self._pulls_failing)
                        self._pulls_failing = None
                except TimeoutError:
                    d.failures += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._pull_failed(f"pull {d.stream}/{d.name} failed", exc)
                await asyncio.sleep(0.5)

    def _pull_failed(self, what: str, exc: Exception) -> None:
        """An expected outage (the broker down, a stream electing a leader): one warning line until pulls
        are answered again, not one per durable and half second."""
        if self._pulls_failing is None:
            self._pulls_failing = time.monotonic()
            log.warning("NATS: %s (%s: %s); every consumer retries until the broker answers", what,
                        type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
        else:
            log.debug("NATS: %s: %s", what, exc)

    # -- the Transport port -----------------------------------------------------------------------

    def subscribe(self, consumer: str, types: frozenset[str] | None, ordered: bool, batch_size: int = 0) -> None:
        """The consumer's buffer holds one batch (at least ``buffer``): the next batch arrives while this
        one is handled, and an I/O consumer taking ten at a time does not sit on hundreds that another
        worker could take."""
        if self._started:
            raise RuntimeError("subscribe consumers before the NATS transport starts")
        self._consumers[consumer] = _ConsumerState(types, ordered, max(batch_size, self.buffer))

    def publish(self, messages: list[OutboxMessage], conn: Connection | None) -> None:
        self.start()
        self._run(self._publish(messages), self.publish_timeout + 30, f"publishing {len(messages)} messages")

    async def _publish(self, messages: list[OutboxMessage]) -> None:
        js = self._js
        assert js is not None
        for family in {family_of(m.type) for m in messages}:
            await self._ensure_stream(family)
        for i in range(0, len(messages), 256):
            chunk = messages[i:i + 256]
            await asyncio.gather(*(js.publish(
                self.subject(m.type, m.correlation_id, m.message_id), m.body.encode(),
                headers={"Nats-Msg-Id": m.message_id, H_MESSAGE_ID: m.message_id, H_SEQ: str(m.seq),
                         H_TYPE: m.type, **({H_CORRELATION: m.correlation_id} if m.correlation_id else {}),
                         **headers_of(m.traceparent, m.tracestate)})
                for m in chunk))

    def fetch(self, consumer: str, limit: int, now: dt.datetime) -> list[Delivery]:
        self.start()
        if not self._pulling:
            self._start_pulling()
        state = self._consumers[consumer]
        taken: list[tuple[Msg, _Durable, float]] = []
        while state.buffer and len(taken) < limit:
            taken.append(state.buffer.popleft())
        if taken and state.space is not None:
            self._loop.call_soon_threadsafe(state.space.set)
        out = [self._delivery(consumer, msg, d) for msg, d, _at in taken]
        now_m = time.monotonic()
        with self._claimed_lock:
            for msg, _d, _at in taken:
                self._claimed[id(msg)] = (msg, now_m)
        self._load_attempts(consumer, out)
        out.sort(key=lambda x: x.seq if x.seq is not None else 0)
        return out

    def _delivery(self, consumer: str, msg: Msg, d: _Durable) -> Delivery:
        headers = msg.headers or {}
        seq = headers.get(H_SEQ)
        try:
            delivered = msg.metadata.num_delivered
        except Exception:  # not a JetStream message (cannot happen on a durable's inbox)
            delivered = 1
        return Delivery(consumer=consumer, body=msg.data.decode("utf-8", errors="replace"),
                        message_id=headers.get(H_MESSAGE_ID) or headers.get("Nats-Msg-Id"),
                        correlation_id=headers.get(H_CORRELATION), seq=int(seq) if seq else None, attempts=0,
                        token=_Token(msg, d), deliveries=delivered,
                        traceparent=headers.get(TRACEPARENT), tracestate=headers.get(TRACESTATE))

    def _load_attempts(self, consumer: str, batch: list[Delivery]) -> None:
        """Failed attempts are counted in the store (the broker counts deliveries)."""
        again = {d.message_id: d for d in batch if d.message_id and (d.deliveries > 1 or d.token.durable.repair)}
        if not again:
            return
        a = delivery_attempts.c
        with self.db.read() as conn:
            rows = conn.execute(select(a.message_id, a.attempts, a.history)
                                .where(a.consumer == consumer, a.message_id.in_(list(again)))).all()
        for message_id, attempts, history in rows:
            delivery = again[message_id]
            delivery.attempts = int(attempts)
            delivery.history = json.loads(history) if history and history != "[]" else []

    def claim(self, conn: Connection, consumer: str, limit: int, now: dt.datetime) -> list[Delivery]:
        raise NotImplementedError("the NATS transport does not claim inside a database transaction")

    def has_due(self, consumer: str, now: dt.datetime) -> bool:
        state = self._consumers.get(consumer)
        return bool(state and state.buffer)

    def extend(self, deliveries: list[Delivery], now: dt.datetime) -> None:
        self._reply(deliveries, lambda _d: b"+WPI")

    def release_leases(self) -> int:
        return 0

    def settle(self, conn: Connection, deliveries: list[Delivery]) -> None:
        """Forget the failed attempts of messages now processed (the ack follows the commit)."""
        keys = [(d.consumer, d.message_id) for d in deliveries
                if d.message_id and (d.attempts or d.deliveries > 1 or d.token.durable.repair)]
        if keys:
            conn.execute(delete(delivery_attempts).where(
                tuple_(delivery_attempts.c.consumer, delivery_attempts.c.message_id).in_(keys)))

    def after_commit(self, deliveries: list[Delivery]) -> None:
        self._reply(deliveries, lambda _d: b"+ACK")

    def retry_later(self, delivery: Delivery, at: dt.datetime) -> None:
        if delivery.message_id:
            with self.db.write() as conn:
                upsert_row(conn, delivery_attempts, {"consumer": delivery.consumer, "message_id": delivery.message_id},
                           {"attempts": delivery.attempts, "history": json.dumps(delivery.history),
                            "next_attempt_at": at})
        self.defer(delivery, (at - dt.datetime.now(dt.UTC)).total_seconds())

    def defer(self, delivery: Delivery, seconds: float) -> None:
        """Hand the message back to be delivered again in ``seconds`` (no attempt used up)."""
        delay = max(0, int(seconds * 1_000_000_000))
        self._reply([delivery], lambda _d: b"-NAK " + json.dumps({"delay": delay}).encode())

    def _reply(self, deliveries: list[Delivery], payload: Callable[[Delivery], bytes]) -> None:
        replies = [(d.token.msg.reply, payload(d)) for d in deliveries if d.token is not None and d.token.msg.reply]
        if not replies:
            return
        if replies[0][1] != b"+WPI":  # answered: no longer in this worker's hands
            with self._claimed_lock:
                for d in deliveries:
                    if d.token is not None:
                        self._claimed.pop(id(d.token.msg), None)

        async def send() -> None:
            nc = self._nc
            assert nc is not None
            for reply, data in replies:
                await nc.publish(reply, data)

        try:
            self._run(send(), 10, f"answering {len(replies)} deliveries")
        except Exception as exc:  # an ack lost is a redelivery later, which the inbox absorbs
            log.warning("NATS: could not answer %d deliveries: %s", len(replies), exc)

    def redeliver(self, conn: Connection, consumer: str, body: str, message_id: str | None,
                  correlation_id: str | None, seq: int | None, now: dt.datetime) -> None:
        """Publish a message to one consumer (gap repair, dead-letter replay) through the repair stream.
        Each redelivery has an id of its own, so the stream's deduplication never swallows it."""
        self.start()
        headers = {"Nats-Msg-Id": f"{message_id or 'none'}:{uuid.uuid4().hex}", H_REPAIR: "1"}
        if message_id:
            headers[H_MESSAGE_ID] = message_id
        if seq is not None:
            headers[H_SEQ] = str(seq)
        if correlation_id:
            headers[H_CORRELATION] = correlation_id
        js = self._js
        assert js is not None
        subject = f"{self.prefix}.repair.{durable_name(consumer)}"
        self._run(js.publish(subject, body.encode(), headers=headers), self.publish_timeout + 5,
                  f"republishing {message_id} to {consumer}")

    def pending(self, consumer: str | None = None) -> int:
        self.start()
        names = [consumer] if consumer is not None else list(self._consumers)
        return sum(n + a for n, a in self._run(self._counts(names), 15, "reading consumer state"))

    def caught_up(self, consumer: str) -> bool:
        """Nothing left to deliver to ``consumer`` at the broker. Messages delivered and not yet answered
        don't count: they are in a worker's hands, waiting for a retry or for their turn behind an
        earlier event of their order (which may be the lost one)."""
        self.start()
        try:
            return all(n == 0 for n, _a in self._run(self._counts([consumer]), 15, "reading consumer state"))
        except Exception:
            return False

    async def _counts(self, consumers: list[str]) -> list[tuple[int, int]]:
        js = self._js
        assert js is not None
        durables = [d for consumer in consumers for d in self._consumers[consumer].durables]
        infos = await asyncio.gather(*(js.consumer_info(d.stream, d.name, timeout=5) for d in durables))
        return [(int(i.num_pending or 0), int(i.num_ack_pending or 0)) for i in infos]

    def stream_names(self) -> list[str]:
        return sorted(self._streams)

    # -- health -----------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        nc = self._nc
        return nc is not None and nc.is_connected

    def probe(self, timeout: float = 2.0) -> BusState:
        """The connection, every stream (leader, peers) and every durable of this process's consumers
        (pending, ack-pending, redelivered), each request bounded by ``timeout``. Never raises and never
        waits for a connection: a process that has not started the transport starts it in the
        background (an API process, the first time ``/ready`` asks) and says so."""
        if not self._started:
            self._start_in_background()
            return BusState(connected=self.connected, error=self.start_error or "not connected yet (connecting)",
                            reconnects=self.reconnects)
        try:
            return self._run(self._probe(timeout), 2 * timeout + 2, "reading stream and consumer state")
        except Exception as exc:  # the answer is the diagnosis
            return BusState(connected=self.connected, error=str(exc), reconnects=self.reconnects)

    def _start_in_background(self) -> None:
        with self._lock:
            if self._closed or (self._starting is not None and self._starting.is_alive()):
                return

            def start() -> None:
                try:
                    self.start()
                except Exception as exc:  # kept in start_error, reported by probe()
                    if not self._closed:
                        log.warning("NATS: not started: %s", exc)

            self._starting = threading.Thread(target=start, name="ordersync-nats-start", daemon=True)
            self._starting.start()

    async def _probe(self, timeout: float) -> BusState:
        nc, js = self._nc, self._js
        assert nc is not None and js is not None
        durables = [(d.consumer, d.stream, d.name) for state in self._consumers.values() for d in state.durables]
        return await read_state(nc, js, sorted(self._streams), durables, timeout, self.reconnects)


@dataclass
class _Token:
    msg: Msg
    durable: _Durable


__all__ = ["NatsTransport", "durable_name", "family_of", "parse_servers"]
