"""The Shopify connector in the store: webhook events kept before they are answered and worked under a
lease, refused deliveries, which hub order each Shopify order became, outbound tasks with retries, and
the connector's links and watermarks (JSON per shop, kind and key)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Connection, RowMapping, func, or_, select, update

from ordersync.store.schema import shopify_events, shopify_orders, shopify_refused, shopify_state, shopify_tasks
from ordersync.store.sql import insert_ignore

#: event states still to be worked
OPEN_EVENT_STATES = ("received", "waiting")


# -- events -------------------------------------------------------------------------------------------

def keep_event(conn: Connection, *, event_key: str, shop: str, event_id: str, webhook_id: str, topic: str,
               resource_id: str, triggered_at: dt.datetime | None, received_at: dt.datetime,
               body: bytes) -> tuple[str, bool]:
    """Keep a delivery unless its event is kept already. Returns (the kept event's id, whether this
    delivery was the first); a repeated delivery is counted on the first one."""
    first = insert_ignore(conn, shopify_events, {
        "id": event_key, "shop": shop, "event_id": event_id, "webhook_id": webhook_id, "topic": topic,
        "resource_id": resource_id, "triggered_at": triggered_at, "received_at": received_at, "deliveries": 1,
        "body": body, "state": "received", "detail": "", "attempts": 0}, ["shop", "event_id"])
    if first:
        return event_key, True
    c = shopify_events.c
    conn.execute(update(shopify_events).where(c.shop == shop, c.event_id == event_id)
                 .values(deliveries=c.deliveries + 1))
    kept = conn.execute(select(c.id).where(c.shop == shop, c.event_id == event_id)).scalar_one()
    return str(kept), False


def refuse(conn: Connection, *, shop_domain: str, topic: str, event_id: str, reason: str, size: int, sha256: str,
           remote: str, at: dt.datetime) -> None:
    conn.execute(shopify_refused.insert().values(shop_domain=shop_domain[:255], topic=topic[:64],
                                                 event_id=event_id[:120], reason=reason[:200], size=size,
                                                 sha256=sha256, remote=remote[:64], received_at=at))


def waiting_events(conn: Connection, now: dt.datetime, limit: int = 50) -> list[str]:
    """Kept events to work now, oldest first (by when Shopify says they happened)."""
    c = shopify_events.c
    rows = conn.execute(select(c.id).where(
        c.state.in_(OPEN_EVENT_STATES), or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
        or_(c.lease_until.is_(None), c.lease_until < now),
    ).order_by(c.received_at).limit(limit))
    return [str(r[0]) for r in rows]


def claim_event(conn: Connection, event_key: str, *, now: dt.datetime, until: dt.datetime) -> bool:
    c = shopify_events.c
    return conn.execute(update(shopify_events).where(
        c.id == event_key, c.state.in_(OPEN_EVENT_STATES), or_(c.lease_until.is_(None), c.lease_until < now),
    ).values(lease_until=until, attempts=c.attempts + 1)).rowcount == 1


def event(conn: Connection, event_key: str) -> RowMapping | None:
    return conn.execute(select(shopify_events).where(shopify_events.c.id == event_key)).mappings().first()


def finish_event(conn: Connection, event_key: str, *, state: str, detail: str, now: dt.datetime,
                 retry_at: dt.datetime | None = None) -> None:
    """Record what working the event came to; ``retry_at`` (state ``waiting``) looks again then."""
    conn.execute(update(shopify_events).where(shopify_events.c.id == event_key).values(
        state=state, detail=detail[:2000], lease_until=None, next_attempt_at=retry_at,
        processed_at=None if retry_at else now))


def wake_waiting(conn: Connection, shop: str, now: dt.datetime) -> int:
    """Work the shop's waiting events now (a mapping was added)."""
    c = shopify_events.c
    return int(conn.execute(update(shopify_events).where(c.shop == shop, c.state == "waiting")
                            .values(next_attempt_at=now)).rowcount)


