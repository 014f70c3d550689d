"""One self-contained HTML page for a validation result: metrics table, per-bin table and every figure.

plotly.js is inlined once at the top, so the page opens offline; each figure is a ``<div>`` with its own
small script. Built from the JSON-able dict of :func:`calogen.validation.metrics.compare`.
"""

from __future__ import annotations

import html
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plotly.offline import get_plotlyjs

from calogen.io import atomic_write
from calogen.plots.figures import figures_from_result

__all__ = [
    "HEADLINE_METRICS",
    "KEY_METRICS",
    "METRIC_SPECS",
    "SPECS_BY_KEY",
    "MetricSpec",
    "failed_headlines",
    "judged_rows",
    "render_html_report",
    "scoreboard_rows",
    "write_html_report",
]

@dataclass(frozen=True)
class MetricSpec:
    """How to read one figure of merit: what it measures, its ideal value and the pass range.

    The pass ranges are this project's acceptance lines for a generator meant for physics checks, not
    published numbers: about 5 % on the sampling fraction (the level the 3DGAN papers show), classifier AUC
    at most 0.7 (the CaloChallenge reads 0.5 as indistinguishable, 1 as trivially separable), per-cell
    variance and nearest-neighbour ratios within a factor two of 1.
    """

    key: str  # name in calogen.validation.metrics.compare's "metrics" and in card.json's "validation"
    label: str  # short readable name for tables
    meaning: str  # one sentence
    ideal: float  # value of a perfect generator
    low: float  # pass range, inclusive: low <= value <= high
    high: float
    fmt: str = ".3g"  # format of the value

    def passes(self, value: float | None) -> bool | None:
        """True inside the pass range, False outside, None when there is no finite value."""
        if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        return self.low <= float(value) <= self.high

    @property
    def target(self) -> str:
        """The pass range in words, e.g. "<= 0.05" or "0.5-2"."""
        if self.low == -math.inf:
            return f"<= {self.high:g}"
        if self.high == math.inf:
            return f">= {self.low:g}"
        return f"{self.low:g}-{self.high:g}"

    def format(self, value: float | None) -> str:
        """The value with a sensible number of digits (scientific notation for large ones), "n/a" when absent."""
        if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            return "n/a"
        return f"{value:.3g}" if abs(value) >= 1e4 else format(value, self.fmt)


_INF = math.inf
METRIC_SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("sf_mre", "SF error", "mean relative error of the mean sampling fraction over the energy and "
               "angle bins (3DGAN)", 0.0, -_INF, 0.05),
    MetricSpec("sf_relative_error_max_bin", "SF error, worst bin", "relative error of the mean sampling "
               "fraction in the worst energy and angle bin", 0.0, -_INF, 0.1),
    MetricSpec("separation_mean", "separation power", "mean separation power of the shower observables' "
               "histograms, 0 = identical (CaloChallenge)", 0.0, -_INF, 0.05),
    MetricSpec("classifier_auc_high", "classifier AUC (features)", "AUC of a classifier telling generated "
               "from Monte Carlo showers by their observables; 0.5 = cannot tell", 0.5, -_INF, 0.7, ".2f"),
    MetricSpec("classifier_auc_low", "classifier AUC (cells)", "AUC of a classifier telling generated from "
               "Monte Carlo showers by their cells; 0.5 = cannot tell", 0.5, -_INF, 0.7, ".2f"),
    MetricSpec("bmre_profile_z", "longitudinal profile error", "binned mean relative error of the mean "
               "energy per layer", 0.0, -_INF, 0.1),
    MetricSpec("shape_mse", "profile shape MSE", "mean squared error of the normalised mean x, y and layer "
               "profiles", 0.0, -_INF, 0.001),
    MetricSpec("ssim_L1", "SSIM of mean showers (L=1)", "structural similarity of the mean shower images, "
               "1 = identical", 1.0, 0.99, 1.0, ".4f"),
    MetricSpec("ssim_L0.0001", "SSIM of mean showers (L=1e-4)", "structural similarity with the dynamic range "
               "of the faint cells, 1 = identical", 1.0, 0.9, 1.0, ".3f"),
    MetricSpec("mscn_jsd", "texture distance (MSCN)", "Jensen-Shannon distance of the local-contrast (MSCN) "
               "coefficients of the cells, 0 = identical", 0.0, -_INF, 0.1),
    MetricSpec("correlation_mse", "correlation error", "mean squared difference of the correlations between "
               "shower observables", 0.0, -_INF, 0.01),
    MetricSpec("fpd_x1e3", "FPD x 1e3", "Frechet distance of the shower-observable distributions, x 1000",
               0.0, -_INF, 100.0),
    MetricSpec("kpd_x1e3", "KPD x 1e3", "kernel distance of the shower-observable distributions, x 1000",
               0.0, -_INF, 10.0),
    MetricSpec("cell_variance_ratio", "cell variance ratio", "median ratio of per-cell variances, generated / "
               "Monte Carlo; << 1 means every shower looks alike (mode collapse)", 1.0, 0.5, 2.0),
    MetricSpec("nn_ratio", "nearest-neighbour ratio", "distance to the nearest Monte Carlo shower over the "
               "Monte Carlo's own; << 1 means copies of training showers, >> 1 showers unlike any", 1.0, 0.5, 2.0),
)
SPECS_BY_KEY = {spec.key: spec for spec in METRIC_SPECS}
HEADLINE_METRICS = ("sf_mre", "sf_relative_error_max_bin", "separation_mean", "classifier_auc_high",
                    "bmre_profile_z", "cell_variance_ratio")
