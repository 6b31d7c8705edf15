"""``/ops``: the operations dashboard, server-rendered, for the people who run the hub.

Pages: the overview (order pipeline with aging, throughput chart, SLA clocks, connector health), the
exception queue with team tabs and filters, a case with its history and actions, dead letters with a
dry-run preview before any replay, each order's timeline, EDI interchanges, and the Shopify shops (where a
company location whose orders wait for a mapping is mapped to an ERP account, after a confirmation).

Sign-in takes an API key with the ``ops`` or ``admin`` scope that is bound to no account (the dashboard
shows every account; a bound key is refused rather than half-served). The key is checked once and never
stored in the browser: the session cookie holds the key id and an HMAC (``web.SessionSigner``), is
HttpOnly and SameSite=Strict, and every request looks the key up again so that revoking it ends the
session. Every form carries the session's CSRF token and writes through the flows the API uses
(:class:`~ordersync.flows.services.workbench.Workbench`, :class:`~ordersync.messaging.deadletters.DeadLetterService`).
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import iter_route_contexts
from sqlalchemy import select
from starlette.routing import compile_path

from ordersync.canonical.v1 import CaseState, CaseType, OrderState
from ordersync.domain.errors import Conflict, IntegrationError, NotFound, OrdersyncError, Unavailable, ValidationFailed
from ordersync.flows.services.workbench import DESTRUCTIVE, ActionNotAllowed, CaseAction, Workbench, allowed_actions
from ordersync.messaging.deadletters import DeadLetterFilter
from ordersync.ports.deadletters import ReplayItem
from ordersync.runtime.hub import Hub
from ordersync.store import cases as saved_filters
from ordersync.store import edi as edi_store
from ordersync.store.schema import edi_interchanges
from ordersync.web import SessionSigner, doors, ops_charts, ops_shopify, templates
from ordersync.web import ops_data as data
from ordersync.web import ops_workbench as workbench_data
from ordersync.web.oidc import SignInFailed
from ordersync.web.people import STAFF, Person, may_act
from ordersync.web.signin import clear_cookie

log = logging.getLogger("ordersync.ops")

router = APIRouter(prefix="/ops", include_in_schema=False)
COOKIE = "ordersync_ops"
SIGNER = SessionSigner("ops")
#: security headers of every page: no framing (clickjacking), scripts and styles from this origin only
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
}
Text = Annotated[str | None, Query(max_length=200)]


@dataclass(frozen=True)
class Operator:
    """Who is signed in: a staff member (shown, and recorded as the actor of every action) and the
    token their forms must carry."""

    person: Person
    csrf: str

    @property
    def name(self) -> str:
        return self.person.name

    @property
    def email(self) -> str:
        return self.person.email

    @property
    def roles(self) -> tuple[str, ...]:
        return self.person.roles

    @property
    def actor(self) -> str:
        return self.person.actor

    def has(self, *roles: str) -> bool:
        return self.person.has(*roles)


# -- sessions ------------------------------------------------------------------------------------------

def current(request: Request) -> Operator | None:
    """The operator of the request's session cookie: an active staff member whose sessions have not
    been ended since it was issued."""
    found = doors.session_person(request, SIGNER, COOKIE, STAFF)
    if found is None:
        return None
    person, session = found
    return Operator(person=person, csrf=session.csrf)


def _safe_next(target: str | None) -> str:
    """Only a path of the dashboard itself (no open redirect to another site)."""
    if target and target.startswith("/ops") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ops"


def signed_in(request: Request) -> Operator:
    """A dependency: the operator, else a redirect (303) to the sign-in page that comes back here."""
    found = current(request)
    if found is None:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        back = here if request.method == "GET" else "/ops"
        raise HTTPException(303, "Sign-in required",
                            headers={"Location": "/ops/signin?" + urllib.parse.urlencode({"next": back})})
    return found


def acting(request: Request, operator: Annotated[Operator, Depends(signed_in)],
           csrf: Annotated[str, Form(max_length=200)] = "") -> Operator:
    """A dependency of every form post: signed in, the form carries this session's token, and the
    browser (if it says) posts from this origin. The SameSite=Strict cookie already keeps other sites'
    posts unauthenticated; the token also covers a same-site page that is not ours."""
    if not _same_origin(request):
        raise HTTPException(403, "Cross-origin form post refused")
    if not SessionSigner.csrf_ok(operator.csrf, csrf):
        raise HTTPException(403, "The form is stale or not from this dashboard: reload the page and try again")
    return operator


def _same_origin(request: Request) -> bool:
    """A browser that names the page a form came from names one of ours."""
    origin = request.headers.get("origin")
    return not origin or urllib.parse.urlsplit(origin).netloc == request.url.netloc


Signed = Annotated[Operator, Depends(signed_in)]
Acting = Annotated[Operator, Depends(acting)]


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _page(request: Request, operator: Operator | None, name: str, status: int = 200, **context: Any) -> Response:
    context.update(operator=operator, csrf=operator.csrf if operator else "", views=data.VIEWS,
                   section=context.get("section", ""))
    return templates.TemplateResponse(request, f"ops/{name}", context, status_code=status, headers=HEADERS)


def _see(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


def _signin_page(request: Request, next_: str, status: int = 200, error: str | None = None,
                 headers: dict[str, str] | None = None) -> Response:
    response = _page(request, None, "signin.html", status, next=_safe_next(next_), error=error, section="signin",
                     oidc=doors.services(request).oidc)
    response.headers.update(headers or {})
    return response


@router.get("/signin")
def signin_form(request: Request, next: Text = None) -> Response:
    if current(request) is not None:
        return _see(_safe_next(next))
    return _signin_page(request, next or "/ops")


@router.post("/signin")
def signin(request: Request, email: Annotated[str, Form(max_length=254)] = "",
           password: Annotated[str, Form(max_length=1000)] = "",
           next: Annotated[str, Form(max_length=500)] = "/ops") -> Response:
    """A staff member's e-mail address and password (throttled: ``web.signin``); the session cookie."""
    if not _same_origin(request):
        raise HTTPException(403, "Cross-origin form post refused")
    attempt = doors.password_signin(request, STAFF, email, password)
    if attempt.person is None:
        headers = {"Retry-After": str(attempt.retry_after)} if attempt.retry_after else None
        return _signin_page(request, next, attempt.status, attempt.message, headers)
    log.info("%s signed in to the dashboard (password)", attempt.person.actor)
    return doors.start_session(_see(_safe_next(next)), request, SIGNER, COOKIE, "/ops", attempt.person)


