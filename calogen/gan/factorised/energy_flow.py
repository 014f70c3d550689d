"""The energy model: a conditional normalising flow over the 25 layer energies of a shower.

Factorising a shower into its layer energies and its normalised per-layer images follows CaloFlow (Krause &
Shih, arXiv:2106.05285, "flow I" for the layer energies given the incident energy) and CaloDREAM
(Favaro et al., arXiv:2405.09629). The flow carries the sampling fraction, the longitudinal profile and their
fluctuations and correlations; the shape generators only place the energy inside each layer.

The flow is a neural spline flow (Durkan et al., arXiv:1906.04032) with coupling (two passes per transform), so
sampling is one parallel pass per transform, from ``zuko`` (Rozet et al., https://github.com/probabilists/zuko).

Variables: ``u_l = log10(E_l / E0 + FLOOR)`` for layer energies E_l (GeV) and primary energy E0 (GeV), standardised
with the training set's mean and spread. Empty layers (about 20 % at 2 GeV) sit at ``log10(FLOOR)``; they are
spread uniformly over one decade below ``log10(2 FLOOR)`` (dequantisation) for training, and a sampled value in
that decade is an empty layer again. Context: ``(log(E0 / 100 GeV), (theta - pi/2) / 0.5 rad)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import torch
import zuko
from torch import nn

__all__ = ["BASE_TRUNCATION", "FLOOR", "EnergyFlowConfig", "LayerEnergyFlow", "context_features", "from_flow_space",
           "redraw_beyond", "to_flow_space"]

FLOOR = 1e-7  # fraction of the primary energy below any real layer deposit (a 10 keV deposit at 2 GeV is 5e-6)
_EMPTY_BELOW = math.log10(2 * FLOOR)  # sampled values under this are empty layers
BASE_TRUNCATION = 3.5
"""Sampling draws the flow's base values from a standard normal truncated at +-3.5 (a value beyond is drawn again;
1.2 % of showers have one among their 25). A flow fitted on 10^4 showers has seen about five of them beyond 3.5
sigma in each base dimension, and its spline tails there are unconstrained: with untruncated draws, one shower in
about a thousand of the shipped generators had a layer energy tens to hundreds of times the typical one, some above
the primary energy (at 100 GeV, 90 deg, 40,000 draws of models/conv3d's flow: the sampling fraction's rms / mean
3.6 and its largest value 540 times the median; truncated at 3.5: 0.056, the Monte Carlo's 0.05-0.07, and 3.1
times). The same truncation as the "truncation trick" of image GANs (Brock et al., arXiv:1809.11096) and the
reduced temperature of flows (Kingma & Dhariwal, arXiv:1807.03039)."""


def redraw_beyond(base: torch.Tensor, generator: torch.Generator | None, bound: float = BASE_TRUNCATION
                  ) -> torch.Tensor:
    """A copy of standard normal draws ``base`` (any shape, on the CPU) with every value beyond +-``bound`` drawn
    again from ``generator`` until none is: standard normal draws truncated at ``bound``. Values within are kept,
    so a seeded draw stays the same wherever it was within."""
    if not bound > 0.0:
        raise ValueError(f"bound={bound}: the truncation must be positive")
    out = base.clone()
    beyond = out.abs() > bound
    while bool(beyond.any()):
        out[beyond] = torch.randn(int(beyond.sum()), generator=generator, dtype=out.dtype)
        beyond = out.abs() > bound
    return out


@dataclass(frozen=True)
class EnergyFlowConfig:
    """Size of the flow: ``transforms`` coupling spline transforms, each conditioned by an MLP."""

    n_layers: int = 25  # calorimeter layers
    transforms: int = 8
    hidden: int = 128  # hidden units per MLP layer (two layers)
    bins: int = 8  # spline bins


def context_features(energy_gev: torch.Tensor, theta_rad: torch.Tensor) -> torch.Tensor:
    """float32 (N, 2): the flow's context from primary energy (GeV, (N,)) and angle (rad, (N,))."""
    return torch.stack([torch.log(energy_gev / 100.0), (theta_rad - math.pi / 2) / 0.5], dim=1).float()


