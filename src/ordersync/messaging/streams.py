"""The JetStream streams' durability settings, checked and never changed behind the operator's back; and
what the broker says about its streams and durables (for ``/ready`` and ``/metrics``). The transport
(:mod:`ordersync.messaging.nats`) calls these on its event loop.

A process that finds a stream it would have created differently does not change it: a worker started
without the ``[nats]`` block once turned nine R3 streams into R1. It refuses to start instead
(:class:`StreamMismatch`, naming each stream, what it has, what the configuration asks and how to
migrate); ``ordersync nats migrate`` is the one way to change existing streams (see ADR 0023).

``replicas`` unset means "what the streams have": new streams get three copies on a cluster of three or
more nodes and one on a single server (:func:`default_replicas`); existing ones are used as they are.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import APIError

from ordersync.domain.errors import ConfigError

T = TypeVar("T")

#: the stream settings a process checks against what it would create (field -> how it is shown)
#: a replica not current whose node the leader has not heard from for this long is down (raft heartbeats
#: come every second; a replica merely behind keeps being heard from)
PEER_LOST_SECONDS = 5.0

CHECKED = ("num_replicas", "storage", "max_age", "duplicate_window", "retention", "discard", "subjects")


class StreamMismatch(ConfigError):
    """Existing streams differ from what this process's configuration asks for; nothing was changed."""

    def __init__(self, differences: list[str], source: str = "the configuration") -> None:
        self.differences = differences
        asks_replicas = any("num_replicas is" in d for d in differences)
        hint = ("leave [nats] replicas unset to use what the streams have, set it to what they have, "
                if asks_replicas else "make [nats] match the streams, ")
        super().__init__(
            "NATS streams differ from this process's configuration (" + source + "): " + "; ".join(differences)
            + ". Nothing was changed: a process never changes existing streams. Either " + hint
            + "or change the streams on purpose with `ordersync nats migrate` (stop the workers first; "
            "see docs/scale-out.md)")


def _shown(name: str, value: Any) -> str:
    if name == "max_age":
        return f"{float(value or 0) / 86400:g} days"
    if name == "duplicate_window":
        return f"{float(value or 0):g} s"
    if hasattr(value, "value"):
        return str(value.value)
    return str(value)


def _same(name: str, have: Any, want: Any) -> bool:
    if name in ("max_age", "duplicate_window"):
        return abs(float(have or 0) - float(want or 0)) < 0.001
    if name == "subjects":
        return sorted(have or []) == sorted(want or [])
    return bool(getattr(have, "value", have) == getattr(want, "value", want))


