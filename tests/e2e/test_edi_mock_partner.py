"""EDI order to cash against partners no one here wrote: ``mock-edi`` 0.9.0 runs as a real process and
buys from us (we are its ``supplier``), a real ``ordersync serve`` process takes its 850s over AS2 or a
directory and submits them to a real Tryton, which ships and invoices them. The mock's own validator and
its three-way match judge every document we send it (997, 855, 856, 810); every PO is one Tryton sale,
also when the mock sends it twice or the hub is killed halfway."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordersync.devkit import demo_data
from ordersync.devkit.tryton.server import free_port
from ordersync.ports.erp import order_reference
from tests.contract.drivers import TrytonDriver
from tests.e2e.test_subscriber_outage import serve, stop, until
from tests.support.tryton import admin, erp_settings, sales_by_reference

pytestmark = [pytest.mark.tryton, pytest.mark.slow, pytest.mark.timeout(600)]
MAIN = demo_data.profile("main")
ACCOUNT = "C-1001"
SHIP_TO = "RIS-DUS"
LINES = [("BRG-6204-2RS", 10), ("FIT-ELB-G12-SS", 20)]


class MockEdi:
    """A running ``mock-edi`` process and its control plane."""

    def __init__(self, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = proc
        self.log = log

    def call(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(method, self.url + path, timeout=30, **kw)
        assert r.status_code < 400, f"{method} {path}: {r.status_code} {r.text[:2000]}"
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else r.text

    def order(self, po: str) -> dict[str, Any]:
        return self.call("GET", f"/_mock/orders/{po}", params={"partner": "ORDERSYNC"})  # type: ignore[no-any-return]

    def timeline(self, po: str) -> str:
        return str(self.call("GET", f"/_mock/orders/{po}/timeline", params={"partner": "ORDERSYNC"}))


@pytest.fixture
def tryton(start_tryton: Any) -> Any:
    return start_tryton({"main": "main"})


def start_mock(tmp_path: Path, *extra: str) -> MockEdi:
    port, log = free_port(), tmp_path / "mock-edi.log"
    proc = subprocess.Popen([sys.executable, "-m", "mockedi", "--port", str(port), "--as2-id", "MOCKEDI", "-q",
                             *extra], stdout=log.open("ab"), stderr=subprocess.STDOUT)
    mock = MockEdi(port, proc, log)
    until(lambda: _up(mock), 30, lambda: log.read_text()[-2000:])
    return mock


def _up(mock: MockEdi) -> bool:
    try:
        return httpx.get(mock.url + "/_mock/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def mock_edi(tmp_path: Path) -> Iterator[MockEdi]:
    mock = start_mock(tmp_path, "--drop-dir", str(tmp_path / "to-mock"), "--pickup-dir", str(tmp_path / "from-mock"),
                      "--drop-interval-ms", "200", "--drop-settle-ms", "100")
    yield mock
    mock.proc.terminate()
    mock.proc.wait(10)


def hub_config(data_dir: Path, tryton: Any, *, transport: str, mock: MockEdi, tmp_path: Path, ack_hours: float = 24,
               max_attempts: int = 8, dialect: str = "X12") -> None:
    erp = erp_settings(tryton, retries=1, reset_timeout=1)
    partner = {
        "as2": f'transport = "as2"\nas2_url = "{mock.url}/as2"',
        "directory": f'transport = "directory"\noutbox_dir = "{tmp_path / "to-mock"}"\n'
                     f'inbox_dir = "{tmp_path / "from-mock"}"',
    }[transport]
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "ordersync.toml").write_text(f"""
[[erp]]
name = "main"
kind = "tryton"
url = "{erp.url}"
database = "main"
login = "{erp.login}"
password = "{erp.password}"
retries = 1
reset_timeout = 1.0

[edi]
interchange_id = "ORDERSYNC"
poll_seconds = 0.2
chase_seconds = 0.5
base_seconds = 0.5
cap_seconds = 2.0
max_attempts = {max_attempts}
timeout = 10.0

[[edi.partners]]
name = "MOCKEDI"
interchange_qualifier = "ZZ"
interchange_id = "MOCKEDI"
account_id = "{ACCOUNT}"
usage = "T"
ack_hours = {ack_hours}
dialect = "{dialect}"
{partner}

