"""Acknowledgments of what we received: the TA1 for an interchange (asked for in ISA14, or due on an
envelope error) and a 997 (004010) or 999 (005010) for every functional group, never for a group of
acknowledgments. Built from what :func:`~ordersync.channels.edi.x12.envelope.read_interchanges`
reported, so each code is the one the reader found."""

from __future__ import annotations

from dataclasses import dataclass

from ordersync.channels.edi.x12.envelope import GroupClosed, InterchangeClosed, TransactionSet

#: functional groups that are acknowledgments themselves (997/999 FA, TA1 has no group)
ACKNOWLEDGMENT_GROUPS = frozenset({"FA"})


def ta1_due(closed: InterchangeClosed) -> bool:
    """A TA1 goes back when the sender asked for one (ISA14 = 1) or the envelope is in error."""
    return closed.interchange.ack_requested or bool(closed.errors)


def ta1(closed: InterchangeClosed) -> tuple[str, ...]:
    """The TA1 segment (tag first): interchange control number, date, time, A or R, note code."""
    header = closed.interchange
    return ("TA1", header.control_number, header.date, header.time, "R" if closed.errors else "A",
            closed.errors[0] if closed.errors else "000")


def functional_ack_due(closed: GroupClosed) -> bool:
    return closed.group.functional_id not in ACKNOWLEDGMENT_GROUPS


def functional_ack(closed: GroupClosed, *, rejected: dict[str, list[str]] | None = None,
                   codes: dict[str, str] | None = None) -> tuple[str, list[tuple[str, ...]]]:
    """(set code, body segments) of the 997 (or the 999 for a 005010 group) answering ``closed``.
    ``rejected``: transaction set control number -> codes of errors found past the envelope (a document
    that cannot be taken), which reject that set too; ``codes``: the set codes (850 ...) of rejected sets
    the group does not list (past :data:`~ordersync.channels.edi.x12.envelope.LISTED_SETS`). Sets are
    listed one by one up to that many; past it, only the rejected ones, and AK9 counts them all."""
    rejected = rejected or {}
    five = closed.group.version.startswith("005")
    code = "999" if five else "997"
    body: list[tuple[str, ...]] = [("AK1", closed.group.functional_id, closed.group.control_number,
                                    *((closed.group.version,) if five else ()))]
    listed: set[str] = set()
    for set_code, number, errors in closed.sets:
        listed.add(number)
        problems = [*errors, *rejected.get(number, [])]
        body.append(("AK2", set_code, number))
        body.append(("IK5" if five else "AK5", "R", *problems[:5]) if problems else ("IK5" if five else "AK5", "A"))
    for number, problems in rejected.items():  # rejected past the listed sets
        if number not in listed:
            body.append(("AK2", (codes or {}).get(number, "850"), number))
            body.append(("IK5" if five else "AK5", "R", *problems[:5]))
    # a set is rejected by its envelope errors or by what could not be taken, never both (only sets
    # without envelope errors are read)
    accepted = closed.count - closed.failed - len(rejected)
    if closed.errors:
        status = "R"
    elif accepted == closed.count:
        status = "A"
    else:
        status = "P" if accepted else "R"
    declared = str(closed.declared if closed.declared is not None else closed.count)
    body.append(("AK9", status, declared, str(closed.count), str(max(accepted, 0)), *closed.errors[:5]))
    return code, body


@dataclass(frozen=True)
class SetVerdict:
    code: str  # AK201: the set acknowledged (855 ...)
    control_number: str  # AK202
    status: str  # AK501 / IK501: A accepted, E accepted with errors, R rejected ...
    notes: tuple[str, ...]  # what the AK3/AK4 (IK3/IK4) and AK5 codes said


@dataclass(frozen=True)
class FunctionalAck:
    """A partner's 997 or 999 for one of our groups: the group (AK1), its verdict (AK9) and the
    verdict per set (AK2 loops; none when the whole group shares AK9's)."""

    functional_id: str
    group_control: str
    status: str
    sets: tuple[SetVerdict, ...]

    @staticmethod
    def accepted(status: str) -> bool:
        return status in ("A", "E")


def read_functional_ack(ts: TransactionSet) -> FunctionalAck:
    """The 997/999 in ``ts`` (AK1, AK2/AK3/AK4/AK5 or IK3/IK4/IK5, AK9)."""
    functional_id = group_control = status = ""
    sets: list[SetVerdict] = []
    current: list[str] | None = None
    notes: list[str] = []
    for seg in ts.segments:
        tag = seg.tag
        if tag == "AK1":
            functional_id, group_control = seg[1].strip(), seg[2].strip()
        elif tag == "AK2":
            current, notes = [seg[1].strip(), seg[2].strip()], []
        elif tag in ("AK3", "IK3"):
            notes.append(f"{seg[1]} at segment {seg[2]}: code {seg[4]}".strip())
        elif tag in ("AK4", "IK4"):
            notes.append(f"element {seg[1]}: code {seg[3]}" + (f" ({seg[4]!r})" if seg[4] else ""))
        elif tag in ("AK5", "IK5") and current is not None:
            codes = [seg[i] for i in range(2, 7) if seg[i]]
            sets.append(SetVerdict(current[0], current[1], seg[1].strip(),
                                   tuple(notes + ([f"set codes {', '.join(codes)}"] if codes else []))))
            current = None
        elif tag == "AK9":
            status = seg[1].strip()
    return FunctionalAck(functional_id, group_control, status, tuple(sets))
