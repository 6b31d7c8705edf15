"""Cases a channel opens when something it received cannot go on without a person (an EDI interchange
we cannot read, a Shopify company that matches no ERP account ...): an integration-failure case, owned
by the team the case policy names, announced like every other case; and resolved, with a note saying
what settled it, once the channel sees it settled (a person mapped the company and the order went on)."""

from __future__ import annotations

from ordersync.canonical.v1 import CaseState, CaseType
from ordersync.domain.cases import CasePolicy, open_case, resolve_case
from ordersync.domain.errors import NotFound
from ordersync.domain.events import CaseOpened, CaseResolved
from ordersync.store.uow import UnitOfWork


def open_integration_case(uow: UnitOfWork, policy: CasePolicy, summary: str, next_action: str,
                          order_id: str | None = None) -> str:
    """An integration-failure case, opened and announced in ``uow``; its id."""
    case = open_case(CaseType.INTEGRATION_FAILURE, now=uow.now(), policy=policy, summary=summary[:1000],
                     next_action=next_action, order_id=order_id)
    uow.cases.add(case)
    uow.emit(CaseOpened(case=case), correlation_id=order_id)
    return case.id


def resolve_integration_case(uow: UnitOfWork, case_id: str, *, actor: str, comment: str) -> bool:
    """Resolve the case in ``uow`` as the workbench's ``resolve`` action does (one history entry: who, the
    note; announced); False when it is gone or resolved already (by a person meanwhile: left as they left it)."""
    try:
        case = uow.cases.get(case_id)
    except NotFound:
        return False
    if case.state is CaseState.RESOLVED:
        return False
    resolved = resolve_case(case, action="resolve", actor=actor, comment=comment[:2000], now=uow.now())
    uow.cases.save(resolved)
    uow.emit(CaseResolved(case=resolved, action="resolve"), correlation_id=case.order_id)
    return True
