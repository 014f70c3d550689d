"""calogen.showers: Conditions (the one validate/broadcast) and ConditionRange (each source's accepted range)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from calogen.showers import TRAINING_RANGE, ConditionRange, Conditions, OutOfRangeError, ShowerSet

NORMAL = math.pi / 2


def test_broadcast_repeats_a_number_and_keeps_arrays() -> None:
    one = Conditions.broadcast(100.0, NORMAL, n=3)
    assert one.energy_gev.tolist() == [100.0] * 3 and one.theta_rad.tolist() == [NORMAL] * 3
    assert len(one) == 3 and one.energy_gev.dtype == np.float64
    mixed = Conditions.broadcast([10.0, 20.0], NORMAL)  # the array sets n
    assert mixed.energy_gev.tolist() == [10.0, 20.0] and mixed.theta_rad.tolist() == [NORMAL, NORMAL]
    assert len(Conditions.broadcast(5.0, 1.2)) == 1
    assert mixed.select(np.array([False, True])).energy_gev.tolist() == [20.0]


def test_a_length_mismatch_names_the_input_and_the_fix() -> None:
    with pytest.raises(ValueError, match=r"^energy_gev has 3 values but n=2; pass one value or n values$"):
        Conditions.broadcast([1.0, 2.0, 3.0], NORMAL, n=2)
    with pytest.raises(ValueError, match=r"^theta_rad has 2 values but n=3; pass one value or n values$"):
        Conditions.broadcast([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="n=0"):
        Conditions.broadcast(1.0, NORMAL, n=0)


def test_conditions_refuse_nonsense_and_degrees() -> None:
    with pytest.raises(ValueError, match="energy_gev must be finite and positive"):
        Conditions.broadcast([10.0, -1.0], NORMAL)
    with pytest.raises(ValueError, match="is a value in degrees"):
        Conditions.broadcast(10.0, 90.0)


def test_out_of_range_message_in_gev_and_degrees() -> None:
    with pytest.raises(OutOfRangeError, match=r"^energy 600 GeV is outside 2-500 GeV, the range model x accepts$"):
        TRAINING_RANGE.check(Conditions.broadcast(600.0, NORMAL), "model x")
    with pytest.raises(OutOfRangeError, match=r"^energy 1-600 GeV is outside 2-500 GeV"):
        TRAINING_RANGE.check(Conditions.broadcast([1.0, 100.0, 600.0], NORMAL), "model x")
    with pytest.raises(OutOfRangeError, match=r"^angle 135 deg is outside 60-120 deg, the range GFlash accepts$"):
        TRAINING_RANGE.check(Conditions.broadcast(100.0, math.radians(135.0)), "GFlash")
    assert isinstance(OutOfRangeError("x"), ValueError)  # callers that catch ValueError see it too
    TRAINING_RANGE.check(Conditions.broadcast([2.0, 500.0], [math.radians(60.0), math.radians(120.0)]), "edges")


def test_float32_conditions_at_the_edges_are_inside() -> None:
    """A shower file holds 120 deg as float32, 6e-8 rad above the float64 edge: still inside the range."""
    edge = np.float32(math.radians(120.0))
    assert float(edge) > math.radians(120.0)
    conditions = Conditions.broadcast([np.float32(2.0), np.float32(500.0)], [edge, np.float32(math.radians(60.0))])
    assert TRAINING_RANGE.contains(conditions).all()
    assert not TRAINING_RANGE.contains(Conditions.broadcast(500.01, NORMAL)).any()


def test_sample_stays_in_range_log_uniform_energies_uniform_angles() -> None:
    accepted = ConditionRange((2.0, 500.0), (1.0, 2.0))
    drawn = accepted.sample(20_000, np.random.default_rng(1))
    assert accepted.contains(drawn).all() and len(drawn) == 20_000
    log_energy = np.log(drawn.energy_gev)
    # log-uniform: ln E uniform, so half the showers lie below the geometric mean sqrt(2 x 500) = 31.6 GeV
    assert np.mean(drawn.energy_gev < math.sqrt(2.0 * 500.0)) == pytest.approx(0.5, abs=0.015)
    assert log_energy.mean() == pytest.approx(0.5 * (math.log(2.0) + math.log(500.0)), abs=0.03)
    assert drawn.theta_rad.mean() == pytest.approx(1.5, abs=0.01) and drawn.theta_rad.std() == pytest.approx(
        1.0 / math.sqrt(12.0), rel=0.03)
    again = accepted.sample(5, np.random.default_rng(1))
    np.testing.assert_array_equal(again.energy_gev, drawn.energy_gev[:5])
    point = ConditionRange((50.0, 50.0), (NORMAL, NORMAL)).sample(3, np.random.default_rng(0))
    assert point.energy_gev.tolist() == [50.0] * 3 and point.theta_rad.tolist() == [NORMAL] * 3


def test_json_round_trip_in_radians() -> None:
    text = json.dumps(TRAINING_RANGE.to_json())
    assert json.loads(text) == {"energy_gev": [2.0, 500.0], "theta_rad": [math.radians(60.0), math.radians(120.0)]}
    assert ConditionRange.from_json(json.loads(text)) == TRAINING_RANGE
    assert TRAINING_RANGE.describe() == "2-500 GeV, 60-120 deg"
    with pytest.raises(ValueError, match="not a condition range"):
        ConditionRange.from_json({"energy_gev": [2.0, 500.0]})
    with pytest.raises(ValueError, match="not a valid range"):
        ConditionRange((500.0, 2.0), (1.0, 2.0))
    with pytest.raises(ValueError, match="not a valid range"):
        ConditionRange((2.0, 500.0), (60.0, 120.0))  # degrees by mistake


def test_shower_set_carries_its_conditions() -> None:
    showers = ShowerSet(np.zeros((2, 3, 3, 4), np.float32), np.array([10.0, 20.0]), np.array([1.2, 1.6]))
    assert showers.conditions.energy_gev.tolist() == [10.0, 20.0] and showers.geometry == (3, 3, 4)
    assert TRAINING_RANGE.contains(showers.conditions).tolist() == [True, True]
