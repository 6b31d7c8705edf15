"""People who sign in to the pages, what each may do, and how they get in.

Staff (commerce, operations, finance, customer service, admin) use the dashboard; buyers are users *of
their account* (admin, approver, buyer, viewer) and use the portal. API keys stay for machines: a person
never signs in with one. A person signs in with a password (argon2id) or with OpenID Connect
(:mod:`ordersync.web.oidc`); every action on a page is recorded under the person (:attr:`Person.actor`).

Why invitations and not passwords set by someone else: whoever invites (a staff admin, or the buyer
company's own admin) never knows the password. An invitation is a link with a random token (only its
SHA-256 is kept) that lets its holder choose a password within a week; the inviter passes the link on.
With OpenID Connect the invited person may sign in at their identity provider instead: the first
sign-in with a verified e-mail address that matches links the identity to the person.

Staff roles come from the identity provider's claims on every sign-in (it is the source of truth for
who works where); staff who sign in with a password keep the roles they were given here. Buyer roles are
given by the account's admin or by staff.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ordersync.domain.clock import Clock
from ordersync.domain.errors import NotFound, ValidationFailed
from ordersync.ports.alerts import Mailer, NotSent
from ordersync.store import people as rows
from ordersync.store.db import Database

STAFF = "staff"
BUYER = "buyer"
#: the dashboard's roles, in the order they are offered
STAFF_ROLES = ("operations", "finance", "commerce", "customer_service", "admin")
#: roles within a buyer's account
BUYER_ROLES = ("buyer", "approver", "viewer", "admin")
#: what a buyer role may do, as the API's scopes (the portal's pages go through the same flows as the API)
BUYER_SCOPES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"catalog:read", "orders:read"}),
    "buyer": frozenset({"catalog:read", "orders:read", "orders:write", "returns:write"}),
    "approver": frozenset({"catalog:read", "orders:read", "orders:write", "returns:write", "invoices:write"}),
    "admin": frozenset({"catalog:read", "orders:read", "orders:write", "returns:write", "invoices:write"}),
}
#: who may act on which case types on the dashboard (admin and operations act on all; see :func:`may_act`)
CASE_ROLES: dict[str, frozenset[str]] = {
    "credit_hold": frozenset({"finance"}),
    "invoice_dispute": frozenset({"finance", "customer_service"}),
    "price_mismatch": frozenset({"commerce"}),
    "allocation_shortfall": frozenset({"customer_service"}),
    "fulfillment_discrepancy": frozenset({"customer_service"}),
}
INVITE_DAYS = 7
MIN_PASSWORD = 12
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")

_hasher = PasswordHasher()  # argon2id with the library's current parameters (RFC 9106 low-memory profile)
#: verified against when the e-mail is unknown, so that a wrong address costs as long as a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Person:
    id: str
    email: str
    name: str
    kind: str
    account_id: str | None
    roles: tuple[str, ...]
    state: str
    session_epoch: int
    has_password: bool
    oidc_linked: bool
    invited_by: str | None = None
    last_signin_at: dt.datetime | None = None

    @property
    def actor(self) -> str:
        """How the person's actions are recorded: their name and e-mail address."""
        return f"{self.name} <{self.email}>"

    @property
    def active(self) -> bool:
        return self.state == "active"

    def has(self, *roles: str) -> bool:
        """Holds one of ``roles`` (an admin holds every role of their kind)."""
        return "admin" in self.roles or any(r in self.roles for r in roles)

    @property
    def scopes(self) -> frozenset[str]:
        """A buyer's scopes (the union over their roles); staff have none on the portal."""
        if self.kind != BUYER:
            return frozenset()
        return frozenset().union(*(BUYER_SCOPES.get(r, frozenset()) for r in self.roles))


def may_act(person: Person, case_type: str) -> bool:
    """Whether a staff member may take a case type's actions: admin and operations on every case, the
    teams named in :data:`CASE_ROLES` on theirs (finance decides credit holds, commerce prices)."""
    if person.kind != STAFF:
        return False
    if person.has("operations"):
        return True
    return bool(CASE_ROLES.get(case_type, frozenset()) & set(person.roles))


def _person(row: Any) -> Person:
    return Person(id=row["id"], email=row["email"], name=row["name"], kind=row["kind"], account_id=row["account_id"],
                  roles=tuple(r for r in str(row["roles"]).split(",") if r), state=row["state"],
                  session_epoch=int(row["session_epoch"]), has_password=row["password_hash"] is not None,
                  oidc_linked=row["oidc_subject"] is not None, invited_by=row["invited_by"],
                  last_signin_at=row["last_signin_at"])


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_roles(kind: str, roles: Iterable[str]) -> tuple[str, ...]:
    allowed = STAFF_ROLES if kind == STAFF else BUYER_ROLES
    given = tuple(dict.fromkeys(r.strip().lower() for r in roles if r.strip()))
    unknown = [r for r in given if r not in allowed]
    if unknown or not given:
        raise ValidationFailed([*([f"unknown role {r!r}" for r in unknown] or ["no role given"]),
                                f"roles are one or more of {', '.join(allowed)}"])
    return given


