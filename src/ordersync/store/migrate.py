"""Alembic, driven from code: the migrations ship inside the package and run on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

if TYPE_CHECKING:
    from ordersync.store.db import Database


def alembic_config(db: Database) -> Config:
    from ordersync.store.db import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> str:
    cfg = alembic_config(db)
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()
    return current(db) or ""


def current(db: Database) -> str | None:
    with db.engine.connect() as conn:
        rev: str | None = MigrationContext.configure(conn).get_current_revision()
        return rev


def head(db: Database) -> str:
    heads = ScriptDirectory.from_config(alembic_config(db)).get_heads()
    return heads[0]
