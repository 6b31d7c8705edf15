"""Run the demo: provision the Tryton ERP, start the hub (API + worker), place the scenario's orders
through the API with a progress bar, wait until every order settles, and report.

Layout of the data directory (``--data-dir``, default ``./.ordersync/demo``)::

    ordersync.db         the hub's SQLite store
    ordersync.toml       the configuration the demo ran with (ERP address and login)
    erp/main.sqlite      the Tryton database of the demo manufacturer (left for inspection; with
                         --erp-db postgresql it is the database ordersync_demo_<hash> of that server)
    erp/trytond.log      the ERP server's log
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select

from ordersync.bootstrap import build_hub
from ordersync.channels.storefront.simulator import Scenario, build, place
from ordersync.config import EdiSettings, ErpSettings, Settings, ShopifySettings, WebSettings, WmsSettings
from ordersync.demo import aftermath, edi_partner, shopify_store, sink
from ordersync.domain.lifecycle import REACHED_ERP
from ordersync.runtime.hub import Hub
from ordersync.store.schema import cases, orders, return_requests

#: states in which the submission process has nothing more to do by itself
SETTLED = {"accepted", "rejected", "cancelled", "on_hold", "in_fulfillment", "partially_shipped", "shipped",
           "invoiced", "closed"}

console = Console(stderr=True)


@dataclass
class DemoOptions:
    data_dir: Path
    orders: int = 40
    once: bool = False
    as_json: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    seed: int = 7
    timeout: float = 900.0
    #: where the demo's Tryton keeps its database: ``sqlite`` (a file under the data directory) or
    #: ``postgresql`` (a database on the local PostgreSQL server, ORDERSYNC_TRYTON_PG to point elsewhere)
    erp_db: str = "sqlite"


def run(opts: DemoOptions) -> int:
    from ordersync.devkit import demo_data

    started = time.monotonic()
    data_dir = opts.data_dir.resolve()
    erp_dir = _fresh(data_dir)
    server = _start_erp(erp_dir, opts.erp_db, data_dir)
    database = server.databases[0]
    user = demo_data.INTEGRATION_USER
    push = opts.erp_db == "postgresql"  # Tryton's bus (docs/erp-push.md): only PostgreSQL has one
    edi = edi_partner.partner_settings(data_dir)  # the demo's EDI customer, trading over a directory
    shop = shopify_store.start(f"http://{opts.host}:{opts.port}")  # the B2B store on Shopify (the double)
    wms_secret = _wms_secret(data_dir)  # the warehouse's webhook signs its events with it
    erp_password = _secret_file(data_dir, "erp-password", user["password"])  # the demo ERP's, kept out of the config
    settings = Settings(
        data_dir=data_dir,
        erp=[ErpSettings(name="main", kind="tryton", url=server.url, database=database, login=user["login"],
                         password_file=erp_password, push=push)],
        edi=EdiSettings(partners=[edi], poll_seconds=0.5),
        shopify=ShopifySettings(shops=[shop.settings], poll_seconds=0.5),
        web=WebSettings(seller=SELLER),
        wms=WmsSettings(secret_file=wms_secret),
    )
    _write_config(data_dir, server.url, database, user["login"], erp_password, push,
                  extra="\n[edi]\npoll_seconds = 0.5\n" + edi_partner.config_toml(edi)
                  + "\n[shopify]\npoll_seconds = 0.5\n" + shopify_store.config_toml(shop.settings)
                  + f"\n[web]\nseller = {SELLER!r}\n".replace("'", '"')
                  + f'\n[wms]\nsecret_file = "{wms_secret}"\n')
    hub = build_hub(settings)
    stop = threading.Event()
    api = _start_api(hub, opts)
    worker = threading.Thread(target=hub.worker.run_forever, args=(stop,), name="worker", daemon=True)
    worker.start()
    base = f"http://{opts.host}:{opts.port}"
    crm = _start_sink(hub)
    console.print(f"hub API  {base}/v1/docs   (OpenAPI {base}/v1/openapi.json)")
    console.print(f"ERP      Tryton at {server.url} (database {erp_dir / 'main.sqlite'})")
    console.print(f"CRM sink {crm.url} (subscribed to every event; GET it for what it received)")
    for area, who, link in _web_people(hub, base):
        console.print(f"{area:<8} {base}/{area:<8} {who}: choose a password at {link}", soft_wrap=True)
    console.print(f"EDI      {edi.name} ({edi.account_id}) drops X12 850s into {edi.inbox_dir}; our 997, 855, 856 "
                  f"and 810 appear in {edi.outbox_dir}   ({base}/ops/edi)", soft_wrap=True)
    console.print(f"WMS      signed warehouse and carrier events to {base}/v1/wms/events (HMAC-SHA256 secret in "
                  f"{wms_secret}; a key: ordersync apikey create --client wms --scope fulfillment:write)",
                  soft_wrap=True)
    console.print(f"Shopify  {shop.settings.domain} (the Shopify double, Admin API at {shop.settings.api_url}): "
                  f"three B2B companies order; webhooks to {shop.settings.webhook_url}   ({base}/ops/shopify)",
                  soft_wrap=True)
    try:
        pushed = shopify_store.connect(hub, shop)
        run_id = f"d{int(time.time()) % 100000}"
        purchase_orders = edi_partner.drop_orders(edi, max(3, min(10, opts.orders // 20)), seed=opts.seed,
                                                  run=run_id)
        shopify_store.place_orders(hub, shop, max(4, min(8, opts.orders // 10)), seed=opts.seed)
        scenario = build(opts.orders, seed=opts.seed, run=run_id)
        sent = place(base, scenario, _keys(hub), console)
        settled = _wait_settled(hub, scenario, opts.timeout)
        settled = edi_partner.wait_settled(hub, purchase_orders, opts.timeout) and settled
        settled = shopify_store.wait_settled(hub, shop, opts.timeout) and settled
        after = aftermath.run(hub, base, server.url, _buyer_key(hub), console, database=database,
                              wms=(_wms_key(hub), wms_secret.read_bytes().strip())) if settled else None
        summary = _summary(hub, scenario, sent, server, time.monotonic() - started, settled)
        summary["aftermath"] = after.summary() if after else None
        summary["edi"] = edi_partner.summary(hub, edi, purchase_orders)
        summary["shopify"] = shopify_store.summary(hub, shop, pushed)
        summary["crm_sink"] = {k: v for k, v in crm.summary(last=0).items() if k != "last"}
        summary["reconciliation"] = _reconcile(hub) if settled else None
        _report(summary, opts)
        if opts.once:
            return 0 if settled else 1
        console.print("[bold]the hub keeps serving; Ctrl-C stops it[/bold]")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping")
        return 0
    finally:
        crm.stop()
        stop.set()
        api.should_exit = True
        worker.join(timeout=30)
        hub.close()
        shop.stop()
        server.stop()


def _fresh(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in ("ordersync.db", "ordersync.db-wal", "ordersync.db-shm"):
        (data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(data_dir / "edi", ignore_errors=True)  # the EDI partner's directories of an earlier run
    erp_dir = data_dir / "erp"
    if erp_dir.exists():
        shutil.rmtree(erp_dir)
    erp_dir.mkdir()
    return erp_dir


def _start_erp(erp_dir: Path, erp_db: str = "sqlite", data_dir: Path | None = None) -> Any:
    from ordersync.devkit.tryton.home import TrytonHome
    from ordersync.devkit.tryton.server import TrytonServer
    from ordersync.devkit.tryton.template import (
        create_database,
        create_pg_database,
        ensure_pg_template,
        ensure_template,
        pg_uri,
    )

    with console.status("preparing the demo ERP (Tryton 8.2; the first run installs and seeds it, ~3 min)"):
        home = TrytonHome().ensure()
        if erp_db == "postgresql":
            # one database per demo data directory, made afresh from the template like the SQLite file
            name = "ordersync_demo_" + hashlib.sha256(str(data_dir or erp_dir).encode()).hexdigest()[:10]
            ensure_pg_template("main", home=home)
            create_pg_database("main", name, home=home, overwrite=True)
        else:
            ensure_template("main", home=home)
            create_database("main", erp_dir, "main", home=home)
    with console.status("starting the ERP server"):
        if erp_db == "postgresql":
            server = TrytonServer(erp_dir, [name], home=home, verbose=False, die_with_parent=True, db_uri=pg_uri())
        else:
            server = TrytonServer(erp_dir, ["main"], home=home, verbose=False, die_with_parent=True)
        server.start()
    return server


def _write_config(data_dir: Path, url: str, database: str, login: str, password_file: Path, push: bool = False,
                  extra: str = "") -> None:
    (data_dir / "ordersync.toml").write_text(
        "# written by `ordersync demo`: the demo's ERP (a local Tryton with demo credentials); secrets are in\n"
        "# files only their owner reads, named here, never written in this file\n"
        f'[[erp]]\nname = "main"\nkind = "tryton"\nurl = "{url}"\ndatabase = "{database}"\n'
        f'login = "{login}"\npassword_file = "{password_file}"\n' + ("push = true\n" if push else "") + extra
    )


def _start_api(hub: Hub, opts: DemoOptions) -> Any:
    import uvicorn

    from ordersync.server import create_app

    config = uvicorn.Config(create_app(hub), host=opts.host, port=opts.port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit(f"the hub API could not listen on {opts.host}:{opts.port} (is the port in use? "
                             "use --port)")
        time.sleep(0.05)
    return server


def _keys(hub: Hub) -> dict[str, str]:
    """One storefront key per simulated channel (not bound to an account: a B2B storefront serves many)."""
    from ordersync.api.keys import KeyService

    service = KeyService(hub.db, hub.clock)
    client = {"portal": "portal", "dealer-app": "dealer_app", "storefront": "storefront"}
    return {
        channel: service.create(f"demo {channel}", kind, ["orders:write", "orders:read", "catalog:read"],
                                channel=channel, rate_per_minute=6000)[0]
        for channel, kind in client.items()
    }


def _wms_secret(data_dir: Path) -> Path:
    """The warehouse webhook's HMAC secret, made once per data directory in a file only its owner reads
    (the configuration names the file; the secret itself is written nowhere else)."""
    import secrets

    path = data_dir / "secrets" / "wms-webhook"
    return path if path.exists() else _secret_file(data_dir, "wms-webhook", secrets.token_urlsafe(32))


def _secret_file(data_dir: Path, name: str, value: str) -> Path:
    """``<data dir>/secrets/<name>`` holding ``value``, readable by its owner only (0600 in a 0700 folder)."""
    import os

    path = data_dir / "secrets" / name
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return path


def _wms_key(hub: Hub) -> str:
    """The demo warehouse's API key (client ``wms``): it reports carrier events for shipped orders."""
    from ordersync.api.keys import KeyService

    return KeyService(hub.db, hub.clock).create("demo warehouse", "wms", ["fulfillment:write"],
                                                rate_per_minute=6000)[0]