def check_password(password: str, email: str) -> None:
    reasons = []
    if len(password) < MIN_PASSWORD:
        reasons.append(f"at least {MIN_PASSWORD} characters")
    if password.lower() in (email.lower(), email.split("@")[0].lower()):
        reasons.append("not your e-mail address")
    if len(set(password)) < 5:
        reasons.append("more than a few different characters")
    if reasons:
        raise ValidationFailed([f"the password needs {r}" for r in reasons])


@dataclass(frozen=True)
class Invitation:
    person: Person
    token: str
    expires: dt.datetime

    def path(self, area: str) -> str:
        """Where the invited person chooses their password (``area``: ops or portal)."""
        return f"/{area}/invite/{self.token}"


def invitation_text(invitation: Invitation, link: str) -> tuple[str, str]:
    """(subject, body) of the e-mail that carries an invitation's link."""
    person = invitation.person
    where = f"the portal of account {person.account_id}" if person.kind == BUYER else "ordersync operations (/ops)"
    body = "\n".join([
        f"Hello {person.name},",
        "",
        f"you are invited to {where} as {person.email} (roles: {', '.join(person.roles)}).",
        "Choose your password here (the link works once, until "
        f"{invitation.expires.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC):",
        "",
        link,
        "",
        "If you did not expect this, ignore this e-mail: nothing happens without the link.",
    ])
    return "Your invitation to ordersync", body


def mail_invitation(mailer: Mailer | None, invitation: Invitation, link: str) -> str | None:
    """E-mail the invitation's link when a mail server is configured: None without one, else what
    happened, for the inviter ("e-mailed ..." or "not e-mailed: <why>"); a failure never loses the
    invitation (the link is still shown)."""
    if mailer is None:
        return None
    subject, body = invitation_text(invitation, link)
    try:
        mailer.send_mail([invitation.person.email], subject, body)
    except NotSent as exc:
        return f"not e-mailed ({exc}): pass the link on yourself"
    return f"e-mailed to {invitation.person.email}"


