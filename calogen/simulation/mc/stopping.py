"""Stopping powers of electrons and positrons per material, and the production cuts they set (MeV, mm).

- Ionisation: restricted stopping power of Berger and Seltzer (as G4MollerBhabhaModel) with the full
  Sternheimer density-effect correction (Sternheimer and Peierls, Phys. Rev. B 3 (1971) 3681); the energy
  given to delta rays above T_cut is left to the discrete Moller / Bhabha interactions.
- Ranges: the continuous-slowing-down range from the total (or restricted) loss.
- Cuts: the delta-ray threshold T_cut whose range is Geant4's 0.7 mm range cut; the bremsstrahlung threshold
  k_cut = 100 keV.

Kinetic energies are arrays (G,), MeV; stopping powers come back as (G,) arrays in MeV/mm, ranges in mm.
"""

from __future__ import annotations

import math

import numpy as np

from calogen.detector import Material
from calogen.simulation.mc.constants import (
    DELTA_CUT_MIN_MEV,
    ELECTRON_MASS_MEV,
    GAMMA_PRODUCTION_CUT_MEV,
    RANGE_CUT_MM,
    TWOPI_MC2_RE2,
    energy_grid_mev,
)
from calogen.simulation.mc.cross_sections import brems_integrals

__all__ = ["csda_range", "cuts_for", "density_correction", "density_effect_parameters", "restricted_dedx_mev_per_mm"]

_TWO_LN10 = 2.0 * math.log(10.0)  # delta = 2 ln(10) x - C_bar with x = log10(beta gamma)


def density_effect_parameters(material: Material) -> tuple[float, float, float, float, float]:
    """Sternheimer density-effect parameters (C_bar, x0, x1, a, m) of a material.

    General recipe of Sternheimer and Peierls (Phys. Rev. B 3 (1971) 3681), used for every material whose
    parameters are not tabulated: C_bar = 2 ln(I / hbar omega_p) + 1; for solids and liquids x1 = 2 (I < 100 eV)
    or 3, x0 from C_bar; for gases the table of C_bar ranges; m = 3 and a fixed by continuity at x0.
    """
    hw_p_ev = 28.816 * math.sqrt(material.density_g_cm3 * material.z_over_a)  # PDG eq. 34.6 (hbar omega_p)
    c_bar = 2.0 * math.log(material.mean_excitation_ev / hw_p_ev) + 1.0
    if material.density_g_cm3 > 0.05:  # solids and liquids
        if material.mean_excitation_ev < 100.0:
            x1 = 2.0
            x0 = 0.2 if c_bar < 3.681 else 0.326 * c_bar - 1.0
        else:
            x1 = 3.0
            x0 = 0.2 if c_bar < 5.215 else 0.326 * c_bar - 1.5
    else:  # gases at normal pressure
        x1 = 4.0
        for limit, value in ((10.0, 1.6), (10.5, 1.7), (11.0, 1.8), (11.5, 1.9), (12.25, 2.0)):
            if c_bar < limit:
                x0 = value
                break
        else:
            x0, x1 = (2.0, 5.0) if c_bar < 13.804 else (0.326 * c_bar - 2.5, 5.0)
    m = 3.0
    a = (c_bar - _TWO_LN10 * x0) / (x1 - x0) ** m
    return c_bar, x0, x1, a, m


def density_correction(material: Material, bg: np.ndarray) -> np.ndarray:
    """Density-effect correction delta(beta gamma) (PDG eq. 34.7 with Sternheimer-Peierls parameters)."""
    c_bar, x0, x1, a, m = density_effect_parameters(material)
    x = np.log10(np.maximum(bg, 1e-12))
    full = _TWO_LN10 * x - c_bar
    middle = full + a * np.clip(x1 - x, 0.0, None) ** m
    return np.where(x >= x1, full, np.where(x >= x0, middle, 0.0))


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
    dedx = dedx - density_correction(material, np.sqrt(bg2))
    n_e = material.electron_density_per_mm3
    dedx = np.maximum(dedx, 0.0) * TWOPI_MC2_RE2 * n_e / beta2
    return dedx


def cuts_for(material: Material) -> tuple[float, float]:
    """(delta-ray threshold T_cut, bremsstrahlung threshold k_cut), MeV.

    T_cut is the kinetic energy whose CSDA range equals the 0.7 mm range cut (Geant4 default), bounded
    below by 100 keV; k_cut is 100 keV everywhere.
    """
    grid = energy_grid_mev()
    full = restricted_dedx_mev_per_mm(material, grid, 1e9) + brems_integrals(material, grid, 1e9)[1]
    rng = csda_range(grid, full)
    t_cut = float(np.interp(RANGE_CUT_MM, rng, grid))
    return max(t_cut, DELTA_CUT_MIN_MEV), GAMMA_PRODUCTION_CUT_MEV


def csda_range(grid: np.ndarray, dedx: np.ndarray) -> np.ndarray:
    """Range, mm, by integrating dT / (dE/dx) on the grid (first bin: T / (dE/dx))."""
    inv = 1.0 / np.maximum(dedx, 1e-12)
    r = np.zeros_like(grid)
    r[0] = grid[0] * inv[0]
    r[1:] = r[0] + np.cumsum(0.5 * (inv[1:] + inv[:-1]) * np.diff(grid))
    return r

