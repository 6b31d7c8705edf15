"""Benchmark: the Shopify B2B channel (issue 16) against the Shopify double, with the baselines measured
in the same run.

    .venv/bin/python -m bench.shopify [--short] [--seconds 10] [--rate 100] [--skus 10000] [--catalogs 20]
                                      [--naive-items 500]

1. **Webhook answer latency.** The hub as it runs (``ordersync serve``: API + worker in one process,
   SQLite store in a temporary directory, in-process bus, the in-memory ERP) with one shop configured, in
   front of the double (a process of its own, seeded with orders of three B2B companies the ERP knows).
   An open-loop sender (this process, 32 keep-alive connections) posts signed ``orders/create`` and
   ``orders/updated`` deliveries with the double's webhook bodies at ``--rate`` per second for
   ``--seconds`` (some are a second copy of an earlier delivery: the same event id), and records each
   answer's latency from its due time. Goal: p99 <= 50 ms (Shopify waits 5 s). Then how long the hub's
   worker took to work every kept event. Baseline, same deliveries at the same rate: the naive handler a
   point-to-point connector has, built from the channel's own pieces in a second app (a process of its
   own, the same hub behind it): it keeps the delivery, reads the order from the double (``ops.ORDER``)
   and runs it through the intake (``ShopifyInbound.keep`` + ``process``) before it answers.
2. **Stock push**, ``--skus`` SKUs x 2 locations, every level different from the ERP's, on the Plus budget
   (10,000 points, 1,000 a second): ``ShopifySync.push_stock()`` (one bulk read, compare-and-set writes of
   250) through the double served over HTTP (real sockets, real clock), from a bench-only ERP that answers
   a generated catalogue at once. Reported: seconds, calls, points (the client's and the double's),
   throttled answers; the theoretical minimum time the budget allows, max(0, points - bucket at start) /
   restore rate, and its steady-state form, points / restore rate; the share of the budget used, points /
   (restore rate x seconds + bucket at start). Goal: at least 90% (the push takes at most ~1/0.9 of the
   time the budget forces). A push whose points fit the bucket it started with is not budget-bound: it
   says so, and its share is printed but not held to the goal.
3. **Price push**, ``--skus`` prices x ``--catalogs`` catalogs (each catalog a company location matched
   to an ERP account by its external id; no quantity breaks asked): ``ShopifySync.push_prices()`` on the
   same double, first push (catalogs and price lists made), same figures.
4. **Naive baseline**, same run: one call per item on a sample of ``--naive-items`` SKUs against a fresh
   double on the same plan, through the same client and limiter: one ``inventorySetQuantities`` per (item,
   location), one ``priceListFixedPricesAdd`` per price (the naive side is handed the ids: its reads are
   not counted). Its calls, points and time per call, projected to the full size (said so), and the time
   the Plus budget alone would force on it (points / restore rate).

``--short`` (4 s of deliveries, 2,000 SKUs x 2 locations, 2,000 prices x 5 catalogs, 200 naive items) is
the form ``python -m bench.all --short`` runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench._common import Figure, emit, percentile
from bench._hub import start_server, stop_hub
from bench._load import open_loop
from ordersync.canonical.v1 import Account, PriceQuote, Product, StockPosition
from ordersync.channels.shopify import operations as ops
from ordersync.channels.shopify.client import PLANS, CostBudget, ShopifyClient
from ordersync.channels.shopify.inbound import AccountDirectory, Shop, ShopifyInbound
from ordersync.channels.shopify.sync import ShopifySync
from ordersync.config import ShopifyShopSettings, sqlite_url
from ordersync.devkit import demo_data
from ordersync.devkit.shopify import ShopifyDouble, sign
from ordersync.devkit.tryton.server import free_port
from ordersync.domain.clock import SystemClock
from ordersync.store.db import Database
from ordersync.store.schema import shopify_events

ROOT = Path(__file__).resolve().parent.parent
BENCH = "shopify"
PLAN = "plus"
BUCKET, RESTORE = PLANS[PLAN]  # 10,000 points, 1,000 a second
GOAL_P99_MS = 50.0
SHOPIFY_WAITS_S = 5.0
GOAL_BUDGET_SHARE = 90.0  # percent
SHOP_NAME = "bench"
PLANTS = ("PLANT-N", "PLANT-S")
CONNECTIONS = 32
#: the share of deliveries that are a second copy of an earlier one (same event id), and of orders/updated
DUPLICATE_SHARE = 0.12
UPDATED_SHARE = 0.25
PROFILE = demo_data.profile("main")
#: ERP accounts of the demo profile (the in-memory ERP) ordering in the webhook run, and how often
BUYERS = ("C-1003", "C-1003", "C-1001", "C-1002")


# -- 1. webhook answers ------------------------------------------------------------------------------


class PastClock(SystemClock):
    """The system clock three days ago (the monotonic clock, which the double's bucket runs on, is the
    real one). The double's orders are then older than the hub's first reconciliation sweep looks
    (a day): the sweep finds none of them, and webhooks are the only way they come in."""

    def now(self) -> dt.datetime:
        return super().now() - dt.timedelta(days=3)


def webhook_shop(n_orders: int, seed: int = 16) -> tuple[ShopifyDouble, list[str]]:
    """The double for the webhook run: the demo's well-stocked products at C-1003's contract price, one
    company per ERP account of :data:`BUYERS` (matched by external id, the location's external id its
    ship-to), and ``n_orders`` small orders placed by them. Returns the double and the orders' gids."""
    rng = random.Random(seed)
    d = ShopifyDouble(plan=PLAN, clock=PastClock())
    locations = [d.add_location("Lager Hamburg"), d.add_location("Lager Augsburg")]
    stocked = [p for p in PROFILE["products"] if min(p["stock"].values(), default=0) >= 100
               and len(p["stock"]) == 2 and Decimal(p["list_price"]) < 60]
    for p in stocked:
        minimum = demo_data.minimum_quantity(PROFILE, p["sku"])
        price = demo_data.contract_price(PROFILE, "C-1003", p["sku"], minimum).quantize(Decimal("0.01"), ROUND_HALF_UP)
        d.add_product(p["sku"], p["name"], price, {loc: 100_000 for loc in locations})
    buyers = {}
    for code in sorted(set(BUYERS)):
        customer = demo_data.customer(PROFILE, code)
        address = customer["addresses"][0]["key"]
        company = d.add_company(customer["name"], external_id=code,
                                locations=[{"name": f"{customer['name']} {address}", "external_id": address,
                                            "currency": "EUR"}])
        buyers[code] = company["locations"][0]
    gids = []
    for i in range(n_orders):
        lines = []
        for p in rng.sample(stocked, rng.randint(1, 3)):
            minimum, pack = demo_data.minimum_quantity(PROFILE, p["sku"]), demo_data.pack_multiple(PROFILE, p["sku"])
            lines.append((p["sku"], int(max(minimum, pack * rng.randint(1, 2)))))
        gids.append(d.place_order(buyers[rng.choice(BUYERS)], lines, po_number=f"BENCH-{seed}-{i:05d}"))
    return d, gids


