"""``ordersync erp serve``: the bundled Tryton (8.2, the demo manufacturer's data) as a service of its own,
for the demo's scale-out form and for trials, on a fixed address that configuration files can name.

What it is not: Tryton's production server. trytond's built-in server is Werkzeug's development server
(one process, no TLS). A production Tryton runs behind a WSGI server and a proxy as Tryton's own
documentation describes; the hub talks to it the same way (``[[erp]] kind = "tryton"``).

The database is made from the seeded template on the first start (SQLite: ``<data dir>/<database>.sqlite``;
PostgreSQL: a database of that name on ``--pg-uri``) and kept afterwards: a restart serves what the ERP
holds. ``fresh`` makes it again from the template.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ordersync.devkit import demo_data
from ordersync.devkit.tryton.home import TrytonHome
from ordersync.devkit.tryton.server import TrytonServer
from ordersync.devkit.tryton.template import (
    _pg_admin,
    _pg_exists,
    create_database,
    create_pg_database,
    ensure_pg_template,
    ensure_template,
    pg_uri,
)

NOT_FOR_PRODUCTION = ("this is trytond's built-in server (Werkzeug's development server), bundled for the demo "
                      "and trials; run a production Tryton behind a WSGI server as Tryton's documentation says")


@dataclass(frozen=True)
class ServeOptions:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8010
    database: str = "main"
    backend: str = "sqlite"  # or postgresql
    pg_uri: str | None = None  # trytond's uri form, e.g. postgresql://postgres@127.0.0.1:5432/
    fresh: bool = False


def prepare(opts: ServeOptions, say: Callable[[str], None]) -> TrytonServer:
    """The server for ``opts``, its database made from the template when missing (or ``fresh``)."""
    home = TrytonHome().ensure()
    data_dir = opts.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if opts.backend == "postgresql":
        uri = opts.pg_uri or pg_uri()
        uri = uri if uri.endswith("/") else uri + "/"
        with _pg_admin(uri) as conn:
            exists = _pg_exists(conn, opts.database)
        if opts.fresh or not exists:
            say(f"making database {opts.database} on PostgreSQL from the demo template (the first time: ~2 min)")
            ensure_pg_template("main", home=home, uri=uri)
            create_pg_database("main", opts.database, home=home, uri=uri, overwrite=True)
        return TrytonServer(data_dir, [opts.database], port=opts.port, host=opts.host, home=home, verbose=False,
                            die_with_parent=True, db_uri=uri, start_timeout=120)
    target = data_dir / f"{opts.database}.sqlite"
    if opts.fresh or not target.exists():
        say(f"making {target} from the demo template (the first time: ~3 min)")
        ensure_template("main", home=home)
        create_database("main", data_dir, opts.database, home=home, overwrite=True)
    return TrytonServer(data_dir, [opts.database], port=opts.port, host=opts.host, home=home, verbose=False,
                        die_with_parent=True, start_timeout=120)


def serve(opts: ServeOptions, stop: threading.Event, say: Callable[[str], None]) -> int:
    """Run the server until ``stop`` is set (or it exits by itself: 1, with its log's tail)."""
    server = prepare(opts, say)
    server.start()
    user = demo_data.INTEGRATION_USER
    say(f"Tryton serving database {opts.database!r} at {server.url} (JSON-RPC: {server.url}/{opts.database}/rpc/)")
    say(f"the hub's [[erp]]: url = \"{server.url}\", database = \"{opts.database}\", login = \"{user['login']}\", "
        "password_env naming a variable that holds the demo integration user's password (docs/scale-out.md)")
    say(f"log: {server.log_path}")
    say(f"note: {NOT_FOR_PRODUCTION}")
    try:
        while not stop.wait(1.0):
            if not server.is_running():
                say(f"trytond exited by itself:\n{server.log_tail(20)}")
                return 1
    finally:
        server.stop()
    say("Tryton stopped")
    return 0
