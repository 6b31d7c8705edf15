"""TrytonClient's wire handling against scripted answers (no trytond needed: fast, no marker)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ordersync.adapters.erp.tryton.rpc import (
    TrytonAuthError,
    TrytonBusy,
    TrytonClient,
    TrytonProtocolError,
    TrytonRpcError,
    TrytonUnavailable,
    TrytonUserError,
    TrytonUserWarning,
    decode,
    encode,
)
from ordersync.devkit.tryton.server import free_port

Handler = Callable[[str, list[Any], httpx.Request], httpx.Response]
LOGIN_OK = [7, "sess-1", None]


def _ok(result: Any) -> httpx.Response:
    return httpx.Response(200, content=encode({"id": 1, "result": result}))


def _client(handler: Handler) -> tuple[TrytonClient, list[tuple[str, list[Any], httpx.Request]]]:
    seen: list[tuple[str, list[Any], httpx.Request]] = []

    def transport(request: httpx.Request) -> httpx.Response:
        body = decode(request.content)
        seen.append((body["method"], body["params"], request))
        if body["method"] == "common.db.login":
            return _ok(LOGIN_OK)
        if body["method"] == "model.res.user.get_preferences":
            return _ok({"company": 1, "language": "en"})
        return handler(body["method"], body["params"], request)

    client = TrytonClient("http://erp.test", "main", "bot", "pw", transport=httpx.MockTransport(transport))
    return client, seen


def test_values_round_trip_in_trytons_format() -> None:
    value = {
        "d": Decimal("8.10"),
        "day": dt.date(2025, 1, 31),
        "at": dt.datetime(2025, 1, 31, 8, 30, 0, 5),
        "t": dt.time(7, 15),
        "span": dt.timedelta(hours=2),
        "raw": b"\x00\xff",
        "n": [1, "x", None],
    }
    text = encode(value)
    assert json.loads(text)["d"] == {"__class__": "Decimal", "decimal": "8.10"}
    assert json.loads(text)["day"] == {"__class__": "date", "year": 2025, "month": 1, "day": 31}
    assert decode(text) == value
    aware = dt.datetime(2025, 1, 31, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert decode(encode(aware)) == dt.datetime(2025, 1, 31, 8, 30)


def test_call_sends_session_header_and_merged_context() -> None:
    client, seen = _client(
        lambda method, params, request: _ok([{"id": 3, "list_price": {"__class__": "Decimal", "decimal": "9.50"}}])
    )
    rows = client.call("product.product", "read", [3], ["list_price"], context={"locations": [5]})
    assert rows == [{"id": 3, "list_price": Decimal("9.50")}]
    method, params, request = seen[-1]
    assert method == "model.product.product.read"
    assert params == [[3], ["list_price"], {"company": 1, "language": "en", "locations": [5]}]
    assert request.url.path == "/main/rpc/"
    assert request.headers["Authorization"].startswith("Session ")
    assert client.user_id == 7


def test_user_warning_and_user_error_are_typed() -> None:
    answers = iter(
        [
            {"id": 1, "error": ["UserWarning", ["stock_quantity_warning_12", "Not enough stock", ""]]},
            {"id": 1, "error": ["UserError", ["The sale is not valid.", "Missing unit price", None]]},
            {"id": 1, "error": ["ConcurrencyException", "Record modified"]},
            {"id": 1, "error": ["division by zero", "Traceback ..."]},
        ]
    )
    client, _ = _client(lambda method, params, request: httpx.Response(200, content=encode(next(answers))))
    with pytest.raises(TrytonUserWarning) as warning:
        client.call("sale.sale", "quote", [1])
    assert (warning.value.name, warning.value.message) == ("stock_quantity_warning_12", "Not enough stock")
    with pytest.raises(TrytonUserError) as error:
        client.call("sale.sale", "quote", [1])
    assert error.value.description == "Missing unit price"
    with pytest.raises(TrytonRpcError) as other:
        client.call("sale.sale", "quote", [1])
    assert other.value.kind == "ConcurrencyException"
    with pytest.raises(TrytonRpcError):
        client.call("sale.sale", "quote", [1])


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_server_side_failures_are_unavailable(status: int) -> None:
    client, _ = _client(lambda method, params, request: httpx.Response(status, text="boom"))
    with pytest.raises(TrytonUnavailable) as caught:
        client.call("sale.sale", "search", [])
    assert caught.value.status == status


@pytest.mark.parametrize(
    "body",
    [b"<html>proxy error</html>", b'{"id": 1}', b"[1, 2]", b'{"id": 1, "result": {"__class__": "Decimal"}}'],
)
def test_garbage_is_a_protocol_error(body: bytes) -> None:
    client, _ = _client(lambda method, params, request: httpx.Response(200, content=body))
    with pytest.raises(TrytonProtocolError):
        client.call("sale.sale", "search", [])


def test_connection_refused_is_unavailable_with_known_outcome() -> None:
    client = TrytonClient(f"http://127.0.0.1:{free_port()}", "main", "bot", "pw", connect_timeout=2)
    with client, pytest.raises(TrytonUnavailable) as caught:
        client.call("sale.sale", "search", [])
    assert caught.value.outcome_unknown is False


def test_read_timeout_is_unavailable_with_unknown_outcome() -> None:
    def slow(method: str, params: list[Any], request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client, _ = _client(slow)
    with pytest.raises(TrytonUnavailable) as caught:
        client.call("sale.sale", "confirm", [1])
    assert caught.value.outcome_unknown is True


def test_expired_session_logs_in_again_once() -> None:
    statuses = iter([401, 200])
    client, seen = _client(lambda method, params, request: _ok(3) if next(statuses) == 200 else httpx.Response(401))
    assert client.call("sale.sale", "search_count", []) == 3
    assert [m for m, _, _ in seen].count("common.db.login") == 2
    assert client.logins == 2


def test_refused_login_is_an_auth_error() -> None:
    def transport(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401)

    client = TrytonClient("http://erp.test", "main", "bot", "bad", transport=httpx.MockTransport(transport))
    with pytest.raises(TrytonAuthError):
        client.login()


LOCKED = b"<html><title>503 Service Unavailable</title><p>could not obtain lock on relation &#34;x&#34;</p>"


def test_a_busy_database_is_asked_again_until_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tryton on PostgreSQL answers 503 when a concurrent transaction holds a lock it needs (after its
    own retries); the transaction was rolled back, so the client sends the same call again."""
    monkeypatch.setattr("ordersync.adapters.erp.tryton.rpc.time.sleep", lambda _s: None)
    answers = [httpx.Response(503, content=LOCKED), httpx.Response(503, content=LOCKED), _ok([42])]
    client, seen = _client(lambda method, params, request: answers.pop(0))
    assert client.call("sale.sale", "confirm", [42]) == [42]
    assert [m for m, _, _ in seen].count("model.sale.sale.confirm") == 3


def test_a_database_busy_for_too_long_is_busy_and_other_503s_are_not_retried(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ordersync.adapters.erp.tryton.rpc.time.sleep", lambda _s: None)
    client, seen = _client(lambda method, params, request: httpx.Response(503, content=LOCKED))
    with pytest.raises(TrytonBusy) as busy:
        client.call("sale.sale", "confirm", [42])
    assert not busy.value.outcome_unknown  # rolled back: nothing happened
    assert [m for m, _, _ in seen].count("model.sale.sale.confirm") == client.busy_attempts
    other, seen_other = _client(lambda method, params, request: httpx.Response(503, content=b"maintenance"))
    with pytest.raises(TrytonUnavailable) as down:
        other.call("sale.sale", "confirm", [42])
    assert not isinstance(down.value, TrytonBusy) and down.value.outcome_unknown
    assert [m for m, _, _ in seen_other].count("model.sale.sale.confirm") == 1