def serve_double(n_orders: int, seed: int) -> None:
    """``--serve-double``: the webhook run's double in a process of its own (so that serving the hub's
    order reads does not take the sender's share of this process's GIL). Prints one JSON line (its URL,
    credentials and the webhook body of each order), answers ``stats`` on stdin with its meter, and stops
    when stdin closes."""
    d, gids = webhook_shop(n_orders, seed)
    url = d.start()
    print(json.dumps({"url": url, "shop": d.shop, "token": d.token, "secret": d.secret,
                      "orders": [d.order(g) for g in gids]}), flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps({"calls": d.calls, "points": d.points, "throttled": d.throttled}), flush=True)
    d.stop()


class DoubleProcess:
    """The webhook run's double, served by ``python -m bench.shopify --serve-double``."""

    def __init__(self, n_orders: int, seed: int = 16) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.shopify", "--serve-double", str(n_orders),
                                      str(seed)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            raise SystemExit(f"the Shopify double did not start (exit {self.proc.returncode})")
        info = json.loads(line)
        self.url: str = info["url"]
        self.shop: str = info["shop"]
        self.token: str = info["token"]
        self.secret: str = info["secret"]
        self.orders: list[dict[str, Any]] = info["orders"]

    def stats(self) -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        answer: dict[str, int] = json.loads(self.proc.stdout.readline())
        return answer

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass(frozen=True)
class Delivery:
    topic: str
    event_id: str
    body: bytes
    triggered_at: str


def delivery_plan(orders: Sequence[dict[str, Any]], n: int, seed: int = 7) -> list[Delivery]:
    """``n`` deliveries: ``orders/create`` of each order in turn, ``orders/updated`` of one created
    before (a new event), and now and then a second copy of a recent delivery (the same event id)."""
    rng = random.Random(seed)
    fresh = iter(orders)
    created: list[dict[str, Any]] = []
    out: list[Delivery] = []

    def delivery(topic: str, order: dict[str, Any]) -> Delivery:
        body = json.dumps(order, separators=(",", ":")).encode()
        return Delivery(topic, str(uuid.uuid4()), body, order["updated_at"])

    for _ in range(n):
        r = rng.random()
        if out and r < DUPLICATE_SHARE:
            out.append(rng.choice(out[-50:]))
            continue
        order = next(fresh, None) if not created or r >= DUPLICATE_SHARE + UPDATED_SHARE else None
        if order is not None:
            created.append(order)
            out.append(delivery("orders/create", order))
        else:
            out.append(delivery("orders/updated", rng.choice(created)))
    return out


def orders_needed(n: int) -> int:
    """Orders the double needs for ``n`` deliveries (with room to spare)."""
    return int(n * (1 - DUPLICATE_SHARE - UPDATED_SHARE) * 1.2) + 5


