"""The HTML report of a Comparison: self-contained, names every headline figure, marks a failed target."""

from __future__ import annotations

import re

from plotly.offline import get_plotlyjs
from test_plots import miniature

from calogen.plots.report import bin_table, judged_rows, render_html_report, scoreboard_rows, write_html_report
from calogen.validation.comparison import Comparison
from calogen.validation.targets import HEADLINE_METRICS, SPECS_BY_KEY


def _failing() -> Comparison:
    base = miniature()
    return Comparison({**base.metrics, "sf_mre": 0.30, "sf_relative_error_max_bin": 0.02,
                       "separation_mean": 0.01, "bmre_profile_z": 0.02, "cell_variance_ratio": 1.1},
                      base.bins, base.info, profiles=base.profiles)


def test_report_names_every_headline_figure_and_marks_a_failed_target(tmp_path) -> None:
    page = render_html_report(_failing(), title="toy vs MC", name="toy")
    for key in HEADLINE_METRICS:
        assert SPECS_BY_KEY[key].label in page
    # the failing figure's row: label, value, target and a red FAIL
    row = re.search(r"<tr><td class='name'>SF error</td>.*?</tr>", page)
    assert row is not None
    assert "0.3" in row.group(0) and "&lt;= 0.05" in row.group(0) and "color:#c0392b'>FAIL" in row.group(0)
    assert "1 headline figure(s) miss their target: SF error." in page
    assert page.count(">pass<") == 5  # the other headline figures pass
    assert page.count(get_plotlyjs()[:500]) == 1 and "<script src=" not in page  # offline, inlined once
    path = write_html_report(_failing(), tmp_path / "sub" / "report.html")
    written = path.read_text(encoding="utf-8")
    assert written.startswith("<!DOCTYPE html>") and "miss their target: SF error" in written


def test_passing_report_has_no_failure_line_and_shows_missing_values() -> None:
    page = render_html_report(miniature())
    assert "miss their target" not in page
    assert ">fpd</td><td>n/a<" in page  # a non-finite figure reads n/a in the table of all numbers


def test_tables_read_the_comparison() -> None:
    comparison = _failing()
    rows = judged_rows(comparison.metrics, ("sf_mre", "classifier_auc_high"))
    assert [(r["figure"], r["value"], r["verdict"]) for r in rows] == [
        ("SF error", "0.3", "FAIL"), ("classifier AUC (features)", "0.51", "pass")]
    board = scoreboard_rows({"a": comparison, "b": miniature()})
    sf = next(r for r in board if r["figure"] == "SF error")
    assert sf["a"] == "0.3 FAIL" and sf["b"] == "0.012 pass"
    assert bin_table(comparison.bins, name="toy") == [{
        "energy": "50-100 GeV", "angle": "86-92 deg", "showers (MC / toy)": "10 / 12",
        "SF Monte Carlo": "0.0200", "SF toy": "0.0210", "SF error": "5.0%",
        "SF error s.e.": "n/a"}]  # the toy bin has no standard errors
