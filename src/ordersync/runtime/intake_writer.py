"""Group commit for intake: concurrent order submissions are written by one thread, many per
transaction, and each caller learns its receipt once that transaction is committed.

Why: SQLite has one writer at a time and the worker shares the process. An API request that waited
for the write lock on the event loop would stall every other request; many small transactions would
each pay for BEGIN/COMMIT. Here the event loop only awaits a future, and a burst of orders costs one
commit. One refused order (e.g. an idempotency conflict) does not take the others down with it.

Tracing: each submission remembers the caller's trace context; the writer opens an ``intake write``
span in each order's own trace for the batch's transaction, and the order's events carry that span's
context (:class:`~ordersync.telemetry.tracing.TraceContexts`), so a batch of orders stays a set of
separate traces.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from ordersync.canonical.v1 import Order
from ordersync.domain.cases import CasePolicy
from ordersync.domain.clock import Clock
from ordersync.domain.errors import ChangedResend
from ordersync.flows.services.intake import (
    NotAllNew,
    Receipt,
    Submission,
    accept_new_orders,
    accept_order,
    record_changed_resend,
)
from ordersync.store.db import Database
from ordersync.store.uow import UnitOfWork
from ordersync.telemetry import tracing
from ordersync.telemetry.tracing import Span, StatusCode

log = logging.getLogger("ordersync.intake")


@dataclass
class _Job:
    submission: Submission
    future: Future[Receipt]
    trace: tuple[str | None, str | None] = (None, None)


class IntakeWriter:
    def __init__(self, db: Database, clock: Clock, *, max_batch: int = 100, on_commit: object = None,
                 cases: CasePolicy | None = None) -> None:
        self.db = db
        self.clock = clock
        self.cases = cases or CasePolicy()
        self.max_batch = max_batch
        self.on_commit = on_commit
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.orders = 0


    def submit(self, order: Order, *, scope: str, idempotency_key: str | None = None,
               fingerprint: str | None = None, delivery_id: str | None = None) -> Future[Receipt]:
        self._ensure_started()
        future: Future[Receipt] = Future()
        self._queue.put(_Job(Submission(order, scope, idempotency_key, fingerprint, delivery_id), future,
                             tracing.current_context()))
        return future

    async def accept(self, order: Order, **kwargs: str | None) -> Receipt:
        """Await the committed receipt without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(order, **kwargs))  # type: ignore[arg-type]

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._write(jobs)
                    return
                jobs.append(job)
            self._write(jobs)

    def _write(self, jobs: list[_Job]) -> None:
        """Write ``jobs`` in one transaction: all at once when every order and key is new (the common
        case, a few statements per batch), else one order at a time (see :meth:`_write_one_by_one`)."""
        spans = _spans(jobs)
        try:
            with self.db.write(urgent=True) as conn:
                uow = UnitOfWork(conn, self.clock)
                for job, span in zip(jobs, spans, strict=True):
                    uow.traces.set(job.submission.order.id, span)
                receipts = accept_new_orders(uow, [job.submission for job in jobs])
                uow.flush()
        except NotAllNew:
            _end(spans, "not all new: one order at a time")
            self._write_one_by_one(jobs)
            return
        except Exception as exc:  # the commit itself failed: nobody's order was stored
            _end(spans, exc)
            log.exception("intake batch of %d orders failed to commit", len(jobs))
            for job in jobs:
                job.future.set_exception(exc)
            return
        self._done(jobs, receipts)  # the callers first: ending the spans is not their wait
        _end(spans)

    def _write_one_by_one(self, jobs: list[_Job]) -> None:
        """Write ``jobs`` in one transaction, one order after the other. A job that raises (an idempotency
        conflict, say) is answered with its error and the batch is written again without it, so one
        refused order never takes the others down; that path is rare, the common one has no savepoints
        to pay for."""
        pending = list(jobs)
        while pending:
            receipts: list[Receipt] = []
            failed: _Job | None = None
            spans = _spans(pending)
            try:
                with self.db.write(urgent=True) as conn:
                    uow = UnitOfWork(conn, self.clock)
                    for job, span in zip(pending, spans, strict=True):
                        uow.traces.set(job.submission.order.id, span)
                    for job in pending:
                        s = job.submission
                        try:
                            receipts.append(accept_order(uow, s.order, scope=s.scope,
                                                         idempotency_key=s.idempotency_key,
                                                         fingerprint=s.fingerprint, delivery_id=s.delivery_id))
                        except Exception:
                            failed = job
                            raise
                    uow.flush()
            except Exception as exc:
                _end(spans, exc if failed is None else "rolled back: another order of the batch was refused")
                if failed is None:  # the commit itself failed: nobody's order was stored
                    log.exception("intake batch of %d orders failed to commit", len(pending))
                    for job in pending:
                        job.future.set_exception(exc)
                    return
                if isinstance(exc, ChangedResend):
                    self._record_refusal(exc)
                failed.future.set_exception(exc)
                pending.remove(failed)
                continue
            self._done(pending, receipts)
            _end(spans)
            return

    def _record_refusal(self, refused: ChangedResend) -> None:
        """A re-send with other content is refused and leaves a case (in a transaction of its own: the
        refused order's was rolled back); the channel is answered even when the case cannot be written."""
        try:
            with self.db.write(urgent=True) as conn:
                uow = UnitOfWork(conn, self.clock)
                record_changed_resend(uow, refused, self.cases)
                uow.flush()
        except Exception:
            log.exception("could not open the case for order %s re-sent with other content", refused.order_id)

    def _done(self, jobs: list[_Job], receipts: list[Receipt]) -> None:
        self.batches += 1
        self.orders += len(jobs)
        for job, receipt in zip(jobs, receipts, strict=True):
            job.future.set_result(receipt)
        if callable(self.on_commit):
            self.on_commit()


def _spans(jobs: list[_Job]) -> list[Span | None]:
    """One ``intake write`` span per order, in the trace of the request that submitted it (none when
    tracing is off)."""
    if not tracing.enabled():
        return [None] * len(jobs)
    return [tracing.start_span("intake write", parent=job.trace[0], state=job.trace[1], attributes={
        tracing.ORDER_ID: job.submission.order.id, tracing.ACCOUNT: job.submission.order.account_id,
        tracing.CHANNEL: job.submission.order.channel, "ordersync.intake.batch_size": len(jobs)})
        for job in jobs]


def _end(spans: list[Span | None], error: BaseException | str | None = None) -> None:
    for span in spans:
        if span is None:
            continue
        if isinstance(error, BaseException):
            span.record_exception(error)
            span.set_status(StatusCode.ERROR, f"{type(error).__name__}: {error}")
        elif error:
            span.set_attribute("ordersync.intake.retried", error)
        span.end()
