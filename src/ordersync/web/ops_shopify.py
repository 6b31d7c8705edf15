"""What ``/ops/shopify`` shows of each configured shop, read from the store and the shop's client.

Plain reads (STYLE habit 14): the counts, lags, reports and recent orders come from the Shopify tables; the
health and throttle figures come from the shop's client in this process (the worker's client when the
worker runs beside the API, the default). The channel sits above the web layer, so it is reached through
``hub.shopify`` without importing it.

The orders waiting for a company mapping are grouped by the company location Shopify named (kept beside
each waiting order by the channel), for the "Waiting for a mapping" form; the ERP accounts it offers are
the channel's account directory (the ERP's active accounts, read at most every few minutes).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import statistics
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from ordersync.config import ShopifyShopSettings
from ordersync.store import shopify as store
from ordersync.store.schema import shopify_events, shopify_state
from ordersync.web.ops_data import aware, duration

#: how many of a shop's latest events the webhook lag is measured over
LAG_SAMPLE = 200
#: the pushes the sync reports, in the order they are shown
PUSHES = ("prices", "stock", "terms")
#: Shopify's GraphQL budget per plan: (maximum points, points restored a second)
PLAN_BUDGETS: dict[str, tuple[float, float]] = {
    "standard": (1000.0, 100.0), "advanced": (2000.0, 200.0), "plus": (10000.0, 1000.0),
    "enterprise": (20000.0, 2000.0),
}


@dataclass(frozen=True)
class Lag:
    """Seconds between Shopify's ``X-Shopify-Triggered-At`` and our receipt, over recent events."""

    sample: int
    median: float | None
    max: float | None
    waiting: int  # kept and not worked yet (received, or waiting for a company mapping)
    failed: int


@dataclass(frozen=True)
class Report:
    """The last run of one push (or of the reconciliation): what it said and when."""

    kind: str
    at: dt.datetime | None
    values: dict[str, Any]

    @property
    def summary(self) -> list[tuple[str, str]]:
        """The report's figures as (name, value) pairs: a list as its length and first items, a mapping (per
        account) as its own figures; Shopify ids and the report's own times left out."""
        return [(key, _said(value)) for key, value in self.values.items()
                if key not in ("shop", "started_at", "at", "finished_at", "push")]


def _said(value: Any) -> str:
    if isinstance(value, list):
        shown = ", ".join(str(v) for v in value[:5]) + (" ..." if len(value) > 5 else "")
        return f"{len(value)}" + (f": {shown}" if value else "")
    if isinstance(value, dict):
        said = [f"{k} ({_said(v)})" if isinstance(v, dict) else f"{k} {_said(v)}" for k, v in value.items()
                if not (isinstance(v, str) and v.startswith("gid://"))]
        return ", ".join(said)
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Throttle:
    """The client's cost-based limiter: what it used and waited for, against the plan's budget."""

    maximum: float
    restore_rate: float
    calls: int | None = None
    points: float | None = None
    throttled: int | None = None
    waited_seconds: float | None = None
    retries: int | None = None
    available: float | None = None


@dataclass(frozen=True)
class Health:
    """``ok``, ``error`` or ``unknown`` (nothing done yet), as of ``at``; ``error`` says what failed."""

    state: str
    at: dt.datetime | None
    error: str


@dataclass(frozen=True)
class WaitingOrder:
    """A Shopify order waiting for its company to be mapped: why, since when, and its case."""

    shopify_id: str
    name: str
    received_at: dt.datetime | None
    reason: str
    source: str
    case_id: str | None


@dataclass(frozen=True)
class Waiting:
    """A company location (as Shopify says) whose orders wait for a mapping to an ERP account."""

    shop: str
    location_id: str
    company_id: str
    company_name: str
    location_name: str
    company_external_id: str | None
    location_external_id: str | None
    tax_id: str | None
    orders: list[WaitingOrder]
    mapped: dict[str, Any] | None  # a mapping kept already, whose orders could not be taken in yet

    @property
    def label(self) -> str:
        return f"{self.company_name or self.company_id}, {self.location_name or self.location_id}"

    @property
    def anchor(self) -> str:
        """An id for the page (the location's number)."""
        return f"waiting-{self.shop}-{self.location_id.rsplit('/', 1)[-1]}"


@dataclass(frozen=True)
class WaitingShop:
    """A shop's waiting company locations, and its waiting orders whose buyer is not kept (taken before the
    channel kept buyers: they are read again within the hour, or mapped with the command line)."""

    shop: str
    locations: list[Waiting]
    unknown: list[WaitingOrder]

    @property
    def count(self) -> int:
        return sum(len(w.orders) for w in self.locations) + len(self.unknown)


