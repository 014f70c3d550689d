"""GFlash: the classical parametrised fast simulation of electromagnetic showers (vectorised, torch).

Reference: G. Grindhammer and S. Peters, "The parameterized simulation of electromagnetic showers in
homogeneous and sampling calorimeters", hep-ex/0001020 (below "GP"), with the constants of the Geant4
implementation (G4GFlashHomoShowerParameterisation / GFlashSamplingShowerParameterisation, below "G4").

Per shower, the recipe is:

1. Longitudinal profile ``dE/dt = E beta (beta t)^(alpha-1) exp(-beta t) / Gamma(alpha)`` with ``t`` in
   radiation lengths along the shower axis, ``T = (alpha - 1) / beta`` the depth of the maximum.
   ``ln T`` and ``ln alpha`` are correlated Gaussians whose means, widths and correlation depend on
   ``y = E / E_c`` and on the effective material of the stack (sampling corrections with ``F_S`` and
   ``e_hat``, GP section 4).
2. The energy is carried by ``N`` spots (GP eq. 33: ``N = 10.3 / c E^0.959`` for sampling calorimeters).
   Each spot gets a depth ``t`` drawn from the shower's own gamma profile, a radius from the two-component
   radial profile ``f(r) = p f_C(r) + (1 - p) f_T(r)`` with ``f_i(r) = 2 r R_i^2 / (r^2 + R_i^2)^2``
   (``r`` in effective Moliere radii; ``R_C``, ``R_T``, ``p`` functions of ``tau``, ``E`` and ``Z``, GP
   section 3.2 and 4.3), a uniform azimuth, and an energy ``E / N`` smeared with a gamma distribution of
   variance ``c^2 dE`` (sampling fluctuations; G4 ``ApplySampling``).
3. Spots are placed in the detector: the axis enters the front face at a point uniform within one cell with
   direction (0, cos theta, sin theta) (theta = pi/2 is normal incidence; theta < pi/2 tilts towards +y, as
   :func:`calogen.simulation.mc.simulate`); the depth in radiation lengths is converted to z in mm through the real slab
   stack; each spot's energy is assigned to the readout layer whose silicon plane is nearest in radiation
   lengths and converted to the energy seen by the silicon with that layer's local sampling fraction
   ``e_hat x (mip loss in the silicon) / (mip loss in the layer's share of the stack)``.
4. The window (nx, ny) cells x all layers is centred on the energy barycentre, as in the Monte Carlo.

Showers are therefore in the units of the Monte Carlo: GeV deposited in the silicon of each cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import torch
from scipy import special

from calogen.conditions import as_condition_array
from calogen.detector import Detector, Material, get_detector
from calogen.io import ShowerSet

__all__ = [
    "ENERGY_RANGE_GEV",
    "THETA_RANGE_RAD",
    "GFlashParams",
    "LongitudinalParameters",
    "SamplingConstants",
    "Spots",
    "expected_sampling_fraction",
    "layer_energy_fractions",
    "longitudinal_parameters",
    "mean_longitudinal_profile",
    "mip_dedx_mev_cm2_g",
    "sample_longitudinal",
    "sample_spots",
    "sampling_constants",
    "simulate",
    "simulate_gflash",
]

ENERGY_RANGE_GEV = (0.1, 5000.0)  # where the parametrisation is used; GP fits cover ~1 GeV - 1 TeV
THETA_RANGE_RAD = (math.radians(30.0), math.radians(150.0))  # at most 60 deg from normal incidence
_ELECTRON_MASS_MEV = 0.51099895  # CODATA
_MUON_MASS_MEV = 105.6583755  # CODATA; the PDG minimum-ionisation tables are for muons
_BETHE_K = 0.307075  # 4 pi N_A r_e^2 m_e c^2, MeV cm^2 / mol (PDG eq. 34.5)
_MIP_BETA_GAMMA = 3.5  # near the minimum of ionisation (PDG fig. 34.2)
_MAX_SPOTS_PER_CHUNK = 2_000_000  # spots held in memory at once
_EPS = 1e-6


@dataclass(frozen=True)
class GFlashParams:
    """Every constant of the parametrisation, with its source (GP = hep-ex/0001020, G4 = Geant4 GFlash).

    Energies in GeV unless named otherwise; radii in units of the effective Moliere radius.
    """

    # --- homogeneous longitudinal means, y = E / E_c (G4 GFlashHomoShowerParameterisation; GP eq. 9-10
    # has -0.858 and 0.21 + (0.492 + 2.38/Z) ln y)
    t_hom_1: float = -0.812  # T_hom = ln y + t_hom_1
    alpha_hom_1: float = 0.81  # alpha_hom = a1 + (a2 + a3 / Z) ln y
    alpha_hom_2: float = 0.458
    alpha_hom_3: float = 2.26
    # --- homogeneous fluctuations (GP eq. 11-13): sigma = 1 / (s1 + s2 ln y), rho = r1 + r2 ln y
    sigma_ln_t_hom_1: float = -1.4
    sigma_ln_t_hom_2: float = 1.26
    sigma_ln_alpha_hom_1: float = -0.58
    sigma_ln_alpha_hom_2: float = 0.86
    rho_hom_1: float = 0.705
    rho_hom_2: float = -0.023
    # --- sampling corrections of the means (GP eq. 24-25; the G4 tuning GFlashSamplingShowerTuning has
    # -0.55, -0.69 and -0.476 instead):
    # T_sam = T_hom + t_sam_1 / F_S + t_sam_2 (1 - e_hat), alpha_sam = alpha_hom + alpha_sam_1 / F_S
    t_sam_1: float = -0.59
    t_sam_2: float = -0.53
    alpha_sam_1: float = -0.444
    # --- sampling fluctuations (GP eq. 26-28, same in G4)
    sigma_ln_t_sam_1: float = -2.5
    sigma_ln_t_sam_2: float = 1.25
    sigma_ln_alpha_sam_1: float = -0.82
    sigma_ln_alpha_sam_2: float = 0.79
    rho_sam_1: float = 0.784
    rho_sam_2: float = -0.023
    # --- limits of G4: sigma <= 0.5; individual T >= 1 X0, alpha >= 1.1; mean T >= 0.3 X0, mean alpha >= 1.1
    sigma_max: float = 0.5
    t_min: float = 1.0
    alpha_min: float = 1.1
    t_mean_min: float = 0.3
    alpha_mean_min: float = 1.1
    # --- e_hat = e/mip = 1 / (1 + ehat_slope (Z_passive - Z_active)) (GP eq. 21)
    ehat_slope: float = 0.007
    # --- radial core R_C = z1 + z2 tau, z1 = rc1 + rc2 ln E, z2 = rc3 + rc4 Z (GP eq. 18)
    rc_1: float = 0.0251
    rc_2: float = 0.00319
    rc_3: float = 0.1162
    rc_4: float = -0.000381
    # --- radial tail R_T = k1 (exp(k3 (tau - k2)) + exp(k4 (tau - k2))), k1 = rt1 + rt2 Z, k2 = rt3,
    # k3 = rt4, k4 = rt5 + rt6 ln E (GP eq. 19; rt6 as in the G4 homogeneous tuning)
    rt_1: float = 0.659
    rt_2: float = -0.00309
    rt_3: float = 0.645
    rt_4: float = -2.59
    rt_5: float = 0.3585
    rt_6: float = 0.0412
    # --- core weight p = p1 exp((p2 - tau)/p3 - exp((p2 - tau)/p3)), p1 = pw1 + pw2 Z, p2 = pw3 + pw4 Z,
    # p3 = pw5 + pw6 ln E (GP eq. 20)
    pw_1: float = 2.632
    pw_2: float = -0.00094
    pw_3: float = 0.401
    pw_4: float = 0.00187
    pw_5: float = 1.313
    pw_6: float = -0.0686
    # --- radial sampling corrections (GP eq. 29-31, values of G4 GFlashSamplingShowerTuning):
    # R_C += rc_sam_1 (1 - e_hat) + rc_sam_2 / F_S exp(-tau)
    # R_T += rt_sam_1 (1 - e_hat) + rt_sam_2 / F_S exp(-tau)
    # p   += (1 - e_hat) (pw_sam_1 + pw_sam_2 / F_S exp(-(tau - 1)^2))
    rc_sam_1: float = -0.0203
    rc_sam_2: float = 0.0397
    rt_sam_1: float = -0.14
    rt_sam_2: float = -0.495
    pw_sam_1: float = 0.348
    pw_sam_2: float = -0.642
    radius_min: float = 1e-3  # floor of R_C and R_T (keeps the corrected radii positive)
    # --- spots: sampling N = spot_sam_1 / c E^spot_sam_2 (GP eq. 33), c = sampling resolution, GeV^1/2
    # (G4 SamplingResolution = 0.11); homogeneous N = spot_hom_1 ln(Z) E^spot_hom_2 (GP eq. 32)
    spot_sam_1: float = 10.3
    spot_sam_2: float = 0.959
    sampling_resolution: float = 0.11
    spot_hom_1: float = 93.0
    spot_hom_2: float = 0.876

    def to_dict(self) -> dict[str, float]:
        """JSON-able dict of all constants."""
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class SamplingConstants:
    """Effective-medium constants of a detector for GFlash (GP section 4), and its layer binning.

    Effective quantities are mass-weighted over the whole slab stack (``Detector.effective_material``).
    ``z_active``: mass-weighted Z of the sensitive slabs; ``z_passive``: Z of the passive slabs weighted by
    their radiation lengths (the absorber where the shower develops and its soft photons are absorbed).
    ``period_mm``: mean thickness of one sampling layer, depth / n_layers; ``f_s = x0_eff_mm / period_mm``.
    ``mip_fraction``: minimum-ionising energy loss in the sensitive slabs over the whole stack (Bethe);
    ``sampling_fraction = e_hat x mip_fraction`` (energy seen in the silicon / energy deposited).
    ``layer_sampling_fraction`` (n_layers,): the same, local to each layer's share of the stack.
    ``layer_edges_mm`` (n_layers + 1,): z of the boundaries of each layer's share (midway, in radiation
    lengths, between consecutive sensitive planes; 0 and the stack depth at the ends).
    ``slab_bounds_mm`` / ``slab_bounds_x0`` (n_slabs + 1,): slab boundaries in mm and in cumulative
    radiation lengths at normal incidence. ``homogeneous``: every slab is sensitive (no sampling
    corrections, sampling fraction 1).
    """

    z_eff: float
    x0_eff_mm: float  # mm
    ec_eff_mev: float  # MeV
    rm_eff_mm: float  # mm
    z_active: float
    z_passive: float
    period_mm: float  # mm
    f_s: float
    e_hat: float
    mip_fraction: float
    sampling_fraction: float
    layer_sampling_fraction: tuple[float, ...]
    layer_edges_mm: tuple[float, ...]
    slab_bounds_mm: tuple[float, ...]
    slab_bounds_x0: tuple[float, ...]
    homogeneous: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (scalars and the per-layer sampling fractions)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("slab_bounds_mm", "slab_bounds_x0")}
        out["layer_sampling_fraction"] = list(self.layer_sampling_fraction)
        out["layer_edges_mm"] = list(self.layer_edges_mm)
        return out


def mip_dedx_mev_cm2_g(material: Material, beta_gamma: float = _MIP_BETA_GAMMA) -> float:
    """Mean energy loss of a minimum-ionising muon, MeV cm^2/g (Bethe, PDG eq. 34.5, no density effect).

    The density correction, a few percent at beta gamma = 3.5, largely cancels in the ratios used here.
    """
    bg2 = beta_gamma * beta_gamma
    beta2 = bg2 / (1.0 + bg2)
    gamma = math.sqrt(1.0 + bg2)
    ratio = _ELECTRON_MASS_MEV / _MUON_MASS_MEV
    w_max = 2.0 * _ELECTRON_MASS_MEV * bg2 / (1.0 + 2.0 * gamma * ratio + ratio * ratio)
    i_mev = material.mean_excitation_ev * 1e-6
    log_term = 0.5 * math.log(2.0 * _ELECTRON_MASS_MEV * bg2 * w_max / (i_mev * i_mev))
    return _BETHE_K * material.z_over_a / beta2 * (log_term - beta2)


def sampling_constants(
    detector: Detector | str | None = None, params: GFlashParams | None = None
) -> SamplingConstants:
    """GFlash effective-medium and sampling constants of ``detector`` (default clic_ecal).

    ``params`` supplies the e_hat slope (default :class:`GFlashParams`).
    """
    det = get_detector(detector)
    eff = det.effective_material()
    slabs = det.slabs
    homogeneous = all(s.sensitive for s in slabs)
    sens = [s for s in slabs if s.sensitive]
    passive = [s for s in slabs if not s.sensitive]
    mass_sens = sum(s.thickness_mm * s.material.density_g_cm3 for s in sens)
    z_active = sum(s.thickness_mm * s.material.density_g_cm3 * s.material.z_eff for s in sens) / mass_sens
    if passive:
        x0_pass = [s.thickness_mm / s.material.radiation_length_mm for s in passive]
        z_passive = sum(w * s.material.z_eff for w, s in zip(x0_pass, passive)) / sum(x0_pass)
    else:
        z_passive = z_active
    slope = (params or GFlashParams()).ehat_slope
    e_hat = 1.0 if homogeneous else 1.0 / (1.0 + slope * (z_passive - z_active))
    period = det.depth_mm / det.n_layers
    x0_eff = float(eff["radiation_length_mm"])

    # cumulative radiation lengths and minimum-ionising losses along z at the slab boundaries
    z_b = np.asarray(det.boundaries_mm, dtype=np.float64)
    dt = np.array([s.thickness_mm / s.material.radiation_length_mm for s in slabs])
    dmip = np.array([0.1 * s.thickness_mm * s.material.density_g_cm3 * mip_dedx_mev_cm2_g(s.material)
                     for s in slabs])
    t_b = np.concatenate(([0.0], np.cumsum(dt)))
    m_b = np.concatenate(([0.0], np.cumsum(dmip)))
    sens_idx = [i for i, s in enumerate(slabs) if s.sensitive]
    t_centre = np.array([0.5 * (t_b[i] + t_b[i + 1]) for i in sens_idx])
    t_edges = np.concatenate(([0.0], 0.5 * (t_centre[1:] + t_centre[:-1]), [t_b[-1]]))
    z_edges = np.interp(t_edges, t_b, z_b)
    z_edges[0], z_edges[-1] = 0.0, z_b[-1]
    m_edges = np.interp(z_edges, z_b, m_b)
    mip_sens = dmip[sens_idx]
    mip_fraction = float(mip_sens.sum() / m_b[-1])
    layer_sf = e_hat * mip_sens / np.diff(m_edges)
    return SamplingConstants(
        z_eff=float(eff["z_eff"]),
        x0_eff_mm=x0_eff,
        ec_eff_mev=float(eff["critical_energy_mev"]),
        rm_eff_mm=float(eff["moliere_radius_mm"]),
        z_active=float(z_active),
        z_passive=float(z_passive),
        period_mm=float(period),
        f_s=x0_eff / period,
        e_hat=float(e_hat),
        mip_fraction=mip_fraction,
        sampling_fraction=float(e_hat * mip_fraction),
        layer_sampling_fraction=tuple(float(v) for v in layer_sf),
        layer_edges_mm=tuple(float(v) for v in z_edges),
        slab_bounds_mm=tuple(float(v) for v in z_b),
        slab_bounds_x0=tuple(float(v) for v in t_b),
        homogeneous=homogeneous,
    )


# ---------------------------------------------------------------- longitudinal profile


class LongitudinalParameters(NamedTuple):
    """Distribution of (ln T, ln alpha) of individual showers; arrays of the energies' shape (float64).

    T in radiation lengths. ``mean_ln_t``, ``mean_ln_alpha``: Gaussian means; ``sigma_ln_t``,
    ``sigma_ln_alpha``: widths; ``rho``: correlation of ln T and ln alpha.
    """

    mean_ln_t: npt.NDArray[np.float64]
    mean_ln_alpha: npt.NDArray[np.float64]
    sigma_ln_t: npt.NDArray[np.float64]
    sigma_ln_alpha: npt.NDArray[np.float64]
    rho: npt.NDArray[np.float64]


def _sigma(a: float, b: float, ln_y: npt.NDArray[np.float64], sigma_max: float) -> npt.NDArray[np.float64]:
    """1 / (a + b ln y), capped at sigma_max (also where the denominator is not positive), as in G4."""
    denom = a + b * ln_y
    safe = np.where(denom > 1.0 / sigma_max, denom, 1.0 / sigma_max)
    return 1.0 / safe


def longitudinal_parameters(
    energy_gev: npt.ArrayLike, constants: SamplingConstants, params: GFlashParams | None = None
) -> LongitudinalParameters:
    """Means, widths and correlation of ln T and ln alpha at ``energy_gev`` (GP eq. 9-13, 24-28)."""
    p = params or GFlashParams()
    energy = np.asarray(energy_gev, dtype=np.float64)
    ln_y = np.log(energy * 1000.0 / constants.ec_eff_mev)
    z = constants.z_eff
    t_mean = p.t_hom_1 + ln_y
    alpha_mean = p.alpha_hom_1 + (p.alpha_hom_2 + p.alpha_hom_3 / z) * ln_y
    if constants.homogeneous:
        sig_t = _sigma(p.sigma_ln_t_hom_1, p.sigma_ln_t_hom_2, ln_y, p.sigma_max)
        sig_a = _sigma(p.sigma_ln_alpha_hom_1, p.sigma_ln_alpha_hom_2, ln_y, p.sigma_max)
        rho = p.rho_hom_1 + p.rho_hom_2 * ln_y
    else:
        t_mean = t_mean + p.t_sam_1 / constants.f_s + p.t_sam_2 * (1.0 - constants.e_hat)
        alpha_mean = alpha_mean + p.alpha_sam_1 / constants.f_s
        sig_t = _sigma(p.sigma_ln_t_sam_1, p.sigma_ln_t_sam_2, ln_y, p.sigma_max)
        sig_a = _sigma(p.sigma_ln_alpha_sam_1, p.sigma_ln_alpha_sam_2, ln_y, p.sigma_max)
        rho = p.rho_sam_1 + p.rho_sam_2 * ln_y
    return LongitudinalParameters(
        mean_ln_t=np.log(np.maximum(t_mean, p.t_mean_min)),
        mean_ln_alpha=np.log(np.maximum(alpha_mean, p.alpha_mean_min)),
        sigma_ln_t=sig_t,
        sigma_ln_alpha=sig_a,
        rho=np.clip(rho, -1.0, 1.0),
    )


def sample_longitudinal(
    energy_gev: torch.Tensor,
    constants: SamplingConstants,
    params: GFlashParams | None = None,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Individual profile parameters (T, alpha), each float64 (B,), T in radiation lengths.

    ln T = <ln T> + sigma_T (c1 z1 + c2 z2), ln alpha = <ln alpha> + sigma_a (c1 z1 - c2 z2) with
    c1 = sqrt((1 + rho) / 2), c2 = sqrt((1 - rho) / 2) and standard normal z1, z2: correlation rho (G4).
    T and alpha are floored at params.t_min and params.alpha_min.
    """
    p = params or GFlashParams()
    dev = energy_gev.device
    lp = longitudinal_parameters(energy_gev.detach().cpu().numpy(), constants, p)
    as_t = {k: torch.as_tensor(v, dtype=torch.float64, device=dev) for k, v in lp._asdict().items()}
    normals = torch.randn((2, energy_gev.shape[0]), generator=generator, device=dev, dtype=torch.float64)
    c1 = torch.sqrt((1.0 + as_t["rho"]) / 2.0)
    c2 = torch.sqrt((1.0 - as_t["rho"]) / 2.0)
    ln_t = as_t["mean_ln_t"] + as_t["sigma_ln_t"] * (c1 * normals[0] + c2 * normals[1])
    ln_a = as_t["mean_ln_alpha"] + as_t["sigma_ln_alpha"] * (c1 * normals[0] - c2 * normals[1])
    return torch.exp(ln_t).clamp_min(p.t_min), torch.exp(ln_a).clamp_min(p.alpha_min)


