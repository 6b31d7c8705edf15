"""Change detection: poll every ERP for changed shipments, invoices, stock and price lists, and turn
each change into a canonical event, exactly once.

ERPs like Tryton have no webhooks and stamp ``write_date`` when a statement runs, not when it commits,
so a long transaction can commit rows with stamps older than the last poll. Each poll therefore asks
for changes since ``watermark - overlap`` and drops what it has already seen, keyed by
(ERP, record key, version), where the version is (write_date, state). Seen keys are kept for
``retention`` (much longer than the overlap) and then pruned.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import delete, select

from ordersync.domain.clock import Clock
from ordersync.domain.errors import Unavailable
from ordersync.domain.events import (
    ErpInvoicePosted,
    ErpReturnChanged,
    ErpShipmentChanged,
    PriceListChanged,
    StockChanged,
)
from ordersync.domain.returns import RETURN_STATES
from ordersync.ports.erp import (
    Change,
    ChangeFeed,
    ChangeKind,
    ChangeNotice,
    ErpReturn,
    Erps,
    Known,
    Lane,
    parse_reference,
)
from ordersync.store.db import Database
from ordersync.store.schema import erp_changes, orders, return_requests, sync_state
from ordersync.store.sql import insert_ignore, upsert_row
from ordersync.store.uow import UnitOfWork, unit_of_work

log = logging.getLogger("ordersync.erp.changes")


@dataclass(frozen=True)
class Cadence:
    """How often one ERP is asked. ``fast``: the interval right after a change; it doubles while
    nothing changes, up to ``idle`` (a change still shows within ``idle`` seconds plus one poll);
    ``sweep``: a full poll at least this often, for what the ERP's probe cannot see."""

    fast: float = 0.5
    idle: float = 2.0
    sweep: float = 600.0
    #: the shortest interval while the hub itself is sending orders to this ERP: its own sales move
    #: stock and stamp records, so every turn would read in full at ``fast`` and take a fifth of the ERP's
    #: capacity from the orders (bench/erp_cost.py); changes still show within this
    busy: float = 2.0
    #: with push (the ERP signals its changes): subscribe to them, and between signals ask the probe only
    #: this often, for a signal lost while the subscription was being renewed
    push: bool = False
    push_idle: float = 60.0


@dataclass
class _Pace:
    next_at: float = 0.0
    interval: float = 0.0
    swept_at: float | None = None
    probe: tuple[dt.datetime | None, str] | None = None  # (window start, fingerprint) of the last probe
    order_calls: int | None = None  # the ERP's calls in the orders lane at the last turn
    last_at: float = 0.0  # when the last turn ended (monotonic)
    gap: float = 0.0  # the shortest wait after a turn before a signalled one (fast, or busy)
    signalled: bool = False  # the ERP signalled a change since the last turn began (push)
    read_in_full: bool = False  # ... one its probe cannot see


