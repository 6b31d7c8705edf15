"""Query parameter types shared by the API routes.

Dates and times in a query must be ISO 8601 text (``2026-03-01``, ``2026-03-01T08:00:00Z``). pydantic's
lax mode would also take a number as a Unix timestamp (``placed_to=0`` meant 1970-01-01); a filter
typed wrongly should be a 422 naming the parameter, not an empty page.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Query
from pydantic import BeforeValidator

Text = Annotated[str | None, Query(min_length=1, max_length=120)]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso(pattern: re.Pattern[str], example: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, str) and not (pattern.fullmatch(value) if pattern is _DATE else pattern.match(value)):
            raise ValueError(f"must be an ISO 8601 {'date' if pattern is _DATE else 'date and time'}, like {example}")
        return value
    return check


IsoDate = Annotated[dt.date, BeforeValidator(_iso(_DATE, "2026-03-01"))]
IsoDateTime = Annotated[dt.datetime, BeforeValidator(_iso(_DATETIME, "2026-03-01T08:00:00Z"))]

__all__ = ["IsoDate", "IsoDateTime", "Text"]
