"""Figures for validation: pure functions returning ``plotly.graph_objects.Figure`` (never shown or saved).

Distributions are drawn as reference-versus-candidate overlays with a candidate / reference ratio panel below
(the layout of the 3DGAN and CaloChallenge validation plots). Most builders take the ``"histograms"`` part of
:func:`calogen.metrics.compare`'s result; :func:`overlay_values` bins raw arrays itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from calogen.features import EPSILON

__all__ = [
    "CANDIDATE_COLOUR",
    "REFERENCE_COLOUR",
    "cell_spectrum_figure",
    "classifier_figure",
    "correlation_difference_figure",
    "figures_from_result",
    "histogram_figure",
    "mscn_figure",
    "overlay_figure",
    "overlay_values",
    "profile_figure",
    "sf_vs_energy_figure",
    "sparsity_figure",
    "variance_ratio_figure",
]

REFERENCE_COLOUR = "#1f3b73"  # dark blue: the Monte Carlo reference
CANDIDATE_COLOUR = "#d1495b"  # red: the candidate (generator)
FEATURE_LABELS = {
    "deposited_energy_gev": "deposited energy [GeV]",
    "sampling_fraction": "sampling fraction E_dep / E_primary",
    "r1": "R1 (layers 1-8)",
    "r2": "R2 (layers 9-17)",
    "r3": "R3 (layers 18-25)",
    "barycentre_x_mm": "barycentre x [mm]",
    "barycentre_y_mm": "barycentre y [mm]",
    "width_x_mm": "width x [mm]",
    "width_y_mm": "width y [mm]",
    "barycentre_z_layer": "barycentre z [layer]",
    "width_z_layer": "width z [layers]",
    "n_hits": "hits (cells > 0.2 MeV)",
    "layer_of_maximum": "layer of maximum",
    "measured_angle_rad": "measured angle [rad]",
}


def _ratio(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out = np.full(num.shape, np.nan)
    ok = den > EPSILON
    out[ok] = num[ok] / den[ok]
    return out


def overlay_figure(
    x: Sequence[float],
    reference: Sequence[float],
    candidate: Sequence[float],
    *,
    reference_err: Sequence[float] | None = None,
    candidate_err: Sequence[float] | None = None,
    edges: bool = False,
    title: str = "",
    x_title: str = "",
    y_title: str = "",
    log_x: bool = False,
    log_y: bool = False,
    labels: tuple[str, str] = ("reference (MC)", "candidate"),
) -> go.Figure:
    """Reference and candidate curves with a candidate / reference ratio panel (shared x axis).

    edges=True: ``x`` are B+1 bin edges and the curves are drawn as steps; otherwise ``x`` are B points.
    Error arrays (same length as the curves) are drawn as error bars; the ratio error combines both in
    quadrature.
    """
    xs = np.asarray(x, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    ref_err = None if reference_err is None else np.asarray(reference_err, dtype=np.float64)
    cand_err = None if candidate_err is None else np.asarray(candidate_err, dtype=np.float64)
    centres = 0.5 * (xs[1:] + xs[:-1]) if edges else xs
    if edges and log_x and np.all(xs > 0):
        centres = np.sqrt(xs[1:] * xs[:-1])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.04)
    for values, errors, label, colour in ((ref, ref_err, labels[0], REFERENCE_COLOUR),
                                          (cand, cand_err, labels[1], CANDIDATE_COLOUR)):
        if edges:
            fig.add_trace(go.Scatter(x=xs, y=np.append(values, values[-1:]), mode="lines", line_shape="hv",
                                     name=label, line={"color": colour}), row=1, col=1)
            if errors is not None:
                fig.add_trace(go.Scatter(x=centres, y=values, mode="markers", marker={"size": 1, "color": colour},
                                         error_y={"array": errors, "color": colour}, showlegend=False,
                                         hoverinfo="skip"), row=1, col=1)
        else:
            fig.add_trace(go.Scatter(x=centres, y=values, mode="lines+markers", name=label,
                                     line={"color": colour}, marker={"size": 4},
                                     error_y=None if errors is None else {"array": errors}), row=1, col=1)
    ratio = _ratio(cand, ref)
    ratio_err = None
    if ref_err is not None and cand_err is not None:
        ratio_err = np.abs(ratio) * np.sqrt(_ratio(cand_err, cand) ** 2 + _ratio(ref_err, ref) ** 2)
    fig.add_trace(go.Scatter(x=centres, y=ratio, mode="markers", name="candidate / reference",
                             marker={"color": CANDIDATE_COLOUR, "size": 5}, showlegend=False,
                             error_y=None if ratio_err is None else {"array": ratio_err}), row=2, col=1)
    fig.add_hline(y=1.0, line={"color": "grey", "dash": "dash", "width": 1}, row=2, col=1)
    fig.update_yaxes(title_text=y_title, type="log" if log_y else "linear", row=1, col=1)
    fig.update_yaxes(title_text="cand / ref", range=[0.5, 1.5], row=2, col=1)
    fig.update_xaxes(type="log" if log_x else "linear", row=1, col=1)
    fig.update_xaxes(title_text=x_title, type="log" if log_x else "linear", row=2, col=1)
    fig.update_layout(title=title, template="plotly_white", legend={"x": 0.99, "xanchor": "right", "y": 0.99},
                      margin={"l": 60, "r": 20, "t": 50, "b": 50}, height=420)
    return fig


def _normalised(counts: Any) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Counts -> (fractions, Poisson errors of the fractions)."""
    c = np.asarray(counts, dtype=np.float64)
    total = max(c.sum(), EPSILON)
    return c / total, np.sqrt(c) / total


