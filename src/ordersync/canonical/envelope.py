"""The message envelope every event and command travels in.

``correlation_id`` is the order id (every message about an order carries it, so logs, dead letters and
traces can be followed by order); ``causation_id`` is the id of the message that caused this one.
``traceparent`` / ``tracestate`` are the W3C trace context of the span that wrote the message (when
tracing is on, see docs/observability.md): a consumer continues that trace. Both are optional and left
out of the JSON when absent, so the wire format of a hub without tracing is unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def new_id() -> str:
    return uuid.uuid4().hex


_TRACE_FIELDS = {"traceparent", "tracestate"}


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
    traceparent: str | None = Field(default=None, max_length=128)
    tracestate: str | None = Field(default=None, max_length=512)

    def to_json(self) -> str:
        if self.traceparent is None and self.tracestate is None:
            return self.model_dump_json(exclude=_TRACE_FIELDS)
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> Envelope:
        """Parse a wire message; raises ``ValueError`` (pydantic's ValidationError included)."""
        return cls.model_validate(json.loads(raw))
