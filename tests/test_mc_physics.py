"""Shower physics of the cascade Monte Carlo against the PDG review (Workman et al., Prog. Theor. Exp. Phys.
2022, 083C01, section 34 "Passage of particles through matter": shower maximum, Moliere-radius containment,
critical energy, minimum ionisation) and the measured resolution of silicon-tungsten calorimeters (CALICE,
Nucl. Instrum. Meth. A 608 (2009) 372).

Small samples at low energies in homogeneous blocks keep this under a couple of minutes; tolerances are
set from the statistical spread of these samples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from calogen.detector import get_material, homogeneous_block
from calogen.simulation.mc import simulate

NORMAL = math.pi / 2
W = get_material("W")
X0_MM = W.radiation_length_mm
EC_MEV = 7.97  # PDG critical energy of W
LAYERS_PER_X0 = 2


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def w_block():  # type: ignore[no-untyped-def]
    # 25 X0 of W in 50 layers (0.5 X0 each), cells of R_M / 4
    return homogeneous_block("W", depth_x0=25.0, n_layers=25 * LAYERS_PER_X0)


def _t_max(showers: np.ndarray) -> float:
    """Depth of the maximum (X0) of the mean profile from a gamma-function fit by moments:
    <t> = a/b, var = a/b^2, t_max = (a-1)/b = <t> - var/<t>."""
    profile = showers.sum(axis=(0, 1, 2)).astype(np.float64)
    t = (np.arange(profile.size) + 0.5) / LAYERS_PER_X0
    mean = (profile * t).sum() / profile.sum()
    var = (profile * (t - mean) ** 2).sum() / profile.sum()
    return float(mean - var / mean)


@pytest.fixture(scope="module")
def w_showers(w_block):  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    out = {}
    for particle, energy, n in (("e-", 1.0, 100), ("gamma", 1.0, 100), ("e-", 4.0, 24), ("e-", 16.0, 6)):
        out[(particle, energy)] = simulate(energy, NORMAL, n=n, particle=particle, detector=w_block, seed=7,
                                           return_bookkeeping=True, chunk_energy_gev=1e4, max_chunk_showers=128)
    return out


def test_shower_maximum_grows_with_log_energy(w_showers) -> None:  # type: ignore[no-untyped-def]
    t1 = _t_max(w_showers[("e-", 1.0)][0].showers)
    t4 = _t_max(w_showers[("e-", 4.0)][0].showers)
    t16 = _t_max(w_showers[("e-", 16.0)][0].showers)
    slope = (t16 - t1) / math.log(16.0)
    # statistical error of the slope with these samples ~0.15
    assert 0.7 < slope < 1.3, (t1, t4, t16)
    assert t1 < t4 < t16
    # PDG: t_max = ln(E/Ec) - 0.5 for electrons
    assert t4 == pytest.approx(math.log(4000.0 / EC_MEV) - 0.5, abs=1.0)


def test_photons_start_deeper_than_electrons(w_showers) -> None:  # type: ignore[no-untyped-def]
    dt = _t_max(w_showers[("gamma", 1.0)][0].showers) - _t_max(w_showers[("e-", 1.0)][0].showers)
    # PDG (EGS4 fits): C = +0.5 vs -0.5, 1 X0; Rossi approximation B: 0.5 X0. Statistical error here ~0.2
    assert 0.25 < dt < 1.5, dt


def test_lateral_containment_in_one_moliere_radius(w_showers, w_block) -> None:  # type: ignore[no-untyped-def]
    s = w_showers[("e-", 4.0)][0].showers.astype(np.float64)
    cell = w_block.cell_size_mm
    idx = np.arange(51)
    fractions_1, fractions_2 = [], []
    for shower in s:
        e_xy = shower.sum(axis=2)
        total = e_xy.sum()
        bx = (e_xy.sum(axis=1) * idx).sum() / total
        by = (e_xy.sum(axis=0) * idx).sum() / total
        r = np.hypot(idx[:, None] - bx, idx[None, :] - by) * cell
        fractions_1.append(e_xy[r <= W.moliere_radius_mm].sum() / total)
        fractions_2.append(e_xy[r <= 2 * W.moliere_radius_mm].sum() / total)
    assert np.mean(fractions_1) == pytest.approx(0.90, abs=0.05)  # PDG: ~90% within 1 R_M
    assert np.mean(fractions_2) == pytest.approx(0.95, abs=0.035)  # ~95% within 2 R_M


def test_homogeneous_block_contains_the_shower(w_showers) -> None:  # type: ignore[no-untyped-def]
    for showers, book in w_showers.values():
        np.testing.assert_array_less(book.relative_closure, 1e-4)
        visible = book.deposited_sensitive / book.primary
        assert np.all(visible > 0.9)  # everything is scored; only leakage and sub-cut passive... none here
        assert np.all(book.deposited_passive == 0)


@pytest.fixture(scope="module")
def clic_samples():  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    return {e: simulate(e, NORMAL, n=n, seed=21, return_bookkeeping=True) for e, n in ((2.0, 30), (20.0, 12))}


def test_sampling_fraction_of_the_clic_stack(clic_samples) -> None:  # type: ignore[no-untyped-def]
    sf = {e: float(np.mean(s.showers.sum(axis=(1, 2, 3)) / e)) for e, (s, _) in clic_samples.items()}
    # A 2 GeV shower stays in the 17 thin layers, whose mip fraction is 3.38 % (0.194 MeV in 0.5 mm Si against
    # 5.73 MeV per layer, PDG minimum dE/dx): e/mip 0.64-0.73 (W/Si) gives 2.15-2.45 %. Measured: 2.3 %.
    assert 0.0215 < sf[2.0] < 0.0245
    # at 20 GeV a quarter of the deposit is in the 4.8 mm layers, sampled half as much: about 2.0-2.1 %
    assert 0.019 < sf[20.0] < 0.0225
    assert 0.82 * sf[2.0] < sf[20.0] < sf[2.0]  # falls slowly with energy (thicker W at the back, leakage)


def test_resolution_scales_as_one_over_sqrt_energy(clic_samples) -> None:  # type: ignore[no-untyped-def]
    # weight the 4.8 mm layers twice (the usual calibration of this stack) and look at the stochastic term
    weights = np.r_[np.ones(17), 2.0 * np.ones(8)]
    res = {}
    for e, (s, _) in clic_samples.items():
        signal = (s.showers.sum(axis=(1, 2)) * weights).sum(axis=1)
        res[e] = float(signal.std(ddof=1) / signal.mean())
    stochastic = {e: r * math.sqrt(e) for e, r in res.items()}
    for e, a in stochastic.items():
        assert 0.10 < a < 0.32, (e, a)  # Si-W: ~16-20% / sqrt(E)
    assert 1.8 < res[2.0] / res[20.0] < 5.5  # sqrt(10) = 3.2


def test_bookkeeping_closes_in_the_clic_stack(clic_samples) -> None:  # type: ignore[no-untyped-def]
    for _, book in clic_samples.values():
        assert np.all(book.relative_closure < 1e-4)
        leak = (book.leak_front + book.leak_back + book.leak_side) / book.primary
        assert np.all(leak < 0.1)
