"""Single flight: concurrent requests for the same keys share one call to the system behind them.

A storefront spike of 200 requests for the same SKU that is not in the read model yet must cost the
ERP one lookup, not 200. :meth:`SingleFlight.fetch` takes a batch of keys; keys already being fetched
by another caller are waited for, the rest are fetched in ONE call by this caller, which then hands
every waiter its result (or its exception).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self, *, wait_timeout: float = 60.0) -> None:
        self.wait_timeout = wait_timeout
        self._lock = threading.Lock()
        self._inflight: dict[K, Future[V | None]] = {}
        self.calls = 0  # how many times ``fn`` ran (tests and metrics)

    def fetch(self, keys: Sequence[K], fn: Callable[[list[K]], dict[K, V]]) -> dict[K, V | None]:
        """``fn(keys)`` returns the values it found (absent keys map to None for every waiter)."""
        lead: list[K] = []
        futures: dict[K, Future[V | None]] = {}
        with self._lock:
            for key in dict.fromkeys(keys):
                future = self._inflight.get(key)
                if future is None:
                    future = Future()
                    self._inflight[key] = future
                    lead.append(key)
                futures[key] = future
        if lead:
            try:
                self.calls += 1
                found = fn(lead)
            except BaseException as exc:
                for key in lead:
                    futures[key].set_exception(exc)
            else:
                for key in lead:
                    futures[key].set_result(found.get(key))
            finally:
                with self._lock:
                    for key in lead:
                        self._inflight.pop(key, None)
        return {key: future.result(timeout=self.wait_timeout) for key, future in futures.items()}
