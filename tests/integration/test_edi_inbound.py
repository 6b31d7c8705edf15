"""Receiving a partner's interchange through the hub's intake (SQLite and PostgreSQL): kept verbatim
first, each 850 one order however often it comes, a 997 for the group, a TA1 for a repeated interchange;
an unknown sender's or unreadable bytes kept with the reason."""

from __future__ import annotations

import io
from typing import Any

from sqlalchemy import select

from ordersync.channels.edi.inbound import EdiInbound
from ordersync.channels.edi.partners import Partner
from ordersync.channels.edi.x12 import GroupClosed, TransactionSet, read_interchanges
from ordersync.store import edi as edi_store
from ordersync.store.schema import cases, edi_interchanges, orders
from tests.unit.edi.test_x12_envelope import SAMPLES

XYZ = Partner(name="xyz-retail", interchange_qualifier="12", interchange_id="4405197800", account_id="C-1001",
              ship_to={"0003947268292": "C-1001-SOLON"})
SAMPLE = (SAMPLES / "nodex12_850.edi").read_bytes()


def replies(hub: Any, result: Any) -> list[list[str]]:
    """The segments of each outgoing interchange's sets (or its TA1), as stored."""
    out = []
    with hub.db.read() as conn:
        for reply in result.replies:
            raw = edi_store.raw_interchange(conn, reply)
            assert raw is not None
            items = list(read_interchanges(io.BytesIO(raw)))
            assert all(not i.errors for i in items if not isinstance(i, TransactionSet))
            sets = [i for i in items if isinstance(i, TransactionSet)]
            out.append([s.tag for ts in sets for s in ts.segments] or [raw.decode().split("~")[1][:3]])
    return out


def test_an_interchange_becomes_one_order_however_often_it_comes(make_hub: Any, store_url: str) -> None:
    hub = make_hub(store_url)
    inbound = EdiInbound(hub.db, hub.intake, hub.clock, [XYZ])
    first = inbound.receive(SAMPLE)
    assert (first.state, first.partner) == ("processed", "xyz-retail")
    (outcome,) = first.orders
    assert outcome.po_number == "08292233294" and outcome.order_id and not outcome.duplicate
    assert replies(hub, first) == [["AK1", "AK2", "AK5", "AK9"]]  # a 997 accepting the one set
    again = inbound.receive(SAMPLE)  # the same interchange (same ISA13) again: refused with a TA1
    assert again.state == "duplicate" and again.orders == [] and replies(hub, again) == [["TA1"]]
    assert first.case_id is None and again.case_id is not None  # someone checks why it came twice
    resent = inbound.receive(SAMPLE.replace(b"000003438", b"000003439"))  # a new interchange, same PO
    assert resent.state == "processed" and resent.orders[0].duplicate
    assert resent.orders[0].order_id == outcome.order_id
    with hub.db.read() as conn:
        assert conn.execute(select(orders.c.external_order_number, orders.c.channel)).all() == [
            ("08292233294", "edi-xyz-retail")]
        kept = conn.execute(select(edi_interchanges.c.direction, edi_interchanges.c.state)
                            .order_by(edi_interchanges.c.received_at)).all()
        assert sorted(kept) == sorted([("in", "processed"), ("out", "queued"), ("in", "duplicate"), ("out", "queued"),
                                       ("in", "processed"), ("out", "queued")])
        assert edi_store.raw_interchange(conn, first.interchange_id) == SAMPLE  # byte for byte, BOM and all


def test_a_po_sent_again_with_other_lines_is_rejected_in_the_997_and_leaves_a_case(make_hub: Any,
                                                                                   store_url: str) -> None:
    hub = make_hub(store_url)
    inbound = EdiInbound(hub.db, hub.intake, hub.clock, [XYZ])
    first = inbound.receive(SAMPLE)
    changed = inbound.receive(SAMPLE.replace(b"000003438", b"000003440").replace(b"PO1*1*120*", b"PO1*1*130*"))
    assert changed.state == "orders_rejected" and changed.orders[0].order_id is None
    assert "PO 08292233294 was received before with other content (line 1 quantity: 120 -> 130)" in changed.detail
    with hub.db.read() as conn:
        raw = edi_store.raw_interchange(conn, changed.replies[0])
    assert raw is not None
    (ack,) = [i for i in read_interchanges(io.BytesIO(raw)) if isinstance(i, TransactionSet)]
    assert [s.elements for s in ack.segments if s.tag == "AK5"] == [["AK5", "R", "5"]]  # the set is rejected
    with hub.db.read() as conn:
        conflict = conn.execute(select(cases.c.order_id, cases.c.owner_team)
                                .where(cases.c.type == "order_conflict")).all()
        assert conflict == [(first.orders[0].order_id, "integration")]
        assert conn.execute(select(orders.c.id)).scalars().all() == [first.orders[0].order_id]


def test_an_order_that_cannot_be_taken_is_rejected_in_the_997_with_its_reason(make_hub: Any, store_url: str) -> None:
    hub = make_hub(store_url)
    partner = Partner(name="xyz-retail", interchange_qualifier="12", interchange_id="4405197800",
                      account_id="C-1001")  # its ship-to is not mapped
    result = EdiInbound(hub.db, hub.intake, hub.clock, [partner]).receive(SAMPLE)
    assert result.state == "orders_rejected" and result.orders[0].order_id is None
    assert "ship-to 9:0003947268292" in result.detail
    assert result.case_id is not None  # customer service learns that an order did not come through
    with hub.db.read() as conn:
        raw = edi_store.raw_interchange(conn, result.replies[0])
    assert raw is not None
    (closed,) = [i for i in read_interchanges(io.BytesIO(raw)) if isinstance(i, GroupClosed)]
    (ack,) = [i for i in read_interchanges(io.BytesIO(raw)) if isinstance(i, TransactionSet)]
    assert closed.group.functional_id == "FA"
    assert [s.elements for s in ack.segments if s.tag in ("AK5", "AK9")] == [["AK5", "R", "5"],
                                                                             ["AK9", "R", "1", "1", "0"]]


def test_an_unknown_sender_or_unreadable_bytes_are_kept_with_the_reason(make_hub: Any, store_url: str) -> None:
    hub = make_hub(store_url)
    inbound = EdiInbound(hub.db, hub.intake, hub.clock, [])
    unknown = inbound.receive(SAMPLE)
    assert (unknown.state, unknown.detail) == ("unknown_partner", "no trading partner sends as 12:4405197800")
    garbage = inbound.receive(b"%PDF-1.7 not an interchange")
    assert garbage.state == "rejected"
    with hub.db.read() as conn:
        bodies = dict(conn.execute(select(cases.c.id, cases.c.body)).all())
        assert "from 12:4405197800: unknown_partner" in bodies[unknown.case_id]
        assert "(unreadable) from an unknown sender: rejected" in bodies[garbage.case_id]
        assert edi_store.raw_interchange(conn, garbage.interchange_id) == b"%PDF-1.7 not an interchange"
        assert conn.execute(select(orders.c.id)).all() == []