[edi.partners.ship_to]
MOCKEDI = "{SHIP_TO}"
""")


def add_partner(mock: MockEdi, *, hub_port: int | None, behaviour: str = "accept", dialect: str = "X12") -> None:
    mock.call("POST", "/_mock/partners", json={
        "id": "ORDERSYNC", "name": "Ordersync Demo GmbH", "qualifier": "ZZ", "dialect": dialect,
        "version": "004010" if dialect == "X12" else "D:96A:UN",
        "role": "supplier", "behaviour": behaviour, "as2_url": f"http://127.0.0.1:{hub_port}/as2" if hub_port else ""})


def purchase(mock: MockEdi, po: str) -> None:
    lines = [{"sku": sku, "quantity": str(q), "uom": "EA",
              "price": format(demo_data.contract_price(MAIN, ACCOUNT, sku, q), "f")} for sku, q in LINES]
    mock.call("POST", "/_mock/purchase", json={"partner": "ORDERSYNC", "po_number": po, "currency": "EUR",
                                               "requested_on": "2027-01-15", "lines": lines})


def store(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{data_dir / 'ordersync.db'}?mode=ro", uri=True, timeout=10)


def hub_order(data_dir: Path, po: str) -> str | None:
    with store(data_dir) as conn:
        row = conn.execute("SELECT order_id FROM edi_orders WHERE po_number = ?", (po,)).fetchone()
    return row[0] if row else None


def hub_state(data_dir: Path, order_id: str) -> str:
    with store(data_dir) as conn:
        return str(conn.execute("SELECT state FROM orders WHERE id = ?", (order_id,)).fetchone()[0])


def sent(data_dir: Path) -> list[tuple[str, str, str, bytes]]:
    """(document, state, ack_state, raw) of everything the hub wrote for the partner."""
    with store(data_dir) as conn:
        return [(r[0], r[1], r[2], bytes(r[3])) for r in conn.execute(
            "SELECT document, state, ack_state, raw FROM edi_interchanges WHERE direction = 'out' "
            "ORDER BY received_at, control_number")]


def open_cases(data_dir: Path) -> list[str]:
    with store(data_dir) as conn:
        return [r[0] for r in conn.execute("SELECT json_extract(body, '$.summary') FROM cases "
                                           "WHERE state != 'resolved'")]


def erp_quantities(tryton: Any, reference: str) -> list[Decimal]:
    """The quantities of the Tryton sale's lines, in line order."""
    client = admin(tryton)
    try:
        (sale,) = client.call("sale.sale", "search_read", [("reference", "=", reference)], 0, None, None, ["lines"])
        lines = client.call("sale.line", "read", sale["lines"], ["quantity", "sequence"])
    finally:
        client.close()
    return [Decimal(str(line["quantity"])) for line in sorted(lines, key=lambda x: (x["sequence"] or 0, x["id"]))]


def ship_and_invoice(tryton: Any, order_id: str) -> None:
    client = admin(tryton)
    try:
        driver = TrytonDriver(client)
        reference = order_reference(order_id, "PLANT-N")
        driver.ship(reference)
        driver.post_invoices(reference)
    finally:
        client.close()


def documents_pass_the_mocks_validator(mock: MockEdi, data_dir: Path) -> None:
    for document, _, _, raw in sent(data_dir):
        verdict = mock.call("POST", "/_mock/validate", params={"partner": "ORDERSYNC"}, content=raw)
        assert verdict["clean"], (document, verdict.get("explain"), raw.decode())