# (metric, what it measures, what a perfect candidate gives), the form the HTML report and older callers read
KEY_METRICS: tuple[tuple[str, str, str], ...] = tuple(
    (spec.key, spec.meaning, f"{spec.ideal:g}") for spec in METRIC_SPECS if spec.key != "sf_relative_error_max_bin"
)


def judged_rows(figures: dict[str, Any], keys: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """One readable row per known metric present in ``figures``: figure, meaning, value (formatted), ideal,
    target and verdict ("pass", "FAIL" or "n/a"). keys: which metrics and their order (default: all known)."""
    rows = []
    for key in keys or tuple(SPECS_BY_KEY):
        spec = SPECS_BY_KEY[key]
        if key not in figures:
            continue
        value = figures[key]
        verdict = spec.passes(value)
        rows.append({"figure": spec.label, "value": spec.format(value), "target": spec.target,
                     "ideal": f"{spec.ideal:g}", "verdict": {True: "pass", False: "FAIL", None: "n/a"}[verdict],
                     "meaning": spec.meaning})
    return rows


def scoreboard_rows(metrics_by_source: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """One row per known metric that any source has: figure, target, ideal, then one column per source with
    the value and its verdict ("0.0312 pass", "2.13 FAIL", "n/a"), and the meaning last."""
    rows = []
    for spec in METRIC_SPECS:
        if not any(spec.key in m for m in metrics_by_source.values()):
            continue
        row = {"figure": spec.label, "target": spec.target, "ideal": f"{spec.ideal:g}"}
        for name, metrics in metrics_by_source.items():
            value = metrics.get(spec.key)
            verdict = spec.passes(value)
            row[name] = spec.format(value) + {True: " pass", False: " FAIL", None: ""}[verdict]
        row["meaning"] = spec.meaning
        rows.append(row)
    return rows


def failed_headlines(figures: dict[str, Any]) -> list[str]:
    """Labels of the headline metrics that fail their targets (absent or non-finite ones are not counted)."""
    return [SPECS_BY_KEY[k].label for k in HEADLINE_METRICS if SPECS_BY_KEY[k].passes(figures.get(k)) is False]


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td.name { text-align: left; }
.figs { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.wide { grid-column: 1 / span 2; }
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return html.escape(str(value))


def render_html_report(result: dict[str, Any], *, title: str = "calogen validation report",
                       name: str = "candidate") -> str:
    """The report page as a string (see :func:`write_html_report`); ``name``: the source in legends and
    column titles."""
    from calogen.plots.views import bin_rows

    metrics = result.get("metrics", {})
    info = result.get("info", {})
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style><script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    parts.append("<p>" + "; ".join(f"{html.escape(k)}: {_fmt(v)}" for k, v in info.items() if k != "ssim") + "</p>")

    judged = judged_rows(metrics)
    if judged:
        parts.append("<h2>Key metrics</h2><table><tr><th>figure</th><th>value</th><th>target</th><th>ideal</th>"
                     "<th>verdict</th><th>meaning</th></tr>")
        for row in judged:
            colour = {"FAIL": "#c0392b", "pass": "#1e8449"}.get(row["verdict"], "#666")
            parts.append(f"<tr><td class='name'>{html.escape(row['figure'])}</td><td>{row['value']}</td>"
                         f"<td>{html.escape(row['target'])}</td><td>{row['ideal']}</td>"
                         f"<td style='color:{colour}'>{row['verdict']}</td>"
                         f"<td class='name'>{html.escape(row['meaning'])}</td></tr>")
        parts.append("</table>")

    rows = bin_rows(result.get("bins", []), name=name)
    if rows:
        parts.append("<h2>Per condition bin</h2><table><tr>")
        parts.extend(f"<th>{html.escape(c)}</th>" for c in rows[0])
        parts.append("</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row.values()) + "</tr>")
        parts.append("</table>")

    parts.append("<h2>Figures</h2><div class='figs'>")
    for fig_name, fig in figures_from_result(result, name=name).items():
        css = "wide" if fig_name.startswith("correlation") else ""
        parts.append(f"<div class='{css}'>{fig.to_html(full_html=False, include_plotlyjs=False)}</div>")
    parts.append("</div>")

    parts.append("<h2>All metrics</h2><table><tr><th>metric</th><th>value</th></tr>")
    parts.extend(f"<tr><td class='name'>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>"
                 for k, v in sorted(metrics.items()))
    parts.append("</table></body></html>")
    return "\n".join(parts)


def write_html_report(
    result: dict[str, Any], path: str | os.PathLike[str], *, title: str = "calogen validation report",
    name: str = "candidate",
) -> Path:
    """Write the self-contained report page to ``path`` (atomically) and return the path."""
    page = render_html_report(result, title=title, name=name)
    return atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
