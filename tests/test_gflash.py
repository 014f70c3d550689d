"""GFlash: effective-medium constants, longitudinal and lateral profiles, fluctuations, sampling fraction,
incidence angle, reproducibility and the output sample."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from calogen.detector import clic_ecal, get_material, homogeneous_block
from calogen.io import ShowerSet, read_showers, write_showers
from calogen.showers import Conditions, OutOfRangeError
from calogen.simulation.gflash import (
    GFlash,
    GFlashParams,
    expected_sampling_fraction,
    layer_energy_fractions,
    longitudinal_parameters,
    mean_longitudinal_profile,
    mip_dedx_mev_cm2_g,
    sample_longitudinal,
    sample_spots,
    sampling_constants,
    simulate_gflash,
)


@pytest.fixture(scope="module")
def constants():
    return sampling_constants(clic_ecal())


@pytest.fixture(scope="module")
def normal_100() -> ShowerSet:
    return simulate_gflash(100.0, math.pi / 2, n=60, seed=11)


def _layer_t_edges(constants) -> np.ndarray:
    """Layer boundaries in radiation lengths at normal incidence, (n_layers + 1,)."""
    return np.interp(constants.layer_edges_mm, constants.slab_bounds_mm, constants.slab_bounds_x0)


# ---------------------------------------------------------------- constants of the stack


def test_effective_constants_of_the_clic_stack(constants) -> None:
    eff = clic_ecal().effective_material()
    assert constants.x0_eff_mm == pytest.approx(eff["radiation_length_mm"])
    assert constants.rm_eff_mm == pytest.approx(eff["moliere_radius_mm"])
    assert constants.z_active == pytest.approx(14.0)
    assert 60.0 < constants.z_passive < 71.0  # W alloy dominates the passive radiation lengths
    # e_hat = 1 / (1 + 0.007 (Z_p - Z_a)) ~ 0.7 for W/Si (GP eq. 21)
    assert constants.e_hat == pytest.approx(1.0 / (1.0 + 0.007 * (constants.z_passive - 14.0)))
    assert 0.68 < constants.e_hat < 0.76
    # F_S = X0_eff / (d_a + d_p): 25 layers over the stack's 145.6 mm (with the front face and the back plate)
    assert constants.f_s == pytest.approx(constants.x0_eff_mm / (145.6 / 25), rel=1e-6)
    assert constants.sampling_fraction == pytest.approx(constants.e_hat * constants.mip_fraction)
    assert 0.01 < constants.sampling_fraction < 0.03
    sf = np.asarray(constants.layer_sampling_fraction)
    assert sf.shape == (25,)
    # 2.4 mm of tungsten per layer in front, 4.8 mm behind: the thick layers sample about half as much
    assert sf[5] / sf[20] == pytest.approx(1.8, rel=0.1)
    assert constants.layer_edges_mm[0] == 0.0 and constants.layer_edges_mm[-1] == pytest.approx(145.6)


def test_mip_energy_loss_matches_pdg() -> None:
    # PDG minimum ionisation, MeV cm^2/g: W 1.145, Si 1.664, Cu 1.403 (no density effect here: a few % high)
    w, si, cu = (mip_dedx_mev_cm2_g(get_material(m)) for m in ("W", "Si", "Cu"))
    assert w == pytest.approx(1.145, rel=0.05)
    assert si == pytest.approx(1.664, rel=0.05)
    assert cu == pytest.approx(1.403, rel=0.05)
    assert w / si == pytest.approx(1.145 / 1.664, rel=0.02)


def test_homogeneous_block_has_no_sampling() -> None:
    block = sampling_constants(homogeneous_block("W", n_layers=30))
    assert block.homogeneous
    assert block.e_hat == 1.0 and block.sampling_fraction == pytest.approx(1.0)
    assert np.allclose(block.layer_sampling_fraction, 1.0)


# ---------------------------------------------------------------- longitudinal


def test_mean_parameters_follow_the_parametrisation(constants) -> None:
    energy = 50.0
    ln_y = math.log(energy * 1000.0 / constants.ec_eff_mev)
    lp = longitudinal_parameters(energy, constants)
    t_hom = ln_y - 0.812
    t_sam = t_hom - 0.59 / constants.f_s - 0.53 * (1.0 - constants.e_hat)
    alpha_sam = 0.81 + (0.458 + 2.26 / constants.z_eff) * ln_y - 0.444 / constants.f_s
    assert math.exp(float(lp.mean_ln_t)) == pytest.approx(t_sam)
    assert math.exp(float(lp.mean_ln_alpha)) == pytest.approx(alpha_sam)
    assert float(lp.sigma_ln_t) == pytest.approx(1.0 / (-2.5 + 1.25 * ln_y))
    assert float(lp.rho) == pytest.approx(0.784 - 0.023 * ln_y)


def test_fluctuations_have_the_configured_correlation(constants) -> None:
    n, energy = 20000, 50.0
    gen = torch.Generator().manual_seed(5)
    tmax, alpha = sample_longitudinal(torch.full((n,), energy, dtype=torch.float64), constants, generator=gen)
    ln_t, ln_a = np.log(tmax.numpy()), np.log(alpha.numpy())
    lp = longitudinal_parameters(energy, constants)
    rho = float(lp.rho)
    measured = float(np.corrcoef(ln_t, ln_a)[0, 1])
    assert abs(measured - rho) < 4.0 * (1.0 - rho**2) / math.sqrt(n)
    assert ln_t.std() == pytest.approx(float(lp.sigma_ln_t), rel=0.03)
    assert ln_a.std() == pytest.approx(float(lp.sigma_ln_alpha), rel=0.03)
    assert ln_t.mean() == pytest.approx(float(lp.mean_ln_t), abs=3.0 * float(lp.sigma_ln_t) / math.sqrt(n))


def test_spot_depth_profile_peaks_at_the_parametrised_maximum(constants) -> None:
    energy = 100.0
    gen = torch.Generator().manual_seed(2)
    spots = sample_spots(torch.full((40,), energy, dtype=torch.float64), constants, generator=gen)
    hist, edges = np.histogram(spots.t_x0.numpy(), bins=np.arange(0.0, 25.0, 0.25),
                               weights=spots.energy_gev.numpy())
    centres = 0.5 * (edges[1:] + edges[:-1])
    k = int(np.argmax(hist))
    a2, a1, _ = np.polyfit(centres[k - 6:k + 7], hist[k - 6:k + 7], 2)
    peak = -a1 / (2.0 * a2)
    t_mean_params = math.exp(float(longitudinal_parameters(energy, constants).mean_ln_t))
    grid = np.linspace(0.01, 25.0, 2500)
    t_quadrature = grid[np.argmax(mean_longitudinal_profile(grid, energy, constants))]
    assert t_quadrature == pytest.approx(t_mean_params, abs=0.2)  # the mean profile peaks at T(<params>)
    assert peak == pytest.approx(t_mean_params, abs=0.35)


def test_layer_profile_of_showers_peaks_at_t_max(constants, normal_100) -> None:
    # dE/dt per layer: silicon energy / local sampling fraction / layer thickness in X0
    t_edges = _layer_t_edges(constants)
    profile = normal_100.showers.mean(axis=0).sum(axis=(0, 1))
    dedt = profile / np.asarray(constants.layer_sampling_fraction) / np.diff(t_edges) / 100.0
    t_max = math.exp(float(longitudinal_parameters(100.0, constants).mean_ln_t))
    k = int(np.argmax(dedt))
    assert t_edges[k] - 0.7 <= t_max <= t_edges[k + 1] + 0.7
    expected = mean_longitudinal_profile(0.5 * (t_edges[1:] + t_edges[:-1]), 100.0, constants)
    assert np.allclose(dedt[2:22], expected[2:22], rtol=0.1, atol=0.004)


def test_homogeneous_block_profile_and_full_visibility() -> None:
    block = homogeneous_block("W", n_layers=60)  # 30 X0 of tungsten, every slab scored
    constants = sampling_constants(block)
    sample = simulate_gflash(50.0, math.pi / 2, n=20, seed=1, detector=block)
    assert sample.showers.shape == (20, 51, 51, 60)
    visible = sample.showers.sum(axis=(1, 2, 3)) / 50.0
    assert visible.mean() == pytest.approx(layer_energy_fractions(50.0, constants).sum(), rel=0.01)
    t_edges = _layer_t_edges(constants)
    k = int(np.argmax(sample.showers.mean(axis=0).sum(axis=(0, 1))))
    t_hom = math.log(50_000.0 / constants.ec_eff_mev) - 0.812  # no sampling corrections
    assert t_edges[k] - 0.5 <= t_hom <= t_edges[k + 1] + 0.5


# ---------------------------------------------------------------- lateral


def test_ninety_percent_within_one_moliere_radius(constants, normal_100) -> None:
    gen = torch.Generator().manual_seed(3)
    spots = sample_spots(torch.full((20,), 100.0, dtype=torch.float64), constants, generator=gen)
    r, e = spots.r_rm.numpy(), spots.energy_gev.numpy()
    assert e[r < 1.0].sum() / e.sum() == pytest.approx(0.90, abs=0.03)
    assert e[r < 2.0].sum() / e.sum() == pytest.approx(0.95, abs=0.025)
    # the same on the cell grid, about each shower's barycentre
    cells = np.arange(51)
    fractions = []
    for shower in normal_100.showers[:20]:
        xy = shower.sum(axis=2)
        bx = (xy.sum(axis=1) * cells).sum() / xy.sum()
        by = (xy.sum(axis=0) * cells).sum() / xy.sum()
        dist_mm = np.hypot(cells[:, None] - bx, cells[None, :] - by) * 5.1
        fractions.append(xy[dist_mm < constants.rm_eff_mm].sum() / xy.sum())
    assert np.mean(fractions) == pytest.approx(0.90, abs=0.03)


# ---------------------------------------------------------------- energy


def test_silicon_energy_over_primary_is_the_sampling_fraction(constants, normal_100) -> None:
    sf = normal_100.showers.sum(axis=(1, 2, 3)) / normal_100.energy_gev
    expected = expected_sampling_fraction(100.0)
    assert sf.mean() == pytest.approx(expected, rel=0.02)
    # the stack's single number: most of the shower sits in the thin-tungsten front section, so a bit above
    assert sf.mean() == pytest.approx(constants.sampling_fraction, rel=0.15)
    contained = layer_energy_fractions(100.0, constants).sum()
    assert 0.9 < contained < 1.0  # ~22 X0 deep: a few % leak out of the back at 100 GeV


def test_spot_energy_fluctuation_is_the_sampling_term(constants) -> None:
    energy, n = 10.0, 300
    gen = torch.Generator().manual_seed(4)
    spots = sample_spots(torch.full((n,), energy, dtype=torch.float64), constants, generator=gen)
    totals = np.bincount(spots.shower.numpy(), weights=spots.energy_gev.numpy(), minlength=n)
    assert totals.mean() == pytest.approx(energy, rel=0.01)
    c = GFlashParams().sampling_resolution
    assert totals.std() / totals.mean() == pytest.approx(c / math.sqrt(energy), rel=0.15)


# ---------------------------------------------------------------- geometry, reproducibility, output


def test_theta_tilts_the_barycentre_in_y(constants) -> None:
    z_centres = 0.5 * (np.asarray(constants.layer_edges_mm[1:]) + np.asarray(constants.layer_edges_mm[:-1]))
    y_mm = np.arange(51) * 5.1
    slopes = {}
    for theta_deg in (60.0, 90.0, 120.0):
        sample = simulate_gflash(20.0, math.radians(theta_deg), n=20, seed=8)
        per_layer = sample.showers.mean(axis=0).sum(axis=0)  # (Y, L)
        y_bar = (per_layer * y_mm[:, None]).sum(axis=0) / per_layer.sum(axis=0)
        slopes[theta_deg] = np.polyfit(z_centres[2:18], y_bar[2:18], 1)[0]
    cot60 = 1.0 / math.tan(math.radians(60.0))
    assert slopes[60.0] == pytest.approx(cot60, rel=0.2)  # direction (0, cos theta, sin theta)
    assert slopes[120.0] == pytest.approx(-cot60, rel=0.2)
    assert abs(slopes[90.0]) < 0.05


def test_same_seed_same_showers() -> None:
    a = simulate_gflash([5.0, 20.0], [1.2, 1.7], seed=3)
    b = simulate_gflash([5.0, 20.0], [1.2, 1.7], seed=3)
    c = simulate_gflash([5.0, 20.0], [1.2, 1.7], seed=4)
    np.testing.assert_array_equal(a.showers, b.showers)
    assert not np.array_equal(a.showers, c.showers)


def test_output_sample(tmp_path) -> None:
    calls: list[tuple[int, int]] = []
    sample = GFlash().sample(Conditions.broadcast(10.0, math.pi / 2, 3), seed=1,
                             progress=lambda done, total: calls.append((done, total)))
    assert isinstance(sample, ShowerSet)
    assert sample.showers.shape == (3, 51, 51, 25) and sample.showers.dtype == np.float32
    assert sample.energy_gev.tolist() == [10.0] * 3 and sample.theta_rad.dtype == np.float32
    assert sample.showers.min() >= 0.0
    assert sample.attrs["source"] == "gflash" and sample.attrs["seed"] == 1
    assert sample.attrs["detector"] == "clic_ecal"
    assert calls == [(1, 3), (2, 3), (3, 3)]  # progress during the run, not only at its end
    # the window is centred on the barycentre: the central cell holds the most energy
    xy = sample.showers.sum(axis=3)
    for shower in xy:
        assert np.unravel_index(np.argmax(shower), shower.shape) in {(25, 25), (24, 25), (25, 24), (24, 24),
                                                                     (26, 25), (25, 26), (26, 26),
                                                                     (24, 26), (26, 24)}
    back = read_showers(write_showers(tmp_path / "gflash.h5", sample))
    np.testing.assert_array_equal(back.showers, sample.showers)
    assert back.attrs["gflash_params"]["sampling_resolution"] == pytest.approx(0.11)


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ValueError, match="energy_gev"):
        simulate_gflash(-1.0, math.pi / 2, n=1)
    with pytest.raises(ValueError, match="theta_rad .* is a value in degrees"):
        simulate_gflash(10.0, 90.0, n=1)  # degrees by mistake
    with pytest.raises(ValueError, match="n=3"):
        simulate_gflash([1.0, 2.0], math.pi / 2, n=3)
    with pytest.raises(OutOfRangeError, match="energy 8000 GeV is outside 0.1-5000 GeV, the range GFlash accepts"):
        simulate_gflash(8000.0, math.pi / 2, n=1)
    with pytest.raises(OutOfRangeError, match="angle 20 deg is outside 30-150 deg, the range GFlash accepts"):
        GFlash().sample(Conditions.broadcast(10.0, math.radians(20.0), 1))


def test_progress_does_not_change_the_showers() -> None:
    """The chunks (at most 1/16 of a request each) depend on the conditions only, not on whether progress is
    asked for, so a seed gives the same showers either way."""
    conditions = Conditions.broadcast(np.linspace(5.0, 40.0, 20), math.pi / 2)
    calls: list[tuple[int, int]] = []
    with_progress = GFlash().sample(conditions, seed=4, progress=lambda done, total: calls.append((done, total)))
    np.testing.assert_array_equal(with_progress.showers, GFlash().sample(conditions, seed=4).showers)
    assert [done for done, _ in calls] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20] and calls[0][1] == 20


def test_simulate_command_with_gflash_engine_writes_native_file(tmp_path):
    from calogen.__main__ import main
    from calogen.io import read_showers

    out = tmp_path / "gflash.h5"
    assert main(["simulate", "--engine", "gflash", "--energy", "20", "--theta", "90", "-n", "3", "--seed", "2",
                 "--out", str(out), "--quiet"]) == 0
    sample = read_showers(out)
    assert sample.attrs["source"] == "gflash" and sample.showers.shape == (3, 51, 51, 25)
    assert 0.01 < float(sample.showers.sum(axis=(1, 2, 3)).mean()) / 20.0 < 0.03  # a few-percent sampling fraction
    assert main(["simulate", "--engine", "gflash", "--particle", "gamma", "--energy", "20", "-n", "1",
                 "--out", str(tmp_path / "x.h5"), "--quiet"]) == 2


def test_simulate_command_checks_gflash_against_its_own_range(tmp_path, capsys) -> None:
    """GFlash accepts 0.1-5000 GeV and 30-150 deg, more than the Monte Carlo's 1-500 GeV, 60-120 deg."""
    from calogen.__main__ import main

    out = tmp_path / "wide.h5"
    assert main(["simulate", "--engine", "gflash", "--energy", "800", "--theta", "40", "-n", "1", "--seed", "1",
                 "--out", str(out), "--quiet"]) == 0
    sample = read_showers(out)
    assert sample.energy_gev.tolist() == [800.0] and sample.theta_rad[0] == pytest.approx(math.radians(40.0))
    capsys.readouterr()
    assert main(["simulate", "--engine", "gflash", "--energy", "8000", "-n", "1", "--out", str(tmp_path / "x.h5"),
                 "--quiet"]) == 2
    assert capsys.readouterr().err == "error: energy 8000 GeV is outside 0.1-5000 GeV, the range GFlash accepts\n"
    assert main(["simulate", "--energy", "800", "-n", "1", "--out", str(tmp_path / "x.h5"), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: energy 800 GeV is outside 1-500 GeV, the range the Monte Carlo "
                                              "accepts; --wide allows 0.01-2000 GeV, 1-179 deg")
    assert not (tmp_path / "x.h5").exists()