def run_order_to_cash(tmp_path: Path, tryton: Any, mock: MockEdi, transport: str, po: str, dialect: str = "X12"
                      ) -> None:
    data_dir, port = tmp_path / "hub", free_port()
    hub_config(data_dir, tryton, transport=transport, mock=mock, tmp_path=tmp_path, dialect=dialect)
    add_partner(mock, hub_port=port if transport == "as2" else None, dialect=dialect)
    documents = ("855", "856", "810") if dialect == "X12" else ("ORDRSP", "DESADV", "INVOIC")
    hub = serve(data_dir, port, tmp_path / "serve.log")
    try:
        purchase(mock, po)
        until(lambda: hub_order(data_dir, po) is not None, 60, lambda: mock.timeline(po))
        order_id = hub_order(data_dir, po)
        assert order_id
        until(lambda: hub_state(data_dir, order_id) == "accepted", 90, lambda: hub_state(data_dir, order_id))
        until(lambda: all(Decimal(line["confirmed"]) > 0 for line in mock.order(po)["lines"]), 60,
              lambda: mock.timeline(po))
        ship_and_invoice(tryton, order_id)
        until(lambda: all(Decimal(line["invoiced"]) > 0 for line in mock.order(po)["lines"]), 120,
              lambda: mock.timeline(po))
        # every document we sent was acknowledged by the mock as accepted
        until(lambda: {(d, s, a) for d, s, a, _ in sent(data_dir) if d in documents}
              == {(d, "sent", "accepted") for d in documents}, 30,
              lambda: [(d, s, a) for d, s, a, _ in sent(data_dir)])
    finally:
        stop(hub)
    lines = mock.order(po)["lines"]
    assert [(line["sku"], Decimal(line["confirmed"]), Decimal(line["shipped"]), Decimal(line["invoiced"]))
            for line in lines] == [(sku, Decimal(q), Decimal(q), Decimal(q)) for sku, q in LINES]
    assert mock.call("GET", "/_mock/disagreements", params={"partner": "ORDERSYNC", "po": po}) == []
    assert mock.call("GET", "/_mock/unacknowledged", params={"older-than": "0"}) == []  # we answered its 850
    documents_pass_the_mocks_validator(mock, data_dir)
    sales = sales_by_reference(tryton, order_reference(order_id, ""))
    assert {ref: len(states) for ref, states in sales.items()} == {order_reference(order_id, "PLANT-N"): 1}
    assert not open_cases(data_dir)


def test_order_to_cash_over_as2(tmp_path: Path, tryton: Any, mock_edi: MockEdi) -> None:
    run_order_to_cash(tmp_path, tryton, mock_edi, "as2", "4500009001")


def test_order_to_cash_over_a_directory(tmp_path: Path, tryton: Any, mock_edi: MockEdi) -> None:
    run_order_to_cash(tmp_path, tryton, mock_edi, "directory", "4500009002")


def test_order_to_cash_in_edifact_over_as2(tmp_path: Path, tryton: Any, mock_edi: MockEdi) -> None:
    """ORDERS in, CONTRL, ORDRSP, DESADV and INVOIC out (and the mock's CONTRLs for them back)."""
    run_order_to_cash(tmp_path, tryton, mock_edi, "as2", "4500009003", dialect="EDIFACT")


def test_order_to_cash_in_edifact_over_a_directory(tmp_path: Path, tryton: Any, mock_edi: MockEdi) -> None:
    run_order_to_cash(tmp_path, tryton, mock_edi, "directory", "4500009004", dialect="EDIFACT")


@contextlib.contextmanager
def hub_serving(tmp_path: Path, tryton: Any, mock: MockEdi, *, behaviour: str = "accept", ack_hours: float = 24,
                ) -> Iterator[tuple[Path, int, list[subprocess.Popen[bytes]]]]:
    """A hub process trading with the mock over AS2 (the list holds the process, replaced on restart)."""
    data_dir, port = tmp_path / "hub", free_port()
    hub_config(data_dir, tryton, transport="as2", mock=mock, tmp_path=tmp_path, ack_hours=ack_hours)
    add_partner(mock, hub_port=port, behaviour=behaviour)
    procs = [serve(data_dir, port, tmp_path / "serve.log")]
    try:
        yield data_dir, port, procs
    finally:
        stop(procs[-1])


def test_an_order_sent_twice_is_one_sale_and_one_answer(tmp_path: Path, tryton: Any, mock_edi: MockEdi) -> None:
    """``duplicate-order``: the buyer sends the 850 twice under one PO number, in two interchanges."""
    po = "4500009101"
    with hub_serving(tmp_path, tryton, mock_edi, behaviour="duplicate-order") as (data_dir, _, _):
        purchase(mock_edi, po)
        until(lambda: hub_order(data_dir, po) is not None and hub_state(data_dir, hub_order(data_dir, po) or "")
              == "accepted", 90, lambda: mock_edi.timeline(po))
        until(lambda: [d for d, s, a, _ in sent(data_dir) if d == "855" and a == "accepted"] == ["855"], 30,
              lambda: [(d, s, a) for d, s, a, _ in sent(data_dir)])
        with store(data_dir) as conn:
            received = conn.execute("SELECT state FROM edi_interchanges WHERE direction = 'in' "
                                    "AND document = '850'").fetchall()
        assert [r[0] for r in received] == ["processed", "processed"]  # two interchanges, both acknowledged
        assert [d for d, *_ in sent(data_dir)].count("997") == 2
    order_id = hub_order(data_dir, po) or ""
    assert {ref: len(s) for ref, s in sales_by_reference(tryton, order_reference(order_id, "")).items()} == \
        {order_reference(order_id, "PLANT-N"): 1}
    assert mock_edi.call("GET", "/_mock/disagreements", params={"partner": "ORDERSYNC", "po": po}) == []


