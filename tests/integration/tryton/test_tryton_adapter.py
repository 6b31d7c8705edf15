"""TrytonErp when the wire fails: errors map to the port's tree and a retry after a lost answer is safe.

The tests with a real trytond use the session server's writable ``sandbox``; the others script the
answers (no trytond, no marker).
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import httpx
import pytest

from ordersync.adapters.erp.tryton.adapter import TrytonErp
from ordersync.adapters.erp.tryton.rpc import TrytonClient
from ordersync.devkit import demo_data
from ordersync.devkit.tryton.server import TrytonServer, free_port
from ordersync.domain.errors import ProtocolError, Unavailable
from ordersync.ports.erp import SalesOrderLine, SalesOrderRequest, SubmitOutcome, order_reference
from tests.integration.tryton.conftest import SANDBOX

MAIN = demo_data.profile("main")


class FlakyTransport(httpx.HTTPTransport):
    """Passes calls to trytond, except the first call of ``method``: dropped before it is sent
    (``lose="request"``) or after Tryton answered (``lose="answer"``, a read timeout: outcome unknown)."""

    def __init__(self, method: str, lose: str) -> None:
        super().__init__()
        self.method = method
        self.lose = lose
        self.tripped = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        called = json.loads(request.content or b"{}").get("method")
        if called != self.method or self.tripped:
            return super().handle_request(request)
        self.tripped = True
        if self.lose == "request":
            raise httpx.ConnectError("connection refused (injected)", request=request)
        response = super().handle_request(request)
        response.read()
        raise httpx.ReadTimeout("no answer in time (injected)", request=request)


def _erp(server: TrytonServer, transport: httpx.BaseTransport | None = None) -> TrytonErp:
    user = demo_data.INTEGRATION_USER
    return TrytonErp(TrytonClient(server.url, SANDBOX, user["login"], user["password"], transport=transport),
                     regions=demo_data.subdivision_regions())


def _request() -> SalesOrderRequest:
    order_id = f"it{uuid.uuid4().hex[:10]}"
    lines = [("BRG-UCP205", 2), ("SEN-PHO-DIFF", 3)]
    return SalesOrderRequest(
        reference=order_reference(order_id, "PLANT-S"), order_id=order_id, account_id="C-1001", plant="PLANT-S",
        currency="EUR", ship_to_id="RIS-STR",
        lines=tuple(SalesOrderLine(line_no=n, sku=sku, quantity=Decimal(q),
                                   unit_price=demo_data.contract_price(MAIN, "C-1001", sku, q))
                    for n, (sku, q) in enumerate(lines, 1)))


def _sales(server: TrytonServer, reference: str) -> list[tuple[int, str]]:
    with TrytonClient(server.url, SANDBOX, demo_data.ADMIN["login"], demo_data.ADMIN["password"]) as admin:
        rows = admin.call("sale.sale", "search_read", [("reference", "=", reference)], 0, None, None, ["state"])
    return [(r["id"], r["state"]) for r in rows]


@pytest.mark.tryton
@pytest.mark.timeout(900)
@pytest.mark.parametrize(("method", "lose"), [
    ("model.sale.sale.confirm", "answer"),  # Tryton confirmed, the hub never heard: outcome unknown
    ("model.sale.sale.quote", "request"),  # a crash between create and quote: a draft is left
    ("model.sale.sale.create", "answer"),  # created, but the hub does not know the id
])
def test_a_submission_that_lost_a_call_is_completed_by_the_retry_without_a_second_sale(
    tryton_server: TrytonServer, method: str, lose: str
) -> None:
    request = _request()
    flaky = _erp(tryton_server, FlakyTransport(method, lose))

    with pytest.raises(Unavailable):
        flaky.submit_orders([request])
    (result,) = flaky.submit_orders([request])  # the hub's retry, same adapter

    assert result.outcome is SubmitOutcome.ACCEPTED and result.reconciled, result
    (sale,) = _sales(tryton_server, request.reference)
    assert sale == (int(result.erp_order_id or 0), "processing")


def test_an_unreachable_tryton_is_unavailable_and_unhealthy() -> None:
    client = TrytonClient(f"http://127.0.0.1:{free_port()}", "main", "ordersync", "x", connect_timeout=1)
    erp = TrytonErp(client)
    with pytest.raises(Unavailable):
        erp.accounts()
    health = erp.health()
    assert not health.ok and "TrytonUnavailable" in health.detail


def test_an_answer_that_is_not_json_rpc_is_a_protocol_error() -> None:
    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>proxy error page</html>")

    client = TrytonClient("http://erp.test", "main", "ordersync", "x", transport=httpx.MockTransport(garbage))
    with pytest.raises(ProtocolError):
        TrytonErp(client).plants()


def test_a_server_error_is_unavailable() -> None:
    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, content=b"maintenance")

    client = TrytonClient("http://erp.test", "main", "ordersync", "x", transport=httpx.MockTransport(failing))
    with pytest.raises(Unavailable):
        TrytonErp(client).submit_orders([_request()])
