"""``/ops/people``: who may sign in. Staff admins invite staff (with their roles) and buyers (for an
account, with their roles within it), change roles, and disable people; every staff member sees the
list. An invitation is a link shown once to the inviter; the next page load forgets it. With a mail server
configured (``[alerts.smtp]``) it is e-mailed to the person too, and the page says whether that worked.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ordersync.domain.errors import NotFound, ValidationFailed
from ordersync.web import doors
from ordersync.web.ops import Acting, Signed, Text, _page, _see
from ordersync.web.people import BUYER, BUYER_ROLES, STAFF, STAFF_ROLES, Invitation, mail_invitation
from ordersync.web.signin import clear_cookie, secure_cookie, web_settings

log = logging.getLogger("ordersync.ops.people")
router = APIRouter(prefix="/ops/people", include_in_schema=False)
FLASH = "ordersync_invited"


def _listing(request: Request, operator: Signed, status: int = 200, error: str | None = None,
             invited: str | None = None) -> Response:
    people = doors.services(request).people
    return _page(request, operator, "people.html", status, section="people", staff=people.listed(kind=STAFF),
                 buyers=people.listed(kind=BUYER), staff_roles=STAFF_ROLES, buyer_roles=BUYER_ROLES,
                 admin=operator.has("admin"), error=error, invited=invited)


@router.get("")
def people_page(request: Request, operator: Signed) -> Response:
    invited = request.cookies.get(FLASH)
    response = _listing(request, operator, invited=urllib.parse.unquote(invited) if invited else None)
    if invited:
        clear_cookie(response, request, FLASH, path="/ops/people")
    return response


def _flash(request: Request, invitation: Invitation, area: str) -> Response:
    """Post/redirect/get with the invitation's link shown once on the next page (a short-lived cookie),
    and whether it was e-mailed too (when ``[alerts.smtp]`` is configured)."""
    link = f"{doors.base_url(request)}{invitation.path(area)}"
    mailed = mail_invitation(request.app.state.hub.mailer, invitation, link)
    shown = " ".join([invitation.person.email, link, *([mailed] if mailed else [])])
    response = _see("/ops/people")
    response.set_cookie(FLASH, urllib.parse.quote(shown),
                        max_age=120, path="/ops/people", httponly=True, samesite="strict",
                        secure=secure_cookie(request, web_settings(request)))
    return response


@router.post("/invite")
def invite(request: Request, operator: Acting, email: Annotated[str, Form(max_length=254)] = "",
           name: Annotated[str, Form(max_length=200)] = "", kind: Annotated[str, Form(max_length=10)] = STAFF,
           account_id: Annotated[str, Form(max_length=120)] = "",
           roles: Annotated[list[str] | None, Form()] = None) -> Response:
    if not operator.has("admin"):
        return _listing(request, operator, 403, "Only an admin invites people.")
    if kind not in (STAFF, BUYER):
        return _listing(request, operator, 422, "Invite staff or a buyer.")
    try:
        invitation = doors.services(request).people.invite(kind, email, name, roles or [],
                                                           account_id=account_id.strip() or None,
                                                           invited_by=operator.actor)
    except ValidationFailed as exc:
        return _listing(request, operator, 422, str(exc))
    log.info("%s invited %s (%s, %s)", operator.actor, invitation.person.email, kind, ",".join(invitation.person.roles))
    return _flash(request, invitation, "ops" if kind == STAFF else "portal")


@router.post("/{person_id}/roles")
def change_roles(request: Request, person_id: str, operator: Acting,
                 roles: Annotated[list[str] | None, Form()] = None) -> Response:
    if not operator.has("admin"):
        return _listing(request, operator, 403, "Only an admin changes roles.")
    try:
        person = doors.services(request).people.set_roles(person_id[:32], roles or [])
    except (ValidationFailed, NotFound) as exc:
        return _listing(request, operator, 422, str(exc))
    log.info("%s set the roles of %s to %s", operator.actor, person.email, ",".join(person.roles))
    return _see("/ops/people")


@router.post("/{person_id}/disable")
def disable(request: Request, person_id: str, operator: Acting) -> Response:
    if not operator.has("admin"):
        return _listing(request, operator, 403, "Only an admin disables people.")
    if person_id[:32] == operator.person.id:
        return _listing(request, operator, 422, "You cannot disable yourself.")
    try:
        person = doors.services(request).people.disable(person_id[:32])
    except NotFound as exc:
        return _listing(request, operator, 404, str(exc))
    log.info("%s disabled %s", operator.actor, person.email)
    return _see("/ops/people")


__all__ = ["Text", "router"]
