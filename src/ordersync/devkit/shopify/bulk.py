"""Bulk queries: ``bulkOperationRunQuery`` runs a query over everything (connections need no ``first``)
and leaves its result as JSONL, one line per connection node; a node of a nested connection is a line of
its own that names its parent line's ``id`` in ``__parentId`` (the nearest enclosing connection node: for
``productVariants { ... inventoryItem { inventoryLevels } }`` that is the variant). The operation reports
``COMPLETED`` from the first poll on; its ``url`` is ``<base>/bulk/<id>.jsonl`` on the double's app.
Only the mutation is charged, as on Shopify.
"""

from __future__ import annotations

import json
from typing import Any

import graphql
from graphql import OperationType

from .registry import Context, Info, ctx, field_resolver, never_awaitable, resolves, state, type_resolver, user_error
from .state import Obj, ShopState


def _failure(message: str) -> Obj:
    return {"bulkOperation": None, "userErrors": [user_error(["query"], message, "INVALID")]}


@resolves("Mutation", "bulkOperationRunQuery")
def run_query(_: Any, info: Info, query: str, groupObjects: bool = False, **__: Any) -> Obj:
    context = ctx(info)
    try:
        document = graphql.parse(query)
    except graphql.GraphQLError as error:
        return _failure(f"Invalid bulk query: {error.message}")
    errors = graphql.validate(info.schema, document)
    if errors:
        return _failure(f"Invalid bulk query: {errors[0].message}")
    operation = graphql.get_operation_ast(document)
    if operation is None or operation.operation is not OperationType.QUERY:
        return _failure("Bulk queries must be a single query operation.")
    result = graphql.execute(info.schema, document, context_value=Context(context.state, context.base_url,
                                                                          context.api_version, bulk=True),
                             field_resolver=field_resolver, type_resolver=type_resolver,
                             is_awaitable=never_awaitable)
    assert isinstance(result, graphql.ExecutionResult)
    data: Obj = result.data or {}
    lines, roots = to_lines(data)
    if roots is None:
        return _failure("Bulk queries must contain at least one connection.")
    shop = state(info)
    operation_obj = shop.new(
        "BulkOperation", status="CREATED", type="QUERY", query=query, createdAt=shop.now(), completedAt=None,
        errorCode="INTERNAL_SERVER_ERROR" if result.errors else None,
        objectCount=0, rootObjectCount=0, fileSize=None, url=None, partialDataUrl=None,
        _jsonl="".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines), _lines=len(lines),
        _roots=roots, _base=context.base_url)
    shop.bulk_operations[operation_obj["id"]] = operation_obj
    return {"bulkOperation": operation_obj, "userErrors": []}


def _complete(shop: ShopState, operation: Obj | None) -> Obj | None:
    """A bulk run finishes by the time anyone asks about it."""
    if operation is not None and operation["status"] in ("CREATED", "RUNNING"):
        failed = operation["errorCode"] is not None
        operation.update(status="FAILED" if failed else "COMPLETED", completedAt=shop.now(),
                         objectCount=operation["_lines"], rootObjectCount=operation["_roots"],
                         fileSize=len(operation["_jsonl"].encode()),
                         url=None if failed else f"{operation['_base']}/bulk/{operation['legacyResourceId']}.jsonl")
    return operation


@resolves("QueryRoot", "bulkOperation")
def bulk_operation(_: Any, info: Info, id: str) -> Obj | None:
    shop = state(info)
    return _complete(shop, shop.find(id, "BulkOperation"))


@resolves("QueryRoot", "currentBulkOperation")
def current_bulk_operation(_: Any, info: Info, type: str = "QUERY") -> Obj | None:
    shop = state(info)
    latest = [op for op in shop.bulk_operations.values() if op["type"] == type]
    return _complete(shop, latest[-1]) if latest else None


def jsonl(shop: ShopState, number: int) -> str | None:
    """The result file of bulk operation ``number`` (None before it completed or if there is none)."""
    operation = shop.find(f"gid://shopify/BulkOperation/{number}", "BulkOperation")
    if operation is None or operation["status"] != "COMPLETED":
        return None
    text: str = operation["_jsonl"]
    return text


def _is_connection(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and set(value) <= {"edges", "nodes", "pageInfo"}


def _nodes(connection: Obj) -> list[Obj]:
    if connection.get("edges") is not None:
        return [edge["node"] for edge in connection["edges"] if edge.get("node") is not None]
    return [node for node in connection.get("nodes") or [] if node is not None]


def to_lines(data: Obj) -> tuple[list[Obj], int | None]:
    """The JSONL lines of a bulk result and the number of root objects (None: there was no connection)."""
    lines: list[Obj] = []
    roots: int | None = None
    for value in data.values():
        connections: list[Obj] = []
        if _is_connection(value):
            connections.append(value)
        elif isinstance(value, dict):
            _strip(value, connections)
        for connection in connections:
            roots = (roots or 0) + len(_nodes(connection))
            _emit(connection, None, lines)
    return lines, roots


def _emit(connection: Obj, parent_id: str | None, lines: list[Obj]) -> None:
    for node in _nodes(connection):
        children: list[Obj] = []
        line = _strip(node, children)
        if parent_id is not None:
            line["__parentId"] = parent_id
        lines.append(line)
        for child in children:
            _emit(child, node.get("id", parent_id), lines)


def _strip(obj: Obj, children: list[Obj]) -> Obj:
    """``obj`` without its nested connections (collected in ``children``)."""
    out: Obj = {}
    for key, value in obj.items():
        if _is_connection(value):
            children.append(value)
        elif isinstance(value, dict):
            out[key] = _strip(value, children)
        elif isinstance(value, list):
            out[key] = [_strip(v, children) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    return out
