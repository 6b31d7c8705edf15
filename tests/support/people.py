"""People for the page tests: staff and buyers with a known password, created through the same
service the invitation pages use (invited, then the invitation accepted)."""

from __future__ import annotations

import uuid
from typing import Any

from ordersync.domain.clock import SystemClock
from ordersync.store.db import Database
from ordersync.web.people import BUYER, STAFF, People

PASSWORD = "correct-horse-battery-staple"


def _people(where: Any) -> People:
    db = where if isinstance(where, Database) else where.db
    return People(db, getattr(where, "clock", None) or SystemClock())


def staff(where: Any, *roles: str, name: str = "", email: str = "") -> str:
    """A staff member with ``roles`` (default operations and admin); their e-mail address."""
    email = email or f"staff-{uuid.uuid4().hex[:8]}@kestrel.example"
    _people(where).add(STAFF, email, name or email.split("@")[0], roles or ("operations", "admin"), PASSWORD,
                       added_by="tests")
    return email


def role_for(scopes: tuple[str, ...]) -> str:
    """The buyer role that gives ``scopes`` (the tests once signed in with keys of these scopes)."""
    if "invoices:write" in scopes:
        return "approver"
    if "orders:write" in scopes or "returns:write" in scopes:
        return "buyer"
    return "viewer"


def buyer(where: Any, *scopes: str, account: str, roles: tuple[str, ...] = (), name: str = "",
          email: str = "") -> str:
    """A buyer of ``account`` with ``roles`` (or the role giving ``scopes``); their e-mail address."""
    email = email or f"buyer-{uuid.uuid4().hex[:8]}@{account.lower()}.example"
    _people(where).add(BUYER, email, name or email.split("@")[0], roles or (role_for(scopes or ("orders:write",)),),
                       PASSWORD, account_id=account, added_by="tests")
    return email
