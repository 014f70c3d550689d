"""Per-shower observables on hand-checkable showers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from calogen.validation import features as F


def one_hot(ix: int, iy: int, iz: int, *, energy_gev: float = 1.0, shape=(51, 51, 25)) -> np.ndarray:
    s = np.zeros((1, *shape), dtype=np.float32)
    s[0, ix, iy, iz] = energy_gev
    return s


def tilted_line(theta_rad: float, *, shape=(51, 51, 25)) -> np.ndarray:
    """One cell per layer along a straight track at polar angle theta (y drifts by cot(theta) per mm depth)."""
    nx, ny, nz = shape
    depth = F.clic_layer_depth_mm(nz)
    s = np.zeros((1, *shape), dtype=np.float32)
    y_mm = (depth - depth.mean()) / math.tan(theta_rad)
    y_cells = y_mm / F.CELL_SIZE_MM + (ny - 1) / 2
    for k in range(nz):
        lo = int(np.floor(y_cells[k]))
        frac = y_cells[k] - lo  # split between two cells so the barycentre is exact
        s[0, nx // 2, lo, k] = 1.0 - frac
        s[0, nx // 2, lo + 1, k] = frac
    return s


@pytest.fixture(scope="module")
def random_showers() -> np.ndarray:
    rng = np.random.default_rng(0)
    s = rng.gamma(0.3, 0.01, size=(40, 51, 51, 25)).astype(np.float32)
    s[s < 1e-4] = 0.0
    return s


def test_one_hot_cell_gives_its_own_barycentre() -> None:
    s = one_hot(7, 30, 12)
    assert F.barycentre(s, "x")[0] == pytest.approx(7.0)
    assert F.barycentre(s, "y")[0] == pytest.approx(30.0)
    assert F.barycentre(s, "z")[0] == pytest.approx(12.0)
    assert F.width(s, "x")[0] == 0.0
    assert F.barycentre(s, "x", unit="mm")[0] == pytest.approx((7 - 25) * 5.1)
    assert F.position_of_maximum(s)[0].tolist() == [7, 30, 12]
    assert F.layer_of_maximum(s)[0] == 12


def test_two_cells_width_in_mm() -> None:
    s = one_hot(10, 25, 3)
    s[0, 12, 25, 3] = 1.0
    assert F.barycentre(s, "x")[0] == pytest.approx(11.0)
    assert F.width(s, "x")[0] == pytest.approx(1.0)
    assert F.width(s, "x", unit="mm")[0] == pytest.approx(5.1)
    with pytest.raises(ValueError, match="transverse"):
        F.barycentre(s, "z", unit="mm")


def test_layer_fractions_sum_to_one(random_showers: np.ndarray) -> None:
    r = F.layer_fractions(random_showers)
    assert r.shape == (40, 3)
    np.testing.assert_allclose(r.sum(axis=1), 1.0, rtol=1e-12)
    # a cell in layer 9 (index 8) belongs to R2 only
    assert F.layer_fractions(one_hot(1, 1, 8))[0].tolist() == [0.0, 1.0, 0.0]


def test_energy_bookkeeping_closes(random_showers: np.ndarray) -> None:
    total = F.deposited_energy(random_showers)
    for axis in ("x", "y", "z"):
        np.testing.assert_allclose(F.energy_profile(random_showers, axis).sum(axis=1), total, rtol=1e-9)
    energy = np.full(40, 50.0)
    np.testing.assert_allclose(F.sampling_fraction(random_showers, energy), total / 50.0)


def test_hits_sparsity_and_spectrum() -> None:
    s = np.zeros((2, 3, 3, 25), dtype=np.float32)
    s[0, 0, 0, 0] = 1e-4
    s[0, 1, 1, 1] = 3e-4
    s[1, 2, 2, 2] = 1.0
    assert F.n_hits(s).tolist() == [1.0, 1.0]
    curve = F.sparsity_curve(s, [0.0, 2e-4, 0.5])
    n_cells = 3 * 3 * 25
    np.testing.assert_allclose(curve[0], [2 / n_cells, 1 / n_cells, 0.0])
    np.testing.assert_allclose(curve[1], [1 / n_cells, 1 / n_cells, 1 / n_cells])
    assert sorted(F.cell_energies(s).tolist()) == pytest.approx([3e-4, 1.0])


def test_empty_shower_is_finite() -> None:
    s = np.zeros((1, 5, 5, 25), dtype=np.float32)
    summary = F.shower_summary(s, [10.0])
    for name, values in summary["scalars"].items():
        assert np.all(np.isfinite(values)), name
    assert F.measured_angle(s)[0] == pytest.approx(math.pi / 2)
    assert np.all(np.isfinite(summary["high_level"]))


@pytest.mark.parametrize("theta_deg", [60.0, 75.0, 90.0, 105.0, 120.0])
def test_measured_angle_of_a_straight_track(theta_deg: float) -> None:
    theta = math.radians(theta_deg)
    assert F.measured_angle(tilted_line(theta))[0] == pytest.approx(theta, abs=1e-6)


def test_high_level_features_shape_and_names(random_showers: np.ndarray) -> None:
    x, names = F.high_level_features(random_showers, np.full(40, 100.0))
    assert x.shape == (40, 5 * 25 + 2) and len(names) == x.shape[1]
    assert names[0] == "e_frac_layer0" and names[-2] == "sampling_fraction"
    np.testing.assert_allclose(x[:, :25].sum(axis=1), x[:, -2], rtol=1e-9)


def test_summary_matches_standalone_functions(random_showers: np.ndarray) -> None:
    energy = np.linspace(20.0, 200.0, 40)
    summary = F.shower_summary(random_showers, energy)
    scalars = summary["scalars"]
    np.testing.assert_allclose(scalars["sampling_fraction"], F.sampling_fraction(random_showers, energy))
    np.testing.assert_allclose(scalars["r2"], F.layer_fractions(random_showers)[:, 1])
    np.testing.assert_allclose(scalars["barycentre_y_mm"], F.barycentre(random_showers, "y", unit="mm"))
    np.testing.assert_allclose(scalars["measured_angle_rad"], F.measured_angle(random_showers))
    hlf, _ = F.high_level_features(random_showers, energy)
    np.testing.assert_allclose(summary["high_level"], hlf)
    assert set(F.scalar_features(random_showers, energy)) == set(scalars)


def test_torch_tensors_accepted(random_showers: np.ndarray) -> None:
    t = torch.from_numpy(random_showers[:4])
    np.testing.assert_allclose(F.deposited_energy(t), F.deposited_energy(random_showers[:4]))


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"expected \(N, nx, ny, nz\)"):
        F.deposited_energy(np.zeros((5, 5, 25)))
    with pytest.raises(ValueError, match="one per shower"):
        F.sampling_fraction(np.zeros((2, 3, 3, 25)), [1.0])
    with pytest.raises(ValueError, match="axis"):
        F.energy_profile(np.zeros((1, 3, 3, 25)), "w")  # type: ignore[arg-type]