def release_leases(conn: Connection) -> int:
    """Forget every lease (for a store only one worker uses, after a crash)."""
    released = conn.execute(update(shopify_events).where(shopify_events.c.lease_until.is_not(None))
                            .values(lease_until=None)).rowcount
    released += conn.execute(update(shopify_tasks).where(shopify_tasks.c.lease_until.is_not(None))
                             .values(lease_until=None)).rowcount
    return int(released)


def recent_events(conn: Connection, shop: str | None = None, limit: int = 50) -> list[RowMapping]:
    c = shopify_events.c
    query = select(c.id, c.shop, c.event_id, c.topic, c.resource_id, c.triggered_at, c.received_at, c.deliveries,
                   c.state, c.detail, c.attempts, c.processed_at)
    if shop:
        query = query.where(c.shop == shop)
    return list(conn.execute(query.order_by(c.received_at.desc()).limit(limit)).mappings())


def event_counts(conn: Connection, shop: str) -> dict[str, int]:
    c = shopify_events.c
    rows = conn.execute(select(c.state, func.count()).where(c.shop == shop).group_by(c.state))
    return {str(state): int(n) for state, n in rows}


def recent_refused(conn: Connection, limit: int = 20) -> list[RowMapping]:
    return list(conn.execute(select(shopify_refused).order_by(shopify_refused.c.id.desc()).limit(limit)).mappings())


# -- orders -------------------------------------------------------------------------------------------

def order_link(conn: Connection, shop: str, shopify_id: str) -> RowMapping | None:
    c = shopify_orders.c
    return conn.execute(select(shopify_orders).where(c.shop == shop, c.shopify_id == shopify_id)).mappings().first()


def order_source(conn: Connection, order_id: str) -> RowMapping | None:
    """The Shopify order a hub order came from, if it did."""
    return conn.execute(select(shopify_orders).where(shopify_orders.c.order_id == order_id)).mappings().first()


def save_order(conn: Connection, *, shop: str, shopify_id: str, name: str, at: dt.datetime, source: str,
               state: str, order_id: str | None = None, account_id: str | None = None,
               updated_at: dt.datetime | None = None, cancelled_at: dt.datetime | None = None,
               paid: bool | None = None, detail: str = "") -> None:
    """Insert or bring up to date what we know of a Shopify order (its hub order never changes once set)."""
    c = shopify_orders.c
    values: dict[str, Any] = {"name": name[:64], "state": state, "detail": detail[:2000]}
    if account_id is not None:
        values["account_id"] = account_id
    if updated_at is not None:
        values["updated_at"] = updated_at
    if cancelled_at is not None:
        values["cancelled_at"] = cancelled_at
    if paid is not None:
        values["paid"] = paid
    inserted = insert_ignore(conn, shopify_orders, {
        "shop": shop, "shopify_id": shopify_id, "order_id": order_id, "source": source, "received_at": at,
        "paid": bool(paid), **values}, ["shop", "shopify_id"])
    if not inserted:
        if order_id is not None:
            conn.execute(update(shopify_orders).where(c.shop == shop, c.shopify_id == shopify_id,
                                                      c.order_id.is_(None)).values(order_id=order_id))
        conn.execute(update(shopify_orders).where(c.shop == shop, c.shopify_id == shopify_id).values(**values))


def order_counts(conn: Connection, shop: str) -> dict[str, int]:
    c = shopify_orders.c
    rows = conn.execute(select(c.state, func.count()).where(c.shop == shop).group_by(c.state))
    return {str(state): int(n) for state, n in rows}


def unmatched_orders(conn: Connection, shop: str) -> list[RowMapping]:
    """The shop's orders waiting for a company mapping (not taken in), oldest first."""
    c = shopify_orders.c
    return list(conn.execute(select(shopify_orders).where(c.shop == shop, c.state == "unmatched",
                                                          c.order_id.is_(None))
                             .order_by(c.received_at)).mappings())


def recent_orders(conn: Connection, shop: str, limit: int = 20) -> list[RowMapping]:
    c = shopify_orders.c
    return list(conn.execute(select(shopify_orders).where(c.shop == shop)
                             .order_by(c.received_at.desc()).limit(limit)).mappings())


