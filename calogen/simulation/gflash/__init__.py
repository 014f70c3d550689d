"""GFlash: the classical parametrised fast simulation of electromagnetic showers (vectorised, torch).

    >>> from calogen.showers import Conditions
    >>> from calogen.simulation.gflash import GFlash, simulate_gflash
    >>> showers = GFlash().sample(Conditions.broadcast(100.0, 1.5708, n=10), seed=1)     # a Source
    >>> showers = simulate_gflash(100.0, 1.5708, n=10, seed=1)                           # the engine call

Reference: G. Grindhammer and S. Peters, "The parameterized simulation of electromagnetic showers in
homogeneous and sampling calorimeters", hep-ex/0001020 (below "GP"), with the constants of the Geant4
implementation (G4GFlashHomoShowerParameterisation / GFlashSamplingShowerParameterisation, below "G4").

Per shower, the recipe is:

1. Longitudinal profile ``dE/dt = E beta (beta t)^(alpha-1) exp(-beta t) / Gamma(alpha)`` with ``t`` in
   radiation lengths along the shower axis, ``T = (alpha - 1) / beta`` the depth of the maximum.
   ``ln T`` and ``ln alpha`` are correlated Gaussians whose means, widths and correlation depend on
   ``y = E / E_c`` and on the effective material of the stack (sampling corrections with ``F_S`` and
   ``e_hat``, GP section 4). See :mod:`calogen.simulation.gflash.parameters`.
2. The energy is carried by ``N`` spots (GP eq. 33: ``N = 10.3 / c E^0.959`` for sampling calorimeters).
   Each spot gets a depth ``t`` drawn from the shower's own gamma profile, a radius from the two-component
   radial profile ``f(r) = p f_C(r) + (1 - p) f_T(r)`` with ``f_i(r) = 2 r R_i^2 / (r^2 + R_i^2)^2``
   (``r`` in effective Moliere radii; ``R_C``, ``R_T``, ``p`` functions of ``tau``, ``E`` and ``Z``, GP
   section 3.2 and 4.3), a uniform azimuth, and an energy ``E / N`` smeared with a gamma distribution of
   variance ``c^2 dE`` (sampling fluctuations; G4 ``ApplySampling``). See
   :mod:`calogen.simulation.gflash.sampling`.
3. Spots are placed in the detector: the axis enters the front face at a point uniform within one cell with
   direction (0, cos theta, sin theta) (theta = pi/2 is normal incidence; theta < pi/2 tilts towards +y, as
   :func:`calogen.simulation.mc.simulate`); the depth in radiation lengths is converted to z in mm through the
   real slab stack; each spot's energy is assigned to the readout layer whose silicon plane is nearest in
   radiation lengths and converted to the energy seen by the silicon with that layer's local sampling fraction
   ``e_hat x (mip loss in the silicon) / (mip loss in the layer's share of the stack)``.
4. The window (nx, ny) cells x all layers is centred on the energy barycentre, as in the Monte Carlo.

Showers are therefore in the units of the Monte Carlo: GeV deposited in the silicon of each cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch

from calogen.detector import Detector, get_detector
from calogen.showers import ConditionRange, Conditions, Progress, ShowerSet
from calogen.simulation.gflash.parameters import (
    GFlashParams,
    LongitudinalParameters,
    SamplingConstants,
    expected_sampling_fraction,
    layer_energy_fractions,
    longitudinal_parameters,
    mean_longitudinal_profile,
    mip_dedx_mev_cm2_g,
    sampling_constants,
)
from calogen.simulation.gflash.sampling import Spots, deposit_spots, sample_longitudinal, sample_spots, spot_counts

__all__ = [
    "CONDITION_RANGE",
    "NAME",
    "GFlash",
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
    "simulate_gflash",
]

NAME = "GFlash"
CONDITION_RANGE = ConditionRange((0.1, 5000.0), (math.pi / 6.0, 5.0 * math.pi / 6.0))
"""Where the parametrisation is used: 0.1-5000 GeV (the GP fits cover about 1 GeV - 1 TeV) and 30-150 deg (at
most 60 deg from normal incidence)."""
_MAX_SPOTS_PER_CHUNK = 2_000_000  # spots held in memory at once
_PROGRESS_STEPS = 16  # every request runs in at least this many chunks (when it has as many showers)


@dataclass(frozen=True)
class GFlash:
    """GFlash as a :class:`calogen.showers.Source`: electron showers in ``detector`` (a name or a TOML path)
    on ``device``, with the constants ``params``. Requests run in up to 16 chunks, with ``progress`` called
    after each; the chunking depends only on the conditions, so a seed gives the same showers with or
    without ``progress``."""

    device: str = "cpu"
    detector: str = "clic_ecal"
    params: GFlashParams = field(default_factory=GFlashParams)

    @property
    def name(self) -> str:
        """``"GFlash"``."""
        return NAME

    @property
    def condition_range(self) -> ConditionRange:
        """:data:`CONDITION_RANGE`: 0.1-5000 GeV, 30-150 deg."""
        return CONDITION_RANGE

    def sample(self, conditions: Conditions, seed: int | None = None, progress: Progress | None = None) -> ShowerSet:
        """One shower per condition; see :func:`simulate_gflash`."""
        return simulate_gflash(conditions.energy_gev, conditions.theta_rad, detector=self.detector, seed=seed,
                               device=self.device, params=self.params, progress=progress)


def _chunks(spots_per_shower: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """(start, stop) of consecutive showers simulated together: at most 1/16 of the request (so progress comes
    during it) and at most _MAX_SPOTS_PER_CHUNK spots (memory), at least one shower."""
    n = spots_per_shower.size
    most = max(1, math.ceil(n / _PROGRESS_STEPS))
    chunks, start = [], 0
    while start < n:
        stop, total = start + 1, int(spots_per_shower[start])
        while stop < n and stop - start < most and total + spots_per_shower[stop] <= _MAX_SPOTS_PER_CHUNK:
            total += int(spots_per_shower[stop])
            stop += 1
        chunks.append((start, stop))
        start = stop
    return chunks


def simulate_gflash(
    energy_gev: float | npt.ArrayLike,
    theta_rad: float | npt.ArrayLike,
    *,
    n: int | None = None,
    detector: Detector | str | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    params: GFlashParams | None = None,
    progress: Progress | None = None,
) -> ShowerSet:
    """Simulate electron showers with GFlash (the engine call under :class:`GFlash`).

    Args:
        energy_gev: primary energy, GeV; a number or (n,) array, inside :data:`CONDITION_RANGE` (0.1-5000 GeV).
        theta_rad: polar angle, radians (pi/2 = normal incidence, tilt in the y-z plane); number or (n,)
            array inside 30-150 deg. Both are broadcast by :meth:`calogen.showers.Conditions.broadcast`.
        n: number of showers (default: the length of the arrays).
        detector: Detector, name ("clic_ecal") or TOML path; default clic_ecal.
        seed: seed of the torch.Generator; the same seed on the same device gives the same showers.
        device: "cpu", "cuda", or a torch.device.
        params: the parametrisation constants (default :class:`GFlashParams`).
        progress: callback progress(done, total) after each chunk of showers (up to 16 calls).

    Returns:
        ShowerSet: showers float32 (n, nx, ny, n_layers), GeV seen by the silicon of each cell, in the
        readout window centred on the barycentre; attrs source "gflash", particle "e-", detector, seed,
        device, the constants ("gflash_params") and the detector's sampling constants ("gflash_constants").
    Raises :class:`calogen.showers.OutOfRangeError` for conditions outside the range, ValueError for bad input.
    """
    from calogen.version import __version__

    conditions = Conditions.broadcast(energy_gev, theta_rad, n)
    CONDITION_RANGE.check(conditions, NAME)
    energy, theta = conditions.energy_gev, conditions.theta_rad
    det = get_detector(detector)
    p = params or GFlashParams()
    constants = sampling_constants(det, p)
    dev = torch.device(device)
    gen = torch.Generator(device=dev)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    gen.manual_seed(int(seed))

    n_showers = len(conditions)
    out = np.zeros((n_showers, *det.shape), dtype=np.float32)
    for start, stop in _chunks(spot_counts(energy, constants, p)):
        e_t = torch.as_tensor(energy[start:stop], device=dev, dtype=torch.float64)
        th_t = torch.as_tensor(theta[start:stop], device=dev, dtype=torch.float64)
        spots = sample_spots(e_t, constants, p, generator=gen)
        out[start:stop] = deposit_spots(spots, th_t, constants, det, gen).cpu().numpy()
        if progress is not None:
            progress(stop, n_showers)

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
