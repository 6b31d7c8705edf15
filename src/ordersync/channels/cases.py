"""Cases a channel opens when something it received cannot go on without a person (an EDI interchange
we cannot read, a Shopify company that matches no ERP account ...): an integration-failure case, owned
by the team the case policy names, announced like every other case."""

from __future__ import annotations

from ordersync.canonical.v1 import CaseType
from ordersync.domain.cases import CasePolicy, open_case
from ordersync.domain.events import CaseOpened
from ordersync.store.uow import UnitOfWork


def open_integration_case(uow: UnitOfWork, policy: CasePolicy, summary: str, next_action: str,
                          order_id: str | None = None) -> str:
    """An integration-failure case, opened and announced in ``uow``; its id."""
    case = open_case(CaseType.INTEGRATION_FAILURE, now=uow.now(), policy=policy, summary=summary[:1000],
                     next_action=next_action, order_id=order_id)
    uow.cases.add(case)
    uow.emit(CaseOpened(case=case), correlation_id=order_id)
    return case.id