# -- tasks --------------------------------------------------------------------------------------------

def queue_task(conn: Connection, *, task_id: str, shop: str, kind: str, business_key: str, body: dict[str, Any],
               now: dt.datetime, order_id: str | None = None) -> bool:
    """Write the task for this business fact unless it is written already (returns whether it was)."""
    return insert_ignore(conn, shopify_tasks, {
        "id": task_id, "shop": shop, "kind": kind, "business_key": business_key[:200], "order_id": order_id,
        "body": json.dumps(body, default=str, sort_keys=True), "state": "queued", "attempts": 0,
        "next_attempt_at": now, "last_error": "", "result": "", "created_at": now}, ["business_key"])


def due_tasks(conn: Connection, now: dt.datetime, limit: int = 20) -> list[RowMapping]:
    c = shopify_tasks.c
    return list(conn.execute(select(shopify_tasks).where(
        c.state == "queued", or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
        or_(c.lease_until.is_(None), c.lease_until < now),
    ).order_by(c.created_at).limit(limit)).mappings())


def claim_task(conn: Connection, task_id: str, *, now: dt.datetime, until: dt.datetime) -> bool:
    c = shopify_tasks.c
    return conn.execute(update(shopify_tasks).where(
        c.id == task_id, c.state == "queued", or_(c.lease_until.is_(None), c.lease_until < now),
    ).values(lease_until=until, attempts=c.attempts + 1)).rowcount == 1


def finish_task(conn: Connection, task_id: str, *, state: str, now: dt.datetime, result: str = "",
                error: str = "", retry_at: dt.datetime | None = None) -> None:
    """``done`` / ``dead`` end it; ``queued`` with ``retry_at`` tries again then."""
    conn.execute(update(shopify_tasks).where(shopify_tasks.c.id == task_id).values(
        state=state, lease_until=None, next_attempt_at=retry_at, result=result[:4000], last_error=error[:2000],
        done_at=now if state in ("done", "dead") else None))


def tasks_of(conn: Connection, *, order_id: str | None = None, kind: str | None = None) -> list[RowMapping]:
    c = shopify_tasks.c
    query = select(shopify_tasks)
    if order_id is not None:
        query = query.where(c.order_id == order_id)
    if kind is not None:
        query = query.where(c.kind == kind)
    return list(conn.execute(query.order_by(c.created_at)).mappings())


def task_counts(conn: Connection, shop: str) -> dict[str, int]:
    c = shopify_tasks.c
    rows = conn.execute(select(c.state, func.count()).where(c.shop == shop).group_by(c.state))
    return {str(state): int(n) for state, n in rows}


# -- links and watermarks -----------------------------------------------------------------------------

def get_state(conn: Connection, shop: str, kind: str, key: str = "") -> Any:
    c = shopify_state.c
    value = conn.execute(select(c.value).where(c.shop == shop, c.kind == kind, c.key == key)).scalar()
    return None if value is None else json.loads(value)


def put_state(conn: Connection, shop: str, kind: str, key: str, value: Any, now: dt.datetime) -> None:
    c = shopify_state.c
    text = json.dumps(value, default=str, sort_keys=True)
    if not insert_ignore(conn, shopify_state, {"shop": shop, "kind": kind, "key": key, "value": text,
                                               "updated_at": now}, ["shop", "kind", "key"]):
        conn.execute(update(shopify_state).where(c.shop == shop, c.kind == kind, c.key == key)
                     .values(value=text, updated_at=now))


def delete_state(conn: Connection, shop: str, kind: str, key: str) -> bool:
    c = shopify_state.c
    return bool(conn.execute(shopify_state.delete().where(c.shop == shop, c.kind == kind, c.key == key)).rowcount)


def all_state(conn: Connection, shop: str, kind: str) -> dict[str, Any]:
    c = shopify_state.c
    rows = conn.execute(select(c.key, c.value).where(c.shop == shop, c.kind == kind))
    return {str(k): json.loads(v) for k, v in rows}
