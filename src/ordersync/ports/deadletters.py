"""The dead-letter port: what a person's "retry" on the workbench needs from the messaging runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ordersync.ports.store import UnitOfWork


@dataclass(frozen=True)
class ReplayItem:
    id: str
    consumer: str
    type: str | None
    correlation_id: str | None
    outlook: str  # what will happen: "will run", or why it would fail again


class DeadLetters(Protocol):
    def replay_in(self, uow: UnitOfWork, letter_id: str) -> ReplayItem:
        """Put dead letter ``letter_id`` back on its consumer's queue within ``uow``'s transaction (so that
        the action that asked for it commits with it). Raises NotFound, or Conflict if the letter is not
        dead any more or its consumer does not run in this process."""
        ...