def test_a_partner_that_rejects_our_documents_or_never_acknowledges_them_opens_cases(
        tmp_path: Path, tryton: Any, mock_edi: MockEdi) -> None:
    """``reject-ack`` rejects every set we send in its 997: a case per document; ``no-ack`` says nothing:
    a chase-up case once the partner's deadline has passed."""
    po = "4500009201"
    with hub_serving(tmp_path, tryton, mock_edi, behaviour="reject-ack", ack_hours=0.0005) as (data_dir, _, _):
        purchase(mock_edi, po)
        until(lambda: [(d, a) for d, s, a, _ in sent(data_dir) if d == "855"] == [("855", "rejected")], 90,
              lambda: [(d, s, a) for d, s, a, _ in sent(data_dir)])
        until(lambda: any("rejected our 855" in c for c in open_cases(data_dir)), 30, lambda: open_cases(data_dir))
        mock_edi.call("PATCH", "/_mock/partners/ORDERSYNC", json={"behaviour": "no-ack"})
        second = "4500009202"
        purchase(mock_edi, second)
        until(lambda: any("has not acknowledged our 855" in c for c in open_cases(data_dir)), 90,
              lambda: (open_cases(data_dir), [(d, s, a) for d, s, a, _ in sent(data_dir)]))
    with store(data_dir) as conn:
        states = dict(conn.execute("SELECT o.po_number, i.ack_state FROM edi_interchanges i JOIN edi_orders o "
                                   "ON o.order_id = i.order_id WHERE i.document = '855'").fetchall())
    assert states == {po: "rejected", second: "overdue"}


def test_a_broken_purchase_order_is_rejected_in_our_997_and_kept_with_a_case(
        tmp_path: Path, tryton: Any, mock_edi: MockEdi) -> None:
    """``corrupt``: the buyer's 850 counts one segment too many in SE01."""
    po = "4500009301"
    with hub_serving(tmp_path, tryton, mock_edi, behaviour="corrupt") as (data_dir, _, _):
        purchase(mock_edi, po)
        until(lambda: any(d == "997" for d, *_ in sent(data_dir)), 60, lambda: mock_edi.timeline(po))
        until(lambda: any("not read" in c for c in open_cases(data_dir)), 30, lambda: open_cases(data_dir))
        ack = next(raw for d, _, _, raw in sent(data_dir) if d == "997").decode()
        assert "AK5*R*4" in ack and "AK9*R*1*1*0" in ack
        assert hub_order(data_dir, po) is None
        with store(data_dir) as conn:
            kept = conn.execute("SELECT state, detail, raw FROM edi_interchanges WHERE direction = 'in'").fetchone()
        assert kept[0] == "orders_rejected" and "850 0001" in kept[1] and po.encode() in bytes(kept[2])
        # the mock read our 997 as the rejection of its 850
        until(lambda: any(e.get("event") == "acknowledged" and e.get("code") == "850" and e.get("status") == "rejected"
                          for e in mock_edi.call("GET", f"/_mock/orders/{po}/timeline",
                                                 params={"partner": "ORDERSYNC"})["events"]), 30,
              lambda: mock_edi.timeline(po))


def half_processed(data_dir: Path) -> int:
    """Interchanges a killed hub had claimed and not finished (kept, leased, still ``received``)."""
    with store(data_dir) as conn:
        return int(conn.execute("SELECT count(*) FROM edi_interchanges WHERE direction = 'in' AND state = 'received' "
                                "AND lease_until IS NOT NULL").fetchone()[0])


