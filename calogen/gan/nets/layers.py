"""Building blocks shared by the architectures: conditioning input, the 3DGAN discriminator heads, and the
differentiable measured-angle observable.

The measured angle is computed here in torch (not taken from ``calogen.validation.features``, which works on NumPy
arrays) because the 3DGAN angle loss back-propagates through it into the generator.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from calogen.gan.preprocess import DEFAULT_POWER, DEFAULT_SCALE, from_network

__all__ = [
    "ENERGY_SCALE_GEV",
    "DiscriminatorOutput",
    "ShowerHeads",
    "conditioning_input",
    "ecal_sum_gev",
    "measured_angle",
    "same_padding_3d",
    "set_weight_layout",
]

# 3DGAN conditions the generator on E / 100 (energy in units of 100 GeV), Khattak et al. 2021 public code.
ENERGY_SCALE_GEV = 100.0
_EMPTY_ANGLE = 100.0  # 3DGAN's marker for "no energy deposited": the angle head returns 100 rad


class DiscriminatorOutput(NamedTuple):
    """What every 3DGAN-style discriminator returns; all tensors have shape (B,).

    logit: real/fake score before the sigmoid (use BCE-with-logits).
    energy_gev: regressed primary energy, GeV (the linear head predicts E/100; multiplied back by 100).
    ecal_sum_gev: sum of the input cells converted back to GeV (non-trainable).
    angle_rad: angle measured from layer barycentres, radians (non-trainable; 100 for empty showers).
    """

    logit: torch.Tensor
    energy_gev: torch.Tensor
    ecal_sum_gev: torch.Tensor
    angle_rad: torch.Tensor


def conditioning_input(energy_gev: torch.Tensor, theta_rad: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The 3DGAN angle-generator input ``[E/100, theta, noise]``: (B,), (B,), (B, L) -> (B, L + 2)."""
    if energy_gev.ndim != 1 or theta_rad.ndim != 1 or noise.ndim != 2:
        raise ValueError(
            f"expected energy_gev (B,), theta_rad (B,), noise (B, latent_dim); got shapes "
            f"{tuple(energy_gev.shape)}, {tuple(theta_rad.shape)}, {tuple(noise.shape)}"
        )
    e = (energy_gev.to(noise.dtype) / ENERGY_SCALE_GEV).unsqueeze(1)
    t = theta_rad.to(noise.dtype).unsqueeze(1)
    return torch.cat([e, t, noise], dim=1)


def set_weight_layout(module: torch.nn.Module, memory_format: torch.memory_format) -> None:
    """Lay out ``module``'s convolution weights in ``memory_format`` (channels_last: the 4-d ones, channels_last_3d:
    the 5-d ones, contiguous_format: both back), in place, as Module.to(memory_format=...) does; values and
    state-dict keys are unchanged."""
    dims = {torch.channels_last: (4,), torch.channels_last_3d: (5,)}.get(memory_format, (4, 5))
    for param in module.parameters():
        if param.dim() in dims:
            param.data = param.data.contiguous(memory_format=memory_format)


