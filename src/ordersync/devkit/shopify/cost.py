"""Shopify's calculated query cost and the leaky bucket that meters it.

Requested cost is known before execution, from the document and its variables: a scalar or enum costs 0,
an object 1, a connection 2 plus ``first`` (or ``last``) times the cost of one node, a list of objects
fetched by ``ids`` that many objects, an interface or union the most expensive of the fragments selected
on it, a mutation 10 plus its selection. The actual cost is the same sum over what came back, so a
connection that returned 3 of 250 requested nodes is charged for 3 and the difference is refunded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    get_named_type,
    is_leaf_type,
    value_from_ast_untyped,
)

from .clock import Clock

#: restore rate (points a second) and bucket size of each plan
PLANS: dict[str, tuple[float, float]] = {
    "standard": (100.0, 1000.0),
    "advanced": (200.0, 2000.0),
    "plus": (1000.0, 10000.0),
    "enterprise": (2000.0, 20000.0),
}
#: no single query may ask for more than this, whatever the plan
SINGLE_QUERY_MAX = 1000
MUTATION_COST = 10


Parts = tuple[list[tuple[FieldNode, GraphQLNamedType]], dict[str, list[tuple[FieldNode, GraphQLNamedType]]]]


@dataclass(frozen=True)
class _Walk:
    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    memo: dict[tuple[int, str], Parts] = field(default_factory=dict)  # the same selection for each of 250 nodes
    fixed: dict[tuple[int, str], int | None] = field(default_factory=dict)

    def arg(self, node: FieldNode, name: str) -> Any:
        for argument in node.arguments or ():
            if argument.name.value == name:
                return self.value(argument.value)
        return None

    def value(self, node: ValueNode) -> Any:
        return value_from_ast_untyped(node, dict(self.variables))

    def parts(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType) -> Parts:
        """Fields selected on ``parent`` itself, and fields selected in fragments on other types, by type."""
        key = (id(selection_set), parent.name)
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = self._parts(selection_set, parent)
        return found

    def _parts(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType) -> Parts:
        own: list[tuple[FieldNode, GraphQLNamedType]] = []
        other: dict[str, list[tuple[FieldNode, GraphQLNamedType]]] = {}
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                own.append((selection, parent))
                continue
            if isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is None:
                    continue
                condition, inner = fragment.type_condition.name.value, fragment.selection_set
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition.name.value if selection.type_condition else parent.name
                inner = selection.selection_set
            else:
                continue
            target = self.schema.get_type(condition) or parent
            sub_own, sub_other = self.parts(inner, target)
            (own if target is parent else other.setdefault(condition, [])).extend(sub_own)
            for name, fields in sub_other.items():
                other.setdefault(name, []).extend(fields)
        return own, other


def _field_def(parent: GraphQLNamedType, name: str) -> GraphQLField | None:
    fields = getattr(parent, "fields", None)
    return fields.get(name) if fields else None


def _unwrap(kind: Any) -> GraphQLNamedType:
    named: GraphQLNamedType | None = get_named_type(kind)
    assert named is not None
    return named


def _is_list(field: GraphQLField) -> bool:
    kind = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    return isinstance(kind, GraphQLList)


def is_connection(named: GraphQLNamedType) -> bool:
    """A Relay connection type (sized by ``first``/``last``)."""
    return named.name.endswith("Connection") and isinstance(named, GraphQLObjectType) and "pageInfo" in named.fields


def requested_cost(schema: GraphQLSchema, operation: OperationDefinitionNode,
                   fragments: Mapping[str, FragmentDefinitionNode], variables: Mapping[str, Any]) -> int:
    """The cost Shopify calculates for ``operation`` before running it."""
    walk = _Walk(schema, fragments, {**_defaults(operation), **variables})
    root = schema.mutation_type if operation.operation is OperationType.MUTATION else schema.query_type
    assert root is not None
    own, _ = walk.parts(operation.selection_set, root)
    mutation = operation.operation is OperationType.MUTATION
    return sum(_requested_field(walk, node, parent, root_of_mutation=mutation) for node, parent in own)


def _defaults(operation: OperationDefinitionNode) -> dict[str, Any]:
    return {d.variable.name.value: value_from_ast_untyped(d.default_value)
            for d in operation.variable_definitions or () if d.default_value is not None}


def _requested_selection(walk: _Walk, selection_set: SelectionSetNode | None, parent: GraphQLNamedType) -> int:
    own, other = walk.parts(selection_set, parent)
    cost = sum(_requested_field(walk, node, p) for node, p in own)
    return cost + max((sum(_requested_field(walk, node, p) for node, p in fields) for fields in other.values()),
                      default=0)


def _requested_field(walk: _Walk, node: FieldNode, parent: GraphQLNamedType, root_of_mutation: bool = False) -> int:
    field = _field_def(parent, node.name.value)
    if field is None:
        return 0
    named = get_named_type(field.type)
    if is_leaf_type(named):
        return 0
    if root_of_mutation:
        return MUTATION_COST + _requested_selection(walk, node.selection_set, named)
    if is_connection(named):
        size = walk.arg(node, "first") or walk.arg(node, "last") or 0
        return 2 + int(size) * _node_cost(walk, node, named)
    child = 1 + _requested_selection(walk, node.selection_set, named)
    ids = walk.arg(node, "ids") if _is_list(field) else None
    return child * len(ids) if isinstance(ids, list) else child


def _node_cost(walk: _Walk, node: FieldNode, connection: GraphQLNamedType) -> int:
    """The cost of one node of a connection, whether selected as ``nodes`` or ``edges { node }``."""
    item = _unwrap(connection.fields["nodes"].type)  # type: ignore[attr-defined]
    edge = _unwrap(connection.fields["edges"].type)  # type: ignore[attr-defined]
    best = 0
    for sub, _ in walk.parts(node.selection_set, connection)[0]:
        if sub.name.value == "nodes":
            best = max(best, 1 + _requested_selection(walk, sub.selection_set, item))
        elif sub.name.value == "edges":
            for inner, _ in walk.parts(sub.selection_set, edge)[0]:
                if inner.name.value == "node":
                    best = max(best, 1 + _requested_selection(walk, inner.selection_set, item))
    return best


def actual_cost(schema: GraphQLSchema, operation: OperationDefinitionNode,
                fragments: Mapping[str, FragmentDefinitionNode], variables: Mapping[str, Any],
                data: Mapping[str, Any] | None) -> int:
    """The cost of what was returned: connections charged for the nodes that came back."""
    walk = _Walk(schema, fragments, {**_defaults(operation), **variables})
    root = schema.mutation_type if operation.operation is OperationType.MUTATION else schema.query_type
    assert root is not None
    mutation = operation.operation is OperationType.MUTATION
    total = 0
    for node, parent in walk.parts(operation.selection_set, root)[0]:
        value = (data or {}).get(_key(node))
        if mutation:
            total += MUTATION_COST + _actual_selection(walk, node.selection_set, _named(parent, node), value)
        else:
            total += _actual_field(walk, node, parent, value)
    return total


def _key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


def _named(parent: GraphQLNamedType, node: FieldNode) -> GraphQLNamedType:
    field = _field_def(parent, node.name.value)
    return get_named_type(field.type) if field else parent


def _fixed_cost(walk: _Walk, selection_set: SelectionSetNode | None, parent: GraphQLNamedType) -> int | None:
    """The cost of a selection that cannot vary with the answer (no connection, no ``ids`` list below it),
    else None; known once per request, however many nodes share the selection."""
    key = (id(selection_set), parent.name)
    if key not in walk.fixed:
        own, other = walk.parts(selection_set, parent)
        varies = any(_varies(walk, node, p) for node, p in own + [f for group in other.values() for f in group])
        walk.fixed[key] = None if varies else _requested_selection(walk, selection_set, parent)
    return walk.fixed[key]


def _varies(walk: _Walk, node: FieldNode, parent: GraphQLNamedType) -> bool:
    field = _field_def(parent, node.name.value)
    if field is None:
        return False
    named = _unwrap(field.type)
    if is_leaf_type(named):
        return False
    if is_connection(named) or (_is_list(field) and walk.arg(node, "ids") is not None):
        return True
    return _fixed_cost(walk, node.selection_set, named) is None


def _actual_selection(walk: _Walk, selection_set: SelectionSetNode | None, parent: GraphQLNamedType,
                      value: Any) -> int:
    if not isinstance(value, Mapping):
        return 0
    fixed = _fixed_cost(walk, selection_set, parent)
    if fixed is not None:
        return fixed
    own, other = walk.parts(selection_set, parent)
    fields = own + [f for group in other.values() for f in group]
    return sum(_actual_field(walk, node, p, value.get(_key(node))) for node, p in fields if _key(node) in value)


def _actual_field(walk: _Walk, node: FieldNode, parent: GraphQLNamedType, value: Any) -> int:
    field = _field_def(parent, node.name.value)
    if field is None or value is None:
        return 0
    named = get_named_type(field.type)
    if is_leaf_type(named):
        return 0
    if is_connection(named):
        return 2 + _actual_nodes(walk, node, named, value)
    if isinstance(value, list):
        costs = [1 + _actual_selection(walk, node.selection_set, named, item) for item in value if item is not None]
        if isinstance(walk.arg(node, "ids"), list):
            return sum(costs)
        return max(costs, default=1)
    return 1 + _actual_selection(walk, node.selection_set, named, value)


def _actual_nodes(walk: _Walk, node: FieldNode, connection: GraphQLNamedType, value: Mapping[str, Any]) -> int:
    item = _unwrap(connection.fields["nodes"].type)  # type: ignore[attr-defined]
    edge = _unwrap(connection.fields["edges"].type)  # type: ignore[attr-defined]
    best = 0
    for sub, _ in walk.parts(node.selection_set, connection)[0]:
        found = value.get(_key(sub)) or []
        if sub.name.value == "nodes":
            best = max(best, _sum(1 + _actual_selection(walk, sub.selection_set, item, n) for n in found))
        elif sub.name.value == "edges":
            for inner, _ in walk.parts(sub.selection_set, edge)[0]:
                if inner.name.value == "node":
                    nodes = [e.get(_key(inner)) for e in found if isinstance(e, Mapping)]
                    best = max(best, _sum(1 + _actual_selection(walk, inner.selection_set, item, n) for n in nodes))
    return best


def _sum(values: Iterable[int]) -> int:
    return sum(values)


class Bucket:
    """One shop's leaky bucket on the injected clock: it refills at ``restore_rate`` points a second up to
    ``maximum``; a request is let through only if its requested cost is still available."""

    def __init__(self, clock: Clock, plan: str) -> None:
        if plan not in PLANS:
            raise ValueError(f"unknown plan {plan!r} (one of {', '.join(PLANS)})")
        self.restore_rate, self.maximum = PLANS[plan]
        self._clock = clock
        self._available = self.maximum
        self._at = clock.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        self._available = min(self.maximum, self._available + (now - self._at) * self.restore_rate)
        self._at = now

    def take(self, cost: int) -> bool:
        """Withdraw ``cost`` points if they are there; False (and nothing withdrawn) if not."""
        with self._lock:
            self._refill()
            if cost > self._available:
                return False
            self._available -= cost
            return True

    def drain(self) -> None:
        """Empty the bucket now (a shop whose budget other apps or earlier work used up: benchmarks)."""
        with self._lock:
            self._available = 0.0
            self._at = self._clock.monotonic()

    def refund(self, points: int) -> None:
        with self._lock:
            self._available = min(self.maximum, self._available + points)

    def status(self) -> dict[str, Any]:
        """``throttleStatus`` as Shopify reports it."""
        with self._lock:
            self._refill()
            return {"maximumAvailable": self.maximum, "currentlyAvailable": int(self._available),
                    "restoreRate": self.restore_rate}
