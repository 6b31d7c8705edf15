"""The store checks of ``ordersync doctor``: reachable, and its schema at the code's newest migration."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ordersync.config import Settings
from ordersync.doctor.checks import Check, fail, ok, one_line
from ordersync.store.db import Database, normalise_url

AREA = "store"


def check_store(settings: Settings) -> list[Check]:
    if settings.store is None:  # the embedded default: look without creating the data directory
        file = (settings.data_dir / "ordersync.db").resolve()
        if not file.exists():
            return [fail(AREA, f"the embedded store {file} does not exist yet",
                         "run `ordersync init` (with the same --config / --data-dir)")]
    url = make_url(normalise_url(settings.store_url))
    where = make_url(settings.store_url).render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return [fail(AREA, f"{where} does not exist yet", "run `ordersync init` (with the same --config)")]
    if settings.bus.startswith("nats://") and url.get_backend_name() == "sqlite":
        return [fail(AREA, f"{where} is SQLite, but bus = nats:// runs several processes on one store",
                     "set store = \"postgresql://...\"")]
    from ordersync.store.migrate import current, head

    db = Database(settings.store_url)
    try:
        have = current(db)
        want = head(db)
    except SQLAlchemyError as exc:
        return [fail(AREA, f"{where} is unreachable: {one_line(exc)}",
                     "check the address, the credentials and that the database server runs")]
    finally:
        db.dispose()
    if have is None:
        return [fail(AREA, f"{where} is reachable but has no ordersync schema", "run `ordersync init`")]
    if have != want:
        return [fail(AREA, f"{where} is at migration {have}, this ordersync needs {want}",
                     "run `ordersync init` (it upgrades the store; if the store is newer, upgrade ordersync)")]
    return [ok(AREA, f"{where} is reachable, migrations at head ({want})")]
