"""Every operation of the OpenAPI document, fuzzed by schemathesis against the in-process app.

The document is loaded from the running app (``/v1/openapi.json``), so a new route is tested the day it
is added. The hub runs on a MemoryErp with data for the key's account (an accepted, shipped and invoiced
order and a return request), and every call carries a key with every scope and a rate limit that never
bites. Each operation must answer without a 5xx, with a status the document lists, the content type it
lists for that status, headers and a body that match their schemas; an answer to deliberately invalid
input must be a 4xx.

Schemathesis runs as ``schemathesis run`` would (its engine: examples, coverage and fuzzing phases;
no stateful phase), not through its pytest plugin, whose lazy loader does not work with pytest 9. A
failure lists the check, the status and a curl command that reproduces it.

Deterministic and bounded: derandomized Hypothesis (the same cases every run), ``MAX_EXAMPLES`` per
operation and mode, no deadline and no health checks (a shared CI box must not turn slowness into
failures), no example database. About 10 s for the 13 operations of today.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.api.keys import Scope
from ordersync.server import create_app
from tests.support.hub import api_key, erp_hub, settle

MAX_EXAMPLES = 25
ACCOUNT = "C-1001"
# ``negative_data_rejection``: a request the document rules out must be refused (dates and times are
# ISO 8601 text only: ``api/params.py``).
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance", "ignored_auth", "unsupported_method",
          "missing_required_header", "allow_header_conformance", "negative_data_rejection")


@dataclass
class Api:
    app: Any
    token: str
    ids: dict[str, list[str]]  # dictionary name -> values that exist in the hub


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The app over a seeded hub (an accepted, shipped and invoiced order of ``ACCOUNT``, and a return
    request for it where the route exists), and a key of ``ACCOUNT`` with every scope."""
    erp = MemoryErp.from_profile("main", name="main")
    hub = erp_hub(tmp_path_factory.mktemp("schemathesis"), {"main": erp})
    app = create_app(hub)
    token = api_key(hub, *(s.value for s in Scope), account=ACCOUNT, rate=10_000_000)
    client = TestClient(app, raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {token}"}
    placed = client.post("/v1/orders", headers=headers, json={
        "external_order_number": "ST-1", "ship_to_id": "RIS-DUS",
        "lines": [{"line_no": 1, "sku": "BRG-6204-2RS", "quantity": "10"}]})
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["order_id"]
    settle(hub)
    for ref in (o["reference"] for o in client.get(placed.json()["location"], headers=headers).json()["erp_orders"]):
        erp.ship(ref)
        erp.post_invoices(ref)
    assert hub.poller is not None
    hub.poller.poll_all()
    settle(hub)
    # a worker is alive for the whole run (its heartbeat): /ready answers as a running hub's does
    beating = threading.Event()
    assert hub.heartbeat is not None
    threading.Thread(target=hub.heartbeat.run, args=(beating,), daemon=True).start()
    ids = {"orders": [order_id], "accounts": [ACCOUNT], "skus": ["BRG-6204-2RS", "RIS-100-6204", "VLV-SV-24V-G12"],
           "quantities": ["1", "2.5", "10"]}
    returned = client.post("/v1/returns", headers=headers,
                           json={"order_id": order_id, "lines": [{"line_no": 1, "quantity": "1"}]})
    if returned.status_code == 201:
        ids["returns"] = [returned.json()["id"]]
    invoices = client.get("/v1/invoices", headers=headers)
    if invoices.status_code == 200 and invoices.json()["items"]:
        ids["invoices"] = [i["id"] for i in invoices.json()["items"]]
    yield Api(app, token, ids)
    beating.set()
    hub.close()


# Where generated values are replaced, half of the time, by ones that exist: without them nearly every
# call with an id would be a 404 and the 200 answers (and their schemas) would go untested.
# Decimals are documented as any string (pydantic does not publish max_digits/decimal_places), so
# generated quantities are nearly always refused; real ones let orders, amendments and returns through.
BINDINGS = {"path.order_id": "orders", "body.order_id": "orders", "path.return_id": "returns",
            "path.invoice_id": "invoices",
            "query.order_id": "orders", "query.account_id": "accounts", "query.sku": "skus",
            "body.lines[*].sku": "skus", "body.lines[*].quantity": "quantities",
            "body.lines[*].unit_price_shown": "quantities", "body.changes[*].quantity": "quantities"}


def served(app: Any) -> Any:
    """The app as a server runs it: Starlette answers 500 to an unhandled exception and then re-raises
    it for the server to log. Without this, schemathesis' in-process transport would report the
    exception without the request; with it, the 500 fails ``not_a_server_error`` with a curl command."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        except Exception:
            if scope["type"] != "http":
                raise

    return asgi


def run(schema: Any) -> tuple[list[str], dict[str, Counter[int]]]:
    """Run schemathesis' engine (what ``schemathesis run`` does) over ``schema``: the failures, each
    with the request that reproduces it, and the statuses each operation answered."""
    from schemathesis.engine import events, from_schema

    failures: list[str] = []
    statuses: dict[str, Counter[int]] = {}
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            seen = statuses.setdefault(recorder.label, Counter())
            seen.update(i.response.status_code for i in recorder.interactions.values() if i.response)
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.failure_info is None:
                        continue
                    interaction = recorder.interactions.get(case_id)
                    status = interaction.response.status_code if interaction and interaction.response else "-"
                    failure = check.failure_info.failure
                    failures.append(f"{recorder.label} [{event.phase.value}] {check.name} -> {status}: "
                                    f"{failure.title}\n    {failure.message[:300]}\n"
                                    f"    {check.failure_info.code_sample}")
        elif isinstance(event, events.NonFatalError):
            failures.append(f"{event.label} [{event.phase.value if event.phase else '-'}] raised "
                            f"{event.value!r}\n    {event.info.code_sample or ''}")
        elif isinstance(event, events.FatalError):
            failures.append(f"schemathesis stopped: {event.exception!r}")
    return failures, statuses


def test_every_operation_conforms_to_the_document(api: Api) -> None:
    config = schemathesis.Config.from_dict({
        "headers": {"Authorization": f"Bearer {api.token}"},
        "continue-on-failure": True,  # every failure of an operation, not just its first
        "suppress-health-check": ["all"],  # a slow shared box must not fail the run
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none",
                       "mode": "all"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "dictionaries": {name: {"values": values} for name, values in api.ids.items()},
        "parameters": {key: {"dictionary": name, "probability": 0.5}
                       for key, name in BINDINGS.items() if name in api.ids},
    })
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", served(api.app), config=config)
    failures, statuses = run(schema)
    print("\nstatuses per operation:", *(f"{op}: {dict(sorted(c.items()))}" for op, c in statuses.items()),
          sep="\n  ")
    assert not failures, "\n".join(failures)


def test_every_v1_operation_documents_its_problem_answers(api: Api) -> None:
    document = TestClient(api.app).get("/v1/openapi.json").json()
    assert "HTTPValidationError" not in str(document)  # FastAPI's 422 shape is never what this hub answers
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            expected = {"401", "403", "404", "422", "429"} if path.startswith("/v1/") else set()
            expected |= {"400", "413"} if "requestBody" in operation else set()
            assert expected <= set(responses), (method, path, sorted(responses))
            for status in expected:
                assert "application/problem+json" in responses[status]["content"], (method, path, status)
            assert responses.get("429", {}).get("headers", {}).get("Retry-After", {}).get("required", True)
