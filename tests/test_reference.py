"""The Monte Carlo reference sample: grid, provenance, and independence of the number of workers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from calogen.io import read_showers
from calogen.showers import OutOfRangeError
from calogen.simulation.reference import DEFAULT_THETAS_RAD, make_reference, provenance_path

DEG62, DEG90 = math.radians(62.0), math.pi / 2


def test_reference_grid_and_provenance_do_not_depend_on_the_workers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    grid = {"energies_gev": (1.0, 2.0), "thetas_rad": (DEG62, DEG90), "n_per_point": 2, "seed": 5}
    one = make_reference(tmp_path / "one.h5", workers=1, **grid)
    make_reference(tmp_path / "two.h5", workers=2, **grid)
    a, b = read_showers(tmp_path / "one.h5"), read_showers(tmp_path / "two.h5")
    np.testing.assert_array_equal(a.showers, b.showers)
    assert a.energy_gev.tolist() == [1.0] * 4 + [2.0] * 4
    assert np.degrees(a.theta_rad[:4]).round(3).tolist() == [62.0, 62.0, 90.0, 90.0]
    saved = json.loads(provenance_path(tmp_path / "two.h5").read_text())
    assert saved["workers"] == 2 and saved["showers"] == 8 and one["showers"] == 8
    assert [p["seed"] for p in saved["per_point"]] == [5, 6, 7, 8]
    assert saved["thetas_rad"] == [DEG62, DEG90] and saved["per_point"][1]["theta_rad"] == DEG90
    assert [p["energy_gev"] for p in saved["mean_sampling_fraction"]] == [1.0, 1.0, 2.0, 2.0]


def test_reference_refuses_nonsense(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="workers=0"):
        make_reference(tmp_path / "x.h5", workers=0)
    with pytest.raises(OutOfRangeError, match="angle 30 deg is outside 60-120 deg, the range the Monte Carlo"):
        make_reference(tmp_path / "x.h5", thetas_rad=(math.radians(30.0),))  # checked before any shower is made
    assert not (tmp_path / "x.h5").exists()
    assert np.degrees(DEFAULT_THETAS_RAD).round(9).tolist() == [62.0, 90.0, 118.0]


def test_reference_counts_per_energy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    prov = make_reference(tmp_path / "r.h5", energies_gev=(1.0, 2.0), thetas_rad=(DEG90,), n_per_point=[1, 3], seed=2)
    assert read_showers(tmp_path / "r.h5").energy_gev.tolist() == [1.0, 2.0, 2.0, 2.0]
    assert prov["showers_per_point"] == {"1": 1, "2": 3} and prov["showers"] == 4
    with pytest.raises(ValueError, match="one per energy"):
        make_reference(tmp_path / "bad.h5", energies_gev=(1.0, 2.0), n_per_point=[1, 2, 3])
