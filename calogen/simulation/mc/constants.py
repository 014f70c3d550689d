"""Physical constants, the energy grid of the physics tables, and the tracking and production cuts (MeV, mm)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALPHA",
    "AVOGADRO",
    "BARN_MM2",
    "DELTA_CUT_MIN_MEV",
    "ELECTRON_MASS_MEV",
    "ELECTRON_TRACKING_CUT_MEV",
    "E_MAX_MEV",
    "E_MIN_MEV",
    "GAMMA_PRODUCTION_CUT_MEV",
    "PHOTON_TRACKING_CUT_MEV",
    "POINTS_PER_DECADE",
    "RANGE_CUT_MM",
    "RE_MM",
    "TWOPI_MC2_RE2",
    "energy_grid_mev",
]

# CODATA 2018 values
ELECTRON_MASS_MEV = 0.51099895  # m_e c^2, MeV
RE_MM = 2.8179403262e-12  # classical electron radius, mm
AVOGADRO = 6.02214076e23  # 1/mol
ALPHA = 1.0 / 137.035999  # fine-structure constant
TWOPI_MC2_RE2 = 2.0 * math.pi * ELECTRON_MASS_MEV * RE_MM**2  # MeV mm^2
BARN_MM2 = 1e-22  # 1 barn = 1e-24 cm^2 = 1e-22 mm^2

# the logarithmic energy grid of every table: kinetic energy of e+-, energy of photons
E_MIN_MEV = 1e-3
E_MAX_MEV = 1e6
POINTS_PER_DECADE = 40

PHOTON_TRACKING_CUT_MEV = 0.02  # photons below are absorbed where they are
ELECTRON_TRACKING_CUT_MEV = 0.05  # e+- below stop where they are (range < 0.02 mm in Si)
GAMMA_PRODUCTION_CUT_MEV = 0.1  # bremsstrahlung photons above are produced, below continuous
RANGE_CUT_MM = 0.7  # Geant4 default range cut, used for the delta-ray production threshold
DELTA_CUT_MIN_MEV = 0.1  # lower bound of the delta-ray threshold (air, light materials)


def energy_grid_mev() -> npt.NDArray[np.float64]:
    """Logarithmic energy grid, MeV, float64 (G,): 1 keV - 1 TeV, 40 points per decade."""
    n = round(math.log10(E_MAX_MEV / E_MIN_MEV) * POINTS_PER_DECADE) + 1
    return np.logspace(math.log10(E_MIN_MEV), math.log10(E_MAX_MEV), n)
