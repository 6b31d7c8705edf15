"""The Shopify GraphQL client: paced to the shop's cost bucket (THROTTLED is waited out, never a failure),
retries that are safe, Shopify's refusals not retried, pages, bulk reads. Against a small fake of
Shopify's answers (an httpx.MockTransport with its own leaky bucket on a fake clock) and, at the end,
against the project's Shopify double."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ordersync.channels.shopify import operations as ops
from ordersync.channels.shopify.client import (
    PLANS,
    THROTTLE_CAP_SECONDS,
    ClientStats,
    CostBudget,
    ShopifyClient,
    ShopifyError,
    ShopifyUnavailable,
    budget_for,
    estimate_cost,
)

SHOP = "kestrel-b2b.myshopify.com"
TOKEN = "shpat_test"
QUERY = "query Thing($id: ID!) { node(id: $id) { id } }"
MUTATION = "mutation Make($x: String!) { thingCreate(x: $x) { thing { id } userErrors { field message } } }"
IDEMPOTENT = "mutation Make($x: String!, $k: String!) { thingCreate(x: $x) @idempotent(key: $k) { thing { id } } }"

Answer = Callable[[httpx.Request, dict[str, Any]], httpx.Response | None]


class Clock:
    """Fake time: ``sleep`` moves it on and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeShopify:
    """Shopify's GraphQL endpoint as far as the client can tell: a leaky bucket on the fake clock,
    ``extensions.cost`` in every answer, THROTTLED when a request asks for more than is left. ``script``
    holds answers (or exceptions) given before the normal one; ``costs`` the requested cost by operation
    name (10 unless said); ``data`` what each operation returns."""

    def __init__(self, clock: Clock, maximum: float = 1000, rate: float = 100) -> None:
        self.clock, self.maximum, self.rate = clock, maximum, rate
        self.available, self.at = maximum, clock.now
        self.costs: dict[str, float] = {}
        self.refund: dict[str, float] = {}  # points of the requested cost not charged
        self.data: dict[str, Any] = {}
        self.script: list[httpx.Response | Exception | Answer] = []
        self.requests: list[httpx.Request] = []
        self.throttled = 0
        self.lock = threading.Lock()

    def status(self) -> dict[str, float]:
        return {"maximumAvailable": self.maximum, "currentlyAvailable": self.available, "restoreRate": self.rate}

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            body = json.loads(request.content) if request.method == "POST" else {}
            while self.script:
                scripted = self.script.pop(0)
                if isinstance(scripted, Exception):
                    raise scripted
                if isinstance(scripted, httpx.Response):
                    return scripted
                answer = scripted(request, body)
                if answer is not None:
                    return answer
                break
            return self.answer(body)

    def answer(self, body: dict[str, Any]) -> httpx.Response:
        now = self.clock.now
        self.available = min(self.maximum, self.available + (now - self.at) * self.rate)
        self.at = now
        name = body["query"].split("(")[0].split("{")[0].split()[-1]
        requested = self.costs.get(name, 10)
        if requested > self.available + 1e-9:
            self.throttled += 1
            return httpx.Response(200, json={
                "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": None,
                                        "throttleStatus": self.status()}}})
        actual = requested - self.refund.get(name, 0)
        self.available -= actual
        data = self.data.get(name, {"ok": True})
        if callable(data):
            data = data(body.get("variables") or {})
        return httpx.Response(200, json={"data": data, "extensions": {"cost": {
            "requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": self.status()}}})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeShopify:
    return FakeShopify(clock)


def client_for(fake: FakeShopify, clock: Clock, **kwargs: Any) -> ShopifyClient:
    budget = kwargs.pop("budget", None) or CostBudget(fake.maximum, fake.rate, monotonic=clock.monotonic)
    return ShopifyClient(SHOP, TOKEN, budget=budget, transport=httpx.MockTransport(fake.handle), sleep=clock.sleep,
                         **kwargs)


def throttled_answer(requested: float, available: float, rate: float = 100) -> httpx.Response:
    return httpx.Response(200, json={
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": None, "throttleStatus": {
            "maximumAvailable": 1000.0, "currentlyAvailable": available, "restoreRate": rate}}}})


# -- the cost budget -------------------------------------------------------------------------------------


