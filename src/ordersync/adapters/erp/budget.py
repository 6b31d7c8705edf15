"""The cross-process half of an ERP's concurrency budget.

:class:`~ordersync.adapters.erp.guard.ErpGate` limits the calls of *one process* to an ERP instance with
its priority lanes. Several ``ordersync worker`` processes on one PostgreSQL store share one ERP, so the
budget must also hold across processes: :class:`PgSlotBudget` keeps ``slots`` global call slots per ERP
instance, and a call runs only while it holds one of them (in addition to its local slot).

How the slots work (PostgreSQL):

- slot ``i`` of ERP ``name`` is the session-level advisory lock
  ``pg_try_advisory_lock(NAMESPACE, slot_key(name, i))`` (the two-``int4`` form; its key space is apart
  from the single-``bigint`` locks used elsewhere, e.g. the outbox relay's);
- the locks are taken on connections of a small pool of the budget's own (autocommit, at most ``slots``
  connections per process): a held slot keeps its connection checked out until the call ends, then
  ``pg_advisory_unlock`` frees it and the connection goes back to the pool;
- acquiring tries every slot once, starting at a random one, and sleeps a few tens of milliseconds (with
  jitter) between rounds until the caller's deadline; no server-side waiting, so a deadline is a deadline.

What that guarantees and what it doesn't:

- a process that dies, even by SIGKILL, loses its database sessions, and PostgreSQL drops their locks:
  its slots free themselves (the server notices as soon as the socket closes; if the network, not the
  process, dies, only when TCP keepalive gives up on the session);
- the same goes for a session the server ends while a call runs (server restart, ``idle_session_timeout``,
  ``pg_terminate_backend``): the slot is free again although the call still runs, so for that moment
  one call more than the budget may reach the ERP. The release notices (the unlock finds no lock), logs a
  warning and drops the connection;
- all processes must agree on the number of slots: a process configured with more slots for the same
  ERP name takes the extra ones as well;
- the store being unreachable while acquiring raises :class:`~ordersync.domain.errors.Unavailable`,
  which callers treat as "wait and retry later", as they do a full budget;
- each worker process opens up to ``slots`` extra connections per ERP instance (count them in
  ``max_connections``).

On SQLite there is one process per store, so the gate's local lanes already are the whole budget:
:class:`LocalBudget` grants every request at once.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from ordersync.domain.errors import Unavailable
from ordersync.ports.erp import BudgetScope
from ordersync.store.db import Database

log = logging.getLogger("ordersync.erp.budget")

NAMESPACE = 7243002  # first key of every ERP slot lock ("ordersync ERP call budget")
MAX_SLOTS = 64  # slot numbers take the low 6 bits of the second key (ErpSettings caps max_concurrency at 64)
Scope = BudgetScope  # where the budget holds: this process, or every process on the store

_TRY = text("SELECT pg_try_advisory_lock(CAST(:ns AS integer), CAST(:key AS integer))")
_UNLOCK = text("SELECT pg_advisory_unlock(CAST(:ns AS integer), CAST(:key AS integer))")


def slot_key(erp: str, slot: int) -> int:
    """The second advisory-lock key of ``slot`` of ERP ``erp``: a stable 26-bit hash of the name with the
    slot number in the low 6 bits, as a signed 32-bit integer. Slots of one ERP never share a key; two
    ERP names whose hashes collide (about 1 in 67 million) would share their slots, which makes each
    stricter, never looser."""
    if not 0 <= slot < MAX_SLOTS:
        raise ValueError(f"slot {slot} out of range 0..{MAX_SLOTS - 1}")
    unsigned = ((zlib.crc32(erp.encode()) & 0x03FF_FFFF) << 6) | slot
    return unsigned - (1 << 32) if unsigned >= 1 << 31 else unsigned


class Lease(Protocol):
    """A global slot held for one call; :meth:`release` never raises and may be called once."""

    def release(self) -> None: ...


class SlotBudget(Protocol):
    scope: Scope

    def acquire(self, timeout: float) -> Lease | None:
        """A slot within ``timeout`` seconds, or ``None`` when every slot stayed taken. Raises
        :class:`Unavailable` when the budget itself cannot be reached."""
        ...

    def close(self) -> None: ...


class _NoLease:
    def release(self) -> None:
        return None


class LocalBudget:
    """SQLite: one process per store, so the gate's own lanes are the budget; this grants at once."""

    scope: Scope = "process"

    def acquire(self, timeout: float) -> Lease | None:
        return _NoLease()

    def close(self) -> None:
        return None


