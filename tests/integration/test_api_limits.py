"""Bad input at the edge (``api/limits.py`` and the problem handlers): oversized bodies (declared and
streamed), deep JSON nesting, invalid JSON and wrong types all answer 4xx ``application/problem+json``
and leave nothing in the store.

Streamed bodies are driven through the ASGI interface directly: the test client joins a chunked body
into one message, so it could not show that the limit stops reading part-way through the stream.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.api.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_JSON_DEPTH, body_has_nul, json_too_deep
from ordersync.api.params import IsoAwareDateTime, IsoDate, IsoDateTime
from ordersync.server import create_app
from tests.support.hub import api_key, erp_hub

MiB = 1024 * 1024
BODY = {"external_order_number": "LIM-1", "account_id": "C-1001", "ship_to_id": "RIS-DUS",
        "lines": [{"line_no": 1, "sku": "BRG-6204-2RS", "quantity": "10"}]}
PROBLEM = "application/problem+json"
TABLES = ("orders", "outbox", "idempotency_keys")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Any]:
    h = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")})
    yield h
    h.close()


@pytest.fixture
def app(hub: Any) -> FastAPI:
    return create_app(hub)


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def token(hub: Any) -> str:
    return api_key(hub, "orders:write", "orders:read")


def headers(token: str, key: str = "k", **extra: str) -> dict[str, str]:
    """Every request carries an Idempotency-Key, so a leak into ``idempotency_keys`` would show."""
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Idempotency-Key": key,
            **extra}


def counts(hub: Any) -> dict[str, int]:
    with hub.db.read() as conn:
        return {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one() for t in TABLES}


def assert_problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"]
    return body


def nested(depth: int) -> bytes:
    """An order whose ``notes`` nest arrays so that the whole document is ``depth`` levels deep."""
    inner = depth - 1  # the order object is the first level
    return b'{"external_order_number":"D","lines":[],"notes":' + b"[" * inner + b"]" * inner + b"}"


def padded(size: int) -> bytes:
    """A valid order of exactly ``size`` bytes (whitespace after the JSON)."""
    raw = json.dumps(BODY).encode()
    return raw + b" " * (size - len(raw))


def asgi_post(app: FastAPI, path: str, chunks: list[bytes], headers: dict[str, str]) -> tuple[int, bytes, int]:
    """POST ``chunks`` as separate ``http.request`` messages (a chunked upload as the server hands it
    over); returns the status, the body and how many chunks the app read before answering."""
    read = 0
    status = 0
    answer = b""

    async def run() -> None:
        nonlocal status, answer
        done = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal read
            if read == len(chunks):
                await done.wait()
                return {"type": "http.disconnect"}
            read += 1
            return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, answer
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                answer += message.get("body", b"")
                if not message.get("more_body", False):
                    done.set()

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
                 "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
                 "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
        await app(scope, receive, send)

    asyncio.run(run())
    return status, answer, read


def test_the_defaults_are_one_mebibyte_and_32_levels() -> None:
    assert DEFAULT_MAX_BODY_BYTES == MiB and DEFAULT_MAX_JSON_DEPTH == 32


def test_a_body_over_the_limit_by_content_length_is_refused_with_413_and_stores_nothing(
    hub: Any, client: TestClient, token: str
) -> None:
    before = counts(hub)
    r = client.post("/v1/orders", content=padded(MiB + 1), headers=headers(token))
    body = assert_problem(r, 413)
    assert body["type"].endswith("/body-too-large") and str(MiB) in body["detail"]
    assert body["instance"] == "/v1/orders"
    # also before authentication and on a method without a body
    assert_problem(client.post("/v1/orders", content=b"x" * (MiB + 1)), 413)
    assert_problem(client.request("GET", "/v1/orders/x", content=b"x" * (MiB + 1), headers=headers(token)), 413)
    assert counts(hub) == before == dict.fromkeys(TABLES, 0)
    # exactly at the limit is fine: the limit is on the body, not on a round number near it
    ok = client.post("/v1/orders", content=padded(MiB), headers=headers(token, "k2"))
    assert ok.status_code == 202, ok.text


def test_a_streamed_body_is_counted_and_refused_as_soon_as_it_passes_the_limit(
    hub: Any, app: FastAPI, token: str
) -> None:
    chunk = b" " * (256 * 1024)
    chunks = [json.dumps(BODY).encode()] + [chunk] * 40  # ~10 MiB if anyone read it all
    hdrs = headers(token, **{"Transfer-Encoding": "chunked"})
    status, answer, read = asgi_post(app, "/v1/orders", chunks, hdrs)
    assert status == 413 and json.loads(answer)["status"] == 413
    assert read == 5  # 4 x 256 KiB plus the order passes 1 MiB at the fifth chunk; the rest is never read
    assert counts(hub) == dict.fromkeys(TABLES, 0)
    # the same order streamed in pieces that stay under the limit is accepted whole
    raw = json.dumps({**BODY, "external_order_number": "LIM-STREAM"}).encode()
    status, answer, read = asgi_post(app, "/v1/orders", [raw[i:i + 7] for i in range(0, len(raw), 7)], hdrs)
    assert status == 202, answer
    assert counts(hub)["orders"] == 1


def test_a_chunked_request_without_content_length_is_limited_too(client: TestClient, token: str, hub: Any) -> None:
    def stream() -> Iterator[bytes]:
        for _ in range(5):
            yield b" " * (256 * 1024)

    r = client.post("/v1/orders", content=stream(), headers=headers(token))
    assert_problem(r, 413)
    assert counts(hub) == dict.fromkeys(TABLES, 0)


def test_the_limit_is_configurable(hub: Any, token: str) -> None:
    small = TestClient(create_app(hub, max_body_bytes=200, max_json_depth=4), raise_server_exceptions=False)
    assert_problem(small.post("/v1/orders", content=padded(201), headers=headers(token)), 413)
    assert small.post("/v1/orders", content=padded(200), headers=headers(token)).status_code == 202
    assert_problem(small.post("/v1/orders", content=nested(5), headers=headers(token, "k2")), 400)
    with pytest.raises(ValueError):
        create_app(hub, max_json_depth=0)


def test_an_invalid_content_length_is_refused(hub: Any, app: FastAPI, token: str) -> None:
    status, answer, _ = asgi_post(app, "/v1/orders", [json.dumps(BODY).encode()],
                                  {**headers(token), "Content-Length": "12abc"})
    assert status == 400 and json.loads(answer)["title"] == "Invalid Content-Length"
    assert counts(hub) == dict.fromkeys(TABLES, 0)


def test_json_nested_deeper_than_the_limit_is_refused_with_400_before_parsing(
    hub: Any, client: TestClient, token: str
) -> None:
    deep = assert_problem(client.post("/v1/orders", content=nested(33), headers=headers(token)), 400)
    assert deep["type"].endswith("/too-deep") and "32" in deep["detail"]
    # at the limit it reaches the model, which refuses the nested notes as the wrong type
    assert_problem(client.post("/v1/orders", content=nested(32), headers=headers(token, "k2")), 422)
    # a hostile body (half a mebibyte of brackets) is refused just the same, without a recursion error
    assert_problem(client.post("/v1/orders", content=b"[" * (MiB // 2), headers=headers(token, "k3")), 400)
    # JSON by default when there is no content type (FastAPI parses it), and for +json types
    for content_type in ("", "application/merge-patch+json", "application/json; charset=utf-8"):
        r = client.post("/v1/orders", content=nested(40),
                        headers={**headers(token, "k4"), "Content-Type": content_type})
        assert_problem(r, 400)
    assert counts(hub) == dict.fromkeys(TABLES, 0)


def test_brackets_inside_strings_do_not_count_as_nesting(hub: Any, client: TestClient, token: str) -> None:
    notes = '[{"' * 300 + '\\"]}' * 300
    r = client.post("/v1/orders", json={**BODY, "notes": notes[:2000]}, headers=headers(token))
    assert r.status_code == 202, r.text
    assert not json_too_deep(json.dumps({"a": ["\\", "[[[[[", {"b": "\\\"]]]]"}]}).encode(), 3)
    escaped = rb'{"a": ["\\", [[["]]]]]"]]]]}'  # an escaped backslash ends the string before the quote
    assert json_too_deep(escaped, 4) and not json_too_deep(escaped, 5)


def test_a_non_json_body_is_not_scanned_and_is_refused_by_the_route(hub: Any, client: TestClient,
                                                                    token: str) -> None:
    r = client.post("/v1/orders", content=nested(40), headers=headers(token, **{"Content-Type": "text/plain"}))
    assert_problem(r, 422)
    assert counts(hub) == dict.fromkeys(TABLES, 0)


@pytest.mark.parametrize("raw", [
    b"{not json", b'{"external_order_number": "X",', b"", b"null", b"[]", b'"order"', b"\xff\xfe\x00",
    b'{"external_order_number": "X", "lines": [{"line_no": 1, "sku": "A", "quantity": NaN}]}',
], ids=["syntax", "truncated", "empty", "null", "array", "string", "not-utf8", "nan"])
def test_invalid_json_is_a_problem_not_a_server_error(hub: Any, client: TestClient, token: str, raw: bytes) -> None:
    r = client.post("/v1/orders", content=raw, headers=headers(token))
    assert 400 <= r.status_code < 500 and r.headers["content-type"] == PROBLEM, (r.status_code, r.text)
    assert r.json()["status"] == r.status_code
    assert counts(hub) == dict.fromkeys(TABLES, 0)


@pytest.mark.parametrize("change", [
    {"external_order_number": 42},
    {"account_id": ["C-1001"]},
    {"lines": {"line_no": 1}},
    {"lines": [{"line_no": "first", "sku": "BRG-6204-2RS", "quantity": "10"}]},
    {"lines": [{"line_no": 1, "sku": "BRG-6204-2RS", "quantity": "ten"}]},
    {"lines": [{"line_no": 1, "sku": "BRG-6204-2RS", "quantity": True}]},
    {"lines": [{"line_no": 1, "sku": {"$ne": ""}, "quantity": "1"}]},
    {"requested_date": "next tuesday"},
    {"requested_date": 0},  # not a Unix timestamp (1970-01-01)
    {"requested_date": "20260301"},
    {"currency": 978},
    {"notes": None},
], ids=lambda c: f"{next(iter(c))}={next(iter(c.values()))!r}")
def test_wrong_types_are_422_problems_naming_the_field(hub: Any, client: TestClient, token: str,
                                                      change: dict[str, Any]) -> None:
    body = assert_problem(client.post("/v1/orders", json={**BODY, **change}, headers=headers(token)), 422)
    field = next(iter(change))
    assert any(field in e["location"] for e in body["errors"]), body["errors"]
    assert counts(hub) == dict.fromkeys(TABLES, 0)


def test_bodies_on_reads_and_unknown_paths_pass_through_untouched(client: TestClient, token: str) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    r = client.request("GET", "/v1/orders/none", content=b"[" * 100, headers=headers(token))
    assert_problem(r, 404)  # not scanned: GET carries no meaningful body
    assert client.post("/nowhere", content=b"{}").status_code == 404


def test_a_wrong_method_is_a_405_problem_naming_every_method_of_the_path(client: TestClient) -> None:
    # GET and POST /v1/orders are declared in different routers; Starlette alone would name only one
    r = client.request("DELETE", "/v1/orders")
    assert_problem(r, 405)
    assert {m.strip() for m in r.headers["Allow"].split(",")} >= {"GET", "POST"}


@pytest.fixture
def any_store_client(tmp_path: Path, store_url: str) -> Iterator[tuple[Any, TestClient]]:
    h = erp_hub(tmp_path, {"main": MemoryErp.from_profile("main", name="main")}, store=store_url)
    yield h, TestClient(create_app(h), raise_server_exceptions=False)
    h.close()


@pytest.mark.parametrize("where", ["json string", "json key", "query", "path", "raw body"])
def test_a_nul_character_anywhere_is_a_400_problem_on_every_store(
        any_store_client: tuple[Any, TestClient], where: str) -> None:
    """PostgreSQL text cannot hold NUL (SQLite can): refused at the edge, the same on both stores."""
    hub, client = any_store_client
    token = api_key(hub, "orders:write", "orders:read")
    if where == "json string":
        r = client.post("/v1/orders", content=json.dumps({**BODY, "external_order_number": "LIM\u0000-1"}),
                        headers=headers(token))
    elif where == "json key":
        r = client.post("/v1/orders", content=json.dumps({**BODY, "x\u0000": 1}), headers=headers(token))
    elif where == "query":
        r = client.get("/v1/orders?external_order_number=PO%00-1", headers=headers(token))
    elif where == "path":
        r = client.get("/v1/orders/abc%00def", headers=headers(token))
    else:
        r = client.post("/v1/orders", content=b'{"external_order_number": "LIM\x00-1"}', headers=headers(token))
    assert "NUL" in assert_problem(r, 400)["detail"]
    assert counts(hub) == dict.fromkeys(TABLES, 0)


def test_an_escaped_backslash_before_u0000_is_not_a_nul(client: TestClient, token: str, hub: Any) -> None:
    r = client.post("/v1/orders", content=json.dumps({**BODY, "external_order_number": "LIM\\u0000"}),
                    headers=headers(token))
    assert r.status_code == 202, r.text


@pytest.mark.parametrize(("body", "content_type", "nul"), [
    (b'{"a": "x\\u0000"}', b"application/json", True),
    (b'{"a": "x\\\\u0000"}', b"application/json", False),  # an escaped backslash, then the text u0000
    (b'{"a": "x\\\\\\u0000"}', b"application/vnd.x+json; charset=utf-8", True),
    (b"a=x%00y", b"application/x-www-form-urlencoded", True),
    (b"a=x%2500y", b"application/x-www-form-urlencoded", False),
    (b"ISA*00\x00~", b"text/plain", True),
    (b"\x00\x01binary", b"application/octet-stream", False),  # binary bodies are not scanned
    (b"--b\r\n\x00\r\n--b--", b"multipart/form-data; boundary=b", False),
])
def test_nul_detection_by_content_type(body: bytes, content_type: bytes, nul: bool) -> None:
    assert body_has_nul(body, content_type) is nul


def test_iso_input_types_take_text_and_objects_but_no_timestamps() -> None:
    aware, date, when = TypeAdapter(IsoAwareDateTime), TypeAdapter(IsoDate), TypeAdapter(IsoDateTime)
    assert aware.validate_python("2026-03-01T08:00:00Z") == dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)
    assert date.validate_python(dt.date(2026, 3, 1)) == date.validate_python("2026-03-01")
    assert when.validate_python("2026-03-01 08:00") == dt.datetime(2026, 3, 1, 8)
    for adapter, value in ((aware, 0), (aware, 1.7e9), (aware, "2026-03-01T08:00:00"), (date, 0),
                           (date, "2026-3-1"), (when, 1767225600), (when, "1767225600")):
        with pytest.raises(ValidationError):
            adapter.validate_python(value)
