"""API keys: bound to a client (portal, dealer app, storefront, ops...) and optionally to one account,
with scopes and a rate limit. Only a hash of the secret is stored; the token is shown once.

Token format: ``osk_<key id>_<secret>``; the key id is the lookup key, the secret (32 random bytes) is
compared by its SHA-256 hash in constant time. High-entropy secrets need no slow password hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import RowMapping, select, update

from ordersync.domain.clock import Clock
from ordersync.domain.errors import NotFound, ValidationFailed
from ordersync.store.db import Database
from ordersync.store.schema import api_keys

PREFIX = "osk"


class Scope(StrEnum):
    CATALOG_READ = "catalog:read"
    ORDERS_READ = "orders:read"
    ORDERS_WRITE = "orders:write"
    RETURNS_WRITE = "returns:write"
    INVOICES_WRITE = "invoices:write"  # dispute an invoice of the account
    FULFILLMENT_WRITE = "fulfillment:write"  # report warehouse and carrier events (WMS webhook)
    ADMIN = "admin"
    OPS = "ops"


CLIENTS = ("portal", "dealer_app", "storefront", "ops", "edi", "wms", "integration")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key, its client and channel, its account (None = not bound), its scopes."""

    key_id: str
    name: str
    client: str
    channel: str
    account_id: str | None
    scopes: frozenset[str]
    rate_per_minute: int
    #: a person behind the call (the portal's pages act for a signed-in buyer): how their actions are
    #: recorded; None for a machine's key
    person: str | None = None

    @property
    def actor(self) -> str:
        """Who the history records: the person, else the key."""
        return self.person or f"key:{self.key_id}"

    def has(self, scope: Scope) -> bool:
        return scope.value in self.scopes or Scope.ADMIN.value in self.scopes


@dataclass(frozen=True)
class KeyInfo:
    id: str
    name: str
    client: str
    channel: str
    account_id: str | None
    scopes: tuple[str, ...]
    rate_per_minute: int
    created_at: dt.datetime
    revoked_at: dt.datetime | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def create(self, name: str, client: str, scopes: list[str], *, account_id: str | None = None,
               channel: str | None = None, rate_per_minute: int = 600) -> tuple[str, KeyInfo]:
        """Create a key; returns the token (shown once) and the stored information."""
        problems = []
        if client not in CLIENTS:
            problems.append(f"client must be one of {', '.join(CLIENTS)}")
        unknown = [s for s in scopes if s not in {x.value for x in Scope}]
        if unknown:
            problems.append(f"unknown scopes {unknown}; known: {', '.join(x.value for x in Scope)}")
        if not scopes:
            problems.append("give at least one scope")
        if rate_per_minute < 1:
            problems.append("rate_per_minute must be at least 1")
        if problems:
            raise ValidationFailed(problems)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = self.clock.now()
        row = {
            "id": key_id, "secret_hash": _hash(secret), "name": name, "client": client,
            "channel": channel or client.replace("_", "-"), "account_id": account_id,
            "scopes": " ".join(sorted(set(scopes))), "rate_per_minute": rate_per_minute, "created_at": now,
            "revoked_at": None,
        }
        with self.db.write() as conn:
            conn.execute(api_keys.insert().values(**row))
        return f"{PREFIX}_{key_id}_{secret}", self.get(key_id)

    def verify(self, token: str) -> Principal | None:
        """The principal of a valid, unrevoked token, else None."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
            return None
        with self.db.read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == parts[1])).mappings().first()
        if row is None or row["revoked_at"] is not None:
            return None
        if not hmac.compare_digest(row["secret_hash"], _hash(parts[2])):
            return None
        return Principal(key_id=row["id"], name=row["name"], client=row["client"], channel=row["channel"],
                         account_id=row["account_id"], scopes=frozenset(row["scopes"].split()),
                         rate_per_minute=row["rate_per_minute"])

    def get(self, key_id: str) -> KeyInfo:
        with self.db.read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
        if row is None:
            raise NotFound(f"API key {key_id} not found")
        return _info(row)

    def list(self, include_revoked: bool = False) -> list[KeyInfo]:
        query = select(api_keys).order_by(api_keys.c.created_at)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.db.read() as conn:
            return [_info(r) for r in conn.execute(query).mappings()]

    def revoke(self, key_id: str) -> KeyInfo:
        self.get(key_id)
        with self.db.write() as conn:
            conn.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                         .values(revoked_at=self.clock.now()))
        return self.get(key_id)


def _info(r: RowMapping) -> KeyInfo:
    return KeyInfo(id=r["id"], name=r["name"], client=r["client"], channel=r["channel"], account_id=r["account_id"],
                   scopes=tuple(r["scopes"].split()), rate_per_minute=r["rate_per_minute"],
                   created_at=r["created_at"], revoked_at=r["revoked_at"])
