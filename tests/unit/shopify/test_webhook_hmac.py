"""Shopify webhook HMAC over the raw body: Shopify's own test vector, forged and tampered bodies, a missing
or malformed header, secret rotation, and agreement with shopify_app's verifier; the delivery headers."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from shopify_app import ShopifyApp

from ordersync.channels.shopify.webhooks import WebhookHeaders, read_headers, sign, verify

VECTOR_PATH = Path(__file__).resolve().parents[4] / "shared" / "samples" / "shopify" / "hmac_test_vector.json"
#: Shopify's own test vector, from Shopify/shopify-app-js packages/apps/shopify-api/lib/webhooks/__tests__/
#: validate.test.ts (rawBody, expected hmac) and lib/__tests__/test-config.ts (apiSecretKey), commit
#: ef2043d4a8c4ca0adb9020d76090b2fb94979dab, MIT; kept here so the test runs without the shared samples
VECTOR = {"secret": "test_secret_key", "raw_body": '{"foo": "bar"}', "header": "X-Shopify-Hmac-Sha256",
          "expected_base64_hmac_sha256": "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="}


@pytest.fixture(scope="module")
def vector() -> dict[str, Any]:
    return VECTOR


def test_the_vector_is_the_shared_samples_one() -> None:
    if not VECTOR_PATH.exists():
        pytest.skip(f"the shared samples are not at {VECTOR_PATH}")
    shared = json.loads(VECTOR_PATH.read_text())
    assert {k: shared[k] for k in VECTOR} == VECTOR


def test_shopifys_test_vector(vector: dict[str, Any]) -> None:
    body = vector["raw_body"].encode()
    assert vector["header"].lower() == "x-shopify-hmac-sha256"
    assert sign(body, vector["secret"]) == vector["expected_base64_hmac_sha256"]
    assert verify(body, vector["expected_base64_hmac_sha256"], [vector["secret"]])


def test_the_body_is_checked_byte_for_byte(vector: dict[str, Any]) -> None:
    good = vector["expected_base64_hmac_sha256"]
    # the same JSON without the space (Shopify's test: a re-serialised body is not what was signed)
    assert not verify(b'{"foo":"bar"}', good, [vector["secret"]])
    assert not verify(vector["raw_body"].encode() + b"\n", good, [vector["secret"]])
    assert not verify(b'{"foo": "baz"}', good, [vector["secret"]])
    assert not verify(b"", good, [vector["secret"]])


def test_forged_signatures_are_refused() -> None:
    body = b'{"id": 5600123, "admin_graphql_api_id": "gid://shopify/Order/5600123"}'
    assert verify(body, sign(body, "whsec_real"), ["whsec_real"])
    assert not verify(body, sign(body, "whsec_guess"), ["whsec_real"])
    good = sign(body, "whsec_real")
    flipped = ("A" if good[0] != "A" else "B") + good[1:]
    assert not verify(body, flipped, ["whsec_real"])
    assert not verify(body, good[:-2], ["whsec_real"])
    assert not verify(body, good.lower(), ["whsec_real"])


@pytest.mark.parametrize("header", ["", "   ", "not base64 at all", "é" * 44, "\x00", "=" * 44])
def test_a_missing_or_malformed_header_is_refused_not_an_error(header: str) -> None:
    assert verify(b'{"a": 1}', header, ["whsec_real"]) is False


def test_no_secret_verifies_nothing() -> None:
    body = b'{"a": 1}'
    assert not verify(body, sign(body, ""), [])
    assert not verify(body, sign(body, ""), [""])


def test_any_secret_of_a_rotation_verifies() -> None:
    body = b'{"a": 1}'
    secrets = ["whsec_new", "whsec_old", "whsec_older"]
    for secret in secrets:
        assert verify(body, sign(body, secret), secrets)
    assert not verify(body, sign(body, "whsec_other"), secrets)
    assert verify(body, sign(body, "whsec_new"), "whsec_new")  # one secret as a plain string


def test_bodies_shopify_app_cannot_take_are_still_checked() -> None:
    """Bytes that are not UTF-8, and JSON nested deeper than Python's recursion limit (which
    shopify_app parses before it checks the HMAC)."""
    for body in (b"\xff\xfe{\x00}", b"[" * 100_000):
        assert verify(body, sign(body, "whsec_real"), ["whsec_real"])
        assert not verify(body, sign(body, "whsec_guess"), ["whsec_real"])


@pytest.mark.parametrize("body", ['{"foo": "bar"}', '{"id":1,"note":"Grüße — 東京"}', "", "[]", "not json"])
@pytest.mark.parametrize("secret", ["test_secret_key", "whsec_äöü"])
def test_agrees_with_shopify_apps_verifier(body: str, secret: str) -> None:
    app = ShopifyApp("ordersync-test", secret)
    for header in (sign(body.encode(), secret), sign(body.encode(), "other"), VECTOR["expected_base64_hmac_sha256"]):
        theirs = app.verify_webhook_req({"method": "POST", "headers": {"X-Shopify-Hmac-Sha256": header},
                                         "url": "https://hub.example/shopify/webhooks", "body": body})
        assert verify(body.encode(), header, [secret]) is theirs.ok


def test_read_headers_in_any_case() -> None:
    headers = {
        "x-shopify-topic": "orders/create",
        "X-SHOPIFY-HMAC-SHA256": "abc=",
        "X-Shopify-Shop-Domain": "Kestrel-B2B.myshopify.com",
        "X-Shopify-API-Version": "2026-07",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "X-Shopify-Triggered-At": "2026-12-05T09:30:00.877041743Z",
    }
    assert read_headers(headers) == WebhookHeaders(
        topic="orders/create", shop_domain="kestrel-b2b.myshopify.com",
        event_id="98880550-7158-44d4-b7cd-2c97c8a091b5", webhook_id="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        triggered_at=dt.datetime(2026, 12, 5, 9, 30, 0, 877041, tzinfo=dt.UTC), api_version="2026-07", hmac="abc=")


def test_read_headers_from_a_starlette_request_and_without_the_x_prefix() -> None:
    from starlette.datastructures import Headers

    headers = Headers(raw=[(b"shopify-topic", b"orders/paid"), (b"shopify-hmac-sha256", b"xyz="),
                           (b"shopify-triggered-at", b"2026-12-05T10:30:00+01:00")])
    read = read_headers(headers)
    assert (read.topic, read.hmac) == ("orders/paid", "xyz=")
    assert read.triggered_at == dt.datetime(2026, 12, 5, 9, 30, tzinfo=dt.UTC)


def test_missing_headers_are_empty() -> None:
    read = read_headers({"X-Shopify-Triggered-At": "yesterday"})
    assert read == WebhookHeaders(topic="", shop_domain="", event_id="", webhook_id="", triggered_at=None,
                                  api_version="", hmac="")
    assert not verify(b"{}", read.hmac, ["whsec_real"])


def test_the_doubles_signature_verifies() -> None:
    from tests.support.shopify import sign as double_sign

    body = b'{"id": 1}'
    assert verify(body, double_sign(body, "whsec_test"), ["whsec_test"])