def test_the_hub_killed_while_orders_arrive_loses_nothing_and_doubles_nothing(
        tmp_path: Path, tryton: Any, mock_edi: MockEdi) -> None:
    """SIGKILL of the hub process while the mock's 850s arrive and are processed, until one kill has left
    an interchange half processed; restarted, the hub takes it up again and the mock retries what could
    not reach us: every PO is one sale and one 855, nothing lost."""
    numbers: list[str] = []
    caught = 0
    with hub_serving(tmp_path, tryton, mock_edi) as (data_dir, port, procs):
        for kill in range(10):
            batch = [f"4500009{kill:02d}{i}" for i in range(6)]
            numbers += batch
            for po in batch:
                purchase(mock_edi, po)
            deadline = time.monotonic() + 60
            while not half_processed(data_dir) and time.monotonic() < deadline:
                time.sleep(0.002)  # kill the moment an interchange is claimed and not finished
            procs[-1].send_signal(signal.SIGKILL)
            procs[-1].wait()
            caught += half_processed(data_dir)
            procs.append(serve(data_dir, port, tmp_path / "serve.log"))
            if caught:
                break
        assert caught, "no kill landed while an interchange was being processed"
        mock_edi.call("POST", "/_mock/advance", params={"failed": ""})  # the mock retries what failed
        until(lambda: all(hub_order(data_dir, po) for po in numbers), 120,
              lambda: (mock_edi.call("GET", "/_mock/outbox"), [(po, hub_order(data_dir, po)) for po in numbers]))
        orders = {po: hub_order(data_dir, po) or "" for po in numbers}
        until(lambda: all(hub_state(data_dir, o) == "accepted" for o in orders.values()), 120,
              lambda: {po: hub_state(data_dir, o) for po, o in orders.items()})
        until(lambda: sorted(d for d, s, a, _ in sent(data_dir) if d == "855" and a == "accepted")
              == ["855"] * len(numbers), 60, lambda: [(d, s, a) for d, s, a, _ in sent(data_dir)])
        assert half_processed(data_dir) == 0
    assert "taken up again" in (tmp_path / "serve.log").read_text()
    for po, order_id in orders.items():
        assert {ref: len(s) for ref, s in sales_by_reference(tryton, order_reference(order_id, "")).items()} == \
            {order_reference(order_id, "PLANT-N"): 1}, po
        assert all(Decimal(line["confirmed"]) > 0 for line in mock_edi.order(po)["lines"]), po
    assert not [c for c in open_cases(data_dir) if "duplicate" not in c]


def test_a_change_goes_through_the_erp_and_a_cancellation_after_shipment_is_refused(
        tmp_path: Path, tryton: Any, mock_edi: MockEdi) -> None:
    """``change-after-confirm``: an 860 halving line 1 as soon as our 855 arrives: the ERP applies it, our
    865 says so. ``cancel-late``: an 860 cancelling the order once our 856 arrives: refused in the 865."""
    po, late = "4500009501", "4500009502"
    with hub_serving(tmp_path, tryton, mock_edi, behaviour="change-after-confirm") as (data_dir, _, _):
        purchase(mock_edi, po)
        until(lambda: [(d, a) for d, s, a, _ in sent(data_dir) if d == "865"] == [("865", "accepted")], 90,
              lambda: (mock_edi.timeline(po), [(d, s, a) for d, s, a, _ in sent(data_dir)]))
        order_id = hub_order(data_dir, po) or ""
        assert erp_quantities(tryton, order_reference(order_id, "PLANT-N")) == [Decimal(5), Decimal(20)]
        answer = next(raw for d, _, _, raw in sent(data_dir) if d == "865").decode()
        assert "BCA*04*AC*4500009501" in answer and "POC*1*CA*5" in answer and "ACK*IA*5*EA" in answer

        mock_edi.call("PATCH", "/_mock/partners/ORDERSYNC", json={"behaviour": "cancel-late"})
        purchase(mock_edi, late)
        until(lambda: hub_order(data_dir, late) is not None and hub_state(data_dir, hub_order(data_dir, late) or "")
              == "accepted", 90, lambda: mock_edi.timeline(late))
        late_id = hub_order(data_dir, late) or ""
        ship_and_invoice(tryton, late_id)
        until(lambda: [d for d, *_ in sent(data_dir)].count("865") == 2, 120,
              lambda: (mock_edi.timeline(late), [(d, s, a) for d, s, a, _ in sent(data_dir)]))
        refusal = [raw for d, _, _, raw in sent(data_dir) if d == "865"][-1].decode()
        assert f"BCA*01*RD*{late}" in refusal and "ACK*IR" in refusal and "already shipped" in refusal
        assert hub_state(data_dir, late_id) in ("shipped", "invoiced")
    sales = sales_by_reference(tryton, order_reference(late_id, ""))
    assert {ref: len(s) for ref, s in sales.items()} == {order_reference(late_id, "PLANT-N"): 1}
    documents_pass_the_mocks_validator(mock_edi, data_dir)