@dataclass
class _PgLease:
    budget: PgSlotBudget
    conn: Connection
    slot: int
    _released: bool = field(default=False, repr=False)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self.budget._release(self)


class PgSlotBudget:
    """``slots`` global call slots for ERP ``erp``, shared by every process using the same database."""

    scope: Scope = "global"

    def __init__(self, url: str | URL, erp: str, slots: int, *, poll: float = 0.03,
                 connect_timeout: int = 5) -> None:
        if not 1 <= slots <= MAX_SLOTS:
            raise ValueError(f"ERP {erp}: a global budget has 1..{MAX_SLOTS} slots, not {slots}")
        self.erp = erp
        self.slots = slots
        self.poll = poll
        self._keys = [slot_key(erp, i) for i in range(slots)]
        # One connection per slot this process can hold at once (the gate's local lanes let at most
        # ``slots`` callers in here at a time); no overflow, no reset-on-return (autocommit, and the
        # locks are released explicitly before a connection goes back).
        self.engine = create_engine(
            url, pool_size=slots, max_overflow=0, pool_timeout=max(connect_timeout, 1), pool_pre_ping=True,
            pool_reset_on_return=None, isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": connect_timeout, "application_name": f"ordersync-erp-budget:{erp}"[:63]},
        )
        self._lock = threading.Lock()
        self.held = 0  # slots this process holds right now

    def acquire(self, timeout: float) -> Lease | None:
        deadline = time.monotonic() + timeout
        while True:
            lease = self._try_once()
            if lease is not None:
                return lease
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(remaining, self.poll * random.uniform(0.5, 1.5)))

    def _try_once(self) -> _PgLease | None:
        try:
            conn = self.engine.connect()
        except SQLAlchemyError as exc:
            raise Unavailable(f"ERP {self.erp}: the call budget in the store is unreachable: {_short(exc)}") from exc
        try:
            start = random.randrange(self.slots)
            for i in range(self.slots):
                slot = (start + i) % self.slots
                if conn.execute(_TRY, {"ns": NAMESPACE, "key": self._keys[slot]}).scalar_one():
                    with self._lock:
                        self.held += 1
                    return _PgLease(self, conn, slot)
        except SQLAlchemyError as exc:
            _discard(conn)  # it may hold a lock we don't know about: only closing the session is safe
            raise Unavailable(f"ERP {self.erp}: the call budget in the store is unreachable: {_short(exc)}") from exc
        except BaseException:
            _discard(conn)
            raise
        conn.close()  # holds no lock: back to the pool
        return None

    def _release(self, lease: _PgLease) -> None:
        with self._lock:
            self.held -= 1
        try:
            freed = lease.conn.execute(_UNLOCK, {"ns": NAMESPACE, "key": self._keys[lease.slot]}).scalar_one()
        except Exception as exc:  # the session is gone or going: closing it frees the lock
            log.warning("ERP %s: could not free global call slot %d (%s); dropping its connection",
                        self.erp, lease.slot, _short(exc))
            _discard(lease.conn)
            return
        if not freed:
            log.warning("ERP %s: global call slot %d was no longer held (the database session was replaced "
                        "during the call); dropping its connection", self.erp, lease.slot)
            _discard(lease.conn)
            return
        lease.conn.close()

    def close(self) -> None:
        self.engine.dispose()


def budget_for(db: Database, erp: str, slots: int) -> SlotBudget:
    """The global budget of ERP ``erp`` on ``db``'s store: advisory-lock slots on PostgreSQL, local on
    SQLite (one process per store)."""
    if db.is_sqlite:
        return LocalBudget()
    budget = PgSlotBudget(db.engine.url, erp, slots)
    # the budget's pool goes when the store's does (Database.dispose, e.g. Hub.close), so nobody has to
    # remember to close it; connections holding a slot stay until their call releases it
    event.listen(db.engine, "engine_disposed", lambda _engine: budget.close())
    return budget


def _discard(conn: Connection) -> None:
    """Close ``conn``'s session for good (never back to the pool): the server drops its locks with it."""
    with contextlib.suppress(Exception):  # already broken: nothing more to do
        conn.invalidate()
    with contextlib.suppress(Exception):
        conn.close()


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
