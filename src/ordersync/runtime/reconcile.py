"""Reconciliation: compare the hub with each ERP (and let channels compare themselves), and keep one
``erp_discrepancy`` case per discrepancy.

A run reads the hub's settled orders (accepted or later, or cancelled) in pages and the ERP's sales with
our reference prefix (:meth:`~ordersync.ports.erp.ErpPort.sales_since`, batched pages in the background
lane), then the hub's ERP returns and the ERP's (:meth:`~ordersync.ports.erp.ErpPort.returns_since`),
compares them (:mod:`ordersync.domain.reconcile`), then runs every :class:`ChannelCheck`. Each
discrepancy is kept under its stable key (``reconcile_findings``):

- new, and not of a kind that may be the change poller lagging: a case opens now;
- of a lagging kind (shipment, invoice, sale or return state): a case opens only once the discrepancy has
  outlived ``settle_seconds`` (seen again by a later run), so the hub's poller catching up opens none;
- seen again with an open case: the case is updated when the sides changed (never a second case);
- gone from a run that looked at its subject: its open case is resolved ("the sides agree now");
- its case resolved by a person and unchanged since: accepted as it is (no new case); changed: a new case.

A person re-checks a case (:meth:`Reconciler.recheck`, the workbench's ``recheck``): only that subject is
read again on both sides, and the case closes when they agree.

``--since`` (:meth:`Reconciler.run` with ``since``) narrows a run to hub orders updated since then and ERP
sales changed since then; without it the run looks at everything (the scheduled job).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Connection

from ordersync.canonical.erp import (
    ErpOrder,
    ErpReturn,
    SalesOrderRequest,
    SubmitOutcome,
    parse_reference,
    parse_return_reference,
)
from ordersync.canonical.v1 import CaseState, CaseType, OrderState
from ordersync.domain.cases import CasePolicy, open_case, record_action, resolve_case
from ordersync.domain.clock import Clock
from ordersync.domain.events import CaseOpened, CaseResolved, CaseUpdated
from ordersync.domain.order.aggregate import OrderRecord
from ordersync.domain.reconcile import Discrepancy, HubReturn, HubSale, compare, compare_returns
from ordersync.ports.erp import Erps, Lane
from ordersync.store import reconcile as rows
from ordersync.store.db import Database
from ordersync.store.reconcile import SETTLED_STATES, Finding
from ordersync.store.uow import SqlStore

log = logging.getLogger("ordersync.runtime.reconcile")
SYSTEM = "ordersync"
NEXT_ACTION = "compare both sides, correct the wrong one in its own system, then re-check"


class ChannelCheck(Protocol):
    """A channel's own comparison, run by the same job (EDI: documents received without an order ...).
    ``name`` is the discrepancies' ``source``; ``subject`` of each is what :meth:`recheck` takes."""

    name: str

    def discrepancies(self, since: dt.datetime | None) -> list[Discrepancy]:
        """Every discrepancy of this channel (concerning what changed at or after ``since``)."""
        ...

    def recheck(self, subject: str) -> list[Discrepancy]:
        """The discrepancies about ``subject`` as they stand now (none: the sides agree)."""
        ...


class StoreChecks:
    """A :class:`ChannelCheck` that reads the channel's records in the store: what is younger than
    ``settle_seconds`` is left to settle; a subject is rechecked by looking at everything again.
    Subclasses say what they find (:meth:`_find`)."""

    name: str

    def __init__(self, db: Database, clock: Clock, *, settle_seconds: float) -> None:
        self.db = db
        self.clock = clock
        self.settle = dt.timedelta(seconds=settle_seconds)

    def discrepancies(self, since: dt.datetime | None) -> list[Discrepancy]:
        before = self.clock.now() - self.settle
        with self.db.read() as conn:
            return self._find(conn, since, before)

    def recheck(self, subject: str) -> list[Discrepancy]:
        return [d for d in self.discrepancies(None) if d.subject == subject]

    def _find(self, conn: Connection, since: dt.datetime | None, before: dt.datetime) -> list[Discrepancy]:
        raise NotImplementedError


@dataclass(frozen=True)
class Outcome:
    """What a run did with one discrepancy: ``opened`` a case, ``updated`` its open case, ``open`` (seen
    again, unchanged), ``settling`` (a lagging kind not old enough for a case yet) or ``accepted`` (a person
    resolved its case and it is unchanged since)."""

    discrepancy: Discrepancy
    status: str
    case_id: str | None


