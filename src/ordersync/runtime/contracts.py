"""Contracts at the door: drift recorded, unprocessable payloads quarantined, and quarantined payloads
replayed once the cause is fixed (``docs/contracts.md``; the per-source decisions are ADR 0021).

An inbound source (the WMS webhook, a Shopify topic, an ERP read) calls :func:`observe` with the JSON
Schema it reads the payload with: each drift is counted per (source, field, kind) and a drift never seen
before opens an integration-failure case. A payload that cannot be processed goes to :func:`quarantine`:
kept with its raw body and the reason (one case per payload), never dropped. Each source that
quarantines registers a :data:`Replayer` under its name; :func:`replay` hands a kept body (or a person's
corrected one) back to it, and the entry is settled as replayed, or stays held with the new reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ordersync.canonical.v1 import CaseState, CaseType
from ordersync.domain.cases import CasePolicy, open_case, resolve_case
from ordersync.domain.clock import Clock
from ordersync.domain.drift import Finding, detect
from ordersync.domain.errors import NotFound, OrdersyncError, ValidationFailed
from ordersync.domain.events import CaseOpened, CaseResolved
from ordersync.store import drift as store
from ordersync.store.db import Database
from ordersync.store.uow import UnitOfWork, unit_of_work

log = logging.getLogger("ordersync.contracts")


class Unprocessable(Exception):
    """Raised by a replayer: the payload still cannot be processed (the message is the reason)."""


#: a source's replay: (the hub, the body to process, the context kept with it) -> what happened (one line);
#: raises :class:`Unprocessable` when the body still cannot be processed
Replayer = Callable[[Any, bytes, dict[str, Any]], str]
REPLAYERS: dict[str, Replayer] = {}


def register_replayer(source: str, replayer: Replayer) -> None:
    REPLAYERS[source] = replayer


def observe(uow: UnitOfWork, policy: CasePolicy, source: str, schema: dict[str, Any], payload: Any) -> list[Finding]:
    """Record how ``payload`` drifted from ``schema`` (in ``uow``); a drift first seen opens a case."""
    findings = detect(schema, payload)
    if findings:
        record(uow, policy, source, findings)
    return findings


def record(uow: UnitOfWork, policy: CasePolicy, source: str, findings: list[Finding]) -> None:
    """Count findings :func:`~ordersync.domain.drift.detect` made (in ``uow``); a drift first seen opens a case."""
    for f in store.count_drift(uow.conn, source, findings, uow.now()):
        expected = f"expected {f.expected}, " if f.expected else ""
        case = open_case(
            CaseType.INTEGRATION_FAILURE, now=uow.now(), policy=policy,
            summary=(f"{source} payloads drifted: {f.kind} at {f.field} ({expected}saw {f.seen}: {f.sample})")[:1000],
            next_action=("ask the sender whether the change is intended; adapt the hub's schema for "
                         f"{source} (see /ops/drift), then resolve"))
        uow.cases.add(case)
        uow.emit(CaseOpened(case=case), correlation_id=None)
        store.link_case(uow.conn, source, f, case.id)
        log.warning("new drift of %s: %s at %s (case %s)", source, f.kind, f.field, case.id)


def quarantine(uow: UnitOfWork, policy: CasePolicy, source: str, body: bytes, body_sha256: str,
               context: dict[str, Any], reason: str) -> tuple[str, bool]:
    """Keep a payload that cannot be processed; returns (the entry's id, whether it is new). A new entry
    opens a case naming it; a redelivery of the same body is counted on its entry."""
    entry_id, first = store.keep(uow.conn, source=source, body=body, body_sha256=body_sha256, context=context,
                                 reason=reason[:4000], at=uow.now())
    if first:
        case = open_case(
            CaseType.INTEGRATION_FAILURE, now=uow.now(), policy=policy,
            summary=f"a {source} payload could not be processed and is quarantined ({entry_id}): {reason}"[:1000],
            next_action=(f"fix the cause (the hub's schema or the sender), then replay it: `ordersync drift replay "
                         f"{entry_id}` or /ops/drift; the replay resolves this case"))
        uow.cases.add(case)
        uow.emit(CaseOpened(case=case), correlation_id=None)
        store.link_quarantine_case(uow.conn, entry_id, case.id)
        log.warning("%s payload quarantined (%s): %s", source, entry_id, reason)
    return entry_id, first


class DriftRecorder:
    """The :class:`~ordersync.ports.contracts.PayloadObserver` adapters are given: measures one read's
    rows, and records what drifted in one short transaction (none when nothing did)."""

    def __init__(self, db: Database, clock: Clock, policy: CasePolicy) -> None:
        self.db = db
        self.clock = clock
        self.policy = policy

    def observe(self, source: str, schema: Mapping[str, Any], payloads: Sequence[Any]) -> None:
        found: dict[tuple[str, str], Finding] = {}
        try:
            for payload in payloads:
                for f in detect(dict(schema), payload):
                    found[(f.field, f.kind)] = f  # the latest sample of each
            if found:
                with unit_of_work(self.db, self.clock) as uow:
                    record(uow, self.policy, source, list(found.values()))
        except Exception:  # the read the rows came from goes on: drift is recorded beside it, not in its way
            log.exception("could not record drift of %s", source)


@dataclass(frozen=True)
class ReplayResult:
    entry_id: str
    status: str  # replayed | held
    outcome: str


def replay(hub: Any, entry_id: str, body: bytes | None = None, actor: str = "ordersync") -> ReplayResult:
    """Hand a held entry's body (or ``body``, a person's correction of it) to its source's replayer.
    Processed: the entry is settled as replayed and its case resolved. Still unprocessable: it stays
    held with the new reason."""
    with hub.db.read() as conn:
        row = store.entry(conn, entry_id)
    if row is None:
        raise NotFound(f"no quarantined payload {entry_id}")
    if row["status"] != store.HELD:
        raise ValidationFailed([f"quarantined payload {entry_id} is {row['status']} already"])
    replayer = REPLAYERS.get(row["source"])
    if replayer is None:
        raise OrdersyncError(f"no replay is registered for source {row['source']}")
    given = body if body is not None else bytes(row["body"])
    context = json.loads(row["context"])
    try:
        said = replayer(hub, given, context)
        status = store.REPLAYED
    except Unprocessable as exc:
        said, status = f"still unprocessable: {exc}", store.HELD
    if body is not None:
        said += " (a corrected body was replayed)"
    with hub.uow() as uow:
        store.settle(uow.conn, entry_id, status=status, outcome=said, at=uow.now(), replay=True)
        if status == store.REPLAYED and row["case_id"]:
            _resolve(uow, row["case_id"], actor, f"quarantined payload {entry_id} replayed: {said}")
    log.info("quarantined payload %s replayed by %s: %s", entry_id, actor, said)
    return ReplayResult(entry_id, status, said)


def discard(hub: Any, entry_id: str, reason: str, actor: str) -> None:
    """A person decided the held payload is not to be processed (the sender re-sent it fixed, say)."""
    if not reason.strip():
        raise ValidationFailed(["say why the payload is discarded"])
    with hub.uow() as uow:
        row = store.entry(uow.conn, entry_id, lock=True)
        if row is None:
            raise NotFound(f"no quarantined payload {entry_id}")
        if row["status"] != store.HELD:
            raise ValidationFailed([f"quarantined payload {entry_id} is {row['status']} already"])
        store.settle(uow.conn, entry_id, status=store.DISCARDED, outcome=f"discarded by {actor}: {reason}",
                     at=uow.now(), replay=False)
        if row["case_id"]:
            _resolve(uow, row["case_id"], actor, f"quarantined payload {entry_id} discarded: {reason}")


def _resolve(uow: UnitOfWork, case_id: str, actor: str, comment: str) -> None:
    try:
        case = uow.cases.get(case_id)
    except NotFound:
        return
    if case.state is CaseState.RESOLVED:
        return
    resolved = resolve_case(case, action="resolve", actor=actor, comment=comment[:2000], now=uow.now())
    uow.cases.save(resolved)
    uow.emit(CaseResolved(case=resolved, action="resolve"), correlation_id=case.order_id)
