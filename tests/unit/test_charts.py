"""The SVG chart helpers (web/charts.py), without services: geometry, axes and ticks, labels, the
accessible names and the data table, escaping of every label that comes from data."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from ordersync.web import charts
from ordersync.web.charts import Series, count_label, seconds_label, ticks

NS = {"svg": "http://www.w3.org/2000/svg"}


def parse(markup: object) -> ET.Element:
    """The markup as XML (it must be well-formed: an unescaped label would break it)."""
    return ET.fromstring(str(markup).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def texts(root: ET.Element, cls: str) -> list[str]:
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == cls]


def rects(root: ET.Element) -> list[ET.Element]:
    return list(root.iter("{http://www.w3.org/2000/svg}rect"))


def test_ticks_are_round_and_cover_the_top() -> None:
    assert ticks(0) == [0, 1] and ticks(3) == [0, 1, 2, 3]
    assert ticks(7) == [0, 2, 4, 6, 8]
    assert ticks(1234) == [0, 500, 1000, 1500]
    assert ticks(95, seconds=True) == [0, 30, 60, 90, 120]  # half minutes, not 19 s steps
    assert ticks(3000, seconds=True)[-1] >= 3000 and all(t % 600 == 0 for t in ticks(3000, seconds=True))
    for top in (1, 9, 55, 99, 100, 101, 5000):
        scale = ticks(top)
        assert scale[0] == 0 and scale[-1] >= top and len(scale) <= 6


def test_labels_of_counts_and_durations() -> None:
    assert [count_label(v) for v in (0, 7, 1250)] == ["0", "7", "1,250"]
    assert [seconds_label(v) for v in (45, 90, 720, 3600, 9000, 86400 * 2 + 3600)] == \
        ["45s", "1m 30s", "12m", "1h", "2h 30m", "2d 1h"]


def test_columns_draw_one_bar_per_category_scaled_to_the_axis() -> None:
    svg = charts.columns("orders", "Orders per hour", "6 orders; busiest 10:00 with 4.", ["09:00", "10:00", "11:00"],
                         [Series("Orders", (2, 4, 0))], unit="orders", data_name="hour",
                         keys=["2026-03-02T09:00", "2026-03-02T10:00", "2026-03-02T11:00"])
    root = parse(svg)
    assert root.get("role") == "img" and root.get("width") == "100%"
    assert root.get("viewBox") == f"0 0 {charts.WIDTH} 220"
    assert root.get("aria-labelledby") == "orders-title orders-desc"
    assert root.find("svg:title", NS).text == "Orders per hour"  # type: ignore[union-attr]
    assert root.find("svg:desc", NS).text == "6 orders; busiest 10:00 with 4."  # type: ignore[union-attr]
    bars = [(g.get("data-hour"), g.get("data-count")) for g in root.iter("{http://www.w3.org/2000/svg}g")
            if g.get("class") == "bar"]
    assert bars == [("2026-03-02T09:00", "2"), ("2026-03-02T10:00", "4"), ("2026-03-02T11:00", "0")]
    heights = [float(r.get("height") or 0) for r in rects(root)]
    assert len(heights) == 2 and heights[1] == pytest.approx(2 * heights[0])  # no rect for the zero
    assert texts(root, "tick")[:5] == ["0", "1", "2", "3", "4"]  # the y axis, then the hours
    assert texts(root, "tick")[5:] == ["09:00", "10:00", "11:00"] and texts(root, "unit") == ["orders"]
    assert "style=" not in str(svg)  # the CSP allows no inline style: classes only


def test_stacked_columns_pile_the_series_and_grouped_ones_stand_side_by_side() -> None:
    series = [Series("flow.erp_submit", (1, 3)), Series("webhooks", (2, 0))]
    root = parse(charts.columns("dlq", "Dead letters", "6", ["09:00", "10:00"], series))
    first = [r for r in rects(root)][:2]
    assert [r.get("class") for r in first] == ["s0", "s1"]
    assert float(first[1].get("y") or 0) + float(first[1].get("height") or 0) == pytest.approx(
        float(first[0].get("y") or 0), abs=0.1)  # the second sits on the first
    assert [g.get("data-count") for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "bar"] \
        == ["3", "3"]
    grouped = parse(charts.columns("age", "Ageing", "x", ["<1h"], [Series("orders", (1,)), Series("cases", (2,))],
                                   stacked=False))
    a, b = rects(grouped)
    assert float(b.get("x") or 0) > float(a.get("x") or 0) and a.get("y") != b.get("y")


def test_horizontal_bars_label_each_row_and_its_total() -> None:
    root = parse(charts.bars("backlog", "Backlog", "3 orders", ["on hold", "submitted to erp"],
                             [Series("Orders", (1, 2))], data_name="state", keys=["on_hold", "submitted_to_erp"]))
    assert texts(root, "label") == ["on hold", "submitted to erp"]
    assert texts(root, "value") == ["1", "2"]
    widths = [float(r.get("width") or 0) for r in rects(root)]
    assert widths[1] == pytest.approx(2 * widths[0])
    assert [g.get("data-state") for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "bar"] \
        == ["on_hold", "submitted_to_erp"]


def test_lines_leave_gaps_where_there_is_no_value_and_draw_the_threshold() -> None:
    svg = charts.lines("lat", "Latency", "p99 at most 4m", ["09:00", "10:00", "11:00", "12:00"],
                       [Series("p50", (30, 40, None, 50)), Series("p99", (60, 240, None, None))],
                       fmt=seconds_label, seconds=True, threshold=("Threshold", 300))
    root = parse(svg)
    groups = {g.get("data-series"): g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("data-series")}
    p50 = groups["p50"]
    assert len(p50.findall("svg:polyline", NS)) == 1  # 09:00-10:00; 12:00 stands alone after the gap
    assert len(p50.findall("svg:circle", NS)) == 3 and len(groups["p99"].findall("svg:circle", NS)) == 2
    assert root.find(".//svg:g[@class='threshold']/svg:line", NS) is not None
    assert "5m" in texts(root, "tick") and "Threshold: 5m" in str(svg)  # the axis reaches the threshold
    assert "p99 at 10:00: 4m" in str(svg)


def test_every_label_from_data_is_escaped() -> None:
    evil = '<script>alert("x")</script> & "team"'
    series = [Series(evil, (1,))]
    for markup in (charts.columns("c", evil, evil, [evil], series, unit=evil, keys=[evil]),
                   charts.bars("b", evil, evil, [evil], series, keys=[evil]),
                   charts.lines("l", evil, evil, [evil], series, threshold=(evil, 1)),
                   charts.legend(series, evil), charts.table(evil, evil, [evil], series, total=True)):
        text = str(markup)
        assert "<script>" not in text and "&lt;script&gt;" in text
        assert not re.search(r'="[^"]*"team', text)  # a quote cannot end an attribute
    parse(charts.columns("c", evil, evil, [evil], series, keys=[evil]))  # still well-formed


def test_the_table_holds_the_same_numbers_as_the_chart() -> None:
    series = [Series("<1h", (1, 0)), Series(">3d", (0, 2))]
    html = str(charts.table("Open cases by team and age", "Team", ["finance", "operations"], series, total=True))
    rows = re.findall(r"<tr><th scope=\"row\">([^<]+)</th>(.*?)</tr>", html)
    assert [(team, re.findall(r'<td class="num">([^<]*)</td>', cells)) for team, cells in rows] == \
        [("finance", ["1", "0", "1"]), ("operations", ["0", "2", "2"])]
    assert "<caption>Open cases by team and age</caption>" in html
    missing = str(charts.table("Latency", "Hour", ["09:00"], [Series("p50", (None,))], fmt=seconds_label))
    assert '<td class="num">-</td>' in missing  # no value is not a zero


def test_a_series_must_match_its_categories() -> None:
    with pytest.raises(ValueError, match="2 values for 3 categories"):
        charts.columns("x", "x", "x", ["a", "b", "c"], [Series("s", (1, 2))])


def test_a_threshold_far_above_the_values_is_named_not_drawn_and_an_empty_chart_says_so() -> None:
    svg = str(charts.lines("lat", "Latency", "fast", ["09:00", "10:00"], [Series("p50", (2, 3))],
                           fmt=seconds_label, seconds=True, threshold=("Threshold", 300)))
    root = parse(svg)
    assert root.find(".//svg:g[@class='threshold']", NS) is None
    assert texts(root, "note") == ["Threshold 5m, far above"]
    assert texts(root, "tick")[-3:] != ["5m"] and "3s" in texts(root, "tick")  # the lines keep their height
    empty = parse(charts.lines("h", "Holds", "none", ["09:00"], [Series("p50", (None,))], empty="No hold"))
    assert texts(empty, "empty") == ["No hold"]
    assert texts(parse(charts.columns("c", "Orders", "none", ["09:00"], [Series("n", (0,))], empty="None")),
                 "empty") == ["None"]
    assert texts(parse(charts.columns("c", "Orders", "one", ["09:00"], [Series("n", (1,))], empty="None")),
                 "empty") == []