def _reconcile(hub: Hub) -> dict[str, Any] | None:
    """The hub against Tryton and the channels once everything settled (``ordersync reconcile``): a
    clean run of the demo finds nothing."""
    if hub.reconciler is None:
        return None
    with console.status("reconciling the hub with Tryton, EDI and Shopify"):
        report = hub.reconciler.run()
    return {"hub_sales": report.hub_sales, "erp_sales": report.erp_sales, "errors": report.errors,
            "discrepancies": [f"{o.discrepancy.kind} {o.discrepancy.subject} ({o.status})" for o in report.outcomes]}


def _start_sink(hub: Hub) -> sink.Sink:
    """The CRM/notification service of the demo: a local receiver subscribed to every event."""
    import secrets

    from ordersync.runtime.outbound import SubscriptionService

    secret = secrets.token_urlsafe(32)
    receiver = sink.start(0, secret)
    SubscriptionService(hub.db, hub.clock).add("demo CRM", receiver.url, ["*"], secret=secret)
    return receiver


#: the demo manufacturer at the head of the portal's PDFs (its address as in the ERP's company)
SELLER = ["Kestrel Components GmbH", "Billbrookdeich 210", "22113 Hamburg", "Germany"]
#: the demo's people: (area, e-mail, name, roles, account); each is invited and picks a password
DEMO_PEOPLE = (
    ("ops", "olga@kestrel.example", "Olga Operations", ("operations", "admin"), None),
    ("ops", "fiona@kestrel.example", "Fiona Finance", ("finance",), None),
    ("portal", "rita@rheinland.example", "Rita Ries (Rheinland Industrial Supply)", ("admin",), "C-1001"),
)


