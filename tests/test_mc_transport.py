"""The Monte Carlo's transport models against their sources: Lewis's multiple-scattering moments, Highland's
width, step-length independence, Tsai's screened bremsstrahlung, Sternheimer's density effect, photoelectrons,
and the convergence of the response when every step limit is halved."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from calogen.detector import get_material, homogeneous_block
from calogen.simulation.mc import physics, simulate
from calogen.simulation.mc.constants import ELECTRON_MASS_MEV
from calogen.simulation.mc.cross_sections import brems_integrals, elastic_tables
from calogen.simulation.mc.fluctuations import LANDAU_MODE, landau_table, restricted_landau_loss
from calogen.simulation.mc.particles import rotate
from calogen.simulation.mc.response import mip_sampling_fractions, response_point, step_convergence
from calogen.simulation.mc.stopping import density_correction, density_effect_parameters
from calogen.simulation.mc.transport import Cascade, Geometry, Particles

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def w_cascade() -> Cascade:
    det = homogeneous_block("W", depth_mm=10.0, n_layers=1, n_cells=(5, 5))
    dev = torch.device("cpu")
    geometry = Geometry.from_detector(det, dev, torch.float32)
    tables = physics.build_tables(det, dev, torch.float32)
    return Cascade(geometry, tables, 1, 9, torch.Generator().manual_seed(5))


def _lambda1_mm(material_name: str, t_mev: float) -> float:
    inv, _, _ = elastic_tables(get_material(material_name), np.array([t_mev]))
    return float(1.0 / inv[0])


@pytest.mark.parametrize("t_mev", [0.3, 3.0, 1000.0])
@pytest.mark.parametrize("step_over_lambda1", [0.003, 0.1, 1.0, 5.0])
def test_deflection_has_lewis_mean_for_any_step(w_cascade: Cascade, t_mev: float, step_over_lambda1: float) -> None:
    # Lewis (1950): <cos theta> = exp(-s / lambda_1), whatever the step
    n = 200_000
    s = step_over_lambda1 * _lambda1_mm("W", t_mev)
    cos_t = w_cascade.msc.cos_theta(torch.full((n,), s), torch.zeros(n, dtype=torch.long),
                                    torch.full((n,), t_mev), w_cascade._u).double()
    mean = float((1.0 - cos_t).mean())
    expected = -math.expm1(-step_over_lambda1)
    error = float((1.0 - cos_t).std()) / math.sqrt(n)
    assert mean == pytest.approx(expected, abs=4 * error + 0.01 * expected)


def _deflect(cascade: Cascade, n: int, s: float, t_mev: float, n_steps: int) -> torch.Tensor:
    u = torch.zeros(n, 3)
    u[:, 2] = 1.0
    for _ in range(n_steps):
        cos_t = cascade.msc.cos_theta(torch.full((n,), s / n_steps), torch.zeros(n, dtype=torch.long),
                                      torch.full((n,), t_mev), cascade._u)
        u = rotate(u, cos_t, 2.0 * math.pi * torch.rand(n))
    return torch.acos(u[:, 2].clamp(-1.0, 1.0)).double()


@pytest.mark.parametrize(("t_mev", "step_mm"), [(2.0, 0.01), (10.0, 0.39), (1000.0, 0.39)])
def test_angular_distribution_does_not_depend_on_the_step(w_cascade: Cascade, t_mev: float, step_mm: float) -> None:
    # one step against four quarter steps (0.39 mm = the 0.1 X0 step limit in W; 0.01 mm = 0.2 lambda_1 at
    # 2 MeV): the same distribution of the polar angle
    n = 100_000
    s = step_mm
    one = _deflect(w_cascade, n, s, t_mev, 1)
    four = _deflect(w_cascade, n, s, t_mev, 4)
    for q in (0.25, 0.5, 0.75, 0.9):
        assert float(torch.quantile(four, q)) == pytest.approx(float(torch.quantile(one, q)), rel=0.06), q


def test_width_agrees_with_highland(w_cascade: Cascade) -> None:
    # 1 GeV electrons through 1 X0 of W: the plane-projected angle's width (the Gaussian part, central 98%)
    # against Highland's theta_0 = 13.6 MeV / p sqrt(x/X0) (1 + 0.038 ln(x/X0)), good to 11% (PDG eq. 34.15)
    n = 100_000
    x0 = get_material("W").radiation_length_mm
    theta = _deflect(w_cascade, n, x0, 1000.0, 10)
    phi = 2.0 * math.pi * torch.rand(n, dtype=torch.float64)
    plane = (theta * torch.cos(phi)).numpy()
    lo, hi = np.quantile(plane, [0.01, 0.99])
    core = plane[(plane > lo) & (plane < hi)]
    highland = 13.6 / 1000.0
    assert float(core.std()) == pytest.approx(highland, rel=0.15)


def test_density_effect_follows_sternheimer() -> None:
    # Sternheimer, Berger and Seltzer (1984): tungsten C_bar = 5.4059, silicon 4.4351
    c_w = density_effect_parameters(get_material("W"))[0]
    c_si = density_effect_parameters(get_material("Si"))[0]
    assert c_w == pytest.approx(5.4059, rel=0.005) and c_si == pytest.approx(4.4351, rel=0.005)
    w = get_material("W")
    delta = density_correction(w, np.array([0.5, 1e4]))
    assert delta[0] == 0.0  # below x0 = log10(beta gamma) no correction for an insulator-like medium
    assert delta[1] == pytest.approx(2.0 * math.log(1e4) - c_w, rel=1e-6)  # the asymptotic form above x1


def test_screened_bremsstrahlung() -> None:
    w = get_material("W")
    e = np.array([10.0, 1000.0, 1e5])
    _, soft = brems_integrals(w, e, 1e9)  # no cut: the whole radiative loss
    ratio = soft / ((e + ELECTRON_MASS_MEV) / w.radiation_length_mm)
    # complete screening reached at high energy: -dE/dx = E / X0 (PDG eq. 34.32) within the dropped terms
    assert ratio[2] == pytest.approx(1.0, abs=0.05)
    # screening is incomplete at 10 MeV: the loss falls well below E / X0
    assert ratio[0] < 0.8
    # a 1 GeV electron radiates about 11 photons above 100 keV per X0 (fewer with dielectric suppression)
    photons, _ = brems_integrals(w, np.array([1000.0]), 0.1)
    assert 9.0 < photons[0] * w.radiation_length_mm < 12.0


def test_photoelectron_carries_the_photon_energy_less_the_binding(w_cascade: Cascade) -> None:
    n = 1000
    k = 0.3  # MeV, above the W K edge (69.5 keV)
    photons = Particles(pos=torch.zeros(n, 3) + torch.tensor([0.0, 0.0, 5.0]),
                        dir=torch.tensor([[0.0, 0.0, 1.0]]).repeat(n, 1), energy=torch.full((n,), k),
                        charge=torch.zeros(n), slab=torch.zeros(n, dtype=torch.long),
                        shower=torch.zeros(n, dtype=torch.long))
    w_cascade.pending_charged = []
    w_cascade._photo(photons)
    electrons = Particles.cat(w_cascade.pending_charged)
    w_cascade.pending_charged = []
    assert len(electrons) == n and torch.all(electrons.charge == -1)
    assert torch.allclose(electrons.energy, torch.full((n,), k - 0.069525))
    # Sauter: forward-peaked at this energy, but not along the photon
    cos_t = electrons.dir[:, 2]
    assert 0.2 < float(cos_t.mean()) < 0.9


def _most_probable(values: np.ndarray, width: float) -> float:
    """Peak of a histogram of ``values`` (bins of ``width``), refined by a parabola through the top bins."""
    h, edges = np.histogram(values, bins=np.arange(0.0, float(np.quantile(values, 0.99)), width))
    c = 0.5 * (edges[1:] + edges[:-1])
    k = int(np.argmax(h))
    a, b, _ = np.polyfit(c[k - 3:k + 4], h[k - 3:k + 4], 2)
    return float(-b / (2.0 * a))


def test_restricted_landau_keeps_the_mean_and_peaks_where_landau_does() -> None:
    table = landau_table(torch.device("cpu"))
    lam = table.lam[1:]
    density = torch.diff(table.cdf) / torch.diff(table.lam)
    # Landau's density: peak 0.1806 at lambda = -0.2228
    assert float(lam[int(torch.argmax(density))]) == pytest.approx(LANDAU_MODE, abs=0.01)
    assert float(density.max()) == pytest.approx(0.1806, rel=0.002)
    n = 400_000
    mean, xi, t_up = torch.full((n,), 0.18), torch.full((n,), 0.009), torch.full((n,), 0.4)
    loss = restricted_landau_loss(table, mean, xi, t_up, torch.rand(n, generator=torch.Generator().manual_seed(1)))
    assert float(loss.mean()) == pytest.approx(0.18, rel=2e-3)  # no energy made or lost
    assert float(loss.max()) < 0.18 + 0.4  # no soft collision above T_up
    # the peak lies below the mean by xi (<lambda> - lambda_mode), ln(T_up/xi) - 0.5 for lambda_max >> 1
    assert _most_probable(loss.numpy(), 0.001) == pytest.approx(0.18 - 0.009 * (math.log(0.4 / 0.009) - 0.3),
                                                                 abs=0.003)


def test_mip_peak_in_half_a_millimetre_of_silicon() -> None:
    # Landau-Vavilov-Bichsel most probable loss on the density-effect plateau (PDG eq. 34.12 with
    # delta/2 -> ln(hbar omega_p / I) + ln(beta gamma) - 1/2): Delta_p = xi [ln(2 m c^2 xi / (hbar omega_p)^2) + 0.2],
    # silicon hbar omega_p = 31.05 eV, xi = (K/2) (Z/A) rho x: 0.145 MeV for 0.5 mm
    xi = 0.5 * 0.307075 * (14.0 / 28.0855) * 2.329 * 0.05
    expected = xi * (math.log(2.0 * ELECTRON_MASS_MEV * xi / 31.05e-6**2) + 0.2)
    assert expected == pytest.approx(0.1447, rel=0.005)
    slab = homogeneous_block("Si", depth_mm=0.5, n_layers=1, cell_size_mm=4000.0, n_cells=(1, 1))
    crossings = simulate(2.0, math.pi / 2, n=6000, detector=slab, seed=5, allow_out_of_range=True)
    deposit_mev = crossings.showers.reshape(6000).astype(np.float64) * 1e3
    assert _most_probable(deposit_mev, 0.004) == pytest.approx(expected, rel=0.04)
    # the mean is the restricted loss plus the delta rays that stop in the slab, far above the peak
    assert 0.17 < deposit_mev.mean() < 0.20


def test_response_converges_when_every_step_limit_is_halved() -> None:
    # The full study (python -m calogen.simulation.mc.response ... --step-scale 1 0.5, 10-400 GeV, 100 showers per
    # point) is in the README; here a small seeded sample:
    # each figure moves by less than 0.5 % plus three standard errors of the difference.
    study = step_convergence("e-", 2.0, n=250, seed=3)
    for name, figure in study.items():
        assert abs(figure["change"]) < 0.005 + 3.0 * figure["error"], (name, figure)


def test_a_mip_samples_half_as_much_behind_the_thick_tungsten() -> None:
    """ECalBarrel_o1_v01: 17 layers of 2.40 mm W, then 8 of 4.80 mm, each with 0.50 mm Si, 0.10 mm GroundOrHVMix
    and 0.80 mm siPCBMix: a minimum-ionising particle leaves ~3.3 % of its layer loss in the silicon of a thin
    layer and ~1.8 % in a thick one, which is why the response falls as showers reach deeper with energy."""
    share = mip_sampling_fractions("clic_ecal")
    assert share.shape == (25,)
    assert np.allclose(share[1:17], share[1]) and np.allclose(share[17:], share[17])
    assert 0.031 < share[1] < 0.035 and 0.016 < share[17] < 0.019
    assert share[17] / share[1] == pytest.approx(0.54, abs=0.02)


def test_response_books_where_the_energy_goes() -> None:
    point = response_point("e-", 2.0, n=20, seed=4)
    # the silicon's share of the deposited energy is e/mip (0.5-0.8 in W/Si) times the thin layers' mip share
    assert 0.5 * 0.033 < point.silicon_share < 0.8 * 0.033
    assert 0.0 < point.rear_leakage < 0.01  # a 2 GeV shower is contained in 23 X0
