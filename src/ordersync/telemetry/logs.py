"""Log lines for people (the default on a terminal) or as JSON lines for a log pipeline.

A JSON line holds ``time``, ``level``, ``logger``, ``message`` and, where known, ``trace_id`` and
``span_id`` (the current span), ``order_id`` and ``consumer`` (:func:`log_fields`, set by the consumer
runner around each message and by the API around an order's intake), and ``error`` (the traceback).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any, Literal, TextIO

from ordersync.telemetry.tracing import current_ids

LogFormat = Literal["text", "json", "auto"]
FORMATS = ("text", "json", "auto")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

_fields: ContextVar[Mapping[str, str] | None] = ContextVar("ordersync_log_fields", default=None)


@contextlib.contextmanager
def log_fields(**fields: str | None) -> Iterator[None]:
    """Name the order and consumer (or other fields) of every log line written in the block."""
    merged = {**(_fields.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _fields.set(merged)
    try:
        yield
    finally:
        _fields.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = current_ids()
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        fields = _fields.get()
        if fields:
            line.update(fields)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["error"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def resolve_format(requested: str | None, env: Mapping[str, str] | None = None,
                   configured: str | None = None, stream: TextIO | None = None) -> Literal["text", "json"]:
    """The log format: the option, else ``ORDERSYNC_LOG_FORMAT``, else ``[logging] format``, else text.
    ``auto`` is text on a terminal and JSON lines otherwise (a service manager, a container)."""
    values = os.environ if env is None else env
    chosen = (requested or values.get("ORDERSYNC_LOG_FORMAT") or configured or "text").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(f"log format {chosen!r}: choose one of {', '.join(FORMATS)}")
    if chosen == "auto":
        out = stream or sys.stderr
        return "text" if out.isatty() else "json"
    return "json" if chosen == "json" else "text"


def level_of(name: str) -> int:
    level = logging.getLevelName(name.strip().upper())
    if not isinstance(level, int):
        raise ValueError(f"log level {name!r}: choose one of DEBUG, INFO, WARNING, ERROR")
    return level


def setup_logging(level: int = logging.INFO, fmt: Literal["text", "json"] = "text",
                  stream: TextIO | None = None) -> None:
    """Configure the root logger for a hub process (replacing the handler a previous call set). Like
    :func:`logging.basicConfig`, a root logger someone else configured (a test runner's) is left alone."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_ordersync", False)]
    if len(ours) == len(root.handlers):
        for old in ours:
            root.removeHandler(old)
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
        handler._ordersync = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request at INFO (every ERP call, every webhook): only its warnings
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    logging.getLogger("httpcore").setLevel(max(level, logging.WARNING))


__all__ = ["FORMATS", "JsonFormatter", "LogFormat", "level_of", "log_fields", "resolve_format", "setup_logging"]