class People:
    """The people who may sign in: add, invite, authenticate, link an OpenID identity, change, disable."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    # -- reads -----------------------------------------------------------------------------------------

    def get(self, person_id: str) -> Person:
        with self.db.read() as conn:
            row = rows.by_id(conn, person_id)
        if row is None:
            raise NotFound(f"person {person_id} not found")
        return _person(row)

    def find(self, email: str) -> Person | None:
        with self.db.read() as conn:
            row = rows.by_email(conn, email.strip())
        return _person(row) if row is not None else None

    def listed(self, *, kind: str | None = None, account_id: str | None = None) -> list[Person]:
        with self.db.read() as conn:
            return [_person(r) for r in rows.listed(conn, kind=kind, account_id=account_id)]

    def session_person(self, person_id: str, epoch: int) -> Person | None:
        """The person of a session: active, and the session not ended since it was issued."""
        try:
            person = self.get(person_id)
        except NotFound:
            return None
        return person if person.active and person.session_epoch == epoch else None

    # -- adding people ---------------------------------------------------------------------------------

    def invite(self, kind: str, email: str, name: str, roles: Iterable[str], *, account_id: str | None = None,
               invited_by: str) -> Invitation:
        """A new person who chooses their password through the invitation (or signs in with OpenID
        Connect); inviting someone already invited and not yet signed up renews their invitation."""
        email = email.strip()
        if not EMAIL.match(email):
            raise ValidationFailed([f"{email!r} is not an e-mail address"])
        if kind == BUYER and not account_id:
            raise ValidationFailed(["a buyer belongs to an account: give the account"])
        checked = check_roles(kind, roles)
        token = secrets.token_urlsafe(24)
        now = self.clock.now()
        expires = now + dt.timedelta(days=INVITE_DAYS)
        with self.db.write() as conn:
            existing = rows.by_email(conn, email)
            if existing is not None:
                if existing["state"] != "invited":
                    raise ValidationFailed([f"{email} already has access: change their roles instead"])
                if existing["kind"] != kind or existing["account_id"] != account_id:
                    raise ValidationFailed([f"{email} is invited elsewhere already"])
                rows.change(conn, existing["id"], now, name=name.strip() or existing["name"], roles=",".join(checked),
                            invite_hash=token_hash(token), invite_expires=expires, invited_by=invited_by)
                person_id = existing["id"]
            else:
                person_id = uuid.uuid4().hex
                rows.insert(conn, {"id": person_id, "email": email, "name": name.strip() or email.split("@")[0],
                                   "kind": kind, "account_id": account_id if kind == BUYER else None,
                                   "roles": ",".join(checked), "state": "invited", "invited_by": invited_by,
                                   "invite_hash": token_hash(token), "invite_expires": expires,
                                   "session_epoch": 0, "created_at": now, "updated_at": now})
        return Invitation(self.get(person_id), token, expires)

    def add(self, kind: str, email: str, name: str, roles: Iterable[str], password: str, *,
            account_id: str | None = None, added_by: str) -> Person:
        """A person with a password chosen now (the CLI and tests; people on pages are invited)."""
        invitation = self.invite(kind, email, name, roles, account_id=account_id, invited_by=added_by)
        return self.accept(invitation.token, password)

    def invitation(self, token: str) -> Person | None:
        """The invited person of a valid, unexpired invitation token."""
        with self.db.read() as conn:
            row = rows.by_invite(conn, token_hash(token))
        if row is None or row["state"] != "invited" or row["invite_expires"] is None:
            return None
        return _person(row) if row["invite_expires"] > self.clock.now() else None

    def accept(self, token: str, password: str, name: str | None = None) -> Person:
        person = self.invitation(token)
        if person is None:
            raise NotFound("this invitation is unknown, used or expired: ask for a new one")
        check_password(password, person.email)
        hashed = _hasher.hash(password)  # ~0.1 s of work, outside the write transaction
        with self.db.write() as conn:
            rows.change(conn, person.id, self.clock.now(), password_hash=hashed, state="active",
                        invite_hash=None, invite_expires=None, name=(name or "").strip() or person.name)
        return self.get(person.id)

    # -- signing in ------------------------------------------------------------------------------------

    def authenticate(self, email: str, password: str, kind: str) -> Person | None:
        """The active person of ``kind`` with this e-mail address and password, else None. A wrong
        address costs as much as a wrong password (a dummy hash is verified)."""
        with self.db.read() as conn:
            row = rows.by_email(conn, email.strip()) if email.strip() else None
        stored = row["password_hash"] if row is not None else None
        try:
            _hasher.verify(stored or _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None or stored is None or row["kind"] != kind or row["state"] != "active":
            return None
        now = self.clock.now()
        values: dict[str, Any] = {"last_signin_at": now}
        if _hasher.check_needs_rehash(stored):
            values["password_hash"] = _hasher.hash(password)
        with self.db.write() as conn:
            rows.change(conn, row["id"], now, **values)
        return self.get(row["id"])

    def from_identity(self, kind: str, issuer: str, claims: Mapping[str, Any], roles: tuple[str, ...] | None
                      ) -> tuple[Person | None, str]:
        """The person an OpenID Connect sign-in is: linked already (issuer + subject), or invited/known by
        a *verified* e-mail address (linked now). Staff the provider gives roles to are created on their
        first sign-in, and their roles follow the provider's on every sign-in; buyers must be invited.
        Returns the person (or None) and, when None, why."""
        subject = str(claims.get("sub", ""))
        email = str(claims.get("email", "")).strip()
        verified = claims.get("email_verified") is True
        now = self.clock.now()
        with self.db.write() as conn:
            row = rows.by_identity(conn, issuer, subject)
            if row is None and email and verified:
                candidate = rows.by_email(conn, email)
                if candidate is not None and candidate["oidc_subject"] is None:
                    row = candidate
            if row is None:
                if kind == BUYER:
                    return None, "no invitation for this identity: ask your company's admin to invite you"
                if not roles:
                    return None, "your identity provider gives you no ordersync role"
                if not (email and verified):
                    return None, "your identity provider did not confirm your e-mail address"
                person_id = uuid.uuid4().hex
                rows.insert(conn, {"id": person_id, "email": email, "name": str(claims.get("name") or email),
                                   "kind": STAFF, "account_id": None, "roles": ",".join(roles), "state": "active",
                                   "invited_by": f"oidc:{issuer}", "oidc_issuer": issuer, "oidc_subject": subject,
                                   "session_epoch": 0, "created_at": now, "updated_at": now, "last_signin_at": now})
                return _person(rows.by_id(conn, person_id) or {}), ""
            if row["kind"] != kind:
                return None, f"this identity belongs to a {row['kind']}, not a {kind}"
            if row["state"] == "disabled":
                return None, "your access has been disabled"
            values: dict[str, Any] = {"oidc_issuer": issuer, "oidc_subject": subject, "last_signin_at": now,
                                      "state": "active", "invite_hash": None, "invite_expires": None}
            if kind == STAFF:
                if not roles:
                    return None, "your identity provider gives you no ordersync role"
                values["roles"] = ",".join(roles)
            if claims.get("name") and row["state"] == "invited":
                values["name"] = str(claims["name"])
            rows.change(conn, row["id"], now, **values)
            return _person(rows.by_id(conn, row["id"]) or {}), ""

    # -- changes ---------------------------------------------------------------------------------------

    def set_roles(self, person_id: str, roles: Iterable[str]) -> Person:
        person = self.get(person_id)
        checked = check_roles(person.kind, roles)
        with self.db.write() as conn:
            rows.change(conn, person_id, self.clock.now(), roles=",".join(checked))
        return self.get(person_id)

    def disable(self, person_id: str) -> Person:
        """No more sign-ins, and every session ends now."""
        with self.db.write() as conn:
            rows.change(conn, person_id, self.clock.now(), state="disabled", invite_hash=None, invite_expires=None)
            rows.end_sessions(conn, person_id, self.clock.now())
        return self.get(person_id)

    def end_sessions(self, person_id: str) -> None:
        with self.db.write() as conn:
            rows.end_sessions(conn, person_id, self.clock.now())
