"""The port through which an adapter reports what it read, so that drift from the schema it reads with is
recorded (``docs/contracts.md``). Adapters sit below the runtime that records: the composition root
hands them an observer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class PayloadObserver(Protocol):
    def observe(self, source: str, schema: Mapping[str, Any], payloads: Sequence[Any]) -> None:
        """Measure ``payloads`` (one read's rows) against ``schema``; never raises (recording drift must
        not fail the read)."""
        ...


class Unobserved:
    """The observer of an adapter nobody measures (tests of the adapter alone)."""

    def observe(self, source: str, schema: Mapping[str, Any], payloads: Sequence[Any]) -> None:
        return None
