"""``POST /as2``: where partners send their interchanges over AS2. The body is kept verbatim before the
answer (nothing lost once the MDN says *processed*); the worker's ``edi inbound`` job does the rest. The
MDN goes back in the response, or to the URL the sender named (``Receipt-Delivery-Option``), in a
thread of its own with a few retries."""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from typing import Any

import httpx
from fastapi import APIRouter, Request, Response

from ordersync.channels.edi import as2

log = logging.getLogger("ordersync.edi")

router = APIRouter(include_in_schema=False)


@router.post("/as2")
async def receive_as2(request: Request) -> Response:
    hub = request.app.state.hub
    channel = getattr(hub, "edi", None)
    headers = {k.lower(): v for k, v in request.headers.items()}
    ask = as2.MdnRequest.from_headers(headers)
    original = headers.get("message-id", "")
    as2_from = headers.get("as2-from", "").strip('"')
    as2_to = headers.get("as2-to", "").strip('"')
    body = await request.body()
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    payload: bytes | None = body
    if channel is None:
        disposition, text, payload = ("failed/Failure: unexpected-processing-error",
                                      "No EDI partners are configured on this hub.", None)
    elif ctype in as2.SECURED_TYPES:
        disposition, text, payload = ("failed/Failure: unsupported format",
                                      "Signed or encrypted AS2 payloads are not supported here yet; send the "
                                      "interchange unsigned over TLS.", None)
    elif ask.signed_required:
        disposition, text, payload = ("failed/Failure: unsupported MIC-algorithms",
                                      "A signed receipt is required and this hub does not sign MDNs yet.", None)
    elif not body:
        disposition, text, payload = ("processed/error: unexpected-processing-error", "The message was empty.", None)
    elif ask.async_url and not _known_host(ask.async_url, channel.partners):
        # an unauthenticated sender must not make the hub POST wherever it likes: the receipt goes back
        # synchronously, saying why, and nothing is kept
        disposition, text, payload = ("failed/Failure: unexpected-processing-error",
                                      "The Receipt-Delivery-Option names a host that is not one of our partners' AS2 "
                                      "hosts; ask for a synchronous MDN or use your as2_url's host.", None)
        ask = as2.MdnRequest(ask.wanted, "", ask.signed_required)
    else:
        interchange_id = channel.inbound.keep(body, transport="as2", message_id=original)
        hub.worker.wake()
        disposition, text = "processed", f"Received and kept as {interchange_id}."
        log.info("AS2 message %s from %s kept as %s (%d bytes)", original, as2_from, interchange_id, len(body))
    if not ask.wanted:
        return Response(status_code=200 if payload is not None else 400, content=text)
    mdn_headers, mdn_body = as2.build_mdn(original_message_id=original, as2_from=as2_from, as2_to=as2_to,
                                          payload=payload, disposition=disposition, text=text)
    if ask.async_url:
        threading.Thread(target=_post_mdn, args=(ask.async_url, mdn_headers, mdn_body), daemon=True,
                         name="as2-async-mdn").start()
        return Response(status_code=202)
    return Response(status_code=200, content=mdn_body, headers=mdn_headers)


def _known_host(url: str, partners: list[Any]) -> bool:
    """Whether ``url`` is on the host (and port) of a partner's AS2 URL."""
    where = urllib.parse.urlsplit(url)
    return where.scheme in ("http", "https") and any(
        urllib.parse.urlsplit(p.as2_url).netloc == where.netloc for p in partners if p.as2_url)


def _post_mdn(url: str, headers: dict[str, str], body: bytes, attempts: int = 5) -> None:
    for attempt in range(1, attempts + 1):
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=30)
            if response.status_code < 300:
                return
            log.warning("asynchronous MDN to %s: HTTP %s (attempt %d)", url, response.status_code, attempt)
        except httpx.HTTPError as exc:
            log.warning("asynchronous MDN to %s: %s (attempt %d)", url, exc, attempt)
        time.sleep(min(60, 2 ** attempt))
