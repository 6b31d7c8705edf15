"""Which function resolves which field, and what every resolver can reach through ``info.context``.

Fields without an entry are read straight from the dict (or attribute) of their parent object, so only
computed fields (connections, lookups, mutations) need a resolver.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeGuard, TypeVar

from graphql import GraphQLAbstractType, GraphQLResolveInfo, GraphQLSchema

from .state import Obj, ShopState

Resolver = Callable[..., Any]
R = TypeVar("R", bound=Resolver)
Info = GraphQLResolveInfo[Any]

RESOLVERS: dict[tuple[str, str], Resolver] = {}


@dataclass
class Context:
    """One request: the shop, the URL the request came to (for bulk result URLs), whether this is a bulk
    run (connections without ``first`` return everything) and the idempotency key of the mutation."""

    state: ShopState
    base_url: str
    api_version: str
    bulk: bool = False


def resolves(type_name: str, field_name: str) -> Callable[[R], R]:
    """Register a resolver for ``type_name.field_name``."""

    def register(fn: R) -> R:
        RESOLVERS[(type_name, field_name)] = _tolerant(fn)
        return fn

    return register


def _tolerant(fn: Resolver) -> Resolver:
    """``fn`` called with only the arguments it names: the schema gives many fields optional arguments
    (with defaults, so always passed) that the double ignores."""
    parameters = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return fn
    names = set(parameters)

    def call(source: Any, info: Info, **args: Any) -> Any:
        return fn(source, info, **{k: v for k, v in args.items() if k in names})

    return call


def field_resolver(source: Any, info: Info, **args: Any) -> Any:
    """Fields without a resolver of their own: the parent object's key (or attribute) of that name."""
    if isinstance(source, dict):
        return source.get(info.field_name)
    return getattr(source, info.field_name, None)


def install(schema: GraphQLSchema) -> None:
    """Hand the registered resolvers to the schema's fields (once per schema; graphql-core then calls them
    directly, sparing a lookup on every field of every node)."""
    for (type_name, field_name), fn in RESOLVERS.items():
        kind = schema.get_type(type_name)
        field = getattr(kind, "fields", {}).get(field_name)
        if field is not None:
            field.resolve = fn


def never_awaitable(value: Any) -> TypeGuard[Awaitable[Any]]:
    """Every resolver of the double is synchronous: spare graphql-core the check on each field."""
    return False


def type_resolver(value: Any, info: Info, abstract_type: GraphQLAbstractType) -> str | None:
    """Unions and interfaces: every object names its own type."""
    return value.get("__typename") if isinstance(value, dict) else None


def ctx(info: Info) -> Context:
    context = info.context
    assert isinstance(context, Context)
    return context


def state(info: Info) -> ShopState:
    return ctx(info).state


def user_error(field: list[str] | None, message: str, code: str | None = None) -> Obj:
    return {"field": field, "message": message, "code": code}
