"""People act on held orders: release a hold (with a decision) or cancel. The decision is recorded on
the case and the order flow resumes where it stopped (see ``flow.order_resume``)."""

from __future__ import annotations

from ordersync.canonical.v1 import CaseState, CaseType
from ordersync.domain.cases import resolve_case
from ordersync.domain.errors import Conflict, ValidationFailed
from ordersync.domain.events import CaseResolved, HoldReleased
from ordersync.ports.store import UnitOfWork

DECISIONS: dict[CaseType, tuple[str, ...]] = {
    CaseType.CREDIT_HOLD: ("release", "cancel"),
    CaseType.PRICE_MISMATCH: ("accept_erp_price", "honor_shown_price", "cancel"),
    CaseType.INTEGRATION_FAILURE: ("release", "cancel"),
    CaseType.ALLOCATION_SHORTFALL: ("release", "cancel"),
}


def release_hold(uow: UnitOfWork, case_id: str, *, decision: str, actor: str, comment: str = "") -> None:
    """Resolve a hold case with ``decision`` and let the order continue (or cancel it)."""
    case = uow.cases.get(case_id)
    allowed = DECISIONS.get(case.type, ())
    if decision not in allowed:
        raise ValidationFailed([f"{case.type.value} cases take one of {', '.join(allowed) or 'no decisions'}, "
                                f"not {decision!r}"])
    if case.state is CaseState.RESOLVED:
        raise Conflict(f"case {case_id} is already resolved")
    if case.order_id is None:
        raise ValidationFailed([f"case {case_id} has no order to release"])
    record = uow.orders.get(case.order_id)
    if not record.held_by(case.id):
        raise Conflict(f"order {record.id} is not held by case {case_id} (it is {record.state.value})")
    resolved = resolve_case(case, action=decision, actor=actor, comment=comment, now=uow.now())
    uow.cases.save(resolved)
    uow.emit(CaseResolved(case=resolved, action=decision), correlation_id=record.id)
    uow.emit(HoldReleased(order_id=record.id, case_id=case.id, case_type=case.type, decision=decision, actor=actor),
             correlation_id=record.id)
