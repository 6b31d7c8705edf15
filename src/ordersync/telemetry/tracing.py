"""The hub's tracer and the W3C trace context (``traceparent``/``tracestate``) it carries.

Off by default. Off means nil: the OpenTelemetry SDK is not even imported, :func:`span` hands out one
shared empty context manager, :func:`current_context` answers ``(None, None)`` without looking, and no
envelope carries a trace context. :func:`configure` (called by the composition root when
``[telemetry] enabled``) builds a tracer provider of our own (the global one is left alone, so tests and
benchmarks can turn tracing on and off in one process) exporting through OTLP/HTTP in batches.

How one order stays one trace: the HTTP request opens the root span; the intake writer writes the
order's events inside a span of that trace; every envelope written while a span is current (or for an
order whose span the writer names, :class:`TraceContexts`) carries its ``traceparent``; the relay
publishes each message in a span continuing it and sends that span's context as NATS headers; a
consumer handles a message in a span continuing the headers' (or else the envelope's) context, so the
messages its handler emits, the ERP calls and the webhooks it makes, continue the same trace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("ordersync.telemetry")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
#: span attribute names (ordersync's own namespace beside OpenTelemetry's messaging conventions)
ORDER_ID = "ordersync.order.id"
ACCOUNT = "ordersync.account.id"
CHANNEL = "ordersync.channel"
CONSUMER = "ordersync.consumer"
MESSAGE_TYPE = "ordersync.message.type"
MESSAGE_TYPES = "ordersync.message.types"
MESSAGE_ID = "messaging.message.id"

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_NULL: AbstractContextManager[None] = contextlib.nullcontext()


@dataclass(frozen=True)
class TelemetryConfig:
    """What :func:`configure` needs (``[telemetry]`` in the settings)."""

    enabled: bool = False
    endpoint: str | None = None
    service_name: str = "ordersync"
    export_timeout: float = 10.0


class _State:
    provider: TracerProvider | None = None
    tracer: trace.Tracer | None = None


_state = _State()


def enabled() -> bool:
    """True while this process records spans."""
    return _state.tracer is not None


def traces_endpoint(config: TelemetryConfig, env: Mapping[str, str] | None = None) -> str:
    """Where spans go: ``endpoint`` from the settings, else ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``, else a collector on this machine (4318)."""
    values = os.environ if env is None else env
    if config.endpoint:
        return config.endpoint
    if values.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return values["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    base = values.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://127.0.0.1:4318"
    return base.rstrip("/") + "/v1/traces"


def configure(config: TelemetryConfig, *, exporter: SpanExporter | None = None,
              env: Mapping[str, str] | None = None) -> bool:
    """Install the SDK when ``config.enabled`` (idempotent: a process configured already keeps its
    provider). Spans go through a batch processor to ``exporter`` (default: OTLP/HTTP to
    :func:`traces_endpoint`). Returns whether tracing is on."""
    if not config.enabled:
        return enabled()
    if _state.tracer is not None:
        return True
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=traces_endpoint(config, env), timeout=config.export_timeout)
    resource = Resource.create({"service.name": config.service_name,
                                "service.instance.id": f"{socket.gethostname()}:{os.getpid()}"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _state.provider = provider
    _state.tracer = provider.get_tracer("ordersync")
    log.info("tracing on: %s exports spans as service %s", type(exporter).__name__, config.service_name)
    return True


def shutdown() -> None:
    """Export what is buffered and turn tracing off (the next :func:`configure` starts afresh)."""
    provider, _state.provider, _state.tracer = _state.provider, None, None
    if provider is not None:
        provider.shutdown()


def flush(timeout_millis: int = 10_000) -> None:
    """Export what is buffered now (before a process exits on its own terms)."""
    if _state.provider is not None:
        _state.provider.force_flush(timeout_millis)


def span(name: str, *, parent: str | None = None, state: str | None = None, kind: SpanKind = SpanKind.INTERNAL,
         attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[Span | None]:
    """A span made current for the ``with`` block; a child of ``parent`` (a traceparent) when given,
    else of the current span. ``None`` attribute values are left out. Off: a shared empty context."""
    tracer = _state.tracer
    if tracer is None:
        return _NULL
    ctx = extract(parent, state) if parent else None
    attrs = {k: v for k, v in attributes.items() if v is not None} if attributes else None
    return tracer.start_as_current_span(name, context=ctx, kind=kind, attributes=attrs)


def start_span(name: str, *, parent: str | None = None, state: str | None = None,
               kind: SpanKind = SpanKind.INTERNAL, attributes: Mapping[str, Any] | None = None) -> Span | None:
    """A span that is not made current (the caller ends it), e.g. one per message of a batch."""
    tracer = _state.tracer
    if tracer is None:
        return None
    ctx = extract(parent, state) if parent else None
    attrs = {k: v for k, v in attributes.items() if v is not None} if attributes else None
    return tracer.start_span(name, context=ctx, kind=kind, attributes=attrs)


@contextlib.contextmanager
def current(span_: Span | None) -> Iterator[None]:
    """Make ``span_`` (from :func:`start_span`) current in the block without ending it."""
    if span_ is None:
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(span_))
    try:
        yield
    finally:
        otel_context.detach(token)


def child_span(name: str, *, kind: SpanKind = SpanKind.CLIENT,
               attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[Span | None]:
    """A span only inside a trace (a remote call made while handling an order); a call made by nobody's
    trace (the ERP change poller's every half second) records nothing rather than a trace of its own."""
    if _state.tracer is None or not trace.get_current_span().get_span_context().is_valid:
        return _NULL
    return span(name, kind=kind, attributes=attributes)


def annotate(**attributes: Any) -> None:
    """Set attributes (``order_id``, ``account``, ``channel``, or full names) on the current span."""
    if _state.tracer is None:
        return
    current_span = trace.get_current_span()
    if not current_span.is_recording():
        return
    for key, value in attributes.items():
        if value is not None:
            current_span.set_attribute(_SHORT.get(key, key), value)


_SHORT = {"order_id": ORDER_ID, "account": ACCOUNT, "channel": CHANNEL, "consumer": CONSUMER,
          "message_type": MESSAGE_TYPE}


def annotate_order(order_id: str, account: str | None, channel: str | None) -> None:
    """Name the account and channel of the order the current span works on (a consumer's span learns
    them when its handler loads the order; a span about another order is left alone)."""
    if _state.tracer is None:
        return
    current_span = trace.get_current_span()
    if not current_span.is_recording():
        return
    known = getattr(current_span, "attributes", None) or {}
    if known.get(ORDER_ID, order_id) != order_id or ACCOUNT in known:
        return
    current_span.set_attribute(ORDER_ID, order_id)
    if account:
        current_span.set_attribute(ACCOUNT, account)
    if channel:
        current_span.set_attribute(CHANNEL, channel)


def extract(traceparent: str, tracestate: str | None = None) -> otel_context.Context:
    """The context a remote parent's W3C trace context stands for (empty for a malformed one). Parsed
    here rather than by the propagator: the relay and the consumers do this for every message."""
    found = _TRACEPARENT_RE.match(traceparent)
    if found is None or found.group(1) == "0" * 32 or found.group(2) == "0" * 16:
        return _PROPAGATOR.extract({})
    state = TraceState.from_header([tracestate]) if tracestate else None
    parent = SpanContext(int(found.group(1), 16), int(found.group(2), 16), is_remote=True,
                         trace_flags=TraceFlags(int(found.group(3), 16)), trace_state=state)
    return trace.set_span_in_context(NonRecordingSpan(parent))


def context_of(span_: Span | None = None) -> tuple[str | None, str | None]:
    """The W3C ``(traceparent, tracestate)`` of ``span_`` (default: the current span); ``(None, None)``
    when tracing is off or no span is recording."""
    if _state.tracer is None:
        return None, None
    ctx = (span_ if span_ is not None else trace.get_current_span()).get_span_context()
    if not ctx.is_valid:
        return None, None
    state = ctx.trace_state.to_header() if ctx.trace_state else ""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}", state or None


