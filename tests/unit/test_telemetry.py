"""Trace context through envelopes and NATS headers, JSON log lines, and tracing off costing nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ordersync.canonical.envelope import Envelope
from ordersync.config import load_settings
from ordersync.domain.clock import FakeClock
from ordersync.domain.events import OrderReadyForErp
from ordersync.messaging.nats import NatsTransport
from ordersync.messaging.transport import OutboxMessage
from ordersync.store.uow import UnitOfWork
from ordersync.telemetry import tracing
from ordersync.telemetry.logs import JsonFormatter, log_fields, resolve_format, setup_logging


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure(tracing.TelemetryConfig(enabled=True), exporter=exporter)
    yield exporter
    tracing.shutdown()


def _uow() -> UnitOfWork:
    return UnitOfWork(None, FakeClock(dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)))  # type: ignore[arg-type]


def test_an_envelope_written_inside_a_span_carries_its_context_through_json(spans: InMemorySpanExporter) -> None:
    with tracing.span("request") as span:
        assert span is not None
        envelope = _uow().envelope(OrderReadyForErp(order_id="o-1"), correlation_id="o-1")
    ctx = span.get_span_context()
    assert envelope.traceparent is not None
    assert envelope.traceparent.startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")
    again = Envelope.from_json(envelope.to_json())
    assert again.traceparent == envelope.traceparent
    assert tracing.trace_id_of(again.traceparent) == f"{ctx.trace_id:032x}"
    assert tracing.context_in(envelope.to_json()) == (envelope.traceparent, None)
    # a consumer's span continues it: same trace, the writing span as parent
    with tracing.span("consume", parent=again.traceparent) as child:
        assert child is not None
    assert child.get_span_context().trace_id == ctx.trace_id
    assert child.parent is not None and child.parent.span_id == ctx.span_id


def test_orders_sharing_a_transaction_keep_their_own_traces(spans: InMemorySpanExporter) -> None:
    uow = _uow()
    first, second = tracing.start_span("intake write"), tracing.start_span("intake write")
    uow.traces.set("o-1", first)
    uow.traces.set("o-2", second)
    a = uow.envelope(OrderReadyForErp(order_id="o-1"), correlation_id="o-1")
    b = uow.envelope(OrderReadyForErp(order_id="o-2"), correlation_id="o-2")
    assert first is not None and second is not None
    assert tracing.trace_id_of(a.traceparent) == f"{first.get_span_context().trace_id:032x}"
    assert tracing.trace_id_of(b.traceparent) == f"{second.get_span_context().trace_id:032x}"
    assert a.traceparent != b.traceparent


def test_without_tracing_envelopes_have_no_trace_fields_and_old_messages_still_parse() -> None:
    assert not tracing.enabled()
    envelope = _uow().envelope(OrderReadyForErp(order_id="o-1"), correlation_id="o-1")
    raw = json.loads(envelope.to_json())
    assert "traceparent" not in raw and "tracestate" not in raw
    assert Envelope.from_json(json.dumps(raw)).traceparent is None
    assert tracing.span("anything") is tracing.span("other")  # one shared empty context
    assert tracing.current_context() == (None, None) and tracing.current_ids() is None


def test_malformed_trace_contexts_are_ignored_not_fatal() -> None:
    assert tracing.valid_traceparent("00-zz-11-01") is None
    assert tracing.trace_id_of("00-" + "0" * 32 + "-" + "1" * 16 + "-01") is None
    assert tracing.context_in('{"traceparent":"garbage"}') == (None, None)
    spaced = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    assert tracing.context_in(json.dumps({"traceparent": spaced, "tracestate": "k=v"})) == (spaced, "k=v")


def test_nats_publish_headers_carry_the_trace_and_a_delivery_reads_it_back() -> None:
    transport = NatsTransport(None, ["nats://127.0.0.1:1"])  # type: ignore[arg-type]  # never connects
    sent: list[dict[str, str]] = []

    class Js:
        async def publish(self, subject: str, body: bytes, headers: dict[str, str]) -> None:
            sent.append(headers)

        async def add_stream(self, **_: Any) -> None:
            return None

        async def stream_info(self, name: str) -> Any:  # no stream yet: the transport makes it
            raise NotFoundError(code=404, err_code=10059, description=f"stream {name} not found")

    transport._js = Js()  # type: ignore[assignment]
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    try:
        asyncio.run(transport._publish([OutboxMessage(1, "m-1", "order.ready_for_erp", "o-1", "{}", parent, "k=v"),
                                        OutboxMessage(2, "m-2", "order.ready_for_erp", "o-1", "{}")]))
    finally:
        transport.close()
    assert sent[0]["traceparent"] == parent and sent[0]["tracestate"] == "k=v"
    assert "traceparent" not in sent[1]
    msg = Msg(None, subject="ordersync.order.ready_for_erp.3", reply="", data=b"{}", headers=sent[0])  # type: ignore[arg-type]
    delivery = transport._delivery("c", msg, None)  # type: ignore[arg-type]
    assert (delivery.traceparent, delivery.tracestate) == (parent, "k=v")
    assert delivery.message_id == "m-1" and delivery.seq == 1


def test_json_log_lines_name_the_trace_the_order_and_the_consumer(spans: InMemorySpanExporter) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("ordersync.test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.info("outside %s", "everything")
        with tracing.span("consume") as span, log_fields(consumer="orders.submit", order_id="o-7"):
            logger.warning("ERP slow: %d ms", 900)
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "outside everything" and first["level"] == "INFO"
    assert first["logger"] == "ordersync.test.json" and "trace_id" not in first and "order_id" not in first
    dt.datetime.fromisoformat(first["time"])
    assert span is not None
    ctx = span.get_span_context()
    assert second == {**second, "message": "ERP slow: 900 ms", "level": "WARNING", "trace_id": f"{ctx.trace_id:032x}",
                      "span_id": f"{ctx.span_id:016x}", "order_id": "o-7", "consumer": "orders.submit"}
    assert "ValueError: boom" in third["error"]


def test_the_log_format_comes_from_the_option_the_environment_or_the_settings() -> None:
    assert resolve_format(None, env={}) == "text"
    assert resolve_format(None, env={"ORDERSYNC_LOG_FORMAT": "json"}) == "json"
    assert resolve_format("text", env={"ORDERSYNC_LOG_FORMAT": "json"}) == "text"
    assert resolve_format(None, env={}, configured="json") == "json"
    assert resolve_format("auto", env={}, stream=io.StringIO()) == "json"  # not a terminal
    with pytest.raises(ValueError, match="choose one of"):
        resolve_format("yaml", env={})


def test_setup_logging_quiets_httpx_to_warnings() -> None:
    setup_logging(logging.INFO, "json", stream=io.StringIO())
    assert logging.getLogger("httpx").level == logging.WARNING


def test_one_setting_or_the_environment_turns_tracing_on() -> None:
    assert load_settings(env={}).telemetry.enabled is False
    assert load_settings(env={"ORDERSYNC_TELEMETRY": "1"}).telemetry.enabled is True
    config = tracing.TelemetryConfig(enabled=True)
    assert tracing.traces_endpoint(config, {}) == "http://127.0.0.1:4318/v1/traces"
    assert tracing.traces_endpoint(config, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://col:4318/"}) == \
        "http://col:4318/v1/traces"
    assert tracing.traces_endpoint(config, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x"}) == "http://t/x"
    assert tracing.traces_endpoint(tracing.TelemetryConfig(endpoint="http://c/v1/traces"), {}) == "http://c/v1/traces"


def test_a_hub_without_tracing_never_loads_the_sdk(tmp_path: Any) -> None:
    """Off is nil: building a hub, handling an order's events and answering requests import no SDK."""
    code = f"""
import sys
from ordersync.bootstrap import build_hub
from ordersync.config import Settings
from ordersync.server import create_app
from ordersync.telemetry import tracing
hub = build_hub(Settings(data_dir={str(tmp_path)!r}))
create_app(hub)
hub.worker.drain()
hub.close()
assert not tracing.enabled()
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk") or m.startswith("opentelemetry.exporter"))
assert not loaded, loaded
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