def _gauss_hermite_profiles(
    energy_gev: float, constants: SamplingConstants, params: GFlashParams, n_quad: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(alpha, beta, weight) of an n_quad^2 Gauss-Hermite grid over the (ln T, ln alpha) distribution."""
    lp = longitudinal_parameters(energy_gev, constants, params)
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_quad)
    z1, z2 = np.meshgrid(nodes, nodes, indexing="ij")
    w = np.outer(weights, weights).ravel() / (2.0 * math.pi)
    c1, c2 = math.sqrt((1.0 + float(lp.rho)) / 2.0), math.sqrt((1.0 - float(lp.rho)) / 2.0)
    tmax = np.exp(float(lp.mean_ln_t) + float(lp.sigma_ln_t) * (c1 * z1 + c2 * z2)).ravel()
    alpha = np.exp(float(lp.mean_ln_alpha) + float(lp.sigma_ln_alpha) * (c1 * z1 - c2 * z2)).ravel()
    tmax, alpha = np.maximum(tmax, params.t_min), np.maximum(alpha, params.alpha_min)
    return alpha, (alpha - 1.0) / tmax, w / w.sum()


def mean_longitudinal_profile(
    t_x0: npt.ArrayLike,
    energy_gev: float,
    constants: SamplingConstants,
    params: GFlashParams | None = None,
    *,
    n_quad: int = 16,
) -> npt.NDArray[np.float64]:
    """Mean (1/E) dE/dt at depths ``t_x0`` (radiation lengths along the axis), averaged over the shower
    fluctuations of (ln T, ln alpha) with Gauss-Hermite quadrature; same shape as ``t_x0``, 1/X0."""
    p = params or GFlashParams()
    alpha, beta, w = _gauss_hermite_profiles(energy_gev, constants, p, n_quad)
    t = np.asarray(t_x0, dtype=np.float64)[..., None]
    log_pdf = (alpha - 1.0) * np.log(np.maximum(beta * t, 1e-300)) - beta * t + np.log(beta) - special.gammaln(alpha)
    return (np.exp(log_pdf) * w).sum(axis=-1)


def layer_energy_fractions(
    energy_gev: float,
    constants: SamplingConstants,
    params: GFlashParams | None = None,
    *,
    theta_rad: float = math.pi / 2,
    n_quad: int = 16,
) -> npt.NDArray[np.float64]:
    """Mean fraction of the primary energy deposited in each layer's share of the stack, (n_layers,).

    Uses the fluctuation-averaged longitudinal profile along an axis at ``theta_rad`` (lateral spread
    neglected); the remainder 1 - sum leaks out of the back.
    """
    p = params or GFlashParams()
    alpha, beta, w = _gauss_hermite_profiles(energy_gev, constants, p, n_quad)
    t_edges_normal = np.interp(constants.layer_edges_mm, constants.slab_bounds_mm, constants.slab_bounds_x0)
    t_edges = t_edges_normal / max(math.sin(theta_rad), _EPS)
    cdf = (special.gammainc(alpha[None, :], beta[None, :] * t_edges[:, None]) * w).sum(axis=1)
    return np.diff(cdf)


def expected_sampling_fraction(
    energy_gev: float,
    detector: Detector | str | None = None,
    params: GFlashParams | None = None,
    *,
    theta_rad: float = math.pi / 2,
) -> float:
    """Expected mean (energy in the silicon) / (primary energy) of GFlash showers, rear leakage included."""
    constants = sampling_constants(detector, params)
    fractions = layer_energy_fractions(energy_gev, constants, params, theta_rad=theta_rad)
    return float((fractions * np.asarray(constants.layer_sampling_fraction)).sum())


# ---------------------------------------------------------------- spots


class Spots(NamedTuple):
    """Energy spots of a batch of B showers (S spots in all), on one device.

    shower: int64 (S,) index of the shower; t_x0: (S,) depth along the axis, radiation lengths;
    r_rm: (S,) distance from the axis, effective Moliere radii; phi: (S,) azimuth, rad;
    energy_gev: (S,) deposited energy, GeV (before the sampling fraction);
    tmax_x0, alpha: float64 (B,) the individual profile parameters of each shower.
    """

    shower: torch.Tensor
    t_x0: torch.Tensor
    r_rm: torch.Tensor
    phi: torch.Tensor
    energy_gev: torch.Tensor
    tmax_x0: torch.Tensor
    alpha: torch.Tensor


def _n_spots(
    energy_gev: npt.NDArray[np.float64], constants: SamplingConstants, p: GFlashParams
) -> npt.NDArray[np.int64]:
    """Number of spots per shower (at least one), int64 of the energies' shape."""
    if constants.homogeneous:
        n = p.spot_hom_1 * math.log(constants.z_eff) * energy_gev**p.spot_hom_2  # GP eq. 32
    else:
        n = p.spot_sam_1 / p.sampling_resolution * energy_gev**p.spot_sam_2  # GP eq. 33
    return np.maximum(np.rint(n), 1).astype(np.int64)


def _radial_parameters(
    tau: torch.Tensor, ln_e: torch.Tensor, constants: SamplingConstants, p: GFlashParams
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(R_C, R_T, p) in Moliere radii at tau = t / T for log energies ln_e (GeV) (GP eq. 18-20, 29-31)."""
    z = constants.z_eff
    r_core = (p.rc_1 + p.rc_2 * ln_e) + (p.rc_3 + p.rc_4 * z) * tau
    k1, k2, k3, k4 = p.rt_1 + p.rt_2 * z, p.rt_3, p.rt_4, p.rt_5 + p.rt_6 * ln_e
    r_tail = k1 * (torch.exp(k3 * (tau - k2)) + torch.exp(k4 * (tau - k2)))
    p1, p2, p3 = p.pw_1 + p.pw_2 * z, p.pw_3 + p.pw_4 * z, p.pw_5 + p.pw_6 * ln_e
    x = (p2 - tau) / p3
    weight = p1 * torch.exp(x - torch.exp(x))
    if not constants.homogeneous:
        one_minus_ehat = 1.0 - constants.e_hat
        r_core = r_core + p.rc_sam_1 * one_minus_ehat + p.rc_sam_2 / constants.f_s * torch.exp(-tau)
        r_tail = r_tail + p.rt_sam_1 * one_minus_ehat + p.rt_sam_2 / constants.f_s * torch.exp(-tau)
        weight = weight + one_minus_ehat * (p.pw_sam_1 + p.pw_sam_2 / constants.f_s * torch.exp(-(tau - 1.0) ** 2))
    return r_core.clamp_min(p.radius_min), r_tail.clamp_min(p.radius_min), weight.clamp(0.0, 1.0)


def _gamma(shape: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Gamma(shape, scale 1) variates, same shape and device; seeded by ``generator``.

    torch.distributions.Gamma draws from the global stream only; its sampler ``torch._standard_gamma``
    takes a generator, which keeps every shower reproducible from its seed.
    """
    return torch._standard_gamma(shape, generator=generator)


def sample_spots(
    energy_gev: torch.Tensor,
    constants: SamplingConstants,
    params: GFlashParams | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Spots:
    """Spots of B showers of primary energies ``energy_gev`` (B,) GeV, on the energies' device.

    Depth: gamma(alpha_i) / beta_i of the shower's own profile. Radius: core with probability p(tau),
    else tail; r = R sqrt(U / (1 - U)) (inverse of the cumulative of f_i). tau = t / <t>_i x <t> / T
    (the individual centre of gravity <t>_i = T_i alpha_i / (alpha_i - 1) scaled to the mean shape, G4
    ComputeTau). Energy: E / N each, gamma-smeared with variance c^2 E / N (sampling calorimeters).
    """
    p = params or GFlashParams()
    dev = energy_gev.device
    energy64 = energy_gev.to(torch.float64)
    tmax, alpha = sample_longitudinal(energy64, constants, p, generator=generator)
    beta = (alpha - 1.0) / tmax
    e_np = energy64.cpu().numpy()
    n_spots = torch.as_tensor(_n_spots(e_np, constants, p), device=dev)
    shower = torch.repeat_interleave(torch.arange(energy_gev.shape[0], device=dev), n_spots)
    n_total = int(shower.shape[0])
    f32 = torch.float32

    alpha_s = alpha[shower].to(f32)
    t = _gamma(alpha_s, generator) / beta[shower].to(f32)
    mean_alpha = torch.as_tensor(np.exp(longitudinal_parameters(e_np, constants, p).mean_ln_alpha), device=dev)
    tau_scale = ((alpha - 1.0) / (alpha * tmax) * mean_alpha / (mean_alpha - 1.0)).to(f32)
    tau = t * tau_scale[shower]
    ln_e = torch.log(energy64).to(f32)[shower]
    r_core, r_tail, weight = _radial_parameters(tau, ln_e, constants, p)
    u = torch.rand((3, n_total), generator=generator, device=dev, dtype=f32)
    radius_scale = torch.where(u[0] < weight, r_core, r_tail)
    u_r = u[1].clamp(_EPS, 1.0 - _EPS)
    r = radius_scale * torch.sqrt(u_r / (1.0 - u_r))
    phi = 2.0 * math.pi * u[2]

    e_spot = (energy64 / n_spots.to(torch.float64)).to(f32)[shower]
    if not constants.homogeneous:
        c2 = p.sampling_resolution**2  # GeV: gamma(shape dE / c^2) x c^2 has mean dE, variance c^2 dE
        e_spot = _gamma(e_spot / c2, generator) * c2
    return Spots(shower, t, r, phi, e_spot, tmax, alpha)


# ---------------------------------------------------------------- deposit and window


def _deposit(
    spots: Spots,
    theta_rad: torch.Tensor,
    constants: SamplingConstants,
    det: Detector,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Score spots of B showers into (B, nx, ny, n_layers) float32 silicon energies, GeV, window centred
    on each shower's barycentre cell."""
    dev = spots.t_x0.device
    f32 = torch.float32
    b = theta_rad.shape[0]
    nx, ny = det.n_cells
    n_layers = det.n_layers
    cell = det.cell_size_mm
    t_b = torch.as_tensor(constants.slab_bounds_x0, device=dev, dtype=f32)
    z_b = torch.as_tensor(constants.slab_bounds_mm, device=dev, dtype=f32)
    x0_slab = (z_b[1:] - z_b[:-1]) / (t_b[1:] - t_b[:-1]).clamp_min(1e-12)  # mm per radiation length
    z_edges = torch.as_tensor(constants.layer_edges_mm, device=dev, dtype=f32)
    layer_sf = torch.as_tensor(constants.layer_sampling_fraction, device=dev, dtype=f32)

    sin_t = torch.sin(theta_rad).to(f32)
    cos_t = torch.cos(theta_rad).to(f32)
    cot_t = cos_t / sin_t
    entry = torch.rand((b, 2), generator=generator, device=dev, dtype=f32) * cell  # uniform within a cell
    s = spots.shower
    sin_s, cos_s = sin_t[s], cos_t[s]
    # axis point: radiation lengths along the axis -> normal-incidence radiation lengths -> z through the stack
    t_normal = spots.t_x0 * sin_s
    slab = (torch.searchsorted(t_b, t_normal, right=True) - 1).clamp_(0, t_b.shape[0] - 2)
    z_axis = z_b[slab] + (t_normal - t_b[slab]) * x0_slab[slab]
    # lateral offset in the plane normal to the axis u = (0, cos, sin): e1 = (1, 0, 0), e2 = (0, sin, -cos)
    r_mm = spots.r_rm * constants.rm_eff_mm
    off1 = r_mm * torch.cos(spots.phi)
    off2 = r_mm * torch.sin(spots.phi)
    ix = torch.floor((entry[:, 0][s] + off1) / cell)
    iy = torch.floor((entry[:, 1][s] + z_axis * cot_t[s] + off2 * sin_s) / cell)
    z = (z_axis - off2 * cos_s).clamp_min_(0.0)
    layer = torch.searchsorted(z_edges, z, right=True) - 1
    inside = layer < n_layers  # beyond the stack: leaked out of the back
    visible = spots.energy_gev * layer_sf[layer.clamp_(max=n_layers - 1)]
    visible = torch.where(inside, visible, torch.zeros_like(visible))

    # window centred on the energy barycentre cell (rounded mean cell index, as calogen.simulation.mc)
    e_sum = torch.zeros(b, device=dev, dtype=f32).index_add_(0, s, visible)
    bx = torch.zeros(b, device=dev, dtype=f32).index_add_(0, s, visible * ix)
    by = torch.zeros(b, device=dev, dtype=f32).index_add_(0, s, visible * iy)
    safe = e_sum.clamp_min(1e-30)
    cx = torch.where(e_sum > 0, torch.round(bx / safe), torch.zeros_like(bx)) - nx // 2
    cy = torch.where(e_sum > 0, torch.round(by / safe), torch.zeros_like(by)) - ny // 2
    wx = (ix - cx[s]).long()
    wy = (iy - cy[s]).long()
    keep = inside & (wx >= 0) & (wx < nx) & (wy >= 0) & (wy < ny)
    flat = ((s * nx + wx) * ny + wy) * n_layers + layer
    grid = torch.zeros(b * nx * ny * n_layers, device=dev, dtype=f32)
    grid.index_add_(0, flat[keep], visible[keep])
    return grid.view(b, nx, ny, n_layers)  # (B, X, Y, L)


def simulate_gflash(
    energy_gev: float | npt.ArrayLike,
    theta_rad: float | npt.ArrayLike,
    *,
    n: int | None = None,
    detector: Detector | str | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    params: GFlashParams | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ShowerSet:
    """Simulate electron showers with GFlash.

    Args:
        energy_gev: primary energy, GeV; a number or (n,) array, within ENERGY_RANGE_GEV (0.1-5000 GeV).
        theta_rad: polar angle, radians (pi/2 = normal incidence, tilt in the y-z plane); number or (n,)
            array within THETA_RANGE_RAD (30-150 deg).
        n: number of showers (default: the length of the arrays).
        detector: Detector, name ("clic_ecal") or TOML path; default clic_ecal.
        seed: seed of the torch.Generator; the same seed on the same device gives the same showers.
        device: "cpu", "cuda", or a torch.device.
        params: the parametrisation constants (default :class:`GFlashParams`).
        progress: callback progress(done, total) after each chunk of showers.

    Returns:
        ShowerSet: showers float32 (n, nx, ny, n_layers), GeV seen by the silicon of each cell, in the
        readout window centred on the barycentre; attrs source "gflash", particle "e-", detector, seed,
        device, the constants ("gflash_params") and the detector's sampling constants ("gflash_constants").
    """
    from calogen import __version__

    det = get_detector(detector)
    p = params or GFlashParams()
    energy = as_condition_array(energy_gev, n, "energy_gev")
    theta = as_condition_array(theta_rad, energy.size if n is None else n, "theta_rad")
    if energy.size != theta.size:
        energy = as_condition_array(energy, theta.size, "energy_gev")
    e_lo, e_hi = ENERGY_RANGE_GEV
    if energy.size == 0:
        raise ValueError("no showers asked for: pass n >= 1 or non-empty energy/theta arrays")
    if not np.all(np.isfinite(energy)) or energy.min() < e_lo or energy.max() > e_hi:
        raise ValueError(
            f"energy_gev in [{energy.min():g}, {energy.max():g}] is outside {e_lo:g}-{e_hi:g} GeV, "
            "the range of the GFlash parametrisation; choose energies inside it"
        )
    t_lo, t_hi = THETA_RANGE_RAD
    if not np.all(np.isfinite(theta)) or theta.min() < t_lo - 1e-9 or theta.max() > t_hi + 1e-9:
        raise ValueError(
            f"theta_rad in [{theta.min():.4f}, {theta.max():.4f}] rad is outside "
            f"{math.degrees(t_lo):.0f}-{math.degrees(t_hi):.0f} deg; give the polar angle in radians "
            "(pi/2 = normal incidence)"
        )
    constants = sampling_constants(det, p)
    dev = torch.device(device)
    gen = torch.Generator(device=dev)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    gen.manual_seed(int(seed))

    n_showers = energy.size
    spots_per_shower = _n_spots(energy, constants, p)
    out = np.zeros((n_showers, *det.shape), dtype=np.float32)
    start = 0
    while start < n_showers:
        stop, total = start + 1, int(spots_per_shower[start])
        while stop < n_showers and total + spots_per_shower[stop] <= _MAX_SPOTS_PER_CHUNK:
            total += int(spots_per_shower[stop])
            stop += 1
        e_t = torch.as_tensor(energy[start:stop], device=dev, dtype=torch.float64)
        th_t = torch.as_tensor(theta[start:stop], device=dev, dtype=torch.float64)
        spots = sample_spots(e_t, constants, p, generator=gen)
        out[start:stop] = _deposit(spots, th_t, constants, det, gen).cpu().numpy()
        start = stop
        if progress is not None:
            progress(start, n_showers)

    attrs = {
        "particle": "e-",
        "source": "gflash",
        "detector": det.name,
        "seed": int(seed),
        "calogen_version": __version__,
        "device": str(dev),
        "gflash_params": p.to_dict(),
        "gflash_constants": constants.to_dict(),
    }
    return ShowerSet(out, energy.astype(np.float32), theta.astype(np.float32), attrs)


simulate = simulate_gflash  # same call as calogen.simulation.mc.simulate, for callers that pick a back-end by module
