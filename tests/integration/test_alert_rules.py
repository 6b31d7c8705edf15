"""The Prometheus alert rules and the Grafana dashboard shipped in docs/ load, have the structure their
tools expect, and use only metrics that a real hub's ``/metrics`` page has."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ordersync.adapters.erp.memory import MemoryErp
from ordersync.domain.clock import FakeClock
from ordersync.server import create_app
from tests.support.hub import erp_hub, order, place, settle

DOCS = Path(__file__).resolve().parents[2] / "docs"
RULES = DOCS / "prometheus" / "ordersync-rules.yml"
DASHBOARD = DOCS / "grafana" / "ordersync.json"
METRIC = re.compile(r"\bordersync_[a-z0-9_]+\b")
DURATION = re.compile(r"^\d+[smhdw]$")
#: what the text format adds to a family's name, per type
SUFFIXES = {"counter": ("_total",), "gaugehistogram": ("_bucket", "_gcount", "_gsum"), "gauge": ("",),
            "histogram": ("_bucket", "_count", "_sum")}


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text())
    assert isinstance(loaded, dict) and set(loaded) == {"groups"}, "a rule file holds groups only"
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every series name a hub with an ERP, some orders and a case exposes on /metrics."""
    clock = FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    hub = erp_hub(tmp_path_factory.mktemp("rules"), {"main": MemoryErp("main", name="main", clock=clock.now)},
                  clock=clock)
    try:
        place(hub, order("C-1001", ("BRG-6204-2RS", 10), ship_to="RIS-DUS"))
        place(hub, order("C-1004", ("MOT-IE3-4.0-4P", 8), external="PO-held"))  # a credit hold: a case
        settle(hub)
        text = TestClient(create_app(hub)).get("/metrics").text
    finally:
        hub.close()
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {s.name for s in family.samples}
    return names


def test_the_rule_file_has_groups_of_well_formed_alerting_rules() -> None:
    loaded = yaml.safe_load(RULES.read_text())
    names = [g["name"] for g in loaded["groups"]]
    assert len(names) == len(set(names)) and all(names)
    found = rules()
    assert len(found) >= 10
    alerts = [r["alert"] for r in found]
    assert len(alerts) == len(set(alerts)), "alert names are unique"
    for rule in found:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule["alert"]
        assert re.fullmatch(r"Ordersync[A-Z][A-Za-z]+", rule["alert"])
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert DURATION.match(str(rule["for"])), f"{rule['alert']}: for {rule['for']!r}"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 40
        assert rule["expr"].count("(") == rule["expr"].count(")") and rule["expr"].count("{") == \
            rule["expr"].count("}")


def test_the_rules_cover_lag_dead_letters_erp_sla_cases_intake_and_the_alerts_themselves() -> None:
    used = {m for rule in rules() for m in METRIC.findall(rule["expr"])}
    for needed in ("ordersync_outbox_lag_seconds", "ordersync_deliveries_pending", "ordersync_dead_letters",
                   "ordersync_erp_circuit", "ordersync_erp_failures_total", "ordersync_sla_open_breached",
                   "ordersync_cases_overdue", "ordersync_dead_letters_by_reason",
                   "ordersync_alert_send_failures_total", "ordersync_alert_notifications"):
        assert needed in used


def test_every_metric_in_the_rules_and_the_dashboard_is_on_a_real_hubs_metrics_page(exposed: set[str]) -> None:
    used = {m for rule in rules() for m in METRIC.findall(rule["expr"])}
    used |= {m for expr in dashboard_exprs() for m in METRIC.findall(expr)}
    assert used and used <= exposed, f"not exposed by /metrics: {sorted(used - exposed)}"


def test_the_dashboard_is_a_grafana_dashboard_with_prometheus_panels() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"] == "ordersync" and isinstance(board["schemaVersion"], int)
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    graphs = [p for p in board["panels"] if p["type"] != "row"]
    assert len(graphs) >= 12
    for p in graphs:
        assert p["type"] in {"timeseries", "stat"} and p["title"]
        assert set(p["gridPos"]) == {"h", "w", "x", "y"} and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        assert p["datasource"]["uid"] == "${datasource}" and p["targets"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)) and all(METRIC.search(t["expr"]) for t in p["targets"])
