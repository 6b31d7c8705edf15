"""One GraphQL request the way Shopify answers it: validate (nothing runs on an invalid document), price,
meter against the shop's bucket, execute against the real Admin schema, refund what the answer did not
use, and report the cost in ``extensions``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import graphql
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
)

from . import bulk, fulfillment, inventory, orders, pricing, queries, subscriptions  # noqa: F401  (resolvers)
from .cost import SINGLE_QUERY_MAX, Bucket, actual_cost, requested_cost
from .registry import Context, field_resolver, install, never_awaitable, type_resolver
from .schema import documents, load_schema
from .state import ShopState

Body = dict[str, Any]
RATE_LIMIT_DOCS = "https://shopify.dev/api/usage/rate-limits"


@dataclass
class Meter:
    """What the shop's API has been asked and charged."""

    calls: int = 0
    points: int = 0
    throttled: int = 0
    mutations_by_name: Counter[str] = field(default_factory=Counter)


class Executor:
    def __init__(self, shop: ShopState, version: str, bucket: Bucket) -> None:
        self.shop = shop
        self.version = version
        self.schema = load_schema(version)
        install(self.schema)
        self.documents = documents(version)
        self.bucket = bucket
        self.meter = Meter()

    def execute(self, query: str, variables: dict[str, Any] | None, operation_name: str | None,
                base_url: str) -> tuple[int, Body]:
        document, errors = self.documents.get(query)
        with self.shop.lock:
            self.meter.calls += 1
            if errors or document is None:
                return 200, {"errors": [e.formatted for e in errors]}
            operation = graphql.get_operation_ast(document, operation_name)
            if operation is None:
                message = f"No operation named {operation_name!r}" if operation_name else \
                    "An operation name is required"
                return 200, {"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}
            return 200, self._metered(document, operation, dict(variables or {}), base_url)

    def _metered(self, document: DocumentNode, operation: OperationDefinitionNode, variables: dict[str, Any],
                 base_url: str) -> Body:
        """Price the operation, let it through the bucket (or not), run it, charge what it returned."""
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        requested = requested_cost(self.schema, operation, fragments, variables)
        if requested > SINGLE_QUERY_MAX:
            return {"errors": [_max_cost(requested)]}
        if not self.bucket.take(requested):
            self.meter.throttled += 1
            return {"errors": [{"message": "Throttled", "extensions": {
                "code": "THROTTLED", "documentation": RATE_LIMIT_DOCS}}],
                "extensions": {"cost": self._cost(requested, None)}}
        result = graphql.execute(
            self.schema, document, context_value=Context(self.shop, base_url, self.version),
            variable_values=variables, operation_name=operation.name.value if operation.name else None,
            field_resolver=field_resolver, type_resolver=type_resolver, is_awaitable=never_awaitable)
        assert isinstance(result, graphql.ExecutionResult)
        actual = min(requested, actual_cost(self.schema, operation, fragments, variables, result.data))
        self.bucket.refund(requested - actual)
        self.meter.points += actual
        if operation.operation is OperationType.MUTATION and result.data is not None:
            self.meter.mutations_by_name.update(
                s.name.value for s in operation.selection_set.selections if isinstance(s, FieldNode))
        body: Body = {"errors": [_format(e) for e in result.errors]} if result.errors else {}
        body["data"] = result.data
        body["extensions"] = {"cost": self._cost(requested, actual)}
        return body

    def _cost(self, requested: int, actual: int | None) -> Body:
        return {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": self.bucket.status()}


def _format(error: GraphQLError) -> Body:
    formatted = dict(error.formatted)
    if error.original_error is not None and not isinstance(error.original_error, GraphQLError):
        # an unexpected failure in the double itself: say so, as Shopify says INTERNAL_SERVER_ERROR
        formatted["extensions"] = {"code": "INTERNAL_SERVER_ERROR",
                                   "exception": f"{type(error.original_error).__name__}: {error.original_error}"}
    return formatted


def _max_cost(cost: int) -> Body:
    return {
        "message": f"Query cost is {cost}, which exceeds the single query max cost limit ({SINGLE_QUERY_MAX}).\n\n"
                   "See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\n"
                   "cost of a query is calculated.\n\nTo query larger amounts of data with fewer limits, bulk "
                   "operations should be used instead.\nSee https://shopify.dev/tutorials/perform-bulk-operations"
                   "-with-admin-api for usage details.\n",
        "extensions": {"code": "MAX_COST_EXCEEDED", "cost": cost, "maxCost": SINGLE_QUERY_MAX},
    }
