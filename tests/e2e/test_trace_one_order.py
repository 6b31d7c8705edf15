"""Done when (issue 18): one order through the API (``serve --no-worker``), TWO worker processes on NATS
JetStream, the real Tryton and an outbound webhook is ONE trace with every hop, exported by every process
with the real OTLP/HTTP exporter to a receiver this test runs; its trace id is on the order's timeline
and in the JSON log lines of the worker processes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordersync.demo import sink
from ordersync.devkit.tryton.server import free_port
from tests.e2e.test_subscriber_outage import _healthy, stop, until
from tests.support import otlp
from tests.support.nats import NatsCluster, nats_single  # noqa: F401  (fixture)
from tests.support.services import create_pg_database, drop_pg_database, postgres_available, require
from tests.support.tryton import erp_settings, sales_by_reference, write_hub_config

pytestmark = [pytest.mark.tryton, pytest.mark.postgres, pytest.mark.nats, pytest.mark.slow,
              pytest.mark.timeout(600)]
SECRET = "crm-shared-secret-0123456789"
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP span kinds


def _cli(data_dir: Path, url: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ordersync.cli", *args, "--data-dir", str(data_dir),
                           "--store", url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _start(data_dir: Path, url: str, bus: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "ordersync.cli", *args, "--data-dir", str(data_dir),
                             "--store", url], stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "ORDERSYNC_BUS": bus})


def _json_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_one_order_through_api_two_nats_workers_tryton_and_a_webhook_is_one_trace(
        nats_single: NatsCluster, start_tryton: Any, tmp_path: Path) -> None:  # noqa: F811
    require(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    tryton = start_tryton({"main": "main"})
    url = create_pg_database()
    data_dir = tmp_path / "hub"
    prefix = f"trace{random.randrange(10**6)}"
    receiver = otlp.start()
    config = write_hub_config(data_dir, [erp_settings(tryton, retries=1, reset_timeout=1)])
    config.write_text(config.read_text() + f"""
