"""One exception tree for ordersync.

::

    OrdersyncError
    +-- DomainError                 a business rule said no; nothing was changed
    |   +-- IllegalTransition       the order's lifecycle does not allow that move
    |   +-- ValidationFailed        an order (or request) breaks business rules; carries reasons
    |   +-- NotFound                no such order / account / case / dead letter
    |   +-- Conflict                a concurrent change or a duplicate key won the race
    |   |   +-- ChangedResend       an order number sent again with different content
    |       +-- ConcurrentUpdate    an optimistic version check lost: retryable on a fresh read
    +-- IntegrationError            a remote system failed (retryable unless said otherwise)
    |   +-- Unavailable             down, timing out, or circuit open
    |   +-- ProtocolError           answered garbage
    +-- MessageError                a message that can never be processed (dead-lettered at once)
    +-- ConfigError                 bad configuration; fails at start with a clear message

Errors become HTTP statuses and CLI exit codes only at the edges (api/, cli.py).
"""

from __future__ import annotations


class OrdersyncError(Exception):
    """Base of every error ordersync raises on purpose."""


class DomainError(OrdersyncError):
    """A business rule refused the operation; no state was changed."""


class IllegalTransition(DomainError):
    def __init__(self, order_id: str, current: str, target: str) -> None:
        super().__init__(f"order {order_id}: cannot move from {current!r} to {target!r}")
        self.order_id = order_id
        self.current = current
        self.target = target


class ValidationFailed(DomainError):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons) or "validation failed")
        self.reasons = reasons


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass


class ChangedResend(Conflict):
    """A channel sent an order number the hub has with different content. Refused (the channel must not
    believe its change landed); ``differences`` names what differs, ``order_id`` is the order it has."""

    def __init__(self, *, order_id: str, account_id: str, channel: str, external_order_number: str,
                 differences: list[str]) -> None:
        super().__init__(f"order {external_order_number!r} of channel {channel!r} was received before with "
                         f"different content ({'; '.join(differences)}); change it with an amendment of order "
                         f"{order_id}, or send a new order under a new order number")
        self.order_id = order_id
        self.account_id = account_id
        self.channel = channel
        self.external_order_number = external_order_number
        self.differences = differences


class ConcurrentUpdate(Conflict):
    """Someone else changed the record since it was read (optimistic version check). Trying again on a
    fresh read can succeed: consumers retry it instead of parking it as a rejection."""

    retryable = True


class IntegrationError(OrdersyncError):
    """A remote system failed. ``retryable`` tells retry middleware whether trying again can help."""

    retryable = True


class Unavailable(IntegrationError):
    pass


class ProtocolError(IntegrationError):
    pass


class MessageError(OrdersyncError):
    """A message that can never be processed as it is: malformed, unknown type, schema violation."""


class ConfigError(OrdersyncError):
    pass