def histogram_figure(
    hist: dict[str, Any], *, title: str = "", x_title: str = "", log_x: bool = False, log_y: bool = False
) -> go.Figure:
    """Overlay of a {"edges", "reference", "candidate"} histogram (counts), each normalised to unit sum."""
    ref, ref_err = _normalised(hist["reference"])
    cand, cand_err = _normalised(hist["candidate"])
    return overlay_figure(hist["edges"], ref, cand, reference_err=ref_err, candidate_err=cand_err, edges=True,
                          title=title, x_title=x_title, y_title="fraction of showers", log_x=log_x, log_y=log_y)


def overlay_values(
    reference_values: Any,
    candidate_values: Any,
    *,
    bins: int | Any = 40,
    title: str = "",
    x_title: str = "",
    log_x: bool = False,
    log_y: bool = False,
) -> go.Figure:
    """Histogram two raw samples with common bins (see :func:`calogen.metrics.histogram_pair`) and overlay."""
    from calogen.metrics import histogram_pair

    edges, h, g = histogram_pair(reference_values, candidate_values, bins=bins, log=log_x)
    return histogram_figure({"edges": edges, "reference": h, "candidate": g}, title=title, x_title=x_title,
                            log_x=log_x, log_y=log_y)


def profile_figure(profile: dict[str, Any], axis: str, *, log_y: bool = False) -> go.Figure:
    """Mean energy profile along ``axis`` ('x', 'y', 'z') with standard errors, from compare's
    histograms["profile_<axis>"]."""
    n = len(profile["reference"])
    label = {"x": "x [cell]", "y": "y [cell]", "z": "layer"}.get(axis, axis)
    return overlay_figure(np.arange(n), profile["reference"], profile["candidate"],
                          reference_err=profile.get("reference_err"), candidate_err=profile.get("candidate_err"),
                          title=f"Mean energy profile along {axis}", x_title=label, y_title="mean energy [GeV]",
                          log_y=log_y)


