"""Browser tests: a real hub (``ordersync serve`` in a subprocess, the worker in it, the ERP twin seeded
with the demo profile) driven by Playwright through Debian's Chromium.

Why Debian's chromium and not ``playwright install``: browser downloads by test tools do not work here,
and a distribution package is updated with the system. When ``/usr/bin/chromium`` is missing it is
installed with apt (as root); elsewhere the tests skip and say why, unless ``CI=true``, where a missing
browser fails the run.

Every test gets a fresh browser context; its last page is saved as a screenshot under
``test-artifacts/screenshots/`` (``shot()`` saves named steps), which CI keeps as artifacts. The page each
test ends on (every page fixture of the test) is checked by axe-core first (``tests/browser/accessibility``):
a serious or critical violation fails the test; tests call ``axe_check`` themselves for pages mid-flow.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordersync.api.keys import KeyService
from ordersync.config import Settings
from ordersync.domain.clock import SystemClock
from ordersync.store.db import Database
from tests.browser.accessibility import axe_check
from tests.support import people

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CONFIG = """\
[[erp]]
name = "main"
kind = "memory"
profile = "main"
poll_seconds = 0.5
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


def ensure_chromium() -> Path:
    """Debian's chromium, installed with apt when it is missing and this process may do that."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        _unavailable(f"{CHROMIUM} is missing and apt-get cannot run here (needs root and apt): "
                     "install Debian's chromium package")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", "chromium"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:  # a fresh image has no package lists yet
        subprocess.run([apt, "update"], env=env, capture_output=True, text=True, timeout=600)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not CHROMIUM.exists():
        _unavailable(f"apt-get install chromium failed ({done.returncode}): {done.stderr[-500:]}")
    return CHROMIUM


# package scope, not session: Playwright's sync API keeps an asyncio loop running in the main thread
# while it is open, and tests after this package run asyncio.run() of their own
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    executable = ensure_chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
    with sync_api.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(executable), headless=True,
                                      args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@dataclass
class Server:
    """A running hub: its address, data directory and store (for keys and set-up the UI cannot do)."""

    url: str
    data_dir: Path
    db: Database
    process: subprocess.Popen[bytes]

    def buyer(self, *scopes: str, account: str, roles: tuple[str, ...] = (), name: str = "") -> str:
        """A buyer of ``account`` (their role gives ``scopes``) with the test password: their e-mail."""
        return people.buyer(self.db, *scopes, account=account, roles=roles, name=name)

    def staff(self, *roles: str, name: str = "") -> str:
        """A staff member (default: operations and admin) with the test password: their e-mail."""
        return people.staff(self.db, *roles, name=name)

    def key(self, *scopes: str, account: str | None = None, client: str = "portal") -> str:
        token, _ = KeyService(self.db, SystemClock()).create(f"browser-{client}", client, list(scopes),
                                                             account_id=account, rate_per_minute=6000)
        return token


def free_port() -> int:
    return _free_port()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_hub(data_dir: Path, config: str = CONFIG, port: int | None = None) -> Iterator[Server]:
    """``ordersync serve`` with its worker over ``config`` (an ``ordersync.toml``), on ``port`` or a free
    one (a test that must know the address before the hub starts, e.g. to register it with an identity
    provider, picks it with :func:`free_port`)."""
    (data_dir / "ordersync.toml").write_text(config)
    db = Database(Settings(data_dir=data_dir).store_url)
    db.migrate()
    port = port or _free_port()
    log = (data_dir / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "ordersync.cli", "serve", "--data-dir", str(data_dir),
                                "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                               env={**os.environ, "ORDERSYNC_WEB_SECRET": "browser-tests"})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, data_dir / "serve.log")
        yield Server(url, data_dir, db, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        db.dispose()


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``ordersync serve`` with its worker, on a free port, over the demo profile's ERP twin."""
    with serve_hub(tmp_path_factory.mktemp("hub")) as hub:
        yield hub


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ordersync serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"ordersync serve did not answer within {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Once a browser test's body has passed, axe checks the page each of its page fixtures ends on; a
    violation fails the test itself (in its call phase, not as an error of a fixture's teardown). A test
    that failed already is not checked again."""
    result = yield
    for name, value in getattr(item, "funcargs", {}).items():
        if _html_page(value):
            axe_check(value, "end" if name == "page" else f"end-{name}", test=item.name)
    return result


def _html_page(value: Any) -> bool:
    """An open Playwright page showing an HTML document (not a PDF, not about:blank)."""
    from playwright.sync_api import Page

    if not isinstance(value, Page) or value.is_closed() or not value.url.startswith("http"):
        return False
    return bool(value.evaluate("document.contentType") == "text/html")


@pytest.fixture
def page(browser: Any, server: Server, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh context (no cookies) on the hub; its last page is checked by axe (``pytest_runtest_call``
    above) and saved as a screenshot."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    p = context.new_page()
    yield p
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        p.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-last.png"), full_page=True)
    finally:
        context.close()


@pytest.fixture
def shot(page: Any, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """Save the page as ``<test>-<step>.png`` and return the path."""

    def save(step: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{request.node.name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
