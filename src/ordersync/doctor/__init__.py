"""``ordersync doctor``: check a hub's configuration and everything it reaches, one line per check.

    checks = diagnose(config_file=Path("ordersync.toml"))
    for c in checks: print(c.line())
    sys.exit(exit_code(checks))        # 0 all good, 1 warnings only, 2 a failure

The checks, in order: the configuration parses and validates (nothing else runs when it does not); the
store is reachable and at the newest migration (:mod:`.store`); NATS, when ``bus = "nats://..."``
(:mod:`.bus`); the secrets the configuration names are in the environment (:mod:`.environment`); each
ERP's login (:mod:`.erp`). Every network question is bounded by a few seconds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ordersync.config import load_settings
from ordersync.doctor.bus import check_nats
from ordersync.doctor.checks import EXIT_FAILURES, EXIT_OK, EXIT_WARNINGS, Check, Status, exit_code, fail, ok
from ordersync.doctor.environment import check_secrets
from ordersync.doctor.erp import check_erps
from ordersync.doctor.store import check_store
from ordersync.domain.errors import ConfigError


def diagnose(config_file: Path | None = None, data_dir: Path | None = None, store: str | None = None,
             env: Mapping[str, str] | None = None) -> list[Check]:
    """Every check for the configuration the other commands would load with the same options."""
    env = dict(os.environ if env is None else env)
    try:
        settings = load_settings(config_file=config_file, data_dir=data_dir, store=store, env=env)
    except ConfigError as exc:
        return [fail("config", str(exc), "fix the configuration and run `ordersync doctor` again")]
    said = f"{settings.source} parses and validates" if settings.source != "defaults" else \
        "no configuration file (ordersync.toml in the data directory, --config or ORDERSYNC_CONFIG): defaults"
    checks = [ok("config", said)]
    checks += check_store(settings)
    checks += check_nats(settings)
    checks += check_secrets(settings, env)
    checks += check_erps(settings, env)
    return checks


__all__ = ["EXIT_FAILURES", "EXIT_OK", "EXIT_WARNINGS", "Check", "Status", "diagnose", "exit_code"]