def waiting(conn: Connection, shop: str) -> WaitingShop:
    """The shop's orders waiting for a mapping, by the company location that bought."""
    buyers = store.all_state(conn, shop, "waiting")
    mapped = store.all_state(conn, shop, "mapped")
    by_location: dict[str, tuple[dict[str, Any], list[WaitingOrder]]] = {}
    unknown: list[WaitingOrder] = []
    for row in store.unmatched_orders(conn, shop):
        kept = buyers.get(row["shopify_id"])
        order = WaitingOrder(shopify_id=row["shopify_id"], name=row["name"], received_at=aware(row["received_at"]),
                             reason=(kept or {}).get("reason") or row["detail"], source=row["source"],
                             case_id=(kept or {}).get("case_id"))
        if not isinstance(kept, dict) or not kept.get("location_id"):
            unknown.append(order)
            continue
        by_location.setdefault(kept["location_id"], (kept, []))[1].append(order)
    locations = [Waiting(shop=shop, location_id=key, company_id=str(b.get("company_id") or ""),
                         company_name=str(b.get("company_name") or ""), location_name=str(b.get("location_name") or ""),
                         company_external_id=b.get("company_external_id"),
                         location_external_id=b.get("location_external_id"), tax_id=b.get("tax_id"), orders=orders,
                         mapped=mapped.get(key) or mapped.get(str(b.get("company_id") or "")))
                 for key, (b, orders) in by_location.items()]
    return WaitingShop(shop, sorted(locations, key=lambda w: (w.orders[0].received_at is None,
                                                              w.orders[0].received_at, w.label)), unknown)


def same_tax_id(shopify: str | None, erp: str | None) -> bool | None:
    """Whether the tax id Shopify has for the location is the account's (None: one of them has none)."""
    a, b = (re.sub(r"[^0-9A-Z]", "", (v or "").upper()) for v in (shopify, erp))
    return None if not a or not b else a == b


def find_waiting(conn: Connection, shop: str, location_id: str) -> Waiting | None:
    """The waiting company location ``location_id`` of the shop, if its orders still wait."""
    return next((w for w in waiting(conn, shop).locations if w.location_id == location_id), None)


@dataclass(frozen=True)
class Notice:
    """What a mapping made from the dashboard came to, as kept beside it (shown after the redirect)."""

    shop: str
    shopify_id: str
    account: str
    account_name: str
    by: str
    at: dt.datetime | None
    company: str
    location: str
    taken: list[tuple[str, str]]
    waiting: int
    failure: str


def notice(conn: Connection, shop: str, shopify_id: str) -> Notice | None:
    said = store.get_state(conn, shop, "mapped", shopify_id)
    if not isinstance(said, dict):
        return None
    return Notice(shop=shop, shopify_id=shopify_id, account=str(said.get("account", "")),
                  account_name=str(said.get("account_name", "")), by=str(said.get("by") or said.get("actor") or ""),
                  at=_time(said.get("at")), company=str(said.get("company", "")),
                  location=str(said.get("location", "")),
                  taken=[(str(n), str(o)) for n, o in said.get("taken") or []], waiting=int(said.get("waiting") or 0),
                  failure=str(said.get("failure") or ""))


@dataclass(frozen=True)
class ShopPanel:
    """Everything the page shows of one shop."""

    name: str
    domain: str
    plan: str
    channel: str
    currency: str
    token: bool
    secret: bool
    health: Health
    throttle: Throttle
    lag: Lag
    events: dict[str, int]
    orders: dict[str, int]
    tasks: dict[str, int]
    watermark: dt.datetime | None
    reconcile: Report | None
    pushes: list[Report]
    refused: list[RowMapping]
    recent_orders: list[RowMapping]
    recent_events: list[RowMapping]


def panels(hub: Any, conn: Connection, now: dt.datetime, limit: int = 20) -> tuple[list[ShopPanel], list[RowMapping]]:
    """A panel per configured shop, and the refused deliveries no configured shop owns (unknown shop)."""
    shops = hub.settings.shopify.shops
    refused = store.recent_refused(conn, limit=200)
    domains = {s.domain.lower() for s in shops}
    strangers = [r for r in refused if r["shop_domain"].lower() not in domains][:limit]
    return [_panel(hub, conn, s, refused, now, limit) for s in shops], strangers


