"""Where the demo Tryton ERP lives on this machine: its own virtual environment in the cache dir.

Tryton is an external system; its dependencies never mix with the hub's. The environment is keyed by a
hash of ``requirements.txt``, so a changed pin builds a new one next to the old. Creation is idempotent
and safe when several processes race (an exclusive ``fcntl.flock`` on a lock file).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

PACKAGE_DIR: Final = Path(__file__).resolve().parent
REQUIREMENTS: Final = PACKAGE_DIR / "requirements.txt"
#: ordersync's own Tryton modules (``erp-modules/tryton`` of the source tree), installed into the
#: environment beside the pinned ones: ``ordersync_changes`` signals changes on Tryton's bus (push)
ERP_MODULES: Final = PACKAGE_DIR.parents[3] / "erp-modules" / "tryton"
OWN_MODULES: Final = ("ordersync_changes",)


def own_module_files() -> list[Path]:
    """The files of ordersync's Tryton modules, in a stable order (part of the environment's key)."""
    missing = [m for m in OWN_MODULES if not (ERP_MODULES / m / "tryton.cfg").is_file()]
    if missing:
        raise FileNotFoundError(f"ordersync's Tryton modules {missing} are not in {ERP_MODULES} "
                                "(the devkit runs from a source checkout)")
    return sorted(p for m in OWN_MODULES for p in (ERP_MODULES / m).iterdir()
                  if p.is_file() and p.suffix in (".py", ".cfg", ".xml"))
_READY_MARKER: Final = ".ordersync-ready"


def log(message: str) -> None:
    """Progress for people waiting on a slow step: stderr, flushed."""
    print(f"ordersync[tryton]: {message}", file=sys.stderr, flush=True)


def subprocess_env() -> dict[str, str]:
    """The environment for Tryton processes: ours minus TRYTOND_* settings and Python path overrides."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if not k.startswith("TRYTOND_") and k not in dropped}


def cache_dir() -> Path:
    """``$ORDERSYNC_CACHE_DIR``, else ``$XDG_CACHE_HOME/ordersync``, else ``~/.cache/ordersync``."""
    explicit = os.environ.get("ORDERSYNC_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ordersync"


def content_hash(*paths: Path, length: int = 16) -> str:
    """A short sha256 over the contents of ``paths`` (order matters), used as a cache key."""
    digest = hashlib.sha256()
    for path in paths:
        data = path.read_bytes()
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:length]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another process holding {path}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class TrytonHome:
    """A Tryton 8.2 virtual environment in the cache, built from the pinned ``requirements.txt``.

    ``ensure()`` creates it once (about 15-25 s) and is a cheap check afterwards. The paths of its
    ``python``, ``trytond`` and ``trytond-admin`` are available before it exists.
    """

    def __init__(
        self,
        cache: Path | None = None,
        requirements: Path = REQUIREMENTS,
        base_python: str | None = None,
    ) -> None:
        self.cache = (cache or cache_dir()) / "tryton"
        self.requirements = requirements
        self.base_python = base_python or sys.executable
        #: what the environment is built from: the pinned requirements and ordersync's own modules
        self.sources: tuple[Path, ...] = (requirements, *own_module_files())
        self.key = content_hash(*self.sources)
        self.root = self.cache / f"venv-{self.key}"

    def __repr__(self) -> str:
        return f"TrytonHome({str(self.root)!r})"

    @property
    def bin_dir(self) -> Path:
        """The environment's ``bin`` directory."""
        return self.root / "bin"

    @property
    def python(self) -> Path:
        """The environment's Python interpreter (runs ``scripts/provision.py``)."""
        return self.bin_dir / "python"

    @property
    def trytond(self) -> Path:
        """The ``trytond`` server script."""
        return self.bin_dir / "trytond"

    @property
    def trytond_admin(self) -> Path:
        """The ``trytond-admin`` script (creates databases, activates modules)."""
        return self.bin_dir / "trytond-admin"

    @property
    def lock_path(self) -> Path:
        """The lock file serialising creation of this environment."""
        return self.cache / "locks" / f"venv-{self.key}.lock"

    def is_ready(self) -> bool:
        """True when a complete environment exists (an interrupted build never counts)."""
        return (self.root / _READY_MARKER).is_file() and self.python.exists()

    def ensure(self) -> TrytonHome:
        """Create the environment if it is missing; return ``self``. Safe to call concurrently."""
        if self.is_ready():
            return self
        with file_lock(self.lock_path):
            if self.is_ready():  # another process built it while we waited
                return self
            self._build()
        return self

    def _build(self) -> None:
        if self.root.exists():
            log(f"removing the incomplete Tryton environment {self.root}")
            shutil.rmtree(self.root)
        started = time.monotonic()
        log(f"installing Tryton into {self.root} (one time, takes ~20 s)")
        try:
            self._run([self.base_python, "-m", "venv", str(self.root)])
            self._run(
                [
                    str(self.python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-input",
                    "--disable-pip-version-check",
                    "-r",
                    str(self.requirements),
                ]
            )
            self._install_own_modules()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        (self.root / _READY_MARKER).write_text(self.requirements.read_text())
        log(f"Tryton environment ready in {time.monotonic() - started:.1f} s")

    def _install_own_modules(self) -> None:
        """Copy ordersync's Tryton modules where ``pip install erp-modules/tryton/<module>`` puts them
        (``trytond/modules/<module>``, found by trytond like its own), without building a wheel offline."""
        where = "import trytond.modules; print(trytond.modules.__path__[0])"
        found = subprocess.run([str(self.python), "-c", where], stdin=subprocess.DEVNULL, capture_output=True,
                               text=True)
        if found.returncode != 0:
            if "No module named 'trytond'" in found.stderr:
                return  # requirements without trytond (the environment's own tests): nothing to extend
            raise RuntimeError(f"cannot find trytond's modules in {self.root}:\n{found.stderr}")
        modules_dir = Path(found.stdout.strip())
        for module in OWN_MODULES:
            target = modules_dir / module
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            for path in own_module_files():
                if path.parent.name == module:
                    shutil.copy2(path, target / path.name)

    @staticmethod
    def _run(args: list[str]) -> None:
        result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"command failed ({result.returncode}): {' '.join(args)}\n{result.stdout}\n{result.stderr}"
            )
