"""The EDI channel's check plugged into reconciliation: an 855 the partner is owed but that was never
queued opens one case (once), and what the documents consumer writes moments after an event is not
counted missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.canonical.v1 import CaseType, ExceptionCase
from ordersync.config import EdiPartnerSettings, EdiSettings, ReconcileSettings
from ordersync.domain.clock import FakeClock
from ordersync.store.schema import cases, edi_interchanges
from tests.support.hub import erp_hub, settle


def po_850(number: str = "4500012345", control: int = 1) -> bytes:
    """An 850 from xyz-retail for two of our SKUs (as in test_edi_channel)."""
    body = (f"ST*850*0001~BEG*00*SA*{number}**20261205~CUR*BY*EUR~N1*ST*Solon DC*9*0003947268292~"
            "PO1*1*10*EA*6.63**VP*BRG-6204-2RS~PO1*2*20*EA*3.68**VP*FIT-ELB-G12-SS~CTT*2~SE*8*0001~")
    return (f"ISA*00*          *00*          *12*4405197800     *ZZ*ORDERSYNC      *261205*1200*U*00401*"
            f"{control:09d}*0*P*>~GS*PO*4405197800*ORDERSYNC*20261205*1200*{control}*X*004010~{body}"
            f"GE*1*{control}~IEA*1*{control:09d}~").encode()


PARTNER = dict(name="xyz-retail", interchange_qualifier="12", interchange_id="4405197800", account_id="C-1001",
               ship_to={"0003947268292": "RIS-DUS"})


@pytest.fixture
def edi_hub(tmp_path: Path, clock: FakeClock) -> Iterator[Any]:
    erp = MemoryErp("main", name="main", clock=clock.now)
    hub = erp_hub(tmp_path, {"main": erp}, clock=clock, edi=EdiSettings(partners=[EdiPartnerSettings(**PARTNER)]),
                  reconcile=ReconcileSettings(interval_seconds=0, settle_seconds=60))
    yield hub
    hub.close()


def edi_cases(hub: Any) -> list[ExceptionCase]:
    with hub.db.read() as conn:
        rows = conn.execute(select(cases.c.body).where(cases.c.type == CaseType.ERP_DISCREPANCY.value)).scalars()
        return [c for c in (ExceptionCase.model_validate_json(b) for b in rows) if c.summary.startswith("855")]


def test_an_855_never_queued_opens_one_case_once_it_is_overdue(edi_hub: Any, clock: FakeClock) -> None:
    hub = edi_hub
    result = hub.edi.inbound.receive(po_850())
    order_id = result.orders[0].order_id
    settle(hub)
    hub.poller.poll_all()
    settle(hub)
    clock.advance(120)
    assert [d.key for d in hub.reconciler.run().discrepancies] == []  # the 855 is queued: nothing owed

    with hub.db.write() as conn:  # the 855 is lost (as if its consumer had failed for good)
        conn.execute(delete(edi_interchanges).where(edi_interchanges.c.business_key == f"855:{order_id}"))
    report = hub.reconciler.run()
    (outcome,) = report.outcomes
    assert (outcome.discrepancy.key, outcome.status) == (f"edi:855_not_sent:855:{order_id}", "opened")
    assert outcome.discrepancy.diffs[0].erp == "no 855 queued for xyz-retail"
    (case,) = edi_cases(hub)
    assert case.order_id == order_id and "hub order accepted, edi no 855 queued" in case.summary

    assert [o.status for o in hub.reconciler.run().outcomes] == ["open"]
    assert len(edi_cases(hub)) == 1
    agree, found = hub.reconciler.recheck(case.id, "ops@example.com")
    assert not agree and "no 855 queued" in found
