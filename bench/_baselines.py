"""The two baselines of the intake capacity phase (``bench/intake.py``), as ASGI apps served by uvicorn
with the same settings as ``ordersync serve``:

- ``bare``: a FastAPI endpoint that validates the same order body as ``POST /v1/orders`` (the same
  pydantic model) and stores nothing. The web stack's ceiling on this machine.
- ``naive``: the same endpoint committing each order to SQLite in a transaction of its own (WAL,
  ``synchronous=NORMAL``: the hub's durability settings), one connection per server thread. Naive
  durable intake: what the hub's group commit has to beat.

    python -m uvicorn --factory bench._baselines:bare_app --port 8001
    BENCH_NAIVE_DB=/tmp/naive.db python -m uvicorn --factory bench._baselines:naive_app --port 8002
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from ordersync.api.orders import OrderIn


def _answer(order_id: str) -> JSONResponse:
    location = f"/v1/orders/{order_id}"
    return JSONResponse({"order_id": order_id, "status": "received", "location": location, "duplicate": False},
                        status_code=202, headers={"Location": location})


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/orders", status_code=202)
    async def submit(body: OrderIn) -> JSONResponse:
        return _answer(uuid.uuid4().hex)

    return app


def naive_app() -> FastAPI:
    path = os.environ["BENCH_NAIVE_DB"]
    local = threading.local()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, number TEXT UNIQUE, body TEXT)")

    def connection() -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/orders", status_code=202)
    def submit(body: OrderIn) -> JSONResponse:  # a plain def: FastAPI runs it in its thread pool
        order_id = uuid.uuid4().hex
        conn = connection()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO orders VALUES (?, ?, ?)", (order_id, body.external_order_number,
                                                            body.model_dump_json()))
        conn.execute("COMMIT")
        return _answer(order_id)

    return app
