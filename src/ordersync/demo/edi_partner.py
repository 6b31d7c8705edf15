"""The demo's EDI customer: Hanse Automotive Werke (C-1003) orders by X12 850 through a directory, with
its own part numbers, shipping to its plants by GLN. It drops a few orders, one file twice (the resend
a partner's retry bug makes: refused with a TA1) and one PO again in a new interchange (the same order:
one ERP sale). The hub's 997s and 855s (and, once Tryton ships and invoices, 856s and 810s) appear in its
outbox directory."""

from __future__ import annotations

import datetime as dt
import random
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ordersync.channels.edi.sending import write_file
from ordersync.channels.edi.x12.writer import Parties, group, iea, isa, transaction_set
from ordersync.config import EdiPartnerSettings
from ordersync.devkit import demo_data
from ordersync.runtime.hub import Hub
from ordersync.store.schema import edi_interchanges, edi_orders, orders

NAME = "hanse-auto"
ACCOUNT = "C-1003"
SENDER_ID = "HANSEAUTO"
#: the GLNs its 850s name its plants by (N1*ST*...*UL*<GLN>) -> the account's addresses in the ERP
PLANTS = {"4012345000016": ("HAW-BRE", "Werk Bremen"), "4012345000023": ("HAW-WOB", "Werk Wolfsburg"),
          "4012345000030": ("HAW-ING", "Werk Ingolstadt")}


def partner_settings(data_dir: Path) -> EdiPartnerSettings:
    base = data_dir / "edi" / NAME
    return EdiPartnerSettings(name=NAME, interchange_qualifier="ZZ", interchange_id=SENDER_ID, account_id=ACCOUNT,
                              ship_to={gln: address for gln, (address, _) in PLANTS.items()}, usage="T",
                              transport="directory", inbox_dir=str(base / "in"), outbox_dir=str(base / "out"))


def config_toml(settings: EdiPartnerSettings) -> str:
    """The partner's block for the demo's ordersync.toml."""
    ship_to = ", ".join(f'"{k}" = "{v}"' for k, v in settings.ship_to.items())
    lines = ["", "[[edi.partners]]", f'name = "{settings.name}"',
             f'interchange_qualifier = "{settings.interchange_qualifier}"',
             f'interchange_id = "{settings.interchange_id}"', f'account_id = "{settings.account_id}"', 'usage = "T"',
             'transport = "directory"', f'inbox_dir = "{settings.inbox_dir}"', f'outbox_dir = "{settings.outbox_dir}"',
             f"ship_to = {{ {ship_to} }}", ""]
    return "\n".join(lines)


def _interchange(control: int, po_number: str, lines: list[tuple[str, int, str]], plant_gln: str,
                 at: dt.datetime) -> bytes:
    parties = Parties("ZZ", SENDER_ID, "ZZ", "ORDERSYNC", SENDER_ID, "ORDERSYNC")
    body: list[tuple[str, ...]] = [("BEG", "00", "SA", po_number, "", at.strftime("%Y%m%d")), ("CUR", "BY", "EUR"),
                                   ("N1", "ST", PLANTS[plant_gln][1], "UL", plant_gln)]
    for n, (part_number, quantity, price) in enumerate(lines, 1):
        body.append(("PO1", str(n), str(quantity), "EA", price, "", "BP", part_number))
    body.append(("CTT", str(len(lines))))
    text = "".join([isa(parties, control, at=at, usage="T"),
                    *group("PO", parties, control, "004010", [transaction_set("850", "0001", body)], at=at),
                    iea(1, control)])
    return text.encode()


def drop_orders(settings: EdiPartnerSettings, count: int, *, seed: int, run: str) -> list[str]:
    """Write ``count`` purchase orders into the partner's inbox (plus a resent file and a resent PO);
    returns the PO numbers."""
    prof = demo_data.profile("main")
    customer = demo_data.customer(prof, ACCOUNT)
    rng = random.Random(seed)
    inbox = Path(settings.inbox_dir)
    now = dt.datetime.now(dt.UTC)
    numbers: list[str] = []
    base = 100 + rng.randrange(800) * 1000
    for i in range(count):
        chosen = rng.sample(customer["part_numbers"], k=rng.choice((1, 2)))
        lines = []
        for part in chosen:
            quantity = next(q for q in range(rng.randint(2, 6), 200)
                            if demo_data.quantity_allowed(prof, part["sku"], q))
            price = demo_data.contract_price(prof, ACCOUNT, part["sku"], quantity)
            lines.append((part["code"], quantity, format(price, "f")))
        po_number = f"HAW-{run}-{i + 1:03d}"
        raw = _interchange(base + i, po_number, lines, rng.choice(sorted(PLANTS)), now)
        write_file(inbox, f"{po_number}.edi", raw)
        numbers.append(po_number)
        if i == 0:  # a retry bug: the same file again, same ISA13 (refused: TA1 025)
            write_file(inbox, f"{po_number}-resent.edi", raw)
        if i == 1:  # the same PO in a new interchange: answered as the order it already is
            write_file(inbox, f"{po_number}-again.edi", _interchange(base + 500 + i, po_number, lines,
                                                                    sorted(PLANTS)[0], now))
    return numbers


def wait_settled(hub: Hub, numbers: list[str], timeout: float) -> bool:
    """Until every PO is a decided order (accepted, rejected or held) with its 855 written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with hub.db.read() as conn:
            decided = conn.execute(select(func.count()).select_from(edi_orders.join(orders, orders.c.id ==
                                                                                    edi_orders.c.order_id))
                                   .where(edi_orders.c.partner == NAME, edi_orders.c.po_number.in_(numbers),
                                          orders.c.state.in_(("accepted", "rejected", "on_hold")))).scalar_one()
            answered = conn.execute(select(func.count()).select_from(edi_interchanges).where(
                edi_interchanges.c.partner == NAME, edi_interchanges.c.document == "855")).scalar_one()
        if decided >= len(numbers) and answered >= decided - _held(hub, numbers):
            return True
        time.sleep(0.5)
    return False


def _held(hub: Hub, numbers: list[str]) -> int:
    with hub.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(edi_orders.join(orders, orders.c.id ==
                                                                                 edi_orders.c.order_id))
                                .where(edi_orders.c.po_number.in_(numbers), orders.c.state == "on_hold")).scalar_one())


def summary(hub: Hub, settings: EdiPartnerSettings, numbers: list[str]) -> dict[str, Any]:
    with hub.db.read() as conn:
        received = {str(s): int(n) for s, n in conn.execute(
            select(edi_interchanges.c.state, func.count()).where(edi_interchanges.c.direction == "in",
                                                                 edi_interchanges.c.partner == NAME)
            .group_by(edi_interchanges.c.state))}
        sent = {f"{d} {s}": int(n) for d, s, n in conn.execute(
            select(edi_interchanges.c.document, edi_interchanges.c.state, func.count())
            .where(edi_interchanges.c.direction == "out", edi_interchanges.c.partner == NAME)
            .group_by(edi_interchanges.c.document, edi_interchanges.c.state))}
        states = {str(s): int(n) for s, n in conn.execute(
            select(orders.c.state, func.count()).select_from(edi_orders.join(orders, orders.c.id ==
                                                                             edi_orders.c.order_id))
            .where(edi_orders.c.partner == NAME).group_by(orders.c.state))}
    return {"partner": NAME, "account": ACCOUNT, "purchase_orders": len(numbers), "interchanges_received": received,
            "documents_sent": sent, "order_states": states, "outbox": settings.outbox_dir}

