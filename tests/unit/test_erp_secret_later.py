"""An ERP adapter built with ``secret_now=False`` (commands that never call the ERP) reads its password
from the environment when it first logs in, not when it is built."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ordersync.adapters.erp.factory import make_erp
from ordersync.adapters.erp.tryton.rpc import TrytonClient
from ordersync.config import ErpSettings
from ordersync.domain.errors import ConfigError

SETTINGS = ErpSettings(name="main", url="http://erp.invalid:8000", database="main", password_env="ERP_PW_LATER")


def test_building_without_the_secret_works_and_building_with_it_now_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ERP_PW_LATER", raising=False)
    with pytest.raises(ConfigError, match="ERP_PW_LATER"):
        make_erp(SETTINGS)
    adapter: Any = make_erp(SETTINGS, secret_now=False)
    try:
        with pytest.raises(ConfigError, match="ERP_PW_LATER"):  # the first login says what is missing
            adapter.client.login()
    finally:
        adapter.close()


def test_a_password_given_as_a_function_is_asked_for_at_login() -> None:
    sent: list[Any] = []

    def erp(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        result: Any = [7, "session"] if body["method"] == "common.db.login" else {"language": "en"}
        return httpx.Response(200, json={"id": body["id"], "result": result})

    asked: list[str] = []

    def password() -> str:
        asked.append("now")
        return "s3cret"

    client = TrytonClient("http://erp.invalid:8000", "main", "ordersync", password,
                          transport=httpx.MockTransport(erp))
    assert asked == []
    assert client.login() == 7
    assert asked == ["now"] and sent[0]["params"][1] == {"password": "s3cret"}
    client.close()
