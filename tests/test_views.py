"""Tests of calogen.plots.views: URL parsing and the single-shower figures, with showers checkable by hand."""

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


def test_parse_defaults_when_url_empty() -> None:
    state, warnings = views.parse_view_state({})
    assert state == views.ViewState()
    assert warnings == []


def test_parse_good_values_round_trip() -> None:
    params = {"energy": "120", "theta": "75.5", "n": "8", "seed": "7", "source": "Monte Carlo",
              "shower": "3", "device": "cpu"}
    state, warnings = views.parse_view_state(params, sources=["Monte Carlo", "tiny"])
    assert warnings == []
    assert (state.energy_gev, state.theta_deg, state.n_showers, state.seed) == (120.0, 75.5, 8, 7)
    assert state.shower_index == 3 and state.device == "cpu"
    assert math.isclose(state.theta_rad, math.radians(75.5))
    again, _ = views.parse_view_state(views.view_state_to_query(state), sources=["Monte Carlo", "tiny"])
    assert again == state


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"energy": "9999"}, "energy_gev", "outside 2-500 GeV"),
        ({"energy": "nan"}, "energy_gev", "outside"),
        ({"energy": "1.5"}, "energy_gev", "outside"),
        ({"theta": "abc"}, "theta_deg", "not a number"),
        ({"theta": "130"}, "theta_deg", "outside 60-120 deg"),
        ({"n": "2.5"}, "n_showers", "not a whole number"),
        ({"n": "0"}, "n_showers", "outside"),
        ({"seed": "-1"}, "seed", "outside"),
        ({"device": "tpu"}, "device", "not one of"),
        ({"source": "nope"}, "source", "not an available source"),
    ],
)
def test_bad_values_warn_and_fall_back(params: dict[str, str], field: str, words: str) -> None:
    default = views.ViewState()
    state, warnings = views.parse_view_state(params, sources=["Monte Carlo"])
    assert getattr(state, field) == getattr(default, field)
    assert len(warnings) == 1
    assert words in warnings[0]
    assert next(iter(params)) in warnings[0]  # the message names the key


def test_list_values_last_wins_and_shower_index_clamped() -> None:
    state, warnings = views.parse_view_state({"energy": ["10", "20"], "n": "2", "shower": "5"})
    assert warnings == []
    assert state.energy_gev == 20.0
    assert state.shower_index == 0  # index 5 does not exist in a batch of 2


def test_shower_numbers_by_hand() -> None:
    shower = _pencil_shower()
    numbers = views.shower_numbers(shower, energy_gev=10.0, theta_rad=math.pi / 2)
    assert math.isclose(numbers["deposited_gev"], 25 * 0.01 + 0.5, rel_tol=1e-6)
    assert math.isclose(numbers["sampling_fraction"], 0.075, rel_tol=1e-6)
    assert numbers["hits"] == 26
    assert numbers["max_layer"] == 5
    assert numbers["theta_deg"] == 90.0


