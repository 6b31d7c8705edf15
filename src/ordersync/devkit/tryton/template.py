"""Template databases: build a seeded Tryton SQLite file once, then copy it for each run (~ms).

Two layers, both cached in ``<cache>/tryton/templates`` and built under a file lock:

* ``base-<hash>.sqlite``: modules activated, nothing else (the slow part, ~60 s). Keyed by
  requirements.txt and scripts/provision.py.
* ``<profile>-<hash>.sqlite``: a copy of the base seeded with one demo_data profile (~20 s). Keyed by
  requirements.txt, scripts/provision.py and demo_data.py.

A template is written in a private build directory, checkpointed (no ``-wal`` left), then moved into
place atomically; nothing opens it afterwards, so copying it never races a writer.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from ordersync.devkit import demo_data
from ordersync.devkit.tryton.home import PACKAGE_DIR, TrytonHome, content_hash, file_lock, log, subprocess_env

PROVISION_SCRIPT: Final = PACKAGE_DIR / "scripts" / "provision.py"
DEMO_DATA_FILE: Final = PACKAGE_DIR.parent / "demo_data.py"
_SIDE_FILES: Final = ("-wal", "-shm")


def templates_dir(home: TrytonHome) -> Path:
    """Where templates of this Tryton environment's cache live."""
    return home.cache / "templates"


def base_template_path(home: TrytonHome) -> Path:
    """Path of the modules-activated, unseeded template (may not exist yet)."""
    key = content_hash(*home.sources, PROVISION_SCRIPT)
    return templates_dir(home) / f"base-{key}.sqlite"


def template_path(profile: str, home: TrytonHome) -> Path:
    """Path of a profile's seeded template (may not exist yet)."""
    demo_data.profile(profile)  # unknown profile: KeyError with the known ones
    key = content_hash(*home.sources, PROVISION_SCRIPT, DEMO_DATA_FILE)
    return templates_dir(home) / f"{profile}-{key}.sqlite"


def checkpoint(path: Path) -> None:
    """Fold any write-ahead log into the main file so the ``.sqlite`` alone is the whole database."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for suffix in _SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists() and side.stat().st_size == 0:
            side.unlink()


def _provision(home: TrytonHome, *args: str) -> None:
    env = subprocess_env()
    cmd = [str(home.python), str(PROVISION_SCRIPT), *args]
    result = subprocess.run(cmd, stdin=subprocess.DEVNULL, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"Tryton provisioning failed ({result.returncode}): {' '.join(cmd)}")


def _build_once(target: Path, name: str, build: Callable[[Path], None]) -> Path:
    """Run ``build(build_dir)`` (which must create ``build_dir/<name>.sqlite``) unless ``target`` exists."""
    if target.is_file():
        return target
    with file_lock(target.parent / "locks" / f"{target.stem}.lock"):
        if target.is_file():  # built by another process while we waited
            return target
        for stale in target.parent.glob(f".build-{name}-*"):  # left by a killed build; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f".build-{name}-", dir=target.parent) as tmp:
            build(Path(tmp))
            built = Path(tmp) / f"{name}.sqlite"
            checkpoint(built)
            os.replace(built, target)
        log(f"template {target.name} built in {time.monotonic() - started:.1f} s")
    return target


def ensure_base_template(home: TrytonHome | None = None) -> Path:
    """The modules-activated template, built on first use (~60 s)."""
    home = (home or TrytonHome()).ensure()
    target = base_template_path(home)
    target.parent.mkdir(parents=True, exist_ok=True)

    def build(tmp: Path) -> None:
        log("activating Tryton modules into a fresh database (one time, takes ~60 s)")
        _provision(home, "activate", "--db-dir", str(tmp), "--name", "base")

    return _build_once(target, "base", build)


def ensure_template(profile: str, *, home: TrytonHome | None = None) -> Path:
    """The seeded template of ``profile`` (``main`` or ``acquired``), built on first use."""
    home = (home or TrytonHome()).ensure()
    target = template_path(profile, home)
    if target.is_file():
        return target
    base = ensure_base_template(home)

    def build(tmp: Path) -> None:
        log(f"seeding the {profile!r} demo profile (one time, takes ~20 s)")
        shutil.copyfile(base, tmp / f"{profile}.sqlite")
        _provision(
            home,
            "seed",
            "--db-dir",
            str(tmp),
            "--name",
            profile,
            "--data",
            str(DEMO_DATA_FILE),
            "--profile",
            profile,
        )

    return _build_once(target, profile, build)


def create_database(
    profile: str,
    data_dir: Path,
    name: str | None = None,
    *,
    home: TrytonHome | None = None,
    overwrite: bool = False,
) -> Path:
    """Copy the profile's template to ``data_dir/<name>.sqlite`` (name defaults to the profile's)."""
    template = ensure_template(profile, home=home)
    name = name or demo_data.profile(profile)["database"]
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / f"{name}.sqlite"
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists (pass overwrite=True to replace it; stop its server first)")
    started = time.monotonic()
    for suffix in _SIDE_FILES:  # a stale log of the replaced database must not be replayed into the copy
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(template, partial)
    wal = template.with_name(template.name + "-wal")
    if wal.exists():  # never expected after checkpoint(); copied so the copy is complete regardless
        shutil.copyfile(wal, target.with_name(target.name + "-wal"))
    os.replace(partial, target)
    log(f"database {target} created from {template.name} in {(time.monotonic() - started) * 1000:.0f} ms")
    return target


# -- Tryton on PostgreSQL ---------------------------------------------------------------------------------
#: the PostgreSQL server demo Tryton databases go to with ``--erp-db postgresql`` (override with
#: ORDERSYNC_TRYTON_PG): trytond's own uri form, the database name is added by trytond
DEFAULT_PG_URI: Final = "postgresql://postgres@127.0.0.1:5432/"


def pg_uri() -> str:
    """trytond's ``[database] uri`` for PostgreSQL (no database name: trytond adds it per request)."""
    uri = os.environ.get("ORDERSYNC_TRYTON_PG", DEFAULT_PG_URI)
    return uri if uri.endswith("/") else uri + "/"


