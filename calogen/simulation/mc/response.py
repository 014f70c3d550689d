"""The Monte Carlo's energy response and its convergence with the step size.

    >>> from calogen.simulation.mc.response import response_point, step_convergence
    >>> point = response_point("gamma", 100.0, n=50, seed=1)            # sampling fraction, core containment
    >>> study = step_convergence("e-", 10.0, n=400, seed=1)              # halve every e+- step limit

From the command line (JSON lines on stdout, the whole table with ``--out``)::

    python -m calogen.simulation.mc.response --particle e- gamma --energy 10 100 400 -n 100 --step-scale 1 0.5

The figures: the sampling fraction (silicon deposit in the readout window over the primary energy), the
energy-weighted mean layer (0-based), and the core containment (:func:`calogen.validation.features.core_containment`,
5.1 / 9.5 / 19 / 28.5 mm: one cell, about one Moliere radius of the stack, two and three), each with its
statistical error; where the energy goes (the silicon's share of all the energy deposited in the stack, the
energy leaving through the back); for electrons at 90 deg and 10-500 GeV, the ratio of the sampling fraction
to Geant4's (:mod:`calogen.validation.geant4`); the wall time per shower. :func:`mip_sampling_fractions` gives, layer by
layer, the silicon's share of a minimum-ionising particle's energy loss: the sampling a shower would see with
e/mip = 1.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch

from calogen.validation.features import core_containment
from calogen.validation.geant4 import GEANT4_FIT_RANGE_GEV, geant4_electron_sampling_fraction

__all__ = ["CONTAINMENT_RADII_MM", "ResponsePoint", "main", "mip_sampling_fractions", "response_point",
           "step_convergence"]

CONTAINMENT_RADII_MM = (5.1, 9.5, 19.0, 28.5)  # mm


@dataclass
class ResponsePoint:
    """The response of the Monte Carlo at one energy (errors are standard errors of the mean)."""

    particle: str
    energy_gev: float  # primary energy, GeV
    theta_deg: float  # incidence angle, degrees (90 = normal)
    n: int  # showers
    seed: int
    step_scale: float  # multiplier of every e+- step limit
    sampling_fraction: float
    sampling_fraction_error: float
    resolution: float  # rms / mean of the deposit
    layer_barycentre: float  # energy-weighted mean layer, 0-based
    layer_barycentre_error: float
    containment: dict[str, float] = field(default_factory=dict)  # radius (mm, as text) -> fraction
    containment_error: dict[str, float] = field(default_factory=dict)
    silicon_share: float = 0.0  # silicon deposit over all the energy deposited in the stack (window or not)
    rear_leakage: float = 0.0  # energy leaving through the back of the stack over the primary energy
    ms_per_shower: float = 0.0  # wall time, ms
    geant4_ratio: float | None = None  # sampling fraction over Geant4's (e- at 90 deg, 10-500 GeV; else None)


def response_point(
    particle: Literal["e-", "e+", "gamma"],
    energy_gev: float,
    *,
    n: int,
    seed: int,
    theta_deg: float = 90.0,
    step_scale: float = 1.0,
    device: str = "cpu",
) -> ResponsePoint:
    """Simulate ``n`` showers of ``particle`` at ``energy_gev`` (GeV) and ``theta_deg`` and measure them."""
    from calogen.simulation.mc import simulate

    start = time.perf_counter()
    showers, book = simulate(energy_gev, math.radians(theta_deg), n=n, particle=particle, seed=seed,
                             device=device, step_scale=step_scale, return_bookkeeping=True)
    elapsed = time.perf_counter() - start
    deposited = book.deposited_sensitive + book.deposited_passive + book.below_cut
    cells = showers.showers.astype(np.float64)
    deposit = cells.sum(axis=(1, 2, 3))
    sf = deposit / energy_gev
    layers = cells.sum(axis=(1, 2))
    barycentre = (layers * np.arange(layers.shape[1])).sum(axis=1) / np.maximum(layers.sum(axis=1), 1e-30)
    root_n = math.sqrt(n)
    containment, containment_error = {}, {}
    for radius in CONTAINMENT_RADII_MM:
        fraction = core_containment(cells, radius)
        containment[f"{radius:g}"] = float(fraction.mean())
        containment_error[f"{radius:g}"] = float(fraction.std() / root_n)
    geant4 = None
    if particle == "e-" and theta_deg == 90.0 and GEANT4_FIT_RANGE_GEV[0] <= energy_gev <= GEANT4_FIT_RANGE_GEV[1]:
        geant4 = float(sf.mean() / geant4_electron_sampling_fraction(energy_gev))
    return ResponsePoint(
        particle=particle, energy_gev=float(energy_gev), theta_deg=float(theta_deg), n=n, seed=seed,
        step_scale=float(step_scale), sampling_fraction=float(sf.mean()),
        sampling_fraction_error=float(sf.std() / root_n), resolution=float(deposit.std() / deposit.mean()),
        layer_barycentre=float(barycentre.mean()), layer_barycentre_error=float(barycentre.std() / root_n),
        containment=containment, containment_error=containment_error,
        silicon_share=float(book.deposited_sensitive.sum() / deposited.sum()),
        rear_leakage=float((book.leak_back / book.primary).mean()), ms_per_shower=1000.0 * elapsed / n,
        geant4_ratio=geant4,
    )


def mip_sampling_fractions(detector: str | None = None, *, beta_gamma: float = 3.5) -> npt.NDArray[np.float64]:
    """(n_layers,) the silicon's share of the collision energy loss of a minimum-ionising particle (``beta_gamma``
    about 3.5, the minimum of dE/dx; PDG section 34.2.3) crossing each layer at normal incidence.

    A layer is the slabs after the previous sensitive slab up to its own (absorber, supports, silicon); the front
    face and the plates behind the last silicon belong to none. dE/dx of each material from
    :func:`calogen.simulation.mc.stopping.restricted_dedx_mev_per_mm` without a delta-ray cut. For a shower the
    sampling fraction is this times e/mip (about 0.6-0.7 in tungsten-silicon), averaged over where it deposits.
    """
    from calogen.detector import get_detector
    from calogen.simulation.mc.constants import ELECTRON_MASS_MEV
    from calogen.simulation.mc.stopping import restricted_dedx_mev_per_mm

    det = get_detector(detector)
    kinetic = ELECTRON_MASS_MEV * (math.sqrt(1.0 + beta_gamma**2) - 1.0)
    t = np.array([kinetic])
    out, layer_loss = [], 0.0
    for slab in det.slabs:
        loss = float(restricted_dedx_mev_per_mm(slab.material, t, cut_mev=kinetic)[0]) * slab.thickness_mm
        layer_loss += loss
        if slab.sensitive:
            out.append(loss / layer_loss)
            layer_loss = 0.0
    return np.asarray(out)


def step_convergence(
    particle: Literal["e-", "e+", "gamma"],
    energy_gev: float,
    *,
    n: int,
    seed: int,
    theta_deg: float = 90.0,
    fine_scale: float = 0.5,
) -> dict[str, dict[str, float]]:
    """Relative change of each figure when every e+- step limit is multiplied by ``fine_scale``.

    Returns {figure: {"change": (fine - default) / default, "error": its statistical error}} for the sampling
    fraction, the layer barycentre and the containment within 5.1 mm. The two samples use different seeds, so
    their fluctuations are independent and the errors add in quadrature.
    """
    coarse = response_point(particle, energy_gev, n=n, seed=seed, theta_deg=theta_deg)
    fine = response_point(particle, energy_gev, n=n, seed=seed + 1, theta_deg=theta_deg, step_scale=fine_scale)

    def change(a: float, a_err: float, b: float, b_err: float) -> dict[str, float]:
        return {"change": (b - a) / a, "error": math.hypot(a_err, b_err) / a}

    core = f"{CONTAINMENT_RADII_MM[0]:g}"
    return {
        "sampling_fraction": change(coarse.sampling_fraction, coarse.sampling_fraction_error,
                                    fine.sampling_fraction, fine.sampling_fraction_error),
        "layer_barycentre": change(coarse.layer_barycentre, coarse.layer_barycentre_error,
                                   fine.layer_barycentre, fine.layer_barycentre_error),
        "core_containment": change(coarse.containment[core], coarse.containment_error[core],
                                   fine.containment[core], fine.containment_error[core]),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: measure the response at each (particle, energy, step scale); JSON lines on stdout."""
    parser = argparse.ArgumentParser(prog="python -m calogen.simulation.mc.response",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--particle", nargs="+", default=["e-"], choices=["e-", "e+", "gamma"])
    parser.add_argument("--energy", nargs="+", type=float, default=[10.0, 100.0], help="GeV")
    parser.add_argument("--theta", type=float, default=90.0, help="incidence angle, degrees (default 90)")
    parser.add_argument("-n", type=int, default=100, help="showers per point")
    parser.add_argument("--step-scale", nargs="+", type=float, default=[1.0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", help="write all points to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    points = []
    for particle in args.particle:
        for energy in args.energy:
            for k, scale in enumerate(args.step_scale):
                point = response_point(particle, energy, n=args.n, seed=args.seed + k, theta_deg=args.theta,
                                       step_scale=scale)
                print(json.dumps(asdict(point)), flush=True)
                points.append(asdict(point))
                if args.out:
                    with open(args.out, "w") as handle:
                        json.dump(points, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