def delivery_request(d: Delivery, host: str, shop: str, secret: str) -> bytes:
    """One delivery as Shopify posts it: signed over the raw body, a new webhook id per attempt."""
    headers = {"Host": host, "Connection": "keep-alive", "Content-Type": "application/json",
               "User-Agent": "Shopify-Captain-Hook", "X-Shopify-Topic": d.topic,
               "X-Shopify-Hmac-Sha256": sign(d.body, secret), "X-Shopify-Shop-Domain": shop,
               "X-Shopify-API-Version": ops.API_VERSION, "X-Shopify-Webhook-Id": str(uuid.uuid4()),
               "X-Shopify-Event-Id": d.event_id, "X-Shopify-Triggered-At": d.triggered_at,
               "Content-Length": str(len(d.body))}
    head = "POST /shopify/webhooks HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + d.body


def hub_toml(double: DoubleProcess, poll_seconds: float = 1.0) -> str:
    """The hub's settings: the in-memory ERP, one shop (the double); no scheduled stock or price push
    during the run."""
    return "\n".join([
        "[[erp]]", 'name = "main"', 'kind = "memory"', "",
        "[shopify]", f"poll_seconds = {poll_seconds}", "",
        "[[shopify.shops]]", f'name = "{SHOP_NAME}"', f'domain = "{double.shop}"', f'api_url = "{double.url}"',
        f'token = "{double.token}"', f'secret = "{double.secret}"', f'plan = "{PLAN}"', "stock_minutes = 0",
        "prices_minutes = 0", ""])


def event_states(data_dir: Path) -> dict[str, int]:
    db = Database(sqlite_url(data_dir))
    try:
        with db.read() as conn:
            return {str(s): int(n) for s, n in conn.execute(
                select(shopify_events.c.state, func.count()).group_by(shopify_events.c.state))}
    finally:
        db.dispose()


def offer(port: int, double: DoubleProcess, plan: list[Delivery], rate: float) -> dict[str, Any]:
    host = f"127.0.0.1:{port}"
    requests = [delivery_request(d, host, double.shop, double.secret) for d in plan]
    result = open_loop("127.0.0.1", port, requests, rate, connections=CONNECTIONS)
    ms = [x * 1000 for x in result.latencies]
    return {"p50": percentile(ms, 50), "p90": percentile(ms, 90), "p99": percentile(ms, 99), "max": max(ms),
            "errors": sum(1 for s in result.statuses if s != 200), "sent": len(requests),
            "offered_s": result.elapsed, "statuses": dict(Counter(result.statuses))}


def run_hub_webhooks(double: DoubleProcess, plan: list[Delivery], rate: float, root: Path,
                     drain_timeout: float) -> dict[str, Any]:
    """``ordersync serve`` with the shop configured; the deliveries; then until its worker has worked every
    kept event (or ``drain_timeout`` seconds)."""
    data_dir = root / "hub"
    data_dir.mkdir(parents=True)
    (data_dir / "ordersync.toml").write_text(hub_toml(double))
    port = free_port()
    hub = start_server([sys.executable, "-m", "ordersync.cli", "serve", "--data-dir", str(data_dir), "--port",
                        str(port)], port, root / "hub.log")
    try:
        out = offer(port, double, plan, rate)
        sent_at = time.perf_counter()
        states = event_states(data_dir)
        out["open_at_end"] = states.get("received", 0)
        while states.get("received", 0) and time.perf_counter() - sent_at < drain_timeout:
            time.sleep(0.1)
            states = event_states(data_dir)
        out["drain_s"] = time.perf_counter() - sent_at if not states.get("received", 0) else float("nan")
        out["states"] = states
    finally:
        stop_hub(hub)
    return out


