"""Figure builders: each figure draws the numbers it was given (curves, ratios, units, names)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from calogen.plots import figures as P
from calogen.validation.classifier import ClassifierResult
from calogen.validation.comparison import (
    BinRow,
    Comparison,
    ComparisonInfo,
    Correlations,
    Occupancy,
    Profile,
    SfPoint,
)
from calogen.validation.distances import HistogramPair

EDGES = [0.0, 1.0, 2.0, 3.0]


def miniature(profile_z: list[float] | None = None) -> Comparison:
    """A comparison in miniature with every part the figures draw."""
    return Comparison(
        metrics={"sf_mre": 0.012, "separation_mean": 0.003, "classifier_auc_high": 0.51, "fpd": None},
        bins=(BinRow((50.0, 100.0), (1.5, 1.6), 10, 12, sf_reference=0.02, sf_candidate=0.021,
                     sf_relative_error=0.05),),
        info=ComparisonInfo(10, 12),
        profiles={"z": Profile([1.0, 2.0, 0.5], profile_z or [1.1, 1.9, 0.4], [0.1] * 3, [0.1] * 3)},
        features={"sampling_fraction": HistogramPair(EDGES, [1, 4, 2], [2, 3, 2])},
        sf_vs_energy=(SfPoint(50.0, 0.02, 1e-4, 0.021, 1e-4), SfPoint(100.0, 0.019, 1e-4, None, None)),
        cell_spectrum=HistogramPair([1e-6, 1e-4, 1e-2, 1.0], [10, 5, 1], [12, 4, 0]),
        occupancy=Occupancy([1e-6, 1e-4, 1e-2], [0.5, 0.1, 0.01], [0.4, 0.1, 0.02]),
        mscn=HistogramPair(EDGES, [1, 2, 3], [1, 2, 3]),
        correlation=Correlations(("a", "b"), np.eye(2), [[1.0, 0.2], [0.2, 1.0]], [[0.0, 0.2], [0.2, 0.0]]),
        variance_ratio_per_layer=np.array([1.0, np.nan, 0.8]),
        classifier={"high": ClassifierResult("high", 0.51, 0.01, HistogramPair(EDGES, [3, 2, 1], [1, 2, 3]))},
    )


@pytest.fixture(scope="module")
def result() -> Comparison:
    return miniature()


def _y(trace: Any) -> np.ndarray:
    return np.asarray(trace.y, dtype=float)


def test_overlay_has_ratio_panel_with_known_ratio() -> None:
    fig = P.overlay_figure([0, 1, 2], [1.0, 2.0, 4.0], [1.0, 3.0, 2.0], title="t")
    ratio = fig.data[-1]
    np.testing.assert_allclose(_y(ratio), [1.0, 1.5, 0.5])
    assert ratio.yaxis == "y2"  # drawn in the lower panel
    assert fig.layout.yaxis.type == "linear"
    log_fig = P.overlay_figure([1, 2], [1.0, 1.0], [1.0, 1.0], log_y=True, log_x=True)
    assert log_fig.layout.yaxis.type == "log" and log_fig.layout.xaxis2.type == "log"


def test_histogram_figure_normalises_and_steps(result: Comparison) -> None:
    fig = P.histogram_figure(result.features["sampling_fraction"], name="conv2d")
    ref_step, cand_step = fig.data[0], fig.data[2]
    np.testing.assert_allclose(_y(ref_step), [1 / 7, 4 / 7, 2 / 7, 2 / 7])
    np.testing.assert_allclose(_y(cand_step), [2 / 7, 3 / 7, 2 / 7, 2 / 7])
    assert ref_step.line.shape == "hv" and cand_step.name == "conv2d"
    np.testing.assert_allclose(_y(fig.data[-1]), [2.0, 0.75, 1.0])  # the ratio panel


def test_overlay_values_bins_raw_samples() -> None:
    fig = P.overlay_values([0.5, 1.5, 1.5, 2.5], [0.5, 0.5, 1.5, 2.5], bins=[0.0, 1.0, 2.0, 3.0], title="t")
    np.testing.assert_allclose(np.asarray(fig.data[0].x, dtype=float), [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(_y(fig.data[0])[:3], [0.25, 0.5, 0.25])
    np.testing.assert_allclose(_y(fig.data[2])[:3], [0.5, 0.25, 0.25])


def test_correlation_heatmap_is_symmetric_about_zero(result: Comparison) -> None:
    assert result.correlation is not None
    heat = P.correlation_difference_figure(result.correlation).data[0]
    assert heat.zmin == -heat.zmax and heat.zmax >= 0.2
    np.testing.assert_allclose(np.asarray(heat.z, dtype=float), [[0.0, 0.2], [0.2, 0.0]])


def test_sf_vs_energy_draws_the_points_and_tolerates_missing_values(result: Comparison) -> None:
    fig = P.sf_vs_energy_figure(result.sf_vs_energy)
    np.testing.assert_allclose(np.asarray(fig.data[0].x, dtype=float), [50.0, 100.0])
    np.testing.assert_allclose(_y(fig.data[0]), [0.02, 0.019])
    candidate = _y(fig.data[1])
    assert candidate[0] == 0.021 and np.isnan(candidate[1])


def test_figures_from_result_draw_the_profile_they_were_given(result: Comparison) -> None:
    figs = P.figures_from_result(result, name="conv2d")
    assert {"sf_vs_energy", "profile_z", "feature_sampling_fraction", "cell_spectrum", "sparsity", "mscn",
            "correlation", "variance_ratio", "classifier_high"} <= set(figs)
    profile = figs["profile_z"]
    np.testing.assert_allclose(_y(profile.data[0]), [1.0, 2.0, 0.5])  # Monte Carlo
    np.testing.assert_allclose(_y(profile.data[1]), [1.1, 1.9, 0.4])  # conv2d
    np.testing.assert_allclose(np.asarray(profile.data[1].error_y.array, dtype=float), [0.1] * 3)
    ratio = _y(figs["variance_ratio"].data[0])
    assert ratio[0] == 1.0 and np.isnan(ratio[1]) and ratio[2] == 0.8
    np.testing.assert_allclose(_y(figs["sparsity"].data[1]), [0.4, 0.1, 0.02])
    assert figs["classifier_high"].layout.title.text.endswith("conv2d")


def test_sources_are_overlaid_and_named(result: Comparison) -> None:
    figs = P.figures_from_results({"conv2d": result, "GFlash": miniature([2.0, 4.0, 1.0])})
    profile = figs["profile_z"]
    named = [t.name for t in profile.data if t.showlegend is not False]
    assert named == ["Monte Carlo", "conv2d", "GFlash"]
    ratios = [t for t in profile.data if t.yaxis == "y2"]
    np.testing.assert_allclose(_y(ratios[1]), [2.0, 2.0, 2.0])
    assert profile.layout.yaxis2.range[1] >= 2.0  # the ratio panel widens to show a source 2x off
    assert {"correlation · conv2d", "correlation · GFlash", "classifier_high · GFlash"} <= set(figs)


def test_measured_angle_is_drawn_in_degrees() -> None:
    hist = HistogramPair([1.5, 1.55, 1.6], [3, 4], [2, 5])
    only = Comparison({}, (), ComparisonInfo(7, 7), features={"measured_angle_rad": hist})
    figs = P.figures_from_result(only, name="conv2d")
    assert set(figs) == {"feature_measured_angle_rad"}
    figure = figs["feature_measured_angle_rad"]
    assert "deg" in figure.layout.xaxis2.title.text
    np.testing.assert_allclose(np.asarray(figure.data[0].x, dtype=float), np.degrees([1.5, 1.55, 1.6]))
    assert figure.data[2].name == "conv2d"


def test_style_labels_log_axes_by_decade_with_powers() -> None:
    fig = P.cell_spectrum_figure(HistogramPair([1e-6, 1e-4, 1e-2, 1.0], [10, 5, 1], [12, 4, 0]))
    assert fig.layout.xaxis2.type == "log" and fig.layout.xaxis2.dtick == 1
    assert fig.layout.xaxis2.exponentformat == "power"  # 10^-4, not "100u"
    assert fig.layout.font.size >= 13 and fig.layout.font.color == "#1a1a1a"
    np.testing.assert_allclose(_y(fig.data[0])[:3], [10, 5, 1])  # counts, not normalised
