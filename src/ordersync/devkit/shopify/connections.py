"""Cursor pagination and search filters the way Shopify's connections behave.

A cursor is opaque to clients (base64 of JSON) and holds the sort key of the item it points at, not an
offset: a page boundary stays put when items are added or when an order moves up the ``UPDATED_AT`` order
while a sweep pages through it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from graphql import GraphQLError

Obj = dict[str, Any]
SortKey = tuple[Any, ...]

#: Shopify's page size limit
MAX_PAGE = 250


def encode_cursor(key: SortKey) -> str:
    raw = json.dumps([k.isoformat() if isinstance(k, dt.datetime) else k for k in key], separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> SortKey:
    try:
        raw = json.loads(base64.b64decode(cursor.encode(), validate=True))
        return tuple(dt.datetime.fromisoformat(k) if isinstance(k, str) and _ISO.match(k) else k for k in raw)
    except (ValueError, TypeError) as error:
        raise GraphQLError(f"Invalid cursor for current pagination sort: {cursor!r}",
                           extensions={"code": "BAD_REQUEST"}) from error


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T")


def paginate(items: Sequence[Obj], key: Callable[[Obj], SortKey], *, first: int | None = None,
             last: int | None = None, after: str | None = None, before: str | None = None,
             reverse: bool = False, unbounded: bool = False, **_: Any) -> Obj:
    """One page of ``items`` as a connection (``nodes``, ``edges``, ``pageInfo``).

    ``unbounded`` is for bulk operations, which page through everything without ``first``/``last``.
    """
    if first is None and last is None and not unbounded:
        raise GraphQLError("you must provide one of first or last", extensions={"code": "BAD_REQUEST"})
    for size in (first, last):
        if size is not None and (size < 0 or size > MAX_PAGE):
            raise GraphQLError(f"The first/last argument must be between 0 and {MAX_PAGE}",
                               extensions={"code": "BAD_REQUEST"})
    keyed = sorted(((key(item), item) for item in items), key=lambda pair: pair[0], reverse=reverse)
    if after is not None:
        mark = decode_cursor(after)
        keyed = [p for p in keyed if (p[0] < mark if reverse else p[0] > mark)]
    if before is not None:
        mark = decode_cursor(before)
        keyed = [p for p in keyed if (p[0] > mark if reverse else p[0] < mark)]
    has_next = has_previous = False
    if first is not None and len(keyed) > first:
        keyed, has_next = keyed[:first], True
    if last is not None and len(keyed) > last:
        keyed, has_previous = keyed[len(keyed) - last:], True
    edges = [{"cursor": encode_cursor(k), "node": item} for k, item in keyed]
    return {
        "nodes": [item for _, item in keyed],
        "edges": edges,
        "pageInfo": {
            "hasNextPage": has_next or (before is not None),
            "hasPreviousPage": has_previous or (after is not None),
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


def by_id(item: Obj) -> SortKey:
    return (item["legacyResourceId"],)


_TERM = re.compile(r"""(?:(-?)(\w+):(>=|<=|>|<|=)?('[^']*'|"[^"]*"|\S+))""")


def parse_search(query: str | None) -> list[list[tuple[str, str, str, bool]]]:
    """Shopify search syntax, the part the connector uses: ``field:value``, ``field:>=value``, ``-field:v``,
    terms ANDed (``AND`` optional), groups ORed. Yields groups of (field, operator, value, negated)."""
    groups = []
    for part in re.split(r"\s+OR\s+", (query or "").strip()):
        terms = []
        for negated, name, op, raw in _TERM.findall(part):
            quoted = len(raw) > 1 and raw[0] in "'\"" and raw[-1] == raw[0]
            terms.append((name.lower(), op or "=", raw[1:-1] if quoted else raw, negated == "-"))
        if terms:
            groups.append(terms)
    return groups


def search(items: Iterable[Obj], query: str | None, fields: Mapping[str, Callable[[Obj], Any]]) -> list[Obj]:
    """The items matching a search query; filters on fields not in ``fields`` are ignored (as Shopify
    ignores an unknown filter, with a search warning)."""
    groups = parse_search(query)
    if not groups:
        return list(items)
    return [item for item in items if any(all(_term(item, term, fields) for term in group) for group in groups)]


def _term(item: Obj, term: tuple[str, str, str, bool], fields: Mapping[str, Callable[[Obj], Any]]) -> bool:
    name, op, raw, negated = term
    getter = fields.get(name)
    if getter is None:
        return True
    actual = getter(item)
    wanted: Any = raw
    if isinstance(actual, dt.datetime):
        wanted = parse_time(raw)
    elif isinstance(actual, bool):
        wanted = raw.lower() == "true"
    elif isinstance(actual, int):
        wanted = int(raw) if raw.lstrip("-").isdigit() else raw
    elif isinstance(actual, str):
        actual, wanted = actual.lower(), raw.lower()
    return compare(actual, op, wanted) != negated


def compare(actual: Any, op: str, wanted: Any) -> bool:
    if actual is None or type(actual) is not type(wanted):
        return False
    if op == ">=":
        return bool(actual >= wanted)
    if op == "<=":
        return bool(actual <= wanted)
    if op == ">":
        return bool(actual > wanted)
    if op == "<":
        return bool(actual < wanted)
    return bool(actual == wanted)


def parse_time(value: str) -> dt.datetime:
    """A search timestamp: ISO 8601 with or without zone (UTC assumed), or a date."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise GraphQLError(f"Invalid date in search query: {value!r}", extensions={"code": "BAD_REQUEST"}) from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