def test_budget_starts_full_and_restores_at_its_rate(clock: Clock) -> None:
    budget = CostBudget(1000, 100, monotonic=clock.monotonic)
    assert (budget.maximum, budget.restore_rate, budget.available) == (1000, 100, 1000)
    assert budget.acquire(400) == 0
    assert budget.available == 600
    clock.now += 2
    assert budget.available == 800
    clock.now += 100
    assert budget.available == 1000  # never above the maximum


def test_budget_reserves_ahead_so_later_callers_wait_behind_earlier_ones(clock: Clock) -> None:
    budget = CostBudget(1000, 100, monotonic=clock.monotonic)
    assert budget.acquire(900) == 0
    assert budget.acquire(300) == pytest.approx(2.0)  # 100 left, 200 short
    assert budget.acquire(100) == pytest.approx(3.0)  # behind the 300
    assert budget.available == pytest.approx(-300)
    clock.now += 3
    assert budget.available == pytest.approx(0)


def test_budget_caps_a_cost_above_its_maximum(clock: Clock) -> None:
    budget = CostBudget(1000, 100, monotonic=clock.monotonic)
    assert budget.acquire(5000) == 0
    assert budget.acquire(1) == pytest.approx(0.01)


def test_observe_takes_shopifys_figures_and_keeps_unanswered_reservations(clock: Clock) -> None:
    budget = CostBudget(1000, 100, monotonic=clock.monotonic)
    budget.acquire(100)
    budget.acquire(50)  # another thread's request, not answered yet
    assert budget.in_flight == 150
    # the first is answered: another process had used most of the bucket, the plan is Advanced
    budget.observe({"maximumAvailable": 2000.0, "currentlyAvailable": 400, "restoreRate": 200.0},
                   actual_cost=80, requested=100)
    assert (budget.maximum, budget.restore_rate, budget.in_flight) == (2000, 200, 50)
    assert budget.available == pytest.approx(350)
    budget.observe({"maximumAvailable": 2000.0, "currentlyAvailable": 390, "restoreRate": 200.0},
                   actual_cost=10, requested=50)
    assert budget.available == pytest.approx(390)
    assert budget.in_flight == 0


def test_observe_without_status_refunds_what_was_not_charged_and_releases_a_failed_call(clock: Clock) -> None:
    budget = CostBudget(1000, 100, monotonic=clock.monotonic)
    budget.acquire(300)
    budget.observe({}, actual_cost=120, requested=300)
    assert budget.available == pytest.approx(880)  # 300 reserved, 120 charged
    budget.acquire(100)
    budget.observe(None, requested=100)  # no answer: nothing refunded, the reservation released
    assert budget.available == pytest.approx(780)
    assert budget.in_flight == 0


def test_budget_is_thread_safe() -> None:
    budget = CostBudget(1_000_000, 1, monotonic=lambda: 0.0)  # no restoring: only the reservations count

    def take() -> None:
        for _ in range(2000):
            budget.acquire(1)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.available == 1_000_000 - 16_000
    assert budget.in_flight == 16_000


def test_budget_for_gives_one_budget_per_shop_for_its_plan() -> None:
    assert PLANS == {"standard": (1000, 100), "advanced": (2000, 200), "plus": (10000, 1000),
                     "enterprise": (20000, 2000)}
    plus = budget_for("budget-test-plus.myshopify.com", "plus")
    assert (plus.maximum, plus.restore_rate) == (10000, 1000)
    assert budget_for("Budget-Test-Plus.myshopify.com") is plus
    assert budget_for("budget-test-other.myshopify.com") is not plus
    a = ShopifyClient("budget-test-shared.myshopify.com", TOKEN, plan="advanced")
    b = ShopifyClient("budget-test-shared.myshopify.com", TOKEN, plan="advanced")
    try:
        assert a.budget is b.budget
        assert a.budget.maximum == 2000
    finally:
        a.close()
        b.close()
    with pytest.raises(ValueError):
        budget_for("budget-test-x.myshopify.com", "gold")


# -- the cost estimate -----------------------------------------------------------------------------------


