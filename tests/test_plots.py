"""Figure builders and the HTML report."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from plotly.offline import get_plotlyjs

from calogen.plots import figures as P
from calogen.plots.report import render_html_report, write_html_report


@pytest.fixture(scope="module")
def result() -> dict:
    """A compare() result in miniature, with every histogram kind the figures use."""
    edges = [0.0, 1.0, 2.0, 3.0]
    return {
        "metrics": {"sf_mre": 0.012, "separation_mean": 0.003, "classifier_auc_high": 0.51, "fpd": None},
        "bins": [{"energy_gev": [50.0, 100.0], "theta_rad": [1.5, 1.6], "n_reference": 10, "n_candidate": 12,
                  "sf_reference": 0.02, "sf_candidate": 0.021, "sf_relative_error": 0.05}],
        "histograms": {
            "features": {"sampling_fraction": {"edges": edges, "reference": [1, 4, 2], "candidate": [2, 3, 2]}},
            "profile_z": {"reference": [1.0, 2.0, 0.5], "candidate": [1.1, 1.9, 0.4],
                          "reference_err": [0.1, 0.1, 0.1], "candidate_err": [0.1, 0.1, 0.1]},
            "sf_vs_energy": [{"energy_gev": 50.0, "reference": 0.02, "reference_err": 1e-4, "candidate": 0.021,
                              "candidate_err": 1e-4},
                             {"energy_gev": 100.0, "reference": 0.019, "reference_err": 1e-4, "candidate": None,
                              "candidate_err": None}],
            "cell_spectrum": {"edges": [1e-6, 1e-4, 1e-2, 1.0], "reference": [10, 5, 1], "candidate": [12, 4, 0]},
            "sparsity": {"thresholds_gev": [1e-6, 1e-4, 1e-2], "reference": [0.5, 0.1, 0.01],
                         "candidate": [0.4, 0.1, 0.02]},
            "mscn": {"edges": edges, "reference": [1, 2, 3], "candidate": [1, 2, 3]},
            "correlation": {"names": ["a", "b"], "difference": [[0.0, 0.2], [0.2, 0.0]]},
            "cell_variance_ratio_per_layer": [1.0, None, 0.8],
            "classifier_high": {"edges": edges, "reference": [3, 2, 1], "candidate": [1, 2, 3]},
        },
        "info": {"n_reference": 10, "n_candidate": 12},
    }


def test_overlay_has_ratio_panel_with_known_ratio() -> None:
    fig = P.overlay_figure([0, 1, 2], [1.0, 2.0, 4.0], [1.0, 3.0, 2.0], title="t")
    assert isinstance(fig, go.Figure)
    ratio = fig.data[-1]
    np.testing.assert_allclose(np.asarray(ratio.y, dtype=float), [1.0, 1.5, 0.5])
    assert ratio.yaxis == "y2"  # drawn in the lower panel
    assert fig.layout.yaxis.type == "linear"
    log_fig = P.overlay_figure([1, 2], [1.0, 1.0], [1.0, 1.0], log_y=True, log_x=True)
    assert log_fig.layout.yaxis.type == "log" and log_fig.layout.xaxis2.type == "log"


def test_histogram_figure_normalises_and_steps(result: dict) -> None:
    fig = P.histogram_figure(result["histograms"]["features"]["sampling_fraction"])
    ref_step = fig.data[0]
    np.testing.assert_allclose(np.asarray(ref_step.y, dtype=float), [1 / 7, 4 / 7, 2 / 7, 2 / 7])
    assert ref_step.line.shape == "hv"


def test_overlay_values_bins_raw_samples() -> None:
    rng = np.random.default_rng(0)
    fig = P.overlay_values(rng.normal(size=1000), rng.normal(size=1000), bins=20, title="gauss")
    assert len(fig.data[0].x) == 21
    assert fig.layout.title.text == "gauss"


def test_correlation_heatmap_is_symmetric_about_zero(result: dict) -> None:
    fig = P.correlation_difference_figure(result["histograms"]["correlation"])
    heat = fig.data[0]
    assert heat.zmin == -heat.zmax and heat.zmax >= 0.2


def test_sf_vs_energy_tolerates_missing_values(result: dict) -> None:
    fig = P.sf_vs_energy_figure(result["histograms"]["sf_vs_energy"])
    assert np.isnan(np.asarray(fig.data[1].y, dtype=float)[1])


def test_figures_from_result_cover_all_histograms(result: dict) -> None:
    figs = P.figures_from_result(result)
    assert {"sf_vs_energy", "profile_z", "feature_sampling_fraction", "cell_spectrum", "sparsity", "mscn",
            "correlation", "variance_ratio", "classifier_high"} <= set(figs)
    assert all(isinstance(f, go.Figure) for f in figs.values())


def test_html_report_is_self_contained(tmp_path, result: dict) -> None:
    page = render_html_report(result, title="toy")
    assert page.count(get_plotlyjs()[:500]) == 1  # plotly.js inlined exactly once
    assert "<script src=" not in page  # no CDN: plotly.js is inlined
    assert "sf_mre" in page and "0.012" in page and "n/a" in page
    path = write_html_report(result, tmp_path / "sub" / "report.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_sources_are_overlaid_and_named(result: dict) -> None:
    other = {**result, "histograms": {**result["histograms"],
                                      "profile_z": {**result["histograms"]["profile_z"], "candidate": [2.0, 4.0, 1.0]}}}
    figs = P.figures_from_results({"conv2d": result, "GFlash": other})
    profile = figs["profile_z"]
    named = [t.name for t in profile.data if t.showlegend is not False]
    assert named == ["Monte Carlo", "conv2d", "GFlash"]
    ratios = [t for t in profile.data if t.yaxis == "y2"]
    np.testing.assert_allclose(np.asarray(ratios[1].y, dtype=float), [2.0, 2.0, 2.0])
    assert profile.layout.yaxis2.range[1] >= 2.0  # the ratio panel widens to show a source 2x off
    assert {"correlation · conv2d", "correlation · GFlash", "classifier_high · GFlash"} <= set(figs)


def test_measured_angle_is_drawn_in_degrees() -> None:
    hist = {"edges": [1.5, 1.55, 1.6], "reference": [3, 4], "candidate": [2, 5]}
    fig = P.figures_from_result({"histograms": {"features": {"measured_angle_rad": hist}}}, name="conv2d")
    figure = fig["feature_measured_angle_rad"]
    assert "deg" in figure.layout.xaxis2.title.text
    np.testing.assert_allclose(np.asarray(figure.data[0].x, dtype=float), np.degrees([1.5, 1.55, 1.6]))
    assert figure.data[2].name == "conv2d"


def test_style_labels_log_axes_by_decade_with_powers() -> None:
    fig = P.cell_spectrum_figure({"edges": [1e-6, 1e-4, 1e-2, 1.0], "reference": [10, 5, 1],
                                  "candidate": [12, 4, 0]})
    assert fig.layout.xaxis2.type == "log" and fig.layout.xaxis2.dtick == 1
    assert fig.layout.xaxis2.exponentformat == "power"  # 10^-4, not "100u"
    assert fig.layout.font.size >= 13 and fig.layout.font.color == "#1a1a1a"
