"""Table definitions (SQLAlchemy Core). Alembic migrations create exactly these; a test compares them.

Naming: ``*_at`` columns are UTC timestamps; ``body`` columns hold JSON text exactly as received or
produced (dead letters keep malformed input verbatim).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Stores naive UTC, returns aware UTC, refuses naive input (a naive time is a bug)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: ordersync stores UTC-aware times only")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite returns text for some expressions (e.g. MIN())
            value = dt.datetime.fromisoformat(value)
        result: dt.datetime = value.replace(tzinfo=dt.UTC)
        return result


Id = String(64)

orders = Table(
    "orders",
    metadata,
    Column("id", Id, primary_key=True),
    Column("channel", String(64), nullable=False),
    Column("external_order_number", String(120), nullable=False),
    Column("account_id", String(120), nullable=False),
    Column("state", String(32), nullable=False),
    Column("held_from", String(32)),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("channel", "external_order_number", name="uq_orders_business_key"),
    Index("ix_orders_account_state", "account_id", "state"),
    Index("ix_orders_state_updated", "state", "updated_at"),
)

order_transitions = Table(
    "order_transitions",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("order_id", Id, ForeignKey("orders.id"), nullable=False),
    Column("from_state", String(32)),
    Column("to_state", String(32), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("cause", Text, nullable=False),
    Index("ix_order_transitions_order", "order_id", "id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("message_id", Id, nullable=False, unique=True),
    Column("type", String(120), nullable=False),
    Column("correlation_id", Id),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("body", Text, nullable=False),
    Column("published_at", UtcDateTime),
    Index(
        "ix_outbox_unpublished",
        "seq",
        sqlite_where=Column("published_at").is_(None),
        postgresql_where=Column("published_at").is_(None),
    ),
    Index("ix_outbox_correlation", "correlation_id", "seq"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("consumer", String(120), nullable=False),
    Column("message_id", Id, nullable=False),
    Column("correlation_id", Id),
    Column("seq", BigInteger),
    Column("body", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_until", UtcDateTime),
    Column("history", Text, nullable=False, default="[]"),
    Index("ix_deliveries_due", "consumer", "next_attempt_at", "id"),
    Index("ix_deliveries_key", "consumer", "correlation_id", "id"),
)

inbox = Table(
    "inbox",
    metadata,
    Column("consumer", String(120), primary_key=True),
    Column("message_id", Id, primary_key=True),
    Column("seq", BigInteger),
    Column("processed_at", UtcDateTime, nullable=False),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Id, primary_key=True),
    Column("consumer", String(120), nullable=False),
    Column("message_id", Id),
    Column("type", String(120)),
    Column("correlation_id", Id),
    Column("seq", BigInteger),
    Column("body", Text, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("history", Text, nullable=False),
    Column("dead_at", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("replay_count", Integer, nullable=False, default=0),
    Column("replayed_at", UtcDateTime),
    Index("ix_dead_letters_status_dead_at", "status", "dead_at"),
    Index("ix_dead_letters_correlation", "correlation_id"),
)

order_counters = Table(
    "order_counters",
    metadata,
    Column("name", String(120), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# -- ERP integration (migration 0002) ----------------------------------------------------------------

account_routes = Table(
    "account_routes",
    metadata,
    Column("account_id", String(120), primary_key=True),
    Column("erp", String(64), nullable=False),
    Column("source", String(16), nullable=False),  # config | discovered
    Column("updated_at", UtcDateTime, nullable=False),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

erp_changes = Table(
    "erp_changes",
    metadata,
    Column("erp", String(64), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("version", String(200), primary_key=True),
    Column("seen_at", UtcDateTime, nullable=False),
    Index("ix_erp_changes_seen_at", "seen_at"),
)

# -- order submission (migration 0003) --------------------------------------------------------------

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(120), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("order_id", Id, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

cases = Table(
    "cases",
    metadata,
    Column("id", Id, primary_key=True),
    Column("type", String(40), nullable=False),
    Column("state", String(20), nullable=False),
    Column("order_id", Id),
    Column("account_id", String(120)),
    Column("owner_team", String(64), nullable=False),
    Column("owner_level", Integer, nullable=False),
    Column("due_at", UtcDateTime),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("resolved_at", UtcDateTime),
    Column("dead_letter_id", Id),
    Column("body", Text, nullable=False),
    Index("ix_cases_state_type", "state", "type"),
    Index("ix_cases_order", "order_id"),
)

# -- experience API (migration 0004) ----------------------------------------------------------------

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("name", String(120), nullable=False),
    Column("client", String(32), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("account_id", String(120)),
    Column("scopes", Text, nullable=False),
    Column("rate_per_minute", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)

# -- read model for the experience API (migration 0005) ---------------------------------------------

rm_stock = Table(
    "rm_stock",
    metadata,
    Column("sku", String(120), primary_key=True),
    Column("plant", String(64), primary_key=True),
    Column("erp", String(64), nullable=False),
    Column("body", Text, nullable=False),  # StockPosition JSON
    Column("as_of", UtcDateTime, nullable=False),
    Column("refreshed_at", UtcDateTime, nullable=False),
    Index("ix_rm_stock_refreshed_at", "refreshed_at"),
)

rm_prices = Table(
    "rm_prices",
    metadata,
    Column("account_id", String(120), primary_key=True),
    Column("sku", String(120), primary_key=True),
    Column("quantity", String(40), primary_key=True),  # normalized decimal text
    Column("erp", String(64), nullable=False),
    Column("body", Text, nullable=False),  # PriceQuote JSON (ERP contract price, no channel rules)
    Column("as_of", UtcDateTime, nullable=False),
    Column("refreshed_at", UtcDateTime, nullable=False),
    Index("ix_rm_prices_refreshed_at", "refreshed_at"),
)

rm_catalogs = Table(
    "rm_catalogs",
    metadata,
    Column("account_id", String(120), primary_key=True),
    Column("erp", String(64), nullable=False),
    Column("body", Text, nullable=False),  # list of Product JSON with the account's part numbers
    Column("etag", String(64), nullable=False),
    Column("as_of", UtcDateTime, nullable=False),
    Column("refreshed_at", UtcDateTime, nullable=False),
)

# -- order self-service: documents and return requests (migration 0006) -----------------------------

# Shipments and invoices of hub orders as the ERP last reported them (projections of
# erp.shipment_changed / erp.invoice_posted), keyed like the ERP keys them.
shipments = Table(
    "shipments",
    metadata,
    Column("erp", String(64), primary_key=True),
    Column("shipment_id", String(120), primary_key=True),
    Column("order_id", Id, nullable=False),
    Column("account_id", String(120), nullable=False),
    Column("reference", String(200)),
    Column("state", String(20), nullable=False),
    Column("body", Text, nullable=False),  # canonical Shipment JSON
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_shipments_order", "order_id"),
)

invoices = Table(
    "invoices",
    metadata,
    Column("erp", String(64), primary_key=True),
    Column("invoice_id", String(120), primary_key=True),
    Column("order_id", Id, nullable=False),
    Column("account_id", String(120), nullable=False),
    Column("reference", String(200)),
    Column("number", String(120), nullable=False),
    Column("state", String(20), nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),  # posted_at, else when the hub first saw it
    Column("body", Text, nullable=False),  # canonical Invoice JSON
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_invoices_order", "order_id"),
    Index("ix_invoices_account_issued", "account_id", "issued_at", "erp", "invoice_id"),
)

return_requests = Table(
    "return_requests",
    metadata,
    Column("id", Id, primary_key=True),
    Column("order_id", Id, ForeignKey("orders.id"), nullable=False),
    Column("account_id", String(120), nullable=False),
    Column("state", String(20), nullable=False),
    Column("body", Text, nullable=False),  # canonical ReturnAuthorization JSON
    Column("requested_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_return_requests_order", "order_id"),
)

# Order history per account, newest first (keyset pagination of GET /v1/orders).
Index("ix_orders_account_received", orders.c.account_id, orders.c.received_at, orders.c.id)