def _web_people(hub: Hub, base: str) -> list[tuple[str, str, str]]:
    """People to try the dashboard and the buyer portal with: invited, each picks their own password at
    the printed link (no password is written anywhere). Returns (area, who, invitation link)."""
    from ordersync.web.people import BUYER, STAFF, People

    people = People(hub.db, hub.clock)
    links = []
    for area, email, name, roles, account in DEMO_PEOPLE:
        kind = BUYER if account else STAFF
        found = people.find(email)
        if found is not None and found.state != "invited":
            links.append((area, f"{name} <{email}>", "(already set: sign in)"))
            continue
        invitation = people.invite(kind, email, name, roles, account_id=account, invited_by="demo")
        links.append((area, f"{name} <{email}>", f"{base}{invitation.path(area)}"))
    return links


def _buyer_key(hub: Hub) -> str:
    """A key for the buyers' self-service in the demo (returns, disputes), not bound to one account."""
    from ordersync.api.keys import KeyService

    return KeyService(hub.db, hub.clock).create("demo buyers", "portal",
                                                ["orders:read", "returns:write", "invoices:write"],
                                                rate_per_minute=6000)[0]


def _states(hub: Hub, *, scenario_only: bool = False) -> dict[str, int]:
    """Orders by state; ``scenario_only``: the storefront simulator's alone (not the EDI partner's or the
    Shopify store's, which settle on their own clocks and must not count for the scenario's)."""
    query = select(orders.c.state, func.count()).group_by(orders.c.state)
    if scenario_only:
        query = query.where(orders.c.channel.not_like("edi-%"), orders.c.channel.not_like("shopify-%"))
    with hub.db.read() as conn:
        return {state: int(n) for state, n in conn.execute(query)}


