"""Parametrised toy showers with known physics, shared by the validation and comparison tests."""

from __future__ import annotations

import math

import numpy as np

from calogen.showers import ShowerSet


def synthetic_showers(
    n: int,
    *,
    seed: int,
    geometry: tuple[int, int, int] = (15, 15, 25),
    energy_gev: tuple[float, float] = (50.0, 150.0),
    theta_rad: float = 0.5 * math.pi,
    scale: float = 1.0,
    layer_shift: int = 0,
) -> ShowerSet:
    """Parametrised showers: gamma longitudinal profile x exponential lateral profile, Poisson-like noise.

    Sampling fraction 2%; t_max = ln(E / 10 MeV) / 1.5 layers; lateral exponential radius 1.2 cells; the axis
    tilts in y by cot(theta) cells per layer; cell fluctuations Gamma with variance 1e-4 GeV x mean.
    """
    rng = np.random.default_rng(seed)
    nx, ny, nz = geometry
    energy = rng.uniform(*energy_gev, size=n)
    b = 0.5
    t_max = np.log(energy / 0.01) / 1.5 * rng.lognormal(0.0, 0.05, size=n)
    a = 1.0 + b * t_max
    t = np.arange(nz) + 0.5
    longitudinal = t[None, :] ** (a[:, None] - 1) * np.exp(-b * t[None, :])
    longitudinal /= longitudinal.sum(axis=1, keepdims=True)
    x = np.arange(nx) - (nx - 1) / 2
    y = np.arange(ny) - (ny - 1) / 2
    y_axis = (t - nz / 2)[None, :] / math.tan(theta_rad) + rng.normal(0, 0.2, size=(n, 1))  # (n, nz)
    dx = x[None, :, None, None]
    dy = y[None, None, :, None] - y_axis[:, None, None, :]
    lateral = np.exp(-np.sqrt(dx**2 + dy**2) / 1.2)
    lateral /= lateral.sum(axis=(1, 2), keepdims=True)
    mean = 0.02 * energy[:, None, None, None] * lateral * longitudinal[:, None, None, :]
    q = 1e-4  # GeV: variance = q x mean
    cells = rng.gamma(np.maximum(mean / q, 1e-12), q)
    cells[cells < 1e-6] = 0.0
    if layer_shift:
        cells = np.roll(cells, layer_shift, axis=3)
        cells[..., :layer_shift] = 0.0
    showers = (cells * scale).astype(np.float32)
    return ShowerSet(showers, energy.astype(np.float32), np.full(n, theta_rad, np.float32), {"source": "toy"})