def _panel(hub: Any, conn: Connection, s: ShopifyShopSettings, refused: list[RowMapping], now: dt.datetime,
           limit: int) -> ShopPanel:
    reports = _reports(conn, s.name)
    mark = store.get_state(conn, s.name, "watermark", "reconcile")
    events = store.event_counts(conn, s.name)
    recent_events = store.recent_events(conn, s.name, limit=limit)
    throttle = throttle_of(_client(hub, s.name), s.plan)
    return ShopPanel(
        name=s.name, domain=s.domain, plan=s.plan, channel=s.channel_name, currency=s.currency,
        token=bool(s.access_token()), secret=bool(s.webhook_secrets()),
        health=health_of(reports, recent_events, throttle), throttle=throttle,
        lag=_lag(conn, s.name, events), events=events, orders=store.order_counts(conn, s.name),
        tasks=store.task_counts(conn, s.name), watermark=_time(mark), reconcile=reports.get("reconcile"),
        pushes=[reports[k] for k in PUSHES if k in reports],
        refused=[r for r in refused if r["shop_domain"].lower() == s.domain.lower()][:limit],
        recent_orders=store.recent_orders(conn, s.name, limit=limit),
        recent_events=recent_events)


def _reports(conn: Connection, shop: str) -> dict[str, Report]:
    c = shopify_state.c
    found = {}
    for key, value, at in conn.execute(select(c.key, c.value, c.updated_at).where(c.shop == shop,
                                                                                  c.kind == "report")):
        try:
            values = json.loads(value)
        except ValueError:
            values = {"unreadable": value[:200]}
        found[str(key)] = Report(str(key), aware(at), values if isinstance(values, dict) else {"value": values})
    return found


def _lag(conn: Connection, shop: str, counts: dict[str, int]) -> Lag:
    c = shopify_events.c
    rows = conn.execute(select(c.triggered_at, c.received_at).where(c.shop == shop, c.triggered_at.is_not(None))
                        .order_by(c.received_at.desc()).limit(LAG_SAMPLE)).all()
    lags = [max(0.0, (aware(received) - aware(triggered)).total_seconds())  # type: ignore[operator]
            for triggered, received in rows]
    return Lag(sample=len(lags), median=statistics.median(lags) if lags else None, max=max(lags) if lags else None,
               waiting=counts.get("received", 0) + counts.get("waiting", 0), failed=counts.get("failed", 0))


def lag(seconds: float | None) -> str:
    """A webhook lag: hundredths under a minute (a healthy lag is well under a second), else as an age."""
    if seconds is None:
        return "-"
    return f"{seconds:.2f}s" if seconds < 60 else duration(seconds)


def _client(hub: Any, shop: str) -> Any:
    channel = getattr(hub, "shopify", None)
    if channel is None:
        return None
    try:
        return channel.shop(shop).client
    except KeyError:
        return None


def throttle_of(client: Any, plan: str) -> Throttle:
    """The client's limiter: its stats (calls, points, throttled answers, seconds waited) and its budget
    (Shopify's own figures once it has answered; the plan's until then)."""
    maximum, restore = PLAN_BUDGETS.get(plan, PLAN_BUDGETS["standard"])
    if client is None:
        return Throttle(maximum=maximum, restore_rate=restore)
    stats, budget = getattr(client, "stats", None), getattr(client, "budget", None)
    return Throttle(
        maximum=float(getattr(budget, "maximum", maximum)),
        restore_rate=float(getattr(budget, "restore_rate", restore)),
        available=getattr(budget, "available", None), calls=getattr(stats, "calls", None),
        points=getattr(stats, "points", None), throttled=getattr(stats, "throttled", None),
        waited_seconds=getattr(stats, "waited_seconds", None), retries=getattr(stats, "retries", None))


def health_of(reports: dict[str, Report], events: list[RowMapping], throttle: Throttle) -> Health:
    """Whether the shop's last call went through, as far as the store and this process know: the newest of
    the kept reports (a push or the sweep with errors failed) and of the events worked (Shopify unreachable
    leaves the event waiting with that detail)."""
    outcomes: list[tuple[dt.datetime, str]] = []
    for report in reports.values():
        if report.at is not None:
            errors = report.values.get("errors") or []
            outcomes.append((report.at, f"{report.kind}: {errors[0]}" if errors else ""))
    for event in events:
        at = aware(event["processed_at"]) or aware(event["received_at"])
        if at is None or event["attempts"] == 0:
            continue
        said = event["detail"] or ""
        failed = said.startswith("Shopify unreachable") or (event["state"] == "failed" and "Shopify" in said)
        outcomes.append((at, f"event {event['event_id']}: {said}" if failed else ""))
        break  # the newest worked event is enough
    if not outcomes:
        return Health("ok" if throttle.calls else "unknown", None, "")
    at, error = max(outcomes, key=lambda o: o[0])
    return Health("error" if error else "ok", at, error)


def _time(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return aware(value)
    try:
        return aware(dt.datetime.fromisoformat(str(value)))
    except ValueError:
        return None


__all__ = ["Health", "Lag", "Notice", "Report", "ShopPanel", "Throttle", "Waiting", "WaitingOrder", "WaitingShop",
           "find_waiting", "health_of", "lag", "notice", "panels", "same_tax_id", "throttle_of", "waiting"]