def changes(have: dict[str, Any], want: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(setting, what ``have`` has, what ``want`` asks) for each setting an existing stream's configuration
    differs in from what this process would create; a setting ``want`` leaves out (None) is not checked."""
    return [(name, _shown(name, have.get(name)), _shown(name, want[name])) for name in CHECKED
            if want.get(name) is not None and not _same(name, have.get(name), want[name])]


def differences(stream: str, have: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """:func:`changes` as sentences naming the stream."""
    return [f"{stream}: {name} is {old}, the configuration asks for {new}" for name, old, new in changes(have, want)]


def default_replicas(cluster_size: int) -> int:
    """Copies of a new stream when ``[nats] replicas`` is unset: three on a cluster of three or more nodes
    (survives one node down), one on a single server (or a cluster of two, where R2 survives nothing
    that R1 does not)."""
    return 3 if cluster_size >= 3 else 1


# -- what the broker says ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """One copy of a stream on one node, as the stream's leader sees it: ``current`` it has everything the
    leader has; ``offline`` the cluster was told the node left; ``seen_seconds_ago`` when the leader last
    heard from it, None if it has no record of that (a node killed outright is not ``offline`` for
    minutes, but soon unheard of)."""

    name: str
    current: bool
    offline: bool
    lag: int = 0
    seen_seconds_ago: float | None = 0.0

    @property
    def down(self) -> bool:
        if self.offline:
            return True
        if self.current:
            return False
        return self.seen_seconds_ago is None or self.seen_seconds_ago > PEER_LOST_SECONDS


@dataclass(frozen=True)
class StreamState:
    name: str
    replicas: int = 0
    leader: str | None = None
    peers: tuple[Peer, ...] = ()
    messages: int = 0
    #: the stream info request failed (no leader: quorum lost, or the JetStream API not answering)
    error: str | None = None


@dataclass(frozen=True)
class DurableState:
    consumer: str
    stream: str
    pending: int = 0
    ack_pending: int = 0
    redelivered: int = 0
    error: str | None = None


@dataclass(frozen=True)
class BusState:
    """The NATS bus as one process sees it: its connection, every stream, every durable of its consumers."""

    connected: bool
    server: str | None = None
    servers: tuple[str, ...] = ()
    streams: tuple[StreamState, ...] = ()
    durables: tuple[DurableState, ...] = ()
    #: why the bus could not be looked at (not connected yet, refused to start, timed out)
    error: str | None = None
    reconnects: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# -- reading, creating and migrating streams ---------------------------------------------------------


def replicas_text(n: int) -> str:
    return f"{n} replica" + ("s" if n != 1 else "")


def cluster_size(nc: NatsClient) -> int:
    """Nodes of the cluster the connection is in, as its server announces them (1 outside a cluster)."""
    info = getattr(nc, "_server_info", None) or {}
    if not info.get("cluster"):
        return 1
    return max(len(info.get("connect_urls") or []), len(nc.servers), 1)


async def stream_config_of(js: JetStreamContext, name: str) -> dict[str, Any] | None:
    """An existing stream's checked settings (:data:`CHECKED`), None when there is no such stream."""
    try:
        info = await js.stream_info(name)
    except APIError as exc:
        if exc.err_code == 10059:  # stream not found
            return None
        raise
    return {k: getattr(info.config, k) for k in CHECKED}


Retry = Callable[[str, Callable[[], Coroutine[Any, Any, Any]]], Coroutine[Any, Any, Any]]


async def migrate_streams(js: JetStreamContext, configs: list[dict[str, Any]], wanted: int | None, nodes: int,
                          retry: Retry) -> list[tuple[str, str]]:
    """Bring each stream to its ``configs`` entry (``num_replicas`` None: keep the stream's; a missing
    stream: ``wanted`` or the cluster's default). Every stream is read and checked before any changes:
    more replicas than ``nodes`` or a change of storage type refuse the whole migration."""
    if wanted is not None and wanted > nodes:
        raise ConfigError(f"{wanted} replicas asked for, the cluster has {nodes} node(s); nothing was changed")
    plan: list[tuple[str, dict[str, Any], list[tuple[str, str, str]] | None]] = []
    for config in configs:
        name = config["name"]
        have = await retry(f"reading stream {name}", functools.partial(stream_config_of, js, name))
        if have is None:
            config["num_replicas"] = wanted or default_replicas(nodes)
        elif config["num_replicas"] is None:
            config["num_replicas"] = have["num_replicas"]
        found = changes(have, config) if have is not None else None
        if found and any(setting == "storage" for setting, _old, _new in found):
            raise ConfigError(f"{name}: JetStream cannot change a stream's storage type (it has {found[0][1]}); "
                              "nothing was changed")
        plan.append((name, config, found))
    report = []
    for name, config, found in plan:
        if found is None:
            await retry(f"creating stream {name}", functools.partial(js.add_stream, **config))
            report.append((name, f"created with {replicas_text(config['num_replicas'])}"))
        elif not found:
            report.append((name, f"unchanged ({replicas_text(config['num_replicas'])})"))
        else:
            await retry(f"updating stream {name}", functools.partial(js.update_stream, **config))
            done = "changed " + ", ".join(f"{k} {old} -> {new}" for k, old, new in found)
            if not await _settled(js, name, config["num_replicas"]):
                done += " (its replicas are not all current yet: see /ready)"
            report.append((name, done))
    return report


async def _settled(js: JetStreamContext, name: str, replicas: int, seconds: float = 30.0) -> bool:
    """Until the cluster reports the stream with ``replicas`` copies, every one current (a change of
    replicas is carried out after the update's answer: copies are added or dropped, data is copied)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            info = await js.stream_info(name)
            peers = (info.cluster.replicas or []) if info.cluster is not None else []
            if (info.config.num_replicas == replicas and len(peers) == replicas - 1
                    and all(p.current for p in peers)):
                return True
        except Exception:  # a leader being elected for the new group: ask again
            pass
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.25)


async def read_state(nc: NatsClient, js: JetStreamContext, streams: list[str],
                     durables: list[tuple[str, str, str]], timeout: float, reconnects: int) -> BusState:
    """Every stream's leader and replicas and every durable's backlog ((consumer, stream, durable name)),
    asked all at once, each answer awaited at most ``timeout`` (two rounds: the streams, then the durables
    of the streams that answered; a stream without an answer has none to give for its durables either)."""
    stream_infos = await asyncio.gather(*(asyncio.wait_for(js.stream_info(n), timeout) for n in streams),
                                        return_exceptions=True)
    silent = {n for n, i in zip(streams, stream_infos, strict=True) if isinstance(i, BaseException)}
    durable_infos = await asyncio.gather(*(_no_answer(stream) if stream in silent
                                           else js.consumer_info(stream, name, timeout=timeout)
                                           for _c, stream, name in durables), return_exceptions=True)
    url = nc.connected_url
    info = getattr(nc, "_server_info", None) or {}
    return BusState(
        connected=nc.is_connected,
        server=f"{info.get('server_name') or '?'} ({url.netloc})" if url is not None and nc.is_connected else None,
        servers=tuple(s.netloc for s in nc.servers),
        streams=tuple(_stream_state(n, i) for n, i in zip(streams, stream_infos, strict=True)),
        durables=tuple(_durable_state(c, stream, i) for (c, stream, _n), i in zip(durables, durable_infos,
                                                                                   strict=True)),
        reconnects=reconnects)


async def _no_answer(stream: str) -> Any:
    raise TimeoutError(f"stream {stream} did not answer")


def _failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"[:300]


def _stream_state(name: str, info: Any) -> StreamState:
    if isinstance(info, BaseException):
        return StreamState(name, error=_failure(info))
    cluster = info.cluster
    peers: list[Peer] = []
    if cluster is not None:
        peers = [Peer(name=p.name or "?", current=bool(p.current), offline=bool(p.offline), lag=int(p.lag or 0),
                      # the server's "active": nanoseconds since the leader heard from it; absent: never
                      seen_seconds_ago=p.active / 1e9 if p.active else None)
                 for p in cluster.replicas or []]
    leader = cluster.leader if cluster is not None else "(single server)"
    return StreamState(name, replicas=int(info.config.num_replicas or 1), leader=leader or None,
                       peers=tuple(peers), messages=int(info.state.messages or 0))


def _durable_state(consumer: str, stream: str, info: Any) -> DurableState:
    if isinstance(info, BaseException):
        return DurableState(consumer, stream, error=_failure(info))
    return DurableState(consumer, stream, pending=int(info.num_pending or 0),
                        ack_pending=int(info.num_ack_pending or 0), redelivered=int(info.num_redelivered or 0))


__all__ = ["BusState", "DurableState", "Peer", "StreamMismatch", "StreamState", "changes", "cluster_size",
           "default_replicas", "differences", "migrate_streams", "read_state", "replicas_text", "stream_config_of"]
