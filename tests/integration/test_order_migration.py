"""Migration 0013 on a store written by the code before it (``tests/fixtures/store_shape1.json``, made by
``tests/fixtures/make_shape1_store.py``): every order of every state upgrades, reads back with the typed
model exactly as it was stored, answers ``GET /v1/orders/{id}`` as before, and downgrades to what it was."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Table, select, text

from ordersync.domain.cases import CasePolicy
from ordersync.domain.order import OrderRecord
from ordersync.reads.orders import order_view
from ordersync.store.db import Database
from ordersync.store.migrate import alembic_config, upgrade
from ordersync.store.orders import OrderRepository
from ordersync.store.schema import metadata, orders

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "store_shape1.json").read_text())
TABLES = ("orders", "order_transitions", "order_fulfillment", "cases", "shipments", "invoices")


def _time(value: Any) -> Any:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) and value[:4].isdigit() and "T" in value \
        else value


def old_store(url: str) -> Database:
    """A store at revision 0012 holding the fixture's rows, as the code before 0013 wrote them."""
    db = Database(url)
    with db.engine.begin() as conn:  # start from nothing: the fixture's schema is that of 0012
        for table in reversed(metadata.sorted_tables):
            conn.execute(text(f"DROP TABLE IF EXISTS {table.name} CASCADE" if not db.is_sqlite
                              else f"DROP TABLE IF EXISTS {table.name}"))
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(db, "0012")
    with db.engine.begin() as conn:
        for name in TABLES:
            table = Table(name, metadata)
            columns = {c.name for c in table.columns} - {"total", "backordered"}
            rows = [{k: _time(v) for k, v in row.items() if k in columns} for row in FIXTURE[name]]
            if rows:
                conn.execute(table.insert(), rows)
    return db


@pytest.fixture
def migrated(store_url: str) -> Any:
    db = old_store(store_url)
    upgrade(db, "head")
    yield db
    db.dispose()


def test_the_fixture_has_orders_of_every_kind_the_old_code_stored() -> None:
    states = {r["state"] for r in FIXTURE["orders"]}
    assert {"received", "rejected", "on_hold", "accepted", "shipped", "invoiced", "cancelled"} <= states
    keys = set().union(*(json.loads(r["data"]).keys() for r in FIXTURE["orders"]))
    assert {"lines", "total", "credit", "credit_approved", "hold", "allocations", "erp_orders", "rejection",
            "fulfillment", "shipped_at", "invoiced_at", "erp_promised", "backorder_revisions",
            "backorder_overdue", "amendments"} <= keys


def test_every_stored_order_upgrades_and_reads_back_as_it_was(migrated: Database) -> None:
    with migrated.read() as conn:
        repo = OrderRepository(conn)
        columns = {r.id: r for r in conn.execute(select(orders.c.id, orders.c.total, orders.c.backordered))}
        for row in FIXTURE["orders"]:
            record = repo.get(row["id"])
            old = json.loads(row["data"])
            assert (record.state.value, record.version) == (row["state"], row["version"])
            assert_same(record, old, row["held_from"])
            assert columns[row["id"]].total == old.get("total")
            assert columns[row["id"]].backordered is any(a["backorder"] for a in old.get("allocations", []))


