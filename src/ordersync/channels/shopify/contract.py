"""What the connector reads of a Shopify order webhook, as a schema drift is measured against.

A webhook only says *that* an order changed; the connector reads the order again over GraphQL, so of the
webhook's large body it uses two fields: ``admin_graphql_api_id`` (which order) and ``updated_at`` (is
the event stale). The model is open (``extra="allow"``): the hundreds of other fields Shopify sends are
not drift, a changed type of one of ours is (source ``shopify.<topic>``, ``docs/contracts.md``). The
delivery is kept either way (the connector keeps every verified delivery before answering); one that
cannot be worked fails with a case and is replayed from ``ordersync shopify events``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ordersync.domain.drift import Finding, detect


class OrderWebhook(BaseModel):
    model_config = ConfigDict(extra="allow")
    admin_graphql_api_id: str = Field(min_length=1, description="the order's GraphQL id")
    updated_at: str | None = Field(default=None, description="when the order last changed (ISO time)")


SCHEMA = OrderWebhook.model_json_schema(mode="validation")


def source(topic: str) -> str:
    """The drift source of a topic: ``shopify.orders/create``."""
    return f"shopify.{topic}"[:64]


def drift(payload: Any) -> list[Finding]:
    return detect(SCHEMA, payload)
