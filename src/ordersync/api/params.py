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
