"""Shopify B2B: orders in exactly once from webhooks and a reconciliation sweep, contract prices, stock,
payment terms and fulfillments out, paced to the shop's GraphQL cost budget (see docs/shopify.md)."""
