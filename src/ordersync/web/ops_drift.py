"""``/ops/drift``: how inbound payloads drifted from their schemas (per source, field and kind, with the
case each new drift opened) and the payloads kept in quarantine, with their reason and body. People of
the operations team replay a held payload once its cause is fixed, or discard it with a reason; both
resolve the payload's case (:mod:`ordersync.runtime.contracts`)."""

from __future__ import annotations

import urllib.parse
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from ordersync.domain.errors import NotFound, OrdersyncError
from ordersync.runtime.contracts import discard, replay
from ordersync.store import drift as store
from ordersync.web.ops import Acting, Signed, Text, _hub, _needs, _page, _see
from ordersync.web.ops_data import age

router = APIRouter(prefix="/ops/drift", include_in_schema=False)
LIMIT = 200


@router.get("")
def drift_page(request: Request, operator: Signed, status: Text = None, said: Text = None) -> Response:
    shown = status if status in (*store.STATUSES, "any") else store.HELD
    hub = _hub(request)
    with hub.db.read() as conn:
        drift = store.drift(conn, limit=LIMIT)
        kept = store.quarantined(conn, status=None if shown == "any" else shown, limit=LIMIT)
    return _page(request, operator, "drift.html", section="drift", drift=drift, kept=kept, shown=shown,
                 statuses=(*store.STATUSES, "any"), said=said, now=hub.clock.now(), age=age, limit=LIMIT,
                 may_act=operator.has("operations"))


@router.post("/{entry_id}/replay")
def replay_entry(request: Request, entry_id: str, operator: Acting) -> Response:
    refused = _needs(request, operator, ("operations",), "Replaying quarantined payloads", "/ops/drift")
    if refused is not None:
        return refused
    try:
        result = replay(_hub(request), entry_id[:64], actor=operator.actor)
        said = f"{result.entry_id}: {result.status}: {result.outcome}"
    except (NotFound, OrdersyncError) as exc:
        said = f"{entry_id[:64]}: {exc}"
    return _see("/ops/drift?" + _query(said))


@router.post("/{entry_id}/discard")
def discard_entry(request: Request, entry_id: str, operator: Acting,
                  reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    refused = _needs(request, operator, ("operations",), "Discarding quarantined payloads", "/ops/drift")
    if refused is not None:
        return refused
    try:
        discard(_hub(request), entry_id[:64], reason, actor=operator.actor)
        said = f"{entry_id[:64]}: discarded"
    except (NotFound, OrdersyncError) as exc:
        said = f"{entry_id[:64]}: {exc}"
    return _see("/ops/drift?" + _query(said))


def _query(said: str) -> str:
    return urllib.parse.urlencode({"status": "any", "said": said[:300]})
