"""The secrets ``ordersync doctor`` checks are where the configuration says (besides each ERP's password,
which :mod:`ordersync.doctor.erp` checks with its login): the warehouse webhook's secret, each Shopify
shop's token and webhook secret, the OpenID Connect client secret. A missing one is one line naming the
environment variable (or file)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ordersync.config import Settings
from ordersync.doctor.checks import Check, fail, ok, warn

AREA = "secrets"


def _env_var(env: Mapping[str, str], var: str, what: str) -> Check:
    if env.get(var):
        return ok(AREA, f"{what}: environment variable {var} is set")
    return fail(AREA, f"{what}: environment variable {var} is not set",
                f"export {var} in the hub's environment (its unit file or compose file)")


def check_secrets(settings: Settings, env: Mapping[str, str] | None = None) -> list[Check]:
    env = os.environ if env is None else env
    checks: list[Check] = []
    wms = settings.wms
    if wms.secret_env:
        checks.append(_env_var(env, wms.secret_env, "[wms] webhook secret"))
    elif wms.secret_file is not None:
        try:
            readable = bool(wms.secret_file.read_text().strip())
        except OSError as exc:
            checks.append(fail(AREA, f"[wms] secret_file {wms.secret_file} cannot be read ({exc.strerror})",
                               "create it (mode 0600) with the warehouse's shared secret"))
        else:
            if not readable:
                checks.append(fail(AREA, f"[wms] secret_file {wms.secret_file} is empty",
                                   "write the warehouse's shared secret into it"))
            elif wms.secret_file.stat().st_mode & 0o077:
                checks.append(warn(AREA, f"[wms] secret_file {wms.secret_file} is readable by others",
                                   f"chmod 600 {wms.secret_file}"))
            else:
                checks.append(ok(AREA, f"[wms] secret_file {wms.secret_file} is readable by its owner only"))
    for shop in settings.shopify.shops:
        if shop.token_env:
            checks.append(_env_var(env, shop.token_env, f"Shopify shop {shop.name} access token"))
        elif not shop.token:
            checks.append(fail(AREA, f"Shopify shop {shop.name} has no access token",
                               "set token_env to the variable holding its Admin API token"))
        if shop.secret_env:
            checks.append(_env_var(env, shop.secret_env, f"Shopify shop {shop.name} webhook secret"))
        elif not shop.secret:
            checks.append(fail(AREA, f"Shopify shop {shop.name} has no webhook secret: its webhooks are refused",
                               "set secret_env to the variable holding the app's client secret"))
    oidc = settings.web.oidc
    if oidc is not None:
        if oidc.client_secret_env:
            checks.append(_env_var(env, oidc.client_secret_env, "[web.oidc] client secret"))
        elif not oidc.client_secret:
            checks.append(fail(AREA, "[web.oidc] has no client secret", "set client_secret_env"))
    return checks