def sf_vs_energy_figure(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Mean sampling fraction per energy bin with standard errors (compare's histograms["sf_vs_energy"])."""
    get = lambda key: np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=np.float64)  # noqa: E731
    return overlay_figure(get("energy_gev"), get("reference"), get("candidate"),
                          reference_err=get("reference_err"), candidate_err=get("candidate_err"),
                          title="Sampling fraction vs primary energy", x_title="primary energy [GeV]",
                          y_title="<E_dep / E_primary>")


def cell_spectrum_figure(hist: dict[str, Any]) -> go.Figure:
    """Cell-energy spectrum (all non-zero cells), log-log."""
    ref = np.asarray(hist["reference"], dtype=np.float64)
    cand = np.asarray(hist["candidate"], dtype=np.float64)
    fig = overlay_figure(hist["edges"], ref, cand, reference_err=np.sqrt(ref), candidate_err=np.sqrt(cand),
                         edges=True, title="Cell-energy spectrum", x_title="cell energy [GeV]", y_title="cells",
                         log_x=True, log_y=True)
    fig.add_vline(x=2e-4, line={"color": "grey", "dash": "dot", "width": 1})
    return fig


def sparsity_figure(hist: dict[str, Any]) -> go.Figure:
    """Fraction of cells above threshold vs threshold (occupancy; 1 - sparsity)."""
    return overlay_figure(hist["thresholds_gev"], hist["reference"], hist["candidate"],
                          title="Occupancy vs threshold", x_title="threshold [GeV]",
                          y_title="fraction of cells above", log_x=True, log_y=True)


def mscn_figure(hist: dict[str, Any]) -> go.Figure:
    """MSCN-coefficient distributions of the non-zero cells."""
    return histogram_figure(hist, title="MSCN coefficients (non-zero cells)", x_title="MSCN coefficient",
                            log_y=True)


def classifier_figure(hist: dict[str, Any], level: str) -> go.Figure:
    """Calibrated classifier output on the test split for each class (0 = reference, 1 = candidate)."""
    return histogram_figure(hist, title=f"Classifier output ({level}-level)",
                            x_title="calibrated P(candidate)")


def correlation_difference_figure(corr: dict[str, Any]) -> go.Figure:
    """Heatmap of candidate - reference feature correlations (compare's histograms["correlation"])."""
    diff = np.asarray(corr["difference"], dtype=np.float64)
    names = list(corr["names"])
    limit = max(float(np.nanmax(np.abs(diff))) if diff.size else 0.0, 0.05)
    fig = go.Figure(go.Heatmap(z=diff, x=names, y=names, zmin=-limit, zmax=limit, zmid=0.0, colorscale="RdBu_r",
                               colorbar={"title": "Δ corr"}))
    fig.update_layout(title="Correlation difference (candidate - reference)", template="plotly_white",
                      yaxis={"autorange": "reversed"}, height=560, margin={"l": 160, "r": 20, "t": 50, "b": 160})
    return fig


def variance_ratio_figure(per_layer: Sequence[float | None]) -> go.Figure:
    """Median per-cell variance ratio (candidate / reference) in each layer; ~1 expected, << 1 = mode collapse."""
    values = np.array([np.nan if v is None else v for v in per_layer], dtype=np.float64)
    fig = go.Figure(go.Scatter(x=np.arange(values.size), y=values, mode="lines+markers",
                               line={"color": CANDIDATE_COLOUR}))
    fig.add_hline(y=1.0, line={"color": "grey", "dash": "dash", "width": 1})
    fig.update_layout(title="Per-cell variance ratio (median per layer)", template="plotly_white",
                      xaxis_title="layer", yaxis_title="var(candidate) / var(reference)", height=360)
    return fig


def figures_from_result(result: dict[str, Any]) -> dict[str, go.Figure]:
    """Every figure that the ``"histograms"`` of a :func:`calogen.metrics.compare` result supports; name -> Figure."""
    hists = result["histograms"]
    figures: dict[str, go.Figure] = {}
    if hists.get("sf_vs_energy"):
        figures["sf_vs_energy"] = sf_vs_energy_figure(hists["sf_vs_energy"])
    for axis in ("z", "x", "y"):
        if f"profile_{axis}" in hists:
            figures[f"profile_{axis}"] = profile_figure(hists[f"profile_{axis}"], axis, log_y=axis != "z")
    for name, hist in hists.get("features", {}).items():
        figures[f"feature_{name}"] = histogram_figure(hist, title=FEATURE_LABELS.get(name, name),
                                                      x_title=FEATURE_LABELS.get(name, name))
    if "cell_spectrum" in hists:
        figures["cell_spectrum"] = cell_spectrum_figure(hists["cell_spectrum"])
    if "sparsity" in hists:
        figures["sparsity"] = sparsity_figure(hists["sparsity"])
    if "mscn" in hists:
        figures["mscn"] = mscn_figure(hists["mscn"])
    if "correlation" in hists:
        figures["correlation"] = correlation_difference_figure(hists["correlation"])
    if "cell_variance_ratio_per_layer" in hists:
        figures["variance_ratio"] = variance_ratio_figure(hists["cell_variance_ratio_per_layer"])
    for level in ("low", "high"):
        if f"classifier_{level}" in hists:
            figures[f"classifier_{level}"] = classifier_figure(hists[f"classifier_{level}"], level)
    return figures
