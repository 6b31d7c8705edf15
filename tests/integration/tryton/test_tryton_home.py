"""TrytonHome: cache location, keying, and a race of two processes building the same environment."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ordersync.devkit.tryton import home as home_module
from ordersync.devkit.tryton.home import TrytonHome, cache_dir


def test_cache_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ORDERSYNC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "ordersync"
    monkeypatch.setenv("ORDERSYNC_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_dir() == tmp_path / "explicit"


def test_a_changed_pin_means_another_environment(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("trytond==8.2.1\n")
    first = TrytonHome(cache=tmp_path, requirements=req)
    req.write_text("trytond==8.2.0\n")
    second = TrytonHome(cache=tmp_path, requirements=req)
    assert first.root != second.root and first.root.parent == second.root.parent
    assert first.trytond_admin == first.root / "bin" / "trytond-admin"
    assert TrytonHome(cache=tmp_path).requirements == home_module.REQUIREMENTS


@pytest.mark.slow
def test_two_racing_processes_build_one_environment(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("# nothing to install: the race is about the venv, not pip\n")
    script = textwrap.dedent(f"""
        from pathlib import Path
        from ordersync.devkit.tryton.home import TrytonHome
        home = TrytonHome(cache=Path({str(tmp_path)!r}), requirements=Path({str(req)!r})).ensure()
        assert home.is_ready() and home.python.exists()
    """)
    racers = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    logs = [racer.communicate(timeout=240)[1] for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], logs
    assert sum(log.count("installing Tryton") for log in logs) == 1, logs
    assert len(list((tmp_path / "tryton").glob("venv-*"))) == 1
