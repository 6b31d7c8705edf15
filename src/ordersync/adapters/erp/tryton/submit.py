"""Submitting sales orders to Tryton: idempotent by reference, batched, warnings as outcomes.

For a batch of requests the calls are: one search by all references; one ``create`` of every missing
sale; one search for duplicates made meanwhile by another client; then per chunk of ``DEFAULT_CHUNK``
sales one ``quote`` and one ``confirm``; one read of the resulting numbers. Everything else only happens
when needed:

* a sale left behind by a crash (draft or quotation) is reconciled: its lines are made to match the
  request (one ``write`` for all of them), then it continues the workflow; never a second sale;
* a warning aborts a whole Tryton call and names its sale (see :mod:`.warnings`): that sale takes its
  outcome (``stock_shortfall`` on quote, ``credit_hold`` on confirm) and the call is repeated for the
  others; a ``UserError`` on a batch is narrowed down by calling sale by sale;
* Tryton checks credit and stock of each sale of a batch against the *committed* state only (states
  are written after the checks), so sales of one batch do not see each other: a party whose sales of
  the batch together exceed its limit is confirmed one sale at a time, and a sale refused for stock on
  confirm (where the other sales of the batch count as quotations) is re-run alone afterwards. The
  result is what submitting the requests one after the other, in order, would give.

Transport failures (``TrytonUnavailable``, also a read timeout after Tryton may have committed) raise
:class:`~ordersync.domain.errors.Unavailable`: the retry's search by reference picks up where it stopped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp.erp_common import ACCEPTED_SALE_STATES, KeyedLocks
from ordersync.adapters.erp.tryton import warnings as w
from ordersync.adapters.erp.tryton.directory import Directory
from ordersync.adapters.erp.tryton.orders import STATE_RANK
from ordersync.adapters.erp.tryton.rpc import TrytonClient, TrytonUserError, TrytonUserWarning
from ordersync.adapters.erp.tryton.shortfalls import shortfalls_of
from ordersync.adapters.erp.tryton.submit_plan import Job, create_values, prepare, reconcile_values
from ordersync.ports.erp import SalesOrderRequest, SubmitOutcome, SubmitResult

#: sales per quote/confirm call; measured best on Tryton 8.2 + SQLite with 100 orders (see bench/erp.py)
DEFAULT_CHUNK = 20
_SALE_FIELDS = ["reference", "state", "party", "warehouse", "shipment_address", "shipping_date", "description", "lines"]


def _message(exc: TrytonUserError | TrytonUserWarning) -> str:
    return f"{exc.message} {exc.description}".strip()


class Submitter:
    """The submission algorithm of :class:`TrytonErp` (see the module docstring)."""

    def __init__(
        self, client: TrytonClient, directory: Directory, today: Callable[[], dt.date], *, chunk: int = DEFAULT_CHUNK
    ) -> None:
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        self._c = client
        self._dir = directory
        self._today = today
        self._locks = KeyedLocks()
        self.chunk = chunk

    def submit(self, requests: Sequence[SalesOrderRequest]) -> list[SubmitResult]:
        jobs = [Job(i, r) for i, r in enumerate(requests)]
        first: dict[str, Job] = {}
        repeats: list[tuple[Job, Job]] = []
        for job in jobs:  # the same reference twice in one batch: the later ones follow the first
            if job.reference in first:
                repeats.append((job, first[job.reference]))
            else:
                first[job.reference] = job
        unique = list(first.values())
        with self._locks.hold(list(first)):
            self._run(unique)
        for job, leader in repeats:
            assert leader.result is not None
            job.result = leader.result.model_copy(update={"reconciled": True})
        return [job.result for job in jobs if job.result is not None]

    # -- the steps ---------------------------------------------------------------------------------------
    def _run(self, jobs: list[Job]) -> None:
        today = self._today()
        for job in jobs:
            prepare(job, self._dir, today)
        to_quote, to_confirm = self._reconcile_existing([j for j in jobs if j.open])
        created, adopted = self._create([j for j in jobs if j.open and j.sale_id is None])
        to_quote += created
        to_confirm += adopted
        self._acknowledge(jobs)
        # quote and confirm chunk by chunk, in request order: Tryton's stock check of each sale walks the
        # lines of every other quotation, so quoting a whole large batch before confirming it makes every
        # confirm slower (and confirm runs that check four times: it restarts for each table it locks)
        drafts = set(map(id, to_quote))
        waiting = sorted([*to_quote, *to_confirm], key=lambda j: j.index)
        for start in range(0, len(waiting), self.chunk):
            chunk = waiting[start : start + self.chunk]
            quoted = self._quote([j for j in chunk if id(j) in drafts])
            self._confirm(sorted([*quoted, *(j for j in chunk if id(j) not in drafts)], key=lambda j: j.index))
        short = [j for j in jobs if j.result and j.result.outcome is SubmitOutcome.STOCK_SHORTFALL]
        self._describe_shortfalls(short, jobs)
        self._settle(jobs)

    def _reconcile_existing(self, jobs: list[Job]) -> tuple[list[Job], list[Job]]:
        """Find sales already made for the references; returns (drafts to quote, quotations to confirm)."""
        if not jobs:
            return [], []
        by_ref = {j.reference: j for j in jobs}
        rows = self._c.call(
            "sale.sale", "search_read", [("reference", "in", list(by_ref))], 0, None, [("id", "ASC")], _SALE_FIELDS
        )
        best: dict[str, dict[str, Any]] = {}
        for row in rows:  # several sales for one reference (an old race): the most advanced, then the oldest
            held = best.get(row["reference"])
            if held is None or STATE_RANK[row["state"]] > STATE_RANK[held["state"]]:
                best[row["reference"]] = row
        return self._adopt([(by_ref[ref], row) for ref, row in best.items()])

    def _adopt(self, found: list[tuple[Job, dict[str, Any]]]) -> tuple[list[Job], list[Job]]:
        """Take over existing sales: accepted ones are done, cancelled ones refused, drafts and quotations
        made to match the request. Returns (drafts to quote, unchanged quotations to confirm)."""
        to_quote: list[Job] = []
        to_confirm: list[Job] = []
        lines = self._read_lines([row for _, row in found if row["state"] in ("draft", "quotation")])
        updates: list[tuple[Job, dict[str, Any]]] = []
        redraft: list[int] = []
        for job, row in found:
            job.sale_id, job.reconciled = row["id"], True
            job.preexisting = row["state"] == "quotation" or row["state"] in ACCEPTED_SALE_STATES
            if row["state"] in ACCEPTED_SALE_STATES:
                job.finish(SubmitOutcome.ACCEPTED)
            elif row["state"] == "cancelled":
                job.finish(
                    SubmitOutcome.REJECTED, f"ERP order {row['id']} for {job.reference} was cancelled in the ERP"
                )
            else:
                values = reconcile_values(job, row, [lines[i] for i in row.get("lines", []) if i in lines])
                if values is None:
                    (to_confirm if row["state"] == "quotation" else to_quote).append(job)
                    continue
                if row["state"] == "quotation":  # only drafts can be edited
                    redraft.append(row["id"])
                updates.append((job, values))
                to_quote.append(job)
        if redraft:
            self._c.call("sale.sale", "draft", redraft)
        self._write(updates)
        return [j for j in to_quote if j.open], [j for j in to_confirm if j.open]

    def _read_lines(self, sales: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        ids = [i for s in sales for i in s.get("lines", [])]
        if not ids:
            return {}
        rows = self._c.call("sale.line", "read", ids, ["sequence", "type", "product", "quantity", "unit_price"])
        return {row["id"]: row for row in rows}

    def _write(self, updates: list[tuple[Job, dict[str, Any]]]) -> None:
        if not updates:
            return
        try:  # Tryton's write takes (ids, values) pairs: one call for every sale
            self._c.call("sale.sale", "write", *[a for job, vals in updates for a in ([job.sale_id], vals)])
        except TrytonUserError:
            for job, vals in updates:
                try:
                    self._c.call("sale.sale", "write", [job.sale_id], vals)
                except TrytonUserError as exc:
                    job.finish(SubmitOutcome.REJECTED, _message(exc))

    def _create(self, jobs: list[Job]) -> tuple[list[Job], list[Job]]:
        """Create the missing sales: the good ones in one call, suspects (and a refused batch) one by one.
        Returns (drafts to quote, quotations to confirm) - the latter only when another client won."""
        if not jobs:
            return [], []
        batch = [j for j in jobs if not j.suspect]
        alone = [j for j in jobs if j.suspect]
        if batch:
            try:
                ids = self._c.call("sale.sale", "create", [create_values(j) for j in batch])
                for job, sale_id in zip(batch, ids, strict=True):
                    job.sale_id = sale_id
            except TrytonUserError:
                alone = batch + alone
        for job in sorted(alone, key=lambda j: j.index):
            try:
                (job.sale_id,) = self._c.call("sale.sale", "create", [create_values(job)])
            except TrytonUserError as exc:
                job.finish(SubmitOutcome.REJECTED, _message(exc))
        return self._deduplicate([j for j in jobs if j.open and j.sale_id is not None])

    def _deduplicate(self, created: list[Job]) -> tuple[list[Job], list[Job]]:
        """Another client may have created a sale for the same reference meanwhile: the oldest wins, ours
        (a draft nobody else touched) is deleted and the winner adopted. Tryton enforces nothing here;
        on SQLite its writes are serialised, so the older sale is always visible to the younger one's
        creator (on PostgreSQL ids are taken before commit: a narrow window remains)."""
        if not created:
            return [], []
        domain = [("reference", "in", [j.reference for j in created]), ("state", "!=", "cancelled")]
        rows = self._c.call("sale.sale", "search_read", domain, 0, None, [("id", "ASC")], _SALE_FIELDS)
        oldest: dict[str, dict[str, Any]] = {}
        for row in rows:
            oldest.setdefault(row["reference"], row)
        losers = [j for j in created if oldest.get(j.reference, {}).get("id", j.sale_id) != j.sale_id]
        if not losers:
            return created, []
        self._c.call("sale.sale", "delete", [j.sale_id for j in losers])
        to_quote, to_confirm = self._adopt([(j, oldest[j.reference]) for j in losers])
        return [j for j in created if j not in losers] + to_quote, to_confirm

    def _acknowledge(self, jobs: list[Job]) -> None:
        """The hub already decided: acknowledge stock warnings of ``accept_shortfall`` sales (always: quote
        and confirm both check) and the credit warning of ``credit_approved`` ones, before the calls."""
        approved = [j for j in jobs if j.open and j.sale_id and j.request.credit_approved]
        accepting = [j.sale_id for j in jobs if j.open and j.sale_id and j.request.accept_shortfall]
        for job in approved:
            assert job.sale_id is not None
            self._c.skip_warning(w.credit_warning_name(job.sale_id))
        if accepting:
            for line_id in self._c.call("sale.line", "search", [("sale", "in", accepting)], 0, None, None):
                self._c.skip_warning(w.stock_warning_name(line_id), always=True)

    # -- quote and confirm -------------------------------------------------------------------------------
    def _line_sales(self, jobs: list[Job]) -> Callable[[int], int | None]:
        cache: dict[int, int] = {}

        def sale_of(line_id: int) -> int | None:
            if line_id not in cache:
                ids = [j.sale_id for j in jobs if j.sale_id]
                for row in self._c.call("sale.line", "search_read", [("sale", "in", ids)], 0, None, None, ["sale"]):
                    cache[row["id"]] = row["sale"]
            return cache.get(line_id)

        return sale_of

    def _button(self, button: str, jobs: list[Job], on_warning: Callable[[Job, TrytonUserWarning], bool]) -> list[Job]:
        """Call ``button`` on the sales of ``jobs`` at once; a warning takes its sale out (``on_warning``
        settles it; returning True means "acknowledge it and go on"), a ``UserError``, or a warning that
        names no sale of the batch, makes the rest go one by one. Returns the jobs it went through for."""
        pending = [j for j in jobs if j.open]
        sale_of_line = self._line_sales(pending)
        acknowledged: set[str] = set()
        while pending:
            try:
                self._c.call("sale.sale", button, [j.sale_id for j in pending])
                return pending
            except TrytonUserWarning as warning:
                job = self._job_of(warning, pending, sale_of_line)
                if job is None:
                    break
                if warning.name not in acknowledged and on_warning(job, warning):
                    acknowledged.add(warning.name)
                    self._c.skip_warning(warning.name)
                    continue
                if job.open:  # a warning the hub has no outcome for, or one that would not go away
                    job.finish(SubmitOutcome.REJECTED, _message(warning))
                pending.remove(job)
            except TrytonUserError:
                break
        return [job for job in pending if self._button_alone(button, job, on_warning)]

    def _button_alone(self, button: str, job: Job, on_warning: Callable[[Job, TrytonUserWarning], bool]) -> bool:
        acknowledged: set[str] = set()
        while True:
            try:
                self._c.call("sale.sale", button, [job.sale_id])
                return True
            except TrytonUserWarning as warning:
                if warning.name in acknowledged or not on_warning(job, warning):
                    if job.open:
                        job.finish(SubmitOutcome.REJECTED, _message(warning))
                    return False
                acknowledged.add(warning.name)
                self._c.skip_warning(warning.name)
            except TrytonUserError as exc:
                if self._went_past(button, job):
                    return True
                job.finish(SubmitOutcome.REJECTED, _message(exc))
                return False

    def _went_past(self, button: str, job: Job) -> bool:
        """True when the sale is already beyond ``button`` (another client pressed it meanwhile: Tryton
        refuses a button whose state no longer allows it, "You can not call ...")."""
        (row,) = self._c.call("sale.sale", "read", [job.sale_id], ["state"])
        done = {"quote": {"quotation", *ACCEPTED_SALE_STATES}, "confirm": set(ACCEPTED_SALE_STATES)}
        return row["state"] in done.get(button, set())

    def _job_of(
        self, warning: TrytonUserWarning, jobs: list[Job], sale_of_line: Callable[[int], int | None]
    ) -> Job | None:
        line_id = w.stock_line_id(warning)
        if line_id is not None:
            sale_id = sale_of_line(line_id)
        else:
            sale_id = w.sale_of_record_warning(warning, [j.sale_id for j in jobs if j.sale_id])
        return next((j for j in jobs if j.sale_id == sale_id), None) if sale_id else None

    def _quote(self, jobs: list[Job]) -> list[Job]:
        return self._button("quote", jobs, _on_quote_warning) if jobs else []

    def _confirm(self, jobs: list[Job]) -> None:
        retry: list[Job] = []

        def on_warning(job: Job, warning: TrytonUserWarning) -> bool:
            kind = w.kind_of(warning)
            if kind is w.WarningKind.CREDIT:
                if job.request.credit_approved:
                    return True
                job.finish(SubmitOutcome.CREDIT_HOLD, _message(warning))  # stays a quotation, as Tryton's hold
            elif kind is w.WarningKind.STOCK:
                if job.request.accept_shortfall:
                    return True
                # maybe short only because of later sales of this batch (they count as quotations): back to
                # draft at once (a quotation keeps reserving in Tryton's check), run alone afterwards
                self._c.call("sale.sale", "draft", [job.sale_id])
                retry.append(job)
                job.finish(SubmitOutcome.STOCK_SHORTFALL, _message(warning))
            return False

        for wave in self._credit_waves([j for j in jobs if j.open]):
            # latest request first: when sales of the batch compete for stock, the later ones give way
            self._button("confirm", sorted(wave, key=lambda j: -j.index), on_warning)
        for job in sorted(retry, key=lambda j: j.index):  # alone now, in request order
            job.result = None
            if self._button_alone("quote", job, _on_quote_warning) and job.open:
                self._button_alone("confirm", job, on_warning)

    def _credit_waves(self, jobs: list[Job]) -> list[list[Job]]:
        """Confirm waves: everything at once, except that the 2nd, 3rd... sale of a party whose sales of
        the batch together exceed its credit go in later waves (Tryton's check must see the earlier ones)."""
        by_party: dict[int, list[Job]] = {}
        for job in jobs:
            if job.party is not None:
                by_party.setdefault(job.party.id, []).append(job)
        crowded = [p for p, js in by_party.items() if len(js) > 1 and not all(j.request.credit_approved for j in js)]
        risky: set[int] = set()
        if crowded:
            rows = self._c.call("party.party", "read", crowded, ["credit_amount", "credit_limit_amount"])
            for row in rows:
                limit = row["credit_limit_amount"]
                total = sum((j.amount for j in by_party[row["id"]]), Decimal(0))
                if limit is not None and (row["credit_amount"] or 0) + total > limit:
                    risky.add(row["id"])
        waves: list[list[Job]] = [[]]
        for job in jobs:
            position = by_party[job.party.id].index(job) if job.party and job.party.id in risky else 0
            while len(waves) <= position:
                waves.append([])
            waves[position].append(job)
        return [wave for wave in waves if wave]

    # -- results -----------------------------------------------------------------------------------------
    def _describe_shortfalls(self, jobs: list[Job], batch: list[Job]) -> None:
        if not jobs:
            return
        details = shortfalls_of(self._c, self._dir, jobs, batch)
        for job in jobs:
            assert job.result is not None
            job.result = job.result.model_copy(update={"shortfalls": tuple(details.get(job.index, ()))})

    def _settle(self, jobs: list[Job]) -> None:
        ids = [j.sale_id for j in jobs if j.sale_id]
        rows = {r["id"]: r for r in self._c.call("sale.sale", "read", ids, ["number", "state"])} if ids else {}
        for job in jobs:
            row = rows.get(job.sale_id or 0)
            if job.open:
                state = row["state"] if row else "missing"
                if state in ACCEPTED_SALE_STATES:
                    job.finish(SubmitOutcome.ACCEPTED)
                else:  # cannot happen unless someone edits the sale meanwhile; never claim acceptance
                    job.finish(SubmitOutcome.REJECTED, f"ERP order left in state {state}")
            assert job.result is not None
            job.result = job.result.model_copy(
                update={
                    "erp_order_id": str(job.sale_id) if job.sale_id else None,
                    "erp_order_number": (row["number"] or None) if row else None,
                    "reconciled": job.reconciled,
                }
            )


def _on_quote_warning(job: Job, warning: TrytonUserWarning) -> bool:
    """On quote a stock warning is a shortfall, unless the hub accepted shortfalls for this order."""
    if w.kind_of(warning) is w.WarningKind.STOCK:
        if job.request.accept_shortfall:
            return True
        job.finish(SubmitOutcome.STOCK_SHORTFALL, _message(warning))
    return False