def same_padding_3d(kernel: tuple[int, int, int]) -> tuple[int, int, int, int, int, int]:
    """``F.pad`` amounts reproducing Keras ``padding='same'`` (extra pad at the end for even kernels).

    Returned in F.pad order (last axis first): (z_lo, z_hi, y_lo, y_hi, x_lo, x_hi).
    """
    pads: list[int] = []
    for k in reversed(kernel):
        total = k - 1
        pads += [total // 2, total - total // 2]
    return tuple(pads)  # type: ignore[return-value]


def ecal_sum_gev(
    showers_net: torch.Tensor, *, power: float = DEFAULT_POWER, scale: float = DEFAULT_SCALE
) -> torch.Tensor:
    """Deposited energy per shower in GeV from network-unit cells (B, X, Y, Z) -> (B,)."""
    return from_network(showers_net, power, scale).sum(dim=(1, 2, 3))


def measured_angle(showers: torch.Tensor) -> torch.Tensor:
    """Polar angle measured from layer barycentres, the 3DGAN ``ecal_angle`` (Khattak et al. 2021 code).

    showers: (B, X, Y, Z) non-negative cell energies (any linear unit). Positions are cell indices + 0.5 on
    all three axes, as in the reference code (which ignores the layer pitch). For each layer with energy,
    the slope m = (y_layer - y_bar) / sqrt((x_layer - x_bar)**2 + (z - z_bar)**2) (sign flipped in front of the
    barycentre) gives pi/2 - atan(m); the layer angles are averaged with weights z. Returns (B,) radians;
    showers without energy get 100.
    """
    b, nx, ny, nz = showers.shape
    dtype = showers.dtype
    xs = torch.arange(nx, dtype=dtype, device=showers.device) + 0.5
    ys = torch.arange(ny, dtype=dtype, device=showers.device) + 0.5
    zs = torch.arange(nz, dtype=dtype, device=showers.device) + 0.5
    total = showers.sum(dim=(1, 2, 3))  # (B,)
    empty = total == 0
    safe_total = torch.where(empty, torch.ones_like(total), total)
    x_ref = (showers.sum(dim=(2, 3)) * xs).sum(1) / safe_total  # (B,)
    y_ref = (showers.sum(dim=(1, 3)) * ys).sum(1) / safe_total
    z_ref = (showers.sum(dim=(1, 2)) * zs).sum(1) / safe_total
    sum_z = showers.sum(dim=(1, 2))  # (B, Z)
    has_energy = sum_z > 0
    safe_sum_z = torch.where(has_energy, sum_z, torch.ones_like(sum_z))
    x_mid = (showers.sum(dim=2) * xs[None, :, None]).sum(1) / safe_sum_z  # (B, Z)
    y_mid = (showers.sum(dim=1) * ys[None, :, None]).sum(1) / safe_sum_z  # (B, Z)
    z = zs.expand(b, nz)
    eps = 1e-7  # Keras K.epsilon(), keeps the square root differentiable
    zproj = torch.sqrt(torch.clamp((x_mid - x_ref[:, None]) ** 2 + (z - z_ref[:, None]) ** 2, min=eps))
    slope = (y_mid - y_ref[:, None]) / zproj
    slope = torch.where(z < z_ref[:, None], -slope, slope)
    angle = math.pi / 2.0 - torch.atan(slope)
    weight = z * has_energy.to(dtype)
    weight_sum = weight.sum(1)
    mean = (angle * weight).sum(1) / torch.where(weight_sum > 0, weight_sum, torch.ones_like(weight_sum))
    return torch.where(empty, torch.full_like(mean, _EMPTY_ANGLE), mean)


class ShowerHeads(nn.Module):
    """The four 3DGAN discriminator heads on top of a feature extractor.

    Trainable: real/fake logit and energy regression (linear layers on the flattened features).
    Non-trainable: ECAL sum and measured angle, computed from the input image converted back to GeV
    (inverse power, as the Keras ``Lambda(K.pow, 1/power)`` layer does).
    """

    def __init__(self, n_features: int, *, power: float = DEFAULT_POWER, scale: float = DEFAULT_SCALE) -> None:
        super().__init__()
        self.real_fake = nn.Linear(n_features, 1)
        self.energy = nn.Linear(n_features, 1)
        self.power = power
        self.scale = scale

    def forward(self, features: torch.Tensor, showers_net: torch.Tensor) -> DiscriminatorOutput:
        """features: (B, F); showers_net: (B, X, Y, Z) network units."""
        showers_gev = from_network(showers_net, self.power, self.scale)
        return DiscriminatorOutput(
            logit=self.real_fake(features).squeeze(1),
            energy_gev=self.energy(features).squeeze(1) * ENERGY_SCALE_GEV,
            ecal_sum_gev=showers_gev.sum(dim=(1, 2, 3)),
            angle_rad=measured_angle(showers_gev),
        )
