"""The ``ordersync`` command line. Errors print one clear line and exit non-zero; no stack traces.

One module on purpose: it is the table of contents of the commands (``ordersync --help`` in code), each a
short function that parses, calls one service and prints; the services live elsewhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ordersync import __version__
from ordersync.config import LoggingSettings, Settings, load_settings
from ordersync.domain.errors import ConfigError, NotFound, OrdersyncError, Unavailable

if TYPE_CHECKING:
    from ordersync.runtime.hub import Hub

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ordersync: the B2B order hub.")
dlq = typer.Typer(no_args_is_help=True, help="Inspect and replay dead letters.")
app.add_typer(dlq, name="dlq")
schemas = typer.Typer(no_args_is_help=True, help="Export and check the published JSON Schemas (canonical model, "
                                                 "outbound events).")
app.add_typer(schemas, name="schemas")
apikey = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")
app.add_typer(apikey, name="apikey")
people_cli = typer.Typer(no_args_is_help=True, help="People who sign in to /ops (staff) and /portal (buyers): "
                                                    "invite, list, change roles, disable.")
app.add_typer(people_cli, name="people")
subscriptions = typer.Typer(no_args_is_help=True, help="Add, list and remove outbound event subscriptions "
                                                       "(signed webhooks).")
app.add_typer(subscriptions, name="subscriptions")
edi = typer.Typer(no_args_is_help=True, help="EDI trading: partners, receive a file, list and show what came and "
                                             "went, resend, send now.")
app.add_typer(edi, name="edi")
shopify = typer.Typer(no_args_is_help=True, help="Shopify B2B shops: check the token, register webhooks, push "
                                                 "prices and stock now, reconcile, list events, map companies.")
app.add_typer(shopify, name="shopify")
drift_cli = typer.Typer(no_args_is_help=True, help="Inbound contracts: drift from the schemas, quarantined payloads "
                                                   "(list, show, replay after a fix, discard).")
app.add_typer(drift_cli, name="drift")
alerts_cli = typer.Typer(no_args_is_help=True, help="Alerts to teams (escalated cases, SLA breaches): send a test, "
                         "see what was sent and what failed.")
app.add_typer(alerts_cli, name="alerts")
erp_cli = typer.Typer(no_args_is_help=True, help="The ERP: run the bundled Tryton for the demo and trials.")
app.add_typer(erp_cli, name="erp")
nats_cli = typer.Typer(no_args_is_help=True, help="The NATS JetStream bus: change the streams' settings on purpose.")
app.add_typer(nats_cli, name="nats")
console = Console(stderr=True)
out = Console()
log = logging.getLogger("ordersync.cli")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (default ./.ordersync).")]
Store = Annotated[str | None, typer.Option("--store", help="Store URL, e.g. postgresql://host/db.")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="Config file (TOML).")]


def _settings(data_dir: Path | None, store: str | None, config: Path | None) -> Settings:
    return load_settings(config_file=config, data_dir=data_dir, store=store)


def _hub(data_dir: Path | None, store: str | None, config: Path | None,  # type: ignore[no-untyped-def]
         erp: bool = True):
    """The hub as the settings describe it. ``erp=False``: for a command that never calls the ERP (it
    then runs without the ERP's password in the environment)."""
    from ordersync.bootstrap import build_hub

    return build_hub(_settings(data_dir, store, config), erp_secrets=erp)


LogFormat = Annotated[str | None, typer.Option(
    "--log-format", help="Log lines as text (for people, the default), json (one JSON object a line: time, level, "
    "logger, message, trace_id, span_id, order_id, consumer) or auto (text on a terminal, else json). Default: "
    "ORDERSYNC_LOG_FORMAT, else [logging] format.")]
LogLevel = Annotated[str | None, typer.Option(
    "--log-level", help="DEBUG, INFO, WARNING or ERROR (default [logging] level, INFO); -v means DEBUG.")]


def _setup_logging(verbose: bool, log_format: str | None = None, log_level: str | None = None,
                   configured: LoggingSettings | None = None) -> None:
    from ordersync.telemetry.logs import level_of, resolve_format, setup_logging

    try:
        fmt = resolve_format(log_format, configured=configured.format if configured else None)
        level = logging.DEBUG if verbose else level_of(log_level or (configured.level if configured else "INFO"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    setup_logging(level, fmt)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"ordersync {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                               help="Print the version and exit.")] = False,
) -> None:
    """ordersync: the B2B order hub."""


@app.command()
def version() -> None:
    """Print the ordersync version and the canonical schema versions it speaks."""
    from ordersync.canonical.export import VERSIONS

    out.print(f"ordersync {__version__} (canonical model v{', v'.join(map(str, VERSIONS))})")


SchemaDir = Annotated[Path, typer.Option("--dir", help="Folder holding v<N>/ schema folders.")]


@schemas.command("export")
def schemas_export(
    directory: SchemaDir = Path("schemas"),
    version: Annotated[int | None, typer.Option("--version", help="Only this version.")] = None,
) -> None:
    """Write the JSON Schema of every published model to <dir>/v<N>/<Model>.json, and of every outbound
    event to <dir>/events/<type>.v<N>.json."""
    from ordersync.canonical.compat import breaking_changes
    from ordersync.canonical.export import VERSIONS, current_schemas, export, load_published

    for v in [version] if version else list(VERSIONS):
        published = load_published(directory, v) if (directory / f"v{v}").exists() else {}
        current = current_schemas(v)
        problems = {n: breaking_changes(published[n], current[n]) for n in published if n in current}
        problems = {n: p for n, p in problems.items() if p}
        if problems:
            for name, items in problems.items():
                console.print(f"[red]{name}[/red]: " + "; ".join(items))
            raise OrdersyncError(f"v{v} would change incompatibly; publish a new version instead")
        files = export(directory, v)
        out.print(f"v{v}: wrote {len(files)} schemas to {directory / f'v{v}'}")
    _export_event_schemas(directory)


def _export_event_schemas(directory: Path) -> None:
    """The outbound events' schemas under <dir>/events/, unless the code would break a published one."""
    from ordersync.runtime import event_schemas

    broken = event_schemas.problems(event_schemas.load_published(directory), event_schemas.current_event_schemas())
    if broken:
        for name, items in broken.items():
            console.print(f"[red]events/{name}[/red]: " + "; ".join(items))
        raise OrdersyncError("an event schema would change incompatibly; give the event a new VERSION instead")
    files = event_schemas.export(directory)
    out.print(f"events: wrote {len(files)} schemas to {directory / event_schemas.FOLDER}")


@schemas.command("check")
def schemas_check(directory: SchemaDir = Path("schemas")) -> None:
    """Fail if the code breaks a published schema version (canonical models and outbound events)."""
    from ordersync.canonical.compat import breaking_changes
    from ordersync.canonical.export import VERSIONS, current_schemas, load_published

    failed = False
    for v in VERSIONS:
        current = current_schemas(v)
        for name, schema in load_published(directory, v).items():
            for problem in breaking_changes(schema, current[name]) if name in current else ["model removed"]:
                failed = True
                console.print(f"v{v} {name}: {problem}")
    from ordersync.runtime import event_schemas

    for name, items in event_schemas.problems(event_schemas.load_published(directory),
                                              event_schemas.current_event_schemas()).items():
        for problem in items:
            failed = True
            console.print(f"events/{name}: {problem}")
    if failed:
        raise OrdersyncError("published schemas would break")
    out.print("published schemas (canonical model and events) are compatible with the code")


@app.command()
def init(data_dir: DataDir = None, store: Store = None, config: ConfigFile = None) -> None:
    """Create the store, or upgrade it to the newest schema."""
    from ordersync.store.db import Database

    settings = _settings(data_dir, store, config)
    db = Database(settings.store_url)
    before = db.current_revision()
    after = db.migrate()
    where = db.engine.url.render_as_string(hide_password=True)
    if before == after:
        out.print(f"store {where} is up to date (revision {after})")
    else:
        out.print(f"store {where} upgraded from {before or 'empty'} to revision {after}")
    db.dispose()


@app.command()
def doctor(data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
           as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Check the configuration and everything it reaches (store and migrations, NATS servers, sync_interval,
    cluster size against replicas, the streams, secrets in the environment, each ERP's login): one line per
    check. Exit code 0: all good; 1: warnings only; 2: a failure."""
    from ordersync.doctor import diagnose, exit_code

    checks = diagnose(config_file=config, data_dir=data_dir, store=store)
    code = exit_code(checks)
    if as_json:
        typer.echo(json.dumps({"exit_code": code, "checks": [c.as_dict() for c in checks]}))
    else:
        colour = {"ok": "green", "warning": "yellow", "failure": "red"}
        for c in checks:
            out.print(f"[{colour[c.status.value]}]{c.status.mark}[/] " + escape(c.line()[2:]), soft_wrap=True,
                      highlight=False)
    raise typer.Exit(code)


@app.command()
def worker(
    data_dir: DataDir = None,
    store: Store = None,
    config: ConfigFile = None,
    drain: Annotated[bool, typer.Option("--drain", help="Process what is due, then exit.")] = False,
    health_port: Annotated[int | None, typer.Option("--health-port", min=1, max=65535,
                                                    help="Serve /health, /ready and /metrics on this port "
                                                         "(default: [worker] health_port; none if unset).")] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
    log_format: LogFormat = None,
    log_level: LogLevel = None,
) -> None:
    """Run the outbox relay and every consumer until stopped (Ctrl-C or SIGTERM)."""
    from ordersync.bootstrap import build_hub

    settings = _settings(data_dir, store, config)
    _setup_logging(verbose, log_format, log_level, settings.logging)
    hub = build_hub(settings)
    _check_bus(hub)
    if drain:
        done = hub.worker.drain()
        out.print(f"drained: {done} deliveries and publications; {hub.dead_letters.count()} dead letters")
        return
    stop = threading.Event()
    _stop_on_signals(stop)
    port = health_port or hub.settings.worker.health_port
    with contextlib.ExitStack() as stack:
        if port is not None:
            stack.callback(_serve_health(hub, hub.settings.worker.health_host, port))
        run_worker_with_status(hub, stop)


def _check_bus(hub: Hub) -> None:
    """Connect to the bus now and check its streams: a worker whose configuration asks for other stream
    settings than the streams have refuses to start (ConfigError: one line, exit 2), changing nothing. A
    broker that does not answer is an outage, not a refusal: the worker starts and checks when it connects."""
    from ordersync.domain.errors import Unavailable
    from ordersync.messaging.nats import NatsTransport

    if isinstance(hub.transport, NatsTransport):
        try:
            hub.transport.start()
        except Unavailable as exc:
            log.warning("%s; starting anyway: the streams are checked when NATS answers", exc)


def _serve_health(hub: Hub, host: str, port: int) -> Any:
    """Serve the worker's /health, /ready and /metrics in a thread; returns what stops it."""
    import uvicorn

    from ordersync.api.health import create_health_app

    if hub.heartbeat is not None:
        hub.heartbeat.health_port = port
    server = uvicorn.Server(uvicorn.Config(create_health_app(hub), host=host, port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, name="ordersync-health", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:  # uvicorn logged why (the port is taken, most likely)
        server.should_exit = True
        raise ConfigError(f"cannot serve the worker's health port on {host}:{port} (in use by another process? "
                          "give each worker on one machine a port of its own: --health-port)")
    console.print(f"worker: health, readiness and metrics on http://{host}:{port}/ready")

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=5)

    return stop


def run_worker_with_status(hub: Hub, stop: threading.Event, label: str = "worker") -> None:
    """Run the worker, printing a status line every few seconds while it has work."""
    last = [time.monotonic(), 0]

    def on_round(_n: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 5 and hub.worker.processed != last[1]:
            try:
                queued: int | str = hub.transport.pending()
            except Exception as exc:  # the broker is failing over: say so, keep working
                queued = f"unknown ({type(exc).__name__})"
            console.print(
                f"{label}: {hub.worker.processed} deliveries handled, "
                f"outbox backlog {hub.relay.backlog()}, queued {queued}, "
                f"dead letters {hub.dead_letters.count()}"
            )
            last[0], last[1] = now, hub.worker.processed

    from ordersync.messaging.wake import WakeListener, wake_address

    with contextlib.ExitStack() as stack:
        _start_worker(hub, stack)  # first: a worker waiting for another one takes its wake-ups after it
        try:  # the API (ordersync serve --no-worker) wakes us when it committed events
            stack.callback(WakeListener(wake_address(hub.settings.store_url), hub.worker.wake).close)
        except OSError:  # another worker of this store listens on this machine: we poll
            log.debug("another worker of this store takes the API's wake-ups; this one polls")
        console.print(f"{label}: running on {hub.db!r}; Ctrl-C stops")
        hub.worker.run_forever(stop, on_round)
    console.print(f"{label}: stopped after {hub.worker.processed} deliveries")


def _start_worker(hub: Hub, stack: contextlib.ExitStack) -> None:
    """Become the store's worker for as long as ``stack`` is open: on SQLite, the only one (waiting for one
    still stopping), recovering the claims a crashed worker left."""
    stack.enter_context(hub.db.sole_worker())
    hub.worker.recover(sole_worker=hub.db.is_sqlite)


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def freeze_startup_objects() -> None:
    """Move everything built so far (modules, the app, the hub) out of the garbage collector's sight:
    a full collection then scans only what requests created, a pause of a few ms instead of 100+ ms in
    the middle of someone's request (bench/read_path.py)."""
    import gc

    gc.collect()
    gc.freeze()


@app.command()
def serve(
    data_dir: DataDir = None,
    store: Store = None,
    config: ConfigFile = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    with_worker: Annotated[bool, typer.Option("--worker/--no-worker",
                                              help="Also run the worker in this process (embedded default); "
                                                   "with --no-worker, run `ordersync worker` beside it.")]
    = True,
    processes: Annotated[int, typer.Option("--workers", min=1, max=64,
                                           help="API processes on the port (uvicorn's workers). With 2 or more, "
                                                "the worker (--worker) runs in the supervising process beside "
                                                "them, and each API process limits a key to its share of the "
                                                "key's rate.")] = 1,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
    log_format: LogFormat = None,
    log_level: LogLevel = None,
) -> None:
    """Serve the API (and, by default, run the worker in the same process)."""
    import uvicorn

    from ordersync.bootstrap import build_hub
    from ordersync.messaging.wake import WakeListener, WakeSender, wake_address
    from ordersync.server import create_app

    settings = _settings(data_dir, store, config)
    _setup_logging(verbose, log_format, log_level, settings.logging)
    # The API shares the interpreter with the worker's threads: hand the GIL over every 0.5 ms instead
    # of 5 ms, or a request can wait behind a busy worker thread several times over (bench/intake.py).
    sys.setswitchinterval(0.0005)
    hub = build_hub(settings)
    stop = threading.Event()
    worker_thread = None
    stack = contextlib.ExitStack()
    if with_worker:
        _check_bus(hub)
        _start_worker(hub, stack)
        if processes > 1:  # the API processes' commits wake this worker as the worker command's
            with contextlib.suppress(OSError):  # (another worker of this store listening: this one polls)
                stack.callback(WakeListener(wake_address(hub.settings.store_url), hub.worker.wake).close)
        worker_thread = threading.Thread(target=hub.worker.run_forever, args=(stop,), name="worker", daemon=True)
        worker_thread.start()
    else:  # the API's commits wake a worker of this store on this machine, as they wake its own thread
        hub.worker.forward_wakes(WakeSender(wake_address(hub.settings.store_url)))
    console.print(f"serving http://{host}:{port}/v1 (OpenAPI /v1/openapi.json) on {hub.db!r}"
                  + (f" in {processes} API processes" if processes > 1 else "")
                  + ("; worker running" if with_worker else ""))
    # uvicorn restores the handlers it found and raises the signal it caught again once it has shut down:
    # with the default handlers that kills the process before the worker and the hub are closed below
    _stop_on_signals(stop)
    if processes > 1:  # uvicorn spawns the API processes; each builds its hub from the same settings
        os.environ[_SERVE_ENV] = json.dumps({"data_dir": str(data_dir) if data_dir else None, "store": store,
                                             "config": str(config) if config else None, "processes": processes,
                                             "verbose": verbose, "log_format": log_format,
                                             "log_level": log_level})
        freeze_startup_objects()
        uvicorn.run(f"{__name__}:api_process_app", factory=True, host=host, port=port, workers=processes,
                    log_level="warning", access_log=False)
    else:
        app = create_app(hub)
        freeze_startup_objects()
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    stop.set()
    if worker_thread is not None:
        worker_thread.join(timeout=30)
    stack.close()
    hub.close()
    console.print("stopped")


_SERVE_ENV = "ORDERSYNC_SERVE_PROCESS"


def api_process_app() -> Any:
    """One API process of ``ordersync serve --workers N`` (uvicorn calls this factory in each): the
    hub from the same settings as the supervisor, no worker of its own (its commits wake the worker,
    which runs in the supervising process or in ``ordersync worker``)."""
    from ordersync.bootstrap import build_hub
    from ordersync.messaging.wake import WakeSender, wake_address
    from ordersync.server import create_app

    spec = json.loads(os.environ[_SERVE_ENV])
    settings = _settings(Path(spec["data_dir"]) if spec["data_dir"] else None, spec["store"],
                         Path(spec["config"]) if spec["config"] else None)
    _setup_logging(spec["verbose"], spec.get("log_format"), spec.get("log_level"), settings.logging)
    sys.setswitchinterval(0.0005)
    hub = build_hub(settings)
    hub.worker.forward_wakes(WakeSender(wake_address(hub.settings.store_url)))
    return create_app(hub, processes=spec["processes"])


def _edi_inbound(hub: Hub) -> Any:
    from ordersync.bootstrap import case_policy
    from ordersync.channels.edi.inbound import EdiInbound

    if hub.edi is not None:
        return hub.edi.inbound
    return EdiInbound(hub.db, hub.intake, hub.clock, [], cases=case_policy(hub.settings))  # kept, unknown sender


@nats_cli.command("migrate")
def nats_migrate(
    replicas: Annotated[int | None, typer.Option("--replicas", min=1, max=5,
                                                 help="Copies of each stream (default: [nats] replicas; unset both "
                                                      "to keep each stream's).")] = None,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
) -> None:
    """Change the existing streams to this configuration's settings (replicas, age, deduplication window):
    the one command that does; processes only check them and refuse to start when they differ. Stop the
    workers first, start them after with a configuration that matches."""
    import ordersync.bootstrap  # noqa: F401  (every flow registers its message types: one stream per family)
    from ordersync.messaging.nats import NatsTransport, parse_servers
    from ordersync.store.db import Database

    settings = _settings(data_dir, store, config)
    if not settings.bus.startswith("nats://"):
        raise ConfigError("the bus is embedded (queues in the store): there are no NATS streams to migrate")
    n = settings.nats
    transport = NatsTransport(Database(settings.store_url), parse_servers(settings.bus), prefix=n.prefix,
                              replicas=n.replicas, partitions=n.partitions, duplicate_window=n.duplicate_window_seconds,
                              max_age_days=n.max_age_days, connect_timeout=n.connect_timeout,
                              publish_timeout=n.publish_timeout, source=settings.source)
    try:
        for stream, what in transport.migrate(replicas):
            out.print(f"{stream}: {what}")
    finally:
        transport.close()
        transport.db.dispose()


@edi.command("receive")
def edi_receive(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="An X12 interchange file.")],
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """Take an interchange from a file as if the partner had sent it: kept verbatim, orders into the
    intake, a 997/999 (and a TA1 when due) queued for the partner. Prints what became of it."""
    hub = _hub(data_dir, store, config)
    try:
        result = _edi_inbound(hub).receive(path.read_bytes())
    finally:
        hub.close()
    if as_json:
        out.print_json(json.dumps(dataclasses.asdict(result), default=str))
        return
    out.print(f"interchange {result.interchange_id}: {result.state}"
              + (f" (partner {result.partner})" if result.partner else "")
              + (f"\n  {result.detail}" if result.detail else ""))
    for o in result.orders:
        what = ("already received: order " if o.duplicate else "order ") + o.order_id if o.order_id else \
            "not taken: " + "; ".join(p.message for p in o.problems)
        out.print(f"  PO {o.po_number} (set {o.set_control_number}): {what}")
    if result.replies:
        out.print(f"  queued for the partner: {', '.join(result.replies)}")
    if result.case_id:
        out.print(f"  case {result.case_id} opened (/v1/ops/cases/{result.case_id})")


@edi.command("list")
def edi_list(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    partner: Annotated[str | None, typer.Option("--partner", help="Only this partner's.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="received, processed, queued, sent, dead_letter, "
                                                              "duplicate, rejected, unknown_partner ...")] = None,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """The latest interchanges received and sent, newest first."""
    from ordersync.store import edi as edi_store
    from ordersync.store.db import Database

    db = Database(_settings(data_dir, store, config).store_url)
    db.migrate()
    with db.read() as conn:
        rows = edi_store.list_interchanges(conn, partner=partner, state=state, limit=limit)
    db.dispose()
    if as_json:
        out.print_json(json.dumps([dict(r) for r in rows], default=str))
        return
    table = Table(title=f"EDI interchanges ({len(rows)})")
    for col in ("id", "dir", "partner", "doc", "control", "state", "ack", "bytes", "at", "detail"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["id"], r["direction"], r["partner"] or r["sender"], r["document"], r["control_number"],
                      r["state"], r["ack_state"], str(r["size"]), r["received_at"].strftime("%Y-%m-%d %H:%M:%S"),
                      (r["detail"] or r["last_error"])[:80])
    out.print(table)


@edi.command("partners")
def edi_partners(data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
                 as_json: AsJson = False) -> None:
    """The trading partners in ordersync.toml, how documents reach them, and what is waiting."""
    from ordersync.store import edi as edi_store
    from ordersync.store.db import Database

    settings = _settings(data_dir, store, config)
    db = Database(settings.store_url)
    db.migrate()
    with db.read() as conn:
        counts = edi_store.partner_counts(conn)
    db.dispose()
    rows: list[dict[str, Any]] = []
    for p in settings.edi.partners:
        where = {"as2": p.as2_url, "directory": f"{p.outbox_dir} (in: {p.inbox_dir or '-'})"}.get(p.transport,
                                                                                                  "kept to collect")
        rows.append({"name": p.name, "isa": f"{p.interchange_qualifier}:{p.interchange_id}", "account": p.account_id,
                     "version": p.version, "usage": p.usage, "transport": p.transport, "to": where,
                     **counts.get(p.name, {})})
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print("no EDI partners: add [[edi.partners]] to ordersync.toml (docs/edi.md)")
        return
    table = Table(title=f"EDI partners ({len(rows)}); we are {settings.edi.interchange_qualifier}:"
                        f"{settings.edi.interchange_id}")
    for col in ("name", "isa", "account", "version", "transport", "to", "in", "out", "sent", "queued",
                "dead letters", "awaiting 997", "overdue", "rejected"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["isa"], r["account"], f"{r['version']} {r['usage']}", r["transport"], r["to"],
                      *(str(r.get(k, 0)) for k in ("received", "written", "sent", "queued", "dead_letters",
                                                   "awaiting_ack", "overdue_ack", "rejected_ack")))
    out.print(table)


@edi.command("resend")
def edi_resend(
    interchange_id: str,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
) -> None:
    """Send an outgoing interchange again, same bytes and control numbers: a dead letter once its cause is
    fixed, or a document the partner says never arrived. The worker sends it on its next round."""
    from ordersync.store import edi as edi_store
    from ordersync.store.db import Database

    db = Database(_settings(data_dir, store, config).store_url)
    db.migrate()
    with db.write() as conn:
        row = edi_store.resend(conn, interchange_id)
    db.dispose()
    if row is None:
        console.print(f"[red]no outgoing interchange {interchange_id}[/red] (ordersync edi list shows them)")
        raise typer.Exit(1)
    if row["state"] not in ("sent", "dead_letter", "queued"):
        console.print(f"[red]interchange {interchange_id} is {row['state']}[/red]: only sent, queued or dead-letter "
                      "interchanges are resent")
        raise typer.Exit(1)
    out.print(f"{row['document']} {interchange_id} queued again (was {row['state']}); the worker sends it next")


@edi.command("send")
def edi_send(data_dir: DataDir = None, store: Store = None, config: ConfigFile = None) -> None:
    """One round now, without a running worker: pick up partners' files, process what was received,
    write the documents due and send what is queued. Prints what it did."""
    hub = _hub(data_dir, store, config)
    try:
        if hub.edi is None:
            console.print("[red]no EDI partners configured[/red]: add [[edi.partners]] to ordersync.toml")
            raise typer.Exit(1)
        from ordersync.store import edi as edi_store

        def totals() -> dict[str, int]:
            with hub.db.read() as conn:
                counts = edi_store.partner_counts(conn).values()
            return {k: sum(c[k] for c in counts) for k in ("received", "sent", "queued", "dead_letters")}

        before = totals()
        picked = hub.edi.sender.pick_up()
        processed = hub.edi.inbound.process_waiting()
        for _ in range(50):  # the flows, the documents they call for, and the sends (jobs of the worker)
            if hub.worker.drain() + hub.edi.sender.send_due() == 0:
                break
        after = totals()
    finally:
        hub.close()
    sent = after["sent"] - before["sent"] + after["dead_letters"] - before["dead_letters"]
    out.print(f"picked up {picked} file(s), processed {processed} interchange(s), sent {sent}; "
              f"{after['queued']} queued, {after['dead_letters']} dead letter(s)", soft_wrap=True)


@edi.command("show")
def edi_show(
    interchange_id: str,
    raw: Annotated[bool, typer.Option("--raw", help="Write the interchange's bytes, exactly as kept.")] = False,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
) -> None:
    """One interchange: its envelope, state and detail, and its content (``--raw``: the bytes alone)."""
    from sqlalchemy import select

    from ordersync.store.db import Database
    from ordersync.store.schema import edi_interchanges as t

    db = Database(_settings(data_dir, store, config).store_url)
    db.migrate()
    with db.read() as conn:
        row = conn.execute(select(t).where(t.c.id == interchange_id)).mappings().first()
    db.dispose()
    if row is None:
        console.print(f"[red]no interchange {interchange_id}[/red] (ordersync edi list shows them)")
        raise typer.Exit(1)
    if raw:
        sys.stdout.buffer.write(bytes(row["raw"]))
        return
    for key in ("id", "direction", "partner", "sender", "receiver", "control_number", "state", "size", "sha256",
                "received_at", "processed_at", "detail"):
        out.print(f"{key:15} {row[key] if row[key] is not None else ''}")
    out.print(bytes(row["raw"]).decode("utf-8", errors="replace"), markup=False, highlight=False)


# -- Shopify B2B shops ---------------------------------------------------------------------------------

ShopName = Annotated[str, typer.Argument(help="The shop's name (its \\[\\[shopify.shops]] block in ordersync.toml).")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    """One red line on stderr saying what went wrong and what to do; the exit to raise (1: Shopify, the
    ERP or the work failed; 2: the configuration or the command line is wrong)."""
    console.print(f"[red]{message}[/red]", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def _shop_settings(settings: Settings, name: str) -> Any:
    found = settings.shopify.shop(name)
    if found is None:
        configured = ", ".join(s.name for s in settings.shopify.shops) or "none"
        raise _fail(f"no Shopify shop named {name!r} (configured: {configured}): add it as [[shopify.shops]] to "
                    "ordersync.toml (docs/shopify.md)", 2)
    if not found.access_token():
        where = f"set the environment variable {found.token_env}" if found.token_env else "set token_env"
        raise _fail(f"shop {name} has no access token: {where} to the Admin API token of its app", 2)
    return found


def _shopify_client(settings: Settings, name: str) -> Any:
    """The shop's client, as the hub builds it (without building the hub: no ERP needed)."""
    from ordersync.channels.shopify.channel import shops_of
    from ordersync.config import ShopifySettings

    one = ShopifySettings.model_validate({**settings.shopify.model_dump(),
                                          "shops": [_shop_settings(settings, name).model_dump()]})
    return shops_of(one)[0].client


def _shopify_channel(hub: Hub, name: str) -> Any:
    if hub.shopify is None:
        raise _fail("no Shopify shop is configured: add [[shopify.shops]] to ordersync.toml (docs/shopify.md)", 2)
    _shop_settings(hub.settings, name)
    return hub.shopify


def _shopify_failure(exc: Exception, what: str, settings: Any) -> typer.Exit:
    """The one line for a failed call: Shopify unreachable, Shopify refusing (the token), or the ERP away."""
    from ordersync.channels.shopify.client import ShopifyError, ShopifyUnavailable

    if isinstance(exc, ShopifyUnavailable):
        return _fail(f"{what}: Shopify at {settings.base_url} cannot be reached ({exc}); check the network and "
                     "api_url, then try again")
    if isinstance(exc, ShopifyError):
        return _fail(f"{what}: Shopify refused: {exc}; check the shop's access token "
                     f"({settings.token_env or 'token'}) and the app's scopes")
    return _fail(f"{what}: {exc}; try again when the ERP answers")


def _shopify_errors() -> tuple[type[Exception], ...]:
    from ordersync.channels.shopify.client import ShopifyError, ShopifyUnavailable

    return ShopifyError, ShopifyUnavailable, OrdersyncError


@shopify.command("shops")
def shopify_shops(data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
                  as_json: AsJson = False) -> None:
    """Each configured shop: domain, plan, channel, webhook events, orders and tasks by state, the
    reconciliation watermark and what the last reconciliation found."""
    from ordersync.store import shopify as shopify_store
    from ordersync.store.db import Database

    settings = _settings(data_dir, store, config)
    db = Database(settings.store_url)
    db.migrate()
    rows: list[dict[str, Any]] = []
    with db.read() as conn:
        for s in settings.shopify.shops:
            rows.append({"name": s.name, "domain": s.domain, "plan": s.plan, "channel": s.channel_name,
                         "token": bool(s.access_token()), "secret": bool(s.webhook_secrets()),
                         "events": shopify_store.event_counts(conn, s.name),
                         "orders": shopify_store.order_counts(conn, s.name),
                         "tasks": shopify_store.task_counts(conn, s.name),
                         "watermark": shopify_store.get_state(conn, s.name, "watermark", "reconcile"),
                         "reconcile": shopify_store.get_state(conn, s.name, "report", "reconcile")})
    db.dispose()
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    if not rows:
        out.print("no Shopify shops: add [[shopify.shops]] to ordersync.toml (docs/shopify.md)")
        return
    for r in rows:  # a block per shop: too many figures for one table row at a terminal's width
        out.print(f"[bold]{r['name']}[/bold]  {r['domain']}  plan {r['plan']}  channel {r['channel']}  token "
                  + ("yes" if r["token"] else "[red]missing[/red]") + ("" if r["secret"] else
                                                                       "  [red]no webhook secret[/red]"),
                  soft_wrap=True, highlight=False)
        for label, value in (("webhook events", _by_state(r["events"])), ("orders", _by_state(r["orders"])),
                             ("tasks", _by_state(r["tasks"])), ("reconciled up to", r["watermark"] or "not yet"),
                             ("last reconciliation", _sweep_line(r["reconcile"]))):
            out.print(f"  {label + ':':20} {value}", soft_wrap=True, highlight=False)


def _by_state(counts: dict[str, int]) -> str:
    return ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) or "-"


def _sweep_line(report: dict[str, Any] | None) -> str:
    if not report:
        return "never"
    found = ", ".join(f"{len(report.get(k) or [])} {k}" for k in ("taken", "unmatched", "refused", "errors"))
    return f"{report.get('started_at', '')[:19]}: {report.get('seen', 0)} seen, {found}"


@shopify.command("connect")
def shopify_connect(shop: ShopName, data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
                    as_json: AsJson = False) -> None:
    """Check the shop's access token: ask Shopify for the shop's name, plan and currency."""
    from ordersync.channels.shopify import operations as ops

    settings = _settings(data_dir, store, config)
    s = _shop_settings(settings, shop)
    client = _shopify_client(settings, shop)
    client.max_attempts = 2  # a person waits: one retry, then say so
    try:
        answer = client.execute(ops.SHOP, {}).get("shop") or {}
    except _shopify_errors() as exc:
        raise _shopify_failure(exc, f"shop {shop} ({s.domain})", s) from None
    finally:
        client.close()
    plan = answer.get("plan") or {}
    plus = bool(plan.get("shopifyPlus"))
    warnings = []
    if plus != (s.plan in ("plus", "enterprise")):
        warnings.append(f"Shopify says the shop {'is' if plus else 'is not'} on Plus but plan = \"{s.plan}\" is "
                        f"configured: the limiter paces to the {s.plan} budget; set plan = "
                        f"\"{'plus' if plus else 'standard'}\" (or \"{'enterprise' if plus else 'advanced'}\")")
    domain = answer.get("myshopifyDomain") or ""
    if domain and domain.lower() != s.domain.lower():
        warnings.append(f"Shopify names the shop {domain}, not the configured domain {s.domain}: its webhooks "
                        f"would be refused as an unknown shop; set domain = \"{domain}\"")
    currency = answer.get("currencyCode") or ""
    if currency and currency != s.currency:
        warnings.append(f"the shop sells in {currency} but currency = \"{s.currency}\" is configured")
    if as_json:
        typer.echo(json.dumps({"shop": shop, "name": answer.get("name"), "domain": domain,
                               "plan": plan.get("displayName"), "plus": plus, "currency": currency,
                               "configured_plan": s.plan, "warnings": warnings}))
        return
    out.print(f"{shop}: {answer.get('name')} ({domain or s.domain}), plan {plan.get('displayName') or '?'} "
              f"({'Plus' if plus else 'not Plus'}), currency {currency or '?'}: the token works", soft_wrap=True,
              highlight=False)
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True, highlight=False)


@shopify.command("webhooks")
def shopify_webhooks(
    shop: ShopName,
    url: Annotated[str | None, typer.Option("--url", help="The hub's public URL of POST /shopify/webhooks "
                                                          "(default: the shop's webhook_url).")] = None,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """Subscribe the shop's order webhooks to the hub; topics already subscribed to that URL are left as they
    are, so running it again changes nothing."""
    from ordersync.channels.shopify import operations as ops

    settings = _settings(data_dir, store, config)
    s = _shop_settings(settings, shop)
    uri = (url or s.webhook_url).strip()
    if not uri:
        raise _fail(f"no webhook URL for shop {shop}: pass --url https://<hub>/shopify/webhooks or set webhook_url", 2)
    if not uri.rstrip("/").endswith("/shopify/webhooks"):
        raise _fail(f"{uri} is not the hub's webhook endpoint: the URL must end with /shopify/webhooks", 2)
    client = _shopify_client(settings, shop)
    rows: list[dict[str, str]] = []
    try:
        existing = list(client.pages(ops.WEBHOOK_SUBSCRIPTIONS, {}, ("webhookSubscriptions",), page_size=100))
        ours = {n["topic"]: n for n in existing if n.get("uri") == uri}
        for topic in ops.WEBHOOK_TOPICS:
            if topic in ours:
                rows.append({"topic": topic, "state": "exists", "id": ours[topic]["id"], "uri": uri})
                continue
            made = client.execute(ops.WEBHOOK_CREATE, {"topic": topic, "uri": uri})["webhookSubscriptionCreate"]
            problems = "; ".join(e.get("message", "") for e in made.get("userErrors") or [])
            if problems or not made.get("webhookSubscription"):
                raise _fail(f"Shopify refused the {topic} subscription to {uri}: {problems or 'no subscription'}")
            rows.append({"topic": topic, "state": "created", "id": made["webhookSubscription"]["id"], "uri": uri})
        others = [n for n in existing if n.get("uri") != uri]
    except _shopify_errors() as exc:
        raise _shopify_failure(exc, f"webhooks of shop {shop}", s) from None
    finally:
        client.close()
    rows += [{"topic": n["topic"], "state": "elsewhere", "id": n["id"], "uri": n.get("uri", "")} for n in others]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(title=f"webhooks of {shop} ({s.domain})")
    for col in ("topic", "state", "subscription", "uri"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["topic"], r["state"], r["id"], r["uri"])
    out.print(table)
    created = sum(r["state"] == "created" for r in rows)
    out.print(f"{created} created, {sum(r['state'] == 'exists' for r in rows)} already there"
                  + (f"; {len(others)} subscription(s) to other URLs left as they are" if others else ""))


@shopify.command("sync")
def shopify_sync(
    shop: ShopName,
    prices: Annotated[bool, typer.Option("--prices", help="Push contract prices (per-company catalogs).")] = False,
    stock: Annotated[bool, typer.Option("--stock", help="Push stock per location.")] = False,
    terms: Annotated[bool, typer.Option("--terms", help="Push payment terms.")] = False,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """Push prices, stock and payment terms to the shop now (all three unless some are named) and print
    what each push did."""
    hub = _hub(data_dir, store, config)
    reports: dict[str, Any] = {}
    try:
        channel = _shopify_channel(hub, shop)
        sync = channel.syncs.get(shop)
        if sync is None:
            raise _fail(f"shop {shop} has no price and stock sync here (it needs an ERP: [[erp]] in ordersync.toml)")
        chosen = [k for k, on in (("prices", prices), ("stock", stock), ("terms", terms)) if on] or \
            ["prices", "stock", "terms"]
        pushes = {"prices": sync.push_prices, "stock": sync.push_stock, "terms": sync.push_payment_terms}
        for what in chosen:
            console.print(f"{shop}: pushing {what} ...", highlight=False)
            started = time.perf_counter()
            try:
                reports[what] = pushes[what]()
            except _shopify_errors() as exc:
                raise _shopify_failure(exc, f"the {what} push to {shop} stopped", channel.shop(shop).settings) \
                    from None
            console.print(f"{shop}: {what} pushed in {time.perf_counter() - started:.1f} s", highlight=False)
    finally:
        hub.close()
    failed = [what for what, report in reports.items() if _has_errors(report)]
    if as_json:
        typer.echo(json.dumps(reports, default=str))
    else:
        for what, report in reports.items():
            out.print(f"[bold]{what}[/bold]")
            for key, value in (report or {}).items():
                if key not in ("shop", "at", "finished_at", "push"):
                    out.print(f"  {key}: {_short(value)}", soft_wrap=True, highlight=False)
    if failed:
        raise _fail(f"the {' and '.join(failed)} push reported errors (above); fix them in Shopify or the ERP and "
                    "push again")


def _short(value: Any) -> str:
    """A report's value on one line: a list as its length and first items, a mapping as its figures
    (Shopify ids left out)."""
    if isinstance(value, list):
        return f"{len(value)}" + (": " + ", ".join(map(str, value[:10])) + (" ..." if len(value) > 10 else "")
                                  if value else "")
    if isinstance(value, dict):
        said = [f"{k} ({_short(v)})" if isinstance(v, dict) else f"{k} {_short(v)}" for k, v in value.items()
                if not (isinstance(v, str) and v.startswith("gid://"))]
        return ", ".join(said)
    return str(value)


def _has_errors(report: Any) -> bool:
    if not isinstance(report, dict):
        return False
    return bool(report.get("errors")) or any(_has_errors(v) for v in report.values() if isinstance(v, dict))


@shopify.command("reconcile")
def shopify_reconcile(
    shop: ShopName,
    since: Annotated[str | None, typer.Option("--since", help="Look at orders updated since (ISO time or 2h, "
                                                              "7d ago); default: the watermark minus the "
                                                              "overlap.")] = None,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """Run the reconciliation sweep now: take in the orders no webhook brought, and print what it found.
    Exits 1 when some orders could not be looked at (the watermark then stays)."""
    start = parse_when(since)
    hub = _hub(data_dir, store, config)
    try:
        channel = _shopify_channel(hub, shop)
        try:
            report = channel.inbound.reconcile(shop, since=start).as_dict()
        except _shopify_errors() as exc:
            raise _shopify_failure(exc, f"reconciliation of {shop}", channel.shop(shop).settings) from None
    finally:
        hub.close()
    if as_json:
        typer.echo(json.dumps(report, default=str))
    else:
        out.print(f"{shop}: {report['seen']} order(s) updated since {report['since']}, {report['known']} already "
                  f"taken in; watermark {report['watermark'] or 'unchanged'} ({report['seconds']} s)",
                  soft_wrap=True, highlight=False)
        for key, label in (("taken", "taken in (no webhook had brought them)"), ("updated", "updated"),
                           ("unmatched", "waiting for a company mapping (ordersync shopify map)"),
                           ("refused", "refused (each has a case)"), ("ignored", "ignored"), ("errors", "errors")):
            if report[key]:
                out.print(f"  {label}: {', '.join(report[key])}", soft_wrap=True, highlight=False)
    if report["errors"]:
        raise typer.Exit(1)


@shopify.command("events")
def shopify_events(
    shop: Annotated[str | None, typer.Option("--shop", help="Only this shop's.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="received, waiting, processed, stale, ignored, "
                                                              "failed")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """The latest webhook events kept, newest first: what came, how often, and what became of it."""
    from sqlalchemy import select

    from ordersync.store.db import Database
    from ordersync.store.schema import shopify_events as t

    db = Database(_settings(data_dir, store, config).store_url)
    db.migrate()
    query = select(t.c.id, t.c.shop, t.c.event_id, t.c.topic, t.c.resource_id, t.c.triggered_at, t.c.received_at,
                   t.c.deliveries, t.c.state, t.c.attempts, t.c.detail)
    if shop:
        query = query.where(t.c.shop == shop)
    if state:
        query = query.where(t.c.state == state)
    with db.read() as conn:
        rows = [dict(r) for r in conn.execute(query.order_by(t.c.received_at.desc()).limit(limit)).mappings()]
    db.dispose()
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    if not rows:
        out.print("no webhook events match")
        return
    table = Table(title=f"Shopify webhook events ({len(rows)})")
    for col in ("event", "shop", "topic", "order", "deliveries", "state", "received", "detail"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["event_id"], r["shop"], r["topic"], r["resource_id"].rsplit("/", 1)[-1],
                      str(r["deliveries"]), r["state"], r["received_at"].strftime("%Y-%m-%d %H:%M:%S"),
                      r["detail"][:120])
    out.print(table)


@shopify.command("map")
def shopify_map(
    shop: ShopName,
    shopify_id: Annotated[str, typer.Argument(help="The company or company location (gid://shopify/Company"
                                                   "Location/... or gid://shopify/Company/...).")],
    account: Annotated[str, typer.Argument(help="The ERP account its orders are for.")],
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
) -> None:
    """Map a Shopify company or company location to an ERP account (kept in the store, with who mapped it; it
    wins over the configuration). The shop's orders waiting for a mapping are taken in now, and their cases
    resolved with a note (the same as mapping it on /ops/shopify)."""
    hub = _hub(data_dir, store, config)
    try:
        channel = _shopify_channel(hub, shop)
        try:
            user = _os_user()
            done = channel.inbound.map_and_take(shop, shopify_id, account, actor=f"cli:{user}",
                                                by=f"{user} (ordersync shopify map)", source="cli")
        except ValueError as exc:
            raise _fail(f"{exc}: name an active account of the ERP") from None
        except _shopify_errors() as exc:
            raise _fail(f"the ERP's accounts could not be read ({exc}); try again when it answers") from None
        out.print(f"{shop}: {shopify_id} is ERP account {account}", soft_wrap=True, highlight=False)
        if done.failure is not None:
            raise _shopify_failure(done.failure, "the mapping is kept, but the waiting orders could not be taken now "
                                   "(run the command again)", channel.shop(shop).settings) from None
    finally:
        hub.close()
    taken = [f"{name} (hub order {order_id})" for name, order_id in done.taken]
    out.print((f"{done.worked} of {done.events} waiting webhook event(s) worked now; " if done.events else "")
              + f"{len(taken)} waiting order(s) taken in" + (f": {', '.join(taken)}" if taken else ""),
              soft_wrap=True, highlight=False)


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


@apikey.command("create")
def apikey_create(
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. 'Rheinland portal'.")],
    client: Annotated[str, typer.Option("--client", help="portal, dealer_app, storefront, ops, edi, wms, "
                                                         "integration")] = "portal",
    scope: Annotated[list[str] | None, typer.Option("--scope", help="Repeat: catalog:read (default), orders:read, "
                                                                    "orders:write, returns:write, invoices:write, "
                                                                    "fulfillment:write, ops, admin")] = None,
    account: Annotated[str | None, typer.Option("--account", help="Bind the key to this account.")] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Channel of orders placed with it.")] = None,
    rate: Annotated[int, typer.Option("--rate", help="Requests per minute.")] = 600,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    from ordersync.api.keys import KeyService
    from ordersync.store.db import Database

    settings = _settings(data_dir, store, config)
    db = Database(settings.store_url)
    db.migrate()
    token, info = KeyService(db, _clock()).create(name, client, scope or ["catalog:read"], account_id=account,
                                                  channel=channel, rate_per_minute=rate)
    console.print(f"created key {info.id} ({info.client}, channel {info.channel}, "
                  f"{'account ' + info.account_id if info.account_id else 'any account'}, "
                  f"scopes {' '.join(info.scopes)}, {info.rate_per_minute}/min). Store it now; it is not shown again:")
    out.print(token)


@apikey.command("list")
def apikey_list(
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """List API keys (never their secrets)."""
    from ordersync.api.keys import KeyService
    from ordersync.store.db import Database

    db = Database(_settings(data_dir, store, config).store_url)
    db.migrate()
    keys = KeyService(db, _clock()).list(include_revoked)
    if as_json:
        out.print_json(json.dumps([vars(k) for k in keys], default=str))
        return
    table = Table(title=f"API keys ({len(keys)})")
    for col in ("id", "name", "client", "channel", "account", "scopes", "rate/min", "created", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(k.id, k.name, k.client, k.channel, k.account_id or "(any)", " ".join(k.scopes),
                      str(k.rate_per_minute), k.created_at.strftime("%Y-%m-%d %H:%M"),
                      k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "")
    out.print(table)


@apikey.command("revoke")
def apikey_revoke(key_id: str, data_dir: DataDir = None, store: Store = None, config: ConfigFile = None) -> None:
    """Revoke an API key (it stops working within seconds)."""
    from ordersync.api.keys import KeyService
    from ordersync.store.db import Database

    db = Database(_settings(data_dir, store, config).store_url)
    info = KeyService(db, _clock()).revoke(key_id)
    out.print(f"revoked key {info.id} ({info.name}) at {info.revoked_at}")


def _people(data_dir: Path | None, store: str | None, config: Path | None):  # type: ignore[no-untyped-def]
    from ordersync.store.db import Database
    from ordersync.web.people import People

    db = Database(_settings(data_dir, store, config).store_url)
    db.migrate()
    return People(db, _clock())


Roles = Annotated[list[str], typer.Option("--role", help="Repeat. Staff: operations, finance, commerce, "
                                                          "customer_service, admin. Buyers: buyer, approver, "
                                                          "viewer, admin.")]


@people_cli.command("invite")
def people_invite(
    email: Annotated[str, typer.Argument(help="Their e-mail address (they sign in with it).")],
    role: Roles,
    name: Annotated[str, typer.Option("--name", help="Their name as shown and recorded.")] = "",
    account: Annotated[str | None, typer.Option("--account", help="A buyer of this account (else: staff).")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="The hub's address as people reach it "
                                                 "(default: [alerts] public_base_url, else http://127.0.0.1:8000).")]
        = None,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
) -> None:
    """Invite a person: prints the link where they choose their password (valid 7 days; pass it on). With
    ``[alerts.smtp]`` configured, the link is e-mailed to them too."""
    from ordersync.bootstrap import smtp_mailer
    from ordersync.domain.errors import ValidationFailed
    from ordersync.web.people import BUYER, STAFF, mail_invitation

    settings = _settings(data_dir, store, config)
    base_url = base_url or settings.alerts.public_base_url or "http://127.0.0.1:8000"
    kind = BUYER if account else STAFF
    try:
        invitation = _people(data_dir, store, config).invite(kind, email, name, role, account_id=account,
                                                             invited_by="cli")
    except ValidationFailed as exc:
        console.print(f"[red]not invited:[/red] {exc}")
        raise typer.Exit(2) from None
    who = f"buyer of {account}" if account else "staff"
    console.print(f"invited {invitation.person.email} ({who}; roles {', '.join(invitation.person.roles)}); "
                  f"the link is valid until {invitation.expires:%Y-%m-%d %H:%M} UTC:")
    link = f"{base_url.rstrip('/')}{invitation.path('portal' if account else 'ops')}"
    out.print(link, markup=False, highlight=False, soft_wrap=True)
    mailed = mail_invitation(smtp_mailer(settings), invitation, link)
    if mailed is not None:
        console.print(mailed, markup=False, highlight=False)


@people_cli.command("list")
def people_list(
    account: Annotated[str | None, typer.Option("--account", help="Only this account's buyers.")] = None,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """List the people who may sign in (never their passwords)."""
    found = _people(data_dir, store, config).listed(account_id=account)
    if as_json:
        out.print_json(json.dumps([{k: v for k, v in vars(p).items()} for p in found], default=str))
        return
    table = Table(title=f"People ({len(found)})")
    for col in ("email", "name", "kind", "account", "roles", "state", "sign-in", "last sign-in"):
        table.add_column(col)
    for p in found:
        ways = ", ".join(w for w, on in (("password", p.has_password), ("identity provider", p.oidc_linked)) if on)
        table.add_row(p.email, p.name, p.kind, p.account_id or "", ", ".join(p.roles), p.state, ways,
                      p.last_signin_at.strftime("%Y-%m-%d %H:%M") if p.last_signin_at else "")
    out.print(table)


@people_cli.command("roles")
def people_roles(email: str, role: Roles, data_dir: DataDir = None, store: Store = None,
                 config: ConfigFile = None) -> None:
    """Replace a person's roles."""
    people = _people(data_dir, store, config)
    person = people.find(email)
    if person is None:
        console.print(f"[red]no person {email}[/red]")
        raise typer.Exit(1)
    person = people.set_roles(person.id, role)
    out.print(f"{person.email}: roles {', '.join(person.roles)}")


@people_cli.command("disable")
def people_disable(email: str, data_dir: DataDir = None, store: Store = None, config: ConfigFile = None) -> None:
    """Disable a person: no more sign-ins, and their sessions end now."""
    people = _people(data_dir, store, config)
    person = people.find(email)
    if person is None:
        console.print(f"[red]no person {email}[/red]")
        raise typer.Exit(1)
    people.disable(person.id)
    out.print(f"disabled {person.email}; their sessions have ended")


@subscriptions.command("add")
def subscriptions_add(
    name: Annotated[str, typer.Argument(help="Who receives the events, e.g. 'CRM'.")],
    url: Annotated[str, typer.Option("--url", help="Where events are POSTed (http:// or https://).")],
    event_type: Annotated[list[str] | None, typer.Option("--type", help="Repeat: order.accepted, "
                                                         "order.state_changed, erp.shipment_changed, ...; "
                                                         "'*' for all (default).")] = None,
    secret: Annotated[str | None, typer.Option("--secret", help="The shared signing secret (16+ characters).")]
    = None,
    secret_env: Annotated[str | None, typer.Option("--secret-env", help="Read the secret from this "
                                                                         "environment variable.")] = None,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
) -> None:
    """Subscribe a URL to hub events. Without --secret/--secret-env a secret is made and printed once."""
    import os

    from ordersync.runtime.outbound import SubscriptionService
    from ordersync.store.db import Database

    if secret and secret_env:
        raise typer.BadParameter("give --secret or --secret-env, not both")
    if secret_env:
        if secret_env not in os.environ:
            raise ConfigError(f"environment variable {secret_env} is not set")
        secret = os.environ[secret_env]
    db = Database(_settings(data_dir, store, config).store_url)
    db.migrate()
    made, info = SubscriptionService(db, _clock()).add(name, url, event_type or ["*"], secret=secret)
    # with a secret made here, stdout holds the secret alone (as `apikey create` the key)
    (console if secret is None else out).print(f"created subscription {info.id} ({info.name}) to {info.url} for "
                                               f"{' '.join(info.types)}; the worker sends from the next event on")
    if secret is None:
        console.print("signing secret (store it with the receiver now; it is not shown again):")
        out.print(made)


@subscriptions.command("list")
def subscriptions_list(
    include_removed: Annotated[bool, typer.Option("--all", help="Include removed subscriptions.")] = False,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """List subscriptions with their deliveries pending, delivered and dead (never their secrets)."""
    from ordersync.runtime.outbound import SubscriptionService
    from ordersync.store.db import Database

    db = Database(_settings(data_dir, store, config).store_url)
    db.migrate()
    subs = SubscriptionService(db, _clock()).list(include_removed)
    if as_json:
        out.print_json(json.dumps([vars(x) for x in subs], default=str))
        return
    table = Table(title=f"subscriptions ({len(subs)})")
    for col in ("id", "name", "url", "types", "pending", "delivered", "dead", "created", "removed"):
        table.add_column(col, overflow="fold")
    for x in subs:
        table.add_row(x.id, x.name, x.url, " ".join(x.types), str(x.pending), str(x.delivered), str(x.dead),
                      x.created_at.strftime("%Y-%m-%d %H:%M"),
                      x.removed_at.strftime("%Y-%m-%d %H:%M") if x.removed_at else "")
    out.print(table)


@subscriptions.command("remove")
def subscriptions_remove(sub_id: str, data_dir: DataDir = None, store: Store = None,
                         config: ConfigFile = None) -> None:
    """Remove a subscription: nothing more is sent to it, and its waiting deliveries are cancelled."""
    from ordersync.runtime.outbound import SubscriptionService
    from ordersync.store.db import Database

    db = Database(_settings(data_dir, store, config).store_url)
    info = SubscriptionService(db, _clock()).remove(sub_id)
    out.print(f"removed subscription {info.id} ({info.name}); {info.dead} dead-lettered deliveries stay "
                  "in `ordersync dlq`")


def _clock() -> Any:
    from ordersync.domain.clock import SystemClock

    return SystemClock()


# -- dead letters -----------------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+)([smhd])$")


def parse_when(value: str | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """ISO 8601 time, or a duration ago like ``30m``, ``2h``, ``7d``."""
    if value is None:
        return None
    now = now or dt.datetime.now(dt.UTC)
    m = _DURATION.match(value.strip())
    if m:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return now - dt.timedelta(seconds=int(m.group(1)) * unit)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r}: use ISO 8601 (2026-11-27T10:00) or a duration like 2h") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _filter(ids: list[str] | None, consumer: str | None, type_: str | None, reason: str | None,
            error: str | None, order: str | None, since: str | None, until: str | None,
            status: str) -> Any:
    from ordersync.messaging.deadletters import DeadLetterFilter

    return DeadLetterFilter(
        status=None if status == "any" else status, consumer=consumer, type=type_, reason=reason,
        error=error, correlation_id=order, since=parse_when(since), until=parse_when(until),
        ids=tuple(ids or ()),
    )


Consumer = Annotated[str | None, typer.Option("--consumer", help="Only this consumer.")]
TypeOpt = Annotated[str | None, typer.Option("--type", help="Only this message type.")]
Reason = Annotated[str | None, typer.Option("--reason", help="malformed, unknown_type, schema_violation, "
                                                             "exhausted, rejected, not_retryable")]
ErrorOpt = Annotated[str | None, typer.Option("--error", help="Error text contains this.")]
OrderOpt = Annotated[str | None, typer.Option("--order", help="Only letters about this order id.")]
Since = Annotated[str | None, typer.Option("--since", help="Dead since (ISO time or 30m, 2h, 7d ago).")]
Until = Annotated[str | None, typer.Option("--until", help="Dead before (ISO time or duration ago).")]
Status = Annotated[str, typer.Option("--status", help="dead, replayed or any.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@dlq.command("list")
def dlq_list(
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
    consumer: Consumer = None, type_: TypeOpt = None, reason: Reason = None, error: ErrorOpt = None,
    order: OrderOpt = None, since: Since = None, until: Until = None, status: Status = "dead",
    limit: Annotated[int, typer.Option("--limit")] = 50, as_json: AsJson = False,
) -> None:
    """List dead letters, newest first."""
    hub = _hub(data_dir, store, config, erp=False)
    flt = _filter(None, consumer, type_, reason, error, order, since, until, status)
    letters = hub.dead_letters.list(flt, limit=limit)
    total = hub.dead_letters.count(flt)
    if as_json:
        out.print_json(json.dumps([_letter_json(x, body=False) for x in letters], default=str))
        return
    if not letters:
        out.print("no dead letters match")
        return
    table = Table(title=f"dead letters ({len(letters)} of {total})")
    for col in ("id", "dead at", "consumer", "type", "order", "reason", "attempts", "error"):
        table.add_column(col, overflow="fold")
    for x in letters:
        table.add_row(x.id, x.dead_at.strftime("%Y-%m-%d %H:%M:%S"), x.consumer, x.type or "?",
                      x.correlation_id or "", x.reason, str(x.attempts), x.error[:80])
    out.print(table)


@dlq.command("show")
def dlq_show(letter_id: str, data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
             as_json: AsJson = False) -> None:
    """Show one dead letter: error, attempt history and the message as received."""
    hub = _hub(data_dir, store, config, erp=False)
    letter = hub.dead_letters.get(letter_id)
    if as_json:
        out.print_json(json.dumps(_letter_json(letter, body=True), default=str))
        return
    out.print(f"[bold]{letter.id}[/bold]  {letter.status}  consumer {letter.consumer}")
    out.print(f"type {letter.type}  message {letter.message_id}  order {letter.correlation_id}")
    out.print(f"reason {letter.reason}: {letter.error}")
    out.print(f"dead at {letter.dead_at.isoformat()} after {letter.attempts} attempt(s); "
              f"replayed {letter.replay_count} time(s)")
    for h in letter.history:
        out.print(f"  attempt {h.get('attempt')} at {h.get('at')}: {h.get('error')}  [{h.get('where', '')}]")
    out.print("message:")
    try:
        out.print_json(letter.body)
    except Exception:
        out.print(repr(letter.body))


@dlq.command("replay")
def dlq_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead letter ids; or use filters / --all.")] = None,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
    consumer: Consumer = None, type_: TypeOpt = None, reason: Reason = None, error: ErrorOpt = None,
    order: OrderOpt = None, since: Since = None, until: Until = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead letter matching the filters.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would run; change nothing.")] = False,
    as_json: AsJson = False,
) -> None:
    """Put dead letters back on their consumer's queue (one by one by id, or in bulk by filter)."""
    if not ids and not all_ and not any((consumer, type_, reason, error, order, since, until)):
        raise typer.BadParameter("name dead letter ids, give a filter, or pass --all")
    hub = _hub(data_dir, store, config, erp=False)
    flt = _filter(ids, consumer, type_, reason, error, order, since, until, "dead")
    if ids:
        for letter_id in ids:
            hub.dead_letters.get(letter_id)  # NotFound -> clear message
    report = hub.dead_letters.replay(flt, dry_run=dry_run)
    if as_json:
        out.print_json(json.dumps({"dry_run": dry_run, "count": report.count,
                                   "items": [vars(i) for i in report.items]}))
        return
    verb = "would replay" if dry_run else "replayed"
    for item in report.items:
        out.print(f"{verb} {item.id}  {item.consumer}  {item.type}  order {item.correlation_id}: {item.outlook}")
    out.print(f"{verb} {report.count} dead letter(s)" + ("; nothing was changed" if dry_run else
                  "; run `ordersync worker` (or the demo) to process them"))


# -- contracts: drift and quarantine (docs/contracts.md) ------------------------------------------------

@drift_cli.command("list")
def drift_list(
    source: Annotated[str | None, typer.Option("--source", help="Only this source, e.g. wms.event.")] = None,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """How inbound payloads drifted from their schemas, per source, field and kind; the latest first."""
    from ordersync.store import drift as drift_store

    hub = _hub(data_dir, store, config, erp=False)
    try:
        with hub.db.read() as conn:
            rows = drift_store.drift(conn, source=source)
    finally:
        hub.close()
    if as_json:
        out.print_json(json.dumps([dict(r) for r in rows], default=str))
        return
    table = Table(title=f"Drift ({len(rows)})")
    for col in ("source", "field", "kind", "expected", "seen", "count", "first seen", "last seen", "sample", "case"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["source"], r["field"], r["kind"], r["expected"], r["seen"], str(r["count"]),
                      r["first_seen_at"].strftime("%Y-%m-%d %H:%M"), r["last_seen_at"].strftime("%Y-%m-%d %H:%M"),
                      r["sample"][:60], r["case_id"] or "")
    out.print(table)


@drift_cli.command("quarantined")
def drift_quarantined(
    status: Annotated[str, typer.Option("--status", help="held, replayed, discarded or any.")] = "held",
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """Payloads that could not be processed and are kept until they are replayed; the newest first."""
    from ordersync.store import drift as drift_store

    if status not in (*drift_store.STATUSES, "any"):
        raise typer.BadParameter(f"--status is one of {', '.join(drift_store.STATUSES)}, any")
    hub = _hub(data_dir, store, config, erp=False)
    try:
        with hub.db.read() as conn:
            rows = drift_store.quarantined(conn, status=None if status == "any" else status)
    finally:
        hub.close()
    if as_json:
        out.print_json(json.dumps([{k: v for k, v in r.items() if k != "body"} for r in rows], default=str))
        return
    table = Table(title=f"Quarantined payloads ({len(rows)})")
    for col in ("id", "source", "received", "status", "deliveries", "replays", "reason", "last outcome"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["id"], r["source"], r["received_at"].strftime("%Y-%m-%d %H:%M:%S"), r["status"],
                      str(r["deliveries"]), str(r["replay_count"]), r["reason"][:120], r["outcome"][:120])
    out.print(table)


@drift_cli.command("show")
def drift_show(entry_id: str, data_dir: DataDir = None, store: Store = None, config: ConfigFile = None) -> None:
    """One quarantined payload: why, what became of it, and its body exactly as received."""
    from ordersync.store import drift as drift_store

    hub = _hub(data_dir, store, config, erp=False)
    try:
        with hub.db.read() as conn:
            row = drift_store.entry(conn, entry_id)
    finally:
        hub.close()
    if row is None:
        raise NotFound(f"no quarantined payload {entry_id}")
    out.print(f"[bold]{row['id']}[/bold]  {row['source']}  {row['status']}  received {row['received_at'].isoformat()} "
              f"({row['deliveries']} deliveries, {row['replay_count']} replays)")
    out.print(f"reason: {row['reason']}")
    if row["outcome"]:
        out.print(f"last outcome: {row['outcome']}")
    if row["case_id"]:
        out.print(f"case {row['case_id']} (/ops/cases/{row['case_id']})")
    out.print("body:")
    sys.stdout.write(bytes(row["body"]).decode("utf-8", "replace") + "\n")


@drift_cli.command("replay")
def drift_replay(
    entry_id: str,
    body: Annotated[Path | None, typer.Option("--body", exists=True, dir_okay=False,
                                              help="Replay this corrected body instead of the one kept.")] = None,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
) -> None:
    """Process a quarantined payload again (after a fix of the hub, or with a corrected --body). It is
    settled as replayed, or stays held with the new reason."""
    import ordersync.server  # noqa: F401  (its routes register each inbound source's replay)
    from ordersync.runtime.contracts import replay

    hub = _hub(data_dir, store, config)
    try:
        result = replay(hub, entry_id, body.read_bytes() if body is not None else None, actor=_actor())
    finally:
        hub.close()
    out.print(f"{result.entry_id}: {result.status}: {result.outcome}")
    if result.status != "replayed":
        raise typer.Exit(1)


@drift_cli.command("discard")
def drift_discard(
    entry_id: str,
    reason: Annotated[str, typer.Option("--reason", help="Why it is not to be processed (kept with it).")],
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
) -> None:
    """Settle a quarantined payload without processing it (the sender sent it again fixed, say)."""
    from ordersync.runtime.contracts import discard

    hub = _hub(data_dir, store, config, erp=False)
    try:
        discard(hub, entry_id, reason, actor=_actor())
    finally:
        hub.close()
    out.print(f"{entry_id}: discarded")


def _actor() -> str:
    return f"cli:{os.environ.get('USER', 'operator')}"


@app.command()
def prune(
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; change nothing.")] = False,
    as_json: AsJson = False,
) -> None:
    """Delete processed outbox events, inbox records and idempotency keys older than [retention] keep_days.

    Workers do this every [retention] check_seconds by themselves; this runs one pass now."""
    from ordersync.messaging.retention import Pruned

    hub = _hub(data_dir, store, config, erp=False)
    keep = hub.settings.retention.keep_days
    counts = vars(hub.retention.run(dry_run=dry_run) if hub.retention is not None else Pruned())
    if as_json:
        out.print_json(json.dumps({"dry_run": dry_run, "keep_days": keep, **counts}))
        return
    if not keep:
        out.print("retention is off ([retention] keep_days = 0): nothing is ever deleted")
        return
    verb = "would delete" if dry_run else "deleted"
    out.print(f"{verb} {counts['outbox']} outbox event(s), {counts['inbox']} inbox record(s) and "
                  f"{counts['idempotency_keys']} idempotency key(s) older than {keep:g} days"
                  + ("; nothing was changed" if dry_run else ""))


def _letter_json(letter: Any, body: bool) -> dict[str, Any]:
    data = {k: v for k, v in vars(letter).items() if body or k != "body"}
    return data


@app.command()
def reconcile(
    since: Annotated[str | None, typer.Option("--since", help="Only hub orders updated and ERP sales changed since "
                                                              "(ISO time, or 30m, 2h, 7d ago); default: "
                                                              "everything.")] = None,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """Compare the hub with its ERPs (and the channels' own checks) now; print what it found.

    Every discrepancy gets one erp_discrepancy case (a second run updates it, never opens another). Exit
    code: 0 when the sides agree, 1 when discrepancies were found, 2 when a side could not be read (or the
    hub has no ERP, or a worker is reconciling at the same moment). Results go to stdout, progress to
    stderr."""
    start = parse_when(since)
    hub = _hub(data_dir, store, config)
    try:
        if hub.reconciler is None:
            console.print("[red]no ERP is configured: nothing to reconcile[/red]")
            raise typer.Exit(2)
        # the worker's job takes the same turn: two runs at once could each open a case for one discrepancy
        with hub.db.exclusive("periodic:reconciliation") as mine:
            if not mine:
                console.print("[red]a worker is reconciling right now; try again when it is done[/red]")
                raise typer.Exit(2)
            report = hub.reconciler.run(since=start, progress=lambda text: console.print(text, highlight=False))
    finally:
        hub.close()
    if as_json:
        typer.echo(json.dumps(report.as_json(), default=str))
    else:
        _print_reconciliation(report)
    if report.errors:
        raise typer.Exit(2)
    if report.outcomes:
        raise typer.Exit(1)


def _print_reconciliation(report: Any) -> None:
    scope = f"since {report.since.isoformat()}" if report.since else "everything"
    out.print(f"reconciliation ({scope}): {report.hub_sales} hub sale(s), {report.erp_sales} ERP sale(s), "
              f"{len(report.outcomes)} discrepancy(ies), {len(report.resolved)} resolved", soft_wrap=True,
              highlight=False)
    for o in report.outcomes:  # plain aligned text: readable on a terminal, whole lines for grep
        d = o.discrepancy
        case = f"case {o.case_id} ({o.status})" if o.case_id else o.status
        out.print(f"{d.kind:<16} {d.subject}  order {d.order_id or '-'}  {case}", soft_wrap=True, highlight=False)
        width = max(len(diff.field) for diff in d.diffs)
        hub_width = max(len(diff.hub) for diff in d.diffs)
        for diff in d.diffs:
            out.print(f"    {diff.field:<{width}}  hub {diff.hub:<{hub_width}}  {d.other} {diff.erp}", soft_wrap=True,
                      highlight=False)
    for key in report.resolved:
        out.print(f"resolved (the sides agree now): {key}", highlight=False)
    for error in report.errors:
        out.print(f"[red]could not read[/red] {error}", highlight=False)


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where the demo keeps its store and ERP database.")]
    = Path(".ordersync/demo"),
    orders: Annotated[int, typer.Option("--orders", min=10, help="How many order deliveries to place.")] = 40,
    once: Annotated[bool, typer.Option("--once", help="Exit when every order has settled.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON line on stdout.")] = False,
    port: Annotated[int, typer.Option("--port", help="Port of the hub API on 127.0.0.1.")] = 8000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the storefront simulator.")] = 7,
    erp_db: Annotated[str, typer.Option("--erp-db", help="Where the demo's Tryton keeps its database: sqlite (a "
                                        "file in the data directory) or postgresql (the local server; "
                                        "ORDERSYNC_TRYTON_PG=postgresql://user@host:port/ to point elsewhere).")]
    = "sqlite",
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
    log_format: LogFormat = None,
    log_level: LogLevel = None,
) -> None:
    """The demo: a real Tryton ERP for a components manufacturer, the hub (API and worker) on the
    embedded default, and a storefront simulator placing a realistic mix of orders."""
    from ordersync.demo.run import DemoOptions, run

    _setup_logging(verbose, log_format, log_level or ("DEBUG" if verbose else "WARNING"))
    if erp_db not in ("sqlite", "postgresql"):
        console.print(f"[red]--erp-db must be sqlite or postgresql, not {erp_db!r}[/red]")
        raise typer.Exit(2)
    code = run(DemoOptions(data_dir=data_dir, orders=orders, once=once, as_json=as_json, port=port, seed=seed,
                           erp_db=erp_db))
    raise typer.Exit(code)


@erp_cli.command("serve")
def erp_serve(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where Tryton keeps its configuration, log and (on "
                                           "SQLite) its database.")] = Path(".ordersync/erp"),
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (fixed, for configuration files; the hub's API "
                                      "has 8000).")] = 8010,
    database: Annotated[str, typer.Option("--database", help="The database's name (the [[erp]] database).")] = "main",
    backend: Annotated[str, typer.Option("--db", help="sqlite (a file in --data-dir) or postgresql (--pg-uri).")]
    = "sqlite",
    pg_uri: Annotated[str | None, typer.Option("--pg-uri", help="trytond's PostgreSQL URI without a database, e.g. "
                                               "postgresql://postgres@127.0.0.1:5432/ (default: "
                                               "ORDERSYNC_TRYTON_PG or that).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Make the database again from the demo template.")] = False,
) -> None:
    """Run the bundled Tryton 8.2 with the demo manufacturer's data on a fixed port, until stopped.

    The database is made from the seeded template on the first start and kept afterwards. For the demo's
    scale-out form and trials: it is trytond's built-in development server, not Tryton's production
    server."""
    from ordersync.devkit.tryton.serve import ServeOptions, serve

    if backend not in ("sqlite", "postgresql"):
        raise _fail(f"--db must be sqlite or postgresql, not {backend!r}", 2)
    stop = threading.Event()
    _stop_on_signals(stop)
    opts = ServeOptions(data_dir=data_dir, host=host, port=port, database=database, backend=backend, pg_uri=pg_uri,
                        fresh=fresh)
    try:
        code = serve(opts, stop, lambda line: console.print(line, soft_wrap=True, markup=False, highlight=False))
    except OSError as exc:
        raise _fail(f"Tryton could not start: {exc}") from exc
    except RuntimeError as exc:  # TrytonServerError: it exited or never answered (its log's tail follows)
        raise _fail(f"Tryton could not start on {host}:{port}: {exc}") from exc
    raise typer.Exit(code)


# -- alerts ----------------------------------------------------------------------------------------------

@alerts_cli.command("test")
def alerts_test(
    team: Annotated[str, typer.Option("--team", help="The team whose channels to try ([[alerts.route]]).")],
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """Send a test notification through the team's configured channels now and print what happened
    (exit 1 if any channel failed). Nothing is recorded."""
    from ordersync.bootstrap import alert_policy, alert_senders, case_policy
    from ordersync.domain.alerts import trial_alert
    from ordersync.runtime.alerts import send_now

    settings = _settings(data_dir, store, config)
    policy = alert_policy(settings, case_policy(settings))
    results = send_now(trial_alert(team, policy, _clock().now()), policy, alert_senders(settings))
    if as_json:
        out.print_json(json.dumps([{"channel": c.value, "sent": ok, "detail": d} for c, ok, d in results]))
    else:
        for channel, ok, detail in results:
            out.print(f"{channel.value}: {'sent' if ok else 'FAILED'}: {detail}", markup=False, highlight=False)
    if not all(ok for _, ok, _ in results):
        raise typer.Exit(1)


@alerts_cli.command("status")
def alerts_status(
    unsent: Annotated[bool, typer.Option("--unsent", help="Only notifications not sent (pending, failed).")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    data_dir: DataDir = None, store: Store = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """The latest alert notifications, newest first: sent, pending (with the next attempt) or failed, with
    the last error."""
    from ordersync.runtime.alerts import status
    from ordersync.store.db import Database

    db = Database(_settings(data_dir, store, config).store_url)
    db.migrate()
    found = status(db, unsent_only=unsent, limit=limit)
    if as_json:
        out.print_json(json.dumps([vars(n) for n in found], default=str))
        return
    table = Table(title=f"Alert notifications ({len(found)})")
    for col in ("created", "key", "team", "channel", "state", "attempts", "next attempt / sent", "last error"):
        table.add_column(col)
    for n in found:
        when = n.sent_at if n.state == "sent" else n.next_attempt_at if n.state == "pending" else None
        table.add_row(f"{n.created_at:%Y-%m-%d %H:%M}", n.key, n.team, n.channel, n.state, str(n.attempts),
                      f"{when:%Y-%m-%d %H:%M:%S}" if when else "", n.last_error or "")
    out.print(table)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise SystemExit(2) from None
    except NotFound as exc:
        console.print(f"[red]not found:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise SystemExit(1) from None
    except Unavailable as exc:  # an ERP (or the bus) that does not answer: no traceback
        console.print(f"[red]unreachable:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise SystemExit(1) from None
    except OrdersyncError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise SystemExit(1) from None
    except Exception as exc:
        said = unreachable(exc)
        if said is None:
            raise
        console.print(f"[red]unreachable:[/red] {escape(said)}", soft_wrap=True, highlight=False)
        raise SystemExit(1) from None


def unreachable(exc: BaseException) -> str | None:
    """One line for a store or NATS server that cannot be reached, or None for any other exception
    (which keeps its traceback: a bug). An unreachable ERP is :class:`~ordersync.domain.errors.Unavailable`,
    an OrdersyncError, said on one line above."""
    import nats.errors
    from sqlalchemy.exc import InterfaceError, OperationalError

    from ordersync.adapters.erp.tryton.rpc import TrytonUnavailable
    from ordersync.doctor.checks import one_line

    if isinstance(exc, OperationalError | InterfaceError):
        return (f"the store's database cannot be used: {one_line(exc)} (check --store / store, and that the "
                "database server runs; `ordersync doctor` checks everything)")
    if isinstance(exc, nats.errors.Error):
        return f"NATS: {one_line(exc)} (check bus and that the servers run; `ordersync doctor` checks them)"
    if isinstance(exc, TrytonUnavailable):  # the adapter says Unavailable; a raw client's error, the same
        return f"the ERP does not answer: {one_line(exc)} (check [[erp]] url; `ordersync doctor` tries its login)"
    return None


if __name__ == "__main__":
    main()