[telemetry]
enabled = true
endpoint = "{receiver.url}"
service_name = "ordersync-e2e"
[nats]
prefix = "{prefix}"
[webhooks]
poll_seconds = 0.1
""")
    crm = sink.start(secret=SECRET)
    port = free_port()
    logs = {name: tmp_path / f"{name}.log" for name in ("api", "worker0", "worker1")}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        _cli(data_dir, url, "init")
        _cli(data_dir, url, "subscriptions", "add", "crm", "--url", crm.url, "--type", "order.accepted",
             "--secret", SECRET)
        token = _cli(data_dir, url, "apikey", "create", "e2e", "--client", "storefront", "--scope", "orders:write",
                     "--scope", "orders:read").split()[-1]
        bus = nats_single.url
        procs["api"] = _start(data_dir, url, bus, logs["api"], "serve", "--no-worker", "--port", str(port),
                              "--log-format", "json")
        for name in ("worker0", "worker1"):
            procs[name] = _start(data_dir, url, bus, logs[name], "worker", "--log-format", "json",
                                 "--log-level", "DEBUG")
        until(lambda: all("running on" in logs[w].read_text() for w in ("worker0", "worker1")), 90,
              lambda: {n: log.read_text()[-2000:] for n, log in logs.items()})
        until(lambda: _healthy(port), 60, lambda: logs["api"].read_text()[-3000:])
        auth = {"Authorization": f"Bearer {token}"}
        body = {"external_order_number": "TRACE-E2E-1", "account_id": "C-1001", "ship_to_id": "RIS-DUS",
                "lines": [{"line_no": 1, "sku": "BRG-6204-2RS", "quantity": "10"}]}
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/orders", json=body, headers=auth, timeout=30)
        assert answer.status_code == 202, answer.text
        order_id = answer.json()["order_id"]
        order_url = f"http://127.0.0.1:{port}/v1/orders/{order_id}"
        until(lambda: httpx.get(order_url, headers=auth, timeout=10).json()["state"] == "accepted", 120,
              lambda: {n: log.read_text()[-2000:] for n, log in logs.items()})
        until(lambda: any(r.order_id == order_id for r in crm.received()), 60, crm.summary)
        view = httpx.get(order_url, headers=auth, timeout=10).json()
        missing = httpx.get(f"http://127.0.0.1:{port}/v1/orders/no-such-order", headers=auth, timeout=10)
    finally:
        for proc in procs.values():  # SIGTERM: each process exports what it buffered on the way out
            stop(proc)
        crm.stop()
    try:
        trace_id = view["trace_id"]
        assert trace_id and len(trace_id) == 32
        until(lambda: {"flow.order_prepare", "flow.erp_submit", "outbound.fanout"} <= {
            s.attributes.get("ordersync.consumer") for s in receiver.spans() if s.trace_id == trace_id}, 30,
            lambda: sorted({s.name for s in receiver.spans() if s.trace_id == trace_id}))
        spans = [s for s in receiver.spans() if s.trace_id == trace_id]
        names = sorted({s.name for s in spans})
        by_id = {s.span_id: s for s in spans}
        # ONE trace: one root (the HTTP request), every other span's parent is in it
        roots = [s for s in spans if s.parent_id is None]
        assert [r.name for r in roots] == ["POST /v1/orders"], names
        assert all(s.parent_id in by_id for s in spans if s.parent_id is not None), names
        root = roots[0]
        assert root.kind == SERVER and root.service == "ordersync-e2e"
        assert root.attributes["ordersync.order.id"] == order_id
        assert root.attributes["ordersync.account.id"] == "C-1001"
        assert root.attributes["ordersync.channel"] == "storefront"
        # every hop
        assert "intake write" in names
        published = {t for s in spans if s.kind == PRODUCER for t in s.attributes["ordersync.message.types"]}
        assert {"order.received", "order.ready_for_erp", "order.accepted"} <= published, names
        assert all(by_id[s.parent_id].kind == PRODUCER for s in spans if s.kind == CONSUMER and s.parent_id), \
            "a consumer continues the relay's publish span (the NATS headers)"
        assert any(s.name == "erp main submit_orders" for s in spans), names
        assert any(s.name.startswith("tryton model.sale.sale") and s.kind == CLIENT for s in spans), names
        webhook = [s for s in spans if s.name == "webhook order.accepted"]
        assert len(webhook) == 1 and webhook[0].attributes["http.response.status_code"] == 200
        # processes: the API's and the workers' (two NATS workers share the work; each exports its own)
        api = {s.instance for s in spans if s.name in ("POST /v1/orders", "intake write")}
        workers = {s.instance for s in spans if s.kind in (CONSUMER, PRODUCER)}
        assert len(api) == 1 and workers and not api & workers
        # the subscriber got the trace with the event; the order's timeline names it
        assert [r.traceparent.split("-")[1] for r in crm.received() if r.order_id == order_id] == [trace_id]
        assert view["traces"][0] == trace_id
        assert missing.status_code == 404 and len(missing.json()["trace_id"]) == 32
        assert sales_by_reference(tryton, f"OS-{order_id}")
        # the JSON log lines of the worker processes carry it, with the order and the consumer
        traced = [line for w in ("worker0", "worker1") for line in _json_lines(logs[w])
                  if line.get("trace_id") == trace_id]
        assert traced, [line for w in ("worker0", "worker1") for line in _json_lines(logs[w])][-20:]
        assert all(line["order_id"] == order_id and line.get("consumer") for line in traced
                   if line["message"].startswith("handled "))
        assert {line["consumer"] for line in traced if "consumer" in line} >= {"flow.erp_submit"}
        every = [line for w in ("worker0", "worker1") for line in _json_lines(logs[w])]
        assert every and all({"time", "level", "logger", "message"} <= line.keys() for line in every)
        assert not any(line["logger"] == "httpx" for line in every)
    finally:
        receiver.stop()
        drop_pg_database(url)