def to_flow_space(layer_energy_gev: npt.NDArray[np.floating], energy_gev: npt.NDArray[np.floating],
                  rng: np.random.Generator | None) -> npt.NDArray[np.float32]:
    """float32 (N, L): ``log10(E_l / E0 + FLOOR)``; with ``rng`` empty layers are dequantised (training)."""
    fraction = np.asarray(layer_energy_gev, np.float64) / np.asarray(energy_gev, np.float64)[:, None]
    u = np.log10(fraction + FLOOR)
    if rng is not None:
        empty = fraction <= 0.0
        u[empty] = _EMPTY_BELOW - rng.uniform(0.0, 1.0, int(empty.sum()))
    return u.astype(np.float32)


def from_flow_space(u: npt.NDArray[np.floating], energy_gev: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """float32 (N, L) layer energies, GeV, from flow-space values (inverse of :func:`to_flow_space`)."""
    u = np.asarray(u, np.float64)
    fraction = np.clip(10.0 ** u - FLOOR, 0.0, None)
    fraction[u < _EMPTY_BELOW] = 0.0
    return (fraction * np.asarray(energy_gev, np.float64)[:, None]).astype(np.float32)


class LayerEnergyFlow(nn.Module):
    """p(layer energies | primary energy, angle) as a conditional coupling spline flow.

    The standardisation of the flow variables (``shift``, ``scale``, float32 (L,)) is stored as buffers, so the
    saved state holds everything needed to sample.
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, config: EnergyFlowConfig | None = None) -> None:
        super().__init__()
        self.config = config or EnergyFlowConfig()
        c = self.config
        self.flow = zuko.flows.NSF(c.n_layers, 2, transforms=c.transforms, hidden_features=(c.hidden, c.hidden),
                                   bins=c.bins, passes=2)
        self.register_buffer("shift", torch.zeros(c.n_layers))
        self.register_buffer("scale", torch.ones(c.n_layers))

    def fit_standardisation(self, u: npt.NDArray[np.float32]) -> None:
        """Set ``shift``/``scale`` from flow-space training values u, float32 (N, L)."""
        self.shift.copy_(torch.as_tensor(u.mean(axis=0)))
        self.scale.copy_(torch.as_tensor(np.maximum(u.std(axis=0), 1e-3)))

    def log_prob(self, u: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """float32 (N,): log density of standardised flow values; u float32 (N, L), context float32 (N, 2)."""
        z = (u - self.shift) / self.scale
        return self.flow(context).log_prob(z) - torch.log(self.scale).sum()

    def from_base(self, energy_gev: torch.Tensor, theta_rad: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """float32 (N, L) layer energies, GeV, from base draws float32 (N, L) (standard normal) at the given
        energies (GeV, (N,)) and angles (rad, (N,)): the flow's inverse transform."""
        z = self.flow(context_features(energy_gev, theta_rad)).transform.inv(base)
        u = z * self.scale + self.shift
        fraction = torch.clamp(10.0 ** u - FLOOR, min=0.0)
        fraction = torch.where(u < _EMPTY_BELOW, torch.zeros_like(fraction), fraction)
        return fraction * energy_gev[:, None].float()

    def standardised(self, layer_energy_gev: torch.Tensor, energy_gev: torch.Tensor) -> torch.Tensor:
        """float32 (N, L): layer energies (GeV, (N, L)) as standardised flow variables (no dequantisation)."""
        u = torch.log10((layer_energy_gev / energy_gev[:, None]).clamp(min=0.0) + FLOOR)
        return ((u - self.shift) / self.scale).float()

    @torch.no_grad()
    def sample_layer_energies(self, energy_gev: torch.Tensor, theta_rad: torch.Tensor,
                              generator: torch.Generator | None = None) -> torch.Tensor:
        """float32 (N, L) layer energies, GeV, one draw per (energy GeV, angle rad) pair of shape (N,).

        ``generator`` makes the draw reproducible (the base draws are standard normal truncated at
        :data:`BASE_TRUNCATION`).
        """
        base = redraw_beyond(torch.randn(energy_gev.shape[0], self.config.n_layers, generator=generator), generator)
        return self.from_base(energy_gev, theta_rad, base.to(energy_gev.device))

    def card(self) -> dict[str, int]:
        """The architecture, as written into a model card."""
        return asdict(self.config)
