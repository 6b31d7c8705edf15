"""Keyset (cursor) pagination for the list endpoints.

Why keysets and not offsets: a buyer pages through history while new orders arrive; an offset then
shows a row twice or skips one, a keyset does neither, and its cost does not grow with the page number.
The cursor is the sort key of the last row of a page, base64-encoded JSON: opaque to clients (they
only hand it back), and harmless to tamper with, because the account filter applies to every page.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Query

from ordersync.api.problems import Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"page size (at most {MAX_LIMIT})")]
Cursor = Annotated[str | None, Query(max_length=500, description="``next_cursor`` of the previous page")]


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, dt.datetime) else v for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[type]) -> list[Any]:
    """The sort key in ``cursor``, one value per kind (``dt.datetime`` or ``str``); 422 if it is not a
    cursor this API made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("wrong shape")
        out: list[Any] = []
        for kind, value in zip(kinds, values, strict=True):
            if not isinstance(value, str):
                raise ValueError("not a string")
            if kind is dt.datetime:
                parsed = dt.datetime.fromisoformat(value)
                if parsed.tzinfo is None:
                    raise ValueError("naive time")
                out.append(parsed.astimezone(dt.UTC))
            else:
                out.append(value)
        return out
    except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError) as exc:
        raise Problem(422, "Invalid cursor", "pass the next_cursor of a previous page unchanged",
                      type_="https://ordersync.dev/problems/invalid-cursor") from exc
