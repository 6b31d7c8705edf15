"""The EDI channel as the composition root wires it: the partners from ``[edi]``, who we are, the
inbound processor and the sender, and the worker jobs that drive them."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from ordersync.channels.edi.inbound import EdiInbound
from ordersync.channels.edi.partners import Partner, Us
from ordersync.channels.edi.sending import EdiSender
from ordersync.config import EdiSettings
from ordersync.domain.cases import CasePolicy
from ordersync.domain.clock import Clock
from ordersync.flows.deps import FlowDeps
from ordersync.messaging.retry import RetryPolicy
from ordersync.messaging.worker import Worker
from ordersync.runtime.intake_writer import IntakeWriter
from ordersync.store import edi as store
from ordersync.store.db import Database

log = logging.getLogger("ordersync.edi")


def partners_of(settings: EdiSettings) -> tuple[list[Partner], Us]:
    partners = [Partner(**p.model_dump()) for p in settings.partners]
    us = Us(qualifier=settings.interchange_qualifier, id=settings.interchange_id, gs_id=settings.gs_id,
            as2_id=settings.as2_id)
    return partners, us


@dataclass
class EdiChannel:
    partners: list[Partner]
    us: Us
    inbound: EdiInbound
    sender: EdiSender

    @classmethod
    def build(cls, settings: EdiSettings, db: Database, clock: Clock, intake: IntakeWriter,
              cases: CasePolicy, deps: FlowDeps | None = None) -> EdiChannel:
        partners, us = partners_of(settings)
        inbound = EdiInbound(db, intake, clock, partners, cases=cases, us=us, deps=deps,
                             window=dt.timedelta(days=settings.duplicate_window_days))
        retry = RetryPolicy(max_attempts=settings.max_attempts, base_seconds=settings.base_seconds,
                            cap_seconds=settings.cap_seconds)
        sender = EdiSender(db, clock, partners, us, retry=retry, cases=cases, timeout=settings.timeout,
                           inbound=inbound)
        return cls(partners, us, inbound, sender)

    def schedule(self, worker: Worker, poll_seconds: float, chase_seconds: float = 60.0, *,
                 single_worker: bool = False) -> None:
        """The worker jobs: pick up files, process what was kept, send what is due, chase acknowledgments.
        ``single_worker`` (SQLite: one worker process at a time): the first round forgets the leases a
        killed worker held, so its half-processed interchanges go on at once instead of when they expire."""
        started: list[bool] = []

        def inbound() -> int:
            if single_worker and not started:
                with self.inbound.db.write() as conn:
                    released = store.release_leases(conn)
                if released:
                    log.warning("EDI: %d interchange(s) a stopped worker was processing or sending are taken "
                                "up again", released)
                self.sender.recover_pickups()
                started.append(True)
            return self.inbound.process_waiting()

        worker.every(poll_seconds, "edi pickup", self.sender.pick_up, singleton=True)
        worker.every(poll_seconds, "edi inbound", inbound)
        worker.every(poll_seconds, "edi send", self.sender.send_due)
        worker.every(chase_seconds, "edi chase-up", self.sender.chase_up, singleton=True)

    def close(self) -> None:
        self.sender.close()