def test_an_edifact_change_goes_through_the_erp_and_a_late_cancellation_is_refused_in_an_ordrsp(
        tmp_path: Path, tryton: Any, mock_edi: MockEdi) -> None:
    """The same as the X12 860/865 test for an EDIFACT buyer: an ORDCHG is answered with an ORDRSP."""
    po, late = "4500009601", "4500009602"
    data_dir, port = tmp_path / "hub", free_port()
    hub_config(data_dir, tryton, transport="as2", mock=mock_edi, tmp_path=tmp_path, dialect="EDIFACT")
    add_partner(mock_edi, hub_port=port, behaviour="change-after-confirm", dialect="EDIFACT")
    hub = serve(data_dir, port, tmp_path / "serve.log")
    try:
        purchase(mock_edi, po)
        until(lambda: [a for d, s, a, _ in sent(data_dir) if d == "ORDRSP"] == ["accepted", "accepted"], 90,
              lambda: (mock_edi.timeline(po), [(d, s, a) for d, s, a, _ in sent(data_dir)]))
        order_id = hub_order(data_dir, po) or ""
        assert erp_quantities(tryton, order_reference(order_id, "PLANT-N")) == [Decimal(5), Decimal(20)]
        answer = [raw for d, _, _, raw in sent(data_dir) if d == "ORDRSP"][-1].decode()
        assert "BGM+231+" in answer and "+9+AC'" in answer and "QTY+113:5:PCE'" in answer

        mock_edi.call("PATCH", "/_mock/partners/ORDERSYNC", json={"behaviour": "cancel-late"})
        purchase(mock_edi, late)
        until(lambda: hub_order(data_dir, late) is not None and hub_state(data_dir, hub_order(data_dir, late) or "")
              == "accepted", 90, lambda: mock_edi.timeline(late))
        late_id = hub_order(data_dir, late) or ""
        ship_and_invoice(tryton, late_id)
        until(lambda: [d for d, *_ in sent(data_dir)].count("ORDRSP") == 4, 120,
              lambda: (mock_edi.timeline(late), [(d, s, a) for d, s, a, _ in sent(data_dir)]))
        refusal = [raw for d, _, _, raw in sent(data_dir) if d == "ORDRSP"][-1].decode()
        assert f"RFF+ON:{late}'" in refusal and "+9+RE'" in refusal and "FTX+AAO" in refusal
        assert "already shipped" in refusal
        assert hub_state(data_dir, late_id) in ("shipped", "invoiced")
    finally:
        stop(hub)
    assert {ref: len(s) for ref, s in sales_by_reference(tryton, order_reference(late_id, "")).items()} == \
        {order_reference(late_id, "PLANT-N"): 1}
    documents_pass_the_mocks_validator(mock_edi, data_dir)


def test_a_strict_partner_accepts_everything_we_send_and_a_late_one_is_chased_then_caught_up(
        tmp_path: Path, tryton: Any, mock_edi: MockEdi) -> None:
    """``strict`` rejects a set for any finding at all: ours have none. ``late`` answers an hour late: our
    chase-up case opens when the 997 is overdue, and the 997 still counts when it comes."""
    po, late = "4500009701", "4500009702"
    with hub_serving(tmp_path, tryton, mock_edi, behaviour="strict", ack_hours=0.0005) as (data_dir, _, _):
        purchase(mock_edi, po)
        until(lambda: [(d, a) for d, s, a, _ in sent(data_dir) if d == "855"] == [("855", "accepted")], 90,
              lambda: (mock_edi.timeline(po), [(d, s, a) for d, s, a, _ in sent(data_dir)]))
        mock_edi.call("PATCH", "/_mock/partners/ORDERSYNC", json={"behaviour": "late"})
        purchase(mock_edi, late)
        mock_edi.call("POST", "/_mock/advance", params={"seconds": "3601"})  # even its order goes an hour late
        until(lambda: hub_order(data_dir, late) is not None, 60, lambda: mock_edi.timeline(late))
        late_id = hub_order(data_dir, late) or ""
        until(lambda: any("has not acknowledged our 855" in c for c in open_cases(data_dir)), 90,
              lambda: [(d, s, a) for d, s, a, _ in sent(data_dir)])
        mock_edi.call("POST", "/_mock/advance", params={"seconds": "3601"})  # its 997 for our 855, an hour on
        until(lambda: [a for d, s, a, _ in sent(data_dir) if d == "855"] == ["accepted", "accepted"], 60,
              lambda: (mock_edi.timeline(late), [(d, s, a) for d, s, a, _ in sent(data_dir)]))
    assert hub_state(data_dir, late_id) == "accepted"
