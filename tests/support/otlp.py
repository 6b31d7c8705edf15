"""An in-memory OTLP/HTTP trace receiver: what a collector would get from the hub's exporters.

    with otlp.start() as receiver:        # endpoint: receiver.url (http://127.0.0.1:<port>/v1/traces)
        ...
        spans = receiver.spans()          # every span received, decoded from ExportTraceServiceRequest

Usable from ``python -m bench.x`` as well as from pytest. ``python -m tests.support.otlp --port N`` runs
one as a process of its own (the benchmarks' sink: decoding spans must not cost the measured process);
``GET /`` answers how many spans it received.
"""

from __future__ import annotations

import argparse
import gzip
import json
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: int
    service: str
    instance: str
    attributes: dict[str, Any] = field(default_factory=dict)


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which in ("string_value", "bool_value", "int_value", "double_value") else str(v)


class Receiver:
    """A running receiver (a thread); stop it with :meth:`stop` or use it as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self.requests = 0
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1/traces"

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def count(self) -> int:
        with self._lock:
            return len(self._spans)

    def take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        got = []
        for rs in request.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append(ReceivedSpan(
                        trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex() or None, name=s.name, kind=s.kind,
                        service=str(resource.get("service.name", "")),
                        instance=str(resource.get("service.instance.id", "")),
                        attributes={a.key: _value(a.value) for a in s.attributes}))
        with self._lock:
            self._spans.extend(got)
            self.requests += 1

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            try:
                receiver.take(body)
            except Exception as exc:  # a request we cannot decode: say so, as a collector would
                self._answer(400, str(exc).encode(), "text/plain")
                return
            self._answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

        def do_GET(self) -> None:
            self._answer(200, json.dumps({"spans": receiver.count(), "requests": receiver.requests}).encode(),
                         "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def start(host: str = "127.0.0.1", port: int = 0) -> Receiver:
    return Receiver(host, port)


def main() -> None:
    parser = argparse.ArgumentParser(description="an OTLP/HTTP trace receiver that counts what it gets")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    receiver = Receiver(port=args.port)
    print(receiver.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        receiver.stop()


if __name__ == "__main__":
    main()