def naive_app(hub: Any) -> Any:
    """What a point-to-point connector's webhook handler does: verify, then read the order from Shopify
    and take it in (the channel's own keep + process), and only then answer."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from ordersync.channels.shopify import webhooks

    channel = hub.shopify

    def work(inbound: ShopifyInbound, shop: str, headers: webhooks.WebhookHeaders, body: bytes) -> dict[str, Any]:
        key, first = inbound.keep(shop, topic=headers.topic, event_id=headers.event_id,
                                  webhook_id=headers.webhook_id, triggered_at=headers.triggered_at, body=body)
        return {"kept": key, "duplicate": not first, "state": inbound.process(key)}

    async def receive(request: Request) -> Response:
        headers = webhooks.read_headers(request.headers)
        body = await request.body()
        settings = channel.settings.by_domain(headers.shop_domain)
        if settings is None or not webhooks.verify(body, headers.hmac, settings.webhook_secrets()):
            return JSONResponse({"error": "refused"}, status_code=401)
        return JSONResponse(await run_in_threadpool(work, channel.inbound, settings.name, headers, body))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/shopify/webhooks", receive, methods=["POST"]), Route("/health", health)])


def serve_naive(data_dir: Path, port: int) -> None:
    """``--naive-child``: the naive handler served like ``ordersync serve`` (uvicorn, the hub's worker in a
    thread beside it for the orders' flows; its Shopify events job idles: the handler works each event)."""
    import uvicorn

    from ordersync.bootstrap import build_hub
    from ordersync.config import load_settings

    sys.setswitchinterval(0.0005)  # as ordersync serve
    hub = build_hub(load_settings(data_dir=data_dir))
    stop = threading.Event()
    with ExitStack() as stack:
        stack.enter_context(hub.db.sole_worker())
        hub.worker.recover(sole_worker=hub.db.is_sqlite)
        worker = threading.Thread(target=hub.worker.run_forever, args=(stop,), name="worker", daemon=True)
        worker.start()
        uvicorn.run(naive_app(hub), host="127.0.0.1", port=port, log_level="warning", access_log=False)
        stop.set()
        worker.join(timeout=30)
    hub.close()


def run_naive_webhooks(double: DoubleProcess, plan: list[Delivery], rate: float, root: Path) -> dict[str, Any]:
    data_dir = root / "naive"
    data_dir.mkdir(parents=True)
    # the events job every hour: it would otherwise race the handler for the events it keeps
    (data_dir / "ordersync.toml").write_text(hub_toml(double, poll_seconds=3600))
    port = free_port()
    proc = start_server([sys.executable, "-m", "bench.shopify", "--naive-child", str(data_dir), str(port)], port,
                        root / "naive.log")
    try:
        out = offer(port, double, plan, rate)
        out["states"] = event_states(data_dir)
    finally:
        stop_hub(proc)
    return out


def webhook_latency(seconds: float, rate: float, root: Path, drain_timeout: float = 60.0) -> dict[str, Any]:
    """Both runs on one double: the hub's answers, then the naive handler's, the same deliveries."""
    n = max(1, round(seconds * rate))
    double = DoubleProcess(orders_needed(n))
    try:
        plan = delivery_plan(double.orders, n)
        mix = Counter(d.topic for d in plan)
        duplicates = n - len({d.event_id for d in plan})
        hub = run_hub_webhooks(double, plan, rate, root, drain_timeout)
        hub["double"] = double.stats()
        naive = run_naive_webhooks(double, plan, rate, root)
        naive["double"] = double.stats()
    finally:
        double.stop()
    return {"n": n, "rate": rate, "seconds": seconds, "mix": dict(mix), "duplicates": duplicates,
            "events": n - duplicates, "hub": hub, "naive": naive}


# -- 2./3. stock and price pushes ---------------------------------------------------------------------


class CatalogueErp:
    """A bench-only ERP with a generated catalogue: the methods of the ERP port (and of the hub's ERPs)
    the sync uses, answered from memory at once, so that the push's time is Shopify's and the sync's."""

    def __init__(self, n_skus: int, n_accounts: int, name: str = "bench") -> None:
        self.name = name
        self.skus = [sku_of(i) for i in range(n_skus)]
        self._now = dt.datetime.now(dt.UTC)
        self._products = [Product.model_construct(sku=s, name=f"Item {s}", currency="EUR") for s in self.skus]
        self._accounts = [Account(id=account_of(k), name=f"Bench customer {k + 1}", erp=name, currency="EUR")
                          for k in range(n_accounts)]
        self._index = {s: i for i, s in enumerate(self.skus)}

    def names(self) -> list[str]:
        return [self.name]

    def erp(self, name: str) -> CatalogueErp:
        return self

    def erp_name_for(self, account_id: str) -> str:
        return self.name

    def default_name(self) -> str:
        return self.name

    def for_account(self, account_id: str) -> CatalogueErp:
        return self

    def accounts(self) -> list[Account]:
        return list(self._accounts)

    def products(self, account_id: str | None = None) -> list[Product]:
        return self._products

    def atp(self, sku: str, plant: str) -> int:
        """Available to promise: never the double's seeded 5 / 7, so every level is to change."""
        i = self._index[sku]
        return 10 + (i * 7) % 500 if plant == PLANTS[0] else 20 + (i * 11) % 300

    def availability(self, skus: Sequence[str]) -> list[StockPosition]:
        return [StockPosition.model_construct(sku=s, plant=p, on_hand=Decimal(self.atp(s, p)), reserved=Decimal(0),
                                              available_to_promise=Decimal(self.atp(s, p)), as_of=self._now)
                for s in skus for p in PLANTS]

    def price(self, account_id: str, sku: str) -> Decimal:
        k = int(account_id.rsplit("-", 1)[1])
        return Decimal(1000 + (self._index[sku] * 37) % 9000 + k * 13) / 100

    def prices(self, account_id: str, items: Sequence[tuple[str, Decimal]], on: dt.date | None = None
               ) -> list[PriceQuote]:
        out = []
        for sku, quantity in items:
            price = self.price(account_id, sku)
            out.append(PriceQuote.model_construct(account_id=account_id, sku=sku, quantity=quantity, currency="EUR",
                                                  contract_unit_price=price, unit_price=price, as_of=self._now))
        return out


def sku_of(i: int) -> str:
    return f"BN-{i:06d}"


def account_of(k: int) -> str:
    return f"B-{k:03d}"


def push_shop(n_skus: int, n_catalogs: int) -> tuple[ShopifyDouble, dict[str, str]]:
    """The double for the pushes: two locations, ``n_skus`` products stocked at both (5 and 7 available),
    ``n_catalogs`` companies each with one location whose external id is an ERP account."""
    d = ShopifyDouble(plan=PLAN)
    locations = {PLANTS[0]: d.add_location("Lager Hamburg"), PLANTS[1]: d.add_location("Lager Augsburg")}
    for i in range(n_skus):
        d.add_product(sku_of(i), f"Item {i}", "19.99", {locations[PLANTS[0]]: 5, locations[PLANTS[1]]: 7})
    for k in range(n_catalogs):
        d.add_company(f"Bench customer {k + 1}", external_id=account_of(k),
                      locations=[{"name": f"Site {k + 1}", "external_id": account_of(k), "currency": "EUR"}])
    return d, locations


def wait_for_full_bucket(d: ShopifyDouble) -> float:
    """Sleep until the double's bucket is full again; what it holds then."""
    while True:
        available = float(d.bucket.status()["currentlyAvailable"])
        if available >= d.bucket.maximum:
            return available
        time.sleep((d.bucket.maximum - available) / d.bucket.restore_rate + 0.01)


def measured(d: ShopifyDouble, client: ShopifyClient, run: Callable[[], Any], *, empty: bool = False
             ) -> dict[str, Any]:
    """Run ``run()`` from a full bucket (``empty``: from an emptied one, the steady state of a shop whose
    budget is in use) and count what it cost: calls, points (the client's sum of actualQueryCost, and the
    double's meter), throttled answers, seconds, seconds waited for points."""
    available = wait_for_full_bucket(d)
    if empty:
        d.bucket.drain()
        available = 0.0
    before = (client.stats.calls, client.stats.points, client.stats.throttled, client.stats.waited_seconds,
              d.calls, d.points, d.throttled)
    by_operation: dict[str, list[float]] = {}  # operation -> [calls, points] (the client's stats around each)
    execute = client.execute

    def counted(document: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls, points = client.stats.calls, client.stats.points
        try:
            return execute(document, *args, **kwargs)
        finally:
            name = document.split("(")[0].split("{")[0].split()[-1] if document.strip() else "?"
            entry = by_operation.setdefault(name, [0, 0.0])
            entry[0] += client.stats.calls - calls
            entry[1] += client.stats.points - points

    client.execute = counted  # type: ignore[method-assign]  # the sync runs one call at a time
    started = time.perf_counter()
    try:
        result = run()
    finally:
        seconds = time.perf_counter() - started
        del client.execute
    s = client.stats
    return {"seconds": seconds, "available": available, "calls": s.calls - before[0],
            "client_points": s.points - before[1], "throttled": s.throttled - before[2],
            "waited_s": s.waited_seconds - before[3], "double_calls": d.calls - before[4],
            "points": d.points - before[5], "double_throttled": d.throttled - before[6], "result": result,
            "by_operation": by_operation}


def new_client(d: ShopifyDouble, url: str) -> ShopifyClient:
    """A client paced by its own budget for the plan (not the process's shared one of the shop)."""
    return ShopifyClient(d.shop, d.token, base_url=url, plan=PLAN, budget=CostBudget(BUCKET, RESTORE))


def run_pushes(n_skus: int, n_catalogs: int, root: Path) -> dict[str, Any]:
    """The full stock push, then the (first) price push, through the served double."""
    d, locations = push_shop(n_skus, n_catalogs)
    erp = CatalogueErp(n_skus, n_catalogs)
    db = Database(sqlite_url(root / "push"))
    db.migrate()
    url = d.start()
    try:
        client = new_client(d, url)
        settings = ShopifyShopSettings(name=SHOP_NAME, domain=d.shop, api_url=url, token=d.token, plan=PLAN,
                                       locations=locations, quantity_breaks=[])
        clock = SystemClock()
        directory = AccountDirectory(erp.accounts, clock)
        sync = ShopifySync(Shop(settings, client), erp, db, clock, directory)  # type: ignore[arg-type]
        stock = measured(d, client, sync.push_stock)
        prices = measured(d, client, sync.push_prices)
        mutations = dict(d.mutations_by_name)
        # the same pushes where the budget binds: from an empty bucket, every level different again and
        # every price sent again
        for i in range(n_skus):
            item = str(d.variant_by_sku(sku_of(i))["inventory_item_id"])
            for location in locations.values():
                d.set_available(item, location, 3)
        stock_empty = measured(d, client, sync.push_stock, empty=True)
        prices_empty = measured(d, client, lambda: sync.push_prices(force=True), empty=True)
    finally:
        d.stop()
        db.dispose()
    return {"skus": n_skus, "catalogs": n_catalogs, "stock": stock, "prices": prices, "mutations": mutations,
            "stock_empty": stock_empty, "prices_empty": prices_empty}


def budget(m: dict[str, Any]) -> dict[str, Any]:
    """The budget figures of a measured push (see the module docstring)."""
    points, seconds, available = float(m["points"]), float(m["seconds"]), float(m["available"])
    minimum = max(0.0, points - available) / RESTORE
    return {"bound": points > available, "min_s": minimum, "steady_s": points / RESTORE,
            "share": 100 * points / (RESTORE * seconds + available), "of_min": 100 * minimum / seconds}


# -- 4. the naive one-call-per-item sync --------------------------------------------------------------


def naive_sample(n_items: int) -> dict[str, Any]:
    """One call per item on a fresh double: stock per (item, location), then a price per item."""
    d = ShopifyDouble(plan=PLAN)
    locations = [d.add_location("Lager Hamburg"), d.add_location("Lager Augsburg")]
    for i in range(n_items):
        d.add_product(sku_of(i), f"Item {i}", "19.99", {locations[0]: 5, locations[1]: 7})
    variants = [d.variant_by_sku(sku_of(i)) for i in range(n_items)]
    url = d.start()
    try:
        client = new_client(d, url)

        def stock() -> int:
            for v in variants:
                for location, read in zip(locations, (5, 7), strict=True):
                    data = client.execute(ops.INVENTORY_SET, {"key": str(uuid.uuid4()), "input": {
                        "name": "available", "reason": "correction", "referenceDocumentUri": "naive://stock",
                        "quantities": [{"inventoryItemId": v["inventory_item_id"], "locationId": location,
                                        "quantity": read + 30, "changeFromQuantity": read}]}})
                    assert not data["inventorySetQuantities"]["userErrors"], data
            return len(variants) * len(locations)

        created = client.execute(ops.PRICE_LIST_CREATE, {"input": {"name": "naive", "currency": "EUR", "parent": {
            "adjustment": {"type": "PERCENTAGE_DECREASE", "value": 0.0}}}})
        price_list = created["priceListCreate"]["priceList"]["id"]

        def prices() -> int:
            for v in variants:
                data = client.execute(ops.PRICES_ADD, {"priceListId": price_list, "prices": [
                    {"variantId": v["id"], "price": {"amount": "17.50", "currencyCode": "EUR"}}]})
                assert not data["priceListFixedPricesAdd"]["userErrors"], data
            return len(variants)

        out: dict[str, Any] = {"items": n_items, "stock": measured(d, client, stock),
                               "prices": measured(d, client, prices)}
    finally:
        d.stop()
    for m in (out["stock"], out["prices"]):
        m["per_call_s"] = (m["seconds"] - m["waited_s"]) / m["calls"]  # the round trip, without waiting for points
        m["points_per_call"] = m["points"] / m["calls"]
    return out


def projected(m: dict[str, Any], calls: int) -> dict[str, float]:
    """The naive sync at ``calls`` calls: its points, the time the budget alone forces (steady state and
    from a full bucket), and its time: the measured round trips or the budget, whichever is longer."""
    points = m["points_per_call"] * calls
    budget_s = points / RESTORE
    from_full = max(0.0, points - BUCKET) / RESTORE
    return {"calls": calls, "points": points, "budget_s": budget_s, "from_full_s": from_full,
            "seconds": max(m["per_call_s"] * calls, from_full)}


# -- the run ------------------------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def print_push(m: dict[str, Any], extra: str) -> dict[str, Any]:
    b = budget(m)
    print(f"  {m['seconds']:.2f} s   {m['calls']:,} calls   {m['points']:,.0f} points (client: "
          f"{m['client_points']:,.0f})   throttled {m['double_throttled']} (client saw {m['throttled']})   "
          f"waited for points {m['waited_s']:.2f} s   {extra}")
    parts = sorted(m["by_operation"].items(), key=lambda kv: -kv[1][1])
    print("  by operation: " + ", ".join(f"{name} {calls:,.0f} calls {points:,.0f} points"
                                         for name, (calls, points) in parts))
    print(f"  bucket at start {m['available']:,.0f} points; theoretical minimum time the budget allows: "
          f"max(0, {m['points']:,.0f} - {m['available']:,.0f}) / {RESTORE:,.0f} = {b['min_s']:.2f} s; "
          f"steady state {m['points']:,.0f} / {RESTORE:,.0f} = {b['steady_s']:.2f} s")
    if b["bound"]:
        print(f"  share of the budget used: {m['points']:,.0f} / ({RESTORE:,.0f} x {m['seconds']:.2f} + "
              f"{m['available']:,.0f}) = {b['share']:.1f}%   (the minimum is {b['of_min']:.1f}% of the time taken)"
              f"   goal >= {GOAL_BUDGET_SHARE:.0f}%: {verdict(b['share'] >= GOAL_BUDGET_SHARE)}", flush=True)
    else:
        print(f"  NOT budget-bound: its {m['points']:,.0f} points fit the {m['available']:,.0f} in the bucket at "
              f"start, so the budget forces no wait and the time is the double's and the sync's own work; share "
              f"of the budget used {b['share']:.1f}% (not held to the {GOAL_BUDGET_SHARE:.0f}% goal: no budget "
              f"to use up)", flush=True)
    return b


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-double":
        serve_double(int(sys.argv[2]), int(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--naive-child":
        serve_naive(Path(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the quick form bench.all runs")
    parser.add_argument("--seconds", type=float, help="seconds of webhook deliveries per run (default 10; --short 4)")
    parser.add_argument("--rate", type=float, default=100.0, help="webhook deliveries per second")
    parser.add_argument("--skus", type=int, help="SKUs pushed (default 10000; --short 2000)")
    parser.add_argument("--catalogs", type=int, help="catalogs priced (default 20; --short 5)")
    parser.add_argument("--naive-items", type=int, help="SKUs of the naive sample (default 500; --short 200)")
    args = parser.parse_args()
    short = args.short
    seconds = args.seconds or (4.0 if short else 10.0)
    n_skus = args.skus or (2000 if short else 10_000)
    n_catalogs = args.catalogs or (5 if short else 20)
    naive_items = args.naive_items or (200 if short else 500)
    figures: list[Figure] = []
    print(f"Shopify benchmark ({'--short' if short else 'full'}): plan {PLAN} (bucket {BUCKET:,.0f} points, restores "
          f"{RESTORE:,.0f}/s); {os.cpu_count()} cores", flush=True)

    with tempfile.TemporaryDirectory(prefix="ordersync-bench-shopify-") as tmp:
        w = webhook_latency(seconds, args.rate, Path(tmp))
    hub, naive = w["hub"], w["naive"]
    print(f"webhook answers: {w['n']:,} signed deliveries at {w['rate']:.0f}/s for {w['seconds']:.0f} s over "
          f"{CONNECTIONS} keep-alive connections (orders/create {w['mix'].get('orders/create', 0)}, orders/updated "
          f"{w['mix'].get('orders/updated', 0)}; {w['duplicates']} of them a second copy of an event)")
    for label, r in (("hub (ordersync serve: keep, answer; the worker reads later)", hub),
                     ("naive (read the order + intake, then answer)", naive)):
        print(f"  {label:62s} p50 {r['p50']:7.1f} ms   p90 {r['p90']:7.1f} ms   p99 {r['p99']:7.1f} ms   "
              f"max {r['max']:7.1f} ms   errors {r['errors']}")
    print(f"  goal p99 <= {GOAL_P99_MS:.0f} ms (Shopify waits {SHOPIFY_WAITS_S:.0f} s): "
          f"{verdict(hub['p99'] <= GOAL_P99_MS)}; naive/hub: p50 {naive['p50'] / hub['p50']:.1f}x   "
          f"p99 {naive['p99'] / hub['p99']:.1f}x")
    if hub["drain_s"] == hub["drain_s"]:
        drained = (f"all {w['events']:,} worked {hub['drain_s']:.1f} s after it ("
                   f"{w['events'] / (hub['offered_s'] + hub['drain_s']):.0f} events/s from the first delivery)")
    else:
        drained = f"{hub['states'].get('received', 0)} still unworked when the run stopped waiting"
    naive_calls = naive["double"]["calls"] - hub["double"]["calls"]
    naive_throttled = naive["double"]["throttled"] - hub["double"]["throttled"]
    print(f"  hub worker: {hub['open_at_end']:,} of {w['events']:,} kept events not worked yet at the last answer; "
          f"{drained}; event states {hub['states']} (naive {naive['states']}); the double answered the hub "
          f"{hub['double']['calls']:,} calls ({hub['double']['throttled']} throttled), the naive handler "
          f"{naive_calls:,} ({naive_throttled} throttled)", flush=True)
    figures += [
        Figure(BENCH, f"webhook answer p50 at {w['rate']:.0f}/s", hub["p50"], "ms", naive["p50"],
               "naive: read + intake first"),
        Figure(BENCH, f"webhook answer p99 at {w['rate']:.0f}/s", hub["p99"], "ms", naive["p99"],
               "naive: read + intake first", goal=GOAL_P99_MS),
    ]

    print(f"stock and price pushes of {n_skus:,} SKUs through the double served over HTTP, then the naive sample "
          f"(the sync's store may warn of slow write transactions meanwhile)", flush=True)
    with tempfile.TemporaryDirectory(prefix="ordersync-bench-shopify-") as tmp:
        p = run_pushes(n_skus, n_catalogs, Path(tmp))
    n_levels = n_skus * len(PLANTS)
    n_prices = n_skus * n_catalogs
    naive_s = naive_sample(naive_items)
    st, pr = p["stock"], p["prices"]
    stock_report, price_report = st["result"], pr["result"]
    print(f"stock push: {n_skus:,} SKUs x {len(PLANTS)} locations ({n_levels:,} levels, each different from the "
          f"ERP's) through the double over HTTP")
    sb = print_push(st, f"changed {stock_report['changed']:,}, errors {len(stock_report['errors'])}")
    changed_prices = sum(a.get("changed", 0) for a in price_report["accounts"].values())
    price_errors = sum(len(a.get("errors", [])) for a in price_report["accounts"].values())
    print(f"price push: {n_skus:,} prices x {n_catalogs} catalogs ({n_prices:,} fixed prices; first push: catalogs "
          f"and price lists made; no quantity breaks)")
    pb = print_push(pr, f"prices set {changed_prices:,}, errors {price_errors}")
    steady: dict[str, float] = {}
    print("the same pushes from an empty bucket (the budget binds: a shop whose points other work uses up); the "
          "theoretical minimum time is points / restore rate")
    for what, m in (("stock push", p["stock_empty"]), ("price push (every price again)", p["prices_empty"])):
        minimum = float(m["points"]) / RESTORE
        steady[what] = 100 * minimum / m["seconds"]
        print(f"  {what}: {m['seconds']:.2f} s   {m['calls']:,} calls   {m['points']:,.0f} points   throttled "
              f"{m['double_throttled']} (client saw {m['throttled']})   waited for points {m['waited_s']:.2f} s; "
              f"minimum {minimum:.2f} s = {steady[what]:.1f}% of the time taken   goal >= {GOAL_BUDGET_SHARE:.0f}%: "
              f"{verdict(steady[what] >= GOAL_BUDGET_SHARE)}", flush=True)

    ns, np_ = naive_s["stock"], naive_s["prices"]
    nst = projected(ns, n_levels)
    npr = projected(np_, n_prices)
    print(f"naive one call per item (sample of {naive_items} SKUs on a fresh double, the same client and limiter; "
          f"ids handed to it, its reads not counted):")
    for what, m, proj, unit in (("stock", ns, nst, "level"), ("prices", np_, npr, "price")):
        print(f"  {what}: {m['calls']:,} calls, {m['points']:,.0f} points ({m['points_per_call']:.0f} a call), "
              f"{m['seconds']:.2f} s ({m['per_call_s'] * 1000:.1f} ms a {unit} between waits for points, "
              f"{m['waited_s']:.2f} s waited); projected to {proj['calls']:,} {unit}s: {proj['calls']:,} calls, "
              f"{proj['points']:,.0f} points; the Plus budget alone forces {proj['budget_s']:,.0f} s "
              f"({proj['budget_s'] / 60:.1f} min; {proj['from_full_s']:,.0f} s from a full bucket), projected "
              f"{proj['seconds']:,.0f} s")
    print(f"calls, ours vs naive (projected): stock {st['calls']:,} vs {nst['calls']:,} "
          f"({nst['calls'] / st['calls']:,.0f}x fewer); prices {pr['calls']:,} vs {npr['calls']:,} "
          f"({npr['calls'] / pr['calls']:,.0f}x fewer)")
    print(f"points, ours vs naive (projected): stock {st['points']:,.0f} vs {nst['points']:,.0f} "
          f"({nst['points'] / st['points']:,.0f}x fewer); prices {pr['points']:,.0f} vs {npr['points']:,.0f} "
          f"({npr['points'] / pr['points']:,.1f}x fewer)")
    print(f"time, ours vs naive (projected): stock {st['seconds']:.1f} s vs {nst['seconds']:,.0f} s; prices "
          f"{pr['seconds']:.1f} s vs {npr['seconds']:,.0f} s", flush=True)

    for what, m, b, proj, size in (("stock push", st, sb, nst, f"{n_skus:,} SKUs x 2 locations"),
                                   ("price push", pr, pb, npr, f"{n_skus:,} prices x {n_catalogs} catalogs")):
        figures += [
            Figure(BENCH, f"{what} {size}: time", m["seconds"], "s", proj["seconds"], "naive, projected"),
            Figure(BENCH, f"{what}: share of the Plus budget used from a full bucket", b["share"], "%"),
            Figure(BENCH, f"{what}: calls", m["calls"], "", proj["calls"], "naive, projected"),
            Figure(BENCH, f"{what}: points", m["points"], "", proj["points"], "naive, projected"),
            Figure(BENCH, f"{what}: naive sync's time the budget alone forces", proj["budget_s"], "s"),
        ]
    for what, share in steady.items():
        figures.append(Figure(BENCH, f"{what} from an empty bucket: minimum time the budget allows / time taken",
                              share, "%", goal=GOAL_BUDGET_SHARE, higher=True))
    emit(figures)


if __name__ == "__main__":
    main()
