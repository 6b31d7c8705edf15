"""Building hubs for flow tests, and driving orders through them."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ordersync.api.keys import KeyService
from ordersync.bootstrap import Hub, build_hub
from ordersync.canonical.v1 import Order, OrderLine
from ordersync.config import ErpSettings, Settings
from ordersync.domain.clock import Clock
from ordersync.flows.services.intake import Receipt, accept_order
from ordersync.ports.erp import ErpPort
from ordersync.store.schema import outbox


def erp_hub(tmp_path: Path, erps: dict[str, ErpPort], clock: Clock | None = None, store: str | None = None,
            **settings: Any) -> Hub:
    """A hub over the given ERP adapters; gates retry once and probe a tripped circuit after 0.2 s."""
    settings.setdefault("erp", [ErpSettings(name=name, kind="memory", retries=1, reset_timeout=0.2)
                                for name in erps])
    return build_hub(Settings(data_dir=tmp_path / "hub", store=store, **settings), clock=clock, erps=erps)


def order(account: str, *lines: tuple[str, int | str] | tuple[str, int | str, str], external: str = "PO-1",
          channel: str = "portal", ship_to: str | None = None, **extra: Any) -> Order:
    import uuid

    built = []
    for i, line in enumerate(lines, start=1):
        item, qty = line[0], Decimal(str(line[1]))
        fields: dict[str, Any] = {"line_no": i, "quantity": qty}
        fields["customer_part_number" if item.startswith("part:") else "sku"] = item.removeprefix("part:")
        if len(line) > 2:
            fields["unit_price_shown"] = Decimal(str(line[2]))  # type: ignore[misc]
        built.append(OrderLine(**fields))
    return Order(id=uuid.uuid4().hex, channel=channel, external_order_number=external, account_id=account,
                 ship_to_id=ship_to, lines=tuple(built), **extra)


def place(hub: Hub, o: Order, key: str | None = None, delivery: str | None = None) -> Receipt:
    with hub.uow() as uow:
        return accept_order(uow, o, scope="test", idempotency_key=key, delivery_id=delivery)


def settle(hub: Hub, rounds: int = 50) -> None:
    """Run the worker until nothing is left to do (ERP calls included)."""
    for _ in range(rounds):
        if hub.worker.drain() == 0:
            return


def state(hub: Hub, order_id: str) -> str:
    with hub.uow() as uow:
        return uow.orders.get(order_id).state.value


def record(hub: Hub, order_id: str) -> Any:
    with hub.uow() as uow:
        return uow.orders.get(order_id)


def events(hub: Hub, type_: str) -> list[str]:
    with hub.db.read() as conn:
        return list(conn.execute(select(outbox.c.body).where(outbox.c.type == type_)).scalars())


def api_key(hub: Hub, *scopes: str, account: str | None = None, client: str = "portal", rate: int = 6000) -> str:
    token, _ = KeyService(hub.db, hub.clock).create("test", client, list(scopes), account_id=account,
                                                    rate_per_minute=rate)
    return token
