"""The ERP checks of ``ordersync doctor``: one line per ``[[erp]]``: its password's environment variable
is set (or its password_file readable), and a login with it works (one cheap call, the ERP adapter's
health question)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ordersync.config import ErpSettings, Settings
from ordersync.doctor.checks import Check, fail, ok, one_line, warn
from ordersync.domain.errors import ConfigError

AREA = "erp"


def check_erps(settings: Settings, env: Mapping[str, str] | None = None) -> list[Check]:
    env = os.environ if env is None else env
    if not settings.erp:
        return [warn(AREA, "no [[erp]] is configured: orders are taken in but never reach an ERP",
                     "add an [[erp]] block (docs/scale-out.md)")]
    return [_check_erp(e, env) for e in settings.erp]


def _check_erp(e: ErpSettings, env: Mapping[str, str]) -> Check:
    name = f"[[erp]] {e.name}"
    if e.kind == "memory":
        return ok(AREA, f"{name} is the in-process twin (profile {e.profile}): nothing to reach")
    if e.password_env and not env.get(e.password_env):
        return fail(AREA, f"{name}: environment variable {e.password_env} (its password) is not set",
                    f"export {e.password_env} in the hub's environment (its unit file or compose file)")
    if not e.password_env and e.password_file is None and e.password is None:
        return fail(AREA, f"{name} has no password", "set password_env (or password_file) to where it is kept")
    from ordersync.adapters.erp.factory import make_erp

    try:
        adapter = make_erp(e.model_copy(update={"call_timeout": min(e.call_timeout, 10.0)}), env=env)
    except ConfigError as exc:  # password_file unreadable
        return fail(AREA, str(exc), "create the file (mode 0600) with the ERP user's password, or fix the path")
    try:
        health = adapter.health()
    except Exception as exc:  # the doctor reports whatever the ERP does, on one line
        return fail(AREA, f"{name} at {e.url}: {one_line(exc)}", "check url, database and that the ERP runs")
    finally:
        close = getattr(adapter, "close", None)
        if close is not None:
            close()
    if not health.ok:
        refused = "Auth" in health.detail
        kept = e.password_env or (str(e.password_file) if e.password_file else "password")
        return fail(AREA, f"{name} at {e.url} ({e.database}): login of {e.login!r} failed: {health.detail}",
                    f"check login and the password in {kept}" if refused
                    else "check url and database, and that the ERP server runs")
    where = f"login of {e.login!r} on {e.database} at {e.url} works"
    if not e.password_env and e.password_file is None:
        return warn(AREA, f"{name}: {where}, but its password is in the configuration file in plain text",
                    "move it to an environment variable (password_env) or a 0600 file (password_file)")
    if not e.password_env and e.password_file is not None and e.password_file.stat().st_mode & 0o077:
        return warn(AREA, f"{name}: {where}, but its password_file {e.password_file} is readable by others",
                    f"chmod 600 {e.password_file}")
    return ok(AREA, f"{name}: {where}" + (f" ({health.latency_ms:.0f} ms)" if health.latency_ms else ""))
