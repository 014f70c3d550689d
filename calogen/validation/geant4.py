"""Published Geant4 figures of this calorimeter, to hold the built-in Monte Carlo against.

The 3DGAN authors fitted the ratio of the ECAL sum to the primary energy of their Geant4 electron sample (the
LCD "EleEscan" data: electrons of 10-500 GeV entering the CLIC ECAL at normal incidence, 25 layers of 51 x 51
cells) with a fourth-order polynomial in E / 100 GeV, and used it as the expected ECAL sum of the generated
showers in their training (svalleco/3Dgan, ``keras/analysis/utils/GANutils.py`` and the training scripts,
``GetEcalFit`` with ``mod=1``; Khattak et al., arXiv:2103.08497). That fit is the Geant4 sampling fraction
used here:

    >>> from calogen.validation.geant4 import geant4_electron_sampling_fraction
    >>> round(float(geant4_electron_sampling_fraction(100.0)), 5)      # 2.02 % at 100 GeV
    0.02019

It holds for electrons at 90 degrees, 10-500 GeV, in the 51 x 51 window; outside that range it is an
extrapolation and the function refuses it unless asked.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["GEANT4_ELECTRON_SF_FIT", "GEANT4_FIT_RANGE_GEV", "geant4_electron_sampling_fraction"]

GEANT4_ELECTRON_SF_FIT = (0.0018, -0.023, 0.11, -0.28, 2.21)
"""Coefficients, highest power first, of Ecal / E (in %) as a polynomial in E / 100 GeV (svalleco/3Dgan,
``GetEcalFit``, ``mod=1``, electrons)."""
GEANT4_FIT_RANGE_GEV = (10.0, 500.0)
"""The primary energies of the fitted sample, GeV."""


def geant4_electron_sampling_fraction(energy_gev: float | npt.ArrayLike, *,
                                      extrapolate: bool = False) -> npt.NDArray[np.float64]:
    """The Geant4 sampling fraction (a fraction, not %) of electrons at 90 deg for primary energies in GeV.

    Raises ValueError for an energy outside :data:`GEANT4_FIT_RANGE_GEV` unless ``extrapolate``.
    """
    energy = np.asarray(energy_gev, dtype=np.float64)
    low, high = GEANT4_FIT_RANGE_GEV
    if not extrapolate and (np.any(energy < low) or np.any(energy > high)):
        raise ValueError(f"the Geant4 fit covers {low:g}-{high:g} GeV; {energy.tolist()} GeV needs extrapolate=True")
    return np.asarray(np.polyval(GEANT4_ELECTRON_SF_FIT, energy / 100.0) / 100.0, dtype=np.float64)
