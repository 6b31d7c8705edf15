"""Writing an outgoing interchange into the store: the envelope around one document (an ISA, and a GS
with one transaction set, or a TA1 right inside the ISA), with the partner's control numbers taken in
the caller's transaction, kept as ``queued`` for the sender (:mod:`ordersync.channels.edi.sending`).

One document per interchange: a resend, an acknowledgment and a dead letter are then about one
business fact, and the partner's 997 for it names exactly one thing of ours.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from ordersync.channels.edi.edifact import syntax as edifact
from ordersync.channels.edi.edifact.interchange import DIRECTORY, SERVICE
from ordersync.channels.edi.partners import Partner, Us
from ordersync.channels.edi.x12.tokens import Separators
from ordersync.channels.edi.x12.writer import (
    DEFAULT_SEPARATORS,
    Parties,
    group,
    iea,
    isa,
    segment,
    transaction_set,
)
from ordersync.store import edi as store

#: GS01 functional identifier of each transaction set we send
FUNCTIONAL_IDS = {"855": "PR", "856": "SH", "810": "IN", "865": "CA", "997": "FA", "999": "FA"}
#: documents the partner acknowledges with a 997 (never an acknowledgment itself)
ACKNOWLEDGED = frozenset({"855", "856", "810", "865", "ORDRSP", "DESADV", "INVOIC"})


@dataclass(frozen=True)
class Written:
    interchange_id: str
    control_number: str
    group_control: str
    set_control: str


def parties_to(partner: Partner, us: Us) -> Parties:
    """We send to the partner, unprompted (855, 856, 810)."""
    return Parties(us.qualifier, us.id, partner.interchange_qualifier, partner.interchange_id, us.gs_code,
                   partner.gs_code)


def queue_interchange(conn: Connection, partner: Partner, parties: Parties, *, document: str, now: dt.datetime,
                      body: Sequence[tuple[str, ...]] = (), version: str | None = None,
                      isa_version: str | None = None, usage: str | None = None,
                      separators: Separators = DEFAULT_SEPARATORS, reply_to: str | None = None,
                      business_key: str | None = None, order_id: str | None = None) -> Written:
    """Store one interchange carrying ``document`` (a transaction set code with its ``body``, or
    ``TA1`` with its segments in ``body``) for ``partner``, state ``queued``."""
    interchange_id = uuid.uuid4().hex
    isa_number = store.next_control_number(conn, partner.name, "isa")
    parts = [isa(parties, isa_number, version=isa_version or partner.isa_version, at=now,
                 usage=usage or partner.usage, separators=separators)]
    gs_number = st_number = ""
    if document == "TA1":
        parts += [segment(tag, *elements, separators=separators) for tag, *elements in body]
        groups = 0
    else:
        gs = store.next_control_number(conn, partner.name, "gs")
        st_number = f"{store.next_control_number(conn, partner.name, 'st'):04d}"
        gs_number = str(gs)
        parts += group(FUNCTIONAL_IDS[document], parties, gs, version or partner.version,
                       [transaction_set(document, st_number, body, separators=separators)], at=now,
                       separators=separators)
        groups = 1
    parts.append(iea(groups, isa_number, separators))
    raw = "".join(parts).encode("latin-1", errors="replace")
    control_number = f"{isa_number:09d}"
    store.record_interchange(
        conn, interchange_id=interchange_id, direction="out", raw=raw,
        sender=f"{parties.sender_qualifier}:{parties.sender_id}",
        receiver=f"{parties.receiver_qualifier}:{parties.receiver_id}", control_number=control_number,
        partner=partner.name, state="queued", at=now, document=document, reply_to=reply_to,
        business_key=business_key, order_id=order_id, group_control=gs_number, set_control=st_number,
        transport=partner.transport, ack_state="awaiting" if document in ACKNOWLEDGED else "")
    return Written(interchange_id, control_number, gs_number, st_number)


def queue_edifact(conn: Connection, partner: Partner, *, sender: tuple[str, str], recipient: tuple[str, str],
                  message_type: str, body: Sequence[tuple[str | list[str], ...]], now: dt.datetime,
                  test: bool = False, reply_to: str | None = None, business_key: str | None = None,
                  order_id: str | None = None, syntax: str = "UNOC:3") -> Written:
    """Store one EDIFACT interchange (UNA, UNB, one message, UNZ) carrying ``message_type`` for
    ``partner``, state ``queued``. ``sender`` and ``recipient``: (ID, qualifier) for the UNB."""
    d = edifact.DEFAULT
    interchange_id = uuid.uuid4().hex
    reference = str(store.next_control_number(conn, partner.name, "isa"))
    message_ref = str(store.next_control_number(conn, partner.name, "st"))
    parts = [d.una(),
             edifact.segment("UNB", syntax.split(":"), list(sender), list(recipient),
                             [now.strftime("%y%m%d"), now.strftime("%H%M")], reference, "", "", "", "", "",
                             "1" if test else "", d=d),
             edifact.segment("UNH", message_ref, [message_type, *(SERVICE if message_type == "CONTRL" else DIRECTORY)],
                             d=d)]
    parts += [edifact.segment(tag, *elements, d=d) for tag, *elements in body]  # type: ignore[arg-type]
    parts.append(edifact.segment("UNT", str(len(body) + 2), message_ref, d=d))
    parts.append(edifact.segment("UNZ", "1", reference, d=d))
    raw = "\n".join(parts).encode("latin-1", errors="replace")
    store.record_interchange(
        conn, interchange_id=interchange_id, direction="out", raw=raw, sender=f"{sender[1]}:{sender[0]}",
        receiver=f"{recipient[1]}:{recipient[0]}", control_number=reference, partner=partner.name, state="queued",
        at=now, document=message_type, reply_to=reply_to, business_key=business_key, order_id=order_id,
        group_control=reference, set_control=message_ref, transport=partner.transport,
        ack_state="awaiting" if message_type in ACKNOWLEDGED else "")
    return Written(interchange_id, reference, reference, message_ref)
