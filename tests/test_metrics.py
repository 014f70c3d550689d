"""The sample-versus-sample metric functions: known values, identities and the one sampling-fraction error."""

from __future__ import annotations

import math

import numpy as np
import pytest
from synthetic import synthetic_showers

from calogen.showers import Conditions, ShowerSet
from calogen.validation import binning as B
from calogen.validation import distances as D
from calogen.validation import images as IM


def test_separation_power_known_values() -> None:
    assert D.separation_power([1, 2, 3, 0, 0], [0, 0, 0, 4, 5]) == pytest.approx(1.0)
    assert D.separation_power([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    # h = (1/2, 1/2), g = (1, 0): S = 1/2 [ (1/2)^2 / (3/2) + (1/2)^2 / (1/2) ] = 1/3
    assert D.separation_power([1, 1], [1, 0]) == pytest.approx(1.0 / 3.0)


def test_bmre_and_wasserstein_known_values() -> None:
    assert D.bmre([1, 2, 1], [1, 2, 1]) == 0.0
    assert D.bmre([1, 1], [1.2, 0.8]) == pytest.approx(0.2)
    rng = np.random.default_rng(0)
    a = rng.normal(size=20000)
    assert D.wasserstein(a, a) == 0.0
    assert D.wasserstein(a, a + 0.5) == pytest.approx(0.5, rel=0.02)  # in units of the reference std (1)


def test_histogram_pair_keeps_every_entry_and_checks_its_shape() -> None:
    hists = D.histogram_pair([0.0, 1.0, 2.0, 100.0], [5.0, -50.0], bins=[0.0, 1.0, 2.0])
    np.testing.assert_array_equal(hists.reference, [1, 3])  # 2.0 and 100.0 clipped into the last bin
    np.testing.assert_array_equal(hists.candidate, [1, 1])
    back = D.HistogramPair.from_json(hists.to_json())
    for name in ("edges", "reference", "candidate"):
        np.testing.assert_array_equal(getattr(back, name), getattr(hists, name))
    with pytest.raises(ValueError, match="one count per bin"):
        D.HistogramPair([0.0, 1.0], [1.0, 2.0], [1.0])


def test_shape_mse_is_relative_to_the_reference_peak() -> None:
    assert D.shape_mse([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert D.shape_mse([2.0, 4.0], [2.0, 3.0]) == pytest.approx(((1 / 4) ** 2) / 2)


def test_ssim_identical_and_different() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((15, 15, 25))
    assert IM.ssim(img, img, data_range=1.0) == pytest.approx(1.0)
    assert IM.ssim(img, img, data_range=1e-4) == pytest.approx(1.0)
    assert IM.ssim(img, rng.random((15, 15, 25)), data_range=1.0) < 0.5
    with pytest.raises(ValueError, match="same shape"):
        IM.ssim(img, img[:5])


def test_fpd_kpd_identical_zero_and_shift_positive() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 6))
    assert D.fpd(x, x)[0] == pytest.approx(0.0, abs=1e-9)
    assert D.frechet_distance(x, x + 1.0) == pytest.approx(6.0)
    assert D.kpd(x, x)[0] == pytest.approx(0.0, abs=1e-12)
    same, _ = D.fpd(x, rng.normal(size=(800, 6)))
    moved, _ = D.fpd(x, rng.normal(size=(800, 6)) + 0.5)
    assert abs(same) < 0.03
    assert moved == pytest.approx(6 * 0.25, rel=0.15)  # |mu_r - mu_c|^2 = 6 x 0.5^2
    assert D.kpd(x, rng.normal(size=(800, 6)) + 0.5)[0] > 10 * abs(D.kpd(x, rng.normal(size=(800, 6)))[0])


def test_cells_texture_variance_and_neighbours() -> None:
    ref = synthetic_showers(120, seed=1)
    other = synthetic_showers(120, seed=2)
    jsd, hists = IM.mscn_jsd(ref.showers, ref.showers)
    assert jsd == pytest.approx(0.0, abs=1e-12) and hists.reference.sum() > 0
    ratio, per_layer = IM.cell_variance_ratio(ref.showers, ref.showers)
    assert ratio == pytest.approx(1.0) and per_layer.shape == (25,)
    flat, _ = IM.cell_variance_ratio(ref.showers, np.repeat(ref.showers[:1], 120, axis=0))
    assert flat == 0.0  # every shower alike: the mode-collapse signature
    copies = D.nearest_neighbour_ratio(ref.showers, ref.energy_gev, ref.showers, ref.energy_gev, seed=0)
    assert copies["exact_copy_fraction"] == 1.0 and copies["nn_ratio"] == pytest.approx(0.0, abs=1e-3)
    fresh = D.nearest_neighbour_ratio(ref.showers, ref.energy_gev, other.showers, other.energy_gev, seed=0)
    assert fresh["exact_copy_fraction"] == 0.0 and fresh["nn_ratio"] > 0.8


def test_correlations_of_a_sample_with_itself_agree() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 3))
    x[:, 1] = x[:, 0] + 0.1 * x[:, 1]
    diff, mse = IM.correlation_difference(x, x)
    assert mse == 0.0 and not diff.any()
    assert IM.correlation_matrix(x)[0, 1] > 0.99
    shuffled = x.copy()
    shuffled[:, 1] = rng.permutation(shuffled[:, 1])
    assert IM.correlation_difference(x, shuffled)[1] > 0.2


