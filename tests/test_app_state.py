"""Tests of calogen.app: the URL's view state checked against the chosen source's range, and the app's texts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calogen.app import texts
from calogen.app.state import (
    ViewState,
    parse_view_state,
    slider_bounds,
    stale_batch_message,
    to_degrees,
    to_radians,
    view_state_to_query,
)
from calogen.showers import TRAINING_RANGE, ConditionRange
from calogen.simulation import gflash

SOURCES = {"Monte Carlo": TRAINING_RANGE, "tiny": TRAINING_RANGE, "GFlash": gflash.CONDITION_RANGE}


def _pencil_shower(energy_per_layer_gev: float = 0.01) -> np.ndarray:
    """A shower in one column (x=25, y=25) of every layer, plus one hot cell (x=25, y=30, layer 5)."""
    shower = np.zeros((51, 51, 25), np.float32)
    shower[25, 25, :] = energy_per_layer_gev
    shower[25, 30, 5] = 0.5
    return shower


def test_parse_defaults_when_url_empty() -> None:
    state, warnings = parse_view_state({})
    assert state == ViewState()
    assert warnings == []


def test_parse_good_values_round_trip() -> None:
    params = {"energy": "120", "theta": "75.5", "n": "8", "seed": "7", "source": "Monte Carlo",
              "shower": "3", "device": "cpu"}
    state, warnings = parse_view_state(params, ranges=SOURCES)
    assert warnings == []
    assert (state.energy_gev, state.theta_deg, state.n_showers, state.seed) == (120.0, 75.5, 8, 7)
    assert state.shower_index == 3 and state.device == "cpu"
    assert math.isclose(state.theta_rad, math.radians(75.5))
    again, _ = parse_view_state(view_state_to_query(state), ranges=SOURCES)
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
    default = ViewState()
    state, warnings = parse_view_state(params, ranges={"Monte Carlo": TRAINING_RANGE})
    assert getattr(state, field) == getattr(default, field)
    assert len(warnings) == 1
    assert words in warnings[0]
    assert next(iter(params)) in warnings[0]  # the message names the key


def test_list_values_last_wins_and_shower_index_clamped() -> None:
    state, warnings = parse_view_state({"energy": ["10", "20"], "n": "2", "shower": "5"})
    assert warnings == []
    assert state.energy_gev == 20.0
    assert state.shower_index == 0  # index 5 does not exist in a batch of 2


def test_shower_numbers_by_hand() -> None:
    shower = _pencil_shower()
    numbers = texts.shower_numbers(shower, energy_gev=10.0, theta_rad=math.pi / 2)
    assert math.isclose(numbers["deposited_gev"], 25 * 0.01 + 0.5, rel_tol=1e-6)
    assert math.isclose(numbers["sampling_fraction"], 0.075, rel_tol=1e-6)
    assert numbers["hits"] == 26
    assert numbers["max_layer"] == 5
    assert numbers["theta_deg"] == 90.0


def test_measured_angle_of_straight_column_is_normal_incidence() -> None:
    shower = np.zeros((51, 51, 25), np.float32)
    shower[25, 25, :] = 0.01
    assert math.isclose(texts.measured_theta_rad(shower), math.pi / 2, abs_tol=1e-9)
    tilted = np.zeros_like(shower)
    for layer in range(25):
        tilted[25, 20 + layer // 2, layer] = 0.01  # drifts to +y with depth: theta < 90 deg
    assert texts.measured_theta_rad(tilted) < math.pi / 2


def test_angle_tolerance_follows_the_monte_carlo_spread() -> None:
    assert texts.angle_tolerance_deg(2.0) > 10.0  # a 2 GeV shower's angle scatters by ~4 deg
    assert 2.0 < texts.angle_tolerance_deg(200.0) < 3.0
    assert texts.angle_tolerance_deg(50.0) < 26.0  # an angle 26 deg off is a failure at any energy


def test_format_card_is_readable() -> None:
    card = {"name": "tiny", "arch": "conv3d", "condition_ranges": {"energy_gev": [2, 500], "theta_deg": [60, 120]},
            "training": {"epochs": 3, "steps": 40, "wall_time_s": 125.0, "device": "cpu",
                         "config": {"lr": 0.001}, "data_provenance": {"showers": 1200, "source": "mc"}},
            "validation": {"sf_mre": 0.0412, "reference": {"file": "reference.h5", "showers": 1500, "held_out": True}}}
    text = texts.format_card(card)
    assert "### tiny" in text and "2-500 GeV" in text and "60-120 deg" in text
    assert "1,200 Monte Carlo showers, 40 steps, 3 epochs, on cpu, 2 min" in text
    assert "1500 held-out Monte Carlo showers of `reference.h5`" in text
    assert "{" not in text  # no raw dicts
    mapped = {**card, "config": {"cell_map": {"first_ring": 2}},
              "cell_map": {"showers": 16800, "classes_mapped": 512, "classes": 1200, "command": "python -m ..."}}
    assert ("**Cell map:** cells from 3 cells out moved onto the Monte Carlo's cell-energy distribution, fitted on "
            "16,800 Monte Carlo training showers (512 of 1,200 classes mapped)") in texts.format_card(mapped)


def test_stale_batch_message_names_what_changed() -> None:
    shown = ViewState(energy_gev=10.0, source="conv2d")
    assert stale_batch_message(shown, ViewState(energy_gev=10.0, source="conv2d", shower_index=2)) is None
    message = stale_batch_message(shown, ViewState(energy_gev=200.0, source="conv2d"))
    assert message is not None and "energy 200 GeV (shown: 10 GeV)" in message and "angle" not in message


def test_progress_text_estimates_time_left() -> None:
    assert texts.progress_text(0, 4, 0.2) == "0/4 showers, 0 s so far"
    assert texts.progress_text(1, 4, 10.0) == "1/4 showers, 10 s so far, about 30 s left"
    assert texts.progress_text(4, 4, 95.0) == "4/4 showers, 1 min 35 s so far"


def test_speedup_sentence_uses_the_fastest_trained_generator() -> None:
    rows = [{"name": "conv3d (published arch, random weights)", "kind": "arch", "device": "cpu", "batch_size": 16,
             "ms_per_shower": 1.0},
            {"name": "slow", "kind": "model", "device": "cpu", "batch_size": 16, "ms_per_shower": 20.0},
            {"name": "conv2d", "kind": "model", "device": "cpu", "batch_size": 16, "ms_per_shower": 2.0},
            {"name": "Monte Carlo", "kind": "mc", "device": "cpu", "batch_size": 1, "ms_per_shower": 2800.0}]
    text = texts.speedup_sentence(rows, {"energy_gev": 10.0})
    assert text == ("On this machine (cpu), conv2d makes a shower in 2 ms (batches of 16), the Monte Carlo in "
                    "2.8 s at 10 GeV: 1,400 times faster.")
    assert texts.speedup_sentence(rows[:3], {}) is None  # no Monte Carlo timed: nothing to compare with


def test_energy_and_angle_are_checked_against_the_range_of_the_source_in_the_url() -> None:
    """GFlash accepts 0.1-5000 GeV and 30-150 deg; the same URL values are refused for a 2-500 GeV model."""
    state, warnings = parse_view_state({"source": "GFlash", "energy": "800", "theta": "40"}, ranges=SOURCES)
    assert warnings == [] and (state.energy_gev, state.theta_deg) == (800.0, 40.0)
    state, warnings = parse_view_state({"source": "tiny", "energy": "800", "theta": "40"}, ranges=SOURCES)
    assert warnings == ["energy=800 in the URL is outside 2-500 GeV (tiny's range); using the default instead.",
                        "theta=40 in the URL is outside 60-120 deg (tiny's range); using the default instead."]
    assert (state.energy_gev, state.theta_deg) == (50.0, 90.0)


def test_a_default_outside_the_source_range_moves_to_its_edge() -> None:
    narrow = {"narrow": ConditionRange((100.0, 200.0), (to_radians(80.0), to_radians(100.0)))}
    state, warnings = parse_view_state({}, default=ViewState(source="narrow"), ranges=narrow)
    assert warnings == [] and (state.energy_gev, state.theta_deg) == (100.0, 90.0)
    assert ViewState(energy_gev=900.0, theta_deg=20.0).inside(narrow["narrow"]) == ViewState(energy_gev=200.0,
                                                                                             theta_deg=80.0)


def test_slider_bounds_follow_the_range_in_degrees() -> None:
    assert slider_bounds(TRAINING_RANGE) == ((2.0, 500.0), (60.0, 120.0))  # not 59.99999999999999
    assert slider_bounds(gflash.CONDITION_RANGE) == ((0.1, 5000.0), (30.0, 150.0))
    assert to_degrees(to_radians(62.0)) == 62.0 and texts.angle_label(math.pi / 2) == "90 deg"


def test_view_state_hands_the_library_radians() -> None:
    conditions = ViewState(energy_gev=20.0, theta_deg=60.0, n_showers=3).conditions
    assert conditions.energy_gev.tolist() == [20.0] * 3
    np.testing.assert_allclose(conditions.theta_rad, math.pi / 3)


def test_format_card_reads_the_declared_range_and_says_when_it_is_assumed() -> None:
    declared = texts.format_card({"name": "m", "condition_range": ConditionRange((10.0, 200.0), (1.2, 1.9)).to_json()})
    assert "**Energy range:** 10-200 GeV" in declared and "**Angle range:** 68.7549-108.862 deg" in declared
    assumed = texts.format_card({"name": "old"})
    assert "2-500 GeV (the card gives none: assumed)" in assumed and "60-120 deg" in assumed