@router.get("/oidc/start")
def oidc_start(request: Request, next: Text = None) -> Response:
    try:
        started = doors.oidc_start(request, "ops", _safe_next(next))
    except SignInFailed as exc:
        return _signin_page(request, next or "/ops", 503, str(exc))
    if started is None:
        return _signin_page(request, next or "/ops", 404, "No identity provider is configured for this hub.")
    url, flow = started
    return doors.set_flow(_see(url), request, flow, "ops")


@router.get("/oidc/callback")
def oidc_callback(request: Request) -> Response:
    try:
        person, flow = doors.oidc_finish(request, "ops", STAFF)
    except SignInFailed as exc:
        log.warning("dashboard sign-in with the identity provider refused: %s", exc)
        return _signin_page(request, "/ops", 403, f"Sign-in refused: {exc}.")
    log.info("%s signed in to the dashboard (OpenID Connect, roles %s)", person.actor, ",".join(person.roles))
    return doors.signed_in_with_provider(request, SIGNER, COOKIE, "ops", person, _safe_next(flow.next))


@router.get("/invite/{token}")
def invitation_form(request: Request, token: str) -> Response:
    person = doors.services(request).people.invitation(token[:100])
    if person is None or person.kind != STAFF:
        return _page(request, None, "invite.html", 404, section="signin", person=None, token="", error=None)
    return _page(request, None, "invite.html", section="signin", person=person, token=token[:100], error=None)


@router.post("/invite/{token}")
def invitation_accept(request: Request, token: str, password: Annotated[str, Form(max_length=1000)] = "",
                      repeat: Annotated[str, Form(max_length=1000)] = "") -> Response:
    if not _same_origin(request):
        raise HTTPException(403, "Cross-origin form post refused")
    people = doors.services(request).people
    person = people.invitation(token[:100])
    if person is None or person.kind != STAFF:
        return _page(request, None, "invite.html", 404, section="signin", person=None, token="", error=None)
    if password != repeat:
        return _page(request, None, "invite.html", 422, section="signin", person=person, token=token[:100],
                     error="The two passwords differ.")
    try:
        person = people.accept(token[:100], password)
    except ValidationFailed as exc:
        return _page(request, None, "invite.html", 422, section="signin", person=person, token=token[:100],
                     error=str(exc))
    log.info("%s accepted their invitation to the dashboard", person.actor)
    return doors.start_session(_see("/ops"), request, SIGNER, COOKIE, "/ops", person)


@router.post("/signout")
def signout(request: Request, operator: Acting) -> Response:
    response = _see("/ops/signin")
    clear_cookie(response, request, COOKIE, path="/ops")
    return response


# -- overview ------------------------------------------------------------------------------------------

@router.get("")
def overview(request: Request, operator: Signed) -> Response:
    hub = _hub(request)
    now = hub.clock.now()
    with hub.db.read() as conn:
        pipeline = data.pipeline(conn, now)
        health = data.health(hub, conn, now)
        view = ops_charts.overview(hub, conn, now)
    return _page(request, operator, "overview.html", section="overview", now=now, pipeline=pipeline, health=health,
                 view=view, refreshed=ops_charts.refreshed_ids(view, [r.state for r in pipeline]), dur=data.duration)


