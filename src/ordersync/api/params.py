"""Input types shared by the API routes (query parameters and request bodies).

Dates and times must be ISO 8601 text (``2026-03-01``, ``2026-03-01T08:00:00Z``). pydantic's lax mode
would also take a number as a Unix timestamp (``placed_to=0`` or ``"requested_date": 0`` meant
1970-01-01); a value typed wrongly should be a 422 naming the field, not an order dated 1970.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Query
from pydantic import AwareDatetime, BeforeValidator

Text = Annotated[str | None, Query(min_length=1, max_length=120)]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso(what: str, pattern: re.Pattern[str], whole: bool, example: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, str):
            ok = bool(pattern.fullmatch(value) if whole else pattern.match(value))
        else:  # a date or datetime object passes; a number is not read as a timestamp
            ok = not isinstance(value, int | float)
        if not ok:
            raise ValueError(f"must be an ISO 8601 {what} (text), like {example}")
        return value
    return check


IsoDate = Annotated[dt.date, BeforeValidator(_iso("date", _DATE, True, "2026-03-01"))]
IsoDateTime = Annotated[dt.datetime, BeforeValidator(_iso("date and time", _DATETIME, False, "2026-03-01T08:00:00Z"))]
IsoAwareDateTime = Annotated[AwareDatetime, BeforeValidator(_iso("date and time with a UTC offset", _DATETIME, False,
                                                                 "2026-03-01T08:00:00Z"))]

__all__ = ["IsoAwareDateTime", "IsoDate", "IsoDateTime", "Text"]


def _tender_currencies() -> frozenset[str]:
    """ISO 4217 codes that are legal tender somewhere today (CLDR's data through Babel): EUR, USD, XOF ...
    but not XXX ("no currency"), XAU (gold) or XTS (testing), nor withdrawn ones like DEM."""
    from babel.core import get_global
    from babel.numbers import get_territory_currencies

    today = dt.date.today()
    return frozenset(code for territory in get_global("territory_currencies")
                     for code in get_territory_currencies(territory, start_date=today, tender=True))


_TENDER: frozenset[str] = frozenset()


def _currency(value: Any) -> Any:
    global _TENDER
    if not isinstance(value, str):
        raise ValueError("must be an ISO 4217 currency code (text), like EUR")
    if not _TENDER:
        _TENDER = _tender_currencies()
    if value.upper() != value and value.upper() in _TENDER:
        raise ValueError(f"currency codes are upper case (ISO 4217): {value.upper()}, not {value}")
    if value not in _TENDER:
        raise ValueError(f"{value} is not a currency one can pay in (ISO 4217 codes in use, like EUR or USD)")
    return value


#: an ISO 4217 code of a currency in use (``EUR``); lower case, test, metal and withdrawn codes are refused
Currency = Annotated[str, BeforeValidator(_currency)]
