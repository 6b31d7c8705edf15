"""Run a real ``trytond`` process on 127.0.0.1 serving SQLite databases from one data directory."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

from ordersync.devkit.tryton.home import TrytonHome, log, subprocess_env

_RUNNING: weakref.WeakSet[TrytonServer] = weakref.WeakSet()
# no such user: a login without password is answered "password?" and never counts as a failed attempt
_PROBE_LOGIN = "ordersync-readiness-probe"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux only)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class TrytonServerError(RuntimeError):
    """trytond did not start or exited unexpectedly; the message ends with the tail of its log."""


class TrytonServer:
    """A trytond subprocess: ``trytond -c <data_dir>/trytond.conf -d DB1 DB2 ...`` on a local port.

    Every database is a ``<data_dir>/<name>.sqlite`` file (see ``template.create_database``) and must be
    listed at start (trytond 8.2 on SQLite fails the first login of an unlisted one); with ``db_uri``
    (``postgresql://user@host:port/``) they are databases of that PostgreSQL server instead (see
    ``template.create_pg_database``), and ``data_dir`` holds only the configuration and the log. The log goes to
    ``<data_dir>/trytond.log``. ``restart()`` keeps the port, so clients keep their URL.
    ``die_with_parent`` asks Linux to SIGTERM the server when the thread that started it ends: use it
    from tests and the CLI's main thread, never from a short-lived worker thread.
    """

    def __init__(
        self,
        data_dir: Path,
        databases: Sequence[str],
        port: int | None = None,
        *,
        home: TrytonHome | None = None,
        host: str = "127.0.0.1",
        start_timeout: float = 60.0,
        die_with_parent: bool = False,
        verbose: bool = True,
        db_uri: str | None = None,
    ) -> None:
        if not databases:
            raise ValueError("list at least one database")
        self.data_dir = Path(data_dir).resolve()
        self.databases = list(databases)
        self.host = host
        self.port = port or free_port(host)
        self.home = home or TrytonHome()
        self.start_timeout = start_timeout
        self.die_with_parent = die_with_parent
        self.verbose = verbose
        self.db_uri = db_uri
        self.process: subprocess.Popen[bytes] | None = None
        self.last_start_seconds: float | None = None

    def __repr__(self) -> str:
        state = f"pid {self.process.pid}" if self.is_running() and self.process else "stopped"
        return f"TrytonServer({self.url!r}, {self.databases!r}, {state})"

    def __enter__(self) -> TrytonServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL; a database's JSON-RPC endpoint is ``{url}/{db}/rpc/``."""
        return f"http://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        """The trytond configuration file written at start."""
        return self.data_dir / "trytond.conf"

    @property
    def log_path(self) -> Path:
        """trytond's stdout and stderr (appended across restarts)."""
        return self.data_dir / "trytond.log"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.process.pid if self.process and self.process.poll() is None else None

    def is_running(self) -> bool:
        """True while the subprocess is alive (not necessarily answering yet)."""
        return self.process is not None and self.process.poll() is None

    def write_config(self) -> Path:
        """Write the trytond config: SQLite in ``data_dir`` (or ``db_uri``), no database listing, local
        listen."""
        database = f"uri = {self.db_uri}\n" if self.db_uri else f"uri = sqlite://\npath = {self.data_dir}\n"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "[web]\n"
            f"listen = {self.host}:{self.port}\n"
            "[database]\n"
            f"{database}"
            "list = False\n"
            # Tryton's bus: the hub's push subscription (only on PostgreSQL, with ordersync_changes)
            "[bus]\n"
            "allow_subscribe = True\n"
        )
        return self.config_path

    def start(self) -> TrytonServer:
        """Start trytond and wait until every database answers a login request."""
        if self.is_running():
            return self
        missing = [] if self.db_uri else [db for db in self.databases if not (self.data_dir / f"{db}.sqlite").is_file()]
        if missing:
            raise FileNotFoundError(f"no database file for {missing} in {self.data_dir}")
        self.home.ensure()
        self.write_config()
        args = [str(self.home.trytond), "-c", str(self.config_path), "-d", *self.databases]
        if self.verbose:
            args.append("-v")  # one INFO line per RPC call, with its duration
        env = subprocess_env()
        started = time.monotonic()
        with self.log_path.open("ab") as log_file:
            log_file.write(f"--- ordersync: starting {' '.join(args)}\n".encode())
            log_file.flush()
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.data_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        _RUNNING.add(self)
        try:
            self.wait_ready(self.start_timeout)
        except BaseException:
            self.kill()
            raise
        self.last_start_seconds = time.monotonic() - started
        log(
            f"trytond {self.url} serving {self.databases} (pid {self.process.pid}) "
            f"ready in {self.last_start_seconds:.1f} s"
        )
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll ``common.db.login`` (without a password: no failed attempt is recorded) on each database."""
        deadline = time.monotonic() + timeout
        pending = list(self.databases)
        with httpx.Client(timeout=5.0) as http:
            while pending:
                if not self.is_running():
                    raise TrytonServerError(f"trytond exited with {self._returncode()}\n{self.log_tail()}")
                if time.monotonic() > deadline:
                    raise TrytonServerError(f"trytond not ready after {timeout:.0f} s\n{self.log_tail()}")
                if self._answers_login(http, pending[0]):
                    pending.pop(0)
                    continue
                time.sleep(0.1)

    def _answers_login(self, http: httpx.Client, database: str) -> bool:
        payload = {"id": 0, "method": "common.db.login", "params": [_PROBE_LOGIN, {}, "en"]}
        try:
            response = http.post(f"{self.url}/{database}/rpc/", json=payload)
            error = response.json().get("error") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return False
        # the expected answer asks for the password: the pool is loaded and the database readable
        return isinstance(error, list) and bool(error) and error[0] == "LoginException"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if trytond has not exited after ``timeout`` seconds."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _RUNNING.discard(self)

    def kill(self) -> None:
        """SIGKILL at once (a crash, for failure tests)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        _RUNNING.discard(self)

    def restart(self) -> TrytonServer:
        """Stop and start again on the same port with the same databases."""
        self.stop()
        self.process = None
        return self.start()

    def _returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server.stop(timeout=5.0)