# -- exception queue and cases ---------------------------------------------------------------------------

STATE_CHOICES = ("open", *(s.value for s in CaseState), "all")


@router.get("/cases")
def case_queue(request: Request, operator: Signed, view: Text = None, type: Text = None,
               owner: Text = None, state: Text = None, part: Text = None) -> Response:
    """The queue; ``part=rows`` (the list's own refresh, htmx) answers only the list's body."""
    hub = _hub(request)
    flt = data.CaseFilter(view=view if view in data.VIEWS_BY_KEY else None,
                          type=type if type in {t.value for t in CaseType} else None, owner=owner or None,
                          state=state if state in STATE_CHOICES else "open")
    with hub.db.read() as conn:
        rows = data.case_rows(conn, flt, hub.clock.now())
        teams = data.owner_teams(conn)
        counts = data.case_counts(conn, flt)
        filters = saved_filters.saved(conn, operator.person.id, "cases")
    context: dict[str, Any] = dict(rows=rows, flt=flt, counts=counts, names=workbench_data.account_names(hub),
                                   limit=data.LIST_LIMIT,
                   refresh=_queue_url(flt, part="rows"), now=hub.clock.now())
    if part == "rows":
        return _page(request, operator, "_case_rows.html", **context)
    return _page(request, operator, "cases.html", section="cases", teams=teams, types=[t.value for t in CaseType],
                 states=STATE_CHOICES, tab_query=_queue_url(flt, view=None)[len("/ops/cases"):], filters=filters,
                 this_query=_queue_url(flt).partition("?")[2], **context)


def _queue_url(flt: data.CaseFilter, **changes: str | None) -> str:
    """The queue's address for ``flt`` with ``changes`` (None drops a parameter)."""
    params = {"view": flt.view, "type": flt.type, "owner": flt.owner,
              "state": flt.state if flt.state != "open" else None, **changes}
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v})
    return "/ops/cases" + (f"?{query}" if query else "")


def _workbench(request: Request) -> Workbench:
    return _hub(request).workbench


def _case_page(request: Request, operator: Operator, case_id: str, status: int = 200, **extra: Any) -> Response:
    hub = _hub(request)
    try:
        case = _workbench(request).case(case_id)
    except NotFound:
        return _page(request, operator, "missing.html", 404, section="cases", what=f"case {case_id}")
    letter = None
    if case.dead_letter_id is not None:
        try:
            letter = hub.dead_letters.get(case.dead_letter_id)
        except NotFound:
            letter = None
    now = hub.clock.now()
    with hub.db.read() as conn:
        order = data.order(conn, case.order_id) if case.order_id else None
        panel = workbench_data.context(hub, conn, case)
    actions = list(allowed_actions(case.type)) if case.state is not CaseState.RESOLVED else []
    overdue = case.state is not CaseState.RESOLVED and case.due_at is not None and case.due_at < now
    extra.setdefault("confirm", None)
    return _page(request, operator, "case.html", status, section="cases", case=case, order=order, letter=letter,
                 actions=actions, overdue=overdue, opened=data.age(now, case.opened_at), panel=panel,
                 assignees=workbench_data.assignees(hub), destructive=DESTRUCTIVE, **extra)


@router.get("/cases/{case_id}")
def case_detail(request: Request, case_id: str, operator: Signed, done: Text = None) -> Response:
    return _case_page(request, operator, case_id[:64], done=done if done in _ALL_ACTIONS else None, error=None)


_ALL_ACTIONS = {a for t in CaseType for a in allowed_actions(t)}


def _needs(request: Request, operator: Operator, roles: tuple[str, ...], what: str, back: str) -> Response | None:
    """A page saying why, when none of the operator's roles may do ``what`` (admins may do all)."""
    if operator.has(*roles):
        return None
    return _page(request, operator, "refused.html", 403, why=f"{what} needs one of the roles {', '.join(roles)}; "
                 f"you have {', '.join(operator.roles)}.", back=back)


#: actions every staff member may take on any case: hand it on
HAND_ON = frozenset({"assign", "escalate"})


def _may_not_act(request: Request, operator: Operator, case_id: str, action: str) -> Response | None:
    """The page saying why, when the operator's roles do not take this case type's decisions (finance
    decides credit holds, commerce prices, operations and admins everything; anyone may hand a case on),
    else None."""
    if action in HAND_ON:
        return None
    try:
        case = _workbench(request).case(case_id)
    except NotFound:
        return _page(request, operator, "missing.html", 404, section="cases", what=f"case {case_id}")
    if may_act(operator.person, case.type.value):
        return None
    return _case_page(request, operator, case_id, 403, done=None,
                      error=f"Your roles ({', '.join(operator.roles)}) do not act on {case.type.value} cases; "
                            f"assign it to its team instead.")


