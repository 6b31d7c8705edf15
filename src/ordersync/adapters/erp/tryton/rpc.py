"""A small synchronous JSON-RPC client for trytond (8.2), on httpx. Transport only, no business logic.

Wire format: ``POST /<db>/rpc/`` with ``{"id", "method", "params"}``; model methods are
``model.<model>.<method>`` with positional params ending in a context dict; the session travels as
``Authorization: Session base64(login:user_id:session)``. Decimal and date/time values travel as
``{"__class__": "Decimal", "decimal": "8.00"}`` and friends, in both directions; datetimes are naive
UTC on the wire (aware ones are converted before sending).

Errors are typed: :class:`TrytonUserWarning` (a business check the user may acknowledge),
:class:`TrytonUserError` (a business rule refused the call), :class:`TrytonUnavailable` (connection
error, timeout, 5xx: retry later), :class:`TrytonProtocolError` (an answer that is not JSON-RPC),
:class:`TrytonAuthError` (bad credentials) and :class:`TrytonRpcError` (anything else the server
raised, with its traceback). Private context keys (``_skip_warnings`` ...) are dropped by the server,
so a warning is acknowledged with :meth:`TrytonClient.skip_warning` before calling again.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from types import TracebackType
from typing import Any

import httpx

from ordersync.adapters.erp.guard import WireCounter
from ordersync.telemetry import tracing

__all__ = [
    "TrytonAuthError",
    "TrytonBusy",
    "TrytonClient",
    "TrytonError",
    "TrytonProtocolError",
    "TrytonRpcError",
    "TrytonUnavailable",
    "TrytonUserError",
    "TrytonUserWarning",
    "decode",
    "encode",
]


class TrytonError(Exception):
    """Base of every error raised by :class:`TrytonClient`."""


class TrytonUnavailable(TrytonError):
    """The server could not be reached or answered 5xx/429: try again later.

    ``outcome_unknown`` is True when the request may have been processed (a read timeout or a dropped
    connection after sending): the caller must reconcile (e.g. search the sale by reference).
    """

    def __init__(self, message: str, *, outcome_unknown: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown
        self.status = status


class TrytonBusy(TrytonUnavailable):
    """HTTP 503 because the database refused a lock or a serialisable transaction (Tryton on PostgreSQL
    under concurrent writes, after trytond's own retries): trytond rolled the transaction back, so
    nothing happened and the same call may be sent again at once."""


#: PostgreSQL's words for a refused lock or a serialisation conflict, as trytond passes them in its 503
_BUSY_MARKERS = ("could not obtain lock", "could not serialize", "deadlock detected")


class TrytonProtocolError(TrytonError):
    """The server answered something that is not a JSON-RPC response."""


class TrytonAuthError(TrytonError):
    """Login refused: wrong credentials or unknown database (throttled logins are TrytonUnavailable)."""


class TrytonRpcError(TrytonError):
    """Any other error the server reported: a refused method, a concurrency error, a server bug."""

    def __init__(self, kind: str, detail: Any) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class TrytonUserError(TrytonError):
    """A business rule refused the call (``UserError``, including access and validation errors)."""

    def __init__(self, message: str, description: str = "", domain: Any = None) -> None:
        super().__init__(f"{message} - {description}" if description else message)
        self.message = message
        self.description = description
        self.domain = domain


class TrytonUserWarning(TrytonError):
    """A warning the user may override (``UserWarning``): ``name`` identifies it for acknowledgment."""

    def __init__(self, name: str, message: str, description: str = "") -> None:
        super().__init__(f"{message} - {description}" if description else message)
        self.name = name
        self.message = message
        self.description = description


# -- value encoding ----------------------------------------------------------------------------------
def _encode_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:  # Tryton stores naive UTC
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, dt.time):
        return {
            "__class__": "time",
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.timedelta):
        return {"__class__": "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, bytes | bytearray):
        return {"__class__": "bytes", "base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"cannot send {type(value).__name__} to Tryton")


def encode(value: Any) -> str:
    """JSON text in Tryton's format (Decimal, date, datetime, time, timedelta, bytes)."""
    return json.dumps(value, default=_encode_default, separators=(",", ":"))


def _decode_object(obj: dict[str, Any]) -> Any:
    kind = obj.get("__class__")
    if kind is None:
        return obj
    try:
        if kind == "Decimal":
            return Decimal(obj["decimal"])
        if kind == "datetime":
            return dt.datetime(
                obj["year"],
                obj["month"],
                obj["day"],
                obj["hour"],
                obj["minute"],
                obj["second"],
                obj["microsecond"],
            )
        if kind == "date":
            return dt.date(obj["year"], obj["month"], obj["day"])
        if kind == "time":
            return dt.time(obj["hour"], obj["minute"], obj["second"], obj["microsecond"])
        if kind == "timedelta":
            return dt.timedelta(seconds=obj["seconds"])
        if kind == "bytes":
            return base64.b64decode(obj["base64"])
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise TrytonProtocolError(f"malformed {kind} value: {obj!r}") from exc
    return obj


def decode(text: str | bytes) -> Any:
    """Parse JSON text in Tryton's format back into Python values."""
    return json.loads(text, object_hook=_decode_object)


def _error(error: Any) -> TrytonError:
    """Map the ``error`` member of a response to a typed exception."""
    if isinstance(error, list) and error and isinstance(error[0], str):
        kind, args = error[0], error[1] if len(error) > 1 else None
        if kind == "UserWarning" and isinstance(args, list) and len(args) >= 2:
            return TrytonUserWarning(str(args[0]), str(args[1]), str(args[2] or "") if len(args) > 2 else "")
        if kind == "UserError" and isinstance(args, list) and args:
            return TrytonUserError(
                str(args[0]), str(args[1] or "") if len(args) > 1 else "", args[2] if len(args) > 2 else None
            )
        return TrytonRpcError(kind, args)
    raise TrytonProtocolError(f"malformed error member: {error!r}")


class TrytonClient:
    """A logged-in JSON-RPC session on one Tryton database. Thread-safe; re-logs in when expired.

    >>> with TrytonClient("http://127.0.0.1:8000", "main", "ordersync", "secret") as erp:
    ...     erp.call("product.product", "search_read", [], 0, 10, None, ["code"])
    """

    def __init__(
        self,
        url: str,
        database: str,
        login: str,
        password: str | Callable[[], str],
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        language: str = "en",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.login_name = login
        self._password = password
        self.language = language
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=connect_timeout), transport=transport)
        self._ids = itertools.count(1)
        self.wire = WireCounter()
        self._lock = threading.Lock()
        self._auth: str | None = None
        self.user_id: int | None = None
        self.logins = 0  # successful logins so far (more than one: the session expired meanwhile)
        self.context: dict[str, Any] = {}  # the user's preferences, sent with every call

    def __repr__(self) -> str:
        return f"TrytonClient({self.url!r}, {self.database!r}, login={self.login_name!r})"

    def __enter__(self) -> TrytonClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def rpc_url(self) -> str:
        """The database's JSON-RPC endpoint."""
        return f"{self.url}/{self.database}/rpc/"

    def close(self) -> None:
        """Close the HTTP connections (the server-side session simply expires)."""
        self._http.close()

    # -- session -------------------------------------------------------------------------------------
    def login(self) -> int:
        """Open a session (``common.db.login``), load the user's context; return the user id."""
        with self._lock:
            status, body = self._post(
                self.rpc_url,
                "common.db.login",
                [self.login_name, {"password": self._password if isinstance(self._password, str)
                                   else self._password()}, self.language],
                None,
            )
            if status in (401, 403, 404):
                raise TrytonAuthError(f"login of {self.login_name!r} on {self.database!r} refused (HTTP {status})")
            result = self._result(status, body)
            if not (isinstance(result, list) and len(result) >= 2 and isinstance(result[0], int)):
                raise TrytonProtocolError(f"unexpected login answer: {result!r}")
            user_id, session = result[0], str(result[1])
            token = base64.b64encode(f"{self.login_name}:{user_id}:{session}".encode()).decode("ascii")
            self._auth = f"Session {token}"
            self.user_id = user_id
            self.logins += 1
        preferences = self.request("model.res.user.get_preferences", [True, {}])
        if not isinstance(preferences, dict):
            raise TrytonProtocolError(f"unexpected preferences: {preferences!r}")
        self.context = preferences
        return user_id

    def logout(self) -> None:
        """End the server-side session."""
        if self._auth is not None:
            self.request("common.db.logout", [], relogin=False)
            self._auth = None

    # -- calls ---------------------------------------------------------------------------------------
    def call(self, model: str, method: str, *args: Any, context: dict[str, Any] | None = None) -> Any:
        """Call ``model.<model>.<method>(*args, context)``; ``context`` is merged over the user's."""
        if self._auth is None:
            self.login()  # first: the user's context must be known before the params are built
        return self.request(f"model.{model}.{method}", [*args, {**self.context, **(context or {})}])

    def request(self, method: str, params: list[Any], *, relogin: bool = True) -> Any:
        """Send one raw JSON-RPC request on the database; log in first if needed."""
        if self._auth is None:
            self.login()
        auth = self._auth
        status, body = self._post_when_free(method, params, auth)
        if status == 401 and relogin:  # session expired or revoked: one fresh login, one retry
            with self._lock:
                if self._auth == auth:
                    self._auth = None
            if self._auth is None:
                self.login()
            status, body = self._post_when_free(method, params, self._auth)
        return self._result(status, body)

    #: sends of one call while the database answers "busy" (:class:`TrytonBusy`), with jittered waits
    #: doubling from 50 ms (about 6 s in all); then the caller sees the TrytonBusy
    busy_attempts = 8

    def _post_when_free(self, method: str, params: list[Any], auth: str | None) -> tuple[int, Any]:
        for attempt in range(self.busy_attempts):
            try:
                return self._post(self.rpc_url, method, params, auth)
            except TrytonBusy:
                if attempt == self.busy_attempts - 1:
                    raise
                time.sleep(0.05 * 2**attempt * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")  # pragma: no cover

    def skip_warning(self, name: str, *, always: bool = False) -> None:
        """Acknowledge the warning ``name`` for this user (``res.user.warning.skip``): the same call then
        passes once (or always). Tryton clients do this when the user answers "yes" to a warning."""
        self.call("res.user.warning", "skip", name, always)

    def server_version(self) -> str:
        """``common.server.version`` on the server-level endpoint (no login needed)."""
        status, body = self._post(f"{self.url}/rpc/", "common.server.version", [], None)
        return str(self._result(status, body))

    def bus_url(self) -> str:
        """Tryton's bus of this database (long polling; ``[bus] allow_subscribe`` must be on)."""
        return f"{self.url}/{self.database}/bus"

    def subscribe(self, http: httpx.Client, channels: list[str], last_message: str | None) -> dict[str, Any]:
        """One long poll of Tryton's bus with this session: the first message on ``channels`` after
        ``last_message`` (the bus keeps recent messages for a few minutes), or ``{"message": None}`` when
        the server's ``long_polling_timeout`` passed first. ``http`` is the caller's client (a long poll
        holds its connection for minutes). Counted in the lane ``changes``."""
        if self._auth is None:
            self.login()
        for attempt in range(2):
            auth = self._auth
            self.wire.count("changes")
            try:
                body = encode({"channels": channels, "last_message": last_message})
                response = http.post(self.bus_url(), content=body,
                                     headers={"Content-Type": "application/json", "Authorization": auth or ""})
            except httpx.ReadTimeout:
                return {"message": None, "channel": None}  # the server keeps longer than we wait: ask again
            except httpx.TransportError as exc:
                raise TrytonUnavailable(f"bus of {self.database} on {self.url}: {exc!r}") from exc
            if response.status_code in (401, 403) and attempt == 0:  # the session expired: log in, once
                with self._lock:
                    if self._auth == auth:
                        self._auth = None
                self.login()
                continue
            if response.status_code != 200:
                raise TrytonUnavailable(f"bus of {self.database}: HTTP {response.status_code} {response.text[:200]}",
                                        status=response.status_code)
            try:
                answer = decode(response.content)
            except ValueError as exc:
                raise TrytonProtocolError(f"bus answer is not JSON: {response.text[:200]!r}") from exc
            if not isinstance(answer, dict):
                raise TrytonProtocolError(f"unexpected bus answer: {answer!r}")
            return answer
        raise TrytonAuthError(f"the bus of {self.database} refused the session after a fresh login")

    # -- HTTP ----------------------------------------------------------------------------------------
    def _post(self, url: str, method: str, params: list[Any], auth: str | None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = auth
        payload = encode({"id": next(self._ids), "method": method, "params": params})
        self.wire.count()
        with tracing.child_span(f"tryton {method}", attributes={"rpc.system": "jsonrpc", "rpc.method": method,
                                                                "db.namespace": self.database}) as span:
            status, body = self._post_http(url, method, payload, headers)
            if span is not None:
                span.set_attribute("http.response.status_code", status)
            return status, body

    def _post_http(self, url: str, method: str, payload: str, headers: dict[str, str]) -> tuple[int, Any]:
        try:
            response = self._http.post(url, content=payload, headers=headers)
        except httpx.ConnectError as exc:
            raise TrytonUnavailable(f"cannot connect to {url}: {exc}") from exc
        except httpx.ConnectTimeout as exc:
            raise TrytonUnavailable(f"connect to {url} timed out") from exc
        except httpx.TimeoutException as exc:
            raise TrytonUnavailable(f"{method} on {url} timed out: {exc!r}", outcome_unknown=True) from exc
        except httpx.TransportError as exc:
            raise TrytonUnavailable(f"{method} on {url} failed: {exc!r}", outcome_unknown=True) from exc
        status = response.status_code
        if status == 503 and any(marker in response.text for marker in _BUSY_MARKERS):
            raise TrytonBusy(f"{method} on {url}: the database is busy (HTTP 503 {response.text[-160:]!r})",
                             status=status)
        if status >= 500 or status == 429:
            raise TrytonUnavailable(
                f"{method} on {url}: HTTP {status} {response.text[:200]}",
                outcome_unknown=status >= 500,
                status=status,
            )
        if status != 200:
            return status, response.text
        try:
            return status, decode(response.content)
        except ValueError as exc:
            raise TrytonProtocolError(f"{method}: answer is not JSON: {response.text[:200]!r}") from exc

    @staticmethod
    def _result(status: int, body: Any) -> Any:
        if status != 200:
            if status == 401:
                raise TrytonAuthError("not logged in (HTTP 401)")
            raise TrytonRpcError(f"HTTP {status}", str(body)[:500])
        if not isinstance(body, dict) or not ({"result", "error"} & body.keys()):
            raise TrytonProtocolError(f"not a JSON-RPC response: {str(body)[:200]!r}")
        if body.get("error") is not None:
            raise _error(body["error"])
        return body.get("result")
