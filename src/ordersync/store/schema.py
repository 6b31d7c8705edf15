"""Table definitions (SQLAlchemy Core). Alembic migrations create exactly these; a test compares them.
One module for every table (about 500 lines): the schema reads in one place, in the order the migrations
added its parts.

Naming: ``*_at`` columns are UTC timestamps; ``body`` columns hold JSON text exactly as received or
produced (dead letters keep malformed input verbatim).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
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
    Column("data", Text, nullable=False),  # the order's typed parts (ordersync.domain.order.parts)
    Column("received_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("total", String(40)),  # the lines' amounts as they stand (None before pricing)
    Column("backordered", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("channel", "external_order_number", name="uq_orders_business_key"),
    Index("ix_orders_account_state", "account_id", "state"),
    Index("ix_orders_state_updated", "state", "updated_at"),
    Index("ix_orders_backordered_state", "backordered", "state"),
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
    Index("ix_inbox_processed_at", "processed_at"),
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
    Index("ix_dead_letters_consumer_message", "consumer", "message_id"),
)

# Every subscribed consumer: the first outbox sequence it answers for, and the low-water mark below
# which it has processed (or dead-lettered) every event of its types (gap repair, outbox retention).
bus_consumers = Table(
    "bus_consumers",
    metadata,
    Column("consumer", String(120), primary_key=True),
    Column("since_seq", BigInteger, nullable=False),
    Column("low_seq", BigInteger, nullable=False),
    Column("registered_at", UtcDateTime, nullable=False),
    Column("checked_at", UtcDateTime),
)

# Failed attempts of a message at a consumer, when the transport is a broker (it counts deliveries, not
# failures), and how often gap repair republished it.
delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("consumer", String(120), primary_key=True),
    Column("message_id", Id, primary_key=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("history", Text, nullable=False, default="[]"),
    Column("next_attempt_at", UtcDateTime),
    Column("repairs", Integer, nullable=False, default=0),
    Column("repaired_at", UtcDateTime),
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
    Index("ix_idempotency_keys_created_at", "created_at"),
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

# -- outbound event subscriptions (webhooks; migration 0009) ----------------------------------------

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),  # the shared signing secret, as given (see runtime/outbound.py)
    Column("types", Text, nullable=False),  # space-separated event types; "*" for every outbound type
    Column("active", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("removed_at", UtcDateTime),
)

# One row per (subscription, event): the delivery's stable id, the envelope exactly as sent, and its
# progress. ``order_key`` is the event's order id ("" for events of no order): deliveries of one
# subscription and order key go out one after another, in ``id`` order.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("delivery_id", Id, nullable=False, unique=True),
    Column("subscription_id", String(32), ForeignKey("webhook_subscriptions.id"), nullable=False),
    Column("message_id", Id, nullable=False),
    Column("type", String(120), nullable=False),
    Column("order_key", Id, nullable=False),
    Column("seq", BigInteger),
    Column("body", Text, nullable=False),
    Column("state", String(16), nullable=False),  # pending | delivered | dead | cancelled
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_until", UtcDateTime),
    Column("history", Text, nullable=False),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    UniqueConstraint("subscription_id", "message_id", name="uq_webhook_deliveries_subscription_message"),
    Index("ix_webhook_deliveries_due", "state", "next_attempt_at", "id"),
    Index("ix_webhook_deliveries_key", "subscription_id", "order_key", "state", "id"),
)

# -- exception workbench and SLA clocks (migration 0008) --------------------------------------------

# Workbench pages of cases, newest first (GET /v1/ops/cases); the escalation check's overdue cases.
Index("ix_cases_opened", cases.c.opened_at, cases.c.id)
Index("ix_cases_state_due", cases.c.state, cases.c.due_at)
# SLA clocks of the orders received since a time (GET /v1/ops/sla).
Index("ix_orders_received", orders.c.received_at)

# -- fulfillment, invoicing and invoice disputes (migration 0007) ------------------------------------

# The WMS webhook's inbox: events accepted, by the warehouse's own event id. A redelivery finds its row
# and changes nothing; ``body_sha256`` tells a redelivery from an id reused for another event.
wms_events = Table(
    "wms_events",
    metadata,
    Column("source", String(64), primary_key=True),  # the API key's channel ("wms")
    Column("event_id", String(200), primary_key=True),
    Column("body_sha256", String(64), nullable=False),
    Column("type", String(20), nullable=False),
    Column("order_id", Id),  # the hub order it matched; null: unknown (a case was opened)
    Column("message_id", Id, nullable=False),  # the outbox message it became
    Column("received_at", UtcDateTime, nullable=False),
)

# Every call of an inbound webhook that got as far as its signature check, with the outcome: accepted,
# duplicate, or refused with the reason (bad or missing signature, stale timestamp, reused event id).
inbound_webhook_attempts = Table(
    "inbound_webhook_attempts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),  # which webhook: "wms"
    Column("received_at", UtcDateTime, nullable=False),
    Column("outcome", String(16), nullable=False),  # accepted | duplicate | refused | quarantined
    Column("reason", String(64), nullable=False),
    Column("key_id", String(32)),
    Column("event_id", String(200)),
    Column("body_sha256", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_inbound_webhook_attempts_received", "received_at"),
)

# What the ERP, the warehouse and the carriers reported about an order's shipments and invoices (JSON:
# {"shipments": {key: ...}, "invoices": {key: ...}}), kept beside the order so that recording a report
# writes the order's row only when its state or an SLA timestamp changes.
order_fulfillment = Table(
    "order_fulfillment",
    metadata,
    Column("order_id", Id, primary_key=True),
    Column("body", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# One row per fulfillment problem (an order's short or over-shipped line, an unknown line or order):
# the case it opened, so that re-evaluating the same facts never opens a second case.
fulfillment_problems = Table(
    "fulfillment_problems",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("case_id", Id, nullable=False),
    Column("order_id", Id),
    Column("opened_at", UtcDateTime, nullable=False),
)

# Invoice disputes: the buyer's request and the invoice_dispute case it opened (open while the case is).
invoice_disputes = Table(
    "invoice_disputes",
    metadata,
    Column("id", Id, primary_key=True),
    Column("erp", String(64), nullable=False),
    Column("invoice_id", String(120), nullable=False),
    Column("order_id", Id, nullable=False),
    Column("account_id", String(120), nullable=False),
    Column("case_id", Id, nullable=False),
    Column("body", Text, nullable=False),  # reason, comment, amount, lines, actor as requested
    Column("opened_at", UtcDateTime, nullable=False),
    Index("ix_invoice_disputes_invoice", "erp", "invoice_id"),
    Index("ix_invoice_disputes_account", "account_id", "invoice_id"),
    Index("ix_invoice_disputes_order", "order_id"),
)

# -- returns created in the ERP (migration 0010) -----------------------------------------------------

# One row per ERP return of a return request (one per plant the goods go back to), as the ERP last
# reported it: the return's state follows from its rows (see domain/returns.py).
erp_returns = Table(
    "erp_returns",
    metadata,
    Column("erp", String(64), primary_key=True),
    Column("reference", String(200), primary_key=True),
    Column("return_id", Id, ForeignKey("return_requests.id"), nullable=False),
    Column("plant", String(64), nullable=False),
    Column("erp_return_id", String(120)),
    Column("number", String(120)),
    Column("state", String(20), nullable=False),  # canonical ReturnState of this part
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_erp_returns_return", "return_id"),
)

# -- EDI interchanges (migration 0014) -----------------------------------------------------------------

# Every interchange received or sent, its bytes verbatim (stored before anything reads them: nothing is
# lost, whatever they contain), who sent it to whom and its control number (ISA13 / UNB 0020) as far as
# they could be read, and what became of it.
edi_interchanges = Table(
    "edi_interchanges",
    metadata,
    Column("id", Id, primary_key=True),
    Column("direction", String(3), nullable=False),  # in, out
    Column("partner", String(64)),  # None: not (yet) known
    Column("sender", String(40), nullable=False),  # qualifier:id as in the envelope ("" if unreadable)
    Column("receiver", String(40), nullable=False),
    Column("control_number", String(20), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("state", String(20), nullable=False),  # received, processed, duplicate, rejected, unknown_partner ...
    Column("detail", Text, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("processed_at", UtcDateTime),
    # migration 0015: what it is, what it answers, and (outgoing) its sending and the partner's answer
    Column("document", String(8), nullable=False, server_default=""),  # 850, 997, TA1, 855, 856, 810 ...
    Column("reply_to", Id),  # the incoming interchange an acknowledgment answers
    Column("business_key", String(160)),  # one document per business fact: 855:<order>, 856:<shipment> ...
    Column("order_id", Id),
    Column("group_control", String(20), nullable=False, server_default=""),  # GS06 of our one group
    Column("set_control", String(20), nullable=False, server_default=""),  # ST02 of our one set
    Column("transport", String(12), nullable=False, server_default=""),  # as2, directory, file
    Column("message_id", String(250), nullable=False, server_default=""),  # AS2 Message-ID
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime),
    Column("lease_until", UtcDateTime),  # claimed by a sender (or an inbound processor) until then
    Column("last_error", Text, nullable=False, server_default=""),
    Column("ack_state", String(12), nullable=False, server_default=""),  # awaiting, accepted, rejected, overdue
    Column("ack_due_at", UtcDateTime),
    Index("ix_edi_interchanges_sender_control", "direction", "sender", "control_number"),
    Index("ix_edi_interchanges_received_at", "received_at"),
    Index("ux_edi_interchanges_business_key", "business_key", unique=True),
    Index("ix_edi_interchanges_due", "direction", "state", "next_attempt_at"),
    Index("ix_edi_interchanges_order", "order_id"),
)

# The purchase order each EDI order came from (migration 0015): the 855, 856 and 810 answer it, echoing
# its line numbers and item IDs.
edi_orders = Table(
    "edi_orders",
    metadata,
    Column("order_id", Id, primary_key=True),
    Column("partner", String(64), nullable=False),
    Column("po_number", String(64), nullable=False),
    Column("interchange_id", Id, nullable=False),
    Column("set_control", String(20), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
)

# The last control number used per partner and level (isa, gs, st): gapless, taken in the transaction
# that writes the outgoing document to the outbox.
edi_control_numbers = Table(
    "edi_control_numbers",
    metadata,
    Column("partner", String(64), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("last", BigInteger, nullable=False),
)

# Shopify: every webhook delivery kept before it is answered (one row per Shopify event: a duplicate or
# retried delivery of the same X-Shopify-Event-Id finds it and is answered without being kept twice),
# then worked by the worker under a lease.
shopify_events = Table(
    "shopify_events",
    metadata,
    Column("id", Id, primary_key=True),
    Column("shop", String(64), nullable=False),
    Column("event_id", String(120), nullable=False),  # X-Shopify-Event-Id (else the webhook id)
    Column("webhook_id", String(120), nullable=False),  # X-Shopify-Webhook-Id of the first delivery
    Column("topic", String(64), nullable=False),
    Column("resource_id", String(120), nullable=False),  # the order's gid
    Column("triggered_at", UtcDateTime),
    Column("received_at", UtcDateTime, nullable=False),
    Column("deliveries", Integer, nullable=False, default=1),
    Column("body", LargeBinary, nullable=False),
    Column("state", String(16), nullable=False),  # received, processed, stale, ignored, waiting, failed
    Column("detail", Text, nullable=False, default=""),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime),
    Column("lease_until", UtcDateTime),
    Column("processed_at", UtcDateTime),
    UniqueConstraint("shop", "event_id"),
    Index("ix_shopify_events_state", "state", "next_attempt_at"),
)

# Deliveries refused at the door (bad signature, unknown shop, too large): kept with the reason, not
# their body (a forged body is not ours to keep).
shopify_refused = Table(
    "shopify_refused",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("shop_domain", String(255), nullable=False),
    Column("topic", String(64), nullable=False),
    Column("event_id", String(120), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("remote", String(64), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
)

# Which hub order each Shopify order is (at most one: the intake's business key makes it so) and the
# Shopify updatedAt last taken in (an older event about it is stale).
shopify_orders = Table(
    "shopify_orders",
    metadata,
    Column("shop", String(64), primary_key=True),
    Column("shopify_id", String(120), primary_key=True),  # gid://shopify/Order/...
    Column("order_id", Id),  # None until the intake took it (or when it could not be taken)
    Column("name", String(64), nullable=False),
    Column("account_id", String(120)),
    Column("updated_at", UtcDateTime),
    Column("cancelled_at", UtcDateTime),
    Column("paid", Boolean, nullable=False, default=False),
    Column("source", String(16), nullable=False),  # webhook, reconciliation, cli
    Column("state", String(16), nullable=False),  # taken, unmatched, rejected, cancelled
    Column("detail", Text, nullable=False, default=""),
    Column("received_at", UtcDateTime, nullable=False),
    Index("ix_shopify_orders_order", "order_id"),
)

# Work that goes to Shopify (a fulfillment, a cancellation, a refund, payment terms): written once per
# business fact in the transaction that learned it, sent by the worker with retries, a dead letter and a
# case when Shopify keeps refusing.
shopify_tasks = Table(
    "shopify_tasks",
    metadata,
    Column("id", Id, primary_key=True),
    Column("shop", String(64), nullable=False),
    Column("kind", String(24), nullable=False),  # fulfillment, cancel, refund, payment_terms
    Column("business_key", String(200), nullable=False, unique=True),
    Column("order_id", Id),
    Column("body", Text, nullable=False),  # JSON
    Column("state", String(12), nullable=False),  # queued, done, failed, dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime),
    Column("lease_until", UtcDateTime),
    Column("last_error", Text, nullable=False, default=""),
    Column("result", Text, nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
    Column("done_at", UtcDateTime),
    Index("ix_shopify_tasks_due", "state", "next_attempt_at"),
)

# What the connector knows about a shop beyond orders: links (company location -> ERP account, account ->
# catalog and price list, plant -> location ...) and its state (watermarks, the last reconciliation's
# findings, the last throttle status), as JSON per (shop, kind, key).
shopify_state = Table(
    "shopify_state",
    metadata,
    Column("shop", String(64), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),  # JSON
    Column("updated_at", UtcDateTime, nullable=False),
)

# People who sign in to the pages: staff (the dashboard) and buyers (the portal, bound to one account).
# A person signs in with a password (argon2 hash) and/or an OpenID Connect identity (issuer + subject);
# roles are a comma-separated list; an invitation is kept as the SHA-256 of its token until accepted;
# raising session_epoch ends every session the person has (disable, password change, sign out everywhere).
people = Table(
    "people",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # staff, buyer
    Column("account_id", String(120)),
    Column("roles", String(200), nullable=False),
    Column("password_hash", String(200)),
    Column("oidc_issuer", String(300)),
    Column("oidc_subject", String(300)),
    Column("state", String(16), nullable=False),  # invited, active, disabled
    Column("invited_by", String(254)),
    Column("invite_hash", String(64)),
    Column("invite_expires", UtcDateTime),
    Column("session_epoch", Integer, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("last_signin_at", UtcDateTime),
    UniqueConstraint("email", name="uq_people_email"),
    UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_people_oidc"),
    Index("ix_people_account", "account_id"),
    Index("ix_people_invite", "invite_hash"),
)

# -- saved filters of the dashboard (migration 0018) -------------------------------------------------

# An operator's named filters of a dashboard list (``page``: cases | orders), each the page's query string.
saved_filters = Table(
    "saved_filters",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner", String(254), nullable=False),  # the person's id
    Column("page", String(20), nullable=False),
    Column("name", String(80), nullable=False),
    Column("query", String(1000), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("owner", "page", "name", name="uq_saved_filters_name"),
)

# -- contracts: payload drift and quarantined payloads (migration 0019) --------------------------------

# How inbound payloads drifted from the schema we read them with: one row per source ("wms.event"),
# field path ("$.lines[].serial") and kind (unknown_field | type_changed), counted, with the latest
# sample and the case opened when it was first seen.
payload_drift = Table(
    "payload_drift",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("field", String(300), primary_key=True),
    Column("kind", String(20), primary_key=True),
    Column("expected", String(120), nullable=False),  # the schema's type(s) there; "" for an unknown field
    Column("seen", String(20), nullable=False),  # the JSON type last seen
    Column("count", BigInteger, nullable=False),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("sample", Text, nullable=False),
    Column("case_id", Id),
)

# Payloads we could not process, kept exactly as received (``body``) with the reason, until a replay
# takes them (after a fix) or a person discards them. ``context`` (JSON) is what the source's replay
# needs besides the body (who sent it). A redelivery of the same body finds its row.
quarantined_payloads = Table(
    "quarantined_payloads",
    metadata,
    Column("id", Id, primary_key=True),
    Column("source", String(64), nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("context", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("deliveries", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # held | replayed | discarded
    Column("replay_count", Integer, nullable=False),
    Column("replayed_at", UtcDateTime),
    Column("outcome", Text, nullable=False),  # what the last replay or discard said
    Column("case_id", Id),
    UniqueConstraint("source", "body_sha256", name="uq_quarantined_payloads_source_body"),
    Index("ix_quarantined_payloads_status_received", "status", "received_at"),
)

# -- alerts (migration 0020) -------------------------------------------------------------------------------

#: one row per alert (key: a thing at one level) and channel: what was sent, or is still being tried
alert_notifications = Table(
    "alert_notifications",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("key", String(200), nullable=False),
    Column("channel", String(10), nullable=False),  # webhook, email, none (no route), digest (told in one)
    Column("kind", String(20), nullable=False),
    Column("team", String(64), nullable=False),
    Column("level", Integer, nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("body", Text, nullable=False),  # the alert (title, text, link) as JSON: a retry sends the same
    Column("state", String(10), nullable=False),  # pending, sent, failed (given up), grouped (in a digest)
    Column("attempts", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_error", String(1000)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    Column("digest_key", String(200)),  # channel digest: the key of the digest that told it
    UniqueConstraint("key", "channel", name="uq_alert_notifications_key"),
    Index("ix_alert_notifications_due", "state", "next_attempt_at"),
)

# -- reconciliation findings (migration 0021) ---------------------------------------------------------

# Each discrepancy reconciliation finds, under its stable key (source:kind:subject): when it was first and
# last seen, its sides (JSON list of {field, hub, erp}), and the case it opened (None while it settles).
reconcile_findings = Table(
    "reconcile_findings",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("source", String(80), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("order_id", Id),
    Column("case_id", Id),
    Column("diffs", Text, nullable=False),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Index("ix_reconcile_findings_case", "case_id"),
)

# -- worker heartbeats (migration 0022) ---------------------------------------------------------------

# One row per running worker process (``ordersync worker``, or ``serve`` with its worker): written every
# ``[health] heartbeat_seconds``, removed when it stops cleanly; a row whose beat is old is a worker that
# died (``/ready``). ``consumers``: JSON list of the consumers it runs; ``health_port`` where it serves
# /health, /ready and /metrics, if it does.
worker_heartbeats = Table(
    "worker_heartbeats",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("beat_at", UtcDateTime, nullable=False),
    Column("consumers", Text, nullable=False),
    Column("health_port", Integer),
)
