"""The 3D shower task solved with 2D convolutions, after Rehm et al., "Reduced Precision Strategies for Deep
Learning: A High Energy Physics Generative Adversarial Network Use Case" (ICPRAM 2021) and their Conv2D
3DGAN variant: one spatial axis becomes the channel axis, and three paths work on the three axis
permutations.

Generator (about 2.0 M parameters with the defaults): input [E/100, theta, noise] -> three paths, each a
dense layer onto a coarse 2D grid, two stride-2 transposed Conv2D and one Conv2D with LeakyReLU, batch norm
and dropout 0.2:

* path "xy": channels = layers, grid 13x13 -> 25x25 -> 49x49 -> 51x51 with 25 output channels;
* path "yz": channels = x, grid 13x7 -> 25x13 -> 49x25 -> 51x25 with 51 output channels;
* path "xz": channels = y, same shapes as "yz".

Each path is permuted back to (B, X, Y, Z); the three volumes are stacked as 3 x 25 channels on the x-y grid
and mixed by a final Conv2D (3x3) into the 25 layers, followed by ReLU (network units are non-negative).
The grids are adapted to 51x51x25 and to (energy, angle) conditioning; Rehm et al. used 25x25x25.

The discriminator mirrors this: three Conv2D paths on the same permutations, average pooling, flatten,
concatenated features, and the 3DGAN heads (``calogen.gan.nets.layers.ShowerHeads``).
"""

from __future__ import annotations

import torch
from torch import nn

from calogen.gan.nets.layers import DiscriminatorOutput, ShowerHeads, conditioning_input
from calogen.gan.preprocess import DEFAULT_POWER, DEFAULT_SCALE

__all__ = ["Conv2dDiscriminator", "Conv2dGenerator"]

_SLOPE = 0.2  # LeakyReLU slope
_NX, _NY, _NZ = 51, 51, 25


def _up_block(in_ch: int, out_ch: int, dropout: float) -> nn.Sequential:
    """Transposed Conv2D 3x3 stride 2 padding 1: n -> 2n - 1 per axis."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1),
        nn.LeakyReLU(_SLOPE),
        nn.BatchNorm2d(out_ch),
        nn.Dropout(dropout),
    )


class _GeneratorPath(nn.Module):
    """dense -> (C, h, w) -> two up blocks (2n - 1 each) -> Conv2D to the target grid with ``out_ch`` channels."""

    def __init__(self, in_features: int, grid: tuple[int, int], base: int, width: int, out_ch: int,
                 final_pad: tuple[int, int], dropout: float) -> None:
        super().__init__()
        self.grid = grid
        self.base = base
        self.dense = nn.Linear(in_features, base * grid[0] * grid[1])
        self.body = nn.Sequential(
            nn.LeakyReLU(_SLOPE),
            _up_block(base, width, dropout),
            _up_block(width, width, dropout),
            nn.Conv2d(width, out_ch, 3, padding=final_pad),
            nn.LeakyReLU(_SLOPE),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dense(z).view(-1, self.base, *self.grid)  # (B, C, h, w)
        return self.body(h)  # (B, out_ch, H, W)


class Conv2dGenerator(nn.Module):
    """Conv2D generator: (energy_gev (B,), theta_rad (B,), noise (B, latent_dim)) -> (B, 51, 51, 25) network units."""

    def __init__(self, latent_dim: int = 254, base_channels: int = 20, width: int = 48, dropout: float = 0.2) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        n_in = latent_dim + 2
        # 13 -> 25 -> 49 (+ pad 2, kernel 3) -> 51 ; 7 -> 13 -> 25 (+ pad 1, kernel 3) -> 25
        self.path_xy = _GeneratorPath(n_in, (13, 13), base_channels, width, _NZ, (2, 2), dropout)
        self.path_yz = _GeneratorPath(n_in, (13, 7), base_channels, width, _NX, (2, 1), dropout)
        self.path_xz = _GeneratorPath(n_in, (13, 7), base_channels, width, _NY, (2, 1), dropout)
        self.mix = nn.Conv2d(3 * _NZ, _NZ, 3, padding=1)

    def forward(self, energy_gev: torch.Tensor, theta_rad: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        z = conditioning_input(energy_gev, theta_rad, noise)
        xy = self.path_xy(z)  # (B, Z, X, Y)
        yz = self.path_yz(z).permute(0, 3, 1, 2)  # (B, X, Y, Z) -> (B, Z, X, Y)
        xz = self.path_xz(z).permute(0, 3, 2, 1)  # (B, Y, X, Z) -> (B, Z, X, Y)
        h = torch.cat([xy, yz, xz], dim=1)  # (B, 3Z, X, Y)
        out = torch.relu(self.mix(h))  # (B, Z, X, Y)
        return out.permute(0, 2, 3, 1).contiguous()  # (B, X, Y, Z)


def _down_path(in_ch: int, filters: tuple[int, ...], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, out_ch in enumerate(filters):
        layers += [nn.Conv2d(in_ch, out_ch, 5), nn.LeakyReLU(_SLOPE)]
        if i > 0:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.Dropout(dropout))
        in_ch = out_ch
    layers += [nn.AvgPool2d(2), nn.Flatten()]
    return nn.Sequential(*layers)


class Conv2dDiscriminator(nn.Module):
    """Conv2D discriminator: showers (B, 51, 51, 25) network units -> :class:`DiscriminatorOutput`."""

    def __init__(
        self,
        shape: tuple[int, int, int] = (_NX, _NY, _NZ),
        *,
        filters: tuple[int, ...] = (32, 16, 16),
        dropout: float = 0.2,
        power: float = DEFAULT_POWER,
        scale: float = DEFAULT_SCALE,
    ) -> None:
        super().__init__()
        nx, ny, nz = shape
        self.shape = (nx, ny, nz)
        self.path_xy = _down_path(nz, filters, dropout)  # channels = layers
        self.path_yz = _down_path(nx, filters, dropout)  # channels = x
        self.path_xz = _down_path(ny, filters, dropout)  # channels = y
        with torch.no_grad():
            n_features = self._features(torch.zeros(1, nx, ny, nz)).shape[1]
        self.n_features = n_features
        self.heads = ShowerHeads(n_features, power=power, scale=scale)

    def _features(self, showers_net: torch.Tensor) -> torch.Tensor:
        xy = self.path_xy(showers_net.permute(0, 3, 1, 2))  # (B, Z, X, Y) -> (B, F1)
        yz = self.path_yz(showers_net)  # (B, X, Y, Z) -> (B, F2)
        xz = self.path_xz(showers_net.permute(0, 2, 1, 3))  # (B, Y, X, Z) -> (B, F3)
        return torch.cat([xy, yz, xz], dim=1)  # (B, F)

    def forward(self, showers_net: torch.Tensor, energy_gev: torch.Tensor, theta_rad: torch.Tensor,
                ) -> DiscriminatorOutput:
        """showers_net (B, 51, 51, 25) network units; the conditions (B,) are part of the one discriminator
        signature and not used: as in 3DGAN, they enter through the losses of the energy and angle heads."""
        return self.heads(self._features(showers_net), showers_net)