def test_estimate_follows_shopifys_rules() -> None:
    assert estimate_cost(ops.SHOP) == 2  # shop and plan objects, scalars free
    # a connection: 2 + first x one node (an object of scalars: 1)
    assert estimate_cost(ops.ORDERS_UPDATED, {"first": 100}) == 102
    assert estimate_cost(ops.ORDERS_UPDATED, {"first": 25}) == 27
    # nodes(ids:): one object (1 + its inventory level 1 + quantities 1) per id
    assert estimate_cost(ops.ITEM_LEVELS, {"ids": ["a", "b", "c"], "locationId": "x"}) == 9
    # a mutation: 10 + what it selects
    assert estimate_cost(MUTATION) == 12
    # a union: the dearer fragment; a fragment spread counts as its fields
    assert estimate_cost("{ order(id: 1) { e { ... on A { x { y { z } } } ... on B { x { z } } } } }") == 1 + 1 + 2
    assert estimate_cost("{ order(id: 1) { ...F } } fragment F on Order { a { b } c(first: 3) { nodes { d } } }") \
        == 1 + 1 + (2 + 3 * 1)
    assert estimate_cost("not graphql at all {") == 50


# -- calls -----------------------------------------------------------------------------------------------


def test_execute_posts_the_document_with_the_token_and_returns_data(fake: FakeShopify, clock: Clock) -> None:
    fake.data["Thing"] = {"node": {"id": "gid://shopify/Order/1"}}
    with client_for(fake, clock) as client:
        assert client.execute(QUERY, {"id": "gid://shopify/Order/1"}) == {"node": {"id": "gid://shopify/Order/1"}}
    request = fake.requests[0]
    assert str(request.url) == f"https://{SHOP}/admin/api/{ops.API_VERSION}/graphql.json"
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    assert json.loads(request.content) == {"query": QUERY, "variables": {"id": "gid://shopify/Order/1"}}
    assert client.stats == ClientStats(calls=1, points=10, throttled=0, waited_seconds=0, retries=0)


def test_base_url_and_version(fake: FakeShopify, clock: Clock) -> None:
    with client_for(fake, clock, base_url="http://127.0.0.1:8123/", version="2026-10") as client:
        client.execute(QUERY, {"id": "1"})
    assert str(fake.requests[0].url) == "http://127.0.0.1:8123/admin/api/2026-10/graphql.json"


def test_calls_are_paced_to_the_bucket_and_never_throttled(fake: FakeShopify, clock: Clock) -> None:
    fake.costs["Thing"] = 300
    with client_for(fake, clock) as client:
        for _ in range(10):
            client.execute(QUERY, {"id": "1"}, cost=300)
    assert fake.throttled == 0
    assert client.stats.throttled == 0
    # 3,000 points from a bucket of 1,000 restored at 100/s: 2,000 points waited for = 20 s
    assert sum(clock.sleeps) == pytest.approx(20.0)
    assert client.stats.waited_seconds == pytest.approx(20.0)
    assert client.stats.points == 3000