def _conditions(energy: list[float], theta: float = math.pi / 2) -> Conditions:
    return Conditions(np.asarray(energy, dtype=np.float64), np.full(len(energy), theta))


def test_sf_mre_is_the_3dgan_mean_over_bins() -> None:
    energy = [50.0] * 10 + [100.0] * 10
    conditions = _conditions(energy)
    sf_ref = np.full(20, 0.02)
    sf_cand = np.concatenate([np.full(10, 0.022), np.full(10, 0.019)])  # +10 % at 50 GeV, -5 % at 100 GeV
    bins = B.ConditionBins(((45.0, 55.0), (95.0, 105.0)), ((1.5, 1.7),))
    errors = B.sf_bin_errors(sf_ref, conditions, sf_cand, conditions, bins)
    assert [e for _, _, e in errors] == pytest.approx([0.10, 0.05])
    assert B.sf_mre(sf_ref, conditions, sf_cand, conditions, bins) == pytest.approx(0.075)
    # a bin with too few showers of either sample is skipped; none left gives NaN
    assert math.isnan(B.sf_mre(sf_ref, conditions, sf_cand, conditions, bins, min_count=11))
    assert B.sf_mre(sf_ref, conditions, sf_cand[::-1], conditions, bins) == pytest.approx(0.075)
    with pytest.raises(ValueError, match="one per shower"):
        B.sf_mre(sf_ref[:5], conditions, sf_cand, conditions, bins)



def test_energy_quantile_bins_hold_equal_counts() -> None:
    energy = np.random.default_rng(0).uniform(2.0, 500.0, 95)
    bins = B.ConditionBins.energy_quantiles(energy, max_bins=10, min_per_bin=10)
    assert len(bins.energy_gev) == 9 and bins.theta_rad == ((0.0, math.pi),)
    conditions = _conditions(list(energy))
    counts = [int(bins.mask(conditions, e_bin, t_bin).sum()) for e_bin, t_bin in bins]
    assert sum(counts) == 95 and min(counts) >= 10


def test_condition_bins_reject_empty_bins_and_read_grids() -> None:
    with pytest.raises(ValueError, match="high > low"):
        B.ConditionBins(((100.0, 50.0),), ((1.0, 2.0),))
    grid = _conditions([10.0, 50.0] * 6 + [100.0] * 3)
    bins = B.ConditionBins.grid(Conditions(grid.energy_gev, np.tile([1.08, 1.57, 2.06], 5)))
    assert bins.energy_gev == ((5.0, 15.0), (45.0, 55.0), (95.0, 105.0))
    np.testing.assert_allclose(bins.theta_rad, [(1.03, 1.13), (1.52, 1.62), (2.01, 2.11)])


def test_covered_conditions_cut_both_samples_to_shared_bins() -> None:
    def at(energies: list[float], n: int, seed: int) -> ShowerSet:
        return ShowerSet.concatenate([synthetic_showers(n, seed=seed + i, energy_gev=(e, e))
                                      for i, e in enumerate(energies)])

    reference, candidate = at([10.0, 50.0, 100.0], 12, 1), at([100.0], 12, 7)
    ref_part, cand_part, coverage = B.covered_conditions(reference, candidate)
    assert len(ref_part) == len(cand_part) == 12 and set(ref_part.energy_gev) == {100.0}
    assert coverage.n_reference_given == 36 and [b.energy_gev for b in coverage.bins] == [(95.0, 105.0)]
    assert B.Coverage.from_json(coverage.to_json()) == coverage
    with pytest.raises(ValueError, match=r"energies 300-300 GeV.*5-15, 45-55, 95-105 GeV"):
        B.covered_conditions(reference, at([300.0], 12, 9))
