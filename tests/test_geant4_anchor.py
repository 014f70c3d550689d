"""The Monte Carlo's sampling fraction against Geant4's for this calorimeter: the 3DGAN authors' fit of their
Geant4 electron sample (calogen.validation.geant4), compared with the held-out reference, which the Monte Carlo of
the current physics made (data/reference.h5, 25-100 showers per point at 90 deg)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from calogen.io import read_showers
from calogen.simulation.mc import PHYSICS_VERSION
from calogen.validation.geant4 import geant4_electron_sampling_fraction

REFERENCE = Path(__file__).parents[1] / "data" / "reference.h5"


@pytest.fixture(scope="module")
def sf_at_90_deg() -> dict[float, tuple[float, float]]:
    """{energy GeV: (mean sampling fraction, its standard error)} of the reference's electrons at 90 deg."""
    sample = read_showers(REFERENCE)
    assert sample.attrs.get("mc_physics") == PHYSICS_VERSION  # made by the Monte Carlo as it is now
    energy = np.asarray(sample.energy_gev)
    normal = np.abs(np.degrees(np.asarray(sample.theta_rad)) - 90.0) < 0.5
    sf = sample.showers.reshape(len(energy), -1).sum(axis=1) / energy
    out = {}
    for e in np.unique(np.round(energy[normal])):
        pick = normal & (np.round(energy) == e)
        out[float(e)] = (float(sf[pick].mean()), float(sf[pick].std() / math.sqrt(pick.sum())))
    return out


def test_the_geant4_fit_and_its_range() -> None:
    sf = geant4_electron_sampling_fraction([10.0, 100.0, 500.0])
    np.testing.assert_allclose(sf, [0.02183, 0.02019, 0.01810], atol=5e-6)
    with pytest.raises(ValueError, match="10-500 GeV"):
        geant4_electron_sampling_fraction(2.0)
    assert float(geant4_electron_sampling_fraction(2.0, extrapolate=True)) == pytest.approx(0.02204, abs=1e-5)


def test_sampling_fraction_falls_with_energy_as_geant4s(sf_at_90_deg: dict[float, tuple[float, float]]) -> None:
    energies = [e for e in sf_at_90_deg if 50.0 <= e <= 500.0]
    assert len(energies) >= 5
    ratio = np.array([sf_at_90_deg[e][0] for e in energies]) / geant4_electron_sampling_fraction(energies)
    # the slope: from 50 to 500 GeV Geant4's falls 14 %; the Monte Carlo's ratio to it stays within 1.5 % of its
    # mean (measured: 0.952-0.963)
    assert np.all(np.abs(ratio / ratio.mean() - 1.0) < 0.015), ratio
    # the level: within 6 % of Geant4 at every energy (measured 3.7-4.8 % low; the aim is 3 %)
    assert np.all(np.abs(ratio - 1.0) < 0.06), ratio
    low = sf_at_90_deg[10.0][0] / float(geant4_electron_sampling_fraction(10.0))
    assert abs(low - 1.0) < 0.05, low
