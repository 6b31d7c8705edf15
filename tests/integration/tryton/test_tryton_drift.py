"""What the Tryton adapter reads is measured against the fields it uses (docs/contracts.md): a real
trytond's answers fit exactly, and a changed type of a field we use is reported, once per read."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest

from ordersync.adapters.erp.tryton import contract
from ordersync.adapters.erp.tryton.adapter import TrytonErp
from ordersync.adapters.erp.tryton.documents import Documents
from ordersync.adapters.erp.tryton.rpc import TrytonClient
from ordersync.devkit import demo_data
from ordersync.devkit.tryton.server import TrytonServer
from ordersync.domain.drift import Finding, detect
from ordersync.ports.erp import SalesOrderLine, SalesOrderRequest, SubmitOutcome, order_reference
from tests.integration.tryton.conftest import SANDBOX

MAIN = demo_data.profile("main")


class Findings:
    """An observer that keeps what it was shown and what drifted (the hub's records it in the store)."""

    def __init__(self) -> None:
        self.sources: list[str] = []
        self.found: list[tuple[str, Finding]] = []

    def observe(self, source: str, schema: Mapping[str, Any], payloads: Sequence[Any]) -> None:
        self.sources.append(source)
        self.found += [(source, f) for p in payloads for f in detect(dict(schema), p)]


@pytest.mark.tryton
@pytest.mark.timeout(900)
def test_a_real_tryton_answers_the_fields_the_adapter_reads_with_the_types_it_expects(
    tryton_server: TrytonServer
) -> None:
    seen = Findings()
    user = demo_data.INTEGRATION_USER
    erp = TrytonErp(TrytonClient(tryton_server.url, SANDBOX, user["login"], user["password"]),
                    regions=demo_data.subdivision_regions(), observer=seen)
    order_id = f"dr{uuid.uuid4().hex[:10]}"
    request = SalesOrderRequest(
        reference=order_reference(order_id, "PLANT-S"), order_id=order_id, account_id="C-1001", plant="PLANT-S",
        currency="EUR", ship_to_id="RIS-STR",
        lines=(SalesOrderLine(line_no=1, sku="BRG-UCP205", quantity=Decimal(2),
                              unit_price=demo_data.contract_price(MAIN, "C-1001", "BRG-UCP205", 2)),))
    (result,) = erp.submit_orders([request])
    assert result.outcome is SubmitOutcome.ACCEPTED, result
    found = erp.order(request.reference)
    assert found is not None and found.shipments  # a confirmed sale has its shipment
    erp.changes_since(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30))
    assert {"tryton.sale.sale", "tryton.stock.shipment.out"} <= set(seen.sources)
    assert seen.found == []


class ScriptedClient:
    """Answers ``search_read`` of sales with the rows given (as the RPC client decodes them)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def call(self, model: str, method: str, *args: Any) -> list[dict[str, Any]]:
        assert (model, method) == ("sale.sale", "search_read")
        return self.rows


def _sale(**changes: Any) -> dict[str, Any]:
    at = dt.datetime(2026, 12, 5, 10, 0)
    return {"id": 7, "reference": "OS-o1-PLANT-S", "number": "SO7", "state": "processing", "party": 3,
            "warehouse": 1, "currency.": {"id": 1, "code": "EUR"}, "lines": [11, 12], "shipments": [5],
            "invoices": [], "write_date": at, "create_date": at, **changes}


def test_sale_rows_are_shown_to_the_observer_and_a_changed_type_is_found() -> None:
    seen = Findings()
    documents = Documents(ScriptedClient([_sale(), _sale(id=8, party="C-1001"), _sale(id=9, party="C-1002")]),
                          directory=None, observer=seen)  # type: ignore[arg-type]
    rows = documents.sales([])
    assert [r["id"] for r in rows] == [7, 8, 9]  # the read goes on: drift is recorded beside it
    assert seen.sources == ["tryton.sale.sale"]
    assert [(s, f.field, f.kind, f.expected, f.seen) for s, f in seen.found][:1] == [
        ("tryton.sale.sale", "$.party", "type_changed", "integer/null", "string")]


def test_dates_and_decimals_decoded_by_the_rpc_client_fit_as_strings_and_numbers() -> None:
    invoice = {"id": 4, "number": "INV4", "state": "posted", "party": 3, "currency.": {"id": 1, "code": "EUR"},
               "untaxed_amount": Decimal("10.00"), "tax_amount": Decimal("1.90"), "total_amount": Decimal("11.90"),
               "amount_to_pay": Decimal("11.90"), "lines": [1], "lines_to_pay": [2],
               "invoice_date": dt.date(2026, 12, 5), "write_date": None, "create_date": dt.datetime(2026, 12, 5)}
    assert detect(contract.SCHEMAS["account.invoice"], invoice) == []
    assert [f.field for f in detect(contract.SCHEMAS["account.invoice"], {**invoice, "total_amount": [1]})] == [
        "$.total_amount"]
