"""Tests of calogen.plots.views: the single-shower and batch figures and the bin tables, with showers checkable
by hand."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from calogen.plots import views


def _pencil_shower(energy_per_layer_gev: float = 0.01) -> np.ndarray:
    """A shower in one column (x=25, y=25) of every layer, plus one hot cell (x=25, y=30, layer 5)."""
    shower = np.zeros((51, 51, 25), np.float32)
    shower[25, 25, :] = energy_per_layer_gev
    shower[25, 30, 5] = 0.5
    return shower


def test_3d_figure_points_threshold_and_hover() -> None:
    shower = _pencil_shower()
    shower[0, 0, 0] = 1e-5  # below the hit threshold: not drawn
    fig = views.shower_3d_figure(shower)
    trace = fig.data[0]
    assert isinstance(trace, go.Scatter3d)
    assert len(trace.x) == 26
    assert np.allclose(trace.marker.color, np.log10(trace.customdata))
    assert "GeV" in trace.hovertemplate
    hot = int(np.argmax(trace.customdata))
    assert (trace.x[hot], trace.y[hot], trace.z[hot]) == (25, 30, 5)
    capped = views.shower_3d_figure(shower, max_points=3)
    assert len(capped.data[0].x) == 3 and max(capped.data[0].customdata) == pytest.approx(0.5)


def test_3d_figure_volume_mode_is_coarse_enough_to_draw_fast() -> None:
    fig = views.shower_3d_figure(_pencil_shower(), mode="volume")
    volume = fig.data[0]
    assert isinstance(volume, go.Volume)
    assert len(volume.value) == 17 * 17 * 25  # 3 x 3 cell blocks: 7,225 points instead of 65,025
    hot = int(np.argmax(volume.value))
    assert (volume.x[hot], volume.y[hot], volume.z[hot]) == (25.0, 31.0, 5.0)  # the block around (25, 30, 5)
    assert len(fig.to_json()) < 250_000  # was 961 kB


def test_block_sum_keeps_the_energy() -> None:
    shower = _pencil_shower()
    blocks, step = views.block_sum(shower, max_points=8000)
    assert step == (3, 3) and blocks.shape == (17, 17, 25)
    assert math.isclose(float(blocks.sum()), float(shower.sum()), rel_tol=1e-6)
    same, one = views.block_sum(shower, max_points=10**6)
    assert one == (1, 1) and np.array_equal(same, shower)


def test_figures_label_cells_in_mm_and_use_readable_fonts() -> None:
    fig = views.projections_figure(_pencil_shower())
    assert fig.layout.xaxis.title.text == "x [cell, 5.1 mm]"
    assert fig.layout.font.color == "#1a1a1a" and fig.layout.font.size >= 13
    profile = views.longitudinal_profile_figure(_pencil_shower())
    assert profile.layout.yaxis.type == "log" and profile.layout.yaxis.exponentformat == "power"
    scene = views.shower_3d_figure(_pencil_shower()).layout.scene
    assert scene.xaxis.title.text == "x [cell, 5.1 mm]" and scene.camera.eye.x > 1.25


def test_throughput_bars_are_horizontal_fastest_on_top() -> None:
    rows = [{"name": "Monte Carlo", "path": "analog cascade", "kind": "mc", "device": "cpu", "showers_per_s": 0.4},
            {"name": "conv2d", "path": "generate() conv2d, GeV out", "kind": "model", "device": "cpu",
             "showers_per_s": 500.0}]
    fig = views.throughput_figure(rows)
    assert all(bar.orientation == "h" for bar in fig.data)
    assert list(fig.layout.yaxis.categoryarray)[-1] == "conv2d · generate() conv2d, GeV out"
    assert fig.layout.xaxis.type == "log"


def test_projections_are_log_sums() -> None:
    shower = _pencil_shower()
    assert views.projection(shower, "xy").shape == (51, 51)
    assert views.projection(shower, "yz").shape == (51, 25)
    assert math.isclose(views.projection(shower, "xz").sum(), shower.sum(), rel_tol=1e-6)
    fig = views.projections_figure(shower)
    assert len(fig.data) == 3
    xy = np.asarray(fig.data[0].z, dtype=float)  # transposed: rows are y
    assert math.isclose(xy[30, 25], math.log10(0.5), rel_tol=1e-6)
    assert np.isnan(xy[0, 0])  # empty cells are blank, not log(0)


def test_profiles() -> None:
    shower = _pencil_shower()
    fig = views.longitudinal_profile_figure({"one": shower, "batch": np.stack([shower, shower])})
    assert len(fig.data) == 2
    assert np.allclose(fig.data[0].y, fig.data[1].y)
    assert math.isclose(fig.data[0].y[5], 0.51, rel_tol=1e-6)
    along_x, along_y = views.lateral_profiles(shower)
    assert math.isclose(along_x[25], 0.75, rel_tol=1e-6) and math.isclose(along_y[30], 0.5, rel_tol=1e-6)
    assert len(views.lateral_profile_figure(shower).data) == 2


def test_batch_figures() -> None:
    batch = np.stack([_pencil_shower(0.01), _pencil_shower(0.02)])
    assert len(views.mean_images_figure(batch).data) == 3
    fig = views.sampling_fraction_figure({"toy": (batch, np.array([10.0, 10.0]))})
    assert np.allclose(fig.data[0].y, [0.075, 0.1])


def test_bin_labels_for_people() -> None:
    assert views.energy_bin_label(-3.0, 7.0) == "0-7 GeV"  # the +-5 GeV bin around 2 GeV starts at 0
    assert views.theta_bin_label(1.4090, 1.7326) == "81-99 deg"


def test_side_by_side_shares_one_colour_scale() -> None:
    faint, bright = _pencil_shower(0.001), _pencil_shower(0.1)
    fig = views.side_by_side_figure({"generator": faint, "Monte Carlo": bright}, plane="yz")
    assert [t.name for t in fig.data] == ["generator", "Monte Carlo"]
    assert fig.data[0].zmin == fig.data[1].zmin and fig.data[0].zmax == fig.data[1].zmax
    assert math.isclose(fig.data[1].zmin, math.log10(0.001), rel_tol=1e-5)  # the fainter one sets the bottom
    assert [t.showscale for t in fig.data] == [False, True]  # one colour bar


def test_layer_animation_has_one_frame_per_layer() -> None:
    shower = _pencil_shower()
    fig = views.layer_animation_figure({"a": shower, "b": 2 * shower}, half_width=5)
    assert len(fig.frames) == 25 and len(fig.layout.sliders[0].steps) == 25
    assert list(fig.data[0].x) == list(range(20, 31))  # cells 25 +- 5
    assert fig.layout.sliders[0].active == 5  # opens on the layer of maximum (the hot cell's)
    layer5 = np.asarray(fig.frames[5].data[0].z, dtype=float)  # (y, x) of layer 5 around the centre
    assert math.isclose(layer5[30 - 20, 25 - 20], math.log10(0.5), rel_tol=1e-5)  # the hot cell (25, 30, 5)
    assert fig.layout.updatemenus[0].buttons[0].label == "Play"
