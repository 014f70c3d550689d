"""Cross sections and energy-loss tables for e-, e+ and photons, per material (MeV, mm).

Everything is tabulated once per detector on a logarithmic energy grid (1 keV - 1 TeV, 40 points per
decade) in float64 with numpy and then moved to torch (see :class:`PhysicsTables`). Sources:

- Pair production: total cross section per atom from the Geant4 parametrisation of L. Urban
  (G4BetheHeitlerModel, valid 1.5 MeV - 100 GeV; (k - 2m)^2 threshold behaviour below 1.5 MeV); above
  100 GeV the complete-screening value 7/9 / (X0 n_atoms) (PDG eq. 34.31) is joined smoothly.
- Compton: Klein-Nishina total cross section per electron times Z (binding ignored).
- Photo-effect: NIST XCOM total attenuation of tungsten minus Klein-Nishina minus pair (coherent
  scattering folded in: treated as absorption), scaled to other elements as (Z/74)^4 per atom.
- Bremsstrahlung: complete-screening dsigma/dk = A/(X0 N_A k) (4/3 - 4/3 y + y^2) (PDG eq. 34.29), discrete
  above k_cut, continuous below.
- Ionisation: restricted stopping power of Berger and Seltzer (as G4MollerBhabhaModel) with the
  asymptotic Sternheimer density correction; Moller (e-) and Bhabha (e+) delta rays above T_cut.
- Positron annihilation in flight: Heitler cross section per electron.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from calogen.detector import Detector, Material

__all__ = [
    "ELECTRON_MASS_MEV",
    "PhysicsTables",
    "build_tables",
    "photon_cross_sections_per_mm",
    "restricted_dedx_mev_per_mm",
    "cuts_for",
]

ELECTRON_MASS_MEV = 0.51099895  # MeV (CODATA)
_RE_MM = 2.8179403262e-12  # classical electron radius, mm
_AVOGADRO = 6.02214076e23
_TWOPI_MC2_RE2 = 2.0 * math.pi * ELECTRON_MASS_MEV * _RE_MM**2  # MeV mm^2
_BARN_MM2 = 1e-22  # 1 barn = 1e-24 cm^2 = 1e-22 mm^2

E_MIN_MEV = 1e-3
E_MAX_MEV = 1e6
POINTS_PER_DECADE = 40

PHOTON_TRACKING_CUT_MEV = 0.02  # photons below are absorbed where they are
ELECTRON_TRACKING_CUT_MEV = 0.05  # e+- below stop where they are (range < 0.02 mm in Si)
GAMMA_PRODUCTION_CUT_MEV = 0.1  # bremsstrahlung photons above are produced, below continuous
RANGE_CUT_MM = 0.7  # Geant4 default range cut, used for the delta-ray production threshold
DELTA_CUT_MIN_MEV = 0.1  # lower bound of the delta-ray threshold (air, light materials)

# NIST XCOM total attenuation of tungsten (with coherent), cm^2/g, energies in MeV.
_W_NIST_MEV = np.array([0.02, 0.03, 0.04, 0.05, 0.06, 0.069525, 0.069526, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4,
                        0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0])
_W_NIST_MU_RHO = np.array([65.73, 22.73, 10.67, 5.949, 3.713, 2.552, 11.23, 7.81, 4.438, 1.581, 0.7844,
                           0.3238, 0.1925, 0.1378, 0.1093, 0.08066, 0.06618, 0.05577, 0.05, 0.04433,
                           0.04075, 0.04038, 0.04103])
_W_A = 183.84
_W_Z = 74


def energy_grid_mev() -> np.ndarray:
    """Logarithmic energy grid, MeV, float64 (G,)."""
    n = int(round(math.log10(E_MAX_MEV / E_MIN_MEV) * POINTS_PER_DECADE)) + 1
    return np.logspace(math.log10(E_MIN_MEV), math.log10(E_MAX_MEV), n)


def _klein_nishina_per_electron_mm2(k_mev: np.ndarray) -> np.ndarray:
    """Klein-Nishina total cross section per electron, mm^2 (Heitler)."""
    x = k_mev / ELECTRON_MASS_MEV
    x = np.maximum(x, 1e-6)
    one = 1.0 + 2.0 * x
    term = ((1 + x) / x**2) * (2 * (1 + x) / one - np.log(one) / x) + np.log(one) / (2 * x) - (1 + 3 * x) / one**2
    return 2.0 * math.pi * _RE_MM**2 * term


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
    sigma = np.maximum(sigma_ub, 0.0) * 1e-6 * _BARN_MM2
    low = k_mev < k_lim
    ratio = np.clip((k_mev - 2 * m) / (k_lim - 2 * m), 0.0, 1.0)
    sigma = np.where(low, sigma * ratio**2, sigma)
    sigma = np.where(k_mev <= 2 * m, 0.0, sigma)
    # above 100 GeV: join the complete-screening limit 7/9 A/(X0 N_A) (PDG eq. 34.31)
    sigma_inf = (7.0 / 9.0) * a / (x0_g_cm2 * _AVOGADRO) * 100.0  # cm^2 -> mm^2
    if not np.any(k_mev > 1e5):
        return sigma
    s100 = _pair_per_atom_mm2(np.array([1e5]), z, x0_g_cm2, a)[0]
    w = np.clip(np.log(k_mev / 1e5) / np.log(10.0), 0.0, 1.0)
    return np.where(k_mev > 1e5, (1 - w) * s100 + w * sigma_inf, sigma)


def _photo_per_atom_mm2(k_mev: np.ndarray, z: int) -> np.ndarray:
    """Photo-effect (plus coherent) cross section per atom, mm^2, anchored to NIST XCOM for tungsten."""
    n_atoms_per_g = _AVOGADRO / _W_A
    kn = _klein_nishina_per_electron_mm2(_W_NIST_MEV) * _W_Z * n_atoms_per_g * 0.01  # cm^2/g
    from calogen.detector import ELEMENTS

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
        n_atoms = material.density_g_cm3 * w * _AVOGADRO / el.a * 1e-3  # atoms / mm^3
        out["pair"] += n_atoms * _pair_per_atom_mm2(k_mev, el.z, el.radiation_length_g_cm2, el.a)
        out["compton"] += n_atoms * el.z * kn
        out["photo"] += n_atoms * _photo_per_atom_mm2(k_mev, el.z)
    out["total"] = out["pair"] + out["compton"] + out["photo"]
    return out


def _density_correction(material: Material, bg: np.ndarray) -> np.ndarray:
    """Sternheimer density effect, asymptotic form delta = max(0, 2 ln(beta gamma) - C_bar) (PDG 34.2.5)."""
    hw_p_ev = 28.816 * math.sqrt(material.density_g_cm3 * material.z_over_a)
    c_bar = 2.0 * math.log(material.mean_excitation_ev / hw_p_ev) + 1.0
    return np.maximum(0.0, 2.0 * np.log(np.maximum(bg, 1e-12)) - c_bar)


def restricted_dedx_mev_per_mm(
    material: Material, t_mev: np.ndarray, cut_mev: float, positron: bool = False
) -> np.ndarray:
    """Restricted collision stopping power (delta rays below cut_mev), MeV/mm (Berger-Seltzer formula)."""
    m = ELECTRON_MASS_MEV
    tau = np.maximum(t_mev, 1e-6) / m
    gam = tau + 1.0
    gamma2 = gam * gam
    bg2 = tau * (tau + 2.0)
    beta2 = bg2 / gamma2
    eexc = material.mean_excitation_ev * 1e-6 / m
    if positron:
        d = np.minimum(cut_mev / m, tau)
        d2 = d * d * 0.5
        d3 = d2 * d / 1.5
        d4 = d3 * d * 0.75
        y = 1.0 / (1.0 + gam)
        dedx = np.log(2.0 * (tau + 2.0) / eexc**2) + np.log(tau * d) - beta2 * (
            tau + 2.0 * d - y * (3.0 * d2 + y * (d - d3 + y * (d2 - tau * d3 + d4)))
        ) / tau
    else:
        d = np.minimum(cut_mev / m, 0.5 * tau)
        dedx = (
            np.log(2.0 * (tau + 2.0) / eexc**2) - 1.0 - beta2 + np.log((tau - d) * d) + tau / (tau - d)
            + (0.5 * d * d + (2.0 * tau + 1.0) * np.log(1.0 - d / tau)) / gamma2
        )
    dedx = dedx - _density_correction(material, np.sqrt(bg2))
    n_e = material.electron_density_per_mm3
    dedx = np.maximum(dedx, 0.0) * _TWOPI_MC2_RE2 * n_e / beta2
    return dedx


def _brems_soft_dedx(material: Material, t_mev: np.ndarray, k_cut: float) -> np.ndarray:
    """Bremsstrahlung loss to photons below k_cut, MeV/mm: (E/X0) int_0^yc (4/3 - 4/3 y + y^2) dy."""
    e_tot = t_mev + ELECTRON_MASS_MEV
    yc = np.minimum(k_cut, t_mev) / e_tot
    return e_tot / material.radiation_length_mm * (4.0 / 3.0 * yc - 2.0 / 3.0 * yc**2 + yc**3 / 3.0)


def _brems_hard_per_mm(material: Material, t_mev: np.ndarray, k_cut: float) -> np.ndarray:
    """Number of bremsstrahlung photons above k_cut per mm: (1/X0) int_yc^ymax (1/y)(4/3 - 4/3 y + y^2) dy."""
    e_tot = t_mev + ELECTRON_MASS_MEV
    yc = k_cut / e_tot
    ym = t_mev / e_tot
    val = 4.0 / 3.0 * np.log(np.maximum(ym / yc, 1.0)) - 4.0 / 3.0 * (ym - yc) + 0.5 * (ym**2 - yc**2)
    return np.where(t_mev > k_cut, val, 0.0) / material.radiation_length_mm


def _moller_per_mm(material: Material, t_mev: np.ndarray, cut: float) -> np.ndarray:
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
    cross = cross * _TWOPI_MC2_RE2 / np.maximum(t_mev, 1e-12) * material.electron_density_per_mm3
    return np.where(ok, np.maximum(cross, 0.0), 0.0)


def _bhabha_per_mm(material: Material, t_mev: np.ndarray, cut: float) -> np.ndarray:
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
    cross = cross * _TWOPI_MC2_RE2 / np.maximum(t_mev, 1e-12) * material.electron_density_per_mm3
    return np.where(ok, np.maximum(cross, 0.0), 0.0)


def _annihilation_per_mm(material: Material, t_mev: np.ndarray) -> np.ndarray:
    """Positron annihilation in flight (two photons), Heitler cross section, 1/mm."""
    gam = np.maximum(t_mev / ELECTRON_MASS_MEV, 1e-6) + 1.0
    g2m1 = gam * gam - 1.0
    sq = np.sqrt(g2m1)
    sigma = math.pi * _RE_MM**2 / (gam + 1.0) * (
        (gam * gam + 4.0 * gam + 1.0) / g2m1 * np.log(gam + sq) - (gam + 3.0) / sq
    )
    return sigma * material.electron_density_per_mm3


def cuts_for(material: Material) -> tuple[float, float]:
    """(delta-ray threshold T_cut, bremsstrahlung threshold k_cut), MeV.

    T_cut is the kinetic energy whose CSDA range equals the 0.7 mm range cut (Geant4 default), bounded
    below by 100 keV; k_cut is 100 keV everywhere.
    """
    grid = energy_grid_mev()
    full = restricted_dedx_mev_per_mm(material, grid, 1e9) + _brems_soft_dedx(material, grid, 1e9)
    rng = _csda_range(grid, full)
    t_cut = float(np.interp(RANGE_CUT_MM, rng, grid))
    return max(t_cut, DELTA_CUT_MIN_MEV), GAMMA_PRODUCTION_CUT_MEV


def _csda_range(grid: np.ndarray, dedx: np.ndarray) -> np.ndarray:
    """Range, mm, by integrating dT / (dE/dx) on the grid (first bin: T / (dE/dx))."""
    inv = 1.0 / np.maximum(dedx, 1e-12)
    r = np.zeros_like(grid)
    r[0] = grid[0] * inv[0]
    r[1:] = r[0] + np.cumsum(0.5 * (inv[1:] + inv[:-1]) * np.diff(grid))
    return r


@dataclass
class PhysicsTables:
    """Tabulated physics for the materials of a detector, as torch tensors on one device.

    Tables are (M, G) over materials M and the log energy grid G (kinetic energy for e+-, energy for
    photons). Per-material scalars are (M,).
    """

    log_e_min: float
    inv_dlog: float
    n_grid: int
    mu_pair: torch.Tensor  # (M, G) 1/mm
    mu_compton: torch.Tensor  # (M, G) 1/mm
    mu_photo: torch.Tensor  # (M, G) 1/mm
    dedx_em: torch.Tensor  # (M, G) restricted loss e-, MeV/mm (ionisation + soft brems)
    dedx_ep: torch.Tensor  # (M, G) restricted loss e+, MeV/mm
    range_em: torch.Tensor  # (M, G) range with the restricted loss e-, mm
    range_ep: torch.Tensor  # (M, G) mm
    mu_brems: torch.Tensor  # (M, G) 1/mm, photons above k_cut
    mu_moller: torch.Tensor  # (M, G) 1/mm
    mu_bhabha: torch.Tensor  # (M, G) 1/mm
    mu_annihil: torch.Tensor  # (M, G) 1/mm
    x0_mm: torch.Tensor  # (M,)
    t_cut: torch.Tensor  # (M,) MeV
    k_cut: torch.Tensor  # (M,) MeV
    xi_per_mm: torch.Tensor  # (M,) Landau xi * beta^2 per mm, MeV/mm
    t_cut_list: list[float]

    def lookup(self, table: torch.Tensor, mat: torch.Tensor, energy_mev: torch.Tensor) -> torch.Tensor:
        """Linear interpolation in ln E of table[mat] at energy_mev; mat, energy (N,) -> (N,)."""
        u = (torch.log(energy_mev.clamp_min(1e-6)) - self.log_e_min) * self.inv_dlog
        u = u.clamp(0.0, self.n_grid - 1.001)
        i = u.floor().long()
        f = (u - i).to(table.dtype)
        flat = mat * self.n_grid + i
        tab = table.reshape(-1)
        return tab[flat] * (1 - f) + tab[flat + 1] * f

    def lookup_rows(self, table: torch.Tensor, mat: torch.Tensor, energy_mev: torch.Tensor) -> torch.Tensor:
        """Several tables at once: table (M, G, K) -> (N, K) interpolated in ln E at rows mat (N,)."""
        u = (torch.log(energy_mev.clamp_min(1e-6)) - self.log_e_min) * self.inv_dlog
        u = u.clamp(0.0, self.n_grid - 1.001)
        i = u.floor().long()
        f = (u - i).to(table.dtype).unsqueeze(1)
        flat = mat * self.n_grid + i
        tab = table.reshape(-1, table.shape[-1])
        lo = tab.index_select(0, flat)
        hi = tab.index_select(0, flat + 1)
        return lo + (hi - lo) * f

    def lookup_all(self, table: torch.Tensor, energy_mev: torch.Tensor) -> torch.Tensor:
        """table at energy for every material: (N,) -> (M, N)."""
        u = (torch.log(energy_mev.clamp_min(1e-6)) - self.log_e_min) * self.inv_dlog
        u = u.clamp(0.0, self.n_grid - 1.001)
        i = u.floor().long()
        f = (u - i).to(table.dtype)
        return table[:, i] * (1 - f) + table[:, i + 1] * f


def build_tables(detector: Detector, device: torch.device, dtype: torch.dtype = torch.float32) -> PhysicsTables:
    """Tabulate the physics of the detector's materials (in the order of detector.materials)."""
    grid = energy_grid_mev()
    rows: dict[str, list[np.ndarray]] = {k: [] for k in (
        "mu_pair", "mu_compton", "mu_photo", "dedx_em", "dedx_ep", "range_em", "range_ep", "mu_brems",
        "mu_moller", "mu_bhabha", "mu_annihil")}
    x0, tcut, kcut, xi = [], [], [], []
    for mat in detector.materials:
        ph = photon_cross_sections_per_mm(mat, grid)
        t_c, k_c = cuts_for(mat)
        soft = _brems_soft_dedx(mat, grid, k_c)
        dedx_em = restricted_dedx_mev_per_mm(mat, grid, t_c) + soft
        dedx_ep = restricted_dedx_mev_per_mm(mat, grid, t_c, positron=True) + soft
        rows["mu_pair"].append(ph["pair"])
        rows["mu_compton"].append(ph["compton"])
        rows["mu_photo"].append(ph["photo"])
        rows["dedx_em"].append(dedx_em)
        rows["dedx_ep"].append(dedx_ep)
        rows["range_em"].append(_csda_range(grid, dedx_em))
        rows["range_ep"].append(_csda_range(grid, dedx_ep))
        rows["mu_brems"].append(_brems_hard_per_mm(mat, grid, k_c))
        rows["mu_moller"].append(_moller_per_mm(mat, grid, t_c))
        rows["mu_bhabha"].append(_bhabha_per_mm(mat, grid, t_c))
        rows["mu_annihil"].append(_annihilation_per_mm(mat, grid))
        x0.append(mat.radiation_length_mm)
        tcut.append(t_c)
        kcut.append(k_c)
        # Landau xi = (K/2) <Z/A> rho x / beta^2, K = 0.307075 MeV cm^2/mol (PDG eq. 34.11)
        xi.append(0.5 * 0.307075 * mat.z_over_a * mat.density_g_cm3 / 10.0)

    def t(a: list[np.ndarray] | list[float]) -> torch.Tensor:
        return torch.tensor(np.asarray(a), dtype=dtype, device=device)

    return PhysicsTables(
        log_e_min=math.log(grid[0]),
        inv_dlog=1.0 / (math.log(grid[1]) - math.log(grid[0])),
        n_grid=len(grid),
        **{k: t(v) for k, v in rows.items()},
        x0_mm=t(x0),
        t_cut=t(tcut),
        k_cut=t(kcut),
        xi_per_mm=t(xi),
        t_cut_list=tcut,
    )
