"""One self-contained HTML page for a comparison: headline figures judged against their targets, the per-bin
table, every figure and every number.

plotly.js is inlined once at the top, so the page opens offline; each figure is a ``<div>`` with its own small
script. Built from a :class:`calogen.validation.comparison.Comparison`. The tables of judged figures shown by
the app come from here too (:func:`judged_rows`, :func:`scoreboard_rows`, :func:`bin_table`).
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping
from pathlib import Path

from plotly.offline import get_plotlyjs

from calogen.io import atomic_write
from calogen.plots.figures import figures_from_result
from calogen.validation.bin_table import sf_error_standard_error
from calogen.validation.comparison import BinRow, Comparison
from calogen.validation.targets import (
    HEADLINE_METRICS,
    METRIC_SPECS,
    SPECS_BY_KEY,
    MetricSpec,
    failed_headlines,
    judge,
)

__all__ = [
    "HEADLINE_METRICS",
    "METRIC_SPECS",
    "SPECS_BY_KEY",
    "MetricSpec",
    "bin_table",
    "failed_headlines",
    "judged_rows",
    "render_html_report",
    "scoreboard_rows",
    "write_html_report",
]


def judged_rows(figures: Mapping[str, object], keys: tuple[str, ...] | None = None) -> list[dict[str, str]]:
    """One readable row per known figure present in ``figures`` (JSON name -> value, e.g. a comparison's
    ``metrics`` or a card's ``validation``): figure, value (formatted), target, ideal, verdict ("pass", "FAIL" or
    "n/a") and meaning. keys: which figures and their order (default: all known)."""
    return [{"figure": f.label, "value": f.formatted, "target": f.spec.target, "ideal": f"{f.spec.ideal:g}",
             "verdict": f.verdict, "meaning": f.meaning} for f in judge(figures, keys)]


def scoreboard_rows(results: Mapping[str, Comparison]) -> list[dict[str, str]]:
    """One row per known figure that any comparison has: figure, target, ideal, then one column per source with
    the value and its verdict ("0.0312 pass", "2.13 FAIL", "n/a"), and the meaning last."""
    rows = []
    for spec in METRIC_SPECS:
        if not any(spec.key in c.metrics for c in results.values()):
            continue
        row = {"figure": spec.label, "target": spec.target, "ideal": f"{spec.ideal:g}"}
        for name, comparison in results.items():
            judged = judge(comparison.metrics, (spec.key,))
            row[name] = "n/a" if not judged else (judged[0].formatted + {"pass": " pass", "FAIL": " FAIL",
                                                                        "n/a": ""}[judged[0].verdict])
        row["meaning"] = spec.meaning
        rows.append(row)
    return rows


def _fmt(value: float | None, fmt: str) -> str:
    return format(value, fmt) if value is not None and math.isfinite(value) else "n/a"


def bin_table(bins: tuple[BinRow, ...], *, name: str = "candidate") -> list[dict[str, str]]:
    """The per-bin rows as readable strings: energy and angle bins (GeV, whole degrees), showers of each sample,
    mean sampling fractions, their relative error and its standard error (both samples' sampling noise), and the
    mean measured angle (degrees) where measured.
    name: the candidate's column title."""
    rows = []
    for b in bins:
        (e_lo, e_hi), (t_lo, t_hi) = b.energy_gev, b.theta_rad
        row = {
            "energy": f"{max(e_lo, 0.0):.3g}-{e_hi:.3g} GeV",  # the +-5 GeV bin around 2 GeV starts at 0
            "angle": f"{math.degrees(t_lo):.0f}-{math.degrees(t_hi):.0f} deg",
            f"showers (MC / {name})": f"{b.n_reference} / {b.n_candidate}",
            "SF Monte Carlo": _fmt(b.sf_reference, ".4f"),
            f"SF {name}": _fmt(b.sf_candidate, ".4f"),
            "SF error": _fmt(b.sf_relative_error, ".1%"),
            "SF error s.e.": _fmt(sf_error_standard_error(b), ".1%"),
        }
        if b.measured_angle_rad_reference is not None:
            for value, label in ((b.measured_angle_rad_reference, "Monte Carlo"),
                                 (b.measured_angle_rad_candidate, name)):
                row[f"angle {label} (deg)"] = _fmt(None if value is None else math.degrees(value), ".1f")
        rows.append(row)
    return rows


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td.name { text-align: left; }
.figs { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.wide { grid-column: 1 / span 2; }
"""
_VERDICT_COLOURS = {"FAIL": "#c0392b", "pass": "#1e8449"}


def _table(rows: list[dict[str, str]], *, name_columns: tuple[str, ...] = ()) -> list[str]:
    parts = ["<table><tr>", *(f"<th>{html.escape(c)}</th>" for c in rows[0]), "</tr>"]
    for row in rows:
        cells = []
        for column, value in row.items():
            css = " class='name'" if column in name_columns else ""
            colour = _VERDICT_COLOURS.get(value) if column == "verdict" else None
            css += f" style='color:{colour}'" if colour else ""
            cells.append(f"<td{css}>{html.escape(value)}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table>")
    return parts


def _summary(comparison: Comparison, name: str) -> str:
    info = comparison.info
    words = [f"{info.n_reference} reference showers ({info.reference_source})",
             f"{info.n_candidate} {name} showers ({info.candidate_source})"]
    if info.geometry:
        words.append("cells " + " x ".join(map(str, info.geometry)))
    if info.coverage is not None:
        words.append(f"{len(info.coverage.bins)} energy and angle bins that both samples fill")
    for label, path in (("reference file", info.reference_path), ("candidate file", info.candidate_path)):
        if path:
            words.append(f"{label} {path}")
    return "; ".join(html.escape(w) for w in words)


def render_html_report(comparison: Comparison, *, title: str = "calogen validation report",
                       name: str = "candidate") -> str:
    """The report page as a string (see :func:`write_html_report`); ``name``: the candidate in legends and
    column titles. A headline figure that misses its target is marked FAIL in red."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style><script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
             f"<h1>{html.escape(title)}</h1>", f"<p>{_summary(comparison, name)}</p>"]
    failed = comparison.failed
    if failed:
        parts.append(f"<p style='color:{_VERDICT_COLOURS['FAIL']}'><b>{len(failed)} headline figure(s) miss their "
                     f"target: {html.escape('; '.join(failed))}.</b></p>")
    for heading, keys in (("Headline figures", HEADLINE_METRICS), ("Other judged figures", None)):
        rows = judged_rows(comparison.metrics, keys)
        if heading != "Headline figures":
            rows = [r for r in rows if r["figure"] not in {SPECS_BY_KEY[k].label for k in HEADLINE_METRICS}]
        if rows:
            parts.append(f"<h2>{heading}</h2>")
            parts.extend(_table(rows, name_columns=("figure", "meaning")))
    if comparison.bins:
        parts.append("<h2>Per condition bin</h2>")
        parts.extend(_table(bin_table(comparison.bins, name=name)))
    parts.append("<h2>Figures</h2><div class='figs'>")
    for fig_name, fig in figures_from_result(comparison, name=name).items():
        css = "wide" if fig_name.startswith("correlation") else ""
        parts.append(f"<div class='{css}'>{fig.to_html(full_html=False, include_plotlyjs=False)}</div>")
    parts.append("</div><h2>All numbers</h2>")
    parts.extend(_table([{"metric": k, "value": _fmt(v, ".4g")} for k, v in sorted(comparison.metrics.items())],
                        name_columns=("metric",)))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html_report(
    comparison: Comparison, path: str | os.PathLike[str], *, title: str = "calogen validation report",
    name: str = "candidate",
) -> Path:
    """Write the self-contained report page to ``path`` (atomically) and return the path."""
    page = render_html_report(comparison, title=title, name=name)

    def write(tmp: Path) -> None:
        tmp.write_text(page, encoding="utf-8")

    return atomic_write(path, write)
