"""GFlash parameters: the constants of the parametrisation, the effective medium of a detector and the mean
longitudinal profile.

Reference: G. Grindhammer and S. Peters, "The parameterized simulation of electromagnetic showers in
homogeneous and sampling calorimeters", hep-ex/0001020 (below "GP"), with the constants of the Geant4
implementation (G4GFlashHomoShowerParameterisation / GFlashSamplingShowerParameterisation, below "G4").

- :class:`GFlashParams`: every constant, with its source.
- :func:`sampling_constants`: the effective-medium and sampling constants of a detector (GP section 4).
- :func:`longitudinal_parameters`: the distribution of each shower's (ln T, ln alpha) (GP eq. 9-13, 24-28),
  and the fluctuation-averaged profile, layer fractions and sampling fraction built on it.

Energies in GeV (MeV where named), lengths in mm, depths in radiation lengths (X0), radii in Moliere radii.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special

from calogen.detector import Detector, Material, get_detector

__all__ = [
    "GFlashParams",
    "LongitudinalParameters",
    "SamplingConstants",
    "expected_sampling_fraction",
    "layer_energy_fractions",
    "longitudinal_parameters",
    "mean_longitudinal_profile",
    "mip_dedx_mev_cm2_g",
    "sampling_constants",
]

_ELECTRON_MASS_MEV = 0.51099895  # CODATA
_MUON_MASS_MEV = 105.6583755  # CODATA; the PDG minimum-ionisation tables are for muons
_BETHE_K = 0.307075  # 4 pi N_A r_e^2 m_e c^2, MeV cm^2 / mol (PDG eq. 34.5)
_MIP_BETA_GAMMA = 3.5  # near the minimum of ionisation (PDG fig. 34.2)
_MIN_SIN = 1e-6  # keeps the path length through a layer finite at grazing incidence


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
    t_edges = t_edges_normal / max(math.sin(theta_rad), _MIN_SIN)
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
