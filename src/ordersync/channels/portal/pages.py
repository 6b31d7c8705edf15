"""The buyer portal at ``/portal``: catalog with contract prices and plant availability, a cart, orders with
their partial or backorder outcome, shipments with tracking, invoices, reorders and return requests.

Why it calls the experience API's functions (``catalog_answer``, ``place_order``, ``order_history``...): the
portal is one more channel on the experience API, so every answer (account isolation, channel price rules,
availability promises, intake idempotency, return checks) is the API's own, not a second implementation that
could drift. It calls the functions the ``/v1`` routes call, never the routes. The portal only adds what a
browser needs: a session instead of a bearer key, forms instead of JSON, HTML instead of problem documents.
Every page goes through one preamble (:func:`ordersync.channels.portal.session.page`): sign-in, rate limit
and scope, for a form its origin and CSRF token, and any refusal the API would answer as a problem shown as
an error page.

Sessions are the shared stateless cookie of :mod:`ordersync.web` (the API key's id, signed; the key itself
never leaves the sign-in request); only keys bound to an account may sign in. Every form carries the
session's CSRF token, the cookie is ``SameSite=Strict`` and a foreign ``Origin`` is refused. Pages work
without JavaScript; a pending order's page refreshes itself until the hub has decided."""

from __future__ import annotations

from ordersync.channels.portal import catalog, orders, people  # noqa: F401  (their routes register on the router)
from ordersync.channels.portal.session import router

__all__ = ["router"]
