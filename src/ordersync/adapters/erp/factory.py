"""Build an ERP adapter from its settings (used only by the composition root)."""

from __future__ import annotations

from collections.abc import Mapping

from ordersync.config import ErpSettings
from ordersync.devkit import demo_data
from ordersync.domain.errors import ConfigError
from ordersync.ports.contracts import PayloadObserver
from ordersync.ports.erp import ErpPort


def make_erp(settings: ErpSettings, observer: PayloadObserver | None = None, *,
             env: Mapping[str, str] | None = None, secret_now: bool = True) -> ErpPort:
    """The adapter ``settings`` describe; ``observer`` measures what a real ERP's reads answer (drift). Its
    password is read from the environment (``env``, default the process's) now, or with
    ``secret_now=False`` when it first logs in: a command that never calls the ERP (``ordersync dlq list``,
    ``prune``) then runs without the secret."""
    if settings.kind == "memory":
        from ordersync.adapters.erp.memory import MemoryErp

        return MemoryErp.from_profile(settings.profile, name=settings.name)
    if settings.kind == "tryton":
        from ordersync.adapters.erp.tryton.adapter import TrytonErp

        regions = settings.regions if settings.regions is not None else demo_data.subdivision_regions()
        return TrytonErp.connect(
            name=settings.name, url=settings.url or "", database=settings.database or "",
            login=settings.login,
            password=settings.secret(dict(env) if env is not None else None) if secret_now else settings.secret,
            timeout=settings.call_timeout, regions=regions, observer=observer,
        )
    raise ConfigError(f"unknown ERP kind {settings.kind!r}")
