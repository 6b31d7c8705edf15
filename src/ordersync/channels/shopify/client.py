"""The Shopify Admin GraphQL client, paced to the shop's calculated-cost budget.

Shopify meters an app's GraphQL calls to a shop with a leaky bucket of *points* (``maximumAvailable``,
refilled at ``restoreRate`` points a second); a query's cost is calculated from its document before it
runs (``requestedQueryCost``) and charged for what came back (``actualQueryCost``). Every answer says
where the bucket stands (``extensions.cost.throttleStatus``); a call that asks for more than is left is
answered ``THROTTLED`` and not run.

:class:`CostBudget` is our copy of that bucket, one per shop in the process (:func:`budget_for`), shared
by every thread that calls the shop. Before a call the client reserves its expected cost and sleeps for
as long as the bucket needs to hold it; each answer's ``throttleStatus`` then replaces our estimate, so
several processes (or a wrong plan in the settings) correct themselves after one call. A ``THROTTLED``
answer is pacing, not failure: the client waits for the points and sends again.

Failures: :class:`ShopifyError` is an answer that will not change by asking again (an invalid query,
``MAX_COST_EXCEEDED``, a refused token); :class:`ShopifyUnavailable` is "try later" (network, timeouts,
5xx, 429 after the retries) and the caller keeps its work. A mutation that may have reached Shopify is
resent only if it is idempotent (``@idempotent``, or the caller says ``idempotent=True``): a
``fulfillmentCreate`` whose answer was lost is reported unavailable, not sent twice.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    parse,
    value_from_ast_untyped,
)

from ordersync.channels.shopify import operations as ops
from ordersync.channels.shopify.operations import API_VERSION

log = logging.getLogger("ordersync.shopify")

#: (bucket maximum, restore per second) of each Shopify plan's GraphQL Admin API limit
PLANS: dict[str, tuple[float, float]] = {
    "standard": (1000, 100),
    "advanced": (2000, 200),
    "plus": (10000, 1000),
    "enterprise": (20000, 2000),
}
#: the longest one call waits for points (throttled answers and pacing together) before it gives up
THROTTLE_CAP_SECONDS = 600.0
#: the longest a Retry-After is honoured for
RETRY_AFTER_CAP_SECONDS = 600.0
#: the first backoff after a failed attempt, doubled each time up to BACKOFF_MAX_SECONDS
BACKOFF_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
#: the cost assumed of a document the estimator cannot read (Shopify's answer corrects it after one call)
UNKNOWN_COST = 50
#: the page size assumed for a connection whose ``first``/``last`` is not known
UNKNOWN_PAGE = 100
MUTATION_COST = 10
#: GraphQL error codes Shopify answers on HTTP 200 that mean "its side failed, ask again"
RETRYABLE_CODES = frozenset({"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"})


class ShopifyError(Exception):
    """Shopify refused the call (GraphQL errors other than THROTTLED, 4xx such as a refused token).
    Asking again will not help; ``errors`` are Shopify's error objects."""

    def __init__(self, message: str, errors: Sequence[Mapping[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors: list[dict[str, Any]] = [dict(e) for e in errors or ()]


class ShopifyUnavailable(ShopifyError):
    """Shopify could not be reached or kept failing (network, timeout, 5xx, 429, throttled too long):
    try later; the caller keeps its work."""


# -- the cost budget -------------------------------------------------------------------------------------


class CostBudget:
    """One shop's GraphQL cost bucket as this process sees it; thread-safe.

    :meth:`acquire` reserves a request's cost and says how long to wait before sending it (the points
    may be reserved ahead: a second caller waits behind the first). :meth:`observe` puts in what Shopify
    said after the call; requests reserved but not answered yet stay subtracted from Shopify's figure.
    """

    def __init__(self, maximum: float = 1000, restore_rate: float = 100, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if maximum <= 0 or restore_rate <= 0:
            raise ValueError("a cost budget needs a positive maximum and restore rate")
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._maximum = float(maximum)
        self._restore_rate = float(restore_rate)
        self._available = float(maximum)
        self._at = monotonic()
        self._in_flight = 0.0  # reserved by acquire() and not yet observed

    @property
    def maximum(self) -> float:
        return self._maximum

    @property
    def restore_rate(self) -> float:
        return self._restore_rate

    @property
    def available(self) -> float:
        """Points available now (negative while more is reserved than the bucket holds)."""
        with self._lock:
            self._restore()
            return self._available

    @property
    def in_flight(self) -> float:
        """Points reserved by calls that have not been answered yet."""
        with self._lock:
            return self._in_flight

    def _restore(self) -> None:
        now = self._monotonic()
        elapsed = max(0.0, now - self._at)
        self._available = min(self._maximum, self._available + elapsed * self._restore_rate)
        self._at = now

    def acquire(self, cost: float) -> float:
        """Reserve ``cost`` points; the seconds to wait before sending (0 if they are there now).

        A cost above the bucket's maximum is reserved as the maximum (Shopify refuses such a query itself
        with MAX_COST_EXCEEDED; waiting for points that can never be there would not help)."""
        cost = min(max(0.0, float(cost)), self._maximum)
        with self._lock:
            self._restore()
            self._available -= cost
            self._in_flight += cost
            if self._available >= 0:
                return 0.0
            return -self._available / self._restore_rate

    def observe(self, throttle_status: Mapping[str, Any] | None, actual_cost: float | None = None,
                requested: float | None = None) -> None:
        """What Shopify said of the bucket after a call.

        ``throttle_status``: the answer's ``extensions.cost.throttleStatus`` (maximumAvailable,
        currentlyAvailable, restoreRate), which replaces our figures; empty when the call got no answer.
        ``requested``: the points this call reserved with :meth:`acquire` (released now; the other
        reservations not answered yet stay subtracted from Shopify's ``currentlyAvailable``).
        ``actual_cost``: what Shopify charged; without a throttle status, the difference between the
        reservation and the charge is given back (a connection that returned fewer nodes than asked)."""
        status = throttle_status or {}
        with self._lock:
            self._restore()
            if requested is not None:
                self._in_flight = max(0.0, self._in_flight - max(0.0, float(requested)))
            maximum, rate = _number(status.get("maximumAvailable")), _number(status.get("restoreRate"))
            if maximum is not None and maximum > 0:
                self._maximum = maximum
            if rate is not None and rate > 0:
                self._restore_rate = rate
            current = _number(status.get("currentlyAvailable"))
            if current is not None:
                self._available = min(self._maximum, current) - self._in_flight
            elif actual_cost is not None and requested is not None:
                self._available = min(self._maximum, self._available + float(requested) - float(actual_cost))

    def __repr__(self) -> str:
        return (f"CostBudget(maximum={self._maximum:g}, restore_rate={self._restore_rate:g}, "
                f"available={self.available:.1f})")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


_budgets: dict[str, CostBudget] = {}
_budgets_lock = threading.Lock()


def budget_for(shop: str, plan: str = "standard") -> CostBudget:
    """The process's one budget for ``shop`` (created for ``plan`` the first time; Shopify's answers
    correct the plan's figures if they are wrong)."""
    if plan not in PLANS:
        raise ValueError(f"unknown Shopify plan {plan!r} (one of {', '.join(PLANS)})")
    key = shop.strip().lower()
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            maximum, rate = PLANS[plan]
            budget = _budgets[key] = CostBudget(maximum, rate)
        return budget


# -- the cost estimate ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _parsed(document: str) -> DocumentNode | None:
    try:
        return parse(document, no_location=True)
    except GraphQLError:
        return None


def _operation(document: DocumentNode) -> OperationDefinitionNode | None:
    return next((d for d in document.definitions if isinstance(d, OperationDefinitionNode)), None)


def estimate_cost(document: str, variables: Mapping[str, Any] | None = None) -> int:
    """A static estimate of Shopify's requested cost, without the schema: a scalar costs 0, an object 1,
    a connection (a field with ``first``/``last``) 2 plus that many times one node, a field with ``ids``
    that many objects, a union or interface the dearest of its fragments, a mutation 10 plus its
    selection. Only the first call of a document uses it; Shopify's ``requestedQueryCost`` after that."""
    parsed = _parsed(document)
    operation = _operation(parsed) if parsed is not None else None
    if parsed is None or operation is None:
        return UNKNOWN_COST
    values: dict[str, Any] = {
        d.variable.name.value: value_from_ast_untyped(d.default_value)
        for d in operation.variable_definitions or () if d.default_value is not None
    }
    values.update(variables or {})
    fragments = {d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)}
    walk = _Estimate(fragments, values)
    if operation.operation is OperationType.MUTATION:
        return sum(MUTATION_COST + walk.selection(f.selection_set) for f in walk.fields(operation.selection_set))
    return walk.selection(operation.selection_set)


@dataclass
class _Estimate:
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]

    def fields(self, selection_set: SelectionSetNode | None) -> list[FieldNode]:
        return [s for s in selection_set.selections if isinstance(s, FieldNode)] if selection_set else []

    def selection(self, selection_set: SelectionSetNode | None, depth: int = 0) -> int:
        if selection_set is None or depth > 30:
            return 0
        own = 0
        by_type: dict[str, int] = {}
        for s in selection_set.selections:
            if isinstance(s, FieldNode):
                own += self.field(s, depth)
                continue
            if isinstance(s, FragmentSpreadNode):
                fragment = self.fragments.get(s.name.value)
                if fragment is None:
                    continue
                condition, inner = fragment.type_condition.name.value, fragment.selection_set
            elif isinstance(s, InlineFragmentNode):
                condition = s.type_condition.name.value if s.type_condition else ""
                inner = s.selection_set
            else:  # pragma: no cover - no other selection kinds exist
                continue
            cost = self.selection(inner, depth + 1)
            if condition:
                by_type[condition] = by_type.get(condition, 0) + cost
            else:
                own += cost
        return own + max(by_type.values(), default=0)

    def argument(self, node: FieldNode, name: str) -> Any:
        for argument in node.arguments or ():
            if argument.name.value == name:
                return self.value(argument.value)
        return None

    def value(self, node: ValueNode) -> Any:
        try:
            return value_from_ast_untyped(node, dict(self.variables))
        except (TypeError, ValueError):  # pragma: no cover - a malformed literal
            return None

    def field(self, node: FieldNode, depth: int) -> int:
        if node.selection_set is None:
            return 0
        size = self.argument(node, "first")
        if size is None:
            size = self.argument(node, "last")
        if size is not None or _has_argument(node, "first", "last"):
            size = size if isinstance(size, int) and not isinstance(size, bool) else UNKNOWN_PAGE
            one = 0
            for sub in self.fields(node.selection_set):
                if sub.name.value == "nodes":
                    one = max(one, 1 + self.selection(sub.selection_set, depth + 1))
                elif sub.name.value == "edges":
                    for inner in self.fields(sub.selection_set):
                        if inner.name.value == "node":
                            one = max(one, 1 + self.selection(inner.selection_set, depth + 1))
            return 2 + max(0, size) * one
        cost = 1 + self.selection(node.selection_set, depth + 1)
        ids = self.argument(node, "ids")
        return cost * len(ids) if isinstance(ids, list) else cost


def _has_argument(node: FieldNode, *names: str) -> bool:
    return any(a.name.value in names for a in node.arguments or ())


def _is_idempotent(document: str) -> bool:
    """A query, or a mutation whose every field carries ``@idempotent``: safe to send twice."""
    parsed = _parsed(document)
    operation = _operation(parsed) if parsed is not None else None
    if operation is None:
        return False
    if operation.operation is not OperationType.MUTATION:
        return True
    fields = [s for s in operation.selection_set.selections if isinstance(s, FieldNode)]
    return bool(fields) and all(any(d.name.value == "idempotent" for d in f.directives or ()) for f in fields)


_NAME = re.compile(r"^\s*(query|mutation|subscription)\s+(\w+)")


def _name_of(document: str) -> str:
    found = _NAME.search(document)
    return found.group(2) if found else "anonymous query"


# -- the client ------------------------------------------------------------------------------------------


@dataclass
class ClientStats:
    """What a client has done: ``calls`` requests sent to Shopify (each retry and each throttled one
    included), ``points`` Shopify charged (actualQueryCost), ``throttled`` THROTTLED answers,
    ``waited_seconds`` slept for points, ``retries`` resends after failures."""

    calls: int = 0
    points: float = 0.0
    throttled: int = 0
    waited_seconds: float = 0.0
    retries: int = 0


class _Retry(Exception):
    """One failed attempt that may be tried again."""

    def __init__(self, reason: str, *, sent: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.sent, self.retry_after = reason, sent, retry_after


class ShopifyClient:
    """A shop's Admin GraphQL API at one version, paced to the shop's cost budget; thread-safe."""

    def __init__(self, shop: str, token: str, *, base_url: str | None = None, version: str = API_VERSION,
                 budget: CostBudget | None = None, plan: str = "standard",
                 transport: httpx.BaseTransport | None = None, timeout: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, max_attempts: int = 6) -> None:
        self.shop = shop
        self.version = version
        self.url = f"{(base_url or 'https://' + shop).rstrip('/')}/admin/api/{version}/graphql.json"
        self.budget = budget if budget is not None else budget_for(shop, plan)
        self.max_attempts = max(1, max_attempts)
        self.stats = ClientStats()
        self._token = token
        self._sleep = sleep
        self._random = random.Random()
        self._lock = threading.Lock()
        self._costs: dict[str, float] = {}  # document -> the requestedQueryCost Shopify last gave it
        # no default headers: the access token goes to the GraphQL endpoint only, never to a bulk result URL
        self._http = httpx.Client(transport=transport, timeout=timeout)

    # -- one call --------------------------------------------------------------------------------------

    def execute(self, document: str, variables: Mapping[str, Any] | None = None, *, cost: float | None = None,
                idempotent: bool | None = None) -> dict[str, Any]:
        """Run one query or mutation and return its ``data`` (mutation ``userErrors`` included: the caller
        decides). ``cost``: the expected cost if the caller knows better than the estimate.
        ``idempotent``: whether the document may be resent after a failure that may have reached
        Shopify (default: queries and ``@idempotent`` mutations yes, other mutations no)."""
        payload = {"query": document, "variables": dict(variables or {})}
        name = _name_of(document)
        safe = _is_idempotent(document) if idempotent is None else idempotent
        expected = float(cost) if cost is not None else self._costs.get(document)
        if expected is None:
            expected = float(estimate_cost(document, variables))
        waited = 0.0  # seconds this call has waited for points
        floor = 0.0  # after a THROTTLED answer: the least wait Shopify's figures ask for
        attempt = 0
        while True:
            wait, floor = max(self.budget.acquire(expected), floor), 0.0
            if wait > 0:
                if waited + wait > THROTTLE_CAP_SECONDS:
                    self.budget.observe(None, requested=expected)
                    raise ShopifyUnavailable(f"Shopify {self.shop}: {name} would wait more than "
                                             f"{THROTTLE_CAP_SECONDS:.0f} s for {expected:g} points; try later")
                log.debug("Shopify %s: %s waits %.2f s for %g points", self.shop, name, wait, expected)
                self._pause(wait)
                waited += wait
            try:
                body = self._post(payload)
            except _Retry as failure:
                self.budget.observe(None, requested=expected)
                attempt += 1
                self._retry_or_raise(name, failure.reason, attempt, safe=safe or not failure.sent,
                                     retry_after=failure.retry_after)
                continue
            requested, status = self._account(document, body, expected)
            errors = _errors(body.get("errors"))
            if any(_code(e) == "THROTTLED" for e in errors):
                with self._lock:
                    self.stats.throttled += 1
                expected = requested if requested is not None else expected
                current, rate = _number(status.get("currentlyAvailable")), _number(status.get("restoreRate"))
                floor = max(0.05, (expected - current) / rate) if current is not None and rate else 1.0
                log.debug("Shopify %s: %s throttled (requested %g, available %s)", self.shop, name, expected,
                          "?" if current is None else f"{current:g}")
                continue
            if any(_code(e) in RETRYABLE_CODES for e in errors):
                attempt += 1
                self._retry_or_raise(name, f"{_code(errors[0])}: {errors[0].get('message', '')}", attempt,
                                     safe=safe, errors=errors)
                continue
            if errors:
                raise ShopifyError(f"Shopify {self.shop}: {name}: {_said(errors)}", errors)
            data = body.get("data")
            return data if isinstance(data, dict) else {}

    def _account(self, document: str, body: Mapping[str, Any], reserved: float) -> tuple[float | None, dict[str, Any]]:
        """Put an answer's ``extensions.cost`` into the budget and the stats; (requestedQueryCost,
        throttleStatus)."""
        extensions = body.get("extensions")
        charge = extensions.get("cost") if isinstance(extensions, dict) else None
        charge = charge if isinstance(charge, dict) else {}
        status = charge.get("throttleStatus")
        status = status if isinstance(status, dict) else {}
        requested, actual = _number(charge.get("requestedQueryCost")), _number(charge.get("actualQueryCost"))
        self.budget.observe(status, actual, requested=reserved)
        if requested is not None:
            self._costs[document] = requested
        if actual is not None:
            with self._lock:
                self.stats.points += actual
        return requested, status

    def _retry_or_raise(self, name: str, reason: str, attempt: int, *, safe: bool, retry_after: float | None = None,
                        errors: Sequence[Mapping[str, Any]] | None = None) -> None:
        """After failed attempt number ``attempt``: sleep before the next, or raise ShopifyUnavailable."""
        if not safe:
            raise ShopifyUnavailable(f"Shopify {self.shop}: {name} failed ({reason}) and is not sent again: it may "
                                     "have been applied; try later", errors)
        if attempt >= self.max_attempts:
            raise ShopifyUnavailable(f"Shopify {self.shop}: {name} failed {attempt} time(s), last: {reason}; "
                                     "try later", errors)
        delay = self._backoff(attempt, retry_after)
        log.warning("Shopify %s: %s failed (%s); attempt %d of %d, again in %.1f s", self.shop, name, reason, attempt,
                    self.max_attempts, delay)
        with self._lock:
            self.stats.retries += 1
        self._sleep(delay)

    def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            self.stats.waited_seconds += seconds
        self._sleep(seconds)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(0.0, retry_after), RETRY_AFTER_CAP_SECONDS)
        delay = min(BACKOFF_MAX_SECONDS, BACKOFF_SECONDS * 2.0 ** (attempt - 1))
        return delay * self._random.uniform(0.75, 1.0)

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """One request; Shopify's JSON answer (HTTP 200), a _Retry, or a ShopifyError."""
        with self._lock:
            self.stats.calls += 1
        headers = {"X-Shopify-Access-Token": self._token, "Content-Type": "application/json",
                   "Accept": "application/json"}
        try:
            response = self._http.post(self.url, json=payload, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}", sent=False) from None
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}", sent=True) from None
        code = response.status_code
        if code == 429:
            raise _Retry("HTTP 429", sent=False, retry_after=_retry_after(response.headers.get("Retry-After")))
        if code >= 500:
            raise _Retry(f"HTTP {code}", sent=True, retry_after=_retry_after(response.headers.get("Retry-After")))
        try:
            body = response.json()
        except ValueError:
            body = None
        if code >= 400:
            errors = _errors(body.get("errors") if isinstance(body, dict) else None) or [
                {"message": response.text[:200] or response.reason_phrase}]
            raise ShopifyError(f"Shopify {self.shop}: HTTP {code}: {_said(errors)}", errors)
        if not isinstance(body, dict):
            raise _Retry(f"HTTP {code} with a body that is not a JSON object", sent=True)
        return body

    # -- pages and bulk ----------------------------------------------------------------------------------

    def pages(self, document: str, variables: Mapping[str, Any], path: Sequence[str], *,
              page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every node of the connection at ``path`` in ``data``, a page at a time (``$first`` is
        ``page_size``, ``$after`` the last page's ``pageInfo.endCursor``). Nothing if a step of the path
        is null (an id that names nothing)."""
        after: str | None = None
        while True:
            data = self.execute(document, {**variables, "first": page_size, "after": after})
            connection: Any = data
            for step in path:
                connection = connection.get(step) if isinstance(connection, dict) else None
            if not isinstance(connection, dict):
                return
            if "nodes" in connection:
                nodes = connection.get("nodes") or []
            else:
                nodes = [e.get("node") for e in connection.get("edges") or [] if isinstance(e, dict)]
            yield from (n for n in nodes if n is not None)
            info = connection.get("pageInfo") or {}
            cursor = info.get("endCursor")
            if not info.get("hasNextPage") or not cursor or cursor == after:
                return
            after = cursor

    def bulk(self, query: str, *, poll_seconds: float = 1.0, timeout: float = 3600) -> Iterator[dict[str, Any]]:
        """Run ``query`` as a bulk operation and yield each line of its JSONL result as a dict (children
        carry ``__parentId``). FAILED, CANCELED or EXPIRED → ShopifyError; not done within ``timeout``
        seconds of polling → ShopifyUnavailable."""
        started = self.execute(ops.BULK_RUN, {"query": query}, idempotent=False)
        run = started.get("bulkOperationRunQuery") or {}
        problems = run.get("userErrors") or []
        operation = run.get("bulkOperation") or {}
        if problems or not operation.get("id"):
            raise ShopifyError(f"Shopify {self.shop}: the bulk query was refused: {_said(problems)}", problems)
        op_id = operation["id"]
        polled = 0.0
        while True:
            status = self.execute(ops.BULK_STATUS, {"id": op_id}).get("bulkOperation") or {}
            state = status.get("status")
            if state == "COMPLETED":
                break
            if state in ("FAILED", "CANCELED", "CANCELING", "EXPIRED"):
                raise ShopifyError(f"Shopify {self.shop}: bulk operation {op_id} {state} "
                                   f"(errorCode {status.get('errorCode')})", [status])
            if polled >= timeout:
                raise ShopifyUnavailable(f"Shopify {self.shop}: bulk operation {op_id} still {state} after "
                                         f"{timeout:g} s; try later")
            self._sleep(poll_seconds)
            polled += poll_seconds
        url = status.get("url")
        if not url:  # no objects: Shopify gives no file
            return
        yield from self._download(url)

    def _download(self, url: str) -> Iterator[dict[str, Any]]:
        """The JSONL at ``url`` (a signed storage URL: sent without the access token), line by line.
        A failure before the first line is retried; a stream broken later cannot be resumed without
        repeating lines, so it is ShopifyUnavailable."""
        attempt = 0
        while True:
            yielded = False
            try:
                with self._http.stream("GET", url) as response:
                    code = response.status_code
                    if 400 <= code < 500 and code != 429:
                        raise ShopifyUnavailable(f"Shopify {self.shop}: the bulk result could not be read "
                                                 f"(HTTP {code}); try later")
                    if code < 400:
                        for line in response.iter_lines():
                            if line.strip():
                                yielded = True
                                yield json.loads(line)
                        return
                    reason = f"HTTP {code}"
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if yielded:
                    raise ShopifyUnavailable(f"Shopify {self.shop}: the bulk result broke off ({type(exc).__name__}: "
                                             f"{exc}); try later") from None
                reason = f"{type(exc).__name__}: {exc}"
            attempt += 1
            self._retry_or_raise("the bulk result", reason, attempt, safe=True)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ShopifyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _errors(value: Any) -> list[dict[str, Any]]:
    """Shopify's ``errors``: a list of error objects, or (REST-style, on a 401) one string."""
    if not value:
        return []
    if isinstance(value, str):
        return [{"message": value}]
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [e if isinstance(e, dict) else {"message": str(e)} for e in value]
    return [{"message": str(value)}]


def _code(error: Mapping[str, Any]) -> str | None:
    extensions = error.get("extensions")
    code = extensions.get("code") if isinstance(extensions, dict) else None
    return code if isinstance(code, str) else None


def _said(errors: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for e in errors[:3]:
        code = _code(e)
        message = str(e.get("message") or e)
        parts.append(f"{code}: {message}" if code else message)
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more if parts else "no detail"


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (a number or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
