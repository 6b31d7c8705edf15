"""Build an ERP adapter from its settings (used only by the composition root)."""

from __future__ import annotations

from ordersync.config import ErpSettings
from ordersync.devkit import demo_data
from ordersync.domain.errors import ConfigError
from ordersync.ports.contracts import PayloadObserver
from ordersync.ports.erp import ErpPort


def make_erp(settings: ErpSettings, observer: PayloadObserver | None = None) -> ErpPort:
    """The adapter ``settings`` describe; ``observer`` measures what a real ERP's reads answer (drift)."""
    if settings.kind == "memory":
        from ordersync.adapters.erp.memory import MemoryErp

        return MemoryErp.from_profile(settings.profile, name=settings.name)
    if settings.kind == "tryton":
        from ordersync.adapters.erp.tryton.adapter import TrytonErp

        regions = settings.regions if settings.regions is not None else demo_data.subdivision_regions()
        return TrytonErp.connect(
            name=settings.name, url=settings.url or "", database=settings.database or "",
            login=settings.login, password=settings.secret(), timeout=settings.call_timeout, regions=regions,
            observer=observer,
        )
    raise ConfigError(f"unknown ERP kind {settings.kind!r}")
