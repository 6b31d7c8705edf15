"""Tryton's user warnings, read as business outcomes.

A warning aborts the whole RPC call (nothing is committed) and names itself:

* ``stock_quantity_warning_<sale line id>`` (trytond-sale-stock-quantity, on quote and on confirm): the
  forecast at the warehouse minus other quotations is below a line's quantity;
* ``<md5 of "sale.sale,<id>">.credit_limit_amount`` (trytond-account-credit-limit via
  ``res.user.warning.format``, on confirm): the party would exceed its credit limit; ``.credit_limit_dunning``
  likewise for a blocking dunning.

So a warning raised by a call on a batch of sales tells which sale it concerns, and acknowledging it ahead
(``res.user.warning.skip(name)``) is possible once the ids are known.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal, InvalidOperation
from enum import Enum

from ordersync.adapters.erp.tryton.rpc import TrytonUserWarning

STOCK_PREFIX = "stock_quantity_warning_"
_RECORD_WARNING = re.compile(r"^(?P<digest>[0-9a-f]{32})\.(?P<kind>\w+)$")
_FIRST_NUMBER = re.compile(r"\((-?[\d.,\s\u00a0\u202f]+)")


class WarningKind(Enum):
    STOCK = "stock"
    CREDIT = "credit"
    OTHER = "other"


def record_warning_name(model: str, record_id: int, kind: str) -> str:
    """The name Tryton gives a warning about one saved record (``res.user.warning.format``)."""
    digest = hashlib.md5(f"{model},{record_id}".encode()).hexdigest()  # Tryton names warnings this way (not security)
    return f"{digest}.{kind}"


def credit_warning_name(sale_id: int) -> str:
    """The name of the credit limit warning raised when confirming sale ``sale_id``."""
    return record_warning_name("sale.sale", sale_id, "credit_limit_amount")


def stock_warning_name(line_id: int) -> str:
    """The name of the stock quantity warning of sale line ``line_id``."""
    return f"{STOCK_PREFIX}{line_id}"


def kind_of(warning: TrytonUserWarning) -> WarningKind:
    if warning.name.startswith(STOCK_PREFIX):
        return WarningKind.STOCK
    match = _RECORD_WARNING.match(warning.name)
    if match and match["kind"].startswith("credit_limit"):
        return WarningKind.CREDIT
    return WarningKind.OTHER


def stock_line_id(warning: TrytonUserWarning) -> int | None:
    """The sale line a stock warning is about."""
    suffix = warning.name.removeprefix(STOCK_PREFIX)
    return int(suffix) if warning.name.startswith(STOCK_PREFIX) and suffix.isdigit() else None


def sale_of_record_warning(warning: TrytonUserWarning, sale_ids: list[int]) -> int | None:
    """Which of ``sale_ids`` a ``<md5>.<kind>`` warning was formatted for, if any."""
    match = _RECORD_WARNING.match(warning.name)
    if not match:
        return None
    return next((i for i in sale_ids if record_warning_name("sale.sale", i, match["kind"]) == warning.name), None)


def forecast_in_message(message: str) -> Decimal | None:
    """The forecast quantity in the English stock warning ("The forcast quantity (2 u) for line ..."),
    a fallback for when it cannot be computed."""
    match = _FIRST_NUMBER.search(message)
    if not match:
        return None
    text = re.sub(r"[\s\u00a0\u202f,]", "", match[1])
    try:
        return Decimal(text)
    except InvalidOperation:
        return None
