"""Waking a worker in another process on the same machine.

With ``ordersync serve --no-worker`` and ``ordersync worker`` beside it, the API still tells the worker
at once when it committed events, as it wakes its own worker thread otherwise: a one-byte datagram on a
Unix socket in Linux's abstract namespace, named after the store (no file to clean up, no length limit
from the data directory's path). Sending never blocks and never fails the caller: with no worker
listening, or its buffer full, the datagram is dropped and the worker finds the work at its next poll
(``worker.poll_interval`` while busy, up to ``worker.max_idle_seconds`` when idle).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import threading
from collections.abc import Callable

log = logging.getLogger("ordersync.worker")


def wake_address(store_url: str) -> str:
    """The abstract socket name the worker of ``store_url`` listens on."""
    return "\0ordersync-wake-" + hashlib.sha256(store_url.encode()).hexdigest()[:24]


class WakeSender:
    """Sends wake-ups to the worker of one store (thread-safe, never blocks, never raises)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def __call__(self) -> None:
        with contextlib.suppress(OSError):  # nobody listening (yet), or its queue is full: it polls anyway
            self._sock.sendto(b"w", self.address)

    def close(self) -> None:
        self._sock.close()


class WakeListener:
    """Calls ``on_wake`` for every burst of wake-ups sent to ``address`` (a daemon thread)."""

    def __init__(self, address: str, on_wake: Callable[[], None]) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(address)  # OSError (EADDRINUSE) if another worker of this store listens
        self._on_wake = on_wake
        self._thread = threading.Thread(target=self._run, name="wake-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self._sock.recv(64)
                with contextlib.suppress(BlockingIOError):  # a burst of wake-ups is one wake-up
                    while self._sock.recv(64, socket.MSG_DONTWAIT):
                        pass
            except OSError:  # closed
                return
            self._on_wake()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
