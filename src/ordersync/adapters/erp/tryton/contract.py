"""What the adapter reads of Tryton's records, as drift is measured against (``docs/contracts.md``).

Tryton answers only the fields asked for, so these models list the fields of ``documents.py``'s reads with
the types the adapter relies on; they are open (``extra="allow"``: Tryton adds ``id`` and the related
records of dotted names, ``currency.`` for ``currency.code``). A type that changes after an upgrade of
Tryton or of a module is recorded as drift of source ``tryton.<model>``; the read goes on as before (a
value the adapter cannot use fails the call, which the flows retry and dead-letter with a case).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Currency(_Open):
    code: str


class _Party(_Open):
    name: str | None = None


class _Carrier(_Open):
    party: _Party | None = Field(default=None, alias="party.")


class _Record(_Open):
    id: int
    write_date: dt.datetime | None = None
    create_date: dt.datetime | None = None


class SaleRow(_Record):
    reference: str | None = None
    number: str | None = None
    state: str
    party: int | None = None
    warehouse: int | None = None
    currency: _Currency | None = Field(default=None, alias="currency.")
    lines: list[int] = []
    shipments: list[int] = []
    invoices: list[int] = []


class ShipmentRow(_Record):
    state: str
    number: str | None = None
    warehouse: int | None = None
    outgoing_moves: list[int] = []
    effective_date: dt.date | None = None
    carrier: _Carrier | None = Field(default=None, alias="carrier.")
    shipping_reference: str | None = None


class InvoiceRow(_Record):
    number: str | None = None
    state: str
    party: int | None = None
    currency: _Currency | None = Field(default=None, alias="currency.")
    untaxed_amount: Decimal | None = None
    tax_amount: Decimal | None = None
    total_amount: Decimal | None = None
    amount_to_pay: Decimal | None = None
    lines: list[int] = []
    lines_to_pay: list[int] = []
    invoice_date: dt.date | None = None


#: the schema each model's rows are measured against, by Tryton model
SCHEMAS: dict[str, dict[str, Any]] = {
    model: row.model_json_schema(mode="validation", by_alias=True)
    for model, row in (("sale.sale", SaleRow), ("stock.shipment.out", ShipmentRow), ("account.invoice", InvoiceRow))
}


def source(model: str) -> str:
    return f"tryton.{model}"
