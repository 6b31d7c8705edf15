"""A light open-loop HTTP/1.1 load generator (asyncio, keep-alive connections, no client library).

Open loop: request i is due at ``start + i / rate`` whatever happened to earlier requests, and its
latency runs from that due time to the last byte of the answer, so a slow server cannot hide its
queueing by slowing the client down (no coordinated omission). Built to cost the machine little: the
server under test shares its two cores with it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Result:
    latencies: list[float]
    statuses: list[int]
    elapsed: float


def request_bytes(method: str, path: str, host: str, headers: dict[str, str], body: object | None = None) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def _run(host: str, port: int, requests: list[bytes], rate: float, connections: int) -> Result:
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(host, port))
    latencies = [0.0] * len(requests)
    statuses = [0] * len(requests)
    loop = asyncio.get_running_loop()

    async def one(i: int, due: float) -> None:
        reader, writer = await pool.get()
        try:
            writer.write(requests[i])
            await writer.drain()
            statuses[i] = await _read_response(reader)
        finally:
            pool.put_nowait((reader, writer))
        latencies[i] = loop.time() - due

    # a dispatcher starts each request at its due time (creating every task up front would keep the
    # client busy for the first few hundred milliseconds and make early requests late on our side)
    began = time.perf_counter()
    start = loop.time() + 0.1
    tasks = []
    for i in range(len(requests)):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    while not pool.empty():
        _, writer = pool.get_nowait()
        writer.close()
    return Result(latencies, statuses, elapsed)


def _quiet_gc(fn: Callable[[], Result]) -> Result:
    """Run a measurement with this process's garbage collector paused: a collection in the load
    generator would hold up reading answers and be counted as the server's latency."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return fn()
    finally:
        gc.enable()
        gc.unfreeze()


def open_loop(host: str, port: int, requests: list[bytes], rate: float, connections: int = 32) -> Result:
    return _quiet_gc(lambda: asyncio.run(_run(host, port, requests, rate, connections)))


async def _closed(host: str, port: int, requests: list[bytes], connections: int, seconds: float,
                  wrap: bool = True) -> Result:
    latencies: list[float] = []
    statuses: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    counter = iter(range(10**12))

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while loop.time() < deadline:
                index = next(counter)
                if not wrap and index >= len(requests):
                    break  # every request sent once: none is sent twice
                request = requests[index % len(requests)]
                t0 = loop.time()
                writer.write(request)
                await writer.drain()
                statuses.append(await _read_response(reader))
                latencies.append(loop.time() - t0)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return Result(latencies, statuses, time.perf_counter() - began)


def closed_loop(host: str, port: int, requests: list[bytes], connections: int, seconds: float, *,
                wrap: bool = True) -> Result:
    """``connections`` clients, each sending the next request as soon as the last answer arrived, for
    ``seconds``: the server's throughput at that concurrency, and each request's latency. ``wrap=False``
    stops at the end of ``requests`` instead of sending them again."""
    return _quiet_gc(lambda: asyncio.run(_closed(host, port, requests, connections, seconds, wrap)))
