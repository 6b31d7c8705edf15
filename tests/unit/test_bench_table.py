"""``python -m bench.all``'s table: figures, their goals and how they are shown (no benchmark runs)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import bench.all as bench_all
import pytest
from bench._common import FIGURES_ENV, Figure, emit

RATE_MET = Figure("read_path", "hub capacity / direct", 212.4, "x", 41.26, "direct into Tryton req/s", 100, higher=True)
LATENCY_MISSED = Figure("read_path", "p99 at 100x direct", 12.345, "ms", 180.0, "direct into Tryton", 10)
NO_GOAL = Figure("bus", "sqlite: pipeline events/s", 23456.7, "/s", 1234.5, "raw commits/s")


def test_a_rate_goal_is_met_at_or_above_it() -> None:
    assert RATE_MET.met is True
    assert RATE_MET.verdict() == "met"
    assert Figure("b", "at the bound", 100, "x", goal=100, higher=True).met is True
    assert Figure("b", "below", 99.9, "x", goal=100, higher=True).verdict() == "MISSED"


def test_a_latency_goal_is_missed_above_it() -> None:
    assert LATENCY_MISSED.met is False
    assert LATENCY_MISSED.verdict() == "MISSED"
    assert Figure("b", "at the bound", 10, "ms", goal=10).met is True


def test_a_figure_without_goal_has_no_verdict() -> None:
    assert NO_GOAL.met is None
    assert NO_GOAL.verdict() == ""


@pytest.mark.parametrize(("value", "shown"), [
    (23456.7, "23,457"), (1234567, "1,234,567"), (412.0, "412"), (45.67, "45.7"), (3.456, "3.46"),
    (0.01234, "0.0123"), (0.5, "0.5"), (0, "0"), (float("nan"), "n/a"),
])
def test_numbers_are_shown_with_separators_and_few_decimals(value: float, shown: str) -> None:
    assert bench_all.number(value) == shown


def test_the_table_has_one_row_per_figure_with_baseline_goal_and_verdict() -> None:
    table = bench_all.render_table([RATE_MET, LATENCY_MISSED, NO_GOAL])
    header, rule, *body = table.splitlines()
    assert header.split() == ["benchmark", "figure", "value", "same-run", "baseline", "goal"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert len(body) == 3
    rate, latency, plain = body
    # a ratio's baseline is its denominator, shown in its own unit (named), not as "x"
    assert "212x" in rate and "41.3 (direct into Tryton req/s)" in rate and ">= 100x" in rate
    assert rate.endswith("met")
    assert "12.3 ms" in latency and "180 ms (direct into Tryton)" in latency and "<= 10 ms" in latency
    assert latency.endswith("MISSED")
    assert "23,457/s" in plain and "1,234/s (raw commits/s)" in plain
    assert plain.endswith("1,234/s (raw commits/s)")  # no goal, no verdict
    # columns line up: every row's value ends where the header's value column does
    end = header.index("value") + len("value")
    assert all(line[end - 1] != " " for line in body)


def test_the_summary_counts_goals_only() -> None:
    assert bench_all.summary([RATE_MET, LATENCY_MISSED, NO_GOAL]) == "1 goal met, 1 MISSED"
    assert bench_all.summary([NO_GOAL]) == "0 goals met, 0 MISSED"


def test_the_markdown_table_escapes_pipes_and_right_aligns_the_value() -> None:
    odd = Figure("x", "a | b", 1.5, "s", goal=2)
    header, align, row = bench_all.render_markdown([odd]).splitlines()
    assert header == "| benchmark | figure | value | same-run baseline | goal |  |"
    assert align == "|---|---|---:|---|---|---|"
    assert row == "| x | a \\| b | 1.50 s |  | <= 2 s | met |"


def test_figures_go_through_emit_and_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "figures.jsonl"
    monkeypatch.delenv(FIGURES_ENV, raising=False)
    emit([RATE_MET])  # run on its own: nothing written
    assert not path.exists()
    monkeypatch.setenv(FIGURES_ENV, str(path))
    emit([RATE_MET, LATENCY_MISSED])
    emit([NO_GOAL])
    with path.open("a") as out:
        out.write("not json\n" + json.dumps({"bench": "b"}) + "\n")
    assert bench_all.read_figures(path) == [RATE_MET, LATENCY_MISSED, NO_GOAL]
    assert json.loads(path.read_text().splitlines()[0]) == asdict(RATE_MET)


def test_short_leaves_chaos_out_unless_named() -> None:
    assert bench_all.selected(None, None, short=True) == ["order_path", "bus", "erp", "read_path", "intake",
                                                          "erp_cost", "edi", "shopify"]
    assert bench_all.selected(None, None, short=False)[-1] == "chaos"
    assert bench_all.selected("chaos,bus", None, short=True) == ["bus", "chaos"]
    assert bench_all.selected(None, "bus,erp", short=True) == ["order_path", "read_path", "intake", "erp_cost",
                                                               "edi", "shopify"]
    with pytest.raises(SystemExit):
        bench_all.selected("buss", None, short=True)
