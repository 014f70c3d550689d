"""Energy-loss fluctuations of e+- crossing a thin sensitive slab: Landau's distribution, restricted.

Below the delta-ray production threshold the Monte Carlo loses energy continuously, at the restricted mean
rate (:mod:`calogen.simulation.mc.stopping`); collisions above it are explicit delta rays. In a thin slab
(0.5 mm of silicon) the loss from the many soft collisions fluctuates as Landau's distribution (PDG, "Passage
of particles through matter", sec. 34.2.9, eqs. 34.11-34.12):

    Delta = Delta_mean + xi (lambda - <lambda>),   xi = (K/2) <Z/A> rho x / beta^2,

with lambda drawn from the standard Landau density truncated where a single collision would exceed the largest
restricted energy transfer T_up (the delta-ray threshold, or the largest Moller/Bhabha transfer below it):
lambda <= lambda_max = lambda_mode + T_up / xi, because the tail of the density beyond its peak is the
single-collision spectrum xi / epsilon^2 with epsilon = xi (lambda - lambda_mode). <lambda> is the mean of the
truncated density, so the mean loss stays the restricted mean and no energy is made or lost by the
fluctuation. The most probable loss then follows from the restricted mean and T_up: for a minimum-ionising
particle in 0.5 mm of silicon it comes out near the 0.145 MeV of the Landau-Vavilov-Bichsel formula (eq. 34.12)
instead of the mean minus 1.27 xi of a Moyal shape (0.166 MeV).

lambda is Landau's own variable (the density (1/pi) int_0^inf exp(-u ln u - lambda u) sin(pi u) du, mode at
-0.22278, tail 1/lambda^2). scipy.stats.landau is the same law in the stable-distribution scale:
x = (2/pi) (lambda - ln(pi/2)). It is tabulated once, and lambda is drawn by inverting the tabulated
distribution function.

    >>> table = landau_table(torch.device("cpu"))
    >>> loss = restricted_landau_loss(table, mean, xi, t_up, uniform)     # all (N,) MeV
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import landau

__all__ = ["LANDAU_MODE", "LandauTable", "landau_table", "restricted_landau_loss"]

LANDAU_MODE = -0.22278298  # the mode of Landau's density in lambda
_LAMBDA_LOW = -3.8  # below it the density is < 1e-16 of its peak
_LAMBDA_HIGH = 1.0e6
_LAMBDA_MAX_FLOOR = 1.0  # truncation never tighter than this: T_up < 1.2 xi is outside Landau's regime


@dataclass
class LandauTable:
    """The standard Landau distribution on a grid (float64 tensors on the Monte Carlo's device).

    lam: (K,) grid of lambda; cdf: (K,) distribution function F(lambda); mean_below: (K,) the mean of lambda
    over the density truncated at each grid value, E[lambda | lambda <= lam].
    """

    lam: torch.Tensor
    cdf: torch.Tensor
    mean_below: torch.Tensor


def landau_table(device: torch.device) -> LandauTable:
    """Tabulate the standard Landau distribution: fine steps near the peak, logarithmic in the tail."""
    lam = np.concatenate((np.arange(_LAMBDA_LOW, 30.0, 0.005),
                          np.geomspace(30.0, _LAMBDA_HIGH, 1200)))
    x = (2.0 / math.pi) * (lam - math.log(math.pi / 2.0))  # scipy's variable
    pdf = (2.0 / math.pi) * landau.pdf(x)
    cdf = landau.cdf(x)
    # E[lambda; lambda <= x] by the trapezoidal rule on the grid (the part below _LAMBDA_LOW is negligible)
    first = np.concatenate(([0.0], np.cumsum(0.5 * (lam[1:] * pdf[1:] + lam[:-1] * pdf[:-1]) * np.diff(lam))))
    mean_below = np.where(cdf > 1e-300, first / np.maximum(cdf, 1e-300), lam)
    start = int(np.argmax(cdf > 1e-12))  # keep F strictly useful for inversion
    as_t = lambda a: torch.as_tensor(a[start:], dtype=torch.float64, device=device)  # noqa: E731
    return LandauTable(as_t(lam), as_t(cdf), as_t(mean_below))


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of fp(xp) at x (xp increasing); x outside xp takes the end values."""
    i = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.numel() - 1)
    x0, x1 = xp[i - 1], xp[i]
    f = ((x - x0) / (x1 - x0).clamp_min(1e-300)).clamp(0.0, 1.0)
    return fp[i - 1] + f * (fp[i] - fp[i - 1])


def restricted_landau_loss(
    table: LandauTable,
    mean_mev: torch.Tensor,
    xi_mev: torch.Tensor,
    t_up_mev: torch.Tensor,
    uniform: torch.Tensor,
) -> torch.Tensor:
    """Energy loss in a thin slab, MeV: the restricted mean plus a Landau fluctuation (module docstring).

    Args:
        table: from :func:`landau_table`, on the device of the other arguments.
        mean_mev: (N,) restricted mean loss over the path, MeV.
        xi_mev: (N,) Landau's xi over the path, MeV (PDG eq. 34.11).
        t_up_mev: (N,) largest energy transfer of a soft collision, MeV.
        uniform: (N,) uniform random numbers in [0, 1).

    Returns:
        (N,) loss, MeV, in the dtype of ``mean_mev``; not clipped (the caller bounds it by the kinetic energy).
    """
    xi = xi_mev.double().clamp_min(1e-12)
    lam_max = (LANDAU_MODE + t_up_mev.double() / xi).clamp(_LAMBDA_MAX_FLOOR, _LAMBDA_HIGH)
    f_max = _interp(lam_max, table.lam, table.cdf)
    mean_lam = _interp(lam_max, table.lam, table.mean_below)
    lam = _interp(uniform.double() * f_max, table.cdf, table.lam)
    return (mean_mev.double() + xi * (lam - mean_lam)).to(mean_mev.dtype)
