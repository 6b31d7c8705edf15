"""Webhook subscriptions (``webhookSubscriptionCreate``/``Delete``, ``webhookSubscriptions``). Deliveries
go to each HTTP subscription of an event's topic; see :mod:`.webhooks`."""

from __future__ import annotations

from typing import Any

from .queries import connection
from .registry import Info, ctx, resolves, state, user_error
from .state import Obj, ShopState


def subscribe(shop: ShopState, topic: str, uri: str, api_version: str, fmt: str = "JSON") -> Obj:
    now = shop.now()
    subscription = shop.new(
        "WebhookSubscription", topic=topic, uri=uri, callbackUrl=uri, format=fmt, filter=None, name=None,
        includeFields=[], metafieldNamespaces=[], metafields=[], createdAt=now, updatedAt=now,
        apiVersion={"handle": api_version, "displayName": api_version, "supported": True},
        endpoint={"__typename": "WebhookHttpEndpoint", "callbackUrl": uri})
    shop.subscriptions.append(subscription)
    return subscription


@resolves("Mutation", "webhookSubscriptionCreate")
def webhook_subscription_create(_: Any, info: Info, topic: str, webhookSubscription: Obj) -> Obj:
    shop = state(info)
    uri = webhookSubscription.get("uri") or webhookSubscription.get("callbackUrl") or ""
    if not uri.startswith(("https://", "http://")):
        return {"webhookSubscription": None, "userErrors": [user_error(
            ["webhookSubscription", "callbackUrl"], "Address is invalid (the double delivers over HTTP only)")]}
    if any(s["topic"] == topic and s["uri"] == uri for s in shop.subscriptions):
        return {"webhookSubscription": None, "userErrors": [user_error(
            ["webhookSubscription", "callbackUrl"], "Address for this topic has already been taken")]}
    subscription = subscribe(shop, topic, uri, ctx(info).api_version, webhookSubscription.get("format") or "JSON")
    if webhookSubscription.get("includeFields"):
        subscription["includeFields"] = list(webhookSubscription["includeFields"])
    return {"webhookSubscription": subscription, "userErrors": []}


@resolves("Mutation", "webhookSubscriptionDelete")
def webhook_subscription_delete(_: Any, info: Info, id: str) -> Obj:
    shop = state(info)
    subscription = shop.find(id, "WebhookSubscription")
    if subscription is None:
        return {"deletedWebhookSubscriptionId": None,
                "userErrors": [user_error(["id"], "Webhook subscription does not exist")]}
    shop.subscriptions.remove(subscription)
    del shop.by_gid[id]
    return {"deletedWebhookSubscriptionId": id, "userErrors": []}


@resolves("QueryRoot", "webhookSubscriptions")
def webhook_subscriptions(_: Any, info: Info, topics: list[str] | None = None, uri: str | None = None,
                          callbackUrl: str | None = None, format: str | None = None, query: str | None = None,
                          **args: Any) -> Obj:
    found = [s for s in state(info).subscriptions
             if (topics is None or s["topic"] in topics) and uri in (None, s["uri"])
             and callbackUrl in (None, s["uri"]) and format in (None, s["format"])]
    return connection(info, found, **args)
