"""Keyset pages over the store: rows after a cursor's sort key (see ``ordersync.api.pagination``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, or_


def older_than(columns: Sequence[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows after ``values`` in descending order of ``columns`` (a row-value comparison spelled out,
    so that each value binds with its column's type)."""
    clauses = []
    for i, column in enumerate(columns):
        clauses.append(and_(*(columns[j] == values[j] for j in range(i)), column < values[i]))
    return or_(*clauses)
