"""Acknowledgments of what we received: the TA1 for an interchange (asked for in ISA14, or due on an
envelope error) and a 997 (004010) or 999 (005010) for every functional group, never for a group of
acknowledgments. Built from what :func:`~ordersync.channels.edi.x12.envelope.read_interchanges`
reported, so each code is the one the reader found."""

from __future__ import annotations

from ordersync.channels.edi.x12.envelope import GroupClosed, InterchangeClosed

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


def functional_ack(closed: GroupClosed, *, rejected: dict[str, list[str]] | None = None
                   ) -> tuple[str, list[tuple[str, ...]]]:
    """(set code, body segments) of the 997 (or the 999 for a 005010 group) answering ``closed``.
    ``rejected``: transaction set control number -> codes of errors found past the envelope (a document
    that cannot be taken), which reject that set too."""
    rejected = rejected or {}
    five = closed.group.version.startswith("005")
    code = "999" if five else "997"
    body: list[tuple[str, ...]] = [("AK1", closed.group.functional_id, closed.group.control_number,
                                    *((closed.group.version,) if five else ()))]
    accepted = 0
    for set_code, number, errors in closed.sets:
        problems = [*errors, *rejected.get(number, [])]
        body.append(("AK2", set_code, number))
        if problems:
            body.append(("IK5" if five else "AK5", "R", *problems[:5]))
        else:
            accepted += 1
            body.append(("IK5" if five else "AK5", "A"))
    if closed.errors:
        status = "R"
    elif accepted == len(closed.sets):
        status = "A"
    else:
        status = "P" if accepted else "R"
    declared = str(closed.declared if closed.declared is not None else len(closed.sets))
    body.append(("AK9", status, declared, str(len(closed.sets)), str(accepted), *closed.errors[:5]))
    return code, body
