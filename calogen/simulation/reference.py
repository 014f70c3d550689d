"""The shipped Monte Carlo reference sample: a grid of energies and angles, with its provenance.

``python -m calogen reference --out data/reference.h5`` simulates ``n`` electron showers at every
(energy, angle) point of the grid with :class:`calogen.simulation.mc.MonteCarlo`, writes them as one native shower
file and records how they were made (command, device, wall time, seeds, calogen version) in ``<out>.json`` beside it.
Each grid point has its own seed (``seed + point index``), so a point can be re-made alone, and the sample
is the same whatever the number of worker processes (``workers``) that simulate the points.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from calogen.io import ShowerSet, write_showers
from calogen.showers import Conditions
from calogen.simulation.mc import CONDITION_RANGE, PHYSICS_VERSION, MonteCarlo

__all__ = ["DEFAULT_ENERGIES_GEV", "DEFAULT_THETAS_RAD", "make_reference", "provenance_path"]

DEFAULT_ENERGIES_GEV = (2.0, 10.0, 50.0, 100.0, 200.0, 300.0, 400.0, 500.0)
DEFAULT_THETAS_RAD = (31 * math.pi / 90, math.pi / 2, 59 * math.pi / 90)
"""62, 90 and 118 deg: the angles at which the 3DGAN papers show their figures."""


def provenance_path(out: str | os.PathLike[str]) -> Path:
    """``data/reference.h5`` -> ``data/reference.json``."""
    return Path(out).with_suffix(".json")


def make_reference(
    out: str | os.PathLike[str],
    *,
    energies_gev: Sequence[float] = DEFAULT_ENERGIES_GEV,
    thetas_rad: Sequence[float] = DEFAULT_THETAS_RAD,
    n_per_point: int | Sequence[int] = 100,
    seed: int = 20261123,
    particle: Literal["e-", "e+", "gamma"] = "e-",
    device: str = "cpu",
    command: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Simulate the grid, write ``out`` (native HDF5) and its provenance JSON; return the provenance dict.

    The grid is every energy (GeV) of ``energies_gev`` at every angle (radians) of ``thetas_rad``; each point
    must lie in the Monte Carlo's range (:data:`calogen.simulation.mc.CONDITION_RANGE`), checked before anything
    runs. ``n_per_point`` is one number of showers for every point or one per energy (the high energies cost the most
    CPU). ``workers`` processes simulate the grid points in parallel (one CPU thread each); the result does not
    depend on their number.
    """
    from calogen.version import __version__

    counts = [int(n_per_point)] * len(energies_gev) if isinstance(n_per_point, int) else [int(k) for k in n_per_point]
    if len(counts) != len(energies_gev) or min(counts) <= 0:
        raise ValueError(f"n_per_point={n_per_point} must be positive: one number, or one per energy "
                         f"({len(energies_gev)} energies)")
    if workers < 1:
        raise ValueError(f"workers={workers} must be at least 1")
    points = [(float(e), float(t), k) for e, k in zip(energies_gev, counts) for t in thetas_rad]
    CONDITION_RANGE.check(Conditions.broadcast([e for e, _, _ in points], [t for _, t, _ in points]),
                          "the Monte Carlo")
    total = sum(k for _, _, k in points)
    jobs = [(energy, theta, k, particle, seed + index, device)
            for index, (energy, theta, k) in enumerate(points)]
    results: list[tuple[ShowerSet, float]] = []
    start = time.perf_counter()
    if workers == 1:
        for job in jobs:
            results.append(_simulate_point(*job))
            if progress is not None:
                progress(sum(job[2] for job in jobs[:len(results)]), total)
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_one_thread) as pool:
            for result in pool.map(_simulate_point, *zip(*jobs)):
                results.append(result)
                if progress is not None:
                    progress(sum(job[2] for job in jobs[:len(results)]), total)
    parts = [part for part, _ in results]
    timing = [{"energy_gev": job[0], "theta_rad": job[1], "seed": job[4], "seconds_per_shower": seconds}
              for job, (_, seconds) in zip(jobs, results)]
    sample = ShowerSet.concatenate(parts)
    wall = time.perf_counter() - start
    provenance = {
        "file": Path(out).name,
        "command": command or " ".join([Path(sys.executable).name, *sys.argv]),
        "particle": particle,
        "energies_gev": [float(e) for e in energies_gev],
        "thetas_rad": [float(t) for t in thetas_rad],
        "showers_per_point": {f"{e:g}": k for e, k in zip(energies_gev, counts)},
        "showers": len(sample),
        "seed": seed,
        "device": device,
        "host": f"{platform.machine()} {platform.processor() or platform.platform()}",
        "cpu_threads": _threads(),
        "workers": workers,
        "wall_time_s": round(wall, 1),
        "per_point": timing,
        "calogen_version": __version__,
        "mc_physics": PHYSICS_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mean_sampling_fraction": [
            {"energy_gev": e, "theta_rad": t,
             "sampling_fraction": float(np.mean(p.showers.sum(axis=(1, 2, 3)) / p.energy_gev))}
            for (e, t, _), p in zip(points, parts)
        ],
    }
    sample.attrs = {**parts[0].attrs, "source": "mc", "seed": seed, "particle": particle,
                    "provenance": json.dumps({k: v for k, v in provenance.items() if k != "per_point"})}
    write_showers(out, sample)
    provenance_path(out).write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def _simulate_point(energy_gev: float, theta_rad: float, n: int, particle: Literal["e-", "e+", "gamma"], seed: int,
                    device: str) -> tuple[ShowerSet, float]:
    """One grid point: (showers, wall seconds per shower)."""
    t0 = time.perf_counter()
    conditions = Conditions.broadcast(energy_gev, theta_rad, n)
    part = MonteCarlo(device=device, particle=particle).sample(conditions, seed=seed)
    return part, (time.perf_counter() - t0) / n


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())