def current_context() -> tuple[str | None, str | None]:
    return context_of(None)


def headers_of(traceparent: str | None, tracestate: str | None) -> dict[str, str]:
    """A trace context as message headers (empty without one)."""
    if not traceparent:
        return {}
    return {TRACEPARENT: traceparent, **({TRACESTATE: tracestate} if tracestate else {})}


def current_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in hex of the current span, or None (tracing off, no span)."""
    if _state.tracer is None:
        return None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def current_trace_id() -> str | None:
    ids = current_ids()
    return ids[0] if ids else None


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C traceparent (None for none or a malformed one)."""
    if not traceparent:
        return None
    found = _TRACEPARENT_RE.match(traceparent)
    if found is None or found.group(1) == "0" * 32:
        return None
    return found.group(1)


def valid_traceparent(value: str | None) -> str | None:
    """``value`` if it is a usable W3C traceparent, else None (a bad one is ignored, never fatal)."""
    return value if trace_id_of(value) else None


_BODY_TRACEPARENT = re.compile(r'"traceparent"\s*:\s*"([0-9a-f-]{55})"')
_BODY_TRACESTATE = re.compile(r'"tracestate"\s*:\s*"([^"]{1,512})"')


def context_in(body: str) -> tuple[str | None, str | None]:
    """The trace context of an envelope as JSON text, found without parsing it (the relay and the webhook
    sender pass bodies on verbatim); ``(None, None)`` for none or a malformed one."""
    at = body.find('"traceparent":"')
    if at < 0 and '"traceparent"' not in body:
        return None, None
    # pydantic writes compact JSON: the value follows at once
    parent = valid_traceparent(body[at + 15:at + 70]) if at >= 0 else None
    if parent is None:
        found = _BODY_TRACEPARENT.search(body)  # written by someone else, with spaces
        parent = valid_traceparent(found.group(1)) if found else None
    if parent is None:
        return None, None
    state = _BODY_TRACESTATE.search(body) if '"tracestate"' in body else None
    return parent, state.group(1) if state else None


