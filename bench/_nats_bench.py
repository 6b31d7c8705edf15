"""NATS helpers for ``bench/bus.py``: the raw nats-py baseline, stream clean-up and worker processes.

The baseline is what a plain nats-py client gets from the same cluster in the same run: publish N
messages to an R3 file stream (``Nats-Msg-Id`` header on each, acknowledgements awaited concurrently in
chunks of 256, as :class:`ordersync.messaging.nats.NatsTransport` publishes), then consume them back with
a durable pull consumer with explicit acks (fetch in batches, ack each message, flush).

Worker processes are real OS processes (``python -m bench.bus --worker ...``) that talk to the parent on
stdin/stdout: they print ``ready`` once their hub is built and connected, start working on ``go``, stop on
``stop`` (or end of input) and print ``done <deliveries>`` before they exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import subprocess
import sys
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: the NATS transport's publish chunk: acknowledgements of this many publishes are awaited together
PUBLISH_CHUNK = 256


@dataclass(frozen=True)
class RawRates:
    """Events per second of one raw nats-py pass: publish, consume, and both (N / (t_publish + t_consume))."""

    publish: float
    consume: float
    both: float


async def _raw_nats(servers: list[str], events: int, body_size: int, replicas: int, partitions: int,
                    fetch_batch: int) -> RawRates:
    import nats
    import nats.js.errors
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType

    tag = uuid.uuid4().hex[:8]
    prefix, stream = f"raw{tag}", f"RAW_{tag.upper()}"
    nc = await nats.connect(servers=servers, connect_timeout=5, name="bench-raw")
    js = nc.jetstream(timeout=30)
    try:
        await js.add_stream(name=stream, subjects=[f"{prefix}.>"], retention=RetentionPolicy.LIMITS,
                            storage=StorageType.FILE, num_replicas=replicas, duplicate_window=120.0,
                            discard=DiscardPolicy.OLD)
        body = (b"x" * body_size)
        ids = [uuid.uuid4().hex for _ in range(events)]
        subjects = [f"{prefix}.bench.event.{zlib.crc32(f'order-{n // 5}'.encode()) % partitions}"
                    for n in range(events)]

        start = time.perf_counter()
        for i in range(0, events, PUBLISH_CHUNK):
            await asyncio.gather(*(js.publish(subjects[n], body, headers={"Nats-Msg-Id": ids[n]})
                                   for n in range(i, min(events, i + PUBLISH_CHUNK))))
        t_publish = time.perf_counter() - start

        config = ConsumerConfig(durable_name="raw", ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                                ack_wait=30, max_ack_pending=10_000)
        sub = await js.pull_subscribe(f"{prefix}.>", durable="raw", stream=stream, config=config)
        got = unavailable = 0
        start = time.perf_counter()
        while got < events:
            try:
                msgs = await sub.fetch(batch=min(fetch_batch, events - got), timeout=5)
            except nats.errors.TimeoutError as exc:
                raise RuntimeError(f"raw nats-py consumer stalled after {got} of {events} messages") from exc
            except nats.js.errors.ServiceUnavailableError:  # the consumer's leader is being elected (a
                unavailable += 1  # slow machine): ask again, as the hub's transport does
                if unavailable > 20:
                    raise
                await asyncio.sleep(0.25)
                continue
            for msg in msgs:
                await msg.ack()
            got += len(msgs)
        await nc.flush()
        t_consume = time.perf_counter() - start
        # Not timed: the consumer leader applies acks after they reached the server (the hub's figure is
        # timed to the inbox rows, its acks follow the commits): check that every ack took.
        deadline = time.monotonic() + 30
        while (info := await js.consumer_info(stream, "raw")).num_ack_pending or info.num_pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"raw nats-py consumer left {info.num_pending} pending, "
                                   f"{info.num_ack_pending} unacked")
            await asyncio.sleep(0.05)
        return RawRates(events / t_publish, events / t_consume, events / (t_publish + t_consume))
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
        await nc.close()


def raw_nats_rates(servers: list[str], events: int, *, body_size: int, replicas: int, partitions: int = 16,
                   fetch_batch: int = 500) -> RawRates:
    """One raw nats-py pass on a stream of its own (deleted afterwards)."""
    return asyncio.run(_raw_nats(servers, events, body_size, replicas, partitions, fetch_batch))


async def _delete_streams(servers: list[str], prefix: str) -> int:
    import nats

    nc = await nats.connect(servers=servers, connect_timeout=5, name="bench-cleanup")
    try:
        js = nc.jetstream(timeout=30)
        names = [s.config.name for s in await js.streams_info() if (s.config.name or "").startswith(prefix)]
        for name in names:
            assert name is not None
            await js.delete_stream(name)
        return len(names)
    finally:
        await nc.close()


def delete_streams(servers: list[str], prefix: str) -> int:
    """Delete the streams whose names start with ``prefix`` (a run's ``ORDERSYNC`` prefix, upper case)."""
    return asyncio.run(_delete_streams(servers, prefix))


def _die_with_parent() -> None:  # in the child between fork and exec (Linux only): no orphaned workers
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class WorkerProcesses:
    """``count`` worker processes running ``args`` (after ``python``), each with its stderr in a log file."""

    def __init__(self, args: list[str], count: int, log_dir: Path) -> None:
        self.logs: list[Path] = [log_dir / f"worker-{i}.log" for i in range(count)]
        self._log_files: list[IO[bytes]] = []
        self.procs: list[subprocess.Popen[str]] = []
        main_thread = threading.current_thread() is threading.main_thread()
        for path in self.logs:
            log = path.open("wb")
            self._log_files.append(log)
            self.procs.append(subprocess.Popen(
                [sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                preexec_fn=_die_with_parent if main_thread else None))

    def _line(self, i: int) -> str:
        stdout = self.procs[i].stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"worker {i} exited ({self.procs[i].wait()}) :\n{self.log_tail(i)}")
        return line.strip()

    def wait_ready(self) -> None:
        for i in range(len(self.procs)):
            line = self._line(i)
            if line != "ready":
                raise RuntimeError(f"worker {i} said {line!r}:\n{self.log_tail(i)}")

    def _send(self, i: int, text: str) -> None:
        stdin = self.procs[i].stdin
        assert stdin is not None
        with contextlib.suppress(BrokenPipeError):
            stdin.write(text + "\n")
            stdin.flush()

    def go(self) -> None:
        for i in range(len(self.procs)):
            self._send(i, "go")

    def check_alive(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                raise RuntimeError(f"worker {i} exited with {proc.returncode}:\n{self.log_tail(i)}")

    def stop(self) -> list[int]:
        """Ask every worker to stop; the deliveries each handled."""
        for i in range(len(self.procs)):
            self._send(i, "stop")
        handled = []
        for i in range(len(self.procs)):
            line = self._line(i)
            handled.append(int(line.split()[1]) if line.startswith("done ") else -1)
        for proc in self.procs:
            proc.wait(timeout=30)
        return handled

    def log_tail(self, i: int, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.logs[i].read_text(errors="replace").splitlines()[-lines:])
        return ""

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        for log in self._log_files:
            log.close()
