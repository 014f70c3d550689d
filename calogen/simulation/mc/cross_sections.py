"""Cross sections of photons, electrons and positrons per material (MeV, mm; numpy, float64).

- Pair production: total cross section per atom from the Geant4 parametrisation of L. Urban
  (G4BetheHeitlerModel, valid 1.5 MeV - 100 GeV; (k - 2m)^2 threshold behaviour below 1.5 MeV); above
  100 GeV the complete-screening value 7/9 / (X0 n_atoms) (PDG eq. 34.31) is joined smoothly.
- Compton: Klein-Nishina total cross section per electron times Z (binding ignored).
- Photo-effect: NIST XCOM total attenuation of tungsten minus Klein-Nishina minus pair (coherent
  scattering folded in: treated as absorption), scaled to other elements as (Z/74)^4 per atom. The
  photoelectron (k minus the K- or L-shell binding energy of the material's heaviest element) is transported.
- Bremsstrahlung: Bethe-Heitler with Thomas-Fermi screening (Tsai, Rev. Mod. Phys. 46 (1974) 815, eq. 3.9)
  and dielectric (Ter-Mikaelian) suppression of photons below gamma hbar omega_p (PDG 34.4.5); discrete above
  k_cut, continuous below.
- Delta rays: Moller (e-) and Bhabha (e+) cross sections above T_cut (as G4MollerBhabhaModel).
- Positron annihilation in flight: Heitler cross section per electron.
- Elastic scattering of e+-: screened Rutherford cross section with Moliere's screening angle (Moliere,
  Z. Naturforsch. 3a (1948) 78): the transport mean free path lambda_1 (Lewis, Phys. Rev. 78 (1950) 526) and
  Moliere's chi_c^2 per unit path, for the multiple-scattering model of
  :mod:`calogen.simulation.mc.multiple_scattering`.

Energies are arrays (G,) of photon energy k or kinetic energy T, MeV; macroscopic cross sections come back
as (G,) arrays in 1/mm.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import torch

from calogen.detector import ELEMENTS, Material
from calogen.simulation.mc.constants import ALPHA, AVOGADRO, BARN_MM2, ELECTRON_MASS_MEV, RE_MM, TWOPI_MC2_RE2

__all__ = [
    "annihilation_per_mm",
    "bhabha_per_mm",
    "brems_integrals",
    "brems_shape",
    "brems_z",
    "elastic_tables",
    "moller_per_mm",
    "photo_binding_mev",
    "photon_cross_sections_per_mm",
    "plasma_energy_mev",
    "screening_functions",
]

_TF_RADIUS = 0.88534  # Thomas-Fermi radius a = 0.88534 a_0 Z^(-1/3)
_ArrayT = TypeVar("_ArrayT", npt.NDArray[np.float64], torch.Tensor)

# K- and L1-shell binding energies, MeV (Deslattes et al., Rev. Mod. Phys. 75 (2003) 35; X-ray data booklet)
_SHELL_BINDING_MEV = {"W": (0.069525, 0.012100), "Cu": (0.008979, 0.001096), "Ni": (0.008333, 0.001008),
                      "Fe": (0.007112, 0.000845), "Si": (0.001839, 0.000150), "Pb": (0.088005, 0.015861),
                      "Cl": (0.002822, 0.000270), "Ar": (0.003206, 0.000326), "O": (0.000543, 0.0),
                      "N": (0.000410, 0.0), "C": (0.000284, 0.0), "H": (0.0000136, 0.0), "Br": (0.013474, 0.001782)}

# NIST XCOM total attenuation of tungsten (with coherent), cm^2/g, energies in MeV.
_W_NIST_MEV = np.array([0.02, 0.03, 0.04, 0.05, 0.06, 0.069525, 0.069526, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4,
                        0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0])
_W_NIST_MU_RHO = np.array([65.73, 22.73, 10.67, 5.949, 3.713, 2.552, 11.23, 7.81, 4.438, 1.581, 0.7844,
                           0.3238, 0.1925, 0.1378, 0.1093, 0.08066, 0.06618, 0.05577, 0.05, 0.04433,
                           0.04075, 0.04038, 0.04103])
_W_A = 183.84
_W_Z = 74


def _klein_nishina_per_electron_mm2(k_mev: np.ndarray) -> np.ndarray:
    """Klein-Nishina total cross section per electron, mm^2 (Heitler)."""
    x = k_mev / ELECTRON_MASS_MEV
    x = np.maximum(x, 1e-6)
    one = 1.0 + 2.0 * x
    term = ((1 + x) / x**2) * (2 * (1 + x) / one - np.log(one) / x) + np.log(one) / (2 * x) - (1 + 3 * x) / one**2
    return 2.0 * math.pi * RE_MM**2 * term


def _pair_per_atom_mm2(k_mev: np.ndarray, z: float, x0_g_cm2: float, a: float) -> np.ndarray:
    """Pair-production cross section per atom, mm^2 (Urban parametrisation as in G4BetheHeitlerModel)."""
    m = ELECTRON_MASS_MEV
    k_lim = 1.5
    kk = np.maximum(k_mev, k_lim)
    x = np.log(kk / m)
    a_c = [8.7842e2, -1.9625e3, 1.2949e3, -2.0028e2, 1.2575e1, -2.8333e-1]
    b_c = [-1.0342e1, 1.7692e1, -8.2381, 1.3063, -9.0815e-2, 2.3586e-3]
    c_c = [-4.5263e2, 1.1161e3, -8.6749e2, 2.1773e2, -2.0467e1, 6.5372e-1]
    f1 = sum(c * x**i for i, c in enumerate(a_c))
    f2 = sum(c * x**i for i, c in enumerate(b_c))
    f3 = sum(c * x**i for i, c in enumerate(c_c))
    sigma_ub = (z + 1.0) * (f1 * z + f2 * z * z + f3)  # microbarn
    sigma = np.maximum(sigma_ub, 0.0) * 1e-6 * BARN_MM2
    low = k_mev < k_lim
    ratio = np.clip((k_mev - 2 * m) / (k_lim - 2 * m), 0.0, 1.0)
    sigma = np.where(low, sigma * ratio**2, sigma)
    sigma = np.where(k_mev <= 2 * m, 0.0, sigma)
    # above 100 GeV: join the complete-screening limit 7/9 A/(X0 N_A) (PDG eq. 34.31)
    sigma_inf = (7.0 / 9.0) * a / (x0_g_cm2 * AVOGADRO) * 100.0  # cm^2 -> mm^2
    if not np.any(k_mev > 1e5):
        return sigma
    s100 = _pair_per_atom_mm2(np.array([1e5]), z, x0_g_cm2, a)[0]
    w = np.clip(np.log(k_mev / 1e5) / np.log(10.0), 0.0, 1.0)
    return np.where(k_mev > 1e5, (1 - w) * s100 + w * sigma_inf, sigma)


def _photo_per_atom_mm2(k_mev: np.ndarray, z: int) -> np.ndarray:
    """Photo-effect (plus coherent) cross section per atom, mm^2, anchored to NIST XCOM for tungsten."""
    n_atoms_per_g = AVOGADRO / _W_A
    kn = _klein_nishina_per_electron_mm2(_W_NIST_MEV) * _W_Z * n_atoms_per_g * 0.01  # cm^2/g
    w = ELEMENTS["W"]
    pair = _pair_per_atom_mm2(_W_NIST_MEV, 74, w.radiation_length_g_cm2, _W_A) * n_atoms_per_g * 0.01
    photo_w = np.maximum(_W_NIST_MU_RHO - kn - pair, 1e-6) / n_atoms_per_g * 100.0  # mm^2 per atom
    log_e, log_s = np.log(_W_NIST_MEV), np.log(photo_w)
    lk = np.log(np.maximum(k_mev, 1e-6))
    if z == _W_Z:
        s = np.interp(lk, log_e, log_s)
    else:
        # W curve without the K edge: above 100 keV the table, below a E^-3 power law
        above = _W_NIST_MEV >= 0.1
        s = np.interp(lk, log_e[above], log_s[above])
        s = np.where(k_mev < 0.1, log_s[above][0] - 3.0 * (lk - math.log(0.1)), s)
        s = s + 4.0 * math.log(z / _W_Z)
    # above 5 MeV: photo-effect falls as 1/E
    if np.any(k_mev > 5.0):
        s5 = math.log(_photo_per_atom_mm2(np.array([5.0]), z)[0])
        s = np.where(k_mev > 5.0, s5 - (lk - math.log(5.0)), s)
    return np.exp(s)


def photon_cross_sections_per_mm(material: Material, k_mev: np.ndarray) -> dict[str, np.ndarray]:
    """Macroscopic photon cross sections (1/mm) of a material: keys pair, compton, photo, total."""
    out = {"pair": np.zeros_like(k_mev), "compton": np.zeros_like(k_mev), "photo": np.zeros_like(k_mev)}
    kn = _klein_nishina_per_electron_mm2(k_mev)
    for el, w in material.elements:
        n_atoms = material.density_g_cm3 * w * AVOGADRO / el.a * 1e-3  # atoms / mm^3
        out["pair"] += n_atoms * _pair_per_atom_mm2(k_mev, el.z, el.radiation_length_g_cm2, el.a)
        out["compton"] += n_atoms * el.z * kn
        out["photo"] += n_atoms * _photo_per_atom_mm2(k_mev, el.z)
    out["total"] = out["pair"] + out["compton"] + out["photo"]
    return out


def photo_binding_mev(material: Material) -> tuple[float, float]:
    """(K, L1) binding energies, MeV, of the material's heaviest element: the shell a photo-absorbed photon
    most likely frees its electron from (the heaviest atom dominates the photo-effect, ~Z^4-5)."""
    heaviest = max((el for el, _ in material.elements), key=lambda el: el.z)
    return _SHELL_BINDING_MEV.get(heaviest.symbol, (0.0, 0.0))


def screening_functions(gam: _ArrayT, eps: _ArrayT) -> tuple[_ArrayT, _ArrayT, _ArrayT, _ArrayT]:
    """Thomas-Fermi screening functions (phi1, phi1 - phi2, psi1, psi1 - psi2) of the bremsstrahlung cross
    section for the screening variables gamma = 100 m k / (E E' Z^(1/3)) and epsilon = 100 m k / (E E' Z^(2/3))
    (Tsai, Rev. Mod. Phys. 46 (1974) 815, eqs. 3.38-3.41, in the parametrisation of the Geant4 Physics
    Reference Manual, relativistic bremsstrahlung model). Works on numpy arrays and torch tensors alike
    (any shape; the four results have the shape of the inputs)."""
    lib: Any = np if isinstance(gam, np.ndarray) else torch  # log and exp of the inputs' library
    phi1 = 20.863 - 2.0 * lib.log(1.0 + (0.55846 * gam) ** 2) - 4.0 * (
        1.0 - 0.6 * lib.exp(-0.9 * gam) - 0.4 * lib.exp(-1.5 * gam))
    phi1m2 = 2.0 / (3.0 * (1.0 + 6.5 * gam + 6.0 * gam * gam))
    psi1 = 28.340 - 2.0 * lib.log(1.0 + (3.621 * eps) ** 2) - 4.0 * (
        1.0 - 0.7 * lib.exp(-8.0 * eps) - 0.3 * lib.exp(-29.2 * eps))
    psi1m2 = 2.0 / (3.0 * (1.0 + 40.0 * eps + 400.0 * eps * eps))
    return phi1, phi1m2, psi1, psi1m2


def _coulomb_correction(z: float) -> float:
    """Coulomb correction f(Z) of the bremsstrahlung and pair cross sections (PDG eq. 34.27)."""
    a2 = (ALPHA * z) ** 2
    return a2 * (1.0 / (1.0 + a2) + 0.20206 - 0.0369 * a2 + 0.0083 * a2**2 - 0.002 * a2**3)


def brems_shape(y: np.ndarray, e_total_mev: np.ndarray, z: float) -> np.ndarray:
    """The bracket of Tsai's eq. 3.9 per Z^2: k dsigma/dk = alpha r_e^2 Z^2 brems_shape (per atom).

    y = k / E (photon energy over the electron's total energy). The Z (atomic electrons) term enters as 1/Z.
    """
    e_prime = np.maximum(1.0 - y, 1e-12)
    delta = 100.0 * ELECTRON_MASS_MEV * y / (e_total_mev * e_prime)
    gam = delta * z ** (-1.0 / 3.0)
    eps = delta * z ** (-2.0 / 3.0)
    phi1, phi1m2, psi1, psi1m2 = screening_functions(gam, eps)
    ln_z = math.log(z)
    main = phi1 - 4.0 / 3.0 * ln_z - 4.0 * _coulomb_correction(z) + (psi1 - 8.0 / 3.0 * ln_z) / z
    return np.maximum((4.0 / 3.0 - 4.0 / 3.0 * y + y * y) * main + 2.0 / 3.0 * (1.0 - y) * (phi1m2 + psi1m2 / z),
                      0.0)


def plasma_energy_mev(material: Material) -> float:
    """Plasma energy hbar omega_p of the material, MeV (PDG eq. 34.6)."""
    return 28.816e-6 * math.sqrt(material.density_g_cm3 * material.z_over_a)


def _dielectric_factor(k: np.ndarray, e_total: np.ndarray, material: Material) -> np.ndarray:
    """Dielectric suppression k^2 / (k^2 + k_p^2), k_p = gamma hbar omega_p (Ter-Mikaelian; PDG 34.4.5)."""
    k_p = e_total / ELECTRON_MASS_MEV * plasma_energy_mev(material)
    return k * k / (k * k + k_p * k_p)


def brems_integrals(material: Material, t_mev: np.ndarray, k_cut: float) -> tuple[np.ndarray, np.ndarray]:
    """(photons above k_cut per mm, energy lost to photons below k_cut in MeV/mm) by integrating Tsai's
    screened cross section (:func:`brems_shape`) with the dielectric suppression over the photon energy."""
    e_tot = t_mev + ELECTRON_MASS_MEV
    n_y = 256
    hard = np.zeros_like(t_mev)
    soft = np.zeros_like(t_mev)
    k_min = 1e-6  # MeV; the soft loss integral converges at k -> 0
    for el, w in material.elements:
        n_atoms = material.density_g_cm3 * w * AVOGADRO / el.a * 1e-3  # atoms / mm^3
        pref = n_atoms * ALPHA * RE_MM**2 * el.z * el.z  # mm^-1
        # hard: int_{k_cut}^{T} dk/k shape, in ln k
        lo = np.log(np.minimum(k_cut, t_mev))
        hi = np.log(np.maximum(t_mev, k_cut))
        u = np.linspace(0.0, 1.0, n_y)
        lk = lo[:, None] + (hi - lo)[:, None] * u[None, :]
        k = np.exp(lk)
        f = brems_shape(k / e_tot[:, None], e_tot[:, None], el.z) * _dielectric_factor(k, e_tot[:, None], material)
        hard += pref * np.trapezoid(f, lk, axis=1)
        # soft: int_0^{min(k_cut, T)} k dsigma/dk dk = int shape dk, in ln k from k_min
        lo_s = math.log(k_min)
        hi_s = np.log(np.minimum(k_cut, t_mev))
        lk_s = lo_s + (hi_s - lo_s)[:, None] * u[None, :]
        ks = np.exp(lk_s)
        fs = brems_shape(ks / e_tot[:, None], e_tot[:, None], el.z) * _dielectric_factor(ks, e_tot[:, None],
                                                                                          material)
        soft += pref * np.trapezoid(fs * ks, lk_s, axis=1)
    hard = np.where(t_mev > k_cut, hard, 0.0)
    soft = np.where(t_mev > k_min, soft, 0.0)
    return hard, soft


def brems_z(material: Material) -> float:
    """Z used for the shape of the photon spectrum in a compound: the Z^2-weighted geometric mean of its atoms
    (the elements that radiate most dominate the screening)."""
    weights = [(w / el.a * el.z * el.z, el.z) for el, w in material.elements]
    total = sum(wt for wt, _ in weights)
    return math.exp(sum(wt * math.log(z) for wt, z in weights) / total)


def moller_per_mm(material: Material, t_mev: np.ndarray, cut: float) -> np.ndarray:
    """Moller delta-ray cross section above cut, 1/mm (G4MollerBhabhaModel form)."""
    m = ELECTRON_MASS_MEV
    gam = t_mev / m + 1.0
    gamma2 = gam * gam
    beta2 = 1.0 - 1.0 / gamma2
    xmin = cut / np.maximum(t_mev, 1e-12)
    xmax = 0.5
    ok = xmin < xmax
    xmin = np.minimum(xmin, 0.4999)
    gg = (2.0 * gam - 1.0) / gamma2
    cross = ((xmax - xmin) * (1.0 - gg + 1.0 / (xmin * xmax) + 1.0 / ((1.0 - xmin) * (1.0 - xmax)))
             - gg * np.log(xmax * (1.0 - xmin) / (xmin * (1.0 - xmax)))) / beta2
    cross = cross * TWOPI_MC2_RE2 / np.maximum(t_mev, 1e-12) * material.electron_density_per_mm3
    return np.where(ok, np.maximum(cross, 0.0), 0.0)


def bhabha_per_mm(material: Material, t_mev: np.ndarray, cut: float) -> np.ndarray:
    """Bhabha delta-ray cross section above cut, 1/mm (G4MollerBhabhaModel form)."""
    m = ELECTRON_MASS_MEV
    gam = t_mev / m + 1.0
    beta2 = 1.0 - 1.0 / (gam * gam)
    xmin = cut / np.maximum(t_mev, 1e-12)
    xmax = 1.0
    ok = xmin < xmax
    xmin = np.minimum(xmin, 0.9999)
    y = 1.0 / (1.0 + gam)
    y2 = y * y
    y12 = 1.0 - 2.0 * y
    b1 = 2.0 - y2
    b2 = y12 * (3.0 + y2)
    y122 = y12 * y12
    b4 = y122 * y12
    b3 = b4 + y122
    cross = (xmax - xmin) * (1.0 / (beta2 * xmin * xmax) + b2 - 0.5 * b3 * (xmin + xmax)
                             + b4 * (xmin * xmin + xmin * xmax + xmax * xmax) / 3.0) - b1 * np.log(xmax / xmin)
    cross = cross * TWOPI_MC2_RE2 / np.maximum(t_mev, 1e-12) * material.electron_density_per_mm3
    return np.where(ok, np.maximum(cross, 0.0), 0.0)


def annihilation_per_mm(material: Material, t_mev: np.ndarray) -> np.ndarray:
    """Positron annihilation in flight (two photons), Heitler cross section, 1/mm."""
    gam = np.maximum(t_mev / ELECTRON_MASS_MEV, 1e-6) + 1.0
    g2m1 = gam * gam - 1.0
    sq = np.sqrt(g2m1)
    sigma = math.pi * RE_MM**2 / (gam + 1.0) * (
        (gam * gam + 4.0 * gam + 1.0) / g2m1 * np.log(gam + sq) - (gam + 3.0) / sq
    )
    return sigma * material.electron_density_per_mm3


def elastic_tables(material: Material, t_mev: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Screened-Rutherford elastic scattering of e+- in a material: (1/lambda_1 in 1/mm, chi_c^2 per mm in
    rad^2/mm, ln chi_a^2).

    Per atom dsigma/dOmega = Z(Z+1) r_e^2 (m c^2 / p beta c)^2 / (1 - cos theta + 2A)^2 with Moliere's screening
    parameter A = chi_a^2 / 4, chi_a^2 = (alpha m Z^(1/3) / (0.88534 p))^2 (1.13 + 3.76 (alpha Z / beta)^2)
    (Moliere 1948; Bethe, Phys. Rev. 89 (1953) 1256). Transport cross section sigma_1 = int (1 - cos theta)
    dsigma = 2 pi C [ln(1 + 1/A) - 1/(1 + A)], so lambda_1 = 1 / (sum n_i sigma_1,i) (Lewis 1950). Moliere's
    chi_c^2 = 4 pi sum n_i C_i per unit path, and ln chi_a^2 averaged with weights n_i Z_i (Z_i + 1).
    """
    m = ELECTRON_MASS_MEV
    p2 = t_mev * (t_mev + 2.0 * m)
    beta2 = p2 / (t_mev + m) ** 2
    inv_l1 = np.zeros_like(t_mev)
    chi_c2 = np.zeros_like(t_mev)
    ln_chi_a2 = np.zeros_like(t_mev)
    weight = 0.0
    for el, w in material.elements:
        n_atoms = material.density_g_cm3 * w * AVOGADRO / el.a * 1e-3  # atoms / mm^3
        zz = el.z * (el.z + 1.0)
        c = zz * RE_MM**2 * m * m / (p2 * beta2)  # mm^2
        chi_a2 = (ALPHA * m * el.z ** (1.0 / 3.0) / _TF_RADIUS) ** 2 / p2 * (
            1.13 + 3.76 * (ALPHA * el.z) ** 2 / beta2)
        a = 0.25 * chi_a2
        inv_l1 += n_atoms * 2.0 * math.pi * c * (np.log1p(1.0 / a) - 1.0 / (1.0 + a))
        chi_c2 += 4.0 * math.pi * n_atoms * c
        ln_chi_a2 += n_atoms * zz * np.log(chi_a2)
        weight += n_atoms * zz
    return inv_l1, chi_c2, ln_chi_a2 / weight