def assert_same(record: OrderRecord, old: dict[str, Any], held_from: str | None) -> None:
    """The typed parts say what the shape-1 document said, key by key."""
    assert record.erp == old.get("erp") and record.ship_to_region == old.get("ship_to_region")
    lines = {str(x.line_no): x for x in record.lines}
    assert lines.keys() == old.get("lines", {}).keys()
    for key, was in old.get("lines", {}).items():
        line = lines[key]
        assert (line.sku, line.category, str(line.quantity), str(line.unit_price), str(line.contract_unit_price),
                str(line.amount)) == (was["sku"], was.get("category", ""), was["quantity"], was["unit_price"],
                                      was["contract_unit_price"], was["amount"])
        assert [a.model_dump(mode="json") for a in line.adjustments] == was.get("adjustments", [])
        assert line.cancelled is bool(was.get("cancelled"))
        assert (line.requested_date.isoformat() if line.requested_date else None) == was.get("requested_date")
    assert (str(record.total) if record.total is not None else None) == old.get("total")
    assert [a.model_dump(mode="json") for a in record.allocations] == old.get("allocations", [])
    assert {e.reference: {"outcome": e.outcome.value, "number": e.number, "id": e.id, "message": e.message,
                          "reconciled": e.reconciled} for e in record.erp_orders} == old.get("erp_orders", {})
    assert [r.as_dict() for r in record.rejection] == old.get("rejection", [])
    assert record.credit_approved is bool(old.get("credit_approved"))
    if "credit" in old:
        assert record.credit is not None and {k: str(getattr(record.credit, k)) for k in
                                              ("limit", "exposure", "available")} == {
            k: old["credit"][k] for k in ("limit", "exposure", "available")}
        assert record.credit.as_of == dt.datetime.fromisoformat(old["credit"]["as_of"])
    if record.state.value == "on_hold":
        assert record.hold is not None and held_from is not None
        assert (record.hold.case_id, record.hold.type.value, record.hold.reason, record.hold.interrupted.value) == (
            old["hold"]["case_id"], old["hold"]["type"], old["hold"]["reason"], held_from)
        assert record.held_from is not None and record.held_from.value == held_from
    else:
        assert record.hold is None and record.held_from is None
    times = record.fulfillment.times()
    for key, at in times.items():
        assert at == (dt.datetime.fromisoformat(old[key]) if old.get(key) else None), key
    clocks = old.get("fulfillment", {}).get("invoices", {})
    assert record.fulfillment.invoices.keys() == clocks.keys()
    for key, clock in clocks.items():
        mine = record.fulfillment.invoices[key]
        assert (mine.number, mine.posted_at, mine.visible_at) == (clock["number"],
                                                                 dt.datetime.fromisoformat(clock["posted_at"]),
                                                                 dt.datetime.fromisoformat(clock["visible_at"]))
    assert {k: v.isoformat() for k, v in record.backorders.erp_promised.items()} == old.get("erp_promised", {})
    assert {k: v.isoformat() for k, v in record.backorders.overdue.items()} == old.get("backorder_overdue", {})
    assert [(r.at, r.line_no, r.plant, r.previous.isoformat(), r.revised.isoformat())
            for r in record.backorders.revisions] == [
        (dt.datetime.fromisoformat(r["at"]), r["line_no"], r["plant"], r["from"], r["to"])
        for r in old.get("backorder_revisions", [])]
    assert [(a.at, a.actor, [x.model_dump(mode="json") for x in a.applied],
             [x.model_dump(mode="json") for x in a.refused]) for a in record.amendments] == [
        (dt.datetime.fromisoformat(a["at"]), a["actor"], a["applied"], a["refused"])
        for a in old.get("amendments", [])]


#: members the order view gained after the fixture was made (added members keep old readers working)
ADDED_SINCE = {"trace_id": None, "traces": []}  # traces by order (issue 18): none for orders made before


def test_the_order_view_answers_as_it_did_before_the_migration(migrated: Database) -> None:
    with migrated.read() as conn:
        for order_id, before in FIXTURE["views"].items():
            view = json.loads(json.dumps(order_view(conn, order_id), default=str))
            assert {k: view.pop(k) for k in ADDED_SINCE} == ADDED_SINCE
            assert view == before, order_id


def test_the_migrated_orders_decide_on(migrated: Database) -> None:
    """A migrated order is a live aggregate: the held ones release, the accepted ones take amendments."""
    with migrated.read() as conn:
        repo = OrderRepository(conn)
        held = [repo.get(r["id"]) for r in FIXTURE["orders"] if r["state"] == "on_hold"]
        amended = next(repo.get(r["id"]) for r in FIXTURE["orders"] if r["external_order_number"] == "S1-AMENDED")
    at = dt.datetime(2027, 1, 4, 9, tzinfo=dt.UTC)
    for record in held:
        assert record.hold is not None
        record.release_hold(decision="cancel", case_type=record.hold.type, actor="test", at=at, plan=None,
                            cases=CasePolicy())
        assert record.state.value == "cancelled" and record.hold is None
    assert amended.line(1) is not None and amended.line(1).quantity == Decimal(6)  # type: ignore[union-attr]
    assert amended.line(2) is not None and amended.line(2).cancelled  # type: ignore[union-attr]


def test_the_downgrade_writes_the_old_documents_back(store_url: str) -> None:
    db = old_store(store_url)
    upgrade(db, "head")
    cfg = alembic_config(db)
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0012")
        conn.commit()
    with db.read() as conn:
        stored = {r.id: json.loads(r.data) for r in conn.execute(text("SELECT id, data FROM orders"))}
    assert stored == {r["id"]: json.loads(r["data"]) for r in FIXTURE["orders"]}
    upgrade(db, "head")  # leave the shared PostgreSQL database at the newest schema for the next tests
    db.dispose()