@dataclass
class Report:
    started_at: dt.datetime
    since: dt.datetime | None
    outcomes: list[Outcome] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)  # keys whose case closed: the sides agree now
    hub_sales: int = 0
    erp_sales: int = 0
    errors: list[str] = field(default_factory=list)  # sources that could not be read (their findings stay)

    @property
    def discrepancies(self) -> list[Discrepancy]:
        return [o.discrepancy for o in self.outcomes]

    def as_json(self) -> dict[str, object]:
        return {
            "started_at": self.started_at.isoformat(), "since": self.since.isoformat() if self.since else None,
            "hub_sales": self.hub_sales, "erp_sales": self.erp_sales, "errors": self.errors, "resolved": self.resolved,
            "discrepancies": [{
                "key": o.discrepancy.key, "source": o.discrepancy.source, "kind": o.discrepancy.kind,
                "subject": o.discrepancy.subject, "order_id": o.discrepancy.order_id,
                "account_id": o.discrepancy.account_id, "status": o.status, "case_id": o.case_id,
                "diffs": [{"field": d.field, "hub": d.hub, "other": d.erp} for d in o.discrepancy.diffs],
            } for o in self.outcomes],
        }


def hub_sales(record: OrderRecord, references: Iterable[str] | None = None) -> list[HubSale]:
    """What the hub holds of the order's accepted ERP sales (only ``references`` when given), without
    documents."""
    accepted = {s.reference for s in record.erp_orders if s.outcome is SubmitOutcome.ACCEPTED}
    if references is not None:
        accepted &= set(references)
    cancelled = record.state is OrderState.CANCELLED
    requests = {r.reference: r for r in record.erp_requests(credit_approved=record.credit_approved)}
    out = []
    for reference in sorted(accepted):
        # a plant whose every line was amended away has no request any more: its sale stands with no live line
        request = requests.get(reference) or SalesOrderRequest(
            reference=reference, order_id=record.id, account_id=record.order.account_id,
            plant=(parse_reference(reference) or ("", ""))[1], currency=record.order.currency or "", lines=())
        out.append(HubSale(request, cancelled=cancelled))
    return out


