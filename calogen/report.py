"""One self-contained HTML page for a validation result: metrics table, per-bin table and every figure.

plotly.js is inlined once at the top, so the page opens offline; each figure is a ``<div>`` with its own
small script. Built from the JSON-able dict of :func:`calogen.metrics.compare`.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from plotly.offline import get_plotlyjs

from calogen.io import atomic_write
from calogen.plots import figures_from_result

__all__ = ["KEY_METRICS", "render_html_report", "write_html_report"]

# (metric, what it measures, what a perfect candidate gives)
KEY_METRICS: tuple[tuple[str, str, str], ...] = (
    ("sf_mre", "sampling-fraction MRE over condition bins (3DGAN)", "0"),
    ("separation_mean", "mean separation power of the shower observables (CaloChallenge)", "0"),
    ("shape_mse", "shape MSE of the mean x, y, z profiles", "0"),
    ("bmre_profile_z", "BMRE of the longitudinal profile", "0"),
    ("ssim_L1", "SSIM of mean showers, L = 1", "1"),
    ("ssim_L0.0001", "SSIM of mean showers, L = 1e-4", "1"),
    ("mscn_jsd", "Jensen-Shannon distance of MSCN coefficients", "0"),
    ("correlation_mse", "MSE of feature-correlation differences", "0"),
    ("fpd_x1e3", "Frechet physics distance x 1e3", "0"),
    ("kpd_x1e3", "kernel physics distance x 1e3", "0"),
    ("classifier_auc_low", "classifier AUC on cells / E", "0.5"),
    ("classifier_auc_high", "classifier AUC on high-level features", "0.5"),
    ("cell_variance_ratio", "median per-cell variance ratio (mode collapse if << 1)", "1"),
    ("nn_ratio", "nearest-neighbour distance ratio (memorisation if << 1)", "~1"),
)

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
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return html.escape(str(value))


def render_html_report(result: dict[str, Any], *, title: str = "calogen validation report") -> str:
    """The report page as a string (see :func:`write_html_report`)."""
    metrics = result.get("metrics", {})
    info = result.get("info", {})
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style><script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    parts.append("<p>" + "; ".join(f"{html.escape(k)}: {_fmt(v)}" for k, v in info.items() if k != "ssim") + "</p>")

    parts.append("<h2>Key metrics</h2><table><tr><th>metric</th><th>meaning</th><th>value</th><th>ideal</th></tr>")
    for key, meaning, ideal in KEY_METRICS:
        if key in metrics:
            parts.append(f"<tr><td class='name'>{key}</td><td class='name'>{html.escape(meaning)}</td>"
                         f"<td>{_fmt(metrics[key])}</td><td>{ideal}</td></tr>")
    parts.append("</table>")

    rows = result.get("bins", [])
    if rows:
        columns = ["energy_gev", "theta_rad", "n_reference", "n_candidate", "sf_reference", "sf_candidate",
                   "sf_relative_error", "separation_sf", "shape_mse_z", "bmre_profile_z", "ssim_L1", "ssim_L0.0001",
                   "measured_angle_rad_reference", "measured_angle_rad_candidate"]
        parts.append("<h2>Per condition bin</h2><table><tr>")
        parts.extend(f"<th>{c}</th>" for c in columns)
        parts.append("</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{_fmt(row.get(c))}</td>" for c in columns) + "</tr>")
        parts.append("</table>")

    parts.append("<h2>Figures</h2><div class='figs'>")
    for name, fig in figures_from_result(result).items():
        css = "wide" if name == "correlation" else ""
        parts.append(f"<div class='{css}'>{fig.to_html(full_html=False, include_plotlyjs=False)}</div>")
    parts.append("</div>")

    parts.append("<h2>All metrics</h2><table><tr><th>metric</th><th>value</th></tr>")
    parts.extend(f"<tr><td class='name'>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>"
                 for k, v in sorted(metrics.items()))
    parts.append("</table></body></html>")
    return "\n".join(parts)


def write_html_report(
    result: dict[str, Any], path: str | os.PathLike[str], *, title: str = "calogen validation report"
) -> Path:
    """Write the self-contained report page to ``path`` (atomically) and return the path."""
    page = render_html_report(result, title=title)
    return atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
