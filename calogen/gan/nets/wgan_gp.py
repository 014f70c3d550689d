"""Networks for the two WGAN-GP recipes.

``wgan-gp-lhcb`` (after Chekalina et al., "Generative Models for Fast Calorimeter Simulation: the LHCb
case", CHEP 2018, arXiv:1812.01319): cell energies in Box-Cox units (``calogen.gan.preprocess.BoxCox``), so the
generator ends linearly; conditioning is enforced through a separately pre-trained regressor
(:class:`ConditionRegressor`) whose error on generated showers enters the generator loss; the critic is a
conditional WGAN critic without batch norm (batch norm breaks the per-sample gradient penalty, Gulrajani et
al. 2017, sec. 4). The bodies are the 3DGAN convolution stacks of ``calogen.gan.nets.conv3d``.

``wgan-gp-atlas`` (after ATLAS FastCaloGAN, ATL-SOFT-PUB-2020-006, and Klein's WGAN-GP): flat cell vector;
generator 3 x 128 dense LeakyReLU on [noise (100), E/100] ending in softmax x energy, so the generated
energy sum equals ``energy_fraction`` x the conditioning energy by construction; linear critic (no sigmoid)
of the same size. The output is reshaped to ``shape`` so it plugs into (B, X, Y, Z) pipelines; ATLAS used
89-247 cells, e.g. ``shape=(1, 1, 247)``. Network units are GeV (card preprocessing ``{"kind": "identity"}``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from calogen.gan.nets.conv3d import Conv3dFeatures, Conv3dGenerator
from calogen.gan.nets.layers import ENERGY_SCALE_GEV

__all__ = [
    "AtlasCritic",
    "AtlasGenerator",
    "ConditionRegressor",
    "DenseConditionRegressor",
    "LhcbCritic",
    "LhcbGenerator",
]

_SLOPE = 0.2
_MIN_SUM = 1e-6  # floor of a shower's cell sum in the dense regressor (network units), keeps the log finite


def _conditions(energy_gev: torch.Tensor, theta_rad: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B,), (B,) -> (B, 2) = [E/100, theta]."""
    return torch.stack([energy_gev.to(dtype) / ENERGY_SCALE_GEV, theta_rad.to(dtype)], dim=1)


class LhcbGenerator(Conv3dGenerator):
    """conv3d generator with a linear last layer (Box-Cox units can be negative).

    (energy_gev (B,), theta_rad (B,), noise (B, latent_dim)) -> (B, 51, 51, 25) Box-Cox network units.
    """

    def __init__(self, latent_dim: int = 254, fast_upsample: bool = False) -> None:
        super().__init__(latent_dim=latent_dim, fast_upsample=fast_upsample, final_activation="linear")


class LhcbCritic(nn.Module):
    """Conditional WGAN critic: (showers (B, X, Y, Z), energy_gev (B,), theta_rad (B,)) -> (B,) score.

    The 3DGAN convolution body without batch norm or dropout; the conditions [E/100, theta] are appended to
    the flattened features before a small dense head.
    """

    def __init__(
        self, shape: tuple[int, int, int] = (51, 51, 25), *, filters: tuple[int, ...] = (16, 8, 8, 8), hidden: int = 64
    ) -> None:
        super().__init__()
        self.features = Conv3dFeatures(shape, filters=filters, dropout=0.0, batch_norm=False)
        self.head = nn.Sequential(
            nn.Linear(self.features.n_features + 2, hidden), nn.LeakyReLU(_SLOPE), nn.Linear(hidden, 1)
        )

    def forward(self, showers_net: torch.Tensor, energy_gev: torch.Tensor, theta_rad: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.features(showers_net), _conditions(energy_gev, theta_rad, showers_net.dtype)], dim=1)
        return self.head(h).squeeze(1)  # (B,)


class ConditionRegressor(nn.Module):
    """Regressor of the conditions from a shower, pre-trained on the training showers before the GAN stage and
    then frozen (the LHCb WGAN-GP recipe, Chekalina et al. 2019).

    showers (B, X, Y, Z) network units -> (energy_gev (B,), theta_rad (B,)). The 3DGAN discriminator body without
    batch norm or dropout; energy is predicted as E/100 and scaled back, the angle as an offset from pi/2 (normal
    incidence). ``kernel`` is the convolution kernel on (x, y, layer); small test geometries need a smaller one.
    """

    def __init__(
        self,
        shape: tuple[int, int, int] = (51, 51, 25),
        *,
        filters: tuple[int, ...] = (16, 8, 8, 8),
        kernel: tuple[int, int, int] = (5, 6, 6),
        hidden: int = 64,
    ) -> None:
        super().__init__()
        self.features = Conv3dFeatures(shape, filters=filters, kernel=kernel, dropout=0.0, batch_norm=False)
        self.head = nn.Sequential(
            nn.Linear(self.features.n_features, hidden), nn.LeakyReLU(_SLOPE), nn.Linear(hidden, 2)
        )

    def forward(self, showers_net: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.features(showers_net))  # (B, 2)
        return out[:, 0] * ENERGY_SCALE_GEV, out[:, 1] + math.pi / 2.0


