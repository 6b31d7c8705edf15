"""Shopify's own Admin schema, per API version, and the parsed-and-validated documents sent to it.

The introspection files are large (0.25 s to build a schema), so each version is built once per process;
validating a document against it costs a millisecond or more, so each distinct query string is parsed and
validated once and its outcome reused (the connector sends the same few documents thousands of times).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
from collections import OrderedDict
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import graphql
from graphql import DocumentNode, GraphQLError, GraphQLScalarType, GraphQLSchema

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
VERSIONS = ("2026-07", "2026-10")


def iso(value: dt.datetime) -> str:
    """Shopify's timestamp format: UTC, second precision, a ``Z``."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _serialize_datetime(value: Any) -> Any:
    return iso(value) if isinstance(value, dt.datetime) else value


def _serialize_str(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal | int) and not isinstance(value, bool) else value


# custom scalars come out of an introspection result without a serializer: state stays typed (datetime,
# Decimal) and turns into Shopify's JSON spelling only on the way out
_SERIALIZERS = {
    "DateTime": _serialize_datetime,
    "Decimal": _serialize_str,
    "Money": _serialize_str,
    "UnsignedInt64": _serialize_str,
    "URL": str,
}


@cache
def load_schema(version: str) -> GraphQLSchema:
    """The Admin schema of ``version`` as Shopify publishes it, with serializers for its custom scalars."""
    path = SCHEMA_DIR / f"admin_{version}.json.gz"
    if not path.is_file():
        raise ValueError(f"no Admin schema for API version {version!r} (have {', '.join(VERSIONS)})")
    with gzip.open(path) as f:
        introspection = json.load(f)["data"]
    schema = graphql.build_client_schema(introspection, assume_valid=True)
    for name, serialize in _SERIALIZERS.items():
        scalar = schema.type_map.get(name)
        if isinstance(scalar, GraphQLScalarType):
            # graphql-core 3.3 coerces output with coerce_output_value; 3.2 with serialize
            scalar.serialize = serialize  # type: ignore[method-assign,assignment]
            scalar.coerce_output_value = serialize  # type: ignore[assignment]
    return schema


@cache
def documents(version: str) -> Documents:
    """The document cache of a version, shared by every double of the process (tests make many)."""
    return Documents(load_schema(version))


class Documents:
    """Parsed and validated documents by query string (least recently used evicted past ``size``)."""

    def __init__(self, schema: GraphQLSchema, size: int = 512) -> None:
        self._schema = schema
        self._size = size
        self._cache: OrderedDict[str, tuple[DocumentNode | None, list[GraphQLError]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, query: str) -> tuple[DocumentNode | None, list[GraphQLError]]:
        """The document and its validation errors (a syntax error yields no document)."""
        with self._lock:
            hit = self._cache.get(query)
            if hit is not None:
                self._cache.move_to_end(query)
                return hit
        result = self._compile(query)
        with self._lock:
            self._cache[query] = result
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return result

    def _compile(self, query: str) -> tuple[DocumentNode | None, list[GraphQLError]]:
        try:
            document = graphql.parse(query)
        except GraphQLError as error:
            return None, [error]
        return document, list(graphql.validate(self._schema, document))
