"""``/portal/people``: a buyer company's admin invites colleagues (with their roles in the account:
buyer, approver, viewer, admin), changes roles and disables people of their own account, and nobody
else's. The invitation link is shown once to the admin, who passes it on.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from ordersync.api.keys import Scope
from ordersync.channels.portal.session import Buyer, error_page, page, render, router, text
from ordersync.domain.errors import NotFound, ValidationFailed
from ordersync.web import doors
from ordersync.web.people import BUYER, BUYER_ROLES, mail_invitation
from ordersync.web.signin import clear_cookie, set_cookie

log = logging.getLogger("ordersync.portal.people")
FLASH = "ordersync_portal_invited"


def _admin_only(request: Request, buyer: Buyer) -> Response | None:
    if buyer.is_admin:
        return None
    return error_page(request, buyer, 403, "Not allowed", "only your company's portal admin manages people")


def _listing(request: Request, buyer: Buyer, status: int = 200, **extra: Any) -> Response:
    people = doors.services(request).people.listed(kind=BUYER, account_id=buyer.account_id)
    return render(request, "people.html", buyer, status, people=people, roles=BUYER_ROLES, **extra)


@router.get("/people")
@page(Scope.CATALOG_READ)
def people_page(request: Request, buyer: Buyer) -> Response:
    refused = _admin_only(request, buyer)
    if refused is not None:
        return refused
    invited = request.cookies.get(FLASH)
    response = _listing(request, buyer, invited=urllib.parse.unquote(invited) if invited else None, message="")
    if invited:
        clear_cookie(response, request, FLASH, path="/portal/people")
    return response


@router.post("/people/invite")
@page(Scope.CATALOG_READ, posted=True)
def invite(request: Request, buyer: Buyer, form: FormData) -> Response:
    refused = _admin_only(request, buyer)
    if refused is not None:
        return refused
    roles = [r for r in form.getlist("roles") if isinstance(r, str)]
    try:
        invitation = doors.services(request).people.invite(BUYER, text(form, "email", 254), text(form, "name", 200),
                                                           roles, account_id=buyer.account_id,
                                                           invited_by=buyer.principal.name)
    except ValidationFailed as exc:
        return _listing(request, buyer, 422, invited=None, message=str(exc))
    log.info("%s invited %s to account %s (%s)", buyer.principal.name, invitation.person.email, buyer.account_id,
             ",".join(invitation.person.roles))
    response = RedirectResponse("/portal/people", status_code=303)
    link = f"{doors.base_url(request)}{invitation.path('portal')}"
    mailed = mail_invitation(request.app.state.hub.mailer, invitation, link)
    set_cookie(response, request, FLASH,
               urllib.parse.quote(" ".join([invitation.person.email, link, *([mailed] if mailed else [])])),
               max_age=120, path="/portal/people")
    return response


def _own(request: Request, buyer: Buyer, person_id: str) -> Any:
    """A person of the buyer's own account (another account's person is not found)."""
    person = doors.services(request).people.get(person_id[:32])
    if person.kind != BUYER or person.account_id != buyer.account_id:
        raise NotFound(f"person {person_id[:32]} not found")
    return person


@router.post("/people/{person_id}/roles")
@page(Scope.CATALOG_READ, posted=True)
def change_roles(request: Request, buyer: Buyer, form: FormData, person_id: str) -> Response:
    refused = _admin_only(request, buyer)
    if refused is not None:
        return refused
    person = _own(request, buyer, person_id)
    roles = [r for r in form.getlist("roles") if isinstance(r, str)]
    if person.id == (buyer.person.id if buyer.person else "") and "admin" not in roles:
        return _listing(request, buyer, 422, invited=None, message="You cannot take away your own admin role.")
    doors.services(request).people.set_roles(person.id, roles)
    return RedirectResponse("/portal/people", status_code=303)


@router.post("/people/{person_id}/disable")
@page(Scope.CATALOG_READ, posted=True)
def disable(request: Request, buyer: Buyer, form: FormData, person_id: str) -> Response:
    refused = _admin_only(request, buyer)
    if refused is not None:
        return refused
    person = _own(request, buyer, person_id)
    if buyer.person is not None and person.id == buyer.person.id:
        return _listing(request, buyer, 422, invited=None, message="You cannot disable yourself.")
    doors.services(request).people.disable(person.id)
    log.info("%s disabled %s of account %s", buyer.principal.name, person.email, buyer.account_id)
    return RedirectResponse("/portal/people", status_code=303)