class ErpChangePoller:
    def __init__(
        self,
        erps: Erps,
        db: Database,
        clock: Clock,
        *,
        overlap: dt.timedelta = dt.timedelta(seconds=30),
        retention: dt.timedelta = dt.timedelta(days=2),
        cadence: dict[str, Cadence] | None = None,
        start_from_now: Collection[str] = (),
    ) -> None:
        self.erps = erps
        #: ERPs whose first poll takes their shipments and invoices as they are ([[erp]] start_from = "now")
        self.start_from_now = frozenset(start_from_now)
        self.db = db
        self.clock = clock
        self.overlap = overlap
        self.retention = retention
        self.cadence = cadence or {}
        self._pace: dict[str, _Pace] = {}
        self._followed: dict[str, float] = {}  # erp -> when (monotonic) its last turn ended well
        self._pushing: dict[str, bool] = {}  # erp -> its change subscription is live (push)
        self._feeds: dict[str, ChangeFeed] = {}

    def pushes(self) -> list[str]:
        """The ERPs configured to push their changes (``push = true``)."""
        return [erp for erp in self.erps.names() if self.cadence.get(erp, Cadence()).push]

    def listen(self, erp: str, stop: threading.Event) -> None:
        """Follow ``erp``'s change signals until ``stop`` (a thread of its own, see bootstrap): each signal
        makes its next turn due at once (after the shortest gap). While the subscription is live the
        poller asks the probe only every ``push_idle`` seconds; while it is down it polls as without push,
        and resubscribes with a growing pause. Returns at once when the ERP cannot push here."""
        backoff = 1.0
        while not stop.is_set():
            try:
                feed = self.erps.erp(erp).change_feed()
            except Exception as exc:  # down, or an answer of an unexpected shape: poll, try again later
                log.warning("ERP %s: cannot subscribe to its changes (%s: %s); polling meanwhile", erp,
                            type(exc).__name__, exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            if feed is None:
                log.warning("ERP %s: push is configured but this ERP cannot push (see the log above); "
                            "change detection polls", erp)
                return
            log.info("ERP %s: subscribed to its change signals", erp)
            self._feeds[erp] = feed
            if stop.is_set():  # unsubscribe() came first
                feed.close()
                return
            self._pushing[erp] = True
            self.signal(erp, ChangeNotice())  # catch up with what changed before the subscription
            try:
                while not stop.is_set():
                    notice = feed.wait()
                    backoff = 1.0
                    if notice is not None:
                        self.signal(erp, notice)
            except Unavailable as exc:
                if not stop.is_set():
                    log.warning("ERP %s: change subscription lost (%s); polling until it is back", erp, exc)
            except Exception:  # an answer of an unexpected shape: the same, with the details in the log
                if not stop.is_set():
                    log.exception("ERP %s: change subscription failed; polling until it is back", erp)
            finally:
                self._pushing[erp] = False
                self._feeds.pop(erp, None)
                feed.close()
            stop.wait(backoff)
            backoff = min(backoff * 2, 60.0)

    def unsubscribe(self, erp: str) -> None:
        """End ``erp``'s subscription (with ``stop`` set, its :meth:`listen` then returns)."""
        feed = self._feeds.pop(erp, None)
        if feed is not None:
            feed.close()

    def signal(self, erp: str, notice: ChangeNotice) -> None:
        """The ERP signalled a change: its next turn falls due after the shortest gap (thread-safe: plain
        assignments, read by the poll job)."""
        pace = self._pace.setdefault(erp, _Pace(interval=self.cadence.get(erp, Cadence()).fast))
        if not notice.probe_sees:
            pace.read_in_full = True
        pace.signalled = True

    def pushing(self, erp: str) -> bool:
        """Whether ``erp``'s change subscription is live now."""
        return self._pushing.get(erp, False)

    def poll_due(self) -> int:
        """The periodic job: poll each ERP whose turn has come. A turn asks the ERP's one-call probe
        first and reads in full only when its answer differs from the last one for the same window (or
        a sweep is due, or the ERP cannot probe); the interval drops to ``fast`` after a change and
        doubles up to ``idle`` while nothing changes. An idle ERP is asked one question per ``idle``
        seconds (bench/erp_cost.py)."""
        total = 0
        for erp in self.erps.names():
            cadence = self.cadence.get(erp, Cadence())
            pace = self._pace.setdefault(erp, _Pace(interval=cadence.fast))
            now = self.clock.monotonic()
            if pace.signalled:
                pace.next_at = min(pace.next_at, pace.last_at + pace.gap)
            if now < pace.next_at:
                continue
            pace.signalled = False  # a signal arriving during the turn makes another due
            full, pace.read_in_full = pace.read_in_full, False
            try:
                found, changed = self._turn(erp, pace, cadence, now, full=full)
                self._followed[erp] = self.clock.monotonic()
            except Unavailable as exc:  # the next turn catches up from the same watermark
                log.warning("ERP %s: change poll skipped: %s", erp, exc)
                found, changed = 0, False
                pace.read_in_full = pace.read_in_full or full
            total += found
            fast = max(cadence.fast, cadence.busy) if self._busy_with_orders(erp, pace) else cadence.fast
            if self.pushing(erp):  # the ERP says when something changes: no polling fast after a change
                pace.interval = cadence.push_idle
            else:
                pace.interval = fast if changed else min(max(pace.interval * 2, fast), max(cadence.idle, fast))
            pace.gap = fast
            pace.last_at = self.clock.monotonic()
            pace.next_at = pace.last_at + pace.interval
        return total

    def _turn(self, erp: str, pace: _Pace, cadence: Cadence, now: float, *, full: bool = False) -> tuple[int, bool]:
        """One turn of one ERP: (new changes, whether anything moved). ``full``: read in full whatever the
        probe says (the ERP signalled a change its probe cannot see)."""
        watermark = self.watermark(erp)
        since = watermark - self.overlap if watermark else None
        sweep = pace.swept_at is None or now - pace.swept_at >= cadence.sweep
        fingerprint = self.erps.erp(erp).change_probe(since)
        if not sweep and not full and fingerprint is not None and pace.probe == (since, fingerprint):
            return 0, False
        found = self._poll(erp, watermark)
        if sweep:
            pace.swept_at = now
        # the answer is compared with the next probe of the same window: a poll that moved the watermark
        # opens a new window, whose first probe then reads in full once more
        pace.probe = (since, fingerprint) if fingerprint is not None else None
        return found, found > 0 or (fingerprint is not None and not sweep)

    def following(self, erp: str) -> bool:
        """Whether this poller follows ``erp`` now: its last turn ended well within three of the longest
        intervals it keeps (a stock move in the ERP then reaches the read model within seconds)."""
        at = self._followed.get(erp)
        cadence = self.cadence.get(erp, Cadence())
        longest = max(cadence.fast, cadence.idle, cadence.busy, cadence.push_idle if self.pushing(erp) else 0.0)
        return at is not None and self.clock.monotonic() - at <= 3 * longest

    def _busy_with_orders(self, erp: str, pace: _Pace) -> bool:
        """Whether the hub has sent order work to this ERP since the last turn (its gate's orders lane)."""
        calls = self.erps.status(erp).lane_calls.get(Lane.ORDERS.name.lower(), 0)
        busy = pace.order_calls is not None and calls > pace.order_calls
        pace.order_calls = calls
        return busy

    def interval(self, erp: str) -> float:
        """The current interval between this ERP's turns (0 before its first turn)."""
        return self._pace.get(erp, _Pace()).interval

    def watermark(self, erp: str) -> dt.datetime | None:
        with self.db.read() as conn:
            value = conn.execute(select(sync_state.c.value).where(sync_state.c.name == _key(erp))).scalar_one_or_none()
        return dt.datetime.fromisoformat(value) if value else None

    def poll(self, erp: str) -> int:
        """One poll of one ERP; returns how many new changes became events."""
        return self._poll(erp, self.watermark(erp))

    def _poll(self, erp: str, watermark: dt.datetime | None) -> int:
        since = watermark - self.overlap if watermark else None
        batch = self.erps.erp(erp).changes_since(since, self._known(erp, since))
        joining = watermark is None and erp in self.start_from_now
        new = past = 0
        with unit_of_work(self.db, self.clock) as uow:
            now = uow.now()
            for change in batch.changes:
                fresh = insert_ignore(
                    uow.conn, erp_changes,
                    {"erp": erp, "key": change.key[:200], "version": change.version[:200], "seen_at": now},
                    conflict=("erp", "key", "version"),
                )
                if fresh and joining and _in_the_past(uow, change):
                    past += 1  # seen, so a later poll does not bring it back; no event
                elif fresh:
                    new += 1
                    _emit(uow, erp, change)
            newest = max(filter(None, [watermark, batch.watermark]))
            upsert_row(uow.conn, sync_state, {"name": _key(erp)}, {"value": newest.isoformat(), "updated_at": now})
        if new:
            log.info("ERP %s: %d new changes (of %d polled)", erp, new, len(batch.changes))
        if joining:
            log.info("ERP %s: followed from now on (start_from = \"now\"): %d shipment and invoice changes of "
                     "orders this hub does not hold taken as the starting point, without events", erp, past)
        return new

    def _known(self, erp: str, since: dt.datetime | None) -> Known | None:
        """The changes of the poll window the hub already holds (committed), so the adapter can skip
        re-reading them. Records changed in the window were first seen after ``since`` less the
        ERP's clock skew and transaction time, hence the margin."""
        if since is None:
            return None
        margin = dt.timedelta(minutes=10)
        with self.db.read() as conn:
            rows = conn.execute(select(erp_changes.c.key, erp_changes.c.version).where(
                erp_changes.c.erp == erp, erp_changes.c.seen_at >= since - margin))
            held = {(key, version) for key, version in rows}
        return lambda key, version: (key[:200], version[:200]) in held

    def poll_all(self) -> int:
        total = 0
        for erp in self.erps.names():
            try:
                total += self.poll(erp)
            except Unavailable as exc:  # the next poll catches up from the same watermark
                log.warning("ERP %s: change poll skipped: %s", erp, exc)
        return total

    def prune(self) -> int:
        cutoff = self.clock.now() - self.retention
        with self.db.write() as conn:
            return int(conn.execute(delete(erp_changes).where(erp_changes.c.seen_at < cutoff)).rowcount or 0)


def _key(erp: str) -> str:
    return f"erp:{erp}:changes"


def _in_the_past(uow: UnitOfWork, change: Change) -> bool:
    """Whether a change found on the first poll of an ERP followed from now on is history: a shipment or
    invoice of an order this hub does not hold (the ERP's own sales, or another hub's before this one).
    Stock and price lists are state, not history: their changes refresh the read model as always."""
    if change.kind not in (ChangeKind.SHIPMENT, ChangeKind.INVOICE):
        return False
    parsed = parse_reference(change.reference) if change.reference else None
    if parsed is None:
        return True
    held = uow.conn.execute(select(orders.c.id).where(orders.c.id == parsed[0])).first()
    return held is None


def _emit(uow: UnitOfWork, erp: str, change: Change) -> None:
    parsed = parse_reference(change.reference) if change.reference else None
    order_id = parsed[0] if parsed else None
    if change.kind is ChangeKind.SHIPMENT and change.shipment is not None:
        uow.emit(ErpShipmentChanged(erp=erp, reference=change.reference, order_id=order_id,
                                    shipment=change.shipment), correlation_id=order_id)
    elif change.kind is ChangeKind.INVOICE and change.invoice is not None:
        uow.emit(ErpInvoicePosted(erp=erp, reference=change.reference, order_id=order_id,
                                  invoice=change.invoice), correlation_id=order_id)
    elif change.kind is ChangeKind.STOCK and change.stock:
        uow.emit(StockChanged(erp=erp, positions=change.stock), correlation_id=None)
    elif change.kind is ChangeKind.PRICE_LIST:
        uow.emit(PriceListChanged(erp=erp, account_ids=change.account_ids), correlation_id=None)
    elif change.kind is ChangeKind.RETURN and change.erp_return is not None:
        _emit_return(uow, erp, change.erp_return)


def _emit_return(uow: UnitOfWork, erp: str, erp_return: ErpReturn) -> None:
    """A return of one of the hub's return requests, in the request's terms (pending means nothing yet)."""
    state = RETURN_STATES.get(erp_return.state)
    order_id = uow.conn.execute(select(return_requests.c.order_id).where(
        return_requests.c.id == erp_return.return_id)).scalar_one_or_none() if erp_return.return_id else None
    if state is None or order_id is None:
        return
    uow.emit(ErpReturnChanged(erp=erp, reference=erp_return.reference, return_id=erp_return.return_id, state=state,
                              erp_state=erp_return.state.value), correlation_id=order_id)
