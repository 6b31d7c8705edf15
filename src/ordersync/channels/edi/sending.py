"""Getting interchanges to partners and theirs to us, over AS2 or a directory, and noticing when an
acknowledgment does not come.

- **Sending** (:meth:`EdiSender.send_due`, the worker's ``edi send`` job): each ``queued`` interchange for
  a partner with a transport is claimed with a lease, sent outside any transaction, and its outcome
  recorded: ``sent`` (an MDN saying *processed*, or the file renamed into the partner's directory), a
  retry after an exponential backoff (no answer, a 5xx, a MIC that is not ours), or ``dead_letter`` with
  a case when the partner refuses it (an MDN saying *failed* or *error*, a 4xx) or after
  ``max_attempts``: never retried for ever. ``ordersync edi resend`` puts one back in the queue.
  A partner's documents go in the order they were written.
- **Picking up** (:meth:`EdiSender.pick_up`): files in a partner's ``inbox_dir`` that have settled are
  renamed ``.processing``, kept verbatim, and moved to ``processed/``; a file kept before a crash is
  recognised by name and checksum and only moved.
- **Chasing up** (:meth:`EdiSender.chase_up`): a document whose 997 is past the partner's ``ack_hours``
  opens a case, once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from sqlalchemy import RowMapping, select

from ordersync.channels.cases import open_integration_case
from ordersync.channels.edi import as2
from ordersync.channels.edi.inbound import EdiInbound
from ordersync.channels.edi.partners import Partner, Us
from ordersync.domain.cases import CasePolicy
from ordersync.domain.clock import Clock
from ordersync.messaging.retry import RetryPolicy
from ordersync.store import edi as store
from ordersync.store.db import Database
from ordersync.store.schema import edi_interchanges
from ordersync.store.uow import UnitOfWork, unit_of_work

log = logging.getLogger("ordersync.edi")

SKIPPED_SUFFIXES = (".tmp", ".part", ".processing")
SETTLE_SECONDS = 1.0
#: a file left ``.processing`` this long was being picked up by a worker that is gone
STALE_PICKUP_SECONDS = 120.0
#: ``last_error`` of an interchange while a send of it is under way
IN_FLIGHT = "in flight since "


class EdiSender:
    def __init__(self, db: Database, clock: Clock, partners: Sequence[Partner], us: Us, *, retry: RetryPolicy,
                 cases: CasePolicy, timeout: float = 30.0, inbound: EdiInbound | None = None,
                 lease_seconds: float | None = None, batch: int = 20) -> None:
        self.db = db
        self.clock = clock
        self.partners = {p.name: p for p in partners}
        self.us = us
        self.retry = retry
        self.cases = cases
        self.inbound = inbound
        self.batch = batch
        self.lease = dt.timedelta(seconds=lease_seconds or timeout * 2 + 30)
        self.client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)))
        self.rng = random.Random()

    def close(self) -> None:
        self.client.close()

    # -- sending --------------------------------------------------------------------------------------

    def send_due(self) -> int:
        """Send what is due; how many interchanges were tried."""
        sending = [name for name, p in self.partners.items() if p.transport in ("as2", "directory")]
        now = self.clock.now()
        with self.db.read() as conn:
            queued = store.queued_outbound(conn, sending, now, self.batch)
        tried = 0
        blocked: set[str] = set()  # behind a document of the partner's that waits or failed: order is kept
        for row in queued:
            if row["partner"] in blocked:
                continue
            if row["next_attempt_at"] is not None and row["next_attempt_at"] > now:
                blocked.add(row["partner"])
                continue
            message_id = row["message_id"] or as2.message_id()
            with self.db.write() as conn:
                if not store.claim(conn, row["id"], state="queued", now=now, until=now + self.lease):
                    continue
                # committed before the send: if this process dies during it, the next attempt knows the
                # partner may have the interchange already
                store.update_interchange(conn, row["id"], message_id=message_id,
                                         last_error=f"{IN_FLIGHT}{now.isoformat()}")
            outcome = self._send(row, message_id)
            tried += 1
            if outcome != "delivered":
                blocked.add(row["partner"])
        return tried

    def _send(self, row: RowMapping, message_id: str) -> str:
        partner = self.partners[row["partner"]]
        raw = bytes(row["raw"])
        if partner.transport == "as2":
            receipt = as2.send(self.client, partner.as2_url, raw, as2_from=self.us.as2_name,
                               as2_to=partner.as2_name, msg_id=message_id,
                               subject=f"{row['document']} {row['control_number']}")
            outcome, detail = receipt.outcome, receipt.detail
        else:
            try:
                # named by control number first: a partner reading the directory in name order reads
                # the documents in the order we wrote them (the 856 before its 810)
                name = write_file(Path(partner.outbox_dir), f"{partner.name}-{row['control_number']}-"
                                                            f"{row['document']}.edi", raw)
                outcome, detail = "delivered", f"written to {name}"
            except OSError as exc:
                outcome, detail = "retry", f"{type(exc).__name__}: {exc}"
        if outcome == "refused" and str(row["last_error"]).startswith(IN_FLIGHT):
            # an earlier attempt's outcome was lost (the sender died during it): a refusal now is most
            # likely the partner refusing the same control number again. Taken as sent; the partner's
            # 997 for the first copy decides, and the chase-up opens a case if none comes.
            outcome, detail = "delivered", (f"refused when sent again after an attempt whose outcome was lost "
                                            f"(taken as that attempt's duplicate; its 997 decides): {detail}")
        self._record(row, partner, outcome, detail, message_id)
        return outcome

    def _record(self, row: RowMapping, partner: Partner, outcome: str, detail: str, message_id: str) -> None:
        now = self.clock.now()
        attempts = int(row["attempts"]) + 1
        with unit_of_work(self.db, self.clock) as uow:
            values: dict[str, object] = {"attempts": attempts, "lease_until": None, "message_id": message_id,
                                         "last_error": "" if outcome == "delivered" else detail[:2000]}
            if outcome == "delivered":
                values |= {"state": "sent", "processed_at": now, "detail": detail[:2000]}
                current = uow.conn.execute(select(edi_interchanges.c.ack_state).where(
                    edi_interchanges.c.id == row["id"])).scalar()
                if current == "awaiting":
                    values["ack_due_at"] = now + dt.timedelta(hours=partner.ack_hours)
            elif outcome == "refused" or self.retry.exhausted(attempts):
                values |= {"state": "dead_letter", "processed_at": now}
                why = "refused it" if outcome == "refused" else f"could not be reached in {attempts} attempts"
                self._case(uow, f"EDI {row['document']} {row['control_number']} to {partner.name}: the partner "
                                f"{why}: {detail}",
                           f"fix the cause (the partner's {partner.transport} settings, their answer), then "
                           f"ordersync edi resend {row['id']}", order_id=row["order_id"])
                log.warning("EDI %s %s to %s is a dead letter: %s", row["document"], row["control_number"],
                            partner.name, detail)
            else:
                delay = self.retry.delay(attempts, self.rng)
                values["next_attempt_at"] = now + dt.timedelta(seconds=delay)
                log.info("EDI %s %s to %s: attempt %d failed (%s); next in %.0f s", row["document"],
                         row["control_number"], partner.name, attempts, detail, delay)
            store.update_interchange(uow.conn, row["id"], **values)

    def _case(self, uow: UnitOfWork, summary: str, next_action: str, order_id: str | None) -> None:
        open_integration_case(uow, self.cases, summary, next_action, order_id)

    # -- chasing up -----------------------------------------------------------------------------------

    def chase_up(self) -> int:
        """Open a case for each document whose acknowledgment is overdue; how many."""
        with unit_of_work(self.db, self.clock) as uow:
            rows = store.overdue(uow.conn, uow.now())
            for row in rows:
                store.update_interchange(uow.conn, row["id"], ack_state="overdue")
                self._case(uow, f"{row['partner']} has not acknowledged our {row['document']} (interchange "
                                f"{row['control_number']}), due by {row['ack_due_at']:%Y-%m-%d %H:%M} UTC",
                           "ask the partner whether it arrived; resend it if not (ordersync edi resend "
                           f"{row['id']})", order_id=row["order_id"])
        return len(rows)

    # -- picking up -----------------------------------------------------------------------------------

    def pick_up(self) -> int:
        """Keep every settled file in the partners' inbox directories; how many."""
        if self.inbound is None:
            return 0
        kept = 0
        for partner in self.partners.values():
            if partner.transport != "directory" or not partner.inbox_dir:
                continue
            inbox = Path(partner.inbox_dir)
            if not inbox.is_dir():
                continue
            for path in inbox.glob("*.processing"):  # a worker was killed while picking it up
                if time.time() - path.stat().st_mtime > STALE_PICKUP_SECONDS:
                    path.rename(path.with_name(path.name.removesuffix(".processing")))
            for path in sorted(inbox.iterdir()):
                if path.is_file() and not path.name.startswith(".") and not path.name.endswith(SKIPPED_SUFFIXES) \
                        and time.time() - path.stat().st_mtime >= SETTLE_SECONDS:
                    kept += self._pick(path)
        return kept

    def _pick(self, path: Path) -> int:
        assert self.inbound is not None
        working = path.with_name(path.name + ".processing")
        try:
            path.rename(working)
        except OSError:
            return 0  # another worker took it
        raw = working.read_bytes()
        name = f"file:{path.name}:{hashlib.sha256(raw).hexdigest()[:16]}"
        with self.db.read() as conn:
            known = conn.execute(select(edi_interchanges.c.id).where(
                edi_interchanges.c.direction == "in", edi_interchanges.c.message_id == name)).first()
        if known is None:
            self.inbound.keep(raw, transport="directory", message_id=name)
        done = path.parent / "processed"
        done.mkdir(exist_ok=True)
        target = done / path.name
        if target.exists():
            target = done / f"{path.stem}-{int(time.time() * 1000)}{path.suffix}"
        working.rename(target)
        return 0 if known else 1

    def recover_pickups(self) -> None:
        """Files a crash left ``.processing``: back to their names, to be picked up (or recognised) again."""
        for partner in self.partners.values():
            if partner.transport == "directory" and partner.inbox_dir and Path(partner.inbox_dir).is_dir():
                for path in Path(partner.inbox_dir).glob("*.processing"):
                    path.rename(path.with_name(path.name.removesuffix(".processing")))


def write_file(directory: Path, name: str, raw: bytes) -> str:
    """Write ``raw`` as ``name`` in ``directory`` so a watcher never sees half a file (a temporary name,
    flushed to disk, then renamed) and nothing there is overwritten; returns the name used."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    n = 1
    while target.exists():
        target = directory / f"{Path(name).stem}-{n}{Path(name).suffix}"
        n += 1
    temporary = directory / f".{target.name}.tmp"
    with open(temporary, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, target)
    return target.name
