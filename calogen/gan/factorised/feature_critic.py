"""A critic on the showers' high-level features: the classifier test of the validation, turned into a training signal.

The validation's high-level classifier (:mod:`calogen.validation.classifier`, the CaloChallenge 2022 test,
arXiv:2410.21611) tells generated from Monte Carlo showers by the energy, the x and y barycentre and the x and y
width of each layer, the sampling fraction and the hit count, given energy and angle. In a factorised generator the
energy model fixes the layer energies (and so the sampling fraction); the shape generator sets the rest. The
batch-mean constraints of the campaign match those features' means, but not how they vary from shower to shower
nor how they vary together (the shipped Conv2D generator's layer widths at 2 GeV vary 0.5-0.7 times as much as the
Monte Carlo's, and twice as much in step from layer to layer), and those are what the classifier finds. This critic
sees exactly the features the classifier sees, computed differentiably from the cells, beside the generator's
conditions (which hold the layer energies), and is trained with the hinge loss as the cell-level critic is (Lim &
Ye, arXiv:1705.02894), with spectral normalisation on every layer (Miyato et al., arXiv:1802.05957).

Spectral normalisation bounds the critic's slope by 1 in its input's units, and the differences the classifier finds
are a quarter to a third of a standard deviation of each feature within an energy and angle bin (0.1 of the
barycentres' scaled cells, 0.3 of a log width): in raw units a score gap of 2 (the hinge margins) is out of the
critic's reach, and it settles near the hinge loss of chance. Like the classifier, which standardises its inputs,
the critic can see the features standardised on Monte Carlo showers and multiplied by a ``gain``
(:meth:`FeatureCritic.standardise`): on the features of the Conv2D generator of 29,380 steps against the
reference, one so trained (gain 3) told the two apart with a held-out AUC of 0.84, against 0.76 on the raw features.

Shapes: showers (B, X, Y, Z) GeV; features (B, 4 Z + 1); conditions (B, 27) as the shape generator's.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from calogen.gan.factorised.shower_figures import layer_axis, layer_widths, soft_hits

__all__ = ["FeatureCritic", "feature_standardisation", "high_level_features"]

BARYCENTRE_SCALE_CELLS = 5.0  # the barycentres enter divided by this (the deep layers' scatter at 2 GeV: ~10 cells)
HITS_CENTRE = 6.0  # ln(1 + hits) enters less this (hits: a few tens at 2 GeV, ~1,500 at 500 GeV)


def high_level_features(showers_gev: torch.Tensor, hit_width: float = 0.25) -> torch.Tensor:
    """(B, 4 Z + 1) the classifier's shower features, differentiable: each layer's x and y barycentre from the
    window centre (cells, scaled by 1/5), the natural log of its x and y width (cells), and ln(1 + hits) of the
    shower less 6, the hits counted softly (sigmoid of ln(cell / 0.2 MeV) / ``hit_width``) so that both samples
    are counted alike. showers (B, X, Y, Z) GeV."""
    _, nx, ny, _ = showers_gev.shape
    centre = torch.tensor([0.5 * (nx - 1), 0.5 * (ny - 1)], dtype=showers_gev.dtype, device=showers_gev.device)
    barycentre = (layer_axis(showers_gev) - centre) / BARYCENTRE_SCALE_CELLS  # (B, Z, 2)
    widths = torch.log(layer_widths(showers_gev, per_axis=True))  # (B, Z, 2)
    hits = torch.log1p(soft_hits(showers_gev, hit_width).sum(dim=1, keepdim=True)) - HITS_CENTRE  # (B, 1)
    return torch.cat([barycentre.transpose(1, 2).flatten(1), widths.transpose(1, 2).flatten(1), hits], dim=1)


def feature_standardisation(showers: Iterable[torch.Tensor],
                            hit_width: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of :func:`high_level_features`, each (4 Z + 1,), over batches of Monte Carlo showers (B, X, Y,
    Z) GeV; a feature that never varies gets std 1."""
    values = torch.cat([high_level_features(batch, hit_width) for batch in showers])
    std = values.std(dim=0)
    return values.mean(dim=0), torch.where(std > 0, std, torch.ones_like(std))


class FeatureCritic(nn.Module):
    """Hinge-loss critic on :func:`high_level_features` and the generator's conditions: a spectrally normalised MLP
    (features and conditions in, 2 x ``width`` hidden, one score out; higher means more like the Monte Carlo).

    Buffers ``feature_mean`` and ``feature_scale`` (4 Z + 1,): the features enter as (features - mean) / scale;
    0 and 1 (raw features) until :meth:`standardise` sets them."""

    feature_mean: torch.Tensor
    feature_scale: torch.Tensor

    def __init__(self, n_layers: int = 25, n_conditions: int = 27, width: int = 256) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(4 * n_layers + 1))
        self.register_buffer("feature_scale", torch.ones(4 * n_layers + 1))
        self.net = nn.Sequential(
            spectral_norm(nn.Linear(4 * n_layers + 1 + n_conditions, width)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Linear(width, width)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Linear(width, 1)),
        )

    def standardise(self, mean: torch.Tensor, std: torch.Tensor, gain: float) -> FeatureCritic:
        """Let the features enter as (features - mean) / std x ``gain`` (> 0), mean and std (4 Z + 1,) as
        :func:`feature_standardisation` gives them."""
        if gain <= 0.0:
            raise ValueError(f"gain={gain} must be positive")
        self.feature_mean.copy_(mean)
        self.feature_scale.copy_(std / gain)
        return self

    def forward(self, shower_features: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """(B,) scores of features (B, 4 Z + 1) at conditions (B, 27)."""
        scaled = (shower_features - self.feature_mean) / self.feature_scale
        return self.net(torch.cat([scaled, conditions], dim=1))[:, 0]
