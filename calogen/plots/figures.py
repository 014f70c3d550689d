"""Figures for validation: pure functions returning ``plotly.graph_objects.Figure`` (never shown or saved).

Distributions are drawn as reference-versus-candidate overlays with a candidate / reference ratio panel below
(the layout of the 3DGAN and CaloChallenge validation plots). The builders take the parts of a
:class:`calogen.validation.comparison.Comparison` (its profiles, histograms, ...); :func:`figures_from_results`
draws every figure of several comparisons at once, and :func:`overlay_values` bins raw arrays itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from calogen.validation.comparison import Comparison, Correlations, Occupancy, Profile, SfPoint
from calogen.validation.distances import HistogramPair, histogram_pair
from calogen.validation.features import CELL_SIZE_MM, EPSILON, HIT_THRESHOLD_GEV

__all__ = [
    "CANDIDATE_COLOUR",
    "CANDIDATE_COLOURS",
    "REFERENCE_COLOUR",
    "Curve",
    "cell_spectrum_figure",
    "classifier_figure",
    "correlation_difference_figure",
    "figures_from_result",
    "figures_from_results",
    "histogram_figure",
    "histograms_figure",
    "mscn_figure",
    "overlay_curves",
    "overlay_figure",
    "overlay_values",
    "profiles_figure",
    "sf_vs_energy_figure",
    "sparsity_figure",
    "style_figure",
    "variance_ratio_figure",
]

REFERENCE_COLOUR = "#1f3b73"  # dark blue: the Monte Carlo reference
CANDIDATE_COLOUR = "#d1495b"  # red: the candidate (generator)
CANDIDATE_COLOURS = (CANDIDATE_COLOUR, "#2a9d8f", "#e9a03b", "#7b4fa0", "#6b8f23")  # one per overlaid source
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
    "measured_angle_rad": "measured angle [deg]",
}
FEATURE_SCALES = {"measured_angle_rad": 180.0 / np.pi}  # features drawn in other units than computed: rad -> deg
CELL_MM = CELL_SIZE_MM  # transverse cell size of the CLIC ECAL readout, mm


FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 14, "color": "#1a1a1a"}


_AXIS_STYLE = {"tickfont": {"size": 13, "color": "#1a1a1a"}, "title_font": {"size": 14, "color": "#1a1a1a"},
               "exponentformat": "power", "linecolor": "#555", "showline": True, "ticks": "outside",
               "tickcolor": "#555"}
# decades labelled as powers of ten; the 2-9 in between are unlabelled minor ticks
_LOG_AXIS_STYLE = {"exponentformat": "power", "dtick": 1,
                   "minor": {"ticks": "outside", "ticklen": 3, "tickcolor": "#777", "showgrid": False}}


# the trace types calogen draws: the template keeps plotly_white's defaults for these only
_TRACE_TYPES = ("bar", "box", "heatmap", "scatter", "scatter3d", "volume")


@functools.lru_cache(maxsize=1)
def _template() -> go.layout.Template:
    """plotly_white with the project's axes (every x and y axis of a figure takes them), built once: styling
    each axis of each figure through plotly's validators took ~30 ms an axis, the bulk of a page's rerun. Only the
    trace defaults of :data:`_TRACE_TYPES` are kept: plotly copies the template into every figure, and the
    defaults of the two dozen other trace types doubled that cost."""
    white = pio.templates["plotly_white"]
    data = {kind: white.data[kind] for kind in _TRACE_TYPES if white.data[kind]}
    template = go.layout.Template(layout=white.layout, data=data)
    template.layout.update(xaxis=_AXIS_STYLE, yaxis=_AXIS_STYLE)
    return template


def style_figure(fig: go.Figure, *, font_size: int = 14) -> go.Figure:
    """The project's look, in place and returned: white background, dark readable fonts (``font_size`` for
    titles and legends, one point less for ticks), powers of ten instead of SI prefixes (no "100u GeV"),
    log axes labelled only at decades."""
    fig.update_layout(template=_template(), font={**FONT, "size": font_size},
                      title_font={"size": font_size + 2, "color": "#1a1a1a"},
                      legend={"font": {"size": font_size - 1, "color": "#1a1a1a"}})
    for axis in (*fig.select_xaxes(), *fig.select_yaxes()):
        if axis.type == "log":
            axis.update(_LOG_AXIS_STYLE)
    return fig


def _ratio(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out = np.full(num.shape, np.nan)
    ok = den > EPSILON
    out[ok] = num[ok] / den[ok]
    return out


def _ratio_range(ratios: list[npt.NDArray[np.float64]]) -> list[float]:
    """Ratio-panel y range: at least 0.5-1.5, widened to the 2nd-98th percentile of the finite ratios (with
    a margin), never below 0 or above 10, so a generator 20 % or 10x off still shows its points."""
    values = np.concatenate([r[np.isfinite(r)] for r in ratios]) if ratios else np.array([])
    lo, hi = 0.5, 1.5
    if values.size:
        lo = min(lo, float(np.percentile(values, 2)) * 0.9)
        hi = max(hi, float(np.percentile(values, 98)) * 1.1)
    return [max(lo, 0.0), min(hi, 10.0)]


@dataclass(frozen=True)
class Curve:
    """One candidate curve and the reference on the same x, for its ratio panel.

    x: B+1 bin edges (step curves) or B points; values, errors: (B,); reference, reference_err: (B,) the
    reference sample on the same x (a histogram's binning can differ between candidates).
    """

    name: str
    x: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    errors: npt.NDArray[np.float64] | None
    reference: npt.NDArray[np.float64]
    reference_err: npt.NDArray[np.float64] | None


def _array(values: Any) -> npt.NDArray[np.float64]:
    return np.array([np.nan if v is None else v for v in np.asarray(values, dtype=object).reshape(-1)],
                    dtype=np.float64)


def _optional(values: Any) -> npt.NDArray[np.float64] | None:
    return None if values is None else _array(values)


def overlay_curves(
    curves: Sequence[Curve],
    *,
    edges: bool = False,
    reference_label: str = "Monte Carlo",
    title: str = "",
    x_title: str = "",
    y_title: str = "",
    log_x: bool = False,
    log_y: bool = False,
) -> go.Figure:
    """The reference (from the first curve) and every candidate curve, each named in the legend, with a
    candidate / reference ratio panel below (shared x axis)."""
    if not curves:
        raise ValueError("overlay_curves needs at least one candidate curve")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.04)
    first = curves[0]
    drawn = [(first.x, first.reference, first.reference_err, reference_label, REFERENCE_COLOUR)]
    drawn += [(c.x, c.values, c.errors, c.name, CANDIDATE_COLOURS[k % len(CANDIDATE_COLOURS)])
              for k, c in enumerate(curves)]
    for xs, values, errors, label, colour in drawn:
        centres = _centres(xs, edges, log_x)
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
    ratios = []
    for k, c in enumerate(curves):
        ratio = _ratio(c.values, c.reference)
        ratios.append(ratio)
        ratio_err = None
        if c.errors is not None and c.reference_err is not None:
            ratio_err = np.abs(ratio) * np.sqrt(_ratio(c.errors, c.values) ** 2
                                                + _ratio(c.reference_err, c.reference) ** 2)
        fig.add_trace(go.Scatter(x=_centres(c.x, edges, log_x), y=ratio, mode="markers",
                                 name=f"{c.name} / {reference_label}", showlegend=False,
                                 marker={"color": CANDIDATE_COLOURS[k % len(CANDIDATE_COLOURS)], "size": 5},
                                 error_y=None if ratio_err is None else {"array": ratio_err}), row=2, col=1)
    fig.add_hline(y=1.0, line={"color": "grey", "dash": "dash", "width": 1}, row=2, col=1)
    short = "MC" if reference_label == "Monte Carlo" else reference_label
    ratio_title = f"{curves[0].name} / {short}" if len(curves) == 1 else f"ratio to {short}"
    fig.update_yaxes(title_text=y_title, type="log" if log_y else "linear", row=1, col=1)
    fig.update_yaxes(title_text=ratio_title, range=_ratio_range(ratios), row=2, col=1)
    fig.update_xaxes(type="log" if log_x else "linear", row=1, col=1)
    fig.update_xaxes(title_text=x_title, type="log" if log_x else "linear", row=2, col=1)
    fig.update_layout(title=title, legend={"x": 0.99, "xanchor": "right", "y": 0.99},
                      margin={"l": 60, "r": 20, "t": 50, "b": 50}, height=420)
    return style_figure(fig)


def _centres(xs: npt.NDArray[np.float64], edges: bool, log_x: bool) -> npt.NDArray[np.float64]:
    if not edges:
        return xs
    if log_x and np.all(xs > 0):
        return np.sqrt(xs[1:] * xs[:-1])
    return 0.5 * (xs[1:] + xs[:-1])


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
    labels: tuple[str, str] = ("Monte Carlo", "candidate"),
) -> go.Figure:
    """One reference and one candidate curve (legend names ``labels``) with a ratio panel; see
    :func:`overlay_curves`. edges=True: ``x`` are B+1 bin edges and the curves are steps."""
    curve = Curve(labels[1], _array(x), _array(candidate), _optional(candidate_err), _array(reference),
                  _optional(reference_err))
    return overlay_curves([curve], edges=edges, reference_label=labels[0], title=title, x_title=x_title,
                          y_title=y_title, log_x=log_x, log_y=log_y)


def _normalised(counts: Any) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Counts -> (fractions, Poisson errors of the fractions)."""
    c = np.asarray(counts, dtype=np.float64)
    total = max(c.sum(), EPSILON)
    return c / total, np.sqrt(c) / total


def _histogram_curves(hists: Mapping[str, HistogramPair], scale: float) -> tuple[list[Curve], bool]:
    """Curves of unit-normalised histograms; as densities (fraction per unit x) when binnings differ."""
    edges = {name: h.edges * scale for name, h in hists.items()}
    first = next(iter(edges.values()))
    same = all(e.shape == first.shape and np.allclose(e, first) for e in edges.values())
    curves = []
    for name, h in hists.items():
        ref, ref_err = _normalised(h.reference)
        cand, cand_err = _normalised(h.candidate)
        if not same:
            width = np.diff(edges[name])
            ref, ref_err, cand, cand_err = ref / width, ref_err / width, cand / width, cand_err / width
        curves.append(Curve(name, edges[name], cand, cand_err, ref, ref_err))
    return curves, same


def histograms_figure(
    hists: Mapping[str, HistogramPair], *, title: str = "", x_title: str = "", log_x: bool = False,
    log_y: bool = False, scale: float = 1.0,
) -> go.Figure:
    """Overlay of {source name: reference and candidate counts}, each normalised to unit sum (to unit area when
    the sources' binnings differ). scale multiplies the edges (e.g. rad -> deg)."""
    curves, same = _histogram_curves(hists, scale)
    return overlay_curves(curves, edges=True, title=title, x_title=x_title,
                          y_title="fraction of showers" if same else "fraction of showers per unit",
                          log_x=log_x, log_y=log_y)


def histogram_figure(
    hist: HistogramPair, *, title: str = "", x_title: str = "", log_x: bool = False, log_y: bool = False,
    name: str = "candidate",
) -> go.Figure:
    """Overlay of one pair of histograms (counts), each normalised to unit sum; the candidate named ``name``."""
    return histograms_figure({name: hist}, title=title, x_title=x_title, log_x=log_x, log_y=log_y)


def overlay_values(
    reference_values: Any,
    candidate_values: Any,
    *,
    bins: int | Any = 40,
    title: str = "",
    x_title: str = "",
    log_x: bool = False,
    log_y: bool = False,
    name: str = "candidate",
) -> go.Figure:
    """Histogram two raw samples with common bins (:func:`calogen.validation.distances.histogram_pair`) and
    overlay them."""
    hist = histogram_pair(reference_values, candidate_values, bins=bins, log=log_x)
    return histogram_figure(hist, title=title, x_title=x_title, log_x=log_x, log_y=log_y, name=name)


_AXIS_TITLES = {"x": f"x [cell, {CELL_MM:g} mm]", "y": f"y [cell, {CELL_MM:g} mm]", "z": "layer"}


def profiles_figure(profiles: Mapping[str, Profile], axis: str, *, log_y: bool = False) -> go.Figure:
    """Mean energy profile (GeV per slice) along ``axis`` ('x', 'y', 'z') with standard errors, one curve per
    source against the reference."""
    curves = [Curve(name, np.arange(p.reference.size, dtype=np.float64), p.candidate, p.candidate_err,
                    p.reference, p.reference_err) for name, p in profiles.items()]
    return overlay_curves(curves, title=f"Mean energy profile along {'the layers' if axis == 'z' else axis}",
                          x_title=_AXIS_TITLES.get(axis, axis), y_title="mean energy [GeV]", log_y=log_y)


def _by_name(part: Any, kind: type) -> Mapping[str, Any]:
    return {"candidate": part} if isinstance(part, kind) else part


def sf_vs_energy_figure(points: Sequence[SfPoint] | Mapping[str, Sequence[SfPoint]]) -> go.Figure:
    """Mean sampling fraction per energy bin with standard errors, of one source or of {source name: points}."""
    by_name = points if isinstance(points, Mapping) else {"candidate": points}
    curves = []
    for name, table in by_name.items():
        column = lambda key, t=table: _array([getattr(p, key) for p in t])  # noqa: E731
        curves.append(Curve(name, column("energy_gev"), column("candidate"), column("candidate_err"),
                            column("reference"), column("reference_err")))
    return overlay_curves(curves, title="Sampling fraction vs primary energy", x_title="primary energy [GeV]",
                          y_title="<E_dep / E_primary>")


def cell_spectrum_figure(hist: HistogramPair | Mapping[str, HistogramPair]) -> go.Figure:
    """Cell-energy spectrum (all non-zero cells, GeV), log-log, of one source or of {source name: histograms}."""
    curves = [Curve(name, h.edges, h.candidate, np.sqrt(h.candidate), h.reference, np.sqrt(h.reference))
              for name, h in _by_name(hist, HistogramPair).items()]
    fig = overlay_curves(curves, edges=True, title="Cell-energy spectrum", x_title="cell energy [GeV]",
                         y_title="cells", log_x=True, log_y=True)
    fig.add_vline(x=HIT_THRESHOLD_GEV, line={"color": "grey", "dash": "dot", "width": 1})
    return fig


def sparsity_figure(occupancy: Occupancy | Mapping[str, Occupancy]) -> go.Figure:
    """Fraction of cells above threshold vs threshold (occupancy; 1 - sparsity), of one or several sources."""
    curves = [Curve(name, o.thresholds_gev, o.candidate, None, o.reference, None)
              for name, o in _by_name(occupancy, Occupancy).items()]
    return overlay_curves(curves, title="Occupancy vs threshold", x_title="threshold [GeV]",
                          y_title="fraction of cells above", log_x=True, log_y=True)


def mscn_figure(hist: HistogramPair | Mapping[str, HistogramPair]) -> go.Figure:
    """MSCN-coefficient distributions of the non-zero cells, of one or several sources."""
    return histograms_figure(_by_name(hist, HistogramPair), title="MSCN coefficients (non-zero cells)",
                             x_title="MSCN coefficient", log_y=True)


def classifier_figure(output: HistogramPair, level: str, *, name: str = "candidate") -> go.Figure:
    """Calibrated classifier output on the test split for each class (Monte Carlo, and the source ``name``)."""
    return histograms_figure({name: output}, title=f"Classifier output ({level}-level features), {name}",
                             x_title=f"calibrated P({name})")


def correlation_difference_figure(corr: Correlations, *, title: str = "") -> go.Figure:
    """Heatmap of candidate - reference correlations between the shower observables."""
    diff = corr.difference
    names = [FEATURE_LABELS.get(n, n) for n in corr.names]
    limit = max(float(np.nanmax(np.abs(diff))) if diff.size else 0.0, 0.05)
    fig = go.Figure(go.Heatmap(z=diff, x=names, y=names, zmin=-limit, zmax=limit, zmid=0.0, colorscale="RdBu_r",
                               colorbar={"title": "Δ corr"}))
    fig.update_layout(title=title or "Correlation difference (candidate - Monte Carlo)",
                      yaxis={"autorange": "reversed"}, height=560, margin={"l": 160, "r": 20, "t": 50, "b": 160})
    return style_figure(fig)


def variance_ratio_figure(per_layer: Any) -> go.Figure:
    """Median per-cell variance ratio (candidate / reference) in each layer, (nz,), of one source or of
    {source name: (nz,)}; ~1 expected, << 1 = mode collapse."""
    by_name = per_layer if isinstance(per_layer, Mapping) else {"candidate": per_layer}
    fig = go.Figure()
    for k, (name, values) in enumerate(by_name.items()):
        y = _array(values)
        fig.add_trace(go.Scatter(x=np.arange(y.size), y=y, mode="lines+markers", name=name,
                                 line={"color": CANDIDATE_COLOURS[k % len(CANDIDATE_COLOURS)]}))
    fig.add_hline(y=1.0, line={"color": "grey", "dash": "dash", "width": 1})
    fig.update_layout(title="Per-cell variance ratio (median per layer)", xaxis_title="layer",
                      yaxis_title="var(source) / var(Monte Carlo)", height=360)
    return style_figure(fig)


def figures_from_results(results: Mapping[str, Comparison]) -> dict[str, go.Figure]:
    """Every figure the comparisons have data for, the sources overlaid on the same reference and named in the
    legends; {source name: Comparison} -> {figure name: Figure}. The classifier and correlation figures are one
    per source (each has its own classifier)."""
    def having(part: Callable[[Comparison], Any]) -> dict[str, Any]:
        found = {name: part(c) for name, c in results.items()}
        return {name: value for name, value in found.items() if value is not None and len(value)}

    figures: dict[str, go.Figure] = {}
    if sf := having(lambda c: c.sf_vs_energy):
        figures["sf_vs_energy"] = sf_vs_energy_figure(sf)
    for axis in ("z", "x", "y"):
        if profiles := {name: c.profiles[axis] for name, c in results.items() if axis in c.profiles}:
            figures[f"profile_{axis}"] = profiles_figure(profiles, axis, log_y=axis != "z")
    for feature in dict.fromkeys(f for c in results.values() for f in c.features):
        per_source = {name: c.features[feature] for name, c in results.items() if feature in c.features}
        label = FEATURE_LABELS.get(feature, feature)
        figures[f"feature_{feature}"] = histograms_figure(per_source, title=label, x_title=label,
                                                          scale=FEATURE_SCALES.get(feature, 1.0))
    for name, part, builder in (("cell_spectrum", lambda c: c.cell_spectrum, cell_spectrum_figure),
                                ("sparsity", lambda c: c.occupancy, sparsity_figure),
                                ("mscn", lambda c: c.mscn, mscn_figure)):
        if found := {source: part(c) for source, c in results.items() if part(c) is not None}:
            figures[name] = builder(found)
    if ratios := having(lambda c: c.variance_ratio_per_layer):
        figures["variance_ratio"] = variance_ratio_figure(ratios)
    several = len(results) > 1
    for source, c in results.items():
        suffix = f" · {source}" if several else ""
        if c.correlation is not None:
            figures[f"correlation{suffix}"] = correlation_difference_figure(
                c.correlation, title=f"Correlation difference ({source} - Monte Carlo)")
        for level in ("low", "high"):
            if level in c.classifier:
                figures[f"classifier_{level}{suffix}"] = classifier_figure(c.classifier[level].output, level,
                                                                           name=source)
    return figures


def figures_from_result(result: Comparison, *, name: str = "candidate") -> dict[str, go.Figure]:
    """The figures of one comparison, the candidate named ``name``; see :func:`figures_from_results`."""
    return figures_from_results({name: result})
