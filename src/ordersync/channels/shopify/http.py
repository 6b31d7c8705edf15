"""``POST /shopify/webhooks``: where Shopify delivers order webhooks. The HMAC over the raw body is
checked first (forged → 401, recorded without the body); a verified delivery is kept before it is
answered (one row per ``X-Shopify-Event-Id``: retries and duplicates are counted, not kept twice) and the
worker's ``shopify events`` job does the rest — Shopify gets its 200 in milliseconds, far within its 5 s."""

from __future__ import annotations

import hashlib
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ordersync.channels.shopify import webhooks
from ordersync.channels.shopify.channel import ShopifyChannel
from ordersync.store import shopify as store

log = logging.getLogger("ordersync.shopify")

router = APIRouter(include_in_schema=False)


@router.post("/shopify/webhooks")
async def receive_webhook(request: Request) -> Response:
    hub = request.app.state.hub
    channel: ShopifyChannel | None = getattr(hub, "shopify", None)
    headers = webhooks.read_headers(request.headers)
    body = await request.body()
    remote = request.client.host if request.client else ""
    if channel is None:
        log.warning("Shopify webhook refused: no Shopify shop is configured on this hub")
        return JSONResponse({"error": "no Shopify shop is configured on this hub"}, status_code=401)
    settings = channel.settings.by_domain(headers.shop_domain)
    reason = ""
    if settings is None:
        reason = "unknown shop"
    elif len(body) > channel.settings.max_body_bytes:
        reason = f"body larger than {channel.settings.max_body_bytes} bytes"
    elif not webhooks.verify(body, headers.hmac, settings.webhook_secrets()):
        reason = "HMAC signature does not match" if headers.hmac else "no HMAC signature"
    if reason:
        await run_in_threadpool(_refuse, channel, headers, reason, body, remote)
        log.warning("Shopify webhook refused (%s): shop %r topic %r from %s", reason, headers.shop_domain,
                    headers.topic, remote)
        return JSONResponse({"error": reason}, status_code=401)
    assert settings is not None
    kept, first = await run_in_threadpool(channel.inbound.keep, settings.name, topic=headers.topic,
                                          event_id=headers.event_id, webhook_id=headers.webhook_id,
                                          triggered_at=headers.triggered_at, body=body)
    if first:
        hub.worker.wake()
    return JSONResponse({"kept": kept, "duplicate": not first})


def _refuse(channel: ShopifyChannel, headers: webhooks.WebhookHeaders, reason: str, body: bytes,
            remote: str) -> None:
    inbound = channel.inbound
    with inbound.db.write() as conn:
        store.refuse(conn, shop_domain=headers.shop_domain, topic=headers.topic, event_id=headers.event_id,
                     reason=reason, size=len(body), sha256=hashlib.sha256(body).hexdigest(), remote=remote,
                     at=inbound.clock.now())
