"""Returns in Tryton: a sale of negative quantities whose ``origin`` is the sale the goods come back from
(what Tryton's own "Return Sale" wizard makes; see docs/adr/0005-returns-in-tryton.md).

Creating one: search by reference first (a retry or a crash finds its return and carries on from its
state); else read the original sale, check each line against what it shipped (done moves) less what its
other live returns take back, create the return sale, let the oldest of duplicates made meanwhile win,
then quote and confirm it. Confirming makes Tryton plan a customer return shipment and a draft credit
note. A stock or credit warning on a return is acknowledged (it takes no stock and adds no credit); any
other refusal cancels the return sale, so a retry reads the same refusal.

Reading one back: the sale's ``shipment_state`` ("sent" once every move came back) and
``invoice_state`` (a credit note posted) say received and credited (``erp_common.return_state``).
Receiving the goods and posting the credit note both re-process the sale, which bumps its
``write_date``: the change poll only has to watch return sales.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ordersync.adapters.erp.erp_common import (
    ACCEPTED_SALE_STATES,
    KeyedLocks,
    return_problems,
    return_state,
    version,
)
from ordersync.adapters.erp.tryton import warnings as w
from ordersync.adapters.erp.tryton.directory import Directory
from ordersync.adapters.erp.tryton.documents import stamp
from ordersync.adapters.erp.tryton.orders import best_sale
from ordersync.adapters.erp.tryton.rpc import TrytonClient, TrytonUserError, TrytonUserWarning
from ordersync.ports.erp import (
    RETURN_PREFIX,
    Change,
    ChangeKind,
    ErpReturn,
    ErpReturnLine,
    ErpReturnState,
    Known,
    ReturnOutcome,
    ReturnRequest,
    ReturnResult,
    parse_return_reference,
)

_RETURN_FIELDS = ["reference", "number", "state", "party", "warehouse", "lines", "shipment_state", "invoice_state",
                  "write_date", "create_date"]
_ORIGIN_FIELDS = ["reference", "state", "party", "company", "currency", "warehouse", "shipment_address",
                  "invoice_address", "price_list", "payment_term", "lines"]
_HEADER = ("party", "company", "currency", "warehouse", "shipment_address", "invoice_address", "price_list",
           "payment_term")
#: warnings a return may meet although it takes no stock and adds no credit: the hub authorized it
_ACKNOWLEDGED = frozenset({w.WarningKind.STOCK, w.WarningKind.CREDIT})


class Refused(Exception):
    """Tryton refused to quote or confirm the return; the message says why."""


class Returns:
    """``create_return``, ``return_status`` and the return changes of :class:`TrytonErp`."""

    def __init__(self, client: TrytonClient, directory: Directory) -> None:
        self._c = client
        self._dir = directory
        self._locks = KeyedLocks()  # one return of an order at a time: each checks what the others take

    # -- creating ----------------------------------------------------------------------------------------
    def create(self, request: ReturnRequest) -> ReturnResult:
        with self._locks.hold([request.order_reference]):
            existing = self._best(request.reference)
            if existing is not None:
                return self._carry_on(request, existing, reconciled=True)
            return self._create(request)

    def _best(self, reference: str) -> Mapping[str, Any] | None:
        rows = self._c.call("sale.sale", "search_read", [("reference", "=", reference)], 0, None, [("id", "ASC")],
                            _RETURN_FIELDS)
        return best_sale(rows)

    def _create(self, r: ReturnRequest) -> ReturnResult:
        rows = self._c.call("sale.sale", "search_read", [("reference", "=", r.order_reference)], 0, None,
                            [("id", "ASC")], _ORIGIN_FIELDS)
        origin = best_sale(rows)
        if (origin is None or origin["state"] not in ACCEPTED_SALE_STATES
                or self._dir.party_code(origin["party"]) != r.account_id):
            return _refused(r, f"the ERP has no accepted order {r.order_reference} of account {r.account_id}")
        lines = self._lines(origin["lines"], ["sequence", "type", "product", "unit", "unit_price", "moves"])
        by_seq = {row["sequence"]: row for row in lines if row["type"] == "line" and row["product"]}
        problems = return_problems(r, by_seq, self._shipped(by_seq), self._returned(origin["id"], r.reference))
        if problems:
            return _refused(r, "; ".join(problems))
        values = {k: origin[k] for k in _HEADER}
        values.update(reference=r.reference, origin=f"sale.sale,{origin['id']}",
                      description=f"Return {r.return_id} of {r.order_reference}"[:250])
        values["lines"] = [["create", [
            {"type": "line", "sequence": x.line_no, "product": by_seq[x.line_no]["product"],
             "quantity": -float(x.quantity), "unit": by_seq[x.line_no]["unit"],
             "unit_price": by_seq[x.line_no]["unit_price"]}
            for x in r.lines]]]
        (sale_id,) = self._c.call("sale.sale", "create", [values])
        winner = self._oldest(r.reference, sale_id)
        row = self._best(r.reference)
        assert row is not None
        return self._carry_on(r, row, reconciled=winner != sale_id)

    def _lines(self, ids: Sequence[int], fields: list[str]) -> list[dict[str, Any]]:
        return list(self._c.call("sale.line", "read", list(ids), fields)) if ids else []

    def _shipped(self, lines: Mapping[int, Mapping[str, Any]]) -> dict[int, Decimal]:
        """Per line number, what left the plant (the sale line's done moves)."""
        seq_of = {move: seq for seq, row in lines.items() for move in row["moves"]}
        out: dict[int, Decimal] = {}
        for move in self._c.call("stock.move", "read", sorted(seq_of), ["quantity", "state"]) if seq_of else []:
            if move["state"] == "done":
                seq = seq_of[move["id"]]
                out[seq] = out.get(seq, Decimal(0)) + Decimal(str(move["quantity"]))
        return out

    def _returned(self, origin_id: int, reference: str) -> dict[int, Decimal]:
        """Per line number, what the sale's other live returns take back (also returns made in Tryton
        with its wizard, which carry no reference)."""
        domain = [("origin", "=", f"sale.sale,{origin_id}"), ("state", "!=", "cancelled")]
        rows = self._c.call("sale.sale", "search_read", domain, 0, None, None, ["reference", "lines"])
        ids = [i for row in rows if row["reference"] != reference for i in row["lines"]]
        out: dict[int, Decimal] = {}
        for line in self._lines(ids, ["sequence", "type", "quantity"]):
            if line["type"] == "line" and line["quantity"] < 0:
                out[line["sequence"]] = out.get(line["sequence"], Decimal(0)) - Decimal(str(line["quantity"]))
        return out

    def _oldest(self, reference: str, created: int) -> int:
        """Another client may have made a return with the same reference meanwhile: the oldest wins and
        ours (a draft nobody else touched) is deleted, as for sales (``submit.py``)."""
        rows = self._c.call("sale.sale", "search", [("reference", "=", reference), ("state", "!=", "cancelled")], 0,
                            None, [("id", "ASC")])
        oldest: int = rows[0] if rows else created
        if oldest != created:
            self._c.call("sale.sale", "delete", [created])
        return oldest

    def _carry_on(self, r: ReturnRequest, row: Mapping[str, Any], *, reconciled: bool) -> ReturnResult:
        """Take the return sale from its state to confirmed, or report why it cannot be."""
        sale_id = row["id"]
        if row["state"] == "cancelled":
            return _refused(r, f"ERP return {sale_id} for {r.reference} was cancelled in the ERP", row, reconciled)
        try:
            if row["state"] == "draft":
                self._press("quote", sale_id)
            if row["state"] in ("draft", "quotation"):
                self._press("confirm", sale_id)
        except Refused as exc:
            self._c.call("sale.sale", "cancel", [sale_id])  # a retry reads the same refusal, not a half return
            return _refused(r, str(exc), row, reconciled)
        (number,) = self._c.call("sale.sale", "read", [sale_id], ["number"])
        return ReturnResult(reference=r.reference, outcome=ReturnOutcome.AUTHORIZED, erp_return_id=str(sale_id),
                            erp_return_number=number["number"] or None, reconciled=reconciled)

    def _press(self, button: str, sale_id: int) -> None:
        acknowledged: set[str] = set()
        while True:
            try:
                self._c.call("sale.sale", button, [sale_id])
                return
            except TrytonUserWarning as warning:
                if w.kind_of(warning) not in _ACKNOWLEDGED or warning.name in acknowledged:
                    raise Refused(f"{warning.message} {warning.description}".strip()) from warning
                acknowledged.add(warning.name)
                self._c.skip_warning(warning.name)
            except TrytonUserError as exc:
                raise Refused(f"{exc.message} {exc.description}".strip()) from exc

    # -- reading -----------------------------------------------------------------------------------------
    def status(self, reference: str) -> ErpReturn | None:
        row = self._best(reference)
        return self._returns([row])[0] if row is not None else None

    def since(self, since: dt.datetime | None, references: Sequence[str], page: int) -> list[ErpReturn]:
        """Our returns changed at or after ``since`` (all with None) and those of ``references``: pages of
        ``page`` by id, one search and one read of their lines per page."""
        ours: list[Any] = [("reference", "like", f"{RETURN_PREFIX}-%")]
        domains: list[list[Any]] = [ours if since is None else
                                    [*ours, ["OR", ("write_date", ">=", since), ("create_date", ">=", since)]]]
        refs = sorted(set(references))
        domains += [[("reference", "in", refs[i:i + page])] for i in range(0, len(refs), page)]
        by_reference: dict[str, list[dict[str, Any]]] = {}
        for domain in domains:
            last = 0
            while True:
                rows = self._c.call("sale.sale", "search_read", [*domain, ("id", ">", last)], 0, page,
                                    [("id", "ASC")], _RETURN_FIELDS)
                for row in rows:
                    if parse_return_reference(row["reference"] or ""):
                        by_reference.setdefault(row["reference"], []).append(row)
                if len(rows) < page:
                    break
                last = rows[-1]["id"]
        chosen = [row for _, group in sorted(by_reference.items()) if (row := best_sale(group)) is not None]
        return [r for i in range(0, len(chosen), page) for r in self._returns(chosen[i:i + page])]

    def changed(self, since: list[Any], seen: list[dt.datetime], known: Known) -> list[Change]:
        """Return sales (by their reference prefix) changed within the ``since`` domain."""
        domain = [since, ("reference", "like", f"{RETURN_PREFIX}-%")]
        rows = self._c.call("sale.sale", "search_read", domain, 0, None, [("id", "ASC")], _RETURN_FIELDS)
        fresh = []
        for row in rows:
            seen.append(stamp(row))
            if parse_return_reference(row["reference"] or "") and not known(f"return:{row['id']}", _version(row)):
                fresh.append(row)
        return [
            Change(kind=ChangeKind.RETURN, key=f"return:{row['id']}", version=_version(row),
                   reference=row["reference"], erp_return=erp_return)
            for row, erp_return in zip(fresh, self._returns(fresh), strict=True)
        ]

    def _returns(self, rows: Sequence[Mapping[str, Any]]) -> list[ErpReturn]:
        lines = {ln["id"]: ln for ln in self._lines([i for r in rows for i in r["lines"]],
                                                    ["sequence", "type", "product", "quantity"])}
        out = []
        for row in rows:
            reference = row["reference"] or ""
            return_id, plant = parse_return_reference(reference) or ("", self._dir.plant_code(row["warehouse"]))
            items = [lines[i] for i in row["lines"] if i in lines and lines[i]["type"] == "line"]
            out.append(ErpReturn(
                reference=reference, return_id=return_id, plant=plant, erp_return_id=str(row["id"]),
                erp_return_number=row["number"] or "", state=_state(row),
                account_id=self._dir.party_code(row["party"]),
                lines=tuple(sorted((ErpReturnLine(line_no=ln["sequence"] or 0, sku=self._dir.sku(ln["product"]),
                                                  quantity=-Decimal(str(ln["quantity"])))
                                    for ln in items if ln["product"]), key=lambda x: x.line_no))))
        return out


def _state(row: Mapping[str, Any]) -> ErpReturnState:
    return return_state(row["state"], row["shipment_state"], row["invoice_state"])


def _version(row: Mapping[str, Any]) -> str:
    return version(stamp(row), _state(row).value)


def _refused(r: ReturnRequest, message: str, row: Mapping[str, Any] | None = None,
             reconciled: bool = False) -> ReturnResult:
    return ReturnResult(reference=r.reference, outcome=ReturnOutcome.REFUSED, message=message, reconciled=reconciled,
                        erp_return_id=str(row["id"]) if row else None,
                        erp_return_number=(row.get("number") or None) if row else None)
