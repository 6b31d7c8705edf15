"""What ``ordersync doctor`` reports: one :class:`Check` a line, each ok, a warning or a failure, with
what to do about it; and the exit code a script reads (0 all good, 1 warnings only, 2 a failure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any


class Status(Enum):
    OK = "ok"
    WARN = "warning"
    FAIL = "failure"

    @property
    def mark(self) -> str:
        return {"ok": "✓", "warning": "!", "failure": "✗"}[self.value]


#: exit codes of ``ordersync doctor`` (docs/operations.md)
EXIT_OK, EXIT_WARNINGS, EXIT_FAILURES = 0, 1, 2


@dataclass(frozen=True)
class Check:
    """One finding: ``area`` (config, store, nats, erp, secrets), what was found and, unless it is fine,
    how to fix it."""

    status: Status
    area: str
    message: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status.mark} {self.area}: {self.message}" + (f" — {self.fix}" if self.fix else "")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


def ok(area: str, message: str) -> Check:
    return Check(Status.OK, area, message)


def warn(area: str, message: str, fix: str) -> Check:
    return Check(Status.WARN, area, message, fix)


def fail(area: str, message: str, fix: str) -> Check:
    return Check(Status.FAIL, area, message, fix)


def exit_code(checks: list[Check]) -> int:
    """2 when any check failed, 1 when some warned, else 0."""
    statuses = {c.status for c in checks}
    if Status.FAIL in statuses:
        return EXIT_FAILURES
    return EXIT_WARNINGS if Status.WARN in statuses else EXIT_OK


def one_line(exc: BaseException) -> str:
    """An exception's message on one line: the first line of what the driver said, without SQLAlchemy's
    statement and background link (sqlalchemy's ``orig``), or the exception's type when it says nothing."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return text[0].strip() if text else type(inner).__name__