class TraceContexts:
    """The trace context to write into the envelopes of each order (correlation id) when several orders
    share one transaction (the intake writer's group commit, a consumer's batch): each order's events
    continue its own trace, not whichever span happens to be current."""

    __slots__ = ("_current", "by_correlation")

    def __init__(self) -> None:
        #: the span of each order; its context is worked out when an envelope of the order is written
        #: (most batches of a projection write none)
        self.by_correlation: dict[str, Span | tuple[str | None, str | None]] = {}
        self._current: tuple[Span | None, tuple[str | None, str | None]] = (None, (None, None))

    def set(self, correlation_id: str | None, span_: Span | None) -> None:
        if correlation_id is not None and span_ is not None:
            self.by_correlation[correlation_id] = span_

    def for_envelope(self, correlation_id: str | None) -> tuple[str | None, str | None]:
        if _state.tracer is None:
            return None, None
        if correlation_id is not None:
            found = self.by_correlation.get(correlation_id)
            if found is not None:
                if not isinstance(found, tuple):
                    found = self.by_correlation[correlation_id] = context_of(found)
                return found
        current_span = trace.get_current_span()
        if current_span is not self._current[0]:  # a transaction's events mostly share one span
            self._current = (current_span, context_of(current_span))
        return self._current[1]


__all__ = ["Span", "SpanKind", "StatusCode", "TelemetryConfig", "TraceContexts", "annotate", "annotate_order",
           "child_span", "configure", "context_in", "context_of", "current", "current_context", "current_ids",
           "current_trace_id", "enabled", "flush", "headers_of", "shutdown", "span", "start_span", "trace_id_of",
           "traces_endpoint", "valid_traceparent"]