def test_the_first_estimate_is_replaced_by_shopifys_requested_cost(fake: FakeShopify, clock: Clock) -> None:
    fake.costs["OrdersUpdated"] = 700  # Shopify says more than our estimate (102)
    fake.data["OrdersUpdated"] = {"orders": {"nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}}
    budget = CostBudget(1000, 100, monotonic=clock.monotonic)
    with client_for(fake, clock, budget=budget) as client:
        client.execute(ops.ORDERS_UPDATED, {"first": 100, "query": "x"})
        assert budget.available == pytest.approx(300)
        assert budget.acquire(0) == 0
        # the second call reserves 700, not 102: it waits for 400 points before sending
        client.execute(ops.ORDERS_UPDATED, {"first": 100, "query": "x"})
    assert clock.sleeps == [pytest.approx(4.0)]
    assert fake.throttled == 0


def test_throttled_is_waited_out_and_sent_again(fake: FakeShopify, clock: Clock, caplog: Any) -> None:
    fake.costs["Thing"] = 200
    fake.available = 50  # another process of ours used the bucket: our budget does not know
    caplog.set_level(logging.DEBUG, logger="ordersync.shopify")
    with client_for(fake, clock) as client:
        assert client.execute(QUERY, {"id": "1"}, cost=200) == {"ok": True}
    assert fake.throttled == 1
    assert len(fake.requests) == 2
    assert clock.sleeps == [pytest.approx((200 - 50) / 100)]
    assert client.stats.throttled == 1
    assert client.stats.calls == 2
    assert client.stats.retries == 0
    throttling = [r for r in caplog.records if "throttled" in r.getMessage()]
    assert throttling and all(r.levelno == logging.DEBUG for r in throttling)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_throttling_is_not_bounded_by_attempts(fake: FakeShopify, clock: Clock) -> None:
    fake.script = [throttled_answer(100, 0) for _ in range(20)]
    with client_for(fake, clock, max_attempts=2) as client:
        assert client.execute(QUERY, {"id": "1"}, cost=100) == {"ok": True}
    assert client.stats.throttled == 20
    assert len(fake.requests) == 21


def test_endless_throttling_gives_up_after_the_sanity_cap(fake: FakeShopify, clock: Clock) -> None:
    fake.script = [lambda req, body: throttled_answer(500, 0)] * 10_000
    with client_for(fake, clock) as client, pytest.raises(ShopifyUnavailable, match="would wait more than"):
        client.execute(QUERY, {"id": "1"}, cost=500)
    assert sum(clock.sleeps) <= THROTTLE_CAP_SECONDS
    assert sum(clock.sleeps) > THROTTLE_CAP_SECONDS - 10
    assert client.budget.in_flight == 0


@pytest.mark.parametrize("failure", [
    httpx.Response(502, text="Bad Gateway"),
    httpx.Response(503, text="Service Unavailable"),
    httpx.ConnectError("connection refused"),
    httpx.ReadTimeout("timed out"),
    httpx.Response(200, json={"errors": [{"message": "Internal error", "extensions": {
        "code": "INTERNAL_SERVER_ERROR"}}]}),
])
def test_a_query_is_retried_after_a_failure(fake: FakeShopify, clock: Clock, caplog: Any,
                                            failure: httpx.Response | Exception) -> None:
    fake.script = [failure, failure]
    caplog.set_level(logging.DEBUG, logger="ordersync.shopify")
    with client_for(fake, clock) as client:
        assert client.execute(QUERY, {"id": "1"}) == {"ok": True}
    assert len(fake.requests) == 3
    assert client.stats.retries == 2
    assert len(clock.sleeps) == 2
    assert 0.5 * 0.75 <= clock.sleeps[0] <= 0.5 and 1.0 * 0.75 <= clock.sleeps[1] <= 1.0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in warnings)
    assert "attempt 1 of 6" in warnings[0].getMessage()
    assert client.budget.in_flight == 0


def test_failures_beyond_max_attempts_are_unavailable(fake: FakeShopify, clock: Clock) -> None:
    fake.script = [httpx.Response(500) for _ in range(10)]
    with client_for(fake, clock, max_attempts=4) as client, pytest.raises(ShopifyUnavailable, match="4 time"):
        client.execute(QUERY, {"id": "1"})
    assert len(fake.requests) == 4
    assert client.stats.retries == 3
    assert client.budget.in_flight == 0


def test_429_honours_retry_after(fake: FakeShopify, clock: Clock) -> None:
    fake.script = [httpx.Response(429, headers={"Retry-After": "7.0"}), httpx.Response(429, headers={
        "Retry-After": "2"})]
    with client_for(fake, clock) as client:
        assert client.execute(QUERY, {"id": "1"}) == {"ok": True}
    assert clock.sleeps == [7.0, 2.0]


def test_429_for_ever_is_unavailable(fake: FakeShopify, clock: Clock) -> None:
    fake.script = [httpx.Response(429, headers={"Retry-After": "1"}) for _ in range(6)]
    with client_for(fake, clock) as client, pytest.raises(ShopifyUnavailable):
        client.execute(QUERY, {"id": "1"})
    assert len(fake.requests) == 6


def test_a_mutation_that_may_have_been_applied_is_not_sent_again(fake: FakeShopify, clock: Clock) -> None:
    fake.script = [httpx.ReadTimeout("timed out")]
    with client_for(fake, clock) as client:
        with pytest.raises(ShopifyUnavailable, match="may have been applied"):
            client.execute(MUTATION, {"x": "1"})
        assert len(fake.requests) == 1
        fake.script = [httpx.Response(502)]
        with pytest.raises(ShopifyUnavailable, match="may have been applied"):
            client.execute(MUTATION, {"x": "1"})
        assert len(fake.requests) == 2
        # never sent (connection refused), or refused before it ran (429, THROTTLED): sent again
        fake.script = [httpx.ConnectError("refused"), httpx.Response(429), throttled_answer(12, 0)]
        assert client.execute(MUTATION, {"x": "1"}) == {"ok": True}
        assert len(fake.requests) == 6
        # the caller may say a mutation is safe to repeat
        fake.script = [httpx.Response(502)]
        assert client.execute(MUTATION, {"x": "1"}, idempotent=True) == {"ok": True}
        # and an @idempotent mutation is
        fake.script = [httpx.ReadTimeout("timed out")]
        assert client.execute(IDEMPOTENT, {"x": "1", "k": "key-1"}) == {"ok": True}
        assert json.loads(fake.requests[-1].content) == json.loads(fake.requests[-2].content)


def test_graphql_errors_are_shopify_errors_and_not_retried(fake: FakeShopify, clock: Clock) -> None:
    errors = [{"message": "Field 'nope' doesn't exist on type 'Order'", "locations": [{"line": 1, "column": 3}],
               "extensions": {"code": "undefinedField", "typeName": "Order", "fieldName": "nope"}}]
    fake.script = [httpx.Response(200, json={"errors": errors})]
    with client_for(fake, clock) as client:
        with pytest.raises(ShopifyError) as caught:
            client.execute(QUERY, {"id": "1"})
        assert not isinstance(caught.value, ShopifyUnavailable)
        assert caught.value.errors == errors
        assert "doesn't exist" in str(caught.value)
        fake.script = [httpx.Response(200, json={
            "errors": [{"message": "Query cost is 2053, which exceeds the single query max cost limit (1000).",
                        "extensions": {"code": "MAX_COST_EXCEEDED", "cost": 2053, "maxCost": 1000}}],
            "extensions": {"cost": {"requestedQueryCost": 2053, "actualQueryCost": None}}})]
        with pytest.raises(ShopifyError, match="MAX_COST_EXCEEDED") as caught:
            client.execute(QUERY, {"id": "1"})
        assert not isinstance(caught.value, ShopifyUnavailable)
    assert len(fake.requests) == 2
    assert clock.sleeps == []


def test_a_refused_token_is_a_shopify_error(fake: FakeShopify, clock: Clock) -> None:
    fake.script = [httpx.Response(401, json={
        "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})]
    with client_for(fake, clock) as client, pytest.raises(ShopifyError, match="HTTP 401") as caught:
        client.execute(QUERY, {"id": "1"})
    assert not isinstance(caught.value, ShopifyUnavailable)
    assert caught.value.errors == [{"message": "[API] Invalid API key or access token (unrecognized login or "
                                               "wrong password)"}]
    assert len(fake.requests) == 1


def test_user_errors_are_returned_for_the_caller(fake: FakeShopify, clock: Clock) -> None:
    made = {"thingCreate": {"thing": None, "userErrors": [{"field": ["x"], "message": "x is taken"}]}}
    fake.data["Make"] = made
    with client_for(fake, clock) as client:
        assert client.execute(MUTATION, {"x": "1"}) == made


def test_threads_sharing_a_budget_are_not_throttled() -> None:
    """Real time: eight threads, one budget, a server bucket of the same size: reservations keep every
    request within what the server has."""
    now = time.monotonic
    server = FakeShopify(Clock(), maximum=100, rate=5000)
    server.clock.monotonic = now  # type: ignore[method-assign]
    server.at = now()
    server.costs["Thing"] = 40

    def answer(body: dict[str, Any]) -> httpx.Response:
        server.clock.now = now()
        return FakeShopify.answer(server, body)

    server.answer = answer  # type: ignore[method-assign]
    budget = CostBudget(100, 5000)
    client = ShopifyClient(SHOP, TOKEN, budget=budget, transport=httpx.MockTransport(server.handle))
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                client.execute(QUERY, {"id": "1"}, cost=40)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    assert failures == []
    assert client.stats.calls == 80
    assert server.throttled == 0
    assert budget.in_flight == 0


# -- pages -----------------------------------------------------------------------------------------------


def paged(items: list[dict[str, Any]], key: str, edges: bool = False) -> Callable[[dict[str, Any]], Any]:
    def page(variables: dict[str, Any]) -> dict[str, Any]:
        start = int(variables["after"] or 0)
        chunk = items[start:start + variables["first"]]
        end = start + len(chunk)
        connection: dict[str, Any] = {"pageInfo": {"hasNextPage": end < len(items), "endCursor": str(end)}}
        if edges:
            connection["edges"] = [{"node": n, "cursor": "c"} for n in chunk]
        else:
            connection["nodes"] = chunk
        return {key: connection}
    return page


def test_pages_follow_the_end_cursor(fake: FakeShopify, clock: Clock) -> None:
    orders = [{"id": f"gid://shopify/Order/{i}"} for i in range(7)]
    fake.data["OrdersUpdated"] = paged(orders, "orders")
    with client_for(fake, clock) as client:
        got = list(client.pages(ops.ORDERS_UPDATED, {"query": "updated_at:>2026-12-01"}, ("orders",), page_size=3))
    assert got == orders
    sent = [json.loads(r.content)["variables"] for r in fake.requests]
    assert sent == [{"query": "updated_at:>2026-12-01", "first": 3, "after": a} for a in (None, "3", "6")]


def test_pages_read_edges_and_a_nested_path(fake: FakeShopify, clock: Clock) -> None:
    levels = [{"item": {"id": str(i)}} for i in range(5)]
    page = paged(levels, "inventoryLevels", edges=True)
    fake.data["LocationLevels"] = lambda v: {"location": page(v)}
    with client_for(fake, clock) as client:
        assert list(client.pages(ops.LOCATION_LEVELS, {"id": "L"}, ("location", "inventoryLevels"),
                                 page_size=2)) == levels
        fake.data["LocationLevels"] = {"location": None}  # no such location
        assert list(client.pages(ops.LOCATION_LEVELS, {"id": "nope"}, ("location", "inventoryLevels"))) == []


# -- bulk ------------------------------------------------------------------------------------------------


BULK_LINES: list[dict[str, Any]] = [{"id": "gid://shopify/ProductVariant/1", "sku": "KC-1"},
              {"location": {"id": "gid://shopify/Location/1"}, "__parentId": "gid://shopify/ProductVariant/1"}]


def bulk_fake(fake: FakeShopify, statuses: list[dict[str, Any]], lines: list[dict[str, Any]] | None = None,
              download: list[httpx.Response] | None = None) -> list[httpx.Request]:
    fake.data["BulkRun"] = {"bulkOperationRunQuery": {
        "bulkOperation": {"id": "gid://shopify/BulkOperation/1", "status": "CREATED"}, "userErrors": []}}
    fake.data["BulkStatus"] = lambda v: statuses.pop(0) if len(statuses) > 1 else statuses[0]
    downloads: list[httpx.Request] = []
    body = "".join(json.dumps(line) + "\n" for line in lines or [])
    pending = list(download or [])

    def storage(request: httpx.Request, _: dict[str, Any]) -> httpx.Response | None:
        if request.url.host != "storage.example":
            return None
        downloads.append(request)
        return pending.pop(0) if pending else httpx.Response(200, text=body)

    fake.script = [storage] * 1000
    return downloads


def status(state: str, url: str | None = None, error: str | None = None) -> dict[str, Any]:
    return {"bulkOperation": {"id": "gid://shopify/BulkOperation/1", "status": state, "errorCode": error,
                              "objectCount": "2", "url": url}}


def test_bulk_polls_until_completed_and_streams_the_lines(fake: FakeShopify, clock: Clock) -> None:
    url = "https://storage.example/bulk/1.jsonl?X-Goog-Signature=abc"
    downloads = bulk_fake(fake, [status("RUNNING"), status("RUNNING"), status("COMPLETED", url)], BULK_LINES,
                          download=[httpx.Response(503)])
    with client_for(fake, clock) as client:
        assert list(client.bulk(ops.BULK_VARIANT_LEVELS, poll_seconds=2)) == BULK_LINES
    posted = [json.loads(r.content) for r in fake.requests if r.method == "POST"]
    assert posted[0] == {"query": ops.BULK_RUN, "variables": {"query": ops.BULK_VARIANT_LEVELS}}
    assert [p["query"] for p in posted[1:]] == [ops.BULK_STATUS] * 3
    assert clock.sleeps.count(2) == 2
    assert len(downloads) == 2  # a 503 first, retried
    assert "X-Shopify-Access-Token" not in downloads[-1].headers  # never the token to the storage URL


def test_bulk_failures(fake: FakeShopify, clock: Clock) -> None:
    bulk_fake(fake, [status("RUNNING"), status("FAILED", error="INTERNAL_SERVER_ERROR")])
    with client_for(fake, clock) as client:
        with pytest.raises(ShopifyError, match="FAILED") as caught:
            list(client.bulk(ops.BULK_VARIANT_LEVELS))
        assert not isinstance(caught.value, ShopifyUnavailable)
        fake.data["BulkRun"] = {"bulkOperationRunQuery": {"bulkOperation": None, "userErrors": [
            {"field": None, "message": "A bulk query operation for this app and shop is already in progress"}]}}
        with pytest.raises(ShopifyError, match="already in progress"):
            list(client.bulk(ops.BULK_VARIANT_LEVELS))
        bulk_fake(fake, [status("RUNNING")])
        with pytest.raises(ShopifyUnavailable, match="still RUNNING"):
            list(client.bulk(ops.BULK_VARIANT_LEVELS, poll_seconds=10, timeout=60))
        bulk_fake(fake, [status("COMPLETED", None)])  # no objects: no file
        assert list(client.bulk(ops.BULK_VARIANT_LEVELS)) == []


# -- against the Shopify double ----------------------------------------------------------------------------


def test_against_the_double_throttling_is_paced_and_recovered() -> None:
    from tests.support.shopify import ManualClock, seeded_double

    manual = ManualClock()
    double, _ = seeded_double(plan="standard", clock=manual)

    def sleep(seconds: float) -> None:
        manual.advance(seconds)

    budget = CostBudget(1000, 100, monotonic=manual.monotonic)
    client = ShopifyClient(double.shop, double.token, budget=budget, transport=double.transport(), sleep=sleep)
    with client:
        assert client.execute(ops.SHOP)["shop"]["myshopifyDomain"] == double.shop
        # another app of ours drains the bucket behind our budget's back
        double.bucket.take(int(double.bucket.status()["currentlyAvailable"]))
        skus = {v["sku"] for v in client.pages(ops.VARIANTS, {"query": None}, ("productVariants",), page_size=2)}
        assert skus == {"KC-BOLT-M8", "KC-NUT-M8", "KC-WASH-M8"}
        assert client.stats.throttled >= 1
        assert client.stats.waited_seconds > 0
        for _ in range(15):  # 15 x a 100-node page (~200 points) on a 1,000-point bucket: paced, not throttled
            before = client.stats.throttled
            client.execute(ops.LOCATIONS, {"first": 100, "after": None})
            assert client.stats.throttled == before
        assert client.stats.points == double.points


def test_against_the_double_a_bad_token_and_bulk() -> None:
    from tests.support.shopify import ManualClock, seeded_double

    manual = ManualClock()
    double, _ = seeded_double(clock=manual)
    with ShopifyClient(double.shop, "shpat_wrong", transport=double.transport(), sleep=manual.advance,
                       budget=CostBudget(10000, 1000, monotonic=manual.monotonic)) as client, \
            pytest.raises(ShopifyError, match="401"):
        client.execute(ops.SHOP)
    with ShopifyClient(double.shop, double.token, transport=double.transport(), sleep=manual.advance,
                       budget=CostBudget(10000, 1000, monotonic=manual.monotonic)) as client:
        lines = list(client.bulk(ops.BULK_VARIANT_LEVELS, poll_seconds=0.5))
    variants = {line["sku"] for line in lines if "__parentId" not in line}
    assert variants == {"KC-BOLT-M8", "KC-NUT-M8", "KC-WASH-M8"}
    assert any("__parentId" in line for line in lines)