def _wait_settled(hub: Hub, scenario: Scenario, timeout: float) -> bool:
    columns = (TextColumn("orders settled"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[detail]}"))
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("settled", total=scenario.unique_orders, detail="")
        while True:
            states = _states(hub, scenario_only=True)
            done = sum(n for s, n in states.items() if s in SETTLED)
            busy = ", ".join(f"{s} {n}" for s, n in sorted(states.items()) if s not in SETTLED)
            bar.update(task, completed=done, detail=busy)
            if done >= scenario.unique_orders and sum(states.values()) >= scenario.unique_orders:
                return True
            if time.monotonic() > deadline:
                console.print(f"[red]not every order settled within {timeout:.0f}s[/red]: {states}")
                return False
            time.sleep(0.25)


def _summary(hub: Hub, scenario: Scenario, sent: dict[str, int], server: Any, elapsed: float,
             settled: bool) -> dict[str, Any]:
    from ordersync.adapters.erp.tryton.rpc import TrytonClient
    from ordersync.devkit import demo_data

    user = demo_data.INTEGRATION_USER
    client = TrytonClient(server.url, server.databases[0], user["login"], user["password"])
    try:
        sales = client.call("sale.sale", "search_read", [("reference", "like", "OS-%")], 0, None, None,
                            ["reference", "state"])
    finally:
        client.close()
    sale_states: dict[str, int] = {}
    for sale in sales:
        sale_states[sale["state"]] = sale_states.get(sale["state"], 0) + 1
    references = [s["reference"] for s in sales]
    with hub.db.read() as conn:
        open_cases = {t: int(n) for t, n in conn.execute(
            select(cases.c.type, func.count()).where(cases.c.state != "resolved").group_by(cases.c.type))}
        returns = {s: int(n) for s, n in conn.execute(
            select(return_requests.c.state, func.count()).group_by(return_requests.c.state))}
    expected, mismatches = _check_erp(hub)
    return {
        "settled": settled,
        "orders_sent": len(scenario.deliveries),
        "unique_orders": scenario.unique_orders,
        "duplicates_sent": scenario.duplicates,
        "intake": sent,
        "scenario": scenario.kinds(),
        "final_states": _states(hub),
        "erp_orders_created": len(sales),
        "erp_orders_expected": len(expected),
        "erp_orders_missing": len(expected - set(references)),
        "erp_orders_unexpected": len(set(references) - expected),
        "erp_order_states": sale_states,
        "erp_duplicate_references": len(references) - len(set(references)),
        "erp_line_mismatches": mismatches,
        "open_cases": open_cases,
        "returns": returns,
        "dead_letters": hub.dead_letters.count(),
        "elapsed_seconds": round(elapsed, 1),
    }


def _check_erp(hub: Hub) -> tuple[set[str], int]:
    """The references the hub's accepted orders must have in the ERP (one per plant), and how many ERP
    lines differ from the quantities and prices the hub recorded."""
    from ordersync.ports.erp import order_reference

    assert hub.erps is not None
    with hub.db.read() as conn:
        reached = select(orders.c.id).where(orders.c.state.in_([s.value for s in REACHED_ERP]))
        ids = list(conn.execute(reached).scalars())
    with hub.store.reading() as reader:
        accepted = [reader.orders.get(i) for i in ids]
    expected: set[str] = set()
    mismatches = 0
    for record in accepted:
        expected |= {order_reference(record.id, p) for p in record.plants()}
        want: dict[int, Decimal] = {}
        for a in record.allocations:
            want[a.line_no] = want.get(a.line_no, Decimal(0)) + a.quantity
        got: dict[int, Decimal] = {}
        prices = {x.line_no: x.unit_price for x in record.lines}
        for erp_order in hub.erps.erp(record.erp or "").orders_for(record.id):
            if erp_order.reference.startswith("RMA-"):
                continue
            for line in erp_order.lines:
                got[line.line_no] = got.get(line.line_no, Decimal(0)) + line.quantity
                if line.unit_price != prices.get(line.line_no):
                    mismatches += 1
        mismatches += sum(1 for n in want if want[n] != got.get(n))
    return expected, mismatches


def _report(summary: dict[str, Any], opts: DemoOptions) -> None:
    if opts.as_json:
        print(json.dumps(summary, sort_keys=True), flush=True)
        return
    console.print("[bold]demo summary[/bold]")
    for key, value in summary.items():
        console.print(f"  {key:<26} {value}")