def _pg_admin(uri: str) -> Any:
    import psycopg

    return psycopg.connect(uri + "postgres", autocommit=True, connect_timeout=10)


def _pg_exists(conn: Any, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def pg_template_name(profile: str, home: TrytonHome) -> str:
    """The PostgreSQL database holding ``profile``'s seeded template (keyed like the SQLite one)."""
    return "ordersync_tpl_" + template_path(profile, home).stem.replace("-", "_")


def ensure_pg_template(profile: str, *, home: TrytonHome | None = None, uri: str | None = None) -> str:
    """The seeded template of ``profile`` as a PostgreSQL database, built on first use (~80 s): modules
    activated and the profile seeded in a build database that is renamed into place once complete (a
    killed build never passes for a template)."""
    home = (home or TrytonHome()).ensure()
    uri = uri or pg_uri()
    name = pg_template_name(profile, home)
    with _pg_admin(uri) as conn:
        if _pg_exists(conn, name):
            return name
    lock = templates_dir(home) / "locks" / f"{name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(lock):
        building = f"{name}_build"
        with _pg_admin(uri) as conn:
            if _pg_exists(conn, name):
                return name
            conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{building}" ENCODING \'UTF8\' TEMPLATE template0')
        started = time.monotonic()
        log(f"building the {profile!r} template on PostgreSQL (one time, takes ~80 s)")
        with tempfile.TemporaryDirectory(prefix=f".build-{name}-", dir=templates_dir(home)) as tmp:
            common = ["--db-dir", tmp, "--name", building, "--db-uri", uri]
            _provision(home, "activate", *common)
            _provision(home, "seed", *common, "--data", str(DEMO_DATA_FILE), "--profile", profile)
        with _pg_admin(uri) as conn:
            conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        log(f"template {name} built in {time.monotonic() - started:.1f} s")
    return name


def create_pg_database(profile: str, name: str, *, home: TrytonHome | None = None, uri: str | None = None,
                       overwrite: bool = True) -> str:
    """A PostgreSQL copy of ``profile``'s template named ``name`` (``CREATE DATABASE .. TEMPLATE``)."""
    uri = uri or pg_uri()
    template = ensure_pg_template(profile, home=home, uri=uri)
    started = time.monotonic()
    with _pg_admin(uri) as conn:
        if overwrite:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    log(f"database {name} created on PostgreSQL from {template} in {(time.monotonic() - started) * 1000:.0f} ms")
    return name


def drop_pg_database(name: str, *, uri: str | None = None) -> None:
    """Drop a database made by :func:`create_pg_database` (its server's connections are closed first)."""
    with _pg_admin(uri or pg_uri()) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