@router.post("/cases/{case_id}/actions")
def case_action(
    request: Request,
    case_id: str,
    operator: Acting,
    action: Annotated[str, Form(max_length=40)],
    comment: Annotated[str, Form(max_length=2000)] = "",
    owner_team: Annotated[str, Form(max_length=64)] = "",
    line_no: Annotated[str, Form(max_length=6)] = "",
    amount: Annotated[str, Form(max_length=24)] = "",
    answer: Annotated[str, Form(max_length=2000)] = "",
    confirmed: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """The same workbench action as ``POST /v1/ops/cases/{id}/actions``; back to the case page with the
    outcome, or the page again with the reason it was refused (nothing changed then). A destructive
    action (cancel, cancel a line, reject a dispute) first answers the case page with a confirmation
    that repeats the form (``confirmed=yes``); an action on a case that is resolved by then (the same
    confirmation posted twice) goes back to the case, changing nothing."""
    case_id = case_id[:64]
    try:
        number = int(line_no) if line_no.strip() else None
        figure = Decimal(amount.strip().replace(",", "")) if amount.strip() else None
    except (ValueError, ArithmeticError):
        return _case_page(request, operator, case_id, 422, done=None,
                          error="The line number and the amount must be numbers.")
    if figure is not None and not figure.is_finite():
        return _case_page(request, operator, case_id, 422, done=None, error="The amount must be a number.")
    refused = _may_not_act(request, operator, case_id, action)
    if refused is not None:
        return refused
    try:
        resolved = _workbench(request).case(case_id).state is CaseState.RESOLVED
    except NotFound:
        return _page(request, operator, "missing.html", 404, section="cases", what=f"case {case_id}")
    if resolved and action in _ALL_ACTIONS:
        return _see(f"/ops/cases/{urllib.parse.quote(case_id)}")
    if action in DESTRUCTIVE and confirmed != "yes":
        asked = {"action": action, "comment": comment.strip(), "line_no": line_no.strip(), "amount": amount.strip(),
                 "answer": answer.strip(), "owner_team": owner_team.strip()}
        return _case_page(request, operator, case_id, done=None, error=None, confirm=asked)
    request_ = CaseAction(action=action, actor=operator.actor, comment=comment.strip(),
                          owner_team=owner_team.strip() or None, line_no=number, amount=figure, answer=answer.strip())
    try:
        _workbench(request).act(case_id, request_)
    except NotFound:
        return _page(request, operator, "missing.html", 404, section="cases", what=f"case {case_id}")
    except ActionNotAllowed as exc:
        return _case_page(request, operator, case_id, 422, done=None, error=str(exc))
    except ValidationFailed as exc:
        return _case_page(request, operator, case_id, 422, done=None, error="; ".join(exc.reasons))
    except Conflict as exc:
        return _case_page(request, operator, case_id, 409, done=None, error=str(exc))
    except IntegrationError as exc:
        status = 503 if isinstance(exc, Unavailable) else 502
        return _case_page(request, operator, case_id, status, done=None,
                          error=f"The ERP could not be reached; nothing changed ({exc}). Try again shortly.")
    return _see(f"/ops/cases/{urllib.parse.quote(case_id)}?done={urllib.parse.quote(action)}")


# -- dead letters ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LetterQuery:
    status: str
    type: str | None
    consumer: str | None
    reason: str | None
    error: str | None
    ids: tuple[str, ...]

    def dlq_filter(self) -> DeadLetterFilter:
        return DeadLetterFilter(status=self.status if self.status != "all" else None, type=self.type,
                                consumer=self.consumer, reason=self.reason, error=self.error, ids=self.ids)


def _letter_query(status: str | None, type_: str | None, consumer: str | None, reason: str | None,
                  error: str | None, ids: list[str] | None = None) -> LetterQuery:
    return LetterQuery(status=status if status in ("dead", "replayed", "all") else "dead", type=type_ or None,
                       consumer=consumer or None, reason=reason or None, error=error or None,
                       ids=tuple(i[:64] for i in (ids or []) if i)[: data.LIST_LIMIT])


@router.get("/dead-letters")
def dead_letter_list(request: Request, operator: Signed, status: Text = None, type: Text = None,
                     consumer: Text = None, reason: Text = None, error: Text = None,
                     ids: Annotated[list[str] | None, Query(max_length=data.LIST_LIMIT)] = None,
                     replayed: Annotated[int | None, Query(ge=0)] = None) -> Response:
    hub = _hub(request)
    query = _letter_query(status, type, consumer, reason, error, ids)
    letters = hub.dead_letters.list(query.dlq_filter(), limit=data.LIST_LIMIT)
    with hub.db.read() as conn:
        linked = data.linked_cases(conn, [x.id for x in letters])
    return _page(request, operator, "dead_letters.html", section="dead-letters", letters=letters, q=query,
                 linked=linked, replayed=replayed, now=hub.clock.now(), age=data.age, limit=data.LIST_LIMIT)


@router.post("/dead-letters/preview")
def dead_letter_preview(
    request: Request,
    operator: Acting,
    ids: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies the default
    matching: Annotated[str, Form(max_length=5)] = "",
    status: Annotated[str, Form(max_length=20)] = "dead",
    type: Annotated[str, Form(max_length=200)] = "",
    consumer: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=200)] = "",
    error: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The dry run: what a replay of the chosen letters (or of every dead one matching the list's filter)
    would do, changing nothing. The confirm form that follows names exactly the letters shown."""
    hub = _hub(request)
    if matching:
        query = _letter_query("dead", type, consumer, reason, error)
    else:
        query = _letter_query("dead", None, None, None, None, ids)
    items: list[ReplayItem] = []
    if matching or query.ids:
        items = hub.dead_letters.replay(query.dlq_filter(), dry_run=True, limit=data.LIST_LIMIT).items
    with hub.db.read() as conn:
        linked = data.linked_cases(conn, [i.id for i in items])
    return _page(request, operator, "dead_letters_preview.html", section="dead-letters", items=items, linked=linked,
                 nothing=not items)


@router.post("/dead-letters/replay")
def dead_letter_replay(request: Request, operator: Acting,
                       ids: Annotated[list[str], Form()] = []) -> Response:  # noqa: B006
    """Replay the letters the preview showed (those still dead). A letter whose integration-failure case
    is open is replayed by the case's ``retry`` action, so the case is resolved in the same transaction
    and its history says who replayed it; the others through the dead-letter service."""
    refused = _needs(request, operator, ("operations",), "Replaying dead letters", "/ops/dead-letters")
    if refused is not None:
        return refused
    hub = _hub(request)
    chosen = tuple(i[:64] for i in ids if i)[: data.LIST_LIMIT]
    if not chosen:
        return _see("/ops/dead-letters")
    with hub.db.read() as conn:
        linked = data.linked_cases(conn, chosen)
    by_case = {lid: cid for lid, (cid, state) in linked.items() if state != CaseState.RESOLVED.value}
    replayed = 0
    for case_id in by_case.values():
        try:
            _workbench(request).act(case_id, CaseAction(action="retry", actor=operator.actor,
                                                        comment="replayed from the dashboard"))
            replayed += 1
        except (Conflict, NotFound):
            continue  # replayed by somebody else meanwhile, or not dead any more: nothing to do
    rest = tuple(i for i in chosen if i not in by_case)
    if rest:
        replayed += hub.dead_letters.replay(DeadLetterFilter(ids=rest), dry_run=False).count
    return _see(f"/ops/dead-letters?replayed={replayed}")


# -- orders -----------------------------------------------------------------------------------------------

@router.get("/orders")
def order_search(request: Request, operator: Signed, q: Text = None, state: Text = None, part: Text = None) -> Response:
    """Orders by number, PO, customer (name or id), SKU or id; one match opens it. ``part=rows`` (the
    list's own refresh, htmx) answers only the list's body."""
    hub = _hub(request)
    q = (q or "").strip() or None
    names = workbench_data.account_names(hub)
    accounts = [a for a, n in names.items() if q and q.lower() in n.lower()]
    with hub.db.read() as conn:
        rows = data.find_orders(conn, q, state if state in {s.value for s in OrderState} else None, accounts)
        filters = saved_filters.saved(conn, operator.person.id, "orders")
    if q and len(rows) == 1 and part != "rows":
        return _see(f"/ops/orders/{urllib.parse.quote(rows[0].id)}")
    query = urllib.parse.urlencode({k: v for k, v in (("q", q), ("state", state), ("part", "rows")) if v})
    context: dict[str, Any] = dict(rows=rows, q=q or "", names=names, now=hub.clock.now(), age=data.age,
                   matched={r.id: data.matches(r, q, accounts) for r in rows} if q else {},
                   refresh=f"/ops/orders?{query}")
    if part == "rows":
        return _page(request, operator, "_order_rows.html", **context)
    return _page(request, operator, "orders.html", section="orders", state=state or "", filters=filters,
                 states=[s.value for s in OrderState], this_query=_filter_query("orders", str(request.url.query)),
                 **context)


# -- saved filters (per operator, of the case queue and the order search) ---------------------------------

#: the parameters a saved filter keeps, per page
FILTER_PARAMS = {"cases": ("view", "type", "owner", "state"), "orders": ("q", "state")}


def _filter_query(page: str, query: str) -> str:
    """``query`` with only the page's filter parameters (no paging, no partial refresh)."""
    keep = FILTER_PARAMS.get(page, ())
    return urllib.parse.urlencode([(k, v[:200]) for k, v in urllib.parse.parse_qsl(query) if k in keep and v])


@router.post("/filters")
def save_filter(request: Request, operator: Acting, page: Annotated[str, Form(max_length=20)] = "",
                name: Annotated[str, Form(max_length=80)] = "",
                query: Annotated[str, Form(max_length=1000)] = "") -> Response:
    """Save the list's current filter under a name of the operator's (the same name again replaces it)."""
    if page not in FILTER_PARAMS:
        return _page(request, operator, "missing.html", 404, section="cases", what=f"list {page[:20]}")
    kept, label = _filter_query(page, query), " ".join(name.split())[:80]
    back = f"/ops/{page}" + (f"?{kept}" if kept else "")
    if not label:
        return _see(back)  # nothing to name it by: the list as it was
    hub = _hub(request)
    with hub.db.write() as conn:
        saved_filters.save_filter(conn, operator.person.id, page, label, kept, hub.clock.now())
    return _see(back)


@router.post("/filters/{filter_id}/delete")
def delete_filter(request: Request, filter_id: str, operator: Acting,
                  page: Annotated[str, Form(max_length=20)] = "cases") -> Response:
    """Forget one of the operator's saved filters (deleting it twice is harmless)."""
    hub = _hub(request)
    with hub.db.write() as conn:
        saved_filters.delete_filter(conn, operator.person.id, filter_id[:32])
    return _see(f"/ops/{page if page in FILTER_PARAMS else 'cases'}")


@router.get("/orders/{order_id}")
def order_timeline(request: Request, order_id: str, operator: Signed) -> Response:
    hub = _hub(request)
    with hub.db.read() as conn:
        found = data.timeline(conn, order_id[:64])
    if found is None:
        return _page(request, operator, "missing.html", 404, section="orders", what=f"order {order_id[:64]}")
    return _page(request, operator, "order.html", section="orders", t=found, now=hub.clock.now(), age=data.age)


# -- EDI: partners and interchanges ------------------------------------------------------------------------

EDI_STATES = ("received", "processed", "orders_rejected", "unsupported", "duplicate", "rejected", "unknown_partner",
              "failed", "queued", "sent", "dead_letter")


@router.get("/edi")
def edi_overview(request: Request, operator: Signed, partner: Text = None, state: Text = None,
                 direction: Text = None) -> Response:
    """Trading partners (how documents reach them, what waits) and the latest interchanges."""
    hub = _hub(request)
    partner = partner or None
    state = state if state in EDI_STATES else None
    direction = direction if direction in ("in", "out") else None
    with hub.db.read() as conn:
        counts = edi_store.partner_counts(conn)
        rows = edi_store.list_interchanges(conn, partner=partner, state=state, direction=direction,
                                           limit=data.LIST_LIMIT)
    partners = [{"name": p.name, "isa": f"{p.interchange_qualifier}:{p.interchange_id}", "account": p.account_id,
                 "transport": p.transport, "to": p.as2_url or p.outbox_dir, "version": p.version, "usage": p.usage,
                 "ack_hours": p.ack_hours, **counts.get(p.name, {})} for p in hub.settings.edi.partners]
    strangers = counts.get("", {})
    return _page(request, operator, "edi.html", section="edi", partners=partners, rows=rows, strangers=strangers,
                 partner=partner or "", state=state or "", direction=direction or "", states=EDI_STATES,
                 now=hub.clock.now(), age=data.age, us=hub.settings.edi)


@router.get("/edi/{interchange_id}")
def edi_interchange(request: Request, interchange_id: str, operator: Signed, done: Text = None) -> Response:
    hub = _hub(request)
    with hub.db.read() as conn:
        row = conn.execute(select(edi_interchanges).where(edi_interchanges.c.id == interchange_id[:64])) \
            .mappings().first()
        replies = conn.execute(select(edi_interchanges.c.id, edi_interchanges.c.document, edi_interchanges.c.state,
                                      edi_interchanges.c.control_number)
                               .where(edi_interchanges.c.reply_to == interchange_id[:64])).mappings().all()
    if row is None:
        return _page(request, operator, "missing.html", 404, section="edi", what=f"interchange {interchange_id[:64]}")
    raw = bytes(row["raw"])
    text = raw[:200_000].decode("utf-8", errors="replace")
    return _page(request, operator, "edi_interchange.html", section="edi", i=row, text=text,
                 truncated=len(raw) > 200_000, replies=replies, done=done, now=hub.clock.now(), age=data.age,
                 segments=_segment_lines(text))


def _segment_lines(text: str) -> list[str]:
    """One segment per line for reading (the terminator is ISA's 106th character in X12)."""
    if text.startswith("ISA") and len(text) >= 106:
        terminator = text[105]
        return [s.strip("\r\n") + terminator for s in text.split(terminator) if s.strip("\r\n")][:5000]
    return text.splitlines()[:5000]


@router.post("/edi/{interchange_id}/resend")
def edi_resend(request: Request, interchange_id: str, operator: Acting) -> Response:
    """Send an outgoing interchange again: same bytes, same control numbers."""
    refused = _needs(request, operator, ("operations",), "Sending an interchange again",
                     f"/ops/edi/{urllib.parse.quote(interchange_id[:64])}")
    if refused is not None:
        return refused
    hub = _hub(request)
    with hub.db.write() as conn:
        row = edi_store.resend(conn, interchange_id[:64])
    if row is None:
        return _page(request, operator, "missing.html", 404, section="edi",
                     what=f"outgoing interchange {interchange_id[:64]}")
    hub.worker.wake()
    log.info("EDI interchange %s queued again by %s (was %s)", interchange_id, operator.actor, row["state"])
    outcome = "queued" if row["state"] in ("sent", "dead_letter", "queued") else "not-resendable"
    return _see(f"/ops/edi/{urllib.parse.quote(interchange_id[:64])}?done={outcome}")


# -- Shopify B2B shops ---------------------------------------------------------------------------------------

@router.get("/shopify")
def shopify_overview(request: Request, operator: Signed, shop: Text = None, mapped: Text = None) -> Response:
    """Each shop: health, webhook lag, events, refused deliveries, pushes, throttle, reconciliation, orders;
    above them the orders waiting for a company mapping, each company location with its form. ``shop`` and
    ``mapped`` name a mapping just made (after the redirect): what it came to is said on top."""
    return _shopify_page(request, operator, notice=(shop, mapped) if shop and mapped else None)


def _shopify_page(request: Request, operator: Operator, status: int = 200, *, error: str | None = None,
                  chosen: tuple[str, str, str] | None = None, notice: tuple[str, str] | None = None) -> Response:
    hub = _hub(request)
    now = hub.clock.now()
    with hub.db.read() as conn:
        shops, strangers = ops_shopify.panels(hub, conn, now)
        waiting = [ops_shopify.waiting(conn, s.name) for s in hub.settings.shopify.shops]
        said = ops_shopify.notice(conn, *notice) if notice else None
    accounts: list[Any] = []
    accounts_error = ""
    if any(w.locations for w in waiting):
        try:
            accounts = sorted(hub.shopify.inbound.directory.accounts(), key=lambda a: a.id)
        except OrdersyncError as exc:
            accounts_error = f"The ERP's accounts could not be read ({exc}): the mapping comes back when it answers."
    return _page(request, operator, "shopify.html", status, section="shopify", shops=shops, strangers=strangers,
                 now=now, age=data.age, duration=data.duration, lag=ops_shopify.lag, waiting=waiting,
                 accounts=accounts, accounts_error=accounts_error, error=error, chosen=chosen, notice=said)


# Mapping a waiting company location to an ERP account: the form on /ops/shopify posts to the preview (a
# confirmation that changes nothing, like the dead letters' dry run), whose form posts the mapping; then
# back to /ops/shopify (post/redirect/get) saying what it came to. Every operator may map (the ops or
# admin scope, as every dashboard action: the session is only given to such keys, and the key is checked
# again on every request); the mapping is kept with the operator's name and the orders' cases are
# resolved in the operator's name (the channel's map_and_take, the same as ``ordersync shopify map``).

MapField = Annotated[str, Form(max_length=200)]


def _mapping(request: Request, operator: Operator, shop: str, location: str, account: str, *,
             fresh: bool) -> tuple[ops_shopify.Waiting, Any] | Response:
    """The waiting location and the chosen account, or the page again saying why not (nothing changed).
    ``fresh``: read the ERP's accounts now (the confirmation does; the mapping itself reads them again)."""
    hub = _hub(request)
    chosen = (shop, location, account)
    if hub.shopify is None or shop not in {s.name for s in hub.settings.shopify.shops}:
        return _shopify_page(request, operator, 404, error=f"No Shopify shop named {shop!r} is configured.")
    with hub.db.read() as conn:
        found = ops_shopify.find_waiting(conn, shop, location)
        said = ops_shopify.notice(conn, shop, location) if found is None else None
    if found is None:
        done = f" It was mapped to {said.account} by {said.by}." if said else ""
        return _shopify_page(request, operator, 409, chosen=chosen,
                             error=f"No order of shop {shop} waits for {location} any more: nothing to map.{done}")
    if not account:
        return _shopify_page(request, operator, 422, chosen=chosen,
                             error=f"Choose the ERP account {found.label} buys for.")
    try:
        known = {a.id: a for a in hub.shopify.inbound.directory.accounts(fresh=fresh)}
    except OrdersyncError as exc:
        return _shopify_page(request, operator, 503, chosen=chosen,
                             error=f"The ERP's accounts could not be read ({exc}); nothing was mapped. Try again "
                                   "shortly.")
    if account not in known:
        return _shopify_page(request, operator, 422, chosen=chosen,
                             error=f"{account} is not an active ERP account: nothing was mapped. Choose one from "
                                   "the list.")
    return found, known[account]


@router.post("/shopify/map/preview")
def shopify_map_preview(request: Request, operator: Acting, shop: MapField = "", location: MapField = "",
                        account: MapField = "") -> Response:
    """The confirmation: what Shopify says of the company next to the chosen ERP account, and the orders
    that will be taken in. Changes nothing."""
    checked = _mapping(request, operator, shop.strip(), location.strip(), account.strip(), fresh=True)
    if isinstance(checked, Response):
        return checked
    found, chosen = checked
    hub = _hub(request)
    return _page(request, operator, "shopify_map.html", section="shopify", w=found, account=chosen,
                 same_tax=ops_shopify.same_tax_id(found.tax_id, chosen.tax_id), now=hub.clock.now(), age=data.age)


@router.post("/shopify/map")
def shopify_map(request: Request, operator: Acting, shop: MapField = "", location: MapField = "",
                account: MapField = "") -> Response:
    """Map the company location and take its waiting orders in; back to /ops/shopify with what happened.
    A confirmation sent again once it is done goes to the same outcome (nothing is mapped twice)."""
    refused = _needs(request, operator, ("operations", "commerce"), "Mapping a Shopify company", "/ops/shopify")
    if refused is not None:
        return refused
    hub = _hub(request)
    shop, location, account = shop.strip(), location.strip(), account.strip()
    done_at = f"/ops/shopify?{urllib.parse.urlencode({'shop': shop, 'mapped': location})}"
    if hub.shopify is not None and shop in {s.name for s in hub.settings.shopify.shops}:
        with hub.db.read() as conn:
            said = ops_shopify.notice(conn, shop, location)
            again = said is not None and said.account == account and \
                ops_shopify.find_waiting(conn, shop, location) is None
        if again:
            return _see(done_at)
    checked = _mapping(request, operator, shop, location, account, fresh=False)
    if isinstance(checked, Response):
        return checked
    try:
        hub.shopify.inbound.map_and_take(shop, location, account, actor=operator.actor, by=operator.name,
                                         source="ops")
    except ValueError as exc:  # the ERP dropped the account since the check
        return _shopify_page(request, operator, 422, chosen=(shop, location, account),
                             error=f"{exc}: nothing was mapped. Choose one from the list.")
    except OrdersyncError as exc:
        return _shopify_page(request, operator, 503, chosen=(shop, location, account),
                             error=f"The ERP's accounts could not be read ({exc}); nothing was mapped. Try again "
                                   "shortly.")
    return _see(done_at)


# -- what no page answers ---------------------------------------------------------------------------------

#: included after every other dashboard router (server.py), so that it only sees what none of them answers
fallback = APIRouter(prefix="/ops", include_in_schema=False)


@fallback.api_route("/{rest:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
def elsewhere(request: Request, rest: str) -> Response:
    """An unknown dashboard address is a page that says so, with the way back, never a JSON error. The
    address of a page or a form asked with a method it does not take (a form post reloaded, a bookmarked
    action) goes to the nearest page above it (303): post/redirect/get."""
    path = request.url.path.rstrip("/")
    pages, forms = _page_patterns(request.app)
    if any(r.fullmatch(path) for r in pages + forms):
        while path.count("/") > 1 and not any(r.fullmatch(path) for r in pages):
            path = path.rsplit("/", 1)[0]
        return _see(path)
    return _page(request, current(request), "missing.html", 404, section="", what=f"page at {path[:200]}")


def _page_patterns(app: Any) -> tuple[list[Any], list[Any]]:
    """The dashboard's pages (GET) and its other addresses (forms), as path patterns; made once."""
    found: tuple[list[Any], list[Any]] | None = getattr(app.state, "ops_patterns", None)
    if found is None:
        routes = [ctx for ctx in iter_route_contexts(app.routes)
                  if ctx.path and ctx.path.startswith("/ops") and "{rest" not in ctx.path]
        found = ([compile_path(c.path or "")[0] for c in routes if "GET" in (c.methods or set())],
                 [compile_path(c.path or "")[0] for c in routes if "GET" not in (c.methods or set())])
        app.state.ops_patterns = found
    return found


#: what a refusal is called on a page
TITLES = {400: "Not understood", 403: "Not allowed", 404: "Not found", 405: "Not here", 413: "Too large",
          422: "Not accepted", 429: "Too many requests"}


def error_page(request: Request, status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """A refusal on a dashboard address (a stale form, a field too long) as a page, not a JSON problem."""
    response = _page(request, current(request), "error.html", status, section="",
                     title=TITLES.get(status, "Something went wrong"), detail=detail,
                     back=request.headers.get("referer") if _same_origin(request) else "/ops")
    response.headers.update(headers or {})
    return response
