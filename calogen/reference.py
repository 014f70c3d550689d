"""The shipped Monte Carlo reference sample: a grid of energies and angles, with its provenance.

``python -m calogen reference --out data/reference.h5`` simulates ``n`` electron showers at every
(energy, angle) point of the grid with :func:`calogen.mc.simulate`, writes them as one native shower file and
records how they were made (command, device, wall time, seeds, calogen version) in ``<out>.json`` beside it.
Each grid point has its own seed (``seed + point index``), so a point can be re-made alone.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calogen.io import ShowerSet, write_showers

__all__ = ["DEFAULT_ENERGIES_GEV", "DEFAULT_THETAS_DEG", "make_reference", "provenance_path"]

DEFAULT_ENERGIES_GEV = (2.0, 10.0, 50.0, 100.0, 200.0)
DEFAULT_THETAS_DEG = (62.0, 90.0, 118.0)  # the angles at which the 3DGAN papers show their figures


def provenance_path(out: str | os.PathLike[str]) -> Path:
    """``data/reference.h5`` -> ``data/reference.json``."""
    return Path(out).with_suffix(".json")


def make_reference(
    out: str | os.PathLike[str],
    *,
    energies_gev: Sequence[float] = DEFAULT_ENERGIES_GEV,
    thetas_deg: Sequence[float] = DEFAULT_THETAS_DEG,
    n_per_point: int = 100,
    seed: int = 20261123,
    particle: str = "e-",
    device: str = "cpu",
    command: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Simulate the grid, write ``out`` (native HDF5) and its provenance JSON; return the provenance dict."""
    from calogen import __version__
    from calogen.mc import simulate

    if n_per_point <= 0:
        raise ValueError(f"n_per_point={n_per_point} must be positive")
    points = [(float(e), float(t)) for e in energies_gev for t in thetas_deg]
    total = len(points) * n_per_point
    parts: list[ShowerSet] = []
    timing: list[dict[str, float]] = []
    start = time.perf_counter()
    for index, (energy, theta_deg) in enumerate(points):
        t0 = time.perf_counter()
        part = simulate(energy, math.radians(theta_deg), n=n_per_point, particle=particle,  # type: ignore[arg-type]
                        seed=seed + index, device=device)
        timing.append({"energy_gev": energy, "theta_deg": theta_deg, "seed": seed + index,
                       "seconds_per_shower": (time.perf_counter() - t0) / n_per_point})
        parts.append(part)
        if progress is not None:
            progress((index + 1) * n_per_point, total)
    sample = ShowerSet.concatenate(parts)
    wall = time.perf_counter() - start
    provenance = {
        "file": Path(out).name,
        "command": command or " ".join([Path(sys.executable).name, *sys.argv]),
        "particle": particle,
        "energies_gev": [float(e) for e in energies_gev],
        "thetas_deg": [float(t) for t in thetas_deg],
        "showers_per_point": n_per_point,
        "showers": len(sample),
        "seed": seed,
        "device": device,
        "host": f"{platform.machine()} {platform.processor() or platform.platform()}",
        "cpu_threads": _threads(),
        "wall_time_s": round(wall, 1),
        "per_point": timing,
        "calogen_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mean_sampling_fraction": {
            f"{e:g}GeV_{t:g}deg": float(np.mean(p.showers.sum(axis=(1, 2, 3)) / p.energy_gev))
            for (e, t), p in zip(points, parts)
        },
    }
    sample.attrs = {**parts[0].attrs, "source": "mc", "seed": seed, "particle": particle,
                    "provenance": json.dumps({k: v for k, v in provenance.items() if k != "per_point"})}
    write_showers(out, sample)
    provenance_path(out).write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())
