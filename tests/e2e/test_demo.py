"""``ordersync demo --once --json``: the main job, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ordersync.devkit.tryton.server import free_port

pytestmark = [pytest.mark.tryton, pytest.mark.slow, pytest.mark.timeout(900)]


def test_the_demo_places_its_scenario_and_every_order_reaches_tryton_exactly_once(tryton_ready: Any,
                                                                                   tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "ordersync.cli", "demo", "--once", "--json", "--orders", "24",
         "--data-dir", str(data_dir), "--port", str(free_port())],
        capture_output=True, text=True, timeout=800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["settled"] is True
    edi = summary["edi"]  # the EDI customer's purchase orders are hub orders too
    shop = summary["shopify"]  # and so are the Shopify companies' orders, but for the one nobody can match
    taken = sum(shop["hub_order_states"].values())
    assert taken == shop["orders_placed"] - 1 and len(shop["waiting_for_a_mapping"]) == 1, shop
    assert sum(summary["final_states"].values()) == summary["unique_orders"] + edi["purchase_orders"] + taken
    reached_erp = sum(summary["final_states"].get(s, 0) for s in
                      ("accepted", "in_fulfillment", "partially_shipped", "shipped", "invoiced"))
    assert reached_erp >= summary["unique_orders"] // 2
    assert summary["final_states"]["rejected"] >= 1 and summary["final_states"]["on_hold"] >= 2
    assert summary["intake"]["replayed"] + summary["intake"]["duplicate"] == summary["duplicates_sent"]
    assert summary["erp_orders_created"] == summary["erp_orders_expected"] > 0
    assert summary["erp_orders_missing"] == summary["erp_orders_unexpected"] == 0
    assert summary["erp_duplicate_references"] == 0 and summary["erp_line_mismatches"] == 0
    assert set(summary["erp_order_states"]) <= {"confirmed", "processing", "done"}, "no draft or quotation is left"
    assert summary["dead_letters"] == 0
    recon = summary["reconciliation"]  # the hub and Tryton (and the channels) agree: no discrepancy, no case
    assert recon["discrepancies"] == [] and recon["errors"] == [] and recon["erp_sales"] == recon["hub_sales"] > 0

    # after the orders: the warehouse ships (one split shipment, one short), production planning moves a
    # backorder to a later date, accounting invoices, a buyer returns goods and disputes an invoice, the
    # carrier's delivery comes through the warehouse's signed webhook, and a subscribed CRM hears about all of it
    after = summary["aftermath"]
    assert after["problems"] == [] and after["orders_shipped_by_warehouse"] > 0
    assert {"split_shipment", "short_shipment", "backorder_revised", "return", "dispute_case",
            "delivered_by_carrier"} <= set(after["follow"])  # the carrier's delivery came by signed WMS webhook
    assert (data_dir / "secrets" / "wms-webhook").stat().st_mode & 0o077 == 0, "only its owner reads the secret"
    written = (data_dir / "ordersync.toml").read_text()
    assert "wms-webhook" in written and "password_file" in written and "password =" not in written  # no secret
    assert after["return_state"] in ("received", "credited") and summary["returns"]
    assert summary["final_states"].get("invoiced", 0) >= 1
    assert summary["open_cases"]["fulfillment_discrepancy"] >= 1 and summary["open_cases"]["invoice_dispute"] == 1
    sink = summary["crm_sink"]
    assert sink["refused"] == 0 and sink["duplicates"] == 0
    assert sink["by_type"]["order.accepted"] == reached_erp
    assert sink["by_type"]["invoice.disputed"] == 1 and sink["by_type"]["erp.shipment_changed"] > 0
    assert sink["by_type"].get("order.backorder_date_revised", 0) >= 1
    assert (data_dir / "erp" / "main.sqlite").exists(), "the ERP database stays for inspection"

    # the EDI customer: its 850 files are picked up, the resent file is refused with a TA1, the PO sent
    # again in a new interchange is the same order; every PO is one decided order with its 855
    n = edi["purchase_orders"]
    assert edi["interchanges_received"] == {"processed": n + 1, "duplicate": 1}, edi
    assert sum(edi["order_states"].values()) == n
    sent = edi["documents_sent"]
    assert sent["997 sent"] == n + 1 and sent["TA1 sent"] == 1
    assert sent["855 sent"] == n - edi["order_states"].get("on_hold", 0)
    written = {p.name.rsplit("-", 1)[-1] for p in Path(edi["outbox"]).iterdir()}  # what the partner collects
    assert {"997.edi", "TA1.edi", "855.edi"} <= written

    # the Shopify store: one order's webhook came three times and after its orders/paid, one never came
    # and the sweep took that order in; prices, stock and terms were pushed; what Tryton shipped for a
    # Shopify order is a fulfillment with its tracking number in Shopify; the unknown company has a case
    assert shop["dropped_webhook_recovered"] is True
    assert shop["webhook_deliveries"] >= shop["orders_placed"] + 2, shop  # the duplicates and orders/paid
    assert all(shop["pushes"][k]["calls"] > 0 for k in ("prices", "stock")), shop["pushes"]
    assert shop["fulfillments_in_shopify"] >= 1 and shop["with_tracking"] == shop["fulfillments_in_shopify"], shop
    assert summary["open_cases"].get("integration_failure", 0) >= 1
