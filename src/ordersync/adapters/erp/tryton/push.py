"""Push from Tryton: the hub subscribes to the signals of ordersync's Tryton module on Tryton's own bus.

``erp-modules/tryton/ordersync_changes`` publishes one message per committed transaction that touched a
model the hub follows, on the channel its ``ordersync.change.signal.describe`` names. Tryton sends them
with PostgreSQL's ``NOTIFY`` and serves them to long polls of ``/<database>/bus`` (``[bus]
allow_subscribe = True``); on SQLite there is no bus. The feed long-polls with the adapter's session and
turns each message into a :class:`~ordersync.ports.erp.ChangeNotice`; the poller then reads the change
through the API as always. ADR 0014.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from ordersync.adapters.erp.tryton.rpc import TrytonClient, TrytonError, TrytonUnavailable
from ordersync.domain.errors import Unavailable
from ordersync.ports.erp import ChangeNotice

log = logging.getLogger("ordersync.erp.tryton")

SIGNAL_MODEL = "ordersync.change.signal"
#: the contract version of ordersync_changes this adapter speaks
SIGNAL_VERSION = 1
#: models whose changes the change probe sees (stock moves and what they belong to); a signal naming
#: any other (price lists) asks for a full read
PROBE_SEES = frozenset({"stock.move", "stock.shipment.out", "stock.shipment.out.return", "account.invoice",
                        "sale.sale"})


def describe(client: TrytonClient) -> dict[str, Any] | None:
    """What the ordersync_changes module says about push on this database, or None without it."""
    try:
        answer = client.call(SIGNAL_MODEL, "describe")
    except TrytonUnavailable:
        raise
    except TrytonError as exc:  # the model is unknown: the module is not activated on this database
        log.info("Tryton %s: no push (module ordersync_changes not activated: %s)", client.database, exc)
        return None
    return answer if isinstance(answer, dict) else None


class TrytonChangeFeed:
    """Long polls of Tryton's bus on one channel. ``read_timeout`` should exceed the server's
    ``long_polling_timeout`` (300 s by default); a read timeout simply asks again."""

    def __init__(self, client: TrytonClient, channel: str, *, read_timeout: float = 330.0) -> None:
        self.client = client
        self.channel = channel
        self._http = httpx.Client(timeout=httpx.Timeout(read_timeout, connect=5.0))
        self._last: str | None = None

    def wait(self) -> ChangeNotice | None:
        try:
            answer = self.client.subscribe(self._http, [self.channel], self._last)
        except TrytonError as exc:
            raise Unavailable(f"Tryton bus: {exc}") from exc
        message = answer.get("message")
        if answer.get("channel") != self.channel or not isinstance(message, dict):
            return None  # the long poll's timeout, or a message for the session's user channel
        self._last = message.get("message_id") or self._last
        models = set(message.get("models") or ())
        return ChangeNotice(probe_sees=bool(models) and models <= PROBE_SEES)

    def close(self) -> None:
        self._http.close()


def open_feed(client: TrytonClient) -> TrytonChangeFeed | None:
    """A feed when this Tryton can push (module activated, PostgreSQL, bus open), else None."""
    info = describe(client)
    if not info:
        return None
    if info.get("version") != SIGNAL_VERSION:
        log.warning("Tryton %s: ordersync_changes speaks version %s, this hub %s: no push",
                    client.database, info.get("version"), SIGNAL_VERSION)
        return None
    if not info.get("push"):
        log.info("Tryton %s: no push here (the database cannot notify, or [bus] allow_subscribe is off)",
                 client.database)
        return None
    return TrytonChangeFeed(client, str(info["channel"]))
