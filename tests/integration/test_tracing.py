"""Tracing on, on the embedded bus: one order placed through the API is one trace, from the request through
intake, relay, every consumer and the ERP to the webhook its subscriber receives; its trace id is on its
timeline and in the problem documents of the requests that fail inside a trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.demo import sink
from ordersync.runtime.outbound import SubscriptionService
from ordersync.server import create_app
from ordersync.telemetry import tracing
from tests.support.hub import api_key, erp_hub
from tests.support.people import PASSWORD, staff

SECRET = "crm-shared-secret-0123456789"
BODY = {"external_order_number": "TRACE-1", "account_id": "C-1001", "ship_to_id": "RIS-DUS",
        "lines": [{"line_no": 1, "sku": "BRG-6204-2RS", "quantity": "10"}]}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(tracing.TelemetryConfig(enabled=True), exporter=exporter)
    yield exporter
    tracing.shutdown()


def _finished(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    tracing.flush()
    return list(exporter.get_finished_spans())


def test_one_order_is_one_trace_from_the_request_to_the_subscriber(tmp_path: Path,
                                                                   spans: InMemorySpanExporter) -> None:
    hub = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")})
    try:
        with sink.start(secret=SECRET, tolerance_seconds=None) as crm:
            SubscriptionService(hub.db, hub.clock).add("crm", crm.url, ["order.accepted"], secret=SECRET)
            client = TestClient(create_app(hub), raise_server_exceptions=False)
            token = api_key(hub, "orders:write", "orders:read", client="storefront")
            answer = client.post("/v1/orders", json=BODY, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 202, answer.text
            order_id = answer.json()["order_id"]
            for _ in range(50):
                if hub.worker.drain() + hub.webhooks.send_due() == 0 and crm.received():
                    break
            view = client.get(f"/v1/orders/{order_id}", headers={"Authorization": f"Bearer {token}"}).json()
            missing = client.get("/v1/orders/nope", headers={"Authorization": f"Bearer {token}"})
            got = crm.received()
    finally:
        hub.close()
    assert view["state"] == "accepted"
    finished = _finished(spans)
    request = next(s for s in finished if s.name == "POST /v1/orders")
    trace_id = request.context.trace_id
    mine = [s for s in finished if s.context.trace_id == trace_id]
    names = {s.name for s in mine}
    assert request.parent is None and request.attributes is not None
    assert request.attributes[tracing.ORDER_ID] == order_id
    assert request.attributes[tracing.ACCOUNT] == "C-1001" and request.attributes[tracing.CHANNEL] == "storefront"
    assert "intake write" in names
    published = {t for s in mine if s.kind == tracing.SpanKind.PRODUCER and s.attributes is not None
                 for t in s.attributes[tracing.MESSAGE_TYPES]}
    assert {"order.received", "order.ready_for_erp", "order.accepted"} <= published, sorted(names)
    consumers = {s.attributes[tracing.CONSUMER] for s in mine
                 if s.kind == tracing.SpanKind.CONSUMER and s.attributes is not None}
    assert {"flow.order_prepare", "flow.erp_submit", "outbound.fanout"} <= consumers, sorted(names)
    assert any(n.startswith("erp main submit_orders") for n in names), sorted(names)
    assert "webhook order.accepted" in names
    # every span of the order hangs on the request: one tree, no orphan
    ids = {s.context.span_id for s in mine}
    assert all(s.parent is None or s.parent.span_id in ids for s in mine)
    assert all(s.attributes.get(tracing.ORDER_ID) in (None, order_id) for s in mine if s.attributes)
    # consumers that load the order name its account and channel too
    submit = next(s for s in mine if s.name == "flow.erp_submit: order.ready_for_erp")
    assert submit.attributes is not None and submit.attributes[tracing.ACCOUNT] == "C-1001"
    assert submit.attributes[tracing.CHANNEL] == "storefront"
    # the trace id where people look: the order, and the subscriber's request
    assert view["trace_id"] == f"{trace_id:032x}" and view["traces"] == [view["trace_id"]]
    assert got and all(tracing.trace_id_of(r.traceparent) == view["trace_id"] for r in got)
    assert missing.status_code == 404 and len(missing.json()["trace_id"]) == 32
    assert missing.json()["trace_id"] != view["trace_id"]


def test_the_ops_timeline_shows_the_orders_trace(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    from ordersync.web import ops_data

    hub = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")})
    try:
        client = TestClient(create_app(hub), raise_server_exceptions=False)
        token = api_key(hub, "orders:write", client="storefront")
        order_id = client.post("/v1/orders", json=BODY, headers={"Authorization": f"Bearer {token}"}).json()["order_id"]
        hub.worker.drain()
        with hub.db.read() as conn:
            timeline: Any = ops_data.timeline(conn, order_id)
        signed_in = client.post("/ops/signin", data={"email": staff(hub, "operations", name="Olga Ops"),
                                                     "password": PASSWORD, "next": "/ops"}, follow_redirects=False)
        assert signed_in.status_code == 303, signed_in.text
        page = client.get(f"/ops/orders/{order_id}").text
    finally:
        hub.close()
    request = next(s for s in _finished(spans) if s.name == "POST /v1/orders")
    trace_id = f"{request.context.trace_id:032x}"
    assert timeline.traces == [trace_id]
    # what the request caused is in its trace; a change the ERP poller found later (the sale's shipment
    # appearing, on a slow machine before the test ends) starts from the poll, not from the request
    events = [e for e in timeline.entries if e.kind == "event" and not e.what.startswith("erp.")]
    assert events and all(e.trace_id == trace_id for e in events), [(e.what, e.trace_id) for e in events]
    assert f'<code class="trace-id" data-trace-id="{trace_id}">' in page
    assert page.count(f'data-trace-id="{trace_id}"') == len(events) + 1  # each of them, and the order


def test_an_unexpected_error_is_answered_with_the_trace_of_its_request(tmp_path: Path,
                                                                      spans: InMemorySpanExporter) -> None:
    hub = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")})
    try:
        app = create_app(hub)

        @app.get("/test-only/boom")
        def boom() -> None:
            raise RuntimeError("boom")

        answer = TestClient(app, raise_server_exceptions=False).get("/test-only/boom")
    finally:
        hub.close()
    request = next(s for s in _finished(spans) if s.name == "GET /test-only/boom")
    assert answer.status_code == 500
    assert answer.json()["trace_id"] == f"{request.context.trace_id:032x}"


def test_a_callers_traceparent_is_continued(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    hub = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")})
    try:
        client = TestClient(create_app(hub), raise_server_exceptions=False)
        token = api_key(hub, "orders:write", client="storefront")
        answer = client.post("/v1/orders", json=BODY, headers={
            "Authorization": f"Bearer {token}", "traceparent": f"00-{caller_trace}-{caller_span}-01"})
        hub.worker.drain()
    finally:
        hub.close()
    assert answer.status_code == 202
    finished = _finished(spans)
    request = next(s for s in finished if s.name == "POST /v1/orders")
    assert f"{request.context.trace_id:032x}" == caller_trace
    assert request.parent is not None and f"{request.parent.span_id:016x}" == caller_span
    assert any(s.name == "flow.order_prepare: order.received" and s.context.trace_id == request.context.trace_id
               for s in finished)
