"""A Shopify Admin GraphQL double for tests and the demo: :class:`ShopifyDouble` executes the
connector's documents with graphql-core against Shopify's own published Admin schema (``schema/``), with
Shopify's calculated query cost and leaky-bucket throttling, B2B companies, catalogs and price lists,
compare-and-set inventory behind idempotency keys, fulfillments, refunds, bulk queries, and webhooks
delivered at least once (signed, retried for four hours, duplicated, dropped or reordered on request).

Layout: :mod:`.double` (the facade), :mod:`.executor` (one request), :mod:`.cost` (cost and bucket),
:mod:`.state` (the shop's objects), resolvers by subject (:mod:`.queries`, :mod:`.inventory`,
:mod:`.pricing`, :mod:`.orders`, :mod:`.fulfillment`, :mod:`.bulk`, :mod:`.subscriptions`),
:mod:`.webhooks` and :mod:`.payloads` (deliveries and their REST bodies), :mod:`.http` (app, transport,
server), :mod:`.clock`.
"""

from .clock import Clock, ManualClock, SystemClock
from .double import ShopifyDouble
from .webhooks import RETRY_DELAYS, sign

__all__ = ["RETRY_DELAYS", "Clock", "ManualClock", "ShopifyDouble", "SystemClock", "sign"]