class Reconciler:
    """The reconciliation job of a hub (see the module docstring)."""

    def __init__(self, db: Database, store: SqlStore, erps: Erps, clock: Clock, policy: CasePolicy, *,
                 settle_seconds: float = 900.0, page: int = 500, checks: Sequence[ChannelCheck] = (),
                 interval_seconds: float = 0.0) -> None:
        self.db = db
        self.store = store
        self.erps = erps.in_lane(Lane.BACKGROUND)
        self.clock = clock
        self.policy = policy
        self.settle_seconds = settle_seconds
        self.page = page
        self.checks = list(checks)
        #: the periodic job's first full run comes one interval after start (not with every worker start)
        self.interval_seconds = interval_seconds
        self._next_job = clock.now() + dt.timedelta(seconds=interval_seconds)

    # -- the run ----------------------------------------------------------------------------------------
    def run(self, since: dt.datetime | None = None, progress: Callable[[str], None] | None = None) -> Report:
        """Compare everything (or what changed at or after ``since``) and keep the cases in step."""
        say = progress or (lambda _: None)
        report = Report(started_at=self.clock.now(), since=since)
        for name in self.erps.names():
            say(f"comparing the hub with ERP {name}")
            try:
                found, looked_at = self._erp(name, since, report)
            except Exception as exc:  # an ERP that cannot be read keeps its findings as they are
                log.warning("reconciliation could not read ERP %s: %s", name, exc)
                report.errors.append(f"erp:{name}: {exc}")
                continue
            self._keep(f"erp:{name}", found, looked_at if since is not None else None, report)
        for check in self.checks:
            say(f"running the {check.name} checks")
            try:
                found = check.discrepancies(since)
            except Exception as exc:
                log.warning("reconciliation check %s failed: %s", check.name, exc)
                report.errors.append(f"{check.name}: {exc}")
                continue
            self._keep(check.name, found, {d.subject for d in found} if since is not None else None, report)
        if report.outcomes or report.resolved:
            log.info("reconciliation: %d discrepancy(ies), %d resolved", len(report.outcomes), len(report.resolved))
        return report

    def run_job(self) -> int:
        """The worker's periodic job: a full run every ``interval_seconds`` (the first one that long after
        start); the number of cases opened or resolved."""
        if self.clock.now() < self._next_job:
            return 0
        self._next_job = self.clock.now() + dt.timedelta(seconds=self.interval_seconds)
        report = self.run()
        return sum(o.status == "opened" for o in report.outcomes) + len(report.resolved)

    def _erp(self, name: str, since: dt.datetime | None, report: Report) -> tuple[list[Discrepancy], set[str]]:
        """Every discrepancy with ERP ``name``, and the references looked at."""
        erp = self.erps.erp(name)
        with self.db.read() as conn:
            # only what the comparison needs is kept of each order (the account and the sales), not the record
            accounts: dict[str, str] = {}
            sales: dict[str, list[HubSale]] = {}
            for r in rows.settled_orders(conn, since, self.page):
                if (r.erp or "") == name:
                    accounts[r.id], sales[r.id] = r.order.account_id, hub_sales(r)
        mine = [s.request.reference for group in sales.values() for s in group]
        erp_sales = erp.sales_since(since, mine if since is not None else ())
        found, looked_at = self._compare(name, accounts, sales, erp_sales, report)
        with self.db.read() as conn:
            parts = rows.hub_returns(conn, name, since=since)
        erp_returns = erp.returns_since(since, [p.reference for p in parts] if since is not None else ())
        more, refs = self._compare_returns(name, parts, erp_returns)
        return found + more, looked_at | refs

    def _compare_returns(self, name: str, parts: list[HubReturn], erp_returns: list[ErpReturn]
                         ) -> tuple[list[Discrepancy], set[str]]:
        """Returns: the hub's ``parts`` (and those of ERP returns it did not read yet) against the ERP's."""
        with self.db.read() as conn:
            others = sorted({r.reference for r in erp_returns} - {p.reference for p in parts})
            parts = parts + (rows.hub_returns(conn, name, references=others) if others else [])
            known = rows.return_accounts(conn, sorted({r.return_id for r in erp_returns}))
        found = compare_returns(name, parts, erp_returns, known_returns=known)
        return found, {p.reference for p in parts} | {r.reference for r in erp_returns}

    def _compare(self, name: str, accounts: dict[str, str], sales: dict[str, list[HubSale]],
                 erp_sales: list[ErpOrder], report: Report) -> tuple[list[Discrepancy], set[str]]:
        """``accounts``: order id -> account of the hub orders in ``sales``."""
        others = sorted({s.order_id for s in erp_sales} - set(accounts))
        with self.db.read() as conn:
            known = rows.orders_by_id(conn, others)
            listed = {s.reference for s in erp_sales}
            for order_id, record in known.items():  # the ERP changed a sale of an order the hub did not touch
                if record.state in SETTLED_STATES and (record.erp or "") == name:
                    accounts[order_id] = record.order.account_id
                    sales[order_id] = hub_sales(record, listed)
            docs = rows.documents(conn, name, sorted(accounts))
        hub = [HubSale(s.request, s.cancelled, docs.shipments.get(s.request.reference, {}),
                       docs.invoices.get(s.request.reference, {}))
               for group in sales.values() for s in group]
        owners = {**{i: r.order.account_id for i, r in known.items()}, **accounts}
        expected = {i: _expected(r) for i, r in known.items()}
        expected.update({i: {s.request.reference for s in group} for i, group in sales.items()})
        report.hub_sales += len(hub)
        report.erp_sales += len(erp_sales)
        found = compare(name, hub, erp_sales, known_orders=owners, expected=expected)
        return found, {s.request.reference for s in hub} | {s.reference for s in erp_sales}

    # -- cases ------------------------------------------------------------------------------------------
    def _keep(self, source: str, found: list[Discrepancy], looked_at: set[str] | None, report: Report) -> None:
        """Keep ``found`` and their cases; resolve the cases of findings of ``source`` gone from this run
        (of those whose subject it looked at, or all with ``looked_at`` None)."""
        keys = {d.key for d in found}
        for d in found:
            report.outcomes.append(self._one(d))
        with self.db.read() as conn:
            kept = rows.findings(conn, source)
        for old in kept:
            if old.key not in keys and (looked_at is None or old.subject in looked_at):
                self._gone(old, "reconciliation found both sides agreeing")
                report.resolved.append(old.key)

    def _one(self, d: Discrepancy) -> Outcome:
        with self.store.transaction(causation_id=None) as uow:
            now = uow.now()
            old = rows.finding(uow.conn, d.key)
            case = uow.cases.get(old.case_id) if old is not None and old.case_id else None
            if case is not None and case.state is CaseState.RESOLVED:
                if old is not None and old.diffs == d.diffs:  # a person resolved it as it is: accepted
                    rows.keep(uow.conn, Finding(d.key, d.source, d.kind, d.subject, d.order_id, case.id, d.diffs,
                                                old.first_seen_at, now))
                    return Outcome(d, "accepted", case.id)
                case = None  # it changed since a person resolved it: a new case
            first = old.first_seen_at if old is not None else now
            status, case_id = "open", case.id if case else None
            if case is not None and old is not None and old.diffs != d.diffs:
                updated = record_action(case, action="reconciled", actor=SYSTEM, comment=d.summary[:1000], now=now,
                                        summary=d.summary[:1000])
                uow.cases.save(updated)
                uow.emit(CaseUpdated(case=updated, action="reconciled", actor=SYSTEM), correlation_id=d.order_id)
                status = "updated"
            elif case is None and (not d.settles or now - first >= dt.timedelta(seconds=self.settle_seconds)):
                exists = d.order_id is not None and uow.orders.find(d.order_id) is not None
                new = open_case(CaseType.ERP_DISCREPANCY, summary=d.summary[:1000], next_action=NEXT_ACTION,
                                now=now, policy=self.policy, order_id=d.order_id if exists else None,
                                account_id=d.account_id)
                uow.cases.add(new)
                uow.emit(CaseOpened(case=new), correlation_id=new.order_id)
                status, case_id = "opened", new.id
            elif case is None:
                status = "settling"
            rows.keep(uow.conn, Finding(d.key, d.source, d.kind, d.subject, d.order_id, case_id, d.diffs, first, now))
        return Outcome(d, status, case_id)

    def _gone(self, old: Finding, comment: str, actor: str = SYSTEM) -> None:
        with self.store.transaction() as uow:
            if old.case_id:
                case = uow.cases.get(old.case_id)
                if case.state is not CaseState.RESOLVED:
                    resolved = resolve_case(case, action="recheck", actor=actor, comment=comment, now=uow.now())
                    uow.cases.save(resolved)
                    uow.emit(CaseResolved(case=resolved, action="recheck"), correlation_id=case.order_id)
            rows.forget(uow.conn, old.key)

    # -- re-check -----------------------------------------------------------------------------------------
    def recheck(self, case_id: str, actor: str) -> tuple[bool, str]:
        """Read the case's subject again on both sides: (True, why) when they agree now (the case is
        resolved), else (False, the sides as they stand; the case stays open, updated)."""
        with self.db.read() as conn:
            old = rows.finding_of_case(conn, case_id)
        if old is None:
            return False, "this case was not opened by reconciliation"
        found = [d for d in self._subject(old) if d.key == old.key]
        if not found:
            self._gone(old, f"re-checked by {actor}: both sides agree now", actor)
            return True, "both sides agree now"
        self._one(found[0])
        return False, found[0].summary

    def _subject(self, old: Finding) -> list[Discrepancy]:
        if not old.source.startswith("erp:"):
            check = next((c for c in self.checks if c.name == old.source), None)
            return check.recheck(old.subject) if check is not None else []
        name = old.source.removeprefix("erp:")
        if parse_return_reference(old.subject) is not None:
            erp_return = self.erps.erp(name).return_status(old.subject)
            with self.db.read() as conn:
                parts = rows.hub_returns(conn, name, references=[old.subject])
            return self._compare_returns(name, parts, [erp_return] if erp_return is not None else [])[0]
        sale = self.erps.erp(name).order(old.subject)
        order_id = (parse_reference(old.subject) or ("", ""))[0]
        with self.db.read() as conn:
            known = rows.orders_by_id(conn, [order_id])
        mine = {i: r for i, r in known.items() if r.state in SETTLED_STATES and (r.erp or "") == name}
        sales = {i: hub_sales(r, [old.subject]) for i, r in mine.items()}
        accounts = {i: r.order.account_id for i, r in mine.items()}
        found, _ = self._compare(name, accounts, sales, [sale] if sale is not None else [],
                                 Report(self.clock.now(), None))
        return found


def _expected(record: OrderRecord) -> set[str]:
    """The references a hub order outside the run may have in the ERP: every one it submitted (a quotation
    on hold, a submission in flight), or every reference at all while it is still on its way."""
    if record.state in SETTLED_STATES:
        return {s.reference for s in record.erp_orders if s.outcome is SubmitOutcome.ACCEPTED}
    return {s.reference for s in record.erp_orders} | {r.reference for r in record.erp_requests(credit_approved=False)}
