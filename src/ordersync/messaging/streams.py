"""The JetStream streams' durability settings, checked and never changed behind the operator's back; and
what the broker says about its streams and durables (for ``/ready`` and ``/metrics``).

A process that finds a stream it would have created differently does not change it: a worker started
without the ``[nats]`` block once turned nine R3 streams into R1. It refuses to start instead
(:class:`StreamMismatch`, naming each stream, what it has, what the configuration asks and how to
migrate); ``ordersync nats migrate`` is the one way to change existing streams (see ADR 0023).

``replicas`` unset means "what the streams have": new streams get three copies on a cluster of three or
more nodes and one on a single server (:func:`default_replicas`); existing ones are used as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ordersync.domain.errors import ConfigError

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
    heard from it (a node killed outright is not ``offline`` for minutes, but soon unheard of)."""

    name: str
    current: bool
    offline: bool
    lag: int = 0
    seen_seconds_ago: float = 0.0

    @property
    def down(self) -> bool:
        return self.offline or (not self.current and self.seen_seconds_ago > PEER_LOST_SECONDS)


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


__all__ = ["BusState", "DurableState", "Peer", "StreamMismatch", "StreamState", "changes", "default_replicas",
           "differences"]
