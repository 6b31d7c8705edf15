"""Order repository: the business-key ledger, optimistic concurrency, and the transition history."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from ordersync.canonical.v1 import Order, OrderState
from ordersync.domain.errors import ConcurrentUpdate, Conflict, NotFound
from ordersync.domain.order import OrderRecord, Transition
from ordersync.store.schema import order_transitions, orders
from ordersync.store.sql import bulk_insert, driver_time, insert_ignore

# Built once: constructing SQLAlchemy statements per call costs more than running them on SQLite.
_BY_ID = select(orders).where(orders.c.id == bindparam("order_id"))
_SAVE = (
    update(orders)
    .where(orders.c.id == bindparam("order_id"), orders.c.version == bindparam("expected"))
    .values(
        state=bindparam("state"),
        held_from=bindparam("held_from"),
        data=bindparam("data"),
        body=bindparam("body"),
        version=bindparam("new_version"),
        updated_at=bindparam("updated_at"),
    )
)


class OrderRepository:
    """Reads and writes orders inside one transaction (``conn``)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_if_absent(self, record: OrderRecord, at: dt.datetime) -> tuple[OrderRecord, bool]:
        """Insert a new order unless its business key (channel, external order number) exists.

        Returns the stored record and whether this call created it. Two concurrent arrivals of the same
        order collapse into one row: the database's unique constraint decides, not a check-then-act.
        """
        order = record.order
        created = insert_ignore(
            self.conn,
            orders,
            {
                "id": order.id,
                "channel": order.channel,
                "external_order_number": order.external_order_number,
                "account_id": order.account_id,
                "state": record.state.value,
                "held_from": None,
                "version": 1,
                "body": order.model_dump_json(),
                "data": json.dumps(record.data),
                "received_at": at,
                "updated_at": at,
            },
            conflict=("channel", "external_order_number"),
        )
        if created:
            record.version = 1
            self._write_transitions(record)
            return record, True
        existing = self.by_business_key(order.channel, order.external_order_number)
        if existing is None:  # pragma: no cover - the conflicting row cannot vanish inside our transaction
            raise Conflict(f"order {order.channel}/{order.external_order_number} conflicted but is not visible")
        return existing, False

    def get(self, order_id: str) -> OrderRecord:
        record = self.find(order_id)
        if record is None:
            raise NotFound(f"order {order_id} not found")
        return record

    def find(self, order_id: str) -> OrderRecord | None:
        row = self.conn.execute(_BY_ID, {"order_id": order_id}).mappings().first()
        return _record(row) if row else None

    def by_business_key(self, channel: str, external_order_number: str) -> OrderRecord | None:
        row = (
            self.conn.execute(
                select(orders).where(
                    orders.c.channel == channel, orders.c.external_order_number == external_order_number
                )
            )
            .mappings()
            .first()
        )
        return _record(row) if row else None

    def save(self, record: OrderRecord, at: dt.datetime) -> None:
        """Write state and data if nobody changed the row since it was read (else :class:`Conflict`)."""
        result = self.conn.execute(
            _SAVE,
            {
                "order_id": record.id,
                "expected": record.version,
                "state": record.state.value,
                "held_from": record.held_from.value if record.held_from else None,
                "data": json.dumps(record.data, default=str),
                "body": record.order.model_dump_json(),
                "new_version": record.version + 1,
                "updated_at": at,
            },
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate(f"order {record.id} was changed concurrently (version {record.version})")
        record.version += 1
        self._write_transitions(record)

    def transitions(self, order_id: str) -> list[Transition]:
        rows = self.conn.execute(
            select(order_transitions)
            .where(order_transitions.c.order_id == order_id)
            .order_by(order_transitions.c.id)
        ).mappings()
        return [
            Transition(
                order_id=r["order_id"],
                from_state=OrderState(r["from_state"]) if r["from_state"] else None,
                to_state=OrderState(r["to_state"]),
                at=r["at"],
                cause=r["cause"],
            )
            for r in rows
        ]

    def _write_transitions(self, record: OrderRecord) -> None:
        if not record.new_transitions:
            return
        bulk_insert(
            self.conn,
            order_transitions,
            ("order_id", "from_state", "to_state", "at", "cause"),
            [
                (t.order_id, t.from_state.value if t.from_state else None, t.to_state.value,
                 driver_time(self.conn, t.at), t.cause)
                for t in record.new_transitions
            ],
        )
        record.new_transitions.clear()


def _record(row: Any) -> OrderRecord:
    return OrderRecord(
        order=Order.model_validate_json(row["body"]),
        state=OrderState(row["state"]),
        held_from=OrderState(row["held_from"]) if row["held_from"] else None,
        version=row["version"],
        data=json.loads(row["data"]),
    )
