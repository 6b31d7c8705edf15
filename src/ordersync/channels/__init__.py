"""Sales channels: where orders come from. Each channel turns what it receives into the canonical order
(:class:`ordersync.canonical.v1.Order`) and hands it to the same intake as every other channel, so the
business key, idempotency and everything after intake hold alike for all of them.

- :mod:`~ordersync.channels.portal`: the buyer portal (``/portal``), pages over the experience API's
  functions.
- :mod:`~ordersync.channels.storefront`: a storefront simulator that places orders through ``POST
  /v1/orders`` (the demo's order mix).

EDI trading partners and Shopify B2B come next, each in a package of its own here.
"""
