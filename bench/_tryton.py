"""The benchmarks' Tryton: a fresh copy of the seeded demo database on SQLite (a file, the default) or on
PostgreSQL (``--erp-db postgresql``: a database made from the PostgreSQL template on the local server,
dropped when the benchmark exits), served by a trytond of its own."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import uuid
from pathlib import Path

from ordersync.devkit.tryton.home import TrytonHome
from ordersync.devkit.tryton.server import TrytonServer
from ordersync.devkit.tryton.template import (
    create_database,
    create_pg_database,
    drop_pg_database,
    ensure_pg_template,
    ensure_template,
    pg_uri,
)

ERP_DBS = ("sqlite", "postgresql")
_made: list[str] = []


def add_erp_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--erp-db", choices=ERP_DBS, default="sqlite",
                        help="where the benchmark's Tryton keeps its database (default sqlite; postgresql: the "
                             "local server, ORDERSYNC_TRYTON_PG to point elsewhere; its template is built once, "
                             "~3 min)")


def ensure_erp_template(home: TrytonHome, erp_db: str) -> None:
    """Build the seeded template the runs copy (once per Tryton environment) before anything is timed."""
    if erp_db == "postgresql":
        ensure_pg_template("main", home=home)
    else:
        ensure_template("main", home=home)


def start_tryton(root: Path, home: TrytonHome, erp_db: str = "sqlite") -> TrytonServer:
    """A trytond serving a fresh copy of the demo database; its name is ``server.databases[0]``."""
    root.mkdir(parents=True)
    server, _ = serve_copies(root, home, ["main"], erp_db)
    return server.start()


def serve_copies(root: Path, home: TrytonHome, names: list[str], erp_db: str = "sqlite"
                 ) -> tuple[TrytonServer, dict[str, str]]:
    """One trytond (not started) serving a fresh copy of the demo database per name; name -> database."""
    if erp_db == "postgresql":
        run = uuid.uuid4().hex[:8]
        databases = {n: create_pg_database("main", f"ordersync_bench_{run}_{n}".lower(), home=home) for n in names}
        if not _made:
            atexit.register(_drop_made)
        _made.extend(databases.values())
        return TrytonServer(root, list(databases.values()), home=home, die_with_parent=True, verbose=False,
                            db_uri=pg_uri()), databases
    for name in names:
        create_database("main", root, name, home=home)
    return TrytonServer(root, names, home=home, die_with_parent=True, verbose=False), {n: n for n in names}


def _drop_made() -> None:
    for name in _made:
        with contextlib.suppress(Exception):
            drop_pg_database(name)
