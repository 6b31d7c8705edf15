"""The hub's ERP instances behind their access policy (:class:`~ordersync.ports.erp.Erps`): each account
is routed to its ERP of record, and every call goes through that ERP's gate.

Routes come from configuration (explicit, they win) and from discovery (each ERP lists its accounts;
the result is stored so routing survives an ERP outage). With a single ERP every account routes to it.
:meth:`ErpRouter.in_lane` gives a view whose ERPs make every call in one lane; views share routes,
gates and caches.
"""

from __future__ import annotations

import copy
import logging
import threading

from sqlalchemy import select

from ordersync.adapters.erp.guarded import GuardedErp
from ordersync.domain.clock import Clock
from ordersync.domain.errors import ConfigError, Unavailable
from ordersync.ports.erp import CircuitState, ErpStatus, Lane, UnknownItem
from ordersync.store.db import Database
from ordersync.store.schema import account_routes
from ordersync.store.sql import upsert_row

log = logging.getLogger("ordersync.erp.router")


class ErpRouter:
    def __init__(
        self,
        erps: dict[str, GuardedErp],
        db: Database,
        clock: Clock,
        *,
        routes: dict[str, str] | None = None,
        default: str | None = None,
    ) -> None:
        if not erps:
            raise ConfigError("at least one ERP must be configured")
        for account, name in (routes or {}).items():
            if name not in erps:
                raise ConfigError(f"route of account {account!r} names unknown ERP {name!r}")
        if default is not None and default not in erps:
            raise ConfigError(f"default ERP {default!r} is not configured")
        self.erps = erps
        self.db = db
        self.clock = clock
        self.explicit = dict(routes or {})
        self.default = default or (next(iter(erps)) if len(erps) == 1 else None)
        self._cache: dict[str, str] = {}
        self._discover_lock = threading.Lock()
        self.lane: Lane | None = None

    def in_lane(self, lane: Lane) -> ErpRouter:
        view = copy.copy(self)
        view.lane = lane
        return view

    def erp(self, name: str) -> GuardedErp:
        try:
            guarded = self.erps[name]
        except KeyError:
            raise UnknownItem("ERP", name) from None
        return guarded if self.lane is None else guarded.in_lane(self.lane)

    def status(self, name: str) -> ErpStatus:
        return self.erp(name).status()

    def reachable(self, name: str) -> bool:
        guarded = self.erps.get(name)
        return guarded is not None and guarded.gate.breaker.state is CircuitState.CLOSED

    def names(self) -> list[str]:
        return list(self.erps)

    def default_name(self) -> str:
        return self.default if self.default is not None else next(iter(self.erps))

    def erp_name_for(self, account_id: str) -> str:
        """The name of ``account_id``'s ERP of record (discovering routes on a miss)."""
        name = self.explicit.get(account_id) or self._cache.get(account_id) or self._stored(account_id)
        if name is None and len(self.erps) > 1:
            self.discover()
            name = self._cache.get(account_id)
        if name is None:
            name = self.default
        if name is None:
            raise UnknownItem("account", account_id)
        self._cache[account_id] = name
        return name

    def for_account(self, account_id: str) -> GuardedErp:
        return self.erp(self.erp_name_for(account_id))

    def discover(self) -> dict[str, str]:
        """Ask every ERP for its accounts and store the routes; one discovery at a time."""
        with self._discover_lock:
            found: dict[str, str] = {}
            for name, erp in self.erps.items():
                try:
                    accounts = erp.accounts()
                except Unavailable as exc:
                    log.warning("route discovery: ERP %s unavailable (%s); keeping stored routes", name, exc)
                    continue
                for account in accounts:
                    if account.id in found and found[account.id] != name and account.id not in self.explicit:
                        log.error("account %s exists in ERPs %s and %s; configure its route explicitly",
                                  account.id, found[account.id], name)
                        continue
                    found.setdefault(account.id, name)
            now = self.clock.now()
            with self.db.write() as conn:
                for account_id, name in {**found, **self.explicit}.items():
                    source = "config" if account_id in self.explicit else "discovered"
                    upsert_row(conn, account_routes, {"account_id": account_id},
                               {"erp": self.explicit.get(account_id, name), "source": source, "updated_at": now})
            self._cache.update(found)
            self._cache.update(self.explicit)
            return dict(self._cache)

    def _stored(self, account_id: str) -> str | None:
        with self.db.read() as conn:
            value: str | None = conn.execute(
                select(account_routes.c.erp).where(account_routes.c.account_id == account_id)
            ).scalar_one_or_none()
        if value is not None and value not in self.erps:
            return None  # a route to an ERP that is no longer configured
        return value