class DenseConditionRegressor(nn.Module):
    """Condition regressor for small flat geometries (the ``wgan-gp-atlas`` networks), pre-trained and frozen as
    :class:`ConditionRegressor`.

    showers (B, *shape) network units -> (energy_gev (B,), theta_rad (B,)). A dense LeakyReLU network on the cell
    fractions (cells / their sum, times the number of cells so that they are of order 1) and the log of the sum:
    the sum carries the energy (sampling calorimeter: deposit proportional to E), the fractions the shape and so
    the angle. Energy is predicted as log(E/100 GeV) = log(sum) + a learned correction, hence positive and
    proportional to the deposit from the start; the angle as an offset from pi/2.
    """

    def __init__(self, shape: tuple[int, int, int] = (51, 51, 25), hidden: int = 128, n_hidden: int = 2) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.n_cells = math.prod(self.shape)
        self.net = _mlp(self.n_cells + 1, hidden, n_hidden, 2)

    def forward(self, showers_net: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = showers_net.flatten(1)  # (B, n_cells)
        total = flat.sum(dim=1, keepdim=True).clamp_min(_MIN_SUM)  # (B, 1)
        log_total = torch.log(total)
        out = self.net(torch.cat([flat / total * self.n_cells, log_total], dim=1))  # (B, 2)
        # log(E / 100 GeV) = log(sum) + a learned correction: the inverse sampling fraction and shape effects
        return torch.exp(log_total[:, 0] + out[:, 0]) * ENERGY_SCALE_GEV, out[:, 1] + math.pi / 2.0


def _mlp(n_in: int, hidden: int, n_hidden: int, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(n_hidden):
        layers += [nn.Linear(n_in, hidden), nn.LeakyReLU(_SLOPE)]
        n_in = hidden
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class AtlasGenerator(nn.Module):
    """Dense generator ending in softmax x energy.

    (energy_gev (B,), theta_rad (B,), noise (B, latent_dim)) -> (B, *shape) cell energies in GeV whose sum is
    ``energy_fraction * energy_gev``. ``theta_rad`` is used only when ``use_theta`` (ATLAS conditions on energy
    alone and trains one network per eta slice).
    """

    def __init__(
        self,
        shape: tuple[int, int, int] = (51, 51, 25),
        latent_dim: int = 100,
        hidden: int = 128,
        n_hidden: int = 3,
        energy_fraction: float = 1.0,
        use_theta: bool = False,
    ) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.latent_dim = latent_dim
        self.energy_fraction = energy_fraction
        self.use_theta = use_theta
        self.n_cells = math.prod(self.shape)
        self.net = _mlp(latent_dim + 1 + int(use_theta), hidden, n_hidden, self.n_cells)

    def forward(self, energy_gev: torch.Tensor, theta_rad: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        parts = [noise, (energy_gev.to(noise.dtype) / ENERGY_SCALE_GEV).unsqueeze(1)]
        if self.use_theta:
            parts.append(theta_rad.to(noise.dtype).unsqueeze(1))
        fractions = torch.softmax(self.net(torch.cat(parts, dim=1)), dim=1)  # (B, n_cells), rows sum to 1
        cells = fractions * (self.energy_fraction * energy_gev.to(noise.dtype)).unsqueeze(1)
        return cells.view(-1, *self.shape)  # (B, X, Y, Z) GeV


class AtlasCritic(nn.Module):
    """Linear-output critic: (showers (B, *shape) GeV, energy_gev (B,), theta_rad (B,)) -> (B,) score.

    Cells are divided by the conditioning energy so the critic sees energy fractions (as ATLAS normalises).
    """

    def __init__(
        self, shape: tuple[int, int, int] = (51, 51, 25), hidden: int = 128, n_hidden: int = 3, use_theta: bool = False
    ) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.use_theta = use_theta
        self.net = _mlp(math.prod(self.shape) + 1 + int(use_theta), hidden, n_hidden, 1)

    def forward(self, showers: torch.Tensor, energy_gev: torch.Tensor, theta_rad: torch.Tensor) -> torch.Tensor:
        e = energy_gev.to(showers.dtype)
        parts = [showers.flatten(1) / e.unsqueeze(1), (e / ENERGY_SCALE_GEV).unsqueeze(1)]
        if self.use_theta:
            parts.append(theta_rad.to(showers.dtype).unsqueeze(1))
        return self.net(torch.cat(parts, dim=1)).squeeze(1)
