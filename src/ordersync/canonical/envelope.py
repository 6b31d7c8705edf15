"""The message envelope every event and command travels in.

``correlation_id`` is the order id (every message about an order carries it, so logs, dead letters and
traces can be followed by order); ``causation_id`` is the id of the message that caused this one.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def new_id() -> str:
    return uuid.uuid4().hex


class Envelope(BaseModel):
    """A message: identity, type, schema version, correlation and the payload as plain JSON."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    message_id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=120)
    schema_version: int = Field(default=1, ge=1)
    correlation_id: str | None = Field(default=None, max_length=64)
    causation_id: str | None = Field(default=None, max_length=64)
    occurred_at: dt.datetime
    payload: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> Envelope:
        """Parse a wire message; raises ``ValueError`` (pydantic's ValidationError included)."""
        return cls.model_validate(json.loads(raw))
