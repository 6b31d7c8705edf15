"""Trading partners and what their purchase orders become: a canonical order for the same intake as
every channel (one order per PO number and partner, however often it is sent).

A :class:`Partner` is what the partner's implementation guide and our agreement say: who it is in the
envelopes, which ERP account its orders are for, how its ship-to IDs (N1*ST: DUNS, GLN or its own
numbers) map to the account's addresses, and item IDs our ERP cannot resolve by itself. Items: the
seller's own number (PO1 qualifier VN/VP/SK) is our SKU; otherwise the buyer's number (BP/IN/CB) goes to
the ERP as a customer part number, unless the partner maps it (or a GTIN) to a SKU here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from ordersync.canonical.v1 import Order, OrderLine
from ordersync.channels.edi.x12.envelope import InterchangeHeader
from ordersync.channels.edi.x12.po850 import Problem, PurchaseOrder

#: BEG01 purposes taken as new orders; a cancellation or replacement is a change (860), not an order
NEW_ORDER_PURPOSES = frozenset({"00"})
#: the X12 unit taken as the product's own unit when the partner maps no other
EACH = "EA"


@dataclass(frozen=True)
class Partner:
    name: str
    interchange_qualifier: str  # their ISA05
    interchange_id: str  # their ISA06
    account_id: str  # the ERP account their orders are for
    #: the hub channel of their orders (one per partner: a PO number is unique per buyer only)
    channel: str = ""
    #: N1*ST ID (N104, as sent) -> the account's ship-to address ID in the hub
    ship_to: Mapping[str, str] = field(default_factory=dict)
    #: the buyer's item number or GTIN -> our SKU, where the ERP's customer part numbers do not say
    items: Mapping[str, str] = field(default_factory=dict)
    #: X12 unit of measure (PO103) -> the ERP's unit; EA (each) is the product's own unit unless mapped
    units: Mapping[str, str] = field(default_factory=dict)
    dialect: str = "X12"  # X12 or EDIFACT: what we write to them
    gs_id: str = ""  # their GS02/GS03 code (default: interchange_id)
    version: str = "004010"  # the X12 version we write to them (GS08)
    usage: str = "P"  # ISA15 of what we send
    transport: str = "none"  # none (kept to be collected), as2, directory
    as2_url: str = ""
    as2_id: str = ""  # their AS2 name (default: interchange_id)
    outbox_dir: str = ""  # where we write their files
    inbox_dir: str = ""  # where we pick up their files
    ack_hours: float = 24.0  # their 997 for what we send is due within this long
    send_documents: bool = True  # 855, 856, 810 (false: acknowledgments only)

    @property
    def order_channel(self) -> str:
        return self.channel or f"edi-{self.name}"

    @property
    def gs_code(self) -> str:
        return self.gs_id or self.interchange_id

    @property
    def as2_name(self) -> str:
        return self.as2_id or self.interchange_id

    @property
    def isa_version(self) -> str:
        """ISA12 for our interchanges to them: 00401 or 00501."""
        return self.version[:5] if len(self.version) >= 5 else "00401"

    def sends(self, header: InterchangeHeader) -> bool:
        return self.is_sender(header.sender_qualifier, header.sender_id)

    def is_sender(self, qualifier: str, sender_id: str) -> bool:
        """Whether an envelope from ``qualifier``:``sender_id`` (ISA05/06, UNB S002) is this partner's."""
        return (qualifier, sender_id) == (self.interchange_qualifier, self.interchange_id)


@dataclass(frozen=True)
class Us:
    """Who we are in the envelopes of what we send (ISA05/06, GS02, AS2-From)."""

    qualifier: str = "ZZ"
    id: str = "ORDERSYNC"
    gs_id: str = ""
    as2_id: str = ""

    @property
    def gs_code(self) -> str:
        return self.gs_id or self.id

    @property
    def as2_name(self) -> str:
        return self.as2_id or self.id


def find_partner(partners: Iterable[Partner], header: InterchangeHeader) -> Partner | None:
    """The partner who sent the interchange ``header`` opens, or None (an unknown sender)."""
    return next((p for p in partners if p.sends(header)), None)


def partner_of_channel(partners: Iterable[Partner], channel: str) -> Partner | None:
    """The partner whose orders come in on ``channel`` (None: not an EDI order)."""
    return next((p for p in partners if p.order_channel == channel), None)


def partner_named(partners: Iterable[Partner], name: str | None) -> Partner | None:
    return next((p for p in partners if p.name == name), None)


def order_from_850(po: PurchaseOrder, partner: Partner, *, order_id: str, received_at: dt.datetime
                   ) -> tuple[Order | None, list[Problem]]:
    """The canonical order of ``po`` from ``partner``, or None with the reasons it cannot be one."""
    problems: list[Problem] = []
    if po.purpose not in NEW_ORDER_PURPOSES:
        problems.append(Problem("BEG", 0, f"BEG01 {po.purpose!r}: only new orders (00) are taken here; changes "
                                          "and cancellations come as an 860"))
    ship_to_id = None
    ship_to = po.party("ST")
    if ship_to is not None and ship_to.id:
        ship_to_id = partner.ship_to.get(ship_to.id)
        if ship_to_id is None:
            problems.append(Problem("N1", 0, f"ship-to {ship_to.id_qualifier}:{ship_to.id} ({ship_to.name}) is not "
                                             f"an address of {partner.name}'s account {partner.account_id}"))
    lines = []
    for n, line in enumerate(po.lines, 1):
        sku = line.seller_item or next((partner.items[i] for i in (line.buyer_item, line.gtin)
                                        if i and i in partner.items), None)
        part_number = None if sku else line.buyer_item
        if not sku and not part_number:
            problems.append(Problem("PO1", 0, f"line {line.line_id}: no item ID we can map ({line.product_ids})"))
            continue
        if line.unit and line.unit not in partner.units and line.unit != EACH:
            problems.append(Problem("PO1", 0, f"line {line.line_id}: unit {line.unit} is not mapped to one of "
                                              f"the ERP's units (partner setting units)"))
            continue
        lines.append(OrderLine.model_construct(line_no=n, sku=sku, customer_part_number=part_number,
                                               quantity=line.quantity, unit=partner.units.get(line.unit) or None,
                                               unit_price_shown=line.unit_price,
                                               requested_date=line.requested_date))
    if problems or not lines:
        return None, problems
    try:
        order = Order(id=order_id, channel=partner.order_channel, external_order_number=po.number,
                      account_id=partner.account_id, buyer_po_number=po.number, ship_to_id=ship_to_id,
                      requested_date=po.requested_date, currency=po.currency, lines=tuple(lines),
                      placed_at=received_at)
    except ValidationError as exc:  # a value the canonical model refuses (a PO number too long ...)
        return None, [Problem("BEG", 0, f"{e['loc']}: {e['msg']}") for e in exc.errors()]
    return order, []