def test_measured_angle_of_straight_column_is_normal_incidence() -> None:
    shower = np.zeros((51, 51, 25), np.float32)
    shower[25, 25, :] = 0.01
    assert math.isclose(views.measured_theta_rad(shower), math.pi / 2, abs_tol=1e-9)
    tilted = np.zeros_like(shower)
    for layer in range(25):
        tilted[25, 20 + layer // 2, layer] = 0.01  # drifts to +y with depth: theta < 90 deg
    assert views.measured_theta_rad(tilted) < math.pi / 2


def test_angle_tolerance_follows_the_monte_carlo_spread() -> None:
    assert views.angle_tolerance_deg(2.0) > 10.0  # a 2 GeV shower's angle scatters by ~4 deg
    assert 2.0 < views.angle_tolerance_deg(200.0) < 3.0
    assert views.angle_tolerance_deg(50.0) < 26.0  # an angle 26 deg off is a failure at any energy


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


def test_format_card_is_readable() -> None:
    card = {"name": "tiny", "arch": "conv3d", "condition_ranges": {"energy_gev": [2, 500], "theta_deg": [60, 120]},
            "training": {"epochs": 3, "steps": 40, "wall_time_s": 125.0, "device": "cpu",
                         "config": {"lr": 0.001}, "data_provenance": {"showers": 1200, "source": "mc"}},
            "validation": {"sf_mre": 0.0412, "reference": {"file": "reference.h5", "showers": 1500, "held_out": True}}}
    text = views.format_card(card)
    assert "### tiny" in text and "2-500 GeV" in text and "60-120 deg" in text
    assert "1,200 Monte Carlo showers, 40 steps, 3 epochs, on cpu, 2 min" in text
    assert "1500 held-out Monte Carlo showers of `reference.h5`" in text
    assert "{" not in text  # no raw dicts


def test_bin_rows_clip_negative_energy_edges() -> None:
    rows = views.bin_rows([{"energy_bin_gev": [-3.0, 7.0], "theta_bin_deg": [80.67, 99.33], "n_reference": 100,
                                 "n_candidate": 100, "sf_reference": 0.02, "sf_candidate": 0.2,
                                 "sf_relative_error": 9.0}])
    assert rows == [{"energy": "0-7 GeV", "angle": "81-99 deg", "showers (MC / model)": "100 / 100",
                     "SF Monte Carlo": "0.0200", "SF model": "0.2000", "SF error": "900%"}]
    compared = views.bin_rows([{"energy_gev": [45.0, 55.0], "theta_rad": [1.4090, 1.7326], "n_reference": 10,
                                "n_candidate": 10, "measured_angle_rad_reference": math.pi / 2,
                                "measured_angle_rad_candidate": 1.1}], name="conv2d")
    assert compared[0]["angle"] == "81-99 deg" and compared[0]["angle conv2d (deg)"] == "63.0"
    assert compared[0]["angle Monte Carlo (deg)"] == "90.0" and compared[0]["SF conv2d"] == "n/a"


def test_stale_batch_message_names_what_changed() -> None:
    shown = views.ViewState(energy_gev=10.0, source="conv2d")
    assert views.stale_batch_message(shown, views.ViewState(energy_gev=10.0, source="conv2d", shower_index=2)) is None
    message = views.stale_batch_message(shown, views.ViewState(energy_gev=200.0, source="conv2d"))
    assert message is not None and "energy 200 GeV (shown: 10 GeV)" in message and "angle" not in message


def test_progress_text_estimates_time_left() -> None:
    assert views.progress_text(0, 4, 0.2) == "0/4 showers, 0 s so far"
    assert views.progress_text(1, 4, 10.0) == "1/4 showers, 10 s so far, about 30 s left"
    assert views.progress_text(4, 4, 95.0) == "4/4 showers, 1 min 35 s so far"


def test_speedup_sentence_uses_the_fastest_trained_generator() -> None:
    rows = [{"name": "conv3d (published arch, random weights)", "kind": "arch", "device": "cpu", "batch_size": 16,
             "ms_per_shower": 1.0},
            {"name": "slow", "kind": "model", "device": "cpu", "batch_size": 16, "ms_per_shower": 20.0},
            {"name": "conv2d", "kind": "model", "device": "cpu", "batch_size": 16, "ms_per_shower": 2.0},
            {"name": "Monte Carlo", "kind": "mc", "device": "cpu", "batch_size": 1, "ms_per_shower": 2800.0}]
    text = views.speedup_sentence(rows, {"energy_gev": 10.0})
    assert text == ("On this machine (cpu), conv2d makes a shower in 2 ms (batches of 16), the Monte Carlo in "
                    "2.8 s at 10 GeV: 1,400 times faster.")
    assert views.speedup_sentence(rows[:3], {}) is None  # no Monte Carlo timed: nothing to compare with


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
